// one_hot_matmul_backward: the gradient of the one-hot product with respect to W.
//
//   logits = xenc @ W  =>  dW = xenc^T @ dlogits
//   G[r, c] = sum_i xenc[i, r] * dlogits[i, c],   xenc[i, r] = 1 if r = ctx_i else 0
//
// with dlogits[i, c] = softmax(logits_i)[c] - [c = tgt_i] from cross_entropy_backward (run
// with one segment per example). The sum over the n examples is cut into blocks of
// block_len examples: one thread per (row r, block b, column c) writes
//
//   partial[(r * num_blocks + b) * V + c] = sum_{i in block b} xenc[i, r] * dlogits[i, c]
//
// in the examples' order (adding the zeros changes no float sum), and grad_rows adds a row's
// blocks in order, so the result is the same on every run. The host picks block_len so that
// neither this loop nor grad_rows' loop over a row's blocks outgrows its loop budget.
//
// Loop bound per invocation: block_len

const THREADS: u32 = 64u;

struct Params {
    num_examples: u32, num_rows: u32, num_cols: u32, num_blocks: u32,
    block_len: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(1) var<storage> contexts: array<u32>;
@group(0) @binding(2) var<storage> dlogits: array<f32>;
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;

@compute @workgroup_size(THREADS)
fn main(id: Invocation) {
    let cols = params.num_cols;
    let at = cell_of(id, cols); // row r * num_blocks + b
    if (at.index >= params.num_rows * params.num_blocks * cols) {
        return;
    }
    let r = at.row / params.num_blocks;
    let b = at.row % params.num_blocks;
    let block = params.block_len;
    let end = min((b + 1u) * block, params.num_examples);
    var sum = 0.0;
    for (var i = b * block; i < end; i++) {
        let x = select(0.0, 1.0, contexts[i] == r);
        sum += x * dlogits[i * cols + at.col];
    }
    partial[at.index] = sum;
}

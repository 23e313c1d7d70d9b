// one_hot_matmul: the lecture's `xenc = F.one_hot(xs, num_classes=V^K).float(); logits = xenc @ W`.
//
//   xenc[i, r]   = 1 if r = ctx_i else 0                  (the one-hot encoding of the context)
//   logits[i, c] = sum_r xenc[i, r] * W[r, c]              (an n x V^K by V^K x V matrix product)
//
// The one-hot matrix is formed on the fly, entry by entry, instead of being stored (it would
// take n x V^K floats). The product touches every r, as the dense product does: this is what
// the row select of cross_entropy_forward avoids, and the result is exactly W[ctx_i, c]
// (one times the weight plus zeros). One thread per (example, column).
//
// The sum over r runs over ranges of rows, one dispatch each, from `first_row` to `end_row`:
// the first range starts the sum, each later one adds to what the previous one wrote, in
// order, so the float sum is the same as one loop over every r.
//
// Loop bound per invocation: end_row - first_row (the host's range of rows)

const THREADS: u32 = 64u;

struct Params {
    num_examples: u32, num_rows: u32, num_cols: u32, first_row: u32,
    end_row: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(1) var<storage> weights: array<f32>;
@group(0) @binding(2) var<storage> contexts: array<u32>;
@group(0) @binding(3) var<storage, read_write> logits: array<f32>;

@compute @workgroup_size(THREADS)
fn main(id: Invocation) {
    let cols = params.num_cols;
    let at = cell_of(id, cols); // example at.row, column at.col
    if (at.index >= params.num_examples * cols) {
        return;
    }
    let ctx = contexts[at.row];
    var sum = 0.0;
    if (params.first_row > 0u) {
        sum = logits[at.index];
    }
    for (var r = params.first_row; r < params.end_row; r++) {
        let x = select(0.0, 1.0, r == ctx);
        sum += x * weights[r * cols + at.col];
    }
    logits[at.index] = sum;
}

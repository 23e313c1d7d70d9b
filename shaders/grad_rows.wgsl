// grad_rows: the gradient of the training loss with respect to W.
//
//   loss = (1/n) sum_i nll_i + reg * mean(W^2)
//   grad[r, c] = (1/n) sum_{segments s of row r} segment_grads[s, c] + 2 * reg * W[r, c] / |W|
//
// The segments of row r are row_segments[r] .. row_segments[r + 1] (see
// cross_entropy_backward), added in order. A row no example uses gets only the penalty's
// gradient. One thread per weight.
//
// Loop bound per invocation: the most segments of any row (the host cuts rows into few
// enough segments)

const THREADS: u32 = 64u;

struct Params { num_rows: u32, num_cols: u32, num_examples: u32, reg: f32 }

@group(0) @binding(1) var<storage> weights: array<f32>;
@group(0) @binding(2) var<storage> row_segments: array<u32>;
@group(0) @binding(3) var<storage> segment_grads: array<f32>;
@group(0) @binding(4) var<storage, read_write> grads: array<f32>;

@compute @workgroup_size(THREADS)
fn main(id: Invocation) {
    let cols = params.num_cols;
    let num_weights = params.num_rows * cols;
    let at = cell_of(id, cols);
    if (at.index >= num_weights) {
        return;
    }
    var sum = 0.0;
    for (var s = row_segments[at.row]; s < row_segments[at.row + 1u]; s++) {
        sum += segment_grads[s * cols + at.col];
    }
    grads[at.index] = sum / f32(params.num_examples)
        + 2.0 * params.reg * weights[at.index] / f32(num_weights);
}

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

struct Params {
    num_rows: u32,
    num_cols: u32,
    num_examples: u32,
    reg: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> weights: array<f32>;
@group(0) @binding(2) var<storage, read> row_segments: array<u32>;
@group(0) @binding(3) var<storage, read> segment_grads: array<f32>;
@group(0) @binding(4) var<storage, read_write> grads: array<f32>;

@compute @workgroup_size(64)
fn main(
    @builtin(local_invocation_index) local: u32,
    @builtin(workgroup_id) group_id: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let index = (group_id.x + group_id.y * groups.x) * 64u + local;
    let cols = params.num_cols;
    let num_weights = params.num_rows * cols;
    if (index >= num_weights) {
        return;
    }
    let row = index / cols;
    let c = index % cols;
    var sum = 0.0;
    for (var s = row_segments[row]; s < row_segments[row + 1u]; s++) {
        sum += segment_grads[s * cols + c];
    }
    grads[index] = sum / f32(params.num_examples)
        + 2.0 * params.reg * weights[index] / f32(num_weights);
}

// softmax_rows: each row of W as a probability distribution over the next character.
//
//   P[r, c] = exp(W[r, c] - m_r) / sum_c' exp(W[r, c'] - m_r),   m_r = max_c W[r, c]
//
// The lecture's `counts = logits.exp(); probs = counts / counts.sum(1, keepdims=True)` for
// every possible context at once; subtracting the row maximum keeps exp() from overflowing.
// The host samples names from these rows. One thread per row.

struct Params {
    num_rows: u32,
    num_cols: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> weights: array<f32>;
@group(0) @binding(2) var<storage, read_write> probs: array<f32>;

@compute @workgroup_size(64)
fn main(
    @builtin(local_invocation_index) local: u32,
    @builtin(workgroup_id) group_id: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let row = (group_id.x + group_id.y * groups.x) * 64u + local;
    if (row >= params.num_rows) {
        return;
    }
    let cols = params.num_cols;
    let base = row * cols;
    var m = weights[base];
    for (var c = 1u; c < cols; c++) {
        m = max(m, weights[base + c]);
    }
    var sum = 0.0;
    for (var c = 0u; c < cols; c++) {
        sum += exp(weights[base + c] - m);
    }
    for (var c = 0u; c < cols; c++) {
        probs[base + c] = exp(weights[base + c] - m) / sum;
    }
}

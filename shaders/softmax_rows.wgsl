// softmax_rows: each row of W as a probability distribution over the next character.
//
//   P[r, c] = exp(W[r, c] - m_r) / sum_c' exp(W[r, c'] - m_r),   m_r = max_c W[r, c]
//
// The lecture's `counts = logits.exp(); probs = counts / counts.sum(1, keepdims=True)` for
// every possible context at once; subtracting the row maximum keeps exp() from overflowing.
// The host samples names from these rows.
//
// L = lanes_per_row threads share each row (a power of two: 1 for short rows, more for long
// ones), lane l taking columns l, l + L, ...; a workgroup holds 64 / L rows, and a tree in
// workgroup memory combines the lanes' maxima and sums.
//
// Loop bound per invocation: 3 * ceil(C / L) + 2 * log2(L)

struct Params {
    num_rows: u32,
    num_cols: u32,
    lanes_per_row: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> weights: array<f32>;
@group(0) @binding(2) var<storage, read_write> probs: array<f32>;

const THREADS: u32 = 64u;
// The most negative finite f32: the maximum of no values.
const LOWEST: f32 = -3.40282347e38;

var<workgroup> lane_value: array<f32, THREADS>;

// Combines the L lanes of each row by a tree in workgroup memory (`use_max`: their maximum,
// else their sum); every lane gets its row's result.
fn combine_lanes(local: u32, lanes: u32, value: f32, use_max: bool) -> f32 {
    if (lanes == 1u) {
        return value; // one lane per row: nothing to combine, and no barrier to pay for
    }
    let lane = local % lanes;
    lane_value[local] = value;
    workgroupBarrier();
    for (var stride = lanes / 2u; stride > 0u; stride /= 2u) {
        if (lane < stride) {
            let mine = lane_value[local];
            let other = lane_value[local + stride];
            lane_value[local] = select(mine + other, max(mine, other), use_max);
        }
        workgroupBarrier();
    }
    let result = lane_value[local - lane];
    workgroupBarrier();
    return result;
}

@compute @workgroup_size(64)
fn main(
    @builtin(local_invocation_index) local: u32,
    @builtin(workgroup_id) group_id: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let lanes = params.lanes_per_row;
    let rows_per_group = THREADS / lanes;
    let group = group_id.x + group_id.y * groups.x;
    let num_groups = (params.num_rows + rows_per_group - 1u) / rows_per_group;
    if (group >= num_groups) {
        return; // padding of the 2D grid; uniform across the workgroup
    }
    let lane = local % lanes;
    let row = group * rows_per_group + local / lanes;
    let cols = params.num_cols;
    // Threads past the last row take part in the barriers with no columns.
    var end = 0u;
    if (row < params.num_rows) {
        end = cols;
    }
    let base = row * cols;
    var m = LOWEST;
    for (var c = lane; c < end; c += lanes) {
        m = max(m, weights[base + c]);
    }
    m = combine_lanes(local, lanes, m, true);
    var sum = 0.0;
    for (var c = lane; c < end; c += lanes) {
        sum += exp(weights[base + c] - m);
    }
    sum = combine_lanes(local, lanes, sum, false);
    for (var c = lane; c < end; c += lanes) {
        probs[base + c] = exp(weights[base + c] - m) / sum;
    }
}

// normalize_rows: counts to probabilities with "fake count" smoothing s.
//
//   P[r, c] = (N[r, c] + s) / (sum_c' N[r, c'] + s * V)
//
// The lecture's `P = (N + 1).float(); P /= P.sum(1, keepdim=True)`. The row sum is taken over
// the integer counts (exact, whatever the order of the additions) before the one conversion
// to f32. A row whose total is 0 (a context never seen, with s = 0) becomes all zeros instead
// of 0/0.
//
// L = lanes_per_row threads share each row (a power of two: 1 for short rows, more for long
// ones), lane l taking columns l, l + L, ...; a workgroup holds 64 / L rows, and a tree in
// workgroup memory adds the lanes' sums. (One workgroup per row left 37 of 64 threads idle
// on rows of 27, and paid 531,441 workgroups at context 4.)
//
// Loop bound per invocation: 2 * ceil(C / L) + log2(L)

struct Params {
    num_rows: u32,
    num_cols: u32,
    smoothing: f32,
    lanes_per_row: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> counts: array<u32>;
@group(0) @binding(2) var<storage, read_write> probs: array<f32>;

const THREADS: u32 = 64u;
var<workgroup> lane_sum: array<u32, THREADS>;

// Adds the L lanes of each row by a tree in workgroup memory; every lane gets its row's sum.
fn add_lanes(local: u32, lanes: u32, value: u32) -> u32 {
    if (lanes == 1u) {
        return value; // one lane per row: nothing to add, and no barrier to pay for
    }
    let lane = local % lanes;
    lane_sum[local] = value;
    workgroupBarrier();
    for (var stride = lanes / 2u; stride > 0u; stride /= 2u) {
        if (lane < stride) {
            lane_sum[local] += lane_sum[local + stride];
        }
        workgroupBarrier();
    }
    return lane_sum[local - lane];
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

    var sum = 0u;
    for (var c = lane; c < end; c += lanes) {
        sum += counts[base + c];
    }
    sum = add_lanes(local, lanes, sum);

    let total = f32(sum) + params.smoothing * f32(cols);
    for (var c = lane; c < end; c += lanes) {
        var p = 0.0;
        if (total > 0.0) {
            p = (f32(counts[base + c]) + params.smoothing) / total;
        }
        probs[base + c] = p;
    }
}

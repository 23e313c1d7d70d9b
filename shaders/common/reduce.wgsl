// reduce: a fixed binary tree in workgroup memory, over the L lanes of each row or over the
// whole workgroup; appended to the kernels that reduce (src/gpu/kernels.rs).
//
//   lane l <- lane l (+ or max) lane l + s,   for s = L/2, L/4, ..., 1 and every l < s
//
// so the result is the same on every run. Every thread of the workgroup calls it (barriers).
//
// Loop bound per invocation: log2(L) (log2(THREADS) for the workgroup's sum)

var<workgroup> lane_value: array<f32, THREADS>;

// The L lanes of each row combined (`use_max`: their maximum, else their sum), to every lane.
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

// The sum of every thread's `value`, to every thread.
fn workgroup_sum(local: u32, value: f32) -> f32 {
    return combine_lanes(local, THREADS, value, false);
}

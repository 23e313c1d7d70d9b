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

const THREADS: u32 = 64u;

struct Params { num_rows: u32, num_cols: u32, smoothing: f32, lanes_per_row: u32 }

@group(0) @binding(1) var<storage> counts: array<u32>;
@group(0) @binding(2) var<storage, read_write> probs: array<f32>;

var<workgroup> lane_sum: array<u32, THREADS>;

// The L lanes of each row added by a tree in workgroup memory (as reduce.wgsl does for f32,
// here exact on integers); every lane gets its row's sum.
fn add_lanes(at: Lane, value: u32) -> u32 {
    if (at.lanes == 1u) {
        return value; // one lane per row: nothing to add, and no barrier to pay for
    }
    lane_sum[at.local] = value;
    workgroupBarrier();
    for (var stride = at.lanes / 2u; stride > 0u; stride /= 2u) {
        if (at.lane < stride) {
            lane_sum[at.local] += lane_sum[at.local + stride];
        }
        workgroupBarrier();
    }
    return lane_sum[at.local - at.lane];
}

@compute @workgroup_size(THREADS)
fn main(id: Invocation) {
    let lanes = params.lanes_per_row;
    let cols = params.num_cols;
    let at = lane_of(id.local, lanes, group_index(id), params.num_rows, cols);
    if (at.past_end) {
        return; // padding of the 2D grid; uniform across the workgroup
    }
    let base = at.row * cols;
    var sum = 0u;
    for (var c = at.lane; c < at.end; c += lanes) {
        sum += counts[base + c];
    }
    sum = add_lanes(at, sum);

    let total = f32(sum) + params.smoothing * f32(cols);
    for (var c = at.lane; c < at.end; c += lanes) {
        var p = 0.0;
        if (total > 0.0) {
            p = (f32(counts[base + c]) + params.smoothing) / total;
        }
        probs[base + c] = p;
    }
}

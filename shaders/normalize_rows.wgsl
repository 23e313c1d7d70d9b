// normalize_rows: counts to probabilities with "fake count" smoothing s.
//
//   P[r, c] = (N[r, c] + s) / (sum_c' N[r, c'] + s * V)
//
// The lecture's `P = (N + 1).float(); P /= P.sum(1, keepdim=True)`. The row sum is taken over
// the integer counts (exact, whatever the order of the additions) before the one conversion
// to f32. A row whose total is 0 (a context never seen, with s = 0) becomes all zeros instead
// of 0/0. One workgroup per row.
//
// Loop bound per invocation: 2 * ceil(C / 64) + log2(64)

struct Params {
    num_rows: u32,
    num_cols: u32,
    smoothing: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> counts: array<u32>;
@group(0) @binding(2) var<storage, read_write> probs: array<f32>;

const THREADS: u32 = 64u;
var<workgroup> partial: array<u32, THREADS>;

@compute @workgroup_size(64)
fn main(
    @builtin(local_invocation_index) local: u32,
    @builtin(workgroup_id) group_id: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let row = group_id.x + group_id.y * groups.x;
    if (row >= params.num_rows) {
        return; // the whole workgroup leaves together: `row` is uniform
    }
    let cols = params.num_cols;
    let base = row * cols;

    // Row sum: each thread adds a strided slice, then a tree over the threads.
    var sum = 0u;
    for (var c = local; c < cols; c += THREADS) {
        sum += counts[base + c];
    }
    partial[local] = sum;
    workgroupBarrier();
    for (var stride = THREADS / 2u; stride > 0u; stride /= 2u) {
        if (local < stride) {
            partial[local] += partial[local + stride];
        }
        workgroupBarrier();
    }

    let total = f32(partial[0]) + params.smoothing * f32(cols);
    for (var c = local; c < cols; c += THREADS) {
        var p = 0.0;
        if (total > 0.0) {
            p = (f32(counts[base + c]) + params.smoothing) / total;
        }
        probs[base + c] = p;
    }
}

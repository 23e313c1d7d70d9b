// cross_entropy_forward: logits gather, stable log-softmax and NLL in one pass (fused).
//
//   logits_i = W[ctx_i]                         (onehot(ctx_i) @ W selects exactly this row)
//   m_i      = max_c logits_i[c]
//   lse_i    = m_i + log(sum_c exp(logits_i[c] - m_i))       = log sum_c exp(logits_i[c])
//   nll_i    = lse_i - logits_i[tgt_i]                       = -log softmax(logits_i)[tgt_i]
//   partials[g] = sum of nll_i over the examples of workgroup g (a fixed binary tree)
//
// The lecture's `logits = xenc @ W; counts = logits.exp(); probs = counts / counts.sum(1)`,
// `-probs[arange(n), ys].log()`, without materializing the n x V matrices. Subtracting the
// row maximum keeps exp() from overflowing. `lse_i` is kept for cross_entropy_backward.
//
// L = lanes_per_example threads share each example (a power of two: 1 for short rows, more
// for long ones), lane l taking columns l, l + L, ...; a workgroup holds 256 / L examples.
//
// The examples may be one chunk of a larger set (one dispatch per chunk): i counts from the
// chunk's start, and the chunk's workgroup sums go to partials from `first_partial` on.
//
// Loop bound per invocation: 2 * ceil(C / L) + 2 * log2(L) + log2(256)

struct Params {
    num_examples: u32,
    num_cols: u32,
    lanes_per_example: u32,
    first_partial: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> weights: array<f32>;
@group(0) @binding(2) var<storage, read> contexts: array<u32>;
@group(0) @binding(3) var<storage, read> targets: array<u32>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
@group(0) @binding(5) var<storage, read_write> partials: array<f32>;

const THREADS: u32 = 256u;
// The most negative finite f32: the maximum of no values.
const LOWEST: f32 = -3.40282347e38;

var<workgroup> lane_value: array<f32, THREADS>;
var<workgroup> scratch: array<f32, THREADS>;

// Combines the L lanes of each example by a tree in workgroup memory (`use_max`: their
// maximum, else their sum); every lane gets its example's result.
fn combine_lanes(local: u32, lanes: u32, value: f32, use_max: bool) -> f32 {
    if (lanes == 1u) {
        return value; // one lane per row: nothing to combine, and no barrier to pay for
    }
    let lane = local % lanes;
    lane_value[local] = value;
    workgroupBarrier();
    for (var stride = lanes / 2u; stride > 0u; stride /= 2u) {
        if (lane < stride) {
            let other = lane_value[local + stride];
            let mine = lane_value[local];
            lane_value[local] = select(mine + other, max(mine, other), use_max);
        }
        workgroupBarrier();
    }
    let result = lane_value[local - lane];
    workgroupBarrier();
    return result;
}

@compute @workgroup_size(256)
fn main(
    @builtin(local_invocation_index) local: u32,
    @builtin(workgroup_id) group_id: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let lanes = params.lanes_per_example;
    let per_group = THREADS / lanes;
    let group = group_id.x + group_id.y * groups.x;
    let num_groups = (params.num_examples + per_group - 1u) / per_group;
    if (group >= num_groups) {
        return; // padding of the 2D grid; uniform across the workgroup
    }
    let lane = local % lanes;
    let i = group * per_group + local / lanes;
    let cols = params.num_cols;
    // Threads past the last example take part in the barriers with no columns.
    var end = 0u;
    var base = 0u;
    if (i < params.num_examples) {
        end = cols;
        base = contexts[i] * cols;
    }
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
    // The example's first lane holds its NLL; the others add nothing.
    var nll = 0.0;
    if (end > 0u && lane == 0u) {
        let l = m + log(sum);
        lse[i] = l;
        nll = l - weights[base + targets[i]];
    }
    scratch[local] = nll;
    workgroupBarrier();
    for (var stride = THREADS / 2u; stride > 0u; stride /= 2u) {
        if (local < stride) {
            scratch[local] += scratch[local + stride];
        }
        workgroupBarrier();
    }
    if (local == 0u) {
        partials[params.first_partial + group] = scratch[0];
    }
}

// cross_entropy_explicit: the lecture's loss, step by step, without the max subtraction.
//
//   logits_i = W[ctx_i]                              (onehot(ctx_i) @ W selects this row)
//   counts_i = exp(logits_i)                         the lecture's `counts = logits.exp()`
//   sum_i    = sum_c counts_i[c]                     `counts.sum(1, keepdims=True)`
//   p_i      = counts_i[tgt_i] / sum_i               `probs = counts / ...; probs[arange(n), ys]`
//   nll_i    = -log(p_i)                             `-probs[...].log()`
//   lse_i    = log(sum_i)                            (kept for cross_entropy_backward)
//   partials[g] = sum of nll_i over the examples of workgroup g (a fixed binary tree)
//
// Mathematically equal to cross_entropy_forward, but exp() of a logit above about 88.7
// overflows f32 to infinity, and then p_i = inf / inf is NaN: the reason the fused form
// subtracts the row maximum first. The caller detects a non-finite loss and says so.
// The same bindings and the same lanes as cross_entropy_forward: L = lanes_per_example
// threads share each example, lane l taking columns l, l + L, ...
//
// The examples may be one chunk of a larger set (one dispatch per chunk): i counts from the
// chunk's start, and the chunk's workgroup sums go to partials from `first_partial` on.
//
// Loop bound per invocation: ceil(C / L) + log2(L) + log2(256)

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
    var sum = 0.0;
    for (var c = lane; c < end; c += lanes) {
        sum += exp(weights[base + c]);
    }
    sum = combine_lanes(local, lanes, sum, false);
    // The example's first lane holds its NLL; the others add nothing.
    var nll = 0.0;
    if (end > 0u && lane == 0u) {
        let p = exp(weights[base + targets[i]]) / sum;
        lse[i] = log(sum);
        nll = -log(p);
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

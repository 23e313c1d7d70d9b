// nll_gather: the count model's loss, one workgroup's share of it.
//
//   partials[g] = sum over the examples i of workgroup g with P[ctx_i, tgt_i] > 0 of
//                 -log P[ctx_i, tgt_i]
//   impossible += number of examples with P[ctx_i, tgt_i] = 0
//
// The lecture's `-log(P[ix1, ix2])` summed over the data. An example of probability 0 has
// log likelihood minus infinity; it is counted rather than summed, since WGSL arithmetic does
// not promise infinities, and the host reports the mean as infinite. The sum inside a
// workgroup is a fixed binary tree, so the result is the same on every run; `loss_total`
// adds the partial sums. The examples may be one chunk of a larger set: its workgroups'
// sums go to partials from `first_partial` on.
//
// Loop bound per invocation: log2(256) = 8

struct Params {
    num_examples: u32,
    num_cols: u32,
    first_partial: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> probs: array<f32>;
@group(0) @binding(2) var<storage, read> contexts: array<u32>;
@group(0) @binding(3) var<storage, read> targets: array<u32>;
@group(0) @binding(4) var<storage, read_write> partials: array<f32>;
@group(0) @binding(5) var<storage, read_write> impossible: atomic<u32>;

const THREADS: u32 = 256u;
var<workgroup> scratch: array<f32, THREADS>;

@compute @workgroup_size(256)
fn main(
    @builtin(local_invocation_index) local: u32,
    @builtin(workgroup_id) group_id: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let group = group_id.x + group_id.y * groups.x;
    let num_groups = (params.num_examples + THREADS - 1u) / THREADS;
    if (group >= num_groups) {
        return; // padding of the 2D grid; uniform across the workgroup
    }
    let i = group * THREADS + local;
    var nll = 0.0;
    if (i < params.num_examples) {
        let p = probs[contexts[i] * params.num_cols + targets[i]];
        if (p > 0.0) {
            nll = -log(p);
        } else {
            atomicAdd(&impossible, 1u);
        }
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

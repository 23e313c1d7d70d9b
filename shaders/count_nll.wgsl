// count_nll: the count model's loss from the count table alone, one workgroup's share of it.
//
//   partials[g] = sum over the cells j of workgroup g with N[j] > 0 and P[j] > 0 of
//                 N[j] * -log P[j]
//   impossible += sum of N[j] over the cells with N[j] > 0 and P[j] = 0
//
// The same sum as nll_gather's sum of -log P[ctx_i, tgt_i] over the examples: the N[j]
// examples of cell j all have probability P[j], so their terms are added as one product.
// It needs neither the examples nor a pass over them, only the V^K x V table. A cell of
// probability 0 with examples has log likelihood minus infinity: its examples are counted
// rather than summed, as nll_gather does. The sum inside a workgroup is a fixed binary tree,
// so the result is the same on every run; `loss_total` adds the partial sums and divides by
// the number of examples.
//
// Loop bound per invocation: log2(256) = 8

const THREADS: u32 = 256u;

struct Params { num_cells: u32, _pad0: u32, _pad1: u32, _pad2: u32 }

@group(0) @binding(1) var<storage> probs: array<f32>;
@group(0) @binding(2) var<storage> counts: array<u32>;
@group(0) @binding(3) var<storage, read_write> partials: array<f32>;
@group(0) @binding(4) var<storage, read_write> impossible: atomic<u32>;

@compute @workgroup_size(THREADS)
fn main(id: Invocation) {
    let group = group_index(id);
    if (group >= num_groups(params.num_cells, THREADS)) {
        return; // padding of the 2D grid; uniform across the workgroup
    }
    let j = thread_index(id);
    var nll = 0.0;
    if (j < params.num_cells) {
        let n = counts[j];
        if (n > 0u) {
            nll = nll_of(n, probs[j]);
        }
    }
    let sum = workgroup_sum(id.local, nll);
    if (id.local == 0u) {
        partials[group] = sum;
    }
}

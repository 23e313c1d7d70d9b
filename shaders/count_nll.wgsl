// count_nll: the count model's loss from the count table alone, one workgroup's share of it.
//
//   partials[g] = sum over the cells j of block g with N[j] > 0 and P[j] > 0 of
//                 N[j] * -log P[j]
//   impossible += sum of N[j] over the cells with N[j] > 0 and P[j] = 0
//
// The same sum as nll_gather's sum of -log P[ctx_i, tgt_i] over the examples: the N[j]
// examples of cell j all have probability P[j], so their terms are added as one product.
// It needs neither the examples nor a pass over them, only the V^K x V table. A cell of
// probability 0 with examples has log likelihood minus infinity: its examples are counted
// rather than summed, as nll_gather does. Block g holds the cells BLOCK g onwards (8,192),
// added in a fixed order (sum.wgsl), so the result is the same on every run; `loss_total`
// adds the partial sums and divides by the number of examples.
//
// Loop bound per invocation: sum.wgsl's, 32 + log2(256)

const THREADS: u32 = 256u;

struct Params { num_cells: u32, _pad0: u32, _pad1: u32, _pad2: u32 }

@group(0) @binding(1) var<storage> probs: array<f32>;
@group(0) @binding(2) var<storage> counts: array<u32>;
@group(0) @binding(3) var<storage, read_write> partials: array<f32>;
@group(0) @binding(4) var<storage, read_write> impossible: atomic<u32>;

fn term(j: u32) -> f32 {
    return nll_of(counts[j], probs[j]); // 0 for a cell without examples
}

@compute @workgroup_size(THREADS)
fn main(id: Invocation) {
    store_block_sums(id, params.num_cells, 0u);
}

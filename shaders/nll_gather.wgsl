// nll_gather: the count model's loss, one workgroup's share of it.
//
//   partials[g] = sum over the examples i of block g with P[ctx_i, tgt_i] > 0 of
//                 -log P[ctx_i, tgt_i]
//   impossible += number of examples with P[ctx_i, tgt_i] = 0
//
// The lecture's `-log(P[ix1, ix2])` summed over the data (an example of probability 0 is
// counted rather than summed: see nll.wgsl). Block g holds the examples BLOCK g onwards
// (8,192), added in a fixed order (sum.wgsl), so the result is the same on every run;
// `loss_total` adds the partial sums. The examples may be one span of a larger set: its
// blocks' sums go to partials from `first_partial` on.
//
// Loop bound per invocation: sum.wgsl's, 32 + log2(256)

const THREADS: u32 = 256u;

struct Params { num_examples: u32, num_cols: u32, first_partial: u32, _pad0: u32 }

@group(0) @binding(1) var<storage> probs: array<f32>;
@group(0) @binding(2) var<storage> contexts: array<u32>;
@group(0) @binding(3) var<storage> targets: array<u32>;
@group(0) @binding(4) var<storage, read_write> partials: array<f32>;
@group(0) @binding(5) var<storage, read_write> impossible: atomic<u32>;

fn term(i: u32) -> f32 {
    return nll_of(1u, probs[contexts[i] * params.num_cols + targets[i]]); // 1 * x is x
}

@compute @workgroup_size(THREADS)
fn main(id: Invocation) {
    store_block_sums(id, params.num_examples, params.first_partial);
}

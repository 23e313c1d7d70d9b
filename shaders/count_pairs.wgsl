// count_pairs: the scatter-add of the count model.
//
//   counts[ctx_i * V + tgt_i] += 1        for every example i
//
// The lecture's `N[ix1, ix2] += 1`. Integer atomics commute, so the result does not depend on
// the order in which threads run: the counts are exact and the same on every run.
// One thread per example; `counts` is cleared by the host before the dispatch.
//
// Loop bound per invocation: 0 (no loop)

const THREADS: u32 = 256u;

struct Params { num_examples: u32, num_cols: u32, _pad0: u32, _pad1: u32 }

@group(0) @binding(1) var<storage> contexts: array<u32>;
@group(0) @binding(2) var<storage> targets: array<u32>;
@group(0) @binding(3) var<storage, read_write> counts: array<atomic<u32>>;

@compute @workgroup_size(THREADS)
fn main(id: Invocation) {
    let i = thread_index(id);
    if (i >= params.num_examples) {
        return;
    }
    atomicAdd(&counts[contexts[i] * params.num_cols + targets[i]], 1u);
}

// count_pairs_private: the scatter-add of the count model, through a private histogram in
// workgroup memory.
//
//   counts[ctx_i * V + tgt_i] += 1        for every example i
//
// The same counts as count_pairs.wgsl, for tables of at most MAX_BINS cells (V^K * V; the
// bigram table has 729): each workgroup takes a run of `examples_per_group` examples, adds
// them into its own copy of the table with workgroup atomics (cheap: no other workgroup
// touches it), then adds its non-zero cells into `counts` with one global atomic each.
// Integer atomics commute, so the counts are exact and the same on every run.
// `counts` is cleared by the host before the dispatch.
//
// Loop bound per invocation: MAX_BINS / 256 (16, to clear the histogram)
//   + ceil(examples_per_group / 256) (64 with the host's 16,384) + ceil(num_bins / 256)

const THREADS: u32 = 256u;

struct Params { num_examples: u32, num_cols: u32, num_bins: u32, examples_per_group: u32 }

@group(0) @binding(1) var<storage> contexts: array<u32>;
@group(0) @binding(2) var<storage> targets: array<u32>;
@group(0) @binding(3) var<storage, read_write> counts: array<atomic<u32>>;

// 16 KiB of workgroup memory: the WebGPU baseline's limit.
const MAX_BINS: u32 = 4096u;
var<workgroup> private_counts: array<atomic<u32>, MAX_BINS>;

@compute @workgroup_size(THREADS)
fn main(id: Invocation) {
    let group = group_index(id);
    let start = group * params.examples_per_group;
    if (start >= params.num_examples) {
        return; // padding of the 2D grid; uniform across the workgroup
    }
    // The histogram is cleared here, by every thread in a strided loop (MAX_BINS / THREADS =
    // 16 stores each), rather than left to the zero-initialization that WGSL promises for
    // workgroup memory: on GL, naga writes that as one constructor of 4,096 zeros run by a
    // single thread, which Mesa's llvmpipe takes over a minute and 650 MB to compile. So the
    // pipeline may turn that initialization off, and the counts stay exact either way.
    for (var b = id.local; b < MAX_BINS; b += THREADS) {
        atomicStore(&private_counts[b], 0u);
    }
    workgroupBarrier();
    let end = min(start + params.examples_per_group, params.num_examples);
    for (var i = start + id.local; i < end; i += THREADS) {
        atomicAdd(&private_counts[contexts[i] * params.num_cols + targets[i]], 1u);
    }
    workgroupBarrier();
    for (var b = id.local; b < params.num_bins; b += THREADS) {
        let n = atomicLoad(&private_counts[b]);
        if (n > 0u) {
            atomicAdd(&counts[b], n);
        }
    }
}

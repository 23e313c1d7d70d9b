// count_pairs: the scatter-add of the count model.
//
//   counts[ctx_i * V + tgt_i] += 1        for every example i
//
// The lecture's `N[ix1, ix2] += 1`. Each workgroup takes a run of BLOCK examples; each thread
// loads QUADS vec4s of contexts and of targets (4 examples a load), strided by THREADS.
// `contexts4`/`targets4` view the same buffers as `contexts`/`targets`, which only the last
// n % 4 examples are read through (workgroup 0). With PRIVATE (`count_pairs_private`, a table
// of at most MAX_BINS cells; the bigram table has 729) the examples count into the
// workgroup's own copy of the table with workgroup atomics (cheap: no other workgroup touches
// it), then its non-zero cells into `counts` with one global atomic each; else (`count_pairs`)
// one global atomic per example. Integer atomics commute, so the counts are exact and the same
// on every run. `counts` is cleared by the host before the dispatch.
//
// Loop bound per invocation: QUADS (8), and with PRIVATE MAX_BINS / 256 (16, to clear the
// histogram) + ceil(num_bins / 256)

const THREADS: u32 = 256u;
const QUADS: u32 = 8u;
const BLOCK: u32 = 4u * QUADS * THREADS;

struct Params { num_examples: u32, num_cols: u32, num_bins: u32, _pad0: u32 }

// Set by the host's pipeline: whether the table fits the workgroup histogram (a constant, so
// that no example's atomic branches on it).
override PRIVATE: bool;

@group(0) @binding(1) var<storage> contexts: array<u32>;
@group(0) @binding(2) var<storage> targets: array<u32>;
@group(0) @binding(3) var<storage, read_write> counts: array<atomic<u32>>;
@group(0) @binding(4) var<storage> contexts4: array<vec4<u32>>;
@group(0) @binding(5) var<storage> targets4: array<vec4<u32>>;

// 16 KiB of workgroup memory: the WebGPU baseline's limit.
const MAX_BINS: u32 = 4096u;
var<workgroup> private_counts: array<atomic<u32>, MAX_BINS>;

fn add(cell: u32) {
    if (PRIVATE) {
        atomicAdd(&private_counts[cell], 1u);
    } else {
        atomicAdd(&counts[cell], 1u);
    }
}

@compute @workgroup_size(THREADS)
fn main(id: Invocation) {
    let group = group_index(id);
    let n = params.num_examples;
    if (group >= num_groups(n, BLOCK)) {
        return; // padding of the 2D grid; uniform across the workgroup
    }
    // The histogram is cleared here, by every thread in a strided loop (MAX_BINS / THREADS =
    // 16 stores each), rather than left to the zero-initialization that WGSL promises for
    // workgroup memory: on GL, naga writes that as one constructor of 4,096 zeros run by a
    // single thread, which Mesa's llvmpipe takes over a minute and 650 MB to compile. So the
    // pipeline may turn that initialization off, and the counts stay exact either way.
    if (PRIVATE) {
        for (var b = id.local; b < MAX_BINS; b += THREADS) {
            atomicStore(&private_counts[b], 0u);
        }
    }
    workgroupBarrier();
    let cols = params.num_cols;
    let first = group * (BLOCK / 4u) + id.local;
    for (var q = first; q < min(n / 4u, first + BLOCK / 4u); q += THREADS) {
        let cells = contexts4[q] * cols + targets4[q];
        add(cells.x);
        add(cells.y);
        add(cells.z);
        add(cells.w);
    }
    let tail = n / 4u * 4u + id.local;
    if (group == 0u && tail < n) {
        add(contexts[tail] * cols + targets[tail]);
    }
    workgroupBarrier();
    if (PRIVATE) {
        for (var b = id.local; b < params.num_bins; b += THREADS) {
            let count = atomicLoad(&private_counts[b]);
            if (count > 0u) {
                atomicAdd(&counts[b], count);
            }
        }
    }
}

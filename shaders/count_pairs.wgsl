// count_pairs: the scatter-add of the count model.
//
//   counts[ctx_i * V + tgt_i] += 1        for every example i
//
// The lecture's `N[ix1, ix2] += 1`, through common/histogram.wgsl: into a workgroup histogram
// with PRIVATE (`count_pairs_private`, tables of at most 4,096 cells; the bigram table has
// 729), else one global atomic per example (`count_pairs`). Each workgroup takes a run of
// BLOCK examples; each thread loads QUADS vec4s of contexts and of targets (4 examples a
// load), strided by THREADS. `contexts4`/`targets4` view the same buffers as
// `contexts`/`targets`, which only the last n % 4 examples are read through (workgroup 0).
//
// Loop bound per invocation: QUADS (8), plus the histogram's with PRIVATE

const THREADS: u32 = 256u;
const QUADS: u32 = 8u;
const BLOCK: u32 = 4u * QUADS * THREADS;

struct Params { num_examples: u32, num_cols: u32, num_bins: u32, _pad0: u32 }

override PRIVATE: bool;

@group(0) @binding(1) var<storage> contexts: array<u32>;
@group(0) @binding(2) var<storage> targets: array<u32>;
@group(0) @binding(3) var<storage, read_write> counts: array<atomic<u32>>;
@group(0) @binding(4) var<storage> contexts4: array<vec4<u32>>;
@group(0) @binding(5) var<storage> targets4: array<vec4<u32>>;

@compute @workgroup_size(THREADS)
fn main(id: Invocation) {
    let group = group_index(id);
    let n = params.num_examples;
    if (group >= num_groups(n, BLOCK)) {
        return; // padding of the 2D grid; uniform across the workgroup
    }
    clear_histogram(id.local);
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
    flush_histogram(id.local, params.num_bins);
}

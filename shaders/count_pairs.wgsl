// count_pairs: the scatter-add of the count model.
//
//   counts[ctx_i * V + tgt_i] += 1        for every example i
//
// The lecture's `N[ix1, ix2] += 1`, for tables larger than count_pairs_private's workgroup
// histogram: one global atomic per example. Each thread loads QUADS vec4s of contexts and of
// targets (4 examples a load), strided by THREADS. `contexts4`/`targets4` view the same
// buffers as `contexts`/`targets`, which only the last n % 4 examples are read through
// (workgroup 0). Integer atomics commute, so the counts are exact and the same on every run.
// `counts` is cleared by the host before the dispatch.
//
// Loop bound per invocation: QUADS (8)

const THREADS: u32 = 256u;
const QUADS: u32 = 8u;
const BLOCK: u32 = 4u * QUADS * THREADS;

struct Params { num_examples: u32, num_cols: u32, num_bins: u32, _pad0: u32 }

@group(0) @binding(1) var<storage> contexts: array<u32>;
@group(0) @binding(2) var<storage> targets: array<u32>;
@group(0) @binding(3) var<storage, read_write> counts: array<atomic<u32>>;
@group(0) @binding(4) var<storage> contexts4: array<vec4<u32>>;
@group(0) @binding(5) var<storage> targets4: array<vec4<u32>>;

@compute @workgroup_size(THREADS)
fn main(id: Invocation) {
    let group = group_index(id);
    let n = params.num_examples;
    let cols = params.num_cols;
    let first = group * (BLOCK / 4u) + id.local;
    for (var q = first; q < min(n / 4u, first + BLOCK / 4u); q += THREADS) {
        let cells = contexts4[q] * cols + targets4[q];
        atomicAdd(&counts[cells.x], 1u);
        atomicAdd(&counts[cells.y], 1u);
        atomicAdd(&counts[cells.z], 1u);
        atomicAdd(&counts[cells.w], 1u);
    }
    let tail = n / 4u * 4u + id.local;
    if (group == 0u && tail < n) {
        atomicAdd(&counts[contexts[tail] * cols + targets[tail]], 1u);
    }
}

// histogram: the count kernels' scatter-add (count_pairs, count_text); appended by
// src/gpu/kernels.rs. The kernel declares `counts` (the table, cleared by the host) and the
// override PRIVATE, which the host sets where the table fits MAX_BINS cells: then each
// workgroup adds into its own copy of the table with workgroup atomics (cheap: no other
// workgroup touches it) and at the end adds its non-zero cells into `counts`, one global
// atomic each; else every add is a global atomic. A constant, so that no add branches on it.
// Integer atomics commute: the counts are exact and the same on every run.
//
// Loop bound per invocation: MAX_BINS / THREADS + ceil(num_bins / THREADS)

// 16 KiB of workgroup memory: the WebGPU baseline's limit.
const MAX_BINS: u32 = 4096u;
var<workgroup> private_counts: array<atomic<u32>, MAX_BINS>;

// Every thread clears MAX_BINS / THREADS cells rather than leaving it to the zero-initialization
// that WGSL promises for workgroup memory: on GL, naga writes that as one constructor of 4,096
// zeros run by a single thread, which Mesa's llvmpipe takes over a minute and 650 MB to
// compile. So the pipeline turns that initialization off, and the counts stay exact.
fn clear_histogram(local: u32) {
    if (PRIVATE) {
        for (var b = local; b < MAX_BINS; b += THREADS) {
            atomicStore(&private_counts[b], 0u);
        }
    }
    workgroupBarrier();
}

fn add(cell: u32) {
    if (PRIVATE) {
        atomicAdd(&private_counts[cell], 1u);
    } else {
        atomicAdd(&counts[cell], 1u);
    }
}

// The workgroup's cells into the table, after its last add.
fn flush_histogram(local: u32, num_bins: u32) {
    workgroupBarrier();
    if (PRIVATE) {
        for (var b = local; b < num_bins; b += THREADS) {
            let count = atomicLoad(&private_counts[b]);
            if (count > 0u) {
                atomicAdd(&counts[b], count);
            }
        }
    }
}

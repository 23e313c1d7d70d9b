// sum: the coarsened, fixed-order sum of every kernel that adds up many values (nll_gather,
// count_nll, partial_sums, loss_total); appended, with reduce, by src/gpu/kernels.rs. The
// kernel defines `term(i)`, the i-th value.
//
//   block_sum(first, end) = sum of term(i) over first <= i < end        (end - first <= BLOCK)
//
// Thread t adds term(first + t + THREADS j), j = 0, 1, ... while below `end` (at most
// PER_THREAD values), in order, then one tree over the threads (reduce's workgroup_sum): never
// one value per thread, whose tree costs 20 times as much a value on a CPU adapter (bench
// --ceilings: sum_tree vs sum_coarse). 32 values a thread leave twice the workgroups of 64 to
// a large GPU. The loop ends at `end` rather than after PER_THREAD rounds of a test: that form
// made loss_total's two sums 50 times slower on lavapipe. The order is fixed, so the sum is
// the same on every run. Every thread of the workgroup calls it.
//
// Loop bound per invocation: PER_THREAD + log2(THREADS) = 32 + 8 (kernels.rs `SUM_BOUND`)

const PER_THREAD: u32 = 32u;
const BLOCK: u32 = THREADS * PER_THREAD;

fn block_sum(local: u32, first: u32, end: u32) -> f32 {
    var sum = 0.0;
    for (var i = first + local; i < end; i += THREADS) {
        sum += term(i);
    }
    return workgroup_sum(local, sum);
}

// The sum of workgroup g's block of the `len` values: term(i) for BLOCK g <= i < BLOCK (g + 1).
fn group_sum(id: Invocation, len: u32) -> f32 {
    let first = group_index(id) * BLOCK;
    return block_sum(id.local, first, min(first + BLOCK, len));
}

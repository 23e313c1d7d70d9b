// nll: the negative log likelihood of the count model's examples (nll_gather, count_nll), each
// kernel's `term(i)` summed per block (sum.wgsl); appended by src/gpu/kernels.rs.
//
//   term = n * -log p, or 0 with n added to `impossible` where p = 0    (n examples of prob. p)
//
// An example of probability 0 has log likelihood minus infinity; it is counted rather than
// summed, since WGSL arithmetic does not promise infinities, and the host reports the mean
// as infinite.
//
// Loop bound per invocation: sum.wgsl's, 32 + log2(256)

// The examples of probability 0 this thread has met: one atomic add a thread, after its sum.
var<private> impossible_here: u32;

fn nll_of(n: u32, p: f32) -> f32 {
    let possible = p > 0.0;
    impossible_here += select(n, 0u, possible);
    return select(0.0, f32(n) * -log(p), possible); // -log(0) never reaches the sum
}

// partials[first + g] = the sum of term(i) over block g of the `len` terms.
fn store_block_sums(id: Invocation, len: u32, first: u32) {
    let group = group_index(id);
    if (group >= num_groups(len, BLOCK)) {
        return; // padding of the 2D grid; uniform across the workgroup
    }
    let sum = group_sum(id, len);
    if (impossible_here > 0u) {
        atomicAdd(&impossible, impossible_here);
    }
    if (id.local == 0u) {
        partials[first + group] = sum;
    }
}

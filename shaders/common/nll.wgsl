// nll: the negative log likelihood of n examples of probability p, for the count model's
// losses (nll_gather, count_nll); appended by src/gpu/kernels.rs.
//
//   n * -log p, or 0 with n added to `impossible` where p = 0
//
// An example of probability 0 has log likelihood minus infinity; it is counted rather than
// summed, since WGSL arithmetic does not promise infinities, and the host reports the mean
// as infinite.
//
// Loop bound per invocation: 0 (no loop)

fn nll_of(n: u32, p: f32) -> f32 {
    if (p > 0.0) {
        return f32(n) * -log(p);
    }
    atomicAdd(&impossible, n);
    return 0.0;
}

// softmax: the two reductions of a softmax over a row of W (`weights`), as L lanes share it;
// appended, with reduce, to the kernels that take one (src/gpu/kernels.rs).
//
//   m   = max_c W[r, c]                   (LOWEST for a thread with no columns)
//   sum = sum_c exp(W[r, c] - m)          (the softmax's denominator)
//
// Loop bound per invocation: ceil(C / L) + log2(L) each

// The most negative finite f32: the maximum of no values.
const LOWEST: f32 = -3.40282347e38;

fn row_max(at: Lane, base: u32) -> f32 {
    var m = LOWEST;
    for (var c = at.lane; c < at.end; c += at.lanes) {
        m = max(m, weights[base + c]);
    }
    return combine_lanes(at.local, at.lanes, m, true);
}

fn row_sum_exp(at: Lane, base: u32, m: f32) -> f32 {
    var sum = 0.0;
    for (var c = at.lane; c < at.end; c += at.lanes) {
        sum += exp(weights[base + c] - m);
    }
    return combine_lanes(at.local, at.lanes, sum, false);
}

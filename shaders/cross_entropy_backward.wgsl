// cross_entropy_backward: the gradient of sum_i nll_i, summed per segment of examples.
//
//   d nll_i / d logits_i[c] = softmax(logits_i)[c] - [c = tgt_i] = exp(W[r, c] - lse_i) - [c = tgt_i]
//
// and since logits_i is the row r = ctx_i of W, it lands on W[r, c]. The host sorted the
// examples by context and cut each context's run into segments of at most a fixed length;
// segment s covers examples segment_starts[s] .. segment_starts[s + 1], all of context
// segment_rows[s]. One thread per (segment, column) computes
//
//   segment_grads[s, c] = sum_i exp(W[r, c] - lse_i) - #{i : tgt_i = c}
//
// in the examples' order (floats never race, so the result is the same on every run). The
// examples may be one span of a larger set: segments and example offsets count from the
// span's start, and the span's sums land from segment `first_segment` on. The
// one-hot part is counted as an integer and subtracted once, which avoids the cancellation of
// adding -1 and small probabilities term by term. grad_rows adds up a row's segments.
//
// Loop bound per invocation: the longest segment (the host's segment length)

const THREADS: u32 = 64u;

struct Params { num_segments: u32, num_cols: u32, first_segment: u32, _pad0: u32 }

@group(0) @binding(1) var<storage> weights: array<f32>;
@group(0) @binding(2) var<storage> targets: array<u32>;
@group(0) @binding(3) var<storage> lse: array<f32>;
@group(0) @binding(4) var<storage> segment_starts: array<u32>;
@group(0) @binding(5) var<storage> segment_rows: array<u32>;
@group(0) @binding(6) var<storage, read_write> segment_grads: array<f32>;

@compute @workgroup_size(THREADS)
fn main(id: Invocation) {
    let cols = params.num_cols;
    let at = cell_of(id, cols);
    if (at.index >= params.num_segments * cols) {
        return;
    }
    let segment = at.row;
    let c = at.col;
    let w = weights[segment_rows[segment] * cols + c];
    var probability_sum = 0.0;
    var target_count = 0u;
    for (var i = segment_starts[segment]; i < segment_starts[segment + 1u]; i++) {
        probability_sum += exp(w - lse[i]);
        target_count += select(0u, 1u, targets[i] == c);
    }
    segment_grads[(params.first_segment + segment) * cols + c] = probability_sum - f32(target_count);
}

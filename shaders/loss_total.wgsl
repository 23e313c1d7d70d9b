// loss_total: the sums of a loss kernel turned into the mean loss, plus the L2 penalty.
//
//   data  = (1/n) sum_g nll_sums[g]
//   total = data + reg * (1/|W|) sum_g square_sums[g]        (square_sums add up W[k]^2)
//   history[2 * step] = total; history[2 * step + 1] = data; step += 1
//
// The lecture's `loss = -probs[...].log().mean() + 0.01 * (W**2).mean()`. One workgroup adds
// each list in a fixed order (sum.wgsl: the two lists as one range of terms, the nll sums
// first), so the result is the same on every run. The host first shrinks both lists to at
// most 8,192 sums with partial_sums. Each call appends to `history`, so many training steps
// can be recorded in one submission and read back once. The count model calls it with no
// weights.
//
// Loop bound per invocation: 2 * (32 + log2(256)), sum.wgsl's twice

const THREADS: u32 = 256u;

struct Params {
    num_nll_sums: u32, num_square_sums: u32, num_examples: u32, num_weights: u32,
    reg: f32, _pad0: u32, _pad1: u32, _pad2: u32,
}

struct Cursor { step: u32 }

@group(0) @binding(1) var<storage> nll_sums: array<f32>;
@group(0) @binding(2) var<storage> square_sums: array<f32>;
@group(0) @binding(3) var<storage, read_write> history: array<f32>;
@group(0) @binding(4) var<storage, read_write> cursor: Cursor;

// The nll sums, then the square sums.
fn term(i: u32) -> f32 {
    if (i < params.num_nll_sums) {
        return nll_sums[i];
    }
    return square_sums[i - params.num_nll_sums];
}

@compute @workgroup_size(THREADS)
fn main(id: Invocation) {
    let nll = params.num_nll_sums;
    let data = block_sum(id.local, 0u, nll) / f32(params.num_examples);
    var penalty = 0.0;
    if (params.num_weights > 0u) {
        let squares = block_sum(id.local, nll, nll + params.num_square_sums);
        penalty = params.reg * squares / f32(params.num_weights);
    }
    if (id.local == 0u) {
        let step = cursor.step;
        history[2u * step] = data + penalty;
        history[2u * step + 1u] = data;
        cursor.step = step + 1u;
    }
}

// loss_total: the sums of a loss kernel turned into the mean loss, plus the L2 penalty.
//
//   data  = (1/n) sum_g nll_sums[g]
//   total = data + reg * (1/|W|) sum_g square_sums[g]        (square_sums add up W[k]^2)
//   history[2 * step] = total; history[2 * step + 1] = data; step += 1
//
// The lecture's `loss = -probs[...].log().mean() + 0.01 * (W**2).mean()`. One workgroup:
// thread t adds the sums t + 256 j in order, then a fixed binary tree over the threads, so
// the result is the same on every run. The host first shrinks both lists to at most 4,096
// sums with partial_sums. Each call appends to `history`, so many training steps can be
// recorded in one submission and read back once. The count model calls it with no weights.
//
// Loop bound per invocation: 2 * 16 + 2 * log2(256) = 48

const THREADS: u32 = 256u;
// The most sums of each kind one call takes: 256 threads x 16.
const PER_THREAD: u32 = 16u;

struct Params {
    num_nll_sums: u32, num_square_sums: u32, num_examples: u32, num_weights: u32,
    reg: f32, _pad0: u32, _pad1: u32, _pad2: u32,
}

struct Cursor { step: u32 }

@group(0) @binding(1) var<storage> nll_sums: array<f32>;
@group(0) @binding(2) var<storage> square_sums: array<f32>;
@group(0) @binding(3) var<storage, read_write> history: array<f32>;
@group(0) @binding(4) var<storage, read_write> cursor: Cursor;

@compute @workgroup_size(THREADS)
fn main(id: Invocation) {
    var nll = 0.0;
    var squares = 0.0;
    for (var j = 0u; j < PER_THREAD; j++) {
        let i = j * THREADS + id.local;
        if (i < params.num_nll_sums) {
            nll += nll_sums[i];
        }
        if (i < params.num_square_sums) {
            squares += square_sums[i];
        }
    }
    let data = workgroup_sum(id.local, nll) / f32(params.num_examples);
    var penalty = 0.0;
    if (params.num_weights > 0u) {
        penalty = params.reg * workgroup_sum(id.local, squares) / f32(params.num_weights);
    }
    if (id.local == 0u) {
        let step = cursor.step;
        history[2u * step] = data + penalty;
        history[2u * step + 1u] = data;
        cursor.step = step + 1u;
    }
}

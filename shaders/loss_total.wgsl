// loss_total: the partial sums of a loss kernel reduced to the mean, plus the L2 penalty.
//
//   data  = (1/n) sum_g partials[g]
//   total = data + reg * (1/|W|) sum_k W[k]^2
//   history[2 * step] = total; history[2 * step + 1] = data; step += 1
//
// The lecture's `loss = -probs[...].log().mean() + 0.01 * (W**2).mean()`. One workgroup: each
// thread adds a strided slice in order, then a fixed binary tree over the threads, so the
// result is the same on every run. Each call appends to `history`, so many training steps can
// be recorded in one submission and read back once. The count model calls it with no weights.

struct Params {
    num_partials: u32,
    num_examples: u32,
    num_weights: u32,
    reg: f32,
}

struct Cursor {
    step: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> partials: array<f32>;
@group(0) @binding(2) var<storage, read> weights: array<f32>;
@group(0) @binding(3) var<storage, read_write> history: array<f32>;
@group(0) @binding(4) var<storage, read_write> cursor: Cursor;

const THREADS: u32 = 256u;
var<workgroup> scratch: array<f32, THREADS>;

// Sum of the threads' values in `scratch`, by a fixed tree; every thread gets the result.
fn tree_sum(local: u32, value: f32) -> f32 {
    scratch[local] = value;
    workgroupBarrier();
    for (var stride = THREADS / 2u; stride > 0u; stride /= 2u) {
        if (local < stride) {
            scratch[local] += scratch[local + stride];
        }
        workgroupBarrier();
    }
    let sum = scratch[0];
    workgroupBarrier();
    return sum;
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) local: u32) {
    var nll = 0.0;
    for (var g = local; g < params.num_partials; g += THREADS) {
        nll += partials[g];
    }
    var squares = 0.0;
    for (var k = local; k < params.num_weights; k += THREADS) {
        squares += weights[k] * weights[k];
    }
    let data = tree_sum(local, nll) / f32(params.num_examples);
    var penalty = 0.0;
    if (params.num_weights > 0u) {
        penalty = params.reg * tree_sum(local, squares) / f32(params.num_weights);
    }
    if (local == 0u) {
        let step = cursor.step;
        history[2u * step] = data + penalty;
        history[2u * step + 1u] = data;
        cursor.step = step + 1u;
    }
}

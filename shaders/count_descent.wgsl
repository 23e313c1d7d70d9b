// count_descent: full-batch gradient descent on the neural model, from the count matrix alone.
//
// The examples enter the mean NLL only through N[x, y], how often y follows context x, and
// the row totals c_x = sum_y N[x, y]:
//
//   lse_x     = log sum_y exp(W[x, y])                     (stably: m + log sum exp(W - m))
//   softmax(W[x])[y] = exp(W[x, y] - m) / sum_y' exp(W[x, y'] - m)
//   data      = (1/n) sum_x sum_y N[x, y] * (lse_x - W[x, y])
//             = (1/n) sum_x (c_x * lse_x - sum_y N[x, y] * W[x, y])
//   total     = data + reg * (1/|W|) sum_k W[k]^2
//   grad[x,y] = (c_x * softmax(W[x])[y] - N[x, y]) / n + 2 * reg * W[x, y] / |W|
//   W[x, y]  -= lr * grad[x, y]
//
// the same loss and gradient as cross_entropy_forward/backward + grad_rows + loss_total on
// the n examples, in O(V^K * V) work per step instead of O(n * V). Each step appends
// (total, data), measured before its update, to `history` at `first_step + s`.
//
// One workgroup runs `steps` steps in a loop. Thread t owns rows t, t + 32, ...: it reads,
// differentiates and updates only those, so the steps need no barrier on storage; the loss is
// a fixed-order sum per thread and then a sum over the threads in order, the same on every
// run. With lr = 0 and one step, `grads` and `history` are the loss and gradient at W.

struct Params {
    num_rows: u32,
    num_cols: u32,
    num_examples: u32,
    reg: f32,
    lr: f32,
    steps: u32,
    first_step: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> counts: array<u32>;
@group(0) @binding(2) var<storage, read_write> weights: array<f32>;
@group(0) @binding(3) var<storage, read_write> grads: array<f32>;
@group(0) @binding(4) var<storage, read_write> history: array<f32>;

const THREADS: u32 = 32u;
// Each thread's (nll, squares) of a step, in the half of `scratch` that the step's parity
// picks: thread 0 adds up one half while the others already fill the other half for the
// next step, so a step needs one barrier.
var<workgroup> scratch: array<vec2<f32>, 2 * THREADS>;

@compute @workgroup_size(32)
fn main(@builtin(local_invocation_index) local: u32) {
    let cols = params.num_cols;
    let num_weights = params.num_rows * cols;
    let n = f32(params.num_examples);
    let penalty_scale = 2.0 * params.reg / f32(num_weights);
    for (var step = 0u; step < params.steps; step++) {
        var nll = 0.0;
        var squares = 0.0;
        for (var row = local; row < params.num_rows; row += THREADS) {
            let base = row * cols;
            var total = 0u;
            var m = weights[base];
            for (var c = 0u; c < cols; c++) {
                total += counts[base + c];
                m = max(m, weights[base + c]);
            }
            // exp(W - m) is parked in `grads` so that each is computed once per step.
            var sum = 0.0;
            for (var c = 0u; c < cols; c++) {
                let e = exp(weights[base + c] - m);
                grads[base + c] = e;
                sum += e;
            }
            let lse = m + log(sum);
            let row_total = f32(total);
            for (var c = 0u; c < cols; c++) {
                let w = weights[base + c];
                let count = f32(counts[base + c]);
                nll += count * (lse - w);
                squares += w * w;
                let softmax = grads[base + c] / sum;
                let g = (row_total * softmax - count) / n + penalty_scale * w;
                grads[base + c] = g;
                weights[base + c] = w - params.lr * g;
            }
        }
        let half = (step % 2u) * THREADS;
        scratch[half + local] = vec2<f32>(nll, squares);
        workgroupBarrier();
        if (local == 0u) {
            // In thread order: the same sum on every run.
            var sums = vec2<f32>(0.0, 0.0);
            for (var t = 0u; t < THREADS; t++) {
                sums += scratch[half + t];
            }
            let data = sums.x / n;
            let penalty = params.reg * sums.y / f32(num_weights);
            let at = 2u * (params.first_step + step);
            history[at] = data + penalty;
            history[at + 1u] = data;
        }
    }
}

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
// the n examples, in O(V^K * V) work per step instead of O(n * V).
//
// Parallel over rows. L = lanes_per_row threads share each row (a power of two: 1 for short
// rows, up to 64 for long ones); lane l handles columns l, l + L, l + 2L, ... and a tree in
// workgroup memory combines the lanes' maxima, count totals and sums of exponentials. A
// workgroup of 64 threads holds 64 / L rows at a time, for rows_per_thread rounds. Each row
// is read and written by its own threads alone, so W is updated in place with no barrier on
// storage. The sums of N * (lse - W) and of W^2 (before the update) are added in a fixed
// order over the threads, so the same run gives the same bits. With lr = 0 and one step, `grads`
// is the gradient at W.
//
// Two ways to finish a step:
// - many workgroups (writes_history = 0): workgroup g writes its sums to nll_sums[g] and
//   square_sums[g], and partial_sums and loss_total append the step's loss; one step per
//   dispatch.
// - one workgroup holding the whole table (writes_history = 1): it appends the loss itself
//   to history[2 (first_step + s)] and runs `steps` steps in one dispatch, which spares a
//   small table the cost of two dispatches per step.
//
// Loop bound per invocation (the host keeps it within its loop budget: Mesa's llvmpipe and
// lavapipe silently end every loop of an invocation after 65,535 iterations in total):
//   steps * (rows_per_thread * (3 * ceil(C / L) + 2 * log2(L) + 1) + 64 + 1)

const THREADS: u32 = 64u;

struct Params {
    num_rows: u32, num_cols: u32, num_examples: u32, lanes_per_row: u32,
    rows_per_thread: u32, steps: u32, first_step: u32, writes_history: u32,
    reg: f32, lr: f32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(1) var<storage> counts: array<u32>;
@group(0) @binding(2) var<storage, read_write> weights: array<f32>;
@group(0) @binding(3) var<storage, read_write> grads: array<f32>;
@group(0) @binding(4) var<storage, read_write> nll_sums: array<f32>;
@group(0) @binding(5) var<storage, read_write> square_sums: array<f32>;
@group(0) @binding(6) var<storage, read_write> history: array<f32>;

var<workgroup> lane_max: array<f32, THREADS>;
var<workgroup> lane_total: array<u32, THREADS>;
var<workgroup> thread_sums: array<vec2<f32>, 2 * THREADS>;

@compute @workgroup_size(THREADS)
fn main(id: Invocation) {
    let lanes = params.lanes_per_row;
    let cols = params.num_cols;
    let group = group_index(id);
    if (group >= num_groups(params.num_rows, THREADS / lanes * params.rows_per_thread)) {
        return; // padding of the 2D grid; uniform across the workgroup
    }
    let local = id.local;
    let n = f32(params.num_examples);
    let penalty_scale = 2.0 * params.reg / f32(params.num_rows * cols);

    for (var step = 0u; step < params.steps; step++) {
        var nll = 0.0;
        var squares = 0.0;
        for (var round = 0u; round < params.rows_per_thread; round++) {
            let block = group * params.rows_per_thread + round;
            let at = lane_of(local, lanes, block, params.num_rows, cols);
            let base = at.row * cols;

            // The row's maximum and count total, combined over the lanes in one tree.
            var m = LOWEST;
            var total = 0u;
            for (var c = at.lane; c < at.end; c += lanes) {
                m = max(m, weights[base + c]);
                total += counts[base + c];
            }
            if (lanes > 1u) {
                lane_max[local] = m;
                lane_total[local] = total;
                workgroupBarrier();
                for (var stride = lanes / 2u; stride > 0u; stride /= 2u) {
                    if (at.lane < stride) {
                        lane_max[local] = max(lane_max[local], lane_max[local + stride]);
                        lane_total[local] += lane_total[local + stride];
                    }
                    workgroupBarrier();
                }
                m = lane_max[local - at.lane];
                total = lane_total[local - at.lane];
            }
            let row_total = f32(total);
            let sum = row_sum_exp(at, base, m);
            let lse = m + log(sum);

            // The loss terms, the gradient and the update (exp again rather than a store and
            // a load of each exponential).
            for (var c = at.lane; c < at.end; c += lanes) {
                let w = weights[base + c];
                let count = f32(counts[base + c]);
                nll += count * (lse - w);
                squares += w * w;
                let softmax = exp(w - m) / sum;
                let g = (row_total * softmax - count) / n + penalty_scale * w;
                grads[base + c] = g;
                weights[base + c] = w - params.lr * g;
            }
        }

        // The workgroup's sums, added by thread 0 in thread order. Each step uses the half of
        // `thread_sums` its parity picks, so thread 0 can still be adding up one step while the
        // others fill the other half: one barrier per step.
        let half = (step % 2u) * THREADS;
        thread_sums[half + local] = vec2<f32>(nll, squares);
        workgroupBarrier();
        if (local == 0u) {
            var sums = vec2<f32>(0.0, 0.0);
            for (var t = 0u; t < THREADS; t++) {
                sums += thread_sums[half + t];
            }
            if (params.writes_history != 0u) {
                let data = sums.x / n;
                let penalty = params.reg * sums.y / f32(params.num_rows * cols);
                let entry = 2u * (params.first_step + step);
                history[entry] = data + penalty;
                history[entry + 1u] = data;
            } else {
                nll_sums[group] = sums.x;
                square_sums[group] = sums.y;
            }
        }
    }
}

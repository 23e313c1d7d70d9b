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
// Two forms of one kernel, chosen when the pipeline is made (`wide`):
// - rows of at most KEPT columns (the lecture's 27; the host takes the other form where these
//   loops would be over its loop budget): one row per thread, for rows_per_thread rounds of 64
//   rows. The row's weights, counts and exponentials stay in private arrays, and
//   every loop over them runs the arrays' constant length, so that a compiler can unroll it
//   and hold them in registers: each weight and count is read once, each exp taken once, and
//   a step has no barrier.
// - other rows (`count_descent_wide`): L = lanes_per_row threads share each row (a power of
//   two: 1 up to 256 columns, up to 64 for longer ones); lane l handles columns l, l + L, ...
//   A row of any width fits no private array of a fixed size, so each lane reads its weights
//   three times (maximum, sum of exponentials, update) and takes each exp twice; with L > 1 a
//   tree in workgroup memory combines the lanes' maxima, count totals and sums of
//   exponentials. A workgroup holds 64 / L rows at a time.
// Each row is read and written by its own threads alone, so W is updated in place with no
// barrier on storage, and the steps of a dispatch follow each other without one. `grads` is
// written at the dispatch's last step only, where writes_grads is set (the host sets it for
// a run's last step); with lr = 0 and one step it is the gradient at W.
//
// Each thread writes its sums of N * (lse - W) and of W^2 (before the update) for each step to
// step_sums; after the last step, one barrier, and thread t adds up the workgroup's sums of
// steps t, t + 64, ... in thread order, so the same run gives the same bits. Two ways to finish:
// - many workgroups (writes_history = 0, one step per dispatch): workgroup g writes its sums
//   to nll_sums[g] and square_sums[g], and partial_sums and loss_total append the step's loss;
// - one workgroup holding the whole table (writes_history = 1): it appends each step's loss
//   itself to history[2 (first_step + s)] and runs `steps` steps in one dispatch, which spares
//   a small table the cost of two dispatches per step.
//
// Loop bound per invocation (the host keeps it within its loop budget: Mesa's llvmpipe and
// lavapipe silently end every loop of an invocation after 65,535 iterations in total), with
// R = 3 * KEPT + 1 per row of at most KEPT columns, else R = 3 * ceil(C / L) + 2 * log2(L) + 1:
//   steps * (rows_per_thread * R + 1) + ceil(steps / 64) * 65

const THREADS: u32 = 64u;
// The most columns of a row kept in private arrays (the lecture's 27 fit).
const KEPT: u32 = 32u;
// Rows wider than KEPT: lanes share them, and read each weight again.
override wide: bool = false;

struct Params {
    num_rows: u32, num_cols: u32, num_examples: u32, lanes_per_row: u32,
    rows_per_thread: u32, steps: u32, first_step: u32, writes_history: u32,
    reg: f32, lr: f32, writes_grads: u32, _pad0: u32,
}

@group(0) @binding(1) var<storage> counts: array<u32>;
@group(0) @binding(2) var<storage, read_write> weights: array<f32>;
@group(0) @binding(3) var<storage, read_write> grads: array<f32>;
@group(0) @binding(4) var<storage, read_write> nll_sums: array<f32>;
@group(0) @binding(5) var<storage, read_write> square_sums: array<f32>;
@group(0) @binding(6) var<storage, read_write> history: array<f32>;
@group(0) @binding(7) var<storage, read_write> step_sums: array<vec2<f32>>;

var<workgroup> lane_max: array<f32, THREADS>;
var<workgroup> lane_total: array<u32, THREADS>;

var<private> kept_weights: array<f32, KEPT>;
var<private> kept_counts: array<u32, KEPT>;
var<private> kept_exps: array<f32, KEPT>;
// This thread's sums of N * (lse - W) and of W^2 over its rows, column after column.
var<private> sums: vec2<f32>;

@compute @workgroup_size(THREADS)
fn main(id: Invocation) {
    let lanes = params.lanes_per_row;
    let group = group_index(id);
    if (group >= num_groups(params.num_rows, THREADS / lanes * params.rows_per_thread)) {
        return; // padding of the 2D grid; uniform across the workgroup
    }
    let local = id.local;
    // Held rows: the rounds in which this thread has a row, so that a thread past the last
    // row skips them at once (no barrier to take part in).
    let first_row = group * params.rows_per_thread * THREADS + local;
    let rows_left = select(0u, params.num_rows - first_row, first_row < params.num_rows);
    let rounds = min(num_groups(rows_left, THREADS), params.rows_per_thread);
    for (var step = 0u; step < params.steps; step++) {
        sums = vec2<f32>(0.0, 0.0);
        let grads_too = params.writes_grads != 0u && step + 1u == params.steps;
        if (wide) {
            for (var round = 0u; round < params.rows_per_thread; round++) {
                let block = group * params.rows_per_thread + round;
                let at = lane_of(local, lanes, block, params.num_rows, params.num_cols);
                descend_shared(at, grads_too);
            }
        } else {
            for (var round = 0u; round < rounds; round++) {
                descend_kept(first_row + round * THREADS, grads_too);
            }
        }
        step_sums[(group * params.steps + step) * THREADS + local] = sums;
    }

    // Each step's sums over the workgroup, in thread order.
    storageBarrier();
    let n = f32(params.num_examples);
    for (var step = local; step < params.steps; step += THREADS) {
        let first = (group * params.steps + step) * THREADS;
        var total = vec2<f32>(0.0, 0.0);
        for (var t = 0u; t < THREADS; t++) {
            total += step_sums[first + t];
        }
        if (params.writes_history != 0u) {
            let data = total.x / n;
            let penalty = params.reg * total.y / f32(params.num_rows * params.num_cols);
            let entry = 2u * (params.first_step + step);
            history[entry] = data + penalty;
            history[entry + 1u] = data;
        } else {
            nll_sums[group] = total.x;
            square_sums[group] = total.y;
        }
    }
}

// One step on a row of at most KEPT columns, held in private arrays. The loops run over all
// KEPT entries (a constant count, so that they unroll): past the row's last column (k >= C)
// they repeat that column, add nothing to the sums, and write its values again.
fn descend_kept(row: u32, grads_too: bool) {
    let cols = params.num_cols;
    let base = row * cols;
    var m = LOWEST;
    var total = 0u;
    for (var k = 0u; k < KEPT; k++) {
        let i = base + min(k, cols - 1u);
        kept_weights[k] = weights[i];
        kept_counts[k] = counts[i];
        m = max(m, kept_weights[k]);
        total += select(0u, kept_counts[k], k < cols);
    }
    var sum = 0.0;
    for (var k = 0u; k < KEPT; k++) {
        kept_exps[k] = exp(kept_weights[k] - m);
        sum += select(0.0, kept_exps[k], k < cols);
    }
    let lse = m + log(sum);
    let row_total = f32(total);
    let n = f32(params.num_examples);
    let penalty_scale = 2.0 * params.reg / f32(params.num_rows * cols);
    for (var k = 0u; k < KEPT; k++) {
        let i = base + min(k, cols - 1u);
        let w = kept_weights[k];
        let count = f32(kept_counts[k]);
        let terms = vec2<f32>(count * (lse - w), w * w);
        sums += select(vec2<f32>(0.0, 0.0), terms, k < cols);
        let g = (row_total * (kept_exps[k] / sum) - count) / n + penalty_scale * w;
        if (grads_too) {
            grads[i] = g;
        }
        weights[i] = w - params.lr * g;
    }
}

// One step on a lane's share of a wider row.
fn descend_shared(at: Lane, grads_too: bool) {
    let base = at.row * params.num_cols;

    // The row's maximum and count total, combined over the lanes in one tree.
    var m = LOWEST;
    var total = 0u;
    for (var c = at.lane; c < at.end; c += at.lanes) {
        m = max(m, weights[base + c]);
        total += counts[base + c];
    }
    if (at.lanes > 1u) {
        lane_max[at.local] = m;
        lane_total[at.local] = total;
        workgroupBarrier();
        for (var stride = at.lanes / 2u; stride > 0u; stride /= 2u) {
            if (at.lane < stride) {
                lane_max[at.local] = max(lane_max[at.local], lane_max[at.local + stride]);
                lane_total[at.local] += lane_total[at.local + stride];
            }
            workgroupBarrier();
        }
        m = lane_max[at.local - at.lane];
        total = lane_total[at.local - at.lane];
    }
    let sum = row_sum_exp(at, base, m);
    let lse = m + log(sum);
    let row_total = f32(total);
    let n = f32(params.num_examples);
    let penalty_scale = 2.0 * params.reg / f32(params.num_rows * params.num_cols);
    for (var c = at.lane; c < at.end; c += at.lanes) {
        let w = weights[base + c];
        let count = f32(counts[base + c]);
        sums += vec2<f32>(count * (lse - w), w * w);
        let g = (row_total * (exp(w - m) / sum) - count) / n + penalty_scale * w;
        if (grads_too) {
            grads[base + c] = g;
        }
        weights[base + c] = w - params.lr * g;
    }
}

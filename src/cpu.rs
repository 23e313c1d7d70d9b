//! The reference: every GPU kernel's twin in plain Rust, with the same name and the same math,
//! accumulating in f64. The tests hold the shaders in `shaders/` to these functions.
//!
//! Tables are row-major: entry `[r, c]` of a table with V columns is at `r * V + c`.

use std::borrow::Cow;

use crate::adamw::{AdamState, AdamW};
use crate::backend::{Backend, LossForm, NetForm, Nll, StepLoss, TrainOptions};
use crate::corpus::{CountTable, PairBatches};
use crate::data::Examples;

/// `count_pairs`: `counts[ctx_i, tgt_i] += 1` for every example i.
pub fn count_pairs(
    contexts: &[u32],
    targets: &[u32],
    num_rows: usize,
    num_cols: usize,
) -> Vec<u32> {
    let mut counts = vec![0u32; num_rows * num_cols];
    for (&ctx, &tgt) in contexts.iter().zip(targets) {
        counts[ctx as usize * num_cols + tgt as usize] += 1;
    }
    counts
}

/// `count_pairs_private`: the same counts as `count_pairs`, the kernel's way: each run of
/// `examples_per_group` examples is counted into its own table, whose non-zero cells are then
/// added into the result (integer sums: exact in any order).
pub fn count_pairs_private(
    contexts: &[u32],
    targets: &[u32],
    num_rows: usize,
    num_cols: usize,
    examples_per_group: usize,
) -> Vec<u32> {
    let mut counts = vec![0u32; num_rows * num_cols];
    let groups = contexts
        .chunks(examples_per_group.max(1))
        .zip(targets.chunks(examples_per_group.max(1)));
    for (group_contexts, group_targets) in groups {
        let private = count_pairs(group_contexts, group_targets, num_rows, num_cols);
        for (total, &n) in counts.iter_mut().zip(&private) {
            if n > 0 {
                *total += n;
            }
        }
    }
    counts
}

/// `normalize_rows`: `P[r, c] = (N[r, c] + s) / (sum_c' N[r, c'] + s V)`, the lecture's
/// `(N + s).float(); P /= P.sum(1, keepdim=True)`. A row with total 0 (a context never seen,
/// with s = 0) is all zeros rather than 0/0.
pub fn normalize_rows(counts: &[u32], num_cols: usize, smoothing: f32) -> Vec<f32> {
    let s = smoothing as f64;
    let mut probs = Vec::with_capacity(counts.len());
    for row in counts.chunks(num_cols) {
        let total = row.iter().map(|&n| n as f64).sum::<f64>() + s * num_cols as f64;
        probs.extend(row.iter().map(|&n| {
            if total > 0.0 {
                ((n as f64 + s) / total) as f32
            } else {
                0.0
            }
        }));
    }
    probs
}

/// `nll_gather`: the sum of `-log P[ctx_i, tgt_i]` over the examples with `P > 0`, and the
/// number of examples with `P = 0` (whose log likelihood is minus infinity).
pub fn nll_gather(probs: &[f32], contexts: &[u32], targets: &[u32], num_cols: usize) -> (f64, u64) {
    let mut sum = 0.0f64;
    let mut impossible = 0u64;
    for (&ctx, &tgt) in contexts.iter().zip(targets) {
        let p = probs[ctx as usize * num_cols + tgt as usize] as f64;
        if p > 0.0 {
            sum -= p.ln();
        } else {
            impossible += 1;
        }
    }
    (sum, impossible)
}

/// `count_nll`: the sum of `N[j] * -log P[j]` over the cells with `N[j] > 0` and `P[j] > 0`,
/// and the examples of the cells with `P[j] = 0`: what `nll_gather` gives on the examples the
/// table counts, since the `N[j]` examples of cell `j` all have probability `P[j]`.
pub fn count_nll(probs: &[f32], counts: &[u32]) -> (f64, u64) {
    let mut sum = 0.0f64;
    let mut impossible = 0u64;
    for (&p, &n) in probs.iter().zip(counts) {
        if n == 0 {
            continue;
        }
        if p > 0.0 {
            sum -= n as f64 * (p as f64).ln();
        } else {
            impossible += n as u64;
        }
    }
    (sum, impossible)
}

/// The stable form of a row's exponentials, in f64: with `m` the row maximum, `exps` is set
/// to `exp(x_c - m)` (none overflows) and `(m, sum_c exp(x_c - m))` is returned, so that
/// `log sum_c exp(x_c) = m + ln(sum)` and `softmax(x)_c = exps[c] / sum`. Every CPU twin that
/// takes a log-sum-exp or a softmax goes through here.
fn stable_exps(row: &[f32], exps: &mut Vec<f64>) -> (f64, f64) {
    let m = row.iter().fold(f64::NEG_INFINITY, |m, &w| m.max(w as f64));
    exps.clear();
    exps.extend(row.iter().map(|&w| (w as f64 - m).exp()));
    (m, exps.iter().sum())
}

/// `cross_entropy_forward`: for every example, the logits are the row `W[ctx_i]` (the one-hot
/// product `onehot(ctx_i) @ W` selects exactly that row), `lse_i = log sum_c exp(W[ctx_i, c])`
/// computed stably as `m + log sum_c exp(W[ctx_i, c] - m)` with `m` the row maximum, and
/// `nll_i = lse_i - W[ctx_i, tgt_i] = -log softmax(W[ctx_i])[tgt_i]`.
/// Returns every `lse_i` and `sum_i nll_i`.
pub fn cross_entropy_forward(
    weights: &[f32],
    contexts: &[u32],
    targets: &[u32],
    num_cols: usize,
) -> (Vec<f64>, f64) {
    let mut lse = Vec::with_capacity(contexts.len());
    let mut nll_sum = 0.0f64;
    let mut exps = Vec::with_capacity(num_cols);
    for (&ctx, &tgt) in contexts.iter().zip(targets) {
        let logits = &weights[ctx as usize * num_cols..][..num_cols];
        let (m, sum) = stable_exps(logits, &mut exps);
        let l = m + sum.ln();
        lse.push(l);
        nll_sum += l - logits[tgt as usize] as f64;
    }
    (lse, nll_sum)
}

/// `cross_entropy_explicit`: the lecture's chain without the maximum subtracted:
/// `counts = exp(W[ctx_i])`, `sum_i = sum_c counts[c]`, `p_i = counts[tgt_i] / sum_i`,
/// `nll_i = -log p_i`, and `lse_i = log sum_i` for the backward pass. The counts and their
/// sum are f32 values, as in the lecture's float32 tensors (the sum is added in f64 and rounded
/// once): exp() of a logit above about 88.7 is infinite, and the loss then is not finite.
/// Returns every `lse_i` and `sum_i nll_i`.
pub fn cross_entropy_explicit(
    weights: &[f32],
    contexts: &[u32],
    targets: &[u32],
    num_cols: usize,
) -> (Vec<f64>, f64) {
    let mut lse = Vec::with_capacity(contexts.len());
    let mut nll_sum = 0.0f64;
    for (&ctx, &tgt) in contexts.iter().zip(targets) {
        let logits = &weights[ctx as usize * num_cols..][..num_cols];
        let counts: Vec<f32> = logits.iter().map(|&w| w.exp()).collect();
        let sum = counts.iter().map(|&n| n as f64).sum::<f64>() as f32 as f64;
        let p = counts[tgt as usize] as f64 / sum;
        lse.push(sum.ln());
        nll_sum -= p.ln();
    }
    (lse, nll_sum)
}

/// `one_hot_matmul`: the lecture's `logits = xenc @ W` with `xenc = one_hot(contexts)`:
/// `logits[i, c] = sum_r [r = ctx_i] W[r, c]`, the dense product (exactly `W[ctx_i, c]`).
pub fn one_hot_matmul(
    weights: &[f32],
    contexts: &[u32],
    num_rows: usize,
    num_cols: usize,
) -> Vec<f32> {
    let mut logits = Vec::with_capacity(contexts.len() * num_cols);
    for &ctx in contexts {
        for c in 0..num_cols {
            let sum: f64 = (0..num_rows)
                .map(|r| if r == ctx as usize { 1.0 } else { 0.0 } * weights[r * num_cols + c] as f64)
                .sum();
            logits.push(sum as f32);
        }
    }
    logits
}

/// `one_hot_matmul_backward`: `dW = xenc^T @ dlogits`:
/// `G[r, c] = sum_i [ctx_i = r] dlogits[i, c]` (the shader adds blocks of examples, then the
/// blocks; the same sum).
pub fn one_hot_matmul_backward(
    dlogits: &[f64],
    contexts: &[u32],
    num_rows: usize,
    num_cols: usize,
) -> Vec<f64> {
    let mut grad = vec![0.0f64; num_rows * num_cols];
    for r in 0..num_rows {
        for c in 0..num_cols {
            grad[r * num_cols + c] = contexts
                .iter()
                .enumerate()
                .map(|(i, &ctx)| {
                    if ctx as usize == r {
                        dlogits[i * num_cols + c]
                    } else {
                        0.0
                    }
                })
                .sum();
        }
    }
    grad
}

/// `cross_entropy_backward`: the gradient of `sum_i nll_i` with respect to the logits is
/// `softmax(W[ctx_i]) - onehot(tgt_i)`, and since the logits are a row select it lands on row
/// `ctx_i` of W: `G[ctx_i, c] += exp(W[ctx_i, c] - lse_i) - [c = tgt_i]`.
pub fn cross_entropy_backward(
    weights: &[f32],
    contexts: &[u32],
    targets: &[u32],
    lse: &[f64],
    num_cols: usize,
) -> Vec<f64> {
    let mut grad = vec![0.0f64; weights.len()];
    for ((&ctx, &tgt), &l) in contexts.iter().zip(targets).zip(lse) {
        let row = ctx as usize * num_cols;
        for c in 0..num_cols {
            grad[row + c] += (weights[row + c] as f64 - l).exp();
        }
        grad[row + tgt as usize] -= 1.0;
    }
    grad
}

/// `grad_rows`: the gradient of the loss `sum_i nll_i / n + reg * mean(W^2)`:
/// `grad = G / n + 2 reg W / |W|`, with G from `cross_entropy_backward`.
pub fn grad_rows(
    data_grad_sum: &[f64],
    weights: &[f32],
    num_examples: usize,
    reg: f32,
) -> Vec<f32> {
    let n = num_examples as f64;
    let penalty = 2.0 * reg as f64 / weights.len() as f64;
    data_grad_sum
        .iter()
        .zip(weights)
        .map(|(&g, &w)| (g / n + penalty * w as f64) as f32)
        .collect()
}

/// `loss_total`: `data = nll_sum / n` and `total = data + reg * mean(W^2)`.
pub fn loss_total(nll_sum: f64, num_examples: usize, weights: &[f32], reg: f32) -> StepLoss {
    let data = nll_sum / num_examples as f64;
    let mean_square = if weights.is_empty() {
        0.0
    } else {
        weights.iter().map(|&w| (w as f64).powi(2)).sum::<f64>() / weights.len() as f64
    };
    StepLoss {
        total: data + reg as f64 * mean_square,
        data,
    }
}

/// `sgd_step`: `W -= lr * grad`.
pub fn sgd_step(weights: &mut [f32], grads: &[f32], lr: f32) {
    for (w, &g) in weights.iter_mut().zip(grads) {
        *w = (*w as f64 - lr as f64 * g as f64) as f32;
    }
}

/// `adamw_step`: torch's AdamW, in f64 per weight:
/// `W -= lr wd W`; `m = b1 m + (1 - b1) g`; `v = b2 v + (1 - b2) g^2`;
/// `W -= lr (m / bc1) / (sqrt(v / bc2) + eps)` with `bc = 1 - beta^t` of step t.
pub fn adamw_step(
    weights: &mut [f32],
    grads: &[f32],
    state: &mut AdamState,
    lr: f32,
    adamw: &AdamW,
) {
    state.t += 1;
    let (bc1, bc2) = AdamState::bias_corrections(state.t, adamw);
    let (lr, wd) = (lr as f64, adamw.weight_decay as f64);
    let (b1, b2, eps) = (adamw.beta1 as f64, adamw.beta2 as f64, adamw.eps as f64);
    for k in 0..weights.len() {
        let g = grads[k] as f64;
        let mut w = weights[k] as f64;
        w -= lr * wd * w;
        let m = b1 * state.m[k] as f64 + (1.0 - b1) * g;
        let v = b2 * state.v[k] as f64 + (1.0 - b2) * g * g;
        w -= lr * (m / bc1 as f64) / ((v / bc2 as f64).sqrt() + eps);
        state.m[k] = m as f32;
        state.v[k] = v as f32;
        weights[k] = w as f32;
    }
}

/// `softmax_rows`: `P[r] = exp(W[r] - m) / sum_c exp(W[r, c] - m)`, with `m` the row maximum.
pub fn softmax_rows(weights: &[f32], num_cols: usize) -> Vec<f32> {
    let mut probs = Vec::with_capacity(weights.len());
    let mut exps = Vec::with_capacity(num_cols);
    for row in weights.chunks(num_cols) {
        let (_, sum) = stable_exps(row, &mut exps);
        probs.extend(exps.iter().map(|&e| (e / sum) as f32));
    }
    probs
}

/// `count_descent`: `steps` full-batch gradient-descent steps computed from the count matrix
/// alone. With `c_x = sum_y N[x, y]`, `lse_x = log sum_y exp(W[x, y])` and
/// `softmax(W[x])[y] = exp(W[x, y] - m) / sum_y' exp(W[x, y'] - m)`:
/// `data = (1/n) sum_x sum_y N[x, y] (lse_x - W[x, y])`, `total = data + reg * mean(W^2)`,
/// `grad[x, y] = (c_x softmax(W[x])[y] - N[x, y]) / n + 2 reg W[x, y] / |W|`, then
/// `W -= lr * grad`: the same loss and gradient as the per-example kernels on the n examples.
/// Returns the loss before each step and the gradient of the last step.
pub fn count_descent(
    counts: &[u32],
    weights: &mut [f32],
    num_cols: usize,
    num_examples: usize,
    options: &TrainOptions,
    steps: usize,
) -> (Vec<StepLoss>, Vec<f32>) {
    let n = num_examples as f64;
    let num_weights = weights.len() as f64;
    let (reg, lr) = (options.reg as f64, options.lr as f64);
    let mut grads = vec![0.0f32; weights.len()];
    let mut losses = Vec::with_capacity(steps);
    let mut exps = Vec::with_capacity(num_cols);
    for _ in 0..steps {
        let mut nll = 0.0f64;
        let mut squares = 0.0f64;
        let rows = weights
            .chunks_mut(num_cols)
            .zip(counts.chunks(num_cols))
            .zip(grads.chunks_mut(num_cols));
        for ((w_row, n_row), g_row) in rows {
            let total: f64 = n_row.iter().map(|&c| c as f64).sum();
            // exp(W - m), computed once per weight and step.
            let (m, sum) = stable_exps(w_row, &mut exps);
            let lse = m + sum.ln();
            let cells = w_row.iter_mut().zip(n_row).zip(g_row.iter_mut()).zip(&exps);
            for (((w, &count), g), &e) in cells {
                let (wf, count) = (*w as f64, count as f64);
                nll += count * (lse - wf);
                squares += wf * wf;
                let grad = (total * (e / sum) - count) / n + 2.0 * reg * wf / num_weights;
                *g = grad as f32;
                *w = (wf - lr * grad as f32 as f64) as f32;
            }
        }
        let data = nll / n;
        losses.push(StepLoss {
            total: data + reg * squares / num_weights,
            data,
        });
    }
    (losses, grads)
}

/// Threads of the CPU reference's per-example step and counting.
pub const CPU_THREADS: usize = 2;

/// Splits `0..len` into `parts` contiguous ranges of nearly equal length, in order.
fn split_ranges(len: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    let parts = parts.max(1);
    (0..parts)
        .map(|p| (len * p / parts)..(len * (p + 1) / parts))
        .collect()
}

/// `cross_entropy_forward` and `cross_entropy_backward` in one pass over the examples: each
/// example's `exp(W[ctx_i, c] - m_i)` is computed once and serves both `lse_i` and the
/// gradient `softmax - onehot`. Returns `sum_i nll_i` and G (the sum of the per-example
/// gradients), the same values as the two twins up to the order of the f64 additions.
pub fn cross_entropy_fused(
    weights: &[f32],
    contexts: &[u32],
    targets: &[u32],
    num_cols: usize,
) -> (f64, Vec<f64>) {
    let mut grad = vec![0.0f64; weights.len()];
    let mut nll_sum = 0.0f64;
    let mut exps = Vec::with_capacity(num_cols);
    for (&ctx, &tgt) in contexts.iter().zip(targets) {
        let row = ctx as usize * num_cols;
        let logits = &weights[row..][..num_cols];
        let (m, sum) = stable_exps(logits, &mut exps);
        nll_sum += m + sum.ln() - logits[tgt as usize] as f64;
        let inverse = 1.0 / sum;
        for (g, &e) in grad[row..][..num_cols].iter_mut().zip(&exps) {
            *g += e * inverse;
        }
        grad[row + tgt as usize] -= 1.0;
    }
    (nll_sum, grad)
}

/// The forward and backward kernels of a loss form on one slice of the examples:
/// `sum_i nll_i` and G, the sum of the slice's gradients `softmax(logits_i) - onehot(tgt_i)`.
/// The lecture's form is `cross_entropy_fused`: each exponential computed once, for both.
fn cross_entropy_slice(
    logits: &[f32],
    rows: &[u32],
    targets: &[u32],
    num_cols: usize,
    loss: LossForm,
) -> (f64, Vec<f64>) {
    match loss {
        LossForm::Fused => cross_entropy_fused(logits, rows, targets, num_cols),
        LossForm::Explicit => {
            let (lse, nll_sum) = cross_entropy_explicit(logits, rows, targets, num_cols);
            let grad = cross_entropy_backward(logits, rows, targets, &lse, num_cols);
            (nll_sum, grad)
        }
    }
}

/// `cross_entropy_forward` then `cross_entropy_backward` over all the examples, on
/// CPU_THREADS contiguous slices whose sums are added in slice order (the same result on
/// every run): `sum_i nll_i` and `G[r, c] = sum_{i: row_i = r} softmax(logits_i)[c] - [c = tgt_i]`.
fn cross_entropy(
    logits: &[f32],
    rows: &[u32],
    targets: &[u32],
    num_cols: usize,
    loss: LossForm,
) -> (f64, Vec<f64>) {
    let parts: Vec<(f64, Vec<f64>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = split_ranges(rows.len(), CPU_THREADS)
            .into_iter()
            .map(|r| {
                let (rows, targets) = (&rows[r.clone()], &targets[r]);
                scope.spawn(move || cross_entropy_slice(logits, rows, targets, num_cols, loss))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a worker thread panicked"))
            .collect()
    });
    let mut nll_sum = 0.0f64;
    let mut data_grad_sum = vec![0.0f64; logits.len()];
    for (nll, grad) in &parts {
        nll_sum += nll;
        for (total, g) in data_grad_sum.iter_mut().zip(grad) {
            *total += g;
        }
    }
    (nll_sum, data_grad_sum)
}

/// The forward kernel of a loss form on a table of logits: every `lse_i` and `sum_i nll_i`.
fn forward_on(
    logits: &[f32],
    rows: &[u32],
    targets: &[u32],
    num_cols: usize,
    loss: LossForm,
) -> (Vec<f64>, f64) {
    match loss {
        LossForm::Fused => cross_entropy_forward(logits, rows, targets, num_cols),
        LossForm::Explicit => cross_entropy_explicit(logits, rows, targets, num_cols),
    }
}

/// The logits as a table and the row of each example in it: W and the contexts (row select),
/// or `onehot(contexts) @ W` and the example indices (one-hot product).
fn logits_table<'a>(
    weights: &'a [f32],
    examples: &'a Examples,
    one_hot: bool,
) -> (Cow<'a, [f32]>, Cow<'a, [u32]>) {
    if one_hot {
        let (r, v) = (examples.num_rows, examples.num_cols);
        let logits = one_hot_matmul(weights, &examples.contexts, r, v);
        (logits.into(), (0..examples.len() as u32).collect())
    } else {
        (weights.into(), examples.contexts.as_slice().into())
    }
}

/// The data loss alone: `sum_i nll_i`.
fn forward(weights: &[f32], examples: &Examples, form: NetForm) -> f64 {
    let (logits, rows) = logits_table(weights, examples, form.one_hot);
    forward_on(
        &logits,
        &rows,
        &examples.targets,
        examples.num_cols,
        form.loss,
    )
    .1
}

/// One full-batch step's loss and gradient, kernel by kernel as on the GPU:
///   logits = W[x], or onehot(x) @ W with `--one-hot`     (`one_hot_matmul`)
///   nll = sum_i lse_i - logits[i, y_i]                   (`cross_entropy_forward`)
///   G = sum_i softmax(logits_i) - onehot(y_i)            (`cross_entropy_backward`)
///   dW = G, or onehot(x)^T @ G with `--one-hot`          (`one_hot_matmul_backward`)
///   grad = dW / n + 2 reg W / |W|                        (`grad_rows`)
///   loss = nll / n + reg mean(W^2)                       (`loss_total`)
fn loss_and_gradient(
    weights: &[f32],
    examples: &Examples,
    reg: f32,
    form: NetForm,
) -> (StepLoss, Vec<f32>) {
    let (targets, v) = (&examples.targets, examples.num_cols);
    let (logits, rows) = logits_table(weights, examples, form.one_hot);
    let (nll_sum, logit_grads) = cross_entropy(&logits, &rows, targets, v, form.loss);
    let data_grad_sum = if form.one_hot {
        let (contexts, r) = (&examples.contexts, examples.num_rows);
        one_hot_matmul_backward(&logit_grads, contexts, r, v)
    } else {
        logit_grads
    };
    let grads = grad_rows(&data_grad_sum, weights, examples.len(), reg);
    (loss_total(nll_sum, examples.len(), weights, reg), grads)
}

/// `count_pairs` on CPU_THREADS contiguous slices of the examples, each into its own
/// matrix, added at the end (integer sums: exact whatever the split); on one thread below
/// 2^20 examples.
pub fn count_pairs_parallel(
    contexts: &[u32],
    targets: &[u32],
    num_rows: usize,
    num_cols: usize,
) -> Vec<u32> {
    // Below this many examples, starting a thread costs more than it saves.
    if contexts.len() < 1 << 20 {
        return count_pairs(contexts, targets, num_rows, num_cols);
    }
    let parts: Vec<Vec<u32>> = std::thread::scope(|scope| {
        let handles: Vec<_> = split_ranges(contexts.len(), CPU_THREADS)
            .into_iter()
            .map(|r| {
                scope.spawn(move || {
                    count_pairs(&contexts[r.clone()], &targets[r], num_rows, num_cols)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a worker thread panicked"))
            .collect()
    });
    let mut counts = vec![0u32; num_rows * num_cols];
    for part in &parts {
        for (total, &n) in counts.iter_mut().zip(part) {
            *total += n;
        }
    }
    counts
}

/// The reference backend: the twins above, on the host.
#[derive(Debug, Default)]
pub struct CpuBackend;

impl Backend for CpuBackend {
    type Examples = Examples;
    type Buffer = Vec<f32>;
    type Losses = Vec<StepLoss>;
    type Counts = CountTable;
    const KIND: &'static str = "cpu";

    fn upload(&mut self, data: &[f32]) -> anyhow::Result<Vec<f32>> {
        Ok(data.to_vec())
    }

    fn zeros(&mut self, len: usize) -> anyhow::Result<Vec<f32>> {
        Ok(vec![0.0; len])
    }

    fn read(&mut self, buffer: &Vec<f32>) -> anyhow::Result<Vec<f32>> {
        Ok(buffer.clone())
    }

    fn losses(&mut self, steps: usize) -> anyhow::Result<Vec<StepLoss>> {
        Ok(Vec::with_capacity(steps))
    }

    fn read_losses(&mut self, losses: &Vec<StepLoss>) -> anyhow::Result<Vec<StepLoss>> {
        Ok(losses.clone())
    }

    fn gradient(
        &mut self,
        weights: &Vec<f32>,
        ex: &Examples,
        reg: f32,
        form: NetForm,
        grads: &mut Vec<f32>,
        losses: &mut Vec<StepLoss>,
    ) -> anyhow::Result<()> {
        let (loss, gradient) = loss_and_gradient(weights, ex, reg, form);
        *grads = gradient;
        losses.push(loss);
        Ok(())
    }

    fn count_table(&mut self, ex: &Examples) -> anyhow::Result<CountTable> {
        let counts = count_pairs_parallel(&ex.contexts, &ex.targets, ex.num_rows, ex.num_cols);
        Ok(CountTable::new(counts, ex.num_cols))
    }

    fn upload_counts(&mut self, table: &CountTable) -> anyhow::Result<CountTable> {
        Ok(table.clone())
    }

    fn count_descent(
        &mut self,
        weights: &mut Vec<f32>,
        grads: &mut Vec<f32>,
        table: &CountTable,
        options: &TrainOptions,
        steps: usize,
        losses: &mut Vec<StepLoss>,
    ) -> anyhow::Result<()> {
        let (counts, cols, n) = (&table.counts, table.num_cols, table.examples);
        let (step_losses, gradient) = count_descent(counts, weights, cols, n, options, steps);
        losses.extend(step_losses);
        *grads = gradient;
        Ok(())
    }

    fn sgd_update(
        &mut self,
        weights: &mut Vec<f32>,
        grads: &Vec<f32>,
        lr: f32,
    ) -> anyhow::Result<()> {
        sgd_step(weights, grads, lr);
        Ok(())
    }

    fn adamw_update(
        &mut self,
        weights: &mut Vec<f32>,
        grads: &Vec<f32>,
        (m, v): (&mut Vec<f32>, &mut Vec<f32>),
        t: u32,
        lr: f32,
        adamw: &AdamW,
    ) -> anyhow::Result<()> {
        let mut state = AdamState {
            m: std::mem::take(m),
            v: std::mem::take(v),
            t: t - 1,
        };
        adamw_step(weights, grads, &mut state, lr, adamw);
        (*m, *v) = (state.m, state.v);
        Ok(())
    }

    fn describe(&self) -> String {
        "CPU reference (f64 accumulation)".to_string()
    }

    fn load(&mut self, examples: &Examples) -> anyhow::Result<Examples> {
        Ok(examples.clone())
    }

    fn count_pairs(&mut self, ex: &Examples) -> anyhow::Result<Vec<u32>> {
        Ok(count_pairs_parallel(
            &ex.contexts,
            &ex.targets,
            ex.num_rows,
            ex.num_cols,
        ))
    }

    fn normalize_rows(
        &mut self,
        counts: &[u32],
        num_cols: usize,
        smoothing: f32,
    ) -> anyhow::Result<Vec<f32>> {
        Ok(normalize_rows(counts, num_cols, smoothing))
    }

    fn mean_nll(&mut self, probs: &[f32], ex: &Examples) -> anyhow::Result<Nll> {
        let (sum, impossible) = nll_gather(probs, &ex.contexts, &ex.targets, ex.num_cols);
        Ok(Nll {
            finite_mean: sum / ex.len() as f64,
            impossible,
            examples: ex.len(),
        })
    }

    fn loss_and_gradient(
        &mut self,
        weights: &[f32],
        ex: &Examples,
        reg: f32,
        form: NetForm,
    ) -> anyhow::Result<(StepLoss, Vec<f32>)> {
        Ok(loss_and_gradient(weights, ex, reg, form))
    }

    fn train(
        &mut self,
        weights: &mut [f32],
        ex: &Examples,
        options: &TrainOptions,
        steps: usize,
        form: NetForm,
    ) -> anyhow::Result<Vec<StepLoss>> {
        let mut losses = Vec::with_capacity(steps);
        for _ in 0..steps {
            let (step_loss, grads) = loss_and_gradient(weights, ex, options.reg, form);
            sgd_step(weights, &grads, options.lr);
            losses.push(step_loss);
        }
        Ok(losses)
    }

    fn softmax_rows(&mut self, weights: &[f32], num_cols: usize) -> anyhow::Result<Vec<f32>> {
        Ok(softmax_rows(weights, num_cols))
    }

    fn forward_loss(
        &mut self,
        weights: &[f32],
        ex: &Examples,
        form: NetForm,
    ) -> anyhow::Result<f64> {
        Ok(forward(weights, ex, form) / ex.len() as f64)
    }

    fn count_pair_batches(
        &mut self,
        num_rows: usize,
        num_cols: usize,
        batches: &mut dyn PairBatches,
    ) -> anyhow::Result<Vec<u32>> {
        anyhow::ensure!(batches.num_cols() == num_cols, "pairs of another table");
        let mut counts = vec![0u32; num_rows * num_cols];
        batches.count_into(&mut counts)?;
        Ok(counts)
    }

    fn count_table_nll(&mut self, probs: &[f32], table: &CountTable) -> anyhow::Result<Nll> {
        let (sum, impossible) = count_nll(probs, &table.counts);
        Ok(Nll {
            finite_mean: sum / table.examples as f64,
            impossible,
            examples: table.examples,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The analytic gradient against central differences of the loss, all in f64.
    #[test]
    fn gradient_matches_finite_differences() {
        let examples = Examples {
            contexts: vec![0, 1, 1, 2, 0, 2, 2],
            targets: vec![1, 2, 0, 0, 2, 1, 1],
            num_rows: 3,
            num_cols: 3,
        };
        let weights: Vec<f32> = (0..9).map(|i| ((i * 7 % 5) as f32 - 2.0) * 0.3).collect();
        let reg = 0.1;
        let (_, grads) = loss_and_gradient(&weights, &examples, reg, NetForm::default());
        // The loss in f64 throughout: mean over examples of logsumexp(W[x]) - W[x, y], plus the penalty.
        let loss_at = |w: &[f64]| {
            let nll: f64 = (0..examples.len())
                .map(|i| {
                    let row = &w[examples.contexts[i] as usize * 3..][..3];
                    let lse = row.iter().map(|x| x.exp()).sum::<f64>().ln();
                    lse - row[examples.targets[i] as usize]
                })
                .sum();
            nll / examples.len() as f64 + reg as f64 * w.iter().map(|x| x * x).sum::<f64>() / 9.0
        };
        let h = 1e-3;
        for k in 0..9 {
            let mut plus: Vec<f64> = weights.iter().map(|&w| w as f64).collect();
            let mut minus = plus.clone();
            plus[k] += h;
            minus[k] -= h;
            let numeric = (loss_at(&plus) - loss_at(&minus)) / (2.0 * h);
            assert!(
                (numeric - grads[k] as f64).abs() < 1e-5,
                "weight {k}: numeric {numeric}, analytic {}",
                grads[k]
            );
        }
    }

    /// The fused and threaded passes against the forward and backward twins, and the parallel
    /// counting against the sequential one.
    #[test]
    fn fused_pass_and_parallel_counts_match_the_twins() {
        let contexts: Vec<u32> = (0..1001u32).map(|i| (i * 7 + i / 5) % 4).collect();
        let targets: Vec<u32> = (0..1001u32).map(|i| (i * 3 + i / 7) % 4).collect();
        let weights: Vec<f32> = (0..16).map(|i| ((i * 5 % 7) as f32 - 3.0) * 0.7).collect();
        let (lse, nll) = cross_entropy_forward(&weights, &contexts, &targets, 4);
        let grad = cross_entropy_backward(&weights, &contexts, &targets, &lse, 4);
        let (fused_nll, fused_grad) = cross_entropy_fused(&weights, &contexts, &targets, 4);
        assert!((fused_nll - nll).abs() <= 1e-12 * nll.abs());
        for (a, b) in fused_grad.iter().zip(&grad) {
            assert!((a - b).abs() <= 1e-9, "{a} vs {b}");
        }
        // The threaded pass of each loss form against its forward and backward twins.
        let (explicit_lse, explicit_nll) = cross_entropy_explicit(&weights, &contexts, &targets, 4);
        let explicit_grad = cross_entropy_backward(&weights, &contexts, &targets, &explicit_lse, 4);
        let forms = [
            (LossForm::Fused, nll, &grad),
            (LossForm::Explicit, explicit_nll, &explicit_grad),
        ];
        for (loss, twin_nll, twin_grad) in forms {
            let (threaded_nll, threaded_grad) =
                cross_entropy(&weights, &contexts, &targets, 4, loss);
            assert!(
                (threaded_nll - twin_nll).abs() <= 1e-12 * twin_nll.abs(),
                "{loss:?}"
            );
            for (a, b) in threaded_grad.iter().zip(twin_grad) {
                assert!((a - b).abs() <= 1e-9, "{loss:?}: {a} vs {b}");
            }
        }
        assert_eq!(
            count_pairs_parallel(&contexts, &targets, 4, 4),
            count_pairs(&contexts, &targets, 4, 4)
        );
        assert_eq!(count_pairs_parallel(&[], &[], 2, 2), vec![0; 4]);
        assert_eq!(
            count_pairs_private(&contexts, &targets, 4, 4, 64),
            count_pairs(&contexts, &targets, 4, 4)
        );
    }

    #[test]
    fn normalized_rows_sum_to_one_and_empty_rows_are_zero() {
        let probs = normalize_rows(&[1, 3, 0, 0], 2, 0.0);
        assert_eq!(probs, vec![0.25, 0.75, 0.0, 0.0]);
        let smoothed = normalize_rows(&[1, 3, 0, 0], 2, 1.0);
        assert_eq!(smoothed, vec![2.0 / 6.0, 4.0 / 6.0, 0.5, 0.5]);
    }
}

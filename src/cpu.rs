//! The reference: every GPU kernel's twin in plain Rust, with the same name and the same math,
//! accumulating in f64. Tables are row-major: `[r, c]` of a table with V columns is `r * V + c`.

use std::borrow::Cow;
use std::ops::Range;
use std::thread::ScopedJoinHandle;

use crate::adamw::AdamW;
use crate::backend::{Backend, LossForm, NetForm, Nll, StepLoss, TrainOptions};
use crate::corpus::{CountTable, PairBatches};
use crate::data::Examples;

/// `count_pairs`: `counts[ctx_i, tgt_i] += 1` for every example i.
pub fn count_pairs(contexts: &[u32], targets: &[u32], rows: usize, cols: usize) -> Vec<u32> {
    let mut counts = vec![0u32; rows * cols];
    for (&ctx, &tgt) in contexts.iter().zip(targets) {
        counts[ctx as usize * cols + tgt as usize] += 1;
    }
    counts
}

/// The cell-by-cell sum of count tables of `len` cells.
fn add_tables(len: usize, tables: impl IntoIterator<Item = Vec<u32>>) -> Vec<u32> {
    tables.into_iter().fold(vec![0u32; len], |mut sum, table| {
        sum.iter_mut().zip(&table).for_each(|(s, &n)| *s += n);
        sum
    })
}

/// `count_pairs_private`: each run of `examples_per_group` examples counted into its own
/// table, the tables then added.
pub fn count_pairs_private(
    contexts: &[u32],
    targets: &[u32],
    rows: usize,
    cols: usize,
    examples_per_group: usize,
) -> Vec<u32> {
    let group = examples_per_group.max(1);
    let groups = contexts.chunks(group).zip(targets.chunks(group));
    let tables = groups.map(|(c, t)| count_pairs(c, t, rows, cols));
    add_tables(rows * cols, tables)
}

/// `normalize_rows`: `P[r, c] = (N[r, c] + s) / (sum_c' N[r, c'] + s V)`; a row with total 0
/// is all zeros rather than 0/0.
pub fn normalize_rows(counts: &[u32], num_cols: usize, smoothing: f32) -> Vec<f32> {
    let s = smoothing as f64;
    let mut probs = Vec::with_capacity(counts.len());
    for row in counts.chunks(num_cols) {
        let total = row.iter().map(|&n| n as f64).sum::<f64>() + s * num_cols as f64;
        let p = |&n: &u32| (total > 0.0).then(|| ((n as f64 + s) / total) as f32);
        probs.extend(row.iter().map(|n| p(n).unwrap_or(0.0)));
    }
    probs
}

/// `-sum N log P` over the cells `(P, N)` with `N > 0` and `P > 0`, and the `N` of the others.
fn nll_cells(cells: impl Iterator<Item = (f32, u32)>, examples: usize) -> Nll {
    let (mut sum, mut impossible) = (0.0f64, 0u64);
    for (p, n) in cells.filter(|&(_, n)| n > 0) {
        if p > 0.0 {
            sum -= n as f64 * (p as f64).ln();
        } else {
            impossible += n as u64;
        }
    }
    let finite_mean = sum / examples as f64;
    Nll {
        finite_mean,
        impossible,
        examples,
    }
}

/// `nll_gather`: `sum_i -log P[ctx_i, tgt_i]` over the examples with `P > 0`, and the others.
pub fn nll_gather(probs: &[f32], ex: &Examples) -> Nll {
    let p = |(&ctx, &tgt): (&u32, &u32)| (probs[ctx as usize * ex.num_cols + tgt as usize], 1);
    nll_cells(ex.contexts.iter().zip(&ex.targets).map(p), ex.len())
}

/// `count_nll`: `nll_gather` on the examples the table counts, cell by cell.
pub fn count_nll(probs: &[f32], table: &CountTable) -> Nll {
    let cells = probs.iter().copied().zip(table.counts.iter().copied());
    nll_cells(cells, table.examples)
}

/// With `m` the row maximum: `exps = exp(x_c - m)` and `(m, sum_c exps[c])`, so that
/// `log sum_c exp(x_c) = m + ln(sum)` and `softmax(x)_c = exps[c] / sum`.
fn stable_exps(row: &[f32], exps: &mut Vec<f64>) -> (f64, f64) {
    let m = row.iter().fold(f64::NEG_INFINITY, |m, &w| m.max(w as f64));
    exps.clear();
    exps.extend(row.iter().map(|&w| (w as f64 - m).exp()));
    (m, exps.iter().sum())
}

/// `cross_entropy_forward`: `lse_i = m + log sum_c exp(W[ctx_i, c] - m)` (m the row maximum),
/// `nll_i = lse_i - W[ctx_i, tgt_i]`; returns every `lse_i` and `sum_i nll_i`.
pub fn cross_entropy_forward(w: &[f32], ctx: &[u32], tgt: &[u32], v: usize) -> (Vec<f64>, f64) {
    let (mut lse, mut nll_sum) = (Vec::with_capacity(ctx.len()), 0.0f64);
    let mut exps = Vec::with_capacity(v);
    for (&ctx, &tgt) in ctx.iter().zip(tgt) {
        let logits = &w[ctx as usize * v..][..v];
        let (m, sum) = stable_exps(logits, &mut exps);
        lse.push(m + sum.ln());
        nll_sum += m + sum.ln() - logits[tgt as usize] as f64;
    }
    (lse, nll_sum)
}

/// `cross_entropy_fused`: both passes, each exponential computed once: with
/// `e_c = exp(W[ctx_i, c] - m)` (m the row maximum) and `s_i = sum_c e_c`,
/// `nll_i = m + log s_i - W[ctx_i, tgt_i]` and `G[ctx_i, c] += e_c / s_i - [c = tgt_i]`;
/// returns `sum_i nll_i`.
pub fn cross_entropy_fused(
    weights: &[f32],
    contexts: &[u32],
    targets: &[u32],
    num_cols: usize,
    grad: &mut [f64],
) -> f64 {
    let mut nll_sum = 0.0f64;
    let mut exps = Vec::with_capacity(num_cols);
    for (&ctx, &tgt) in contexts.iter().zip(targets) {
        let row = ctx as usize * num_cols;
        let logits = &weights[row..][..num_cols];
        let (m, sum) = stable_exps(logits, &mut exps);
        nll_sum += m + sum.ln() - logits[tgt as usize] as f64;
        for (g, &e) in grad[row..][..num_cols].iter_mut().zip(&exps) {
            *g += e / sum;
        }
        grad[row + tgt as usize] -= 1.0;
    }
    nll_sum
}

/// `cross_entropy_explicit`: the lecture's chain, no maximum subtracted: `counts = exp(W[ctx_i])`
/// and their sum in f32 (added in f64, rounded once), `nll_i = -log(counts[tgt_i] / sum_i)`,
/// `lse_i = log sum_i`. Returns every `lse_i` and `sum_i nll_i`.
pub fn cross_entropy_explicit(w: &[f32], ctx: &[u32], tgt: &[u32], v: usize) -> (Vec<f64>, f64) {
    let (mut lse, mut nll_sum) = (Vec::with_capacity(ctx.len()), 0.0f64);
    for (&ctx, &tgt) in ctx.iter().zip(tgt) {
        let logits = &w[ctx as usize * v..][..v];
        let counts: Vec<f32> = logits.iter().map(|&w| w.exp()).collect();
        let sum = counts.iter().map(|&n| n as f64).sum::<f64>() as f32 as f64;
        lse.push(sum.ln());
        nll_sum -= (counts[tgt as usize] as f64 / sum).ln();
    }
    (lse, nll_sum)
}

/// `cross_entropy_backward`: `G[ctx_i, c] += exp(W[ctx_i, c] - lse_i) - [c = tgt_i]`.
pub fn cross_entropy_backward(
    weights: &[f32],
    contexts: &[u32],
    targets: &[u32],
    lse: &[f64],
    num_cols: usize,
    grad: &mut [f64],
) {
    for ((&ctx, &tgt), &l) in contexts.iter().zip(targets).zip(lse) {
        let row = ctx as usize * num_cols;
        for c in 0..num_cols {
            grad[row + c] += (weights[row + c] as f64 - l).exp();
        }
        grad[row + tgt as usize] -= 1.0;
    }
}

/// `one_hot_matmul`: `logits[i, c] = sum_r [r = ctx_i] W[r, c]` (exactly `W[ctx_i, c]`).
pub fn one_hot_matmul(weights: &[f32], contexts: &[u32], rows: usize, cols: usize) -> Vec<f32> {
    let cell = |ctx: u32, c: usize| {
        (0..rows)
            .map(|r| if r == ctx as usize { 1.0 } else { 0.0 } * weights[r * cols + c] as f64)
            .sum::<f64>() as f32
    };
    contexts
        .iter()
        .flat_map(|&ctx| (0..cols).map(move |c| cell(ctx, c)))
        .collect()
}

/// `one_hot_matmul_backward`: `G[r, c] = sum_i [ctx_i = r] dlogits[i, c]`.
pub fn one_hot_matmul_backward(d: &[f64], contexts: &[u32], rows: usize, v: usize) -> Vec<f64> {
    let cell = |k: usize| {
        let (r, c) = (k / v, k % v);
        let term = |(&x, row): (&u32, &[f64])| if x as usize == r { row[c] } else { 0.0 };
        contexts.iter().zip(d.chunks(v)).map(term).sum::<f64>()
    };
    (0..rows * v).map(cell).collect()
}

/// `grad_rows`: `grad = G / n + 2 reg W / |W|`.
pub fn grad_rows(data_grad_sum: &[f64], weights: &[f32], n: usize, reg: f32) -> Vec<f32> {
    let (n, penalty) = (n as f64, 2.0 * reg as f64 / weights.len() as f64);
    let grad = |(&g, &w): (&f64, &f32)| (g / n + penalty * w as f64) as f32;
    data_grad_sum.iter().zip(weights).map(grad).collect()
}

/// `loss_total`: `data = nll_sum / n` and `total = data + reg * mean(W^2)`.
pub fn loss_total(nll_sum: f64, num_examples: usize, weights: &[f32], reg: f32) -> StepLoss {
    let data = nll_sum / num_examples as f64;
    let squares = weights.iter().map(|&w| (w as f64).powi(2)).sum::<f64>();
    let mean_square = squares / weights.len().max(1) as f64;
    let total = data + reg as f64 * mean_square;
    StepLoss { total, data }
}

/// `sgd_step`: `W -= lr * grad`.
pub fn sgd_step(weights: &mut [f32], grads: &[f32], lr: f32) {
    for (w, &g) in weights.iter_mut().zip(grads) {
        *w = (*w as f64 - lr as f64 * g as f64) as f32;
    }
}

/// `adamw_step` number `t` (from 1): torch's AdamW, in f64 per weight:
/// `W -= lr wd W`; `m = b1 m + (1 - b1) g`; `v = b2 v + (1 - b2) g^2`;
/// `W -= lr (m / bc1) / (sqrt(v / bc2) + eps)` with `bc = 1 - beta^t`.
pub fn adamw_step(
    weights: &mut [f32],
    grads: &[f32],
    (ms, vs): (&mut [f32], &mut [f32]),
    t: u32,
    lr: f32,
    adamw: &AdamW,
) {
    let (bc1, bc2) = adamw.bias_corrections(t);
    let (lr, wd) = (lr as f64, adamw.weight_decay as f64);
    let (b1, b2, eps) = (adamw.beta1 as f64, adamw.beta2 as f64, adamw.eps as f64);
    for k in 0..weights.len() {
        let g = grads[k] as f64;
        let mut w = weights[k] as f64;
        w -= lr * wd * w;
        let m = b1 * ms[k] as f64 + (1.0 - b1) * g;
        let v = b2 * vs[k] as f64 + (1.0 - b2) * g * g;
        w -= lr * (m / bc1 as f64) / ((v / bc2 as f64).sqrt() + eps);
        (ms[k], vs[k], weights[k]) = (m as f32, v as f32, w as f32);
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

/// `count_descent`: `steps` full-batch steps from the count matrix alone. With
/// `c_x = sum_y N[x, y]` and `lse_x = log sum_y exp(W[x, y])`:
/// `data = (1/n) sum_x sum_y N[x, y] (lse_x - W[x, y])`, `total = data + reg * mean(W^2)`,
/// `grad[x, y] = (c_x softmax(W[x])[y] - N[x, y]) / n + 2 reg W[x, y] / |W|`, `W -= lr * grad`.
/// Appends the loss before each step to `losses`; returns the gradient of the last step.
pub fn count_descent(
    table: &CountTable,
    weights: &mut [f32],
    options: &TrainOptions,
    steps: usize,
    losses: &mut Vec<StepLoss>,
) -> Vec<f32> {
    let (counts, num_cols) = (&table.counts, table.num_cols);
    let (n, num_weights) = (table.examples as f64, weights.len() as f64);
    let (reg, lr) = (options.reg as f64, options.lr as f64);
    let mut grads = vec![0.0f32; weights.len()];
    let mut exps = Vec::with_capacity(num_cols);
    for _ in 0..steps {
        let (mut nll, mut squares) = (0.0f64, 0.0f64);
        let rows = weights
            .chunks_mut(num_cols)
            .zip(counts.chunks(num_cols))
            .zip(grads.chunks_mut(num_cols));
        for ((w_row, n_row), g_row) in rows {
            let total: f64 = n_row.iter().map(|&c| c as f64).sum();
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
        let total = data + reg * squares / num_weights;
        losses.push(StepLoss { total, data });
    }
    grads
}

/// Threads of the CPU reference's per-example step and counting.
pub const CPU_THREADS: usize = 2;

/// `f` on CPU_THREADS contiguous ranges splitting `0..len`, the results in order.
fn on_slices<T: Send>(len: usize, f: impl Fn(Range<usize>) -> T + Sync) -> Vec<T> {
    let f = &f;
    let slice = move |p| len * p / CPU_THREADS..len * (p + 1) / CPU_THREADS;
    std::thread::scope(|scope| {
        let spawn = |p| scope.spawn(move || f(slice(p)));
        let threads: Vec<_> = (0..CPU_THREADS).map(spawn).collect();
        let join = |t: ScopedJoinHandle<T>| t.join().expect("a worker thread panicked");
        threads.into_iter().map(join).collect()
    })
}

/// The forward kernel of a loss form, and with `grad` its backward kernel (both in one for the
/// fused form): `sum_i nll_i`.
fn cross_entropy_on(
    logits: &[f32],
    rows: &[u32],
    targets: &[u32],
    num_cols: usize,
    loss: LossForm,
    grad: Option<&mut [f64]>,
) -> f64 {
    let (l, r, t, v) = (logits, rows, targets, num_cols);
    match (loss, grad) {
        (LossForm::Fused, Some(grad)) => cross_entropy_fused(l, r, t, v, grad),
        (LossForm::Fused, None) => cross_entropy_forward(l, r, t, v).1,
        (LossForm::Explicit, grad) => {
            let (lse, nll_sum) = cross_entropy_explicit(l, r, t, v);
            if let Some(grad) = grad {
                cross_entropy_backward(l, r, t, &lse, v, grad);
            }
            nll_sum
        }
    }
}

/// `cross_entropy_on` over CPU_THREADS slices of the examples, added in slice order:
/// `sum_i nll_i` and `G[r, c] = sum_{i: row_i = r} softmax(logits_i)[c] - [c = tgt_i]`.
fn cross_entropy(w: &[f32], rows: &[u32], t: &[u32], v: usize, loss: LossForm) -> (f64, Vec<f64>) {
    let parts = on_slices(rows.len(), |r| {
        let mut grad = vec![0.0f64; w.len()];
        let (rows, t) = (&rows[r.clone()], &t[r]);
        let nll_sum = cross_entropy_on(w, rows, t, v, loss, Some(&mut grad));
        (nll_sum, grad)
    });
    let mut sum = (0.0f64, vec![0.0f64; w.len()]);
    for (nll, grad) in &parts {
        sum.0 += nll;
        sum.1.iter_mut().zip(grad).for_each(|(s, g)| *s += g);
    }
    sum
}

/// The logits as a table and the row of each example in it: W and the contexts (row select),
/// or `onehot(contexts) @ W` and the example indices (one-hot product).
fn logits_table<'a>(
    w: &'a [f32],
    ex: &'a Examples,
    one_hot: bool,
) -> (Cow<'a, [f32]>, Cow<'a, [u32]>) {
    if one_hot {
        let logits = one_hot_matmul(w, &ex.contexts, ex.num_rows, ex.num_cols);
        (logits.into(), (0..ex.len() as u32).collect())
    } else {
        (w.into(), ex.contexts.as_slice().into())
    }
}

/// `count_pairs` on CPU_THREADS slices of the examples, the tables added (exact whatever the
/// split); on one thread below 2^20 examples, where a thread costs more than it saves.
pub fn count_pairs_parallel(ctx: &[u32], tgt: &[u32], rows: usize, cols: usize) -> Vec<u32> {
    if ctx.len() < 1 << 20 {
        return count_pairs(ctx, tgt, rows, cols);
    }
    let count = |r: Range<usize>| count_pairs(&ctx[r.clone()], &tgt[r], rows, cols);
    add_tables(rows * cols, on_slices(ctx.len(), count))
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

    /// One full-batch step's loss and gradient, kernel by kernel as on the GPU:
    ///   logits = W[x], or onehot(x) @ W with `--one-hot`     (`one_hot_matmul`)
    ///   nll = sum_i lse_i - logits[i, y_i]                   (`cross_entropy_forward`)
    ///   G = sum_i softmax(logits_i) - onehot(y_i)            (`cross_entropy_backward`)
    ///     both in one for the row select's fused loss        (`cross_entropy_fused`)
    ///   dW = G, or onehot(x)^T @ G with `--one-hot`          (`one_hot_matmul_backward`)
    ///   grad = dW / n + 2 reg W / |W|                        (`grad_rows`)
    ///   loss = nll / n + reg mean(W^2)                       (`loss_total`)
    fn gradient(
        &mut self,
        w: &Vec<f32>,
        ex: &Examples,
        reg: f32,
        form: NetForm,
        grads: &mut Vec<f32>,
        losses: &mut Vec<StepLoss>,
    ) -> anyhow::Result<()> {
        let (logits, rows) = logits_table(w, ex, form.one_hot);
        let (nll_sum, mut grad) =
            cross_entropy(&logits, &rows, &ex.targets, ex.num_cols, form.loss);
        if form.one_hot {
            grad = one_hot_matmul_backward(&grad, &ex.contexts, ex.num_rows, ex.num_cols);
        }
        losses.push(loss_total(nll_sum, ex.len(), w, reg));
        *grads = grad_rows(&grad, w, ex.len(), reg);
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
        *grads = count_descent(table, weights, options, steps, losses);
        Ok(())
    }

    fn sgd_update(&mut self, w: &mut Vec<f32>, grads: &Vec<f32>, lr: f32) -> anyhow::Result<()> {
        sgd_step(w, grads, lr);
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
        adamw_step(weights, grads, (m, v), t, lr, adamw);
        Ok(())
    }

    fn describe(&self) -> String {
        "CPU reference (f64 accumulation)".to_string()
    }

    fn load(&mut self, examples: &Examples) -> anyhow::Result<Examples> {
        Ok(examples.clone())
    }

    fn count_pairs(&mut self, ex: &Examples) -> anyhow::Result<Vec<u32>> {
        Ok(self.count_table(ex)?.counts)
    }

    fn normalize_rows(&mut self, counts: &[u32], cols: usize, s: f32) -> anyhow::Result<Vec<f32>> {
        Ok(normalize_rows(counts, cols, s))
    }

    fn mean_nll(&mut self, probs: &[f32], ex: &Examples) -> anyhow::Result<Nll> {
        Ok(nll_gather(probs, ex))
    }

    fn softmax_rows(&mut self, weights: &[f32], num_cols: usize) -> anyhow::Result<Vec<f32>> {
        Ok(softmax_rows(weights, num_cols))
    }

    fn forward_loss(&mut self, w: &[f32], ex: &Examples, form: NetForm) -> anyhow::Result<f64> {
        let (logits, rows) = logits_table(w, ex, form.one_hot);
        let nll_sum = cross_entropy_on(&logits, &rows, &ex.targets, ex.num_cols, form.loss, None);
        Ok(nll_sum / ex.len() as f64)
    }

    fn count_pair_batches(
        &mut self,
        num_rows: usize,
        num_cols: usize,
        batches: &mut dyn PairBatches,
    ) -> anyhow::Result<Vec<u32>> {
        let mut counts = vec![0u32; num_rows * num_cols];
        batches.count_into(&mut counts)?;
        Ok(counts)
    }

    fn count_table_nll(&mut self, probs: &[f32], table: &CountTable) -> anyhow::Result<Nll> {
        Ok(count_nll(probs, table))
    }
}

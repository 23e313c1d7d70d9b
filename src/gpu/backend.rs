//! [`Backend`] on the GPU: each operation as kernel dispatches (the network's step is in
//! step.rs), each loop bound checked against the loop budget before anything is recorded.

use crate::adamw::AdamW;
use crate::backend::{Backend, NetForm, Nll, StepLoss, TrainOptions, Transfers};
use crate::corpus::{Batch, CountTable, PairBatches};
use crate::data::Examples;
use crate::limits::TableLimit;

use super::kernels::{
    count_bound, descent_bound, descent_keeps, descent_layout, normalize_bound, softmax_bound,
    text_bound,
};
use super::kernels::{kernel, lanes_for, uniform, Dispatch, Kernel};
use super::kernels::{
    BLOCK_VALUES, COUNT_QUADS, CPU_ADAPTER_GROUPS, ENTRY_THREADS, EXAMPLE_THREADS, PRIVATE_BINS,
    SUM_BLOCK, SUM_BOUND, TEXT_QUADS,
};
use super::step::{cross_entropy_forward, forward_groups, GpuExamples};
use super::{Gpu, GpuError};

/// count_descent steps per command buffer, and pairs per dispatch of count_pairs on a streamed
/// corpus (4 MiB per buffer).
const DESCENT_STEPS_PER_SUBMISSION: usize = 256;
const BATCH_PAIRS: usize = 1 << 20;
/// The examples each workgroup of count_pairs and count_pairs_private counts.
const COUNT_BLOCK: u32 = 4 * COUNT_QUADS * EXAMPLE_THREADS;

// With `writes_history` 1, one workgroup holds the table and appends each step's loss.
uniform! { CountDescentParams(num_rows: u32, num_cols: u32, num_examples: u32, lanes_per_row: u32,
rows_per_thread: u32, steps: u32, first_step: u32, writes_history: u32, reg: f32, lr: f32,
writes_grads: u32) pad 1 }
uniform! { PartialSumsParams(num_values: u32, square: u32) pad 2 }
uniform! { LossTotalParams(num_nll_sums: u32, num_square_sums: u32, num_examples: u32,
num_weights: u32, reg: f32) pad 3 }
uniform! { CountPairsParams(num_examples: u32, num_cols: u32, num_bins: u32) pad 1 }
uniform! { CountTextParams(num_quads: u32, num_cols: u32, num_rows: u32, context_len: u32,
num_bins: u32) pad 3 }
uniform! { NormalizeRowsParams(num_rows: u32, num_cols: u32, smoothing: f32, lanes_per_row: u32) }
uniform! { SoftmaxRowsParams(num_rows: u32, num_cols: u32, lanes_per_row: u32) pad 1 }
uniform! { NllGatherParams(num_examples: u32, num_cols: u32, first_partial: u32) pad 1 }
// count_nll's, sgd_step's and adamw_step's: cells or weights, one thread each.
uniform! { EntriesParams(len: u32, lr: f32) pad 2 }

/// partial_sums levels appended to `out` until at most BLOCK_VALUES sums of the `len` values
/// are left (with `square`, at least one level, which squares them): those sums and their count.
fn sum_levels(
    gpu: &Gpu,
    values: &wgpu::Buffer,
    (mut len, mut square): (u32, bool),
    out: &mut Vec<Dispatch>,
) -> anyhow::Result<(wgpu::Buffer, u32)> {
    let mut sums = values.clone();
    while square || len > BLOCK_VALUES {
        let groups = len.div_ceil(BLOCK_VALUES).max(1);
        let next = gpu.zeroed("partial sums", groups as usize);
        let params = PartialSumsParams::new(len, square as u32);
        let kernel = kernel!(gpu, "partial_sums", "reduce", "sum");
        let buffers = [&sums, &next];
        let sum = Dispatch::new(gpu, kernel, params, &buffers, groups, SUM_BOUND)?;
        out.push(sum);
        (sums, len, square) = (next, groups, false);
    }
    Ok((sums, len))
}

/// partial_sums levels of the `nll` sums and the `squares` (weights, squared by the first level,
/// or sums of squares), then loss_total appending (total, data) to `losses`: fixed trees.
pub(super) fn loss_total(
    gpu: &Gpu,
    nll: (&wgpu::Buffer, u32),
    squares: Option<(&wgpu::Buffer, u32, bool)>,
    (n, num_weights, reg): (u32, u32, f32),
    losses: &GpuLosses,
) -> anyhow::Result<Vec<Dispatch>> {
    let mut out = Vec::new();
    let (nll, nll_len) = sum_levels(gpu, nll.0, (nll.1, false), &mut out)?;
    let squares = squares
        .map(|(values, len, square)| sum_levels(gpu, values, (len, square), &mut out))
        .transpose()?;
    let num_square_sums = squares.as_ref().map_or(0, |s| s.1);
    let params = LossTotalParams::new(nll_len, num_square_sums, n, num_weights, reg);
    let square_sums = squares.as_ref().map_or(&nll, |s| &s.0);
    let kernel = kernel!(gpu, "loss_total", "reduce", "sum");
    let buffers = [&nll, square_sums, &losses.history, &losses.cursor];
    let bound = 2 * SUM_BOUND;
    out.push(Dispatch::new(gpu, kernel, params, &buffers, 1, bound)?);
    Ok(out)
}

/// Whether a table of `num_bins` cells fits the counting kernels' workgroup histogram.
fn fits_workgroup(gpu: &Gpu, num_bins: u32) -> bool {
    num_bins <= PRIVATE_BINS && 4 * PRIVATE_BINS <= gpu.limits.max_compute_workgroup_storage_size
}

/// The count kernels' histogram (shaders/common/histogram.wgsl): in workgroup memory, or not.
const PRIVATE: &[(&str, f64)] = &[("PRIVATE", 1.0)];
const GLOBAL: &[(&str, f64)] = &[("PRIVATE", 0.0)];

/// The most workgroups count_descent spreads a table over on this adapter.
fn most_descent_groups(gpu: &Gpu) -> u32 {
    match gpu.info.device_type {
        wgpu::DeviceType::Cpu => CPU_ADAPTER_GROUPS,
        _ => SUM_BLOCK,
    }
}

/// count_pairs_private where the table fits one workgroup's memory, count_pairs otherwise:
/// `N[context, target] += 1` for `len` pairs. Buffers: contexts, targets, counts; both kernels
/// also read contexts and targets as vec4s, through a second binding of the same buffers (of
/// a 16-byte stand-in when they are shorter).
fn count_pairs(
    gpu: &Gpu,
    [contexts, targets, counts]: [&wgpu::Buffer; 3],
    len: u32,
    (rows, cols): (u32, u32),
) -> anyhow::Result<Dispatch> {
    let num_bins = rows * cols;
    let stand_in;
    let quads = match contexts.size().min(targets.size()) >= 16 {
        true => [contexts, targets],
        false => {
            stand_in = gpu.zeroed("no quads", 4);
            [&stand_in, &stand_in]
        }
    };
    let buffers = [contexts, targets, counts, quads[0], quads[1]];
    let params = CountPairsParams::new(len, cols, num_bins);
    let groups = len.div_ceil(COUNT_BLOCK);
    let private = fits_workgroup(gpu, num_bins);
    let kernel = match private {
        true => kernel!(
            gpu,
            "count_pairs_private",
            "count_pairs",
            PRIVATE,
            "histogram"
        ),
        false => kernel!(gpu, "count_pairs", "count_pairs", GLOBAL, "histogram"),
    };
    let bound = count_bound(num_bins, private);
    Dispatch::new(gpu, kernel, params, &buffers, groups, bound)
}

/// A loss history on the device: (total, data) per step, appended at the device's cursor.
pub struct GpuLosses {
    history: wgpu::Buffer,
    cursor: wgpu::Buffer,
    steps: usize,
}

/// A count table on the device, its shape, and the number of examples it counts.
pub struct GpuCounts {
    buffer: wgpu::Buffer,
    num_rows: u32,
    num_cols: u32,
    num_examples: u32,
}

/// The GPU implementation of the models' operations.
pub struct GpuBackend {
    pub gpu: Gpu,
    span_examples: u32,
}

impl GpuBackend {
    pub fn new(gpu: Gpu) -> GpuBackend {
        GpuBackend {
            gpu,
            span_examples: u32::MAX,
        }
    }

    /// Spans of at most `examples` (tests: the same results across many span boundaries).
    pub fn with_span_examples(mut self, examples: u32) -> GpuBackend {
        self.span_examples = examples.max(1);
        self
    }

    /// The count matrix of all the examples, each span adding into the same table.
    fn counted(&self, ex: &GpuExamples) -> anyhow::Result<wgpu::Buffer> {
        let counts = (self.gpu).zeroed("counts", (ex.num_rows * ex.num_cols) as usize);
        let shape = (ex.num_rows, ex.num_cols);
        let count = |p: &super::step::Span| {
            count_pairs(&self.gpu, [&p.contexts, &p.targets, &counts], p.len, shape)
        };
        let counting: Vec<_> = ex.spans.iter().map(count).collect::<Result<_, _>>()?;
        self.gpu.submit(&counting);
        Ok(counts)
    }

    /// The mean NLL of the sums the `sums` dispatches write, and the impossible examples.
    fn nll(
        &self,
        mut sums: Vec<Dispatch>,
        partials: (&wgpu::Buffer, u32),
        impossible: Option<&wgpu::Buffer>,
        examples: usize,
    ) -> anyhow::Result<Nll> {
        let gpu = &self.gpu;
        let losses = GpuLosses {
            history: gpu.zeroed("loss", 2),
            cursor: gpu.zeroed("history cursor", 1),
            steps: 1,
        };
        let n = examples as u32;
        sums.extend(loss_total(gpu, partials, None, (n, 0, 0.0), &losses)?);
        gpu.submit(&sums);
        // The history holds (total, data); without a penalty both are the mean NLL.
        let finite_mean = gpu.read::<f32>(&losses.history, 2)?[1] as f64;
        let impossible = impossible.map(|b| gpu.read::<u32>(b, 1)).transpose()?;
        Ok(Nll {
            finite_mean,
            impossible: impossible.map_or(0, |i| i[0] as u64),
            examples,
        })
    }

    /// A kernel with `lanes` threads per row of `rows` from `input` to as many f32, read back.
    fn map_rows<T: bytemuck::Pod, P: bytemuck::Pod>(
        &self,
        (kernel, params, bound): (Kernel, P, u64),
        input: &[T],
        (rows, lanes): (u32, u32),
    ) -> anyhow::Result<Vec<f32>> {
        let (gpu, len) = (&self.gpu, input.len());
        let (input, output) = (gpu.upload("rows", input), gpu.zeroed("probs", len));
        let (groups, buffers) = (rows.div_ceil(ENTRY_THREADS / lanes), [&input, &output]);
        gpu.submit(&[Dispatch::new(gpu, kernel, params, &buffers, groups, bound)?]);
        Ok(gpu.read(&output, len)?)
    }
}

impl Backend for GpuBackend {
    type Examples = GpuExamples;
    /// A vector of f32 (never empty: a binding may not be).
    type Buffer = wgpu::Buffer;
    type Losses = GpuLosses;
    type Counts = GpuCounts;
    const KIND: &'static str = "gpu";

    fn upload(&mut self, data: &[f32]) -> anyhow::Result<wgpu::Buffer> {
        Ok(self.gpu.upload("buffer", data))
    }

    fn zeros(&mut self, len: usize) -> anyhow::Result<wgpu::Buffer> {
        Ok(self.gpu.zeroed("buffer", len))
    }

    fn read(&mut self, buffer: &wgpu::Buffer) -> anyhow::Result<Vec<f32>> {
        Ok(self.gpu.read(buffer, (buffer.size() / 4) as usize)?)
    }

    fn losses(&mut self, steps: usize) -> anyhow::Result<GpuLosses> {
        Ok(GpuLosses {
            history: self.gpu.zeroed("loss history", 2 * steps),
            cursor: self.gpu.zeroed("history cursor", 1),
            steps: 0,
        })
    }

    fn read_losses(&mut self, losses: &GpuLosses) -> anyhow::Result<Vec<StepLoss>> {
        let history: Vec<f32> = self.gpu.read(&losses.history, 2 * losses.steps)?;
        let step = |pair: &[f32]| StepLoss {
            total: pair[0] as f64,
            data: pair[1] as f64,
        };
        Ok(history.chunks(2).map(step).collect())
    }

    fn gradient(
        &mut self,
        weights: &wgpu::Buffer,
        ex: &GpuExamples,
        reg: f32,
        form: NetForm,
        grads: &mut wgpu::Buffer,
        losses: &mut GpuLosses,
    ) -> anyhow::Result<()> {
        self.gpu
            .record(&self.step((weights, grads), losses, ex, reg, form)?);
        losses.steps += 1;
        Ok(())
    }

    fn count_table(&mut self, ex: &GpuExamples) -> anyhow::Result<GpuCounts> {
        // Counted the first time the counts path asks.
        if ex.counts.get().is_none() {
            let _ = ex.counts.set(self.counted(ex)?);
        }
        Ok(GpuCounts {
            buffer: ex.counts.get().expect("counted above").clone(),
            num_rows: ex.num_rows,
            num_cols: ex.num_cols,
            num_examples: ex.len,
        })
    }

    fn upload_counts(&mut self, table: &CountTable) -> anyhow::Result<GpuCounts> {
        Ok(GpuCounts {
            buffer: self.gpu.upload("counts", &table.counts),
            num_rows: (table.counts.len() / table.num_cols) as u32,
            num_cols: table.num_cols as u32,
            num_examples: table.examples as u32,
        })
    }

    fn count_descent(
        &mut self,
        weights: &mut wgpu::Buffer,
        grads: &mut wgpu::Buffer,
        counts: &GpuCounts,
        options: &TrainOptions,
        steps: usize,
        losses: &mut GpuLosses,
    ) -> anyhow::Result<()> {
        let gpu = &self.gpu;
        let (rows, cols, n) = (counts.num_rows, counts.num_cols, counts.num_examples);
        let layout = descent_layout(rows, cols, most_descent_groups(gpu));
        let (lanes, rows_per_thread, groups, per_dispatch) = layout;
        let nll_sums = gpu.zeroed("descent nll sums", groups as usize);
        let square_sums = gpu.zeroed("descent square sums", groups as usize);
        // Each thread's (nll, squares) for each step of a dispatch.
        let per_step = 2 * (groups * ENTRY_THREADS) as usize;
        let step_sums = gpu.zeroed("descent step sums", per_step * per_dispatch as usize);
        let (sums, history) = ((&nll_sums, &square_sums), &losses.history);
        let buffers = [
            &counts.buffer,
            weights,
            grads,
            sums.0,
            sums.1,
            history,
            &step_sums,
        ];
        // `steps` steps from `first_step`; `grads` written at the last when `last` is set.
        let descent = |first_step, steps, last: bool| {
            let (writes, reg, lr) = ((groups == 1) as u32, options.reg, options.lr);
            let params = CountDescentParams::new(
                rows,
                cols,
                n,
                lanes,
                rows_per_thread,
                steps,
                first_step,
                writes,
                reg,
                lr,
                last as u32,
            );
            let kernel = match descent_keeps(cols, rows_per_thread) {
                true => kernel!(gpu, "count_descent", "reduce", "softmax"),
                false => kernel!(
                    gpu,
                    "count_descent_wide",
                    "count_descent",
                    &[("wide", 1.0)],
                    "reduce",
                    "softmax"
                ),
            };
            let bound = descent_bound(cols, lanes, rows_per_thread, steps);
            Dispatch::new(gpu, kernel, params, &buffers, groups, bound)
        };
        // Many workgroups: one step per dispatch, all alike but the last, and loss_total after
        // each.
        let (shared, total) = match groups > 1 {
            true => {
                let (sums, squares) = ((&nll_sums, groups), Some((&square_sums, groups, false)));
                let shape = (n, rows * cols, options.reg);
                let total = loss_total(gpu, sums, squares, shape, losses)?;
                (Some([descent(0, 1, false)?, descent(0, 1, true)?]), total)
            }
            false => (None, Vec::new()),
        };
        let mut done = 0;
        while done < steps {
            let end = done + DESCENT_STEPS_PER_SUBMISSION.min(steps - done);
            let mut dispatches = Vec::new();
            for first in (done..end).step_by(per_dispatch as usize) {
                let count = per_dispatch.min((end - first) as u32);
                let last = first + count as usize == steps;
                dispatches.push(match &shared {
                    Some(shared) => shared[last as usize].clone(),
                    None => descent((losses.steps + first) as u32, count, last)?,
                });
                dispatches.extend(total.iter().cloned());
            }
            gpu.record(&dispatches);
            done = end;
            if done < steps {
                gpu.flush();
            }
        }
        losses.steps += steps;
        Ok(())
    }

    fn sgd_update(
        &mut self,
        w: &mut wgpu::Buffer,
        grads: &wgpu::Buffer,
        lr: f32,
    ) -> anyhow::Result<()> {
        let gpu = &self.gpu;
        let len = (w.size() / 4) as u32;
        let (params, kernel) = (EntriesParams::new(len, lr), kernel!(gpu, "sgd_step"));
        let (buffers, groups) = ([grads, &*w], len.div_ceil(ENTRY_THREADS));
        gpu.record(&[Dispatch::new(gpu, kernel, params, &buffers, groups, 0)?]);
        Ok(())
    }

    fn adamw_update(
        &mut self,
        weights: &mut wgpu::Buffer,
        grads: &wgpu::Buffer,
        (m, v): (&mut wgpu::Buffer, &mut wgpu::Buffer),
        t: u32,
        lr: f32,
        adamw: &AdamW,
    ) -> anyhow::Result<()> {
        let gpu = &self.gpu;
        let (bc1, bc2) = adamw.bias_corrections(t);
        let (decay, betas, eps) = (adamw.weight_decay, (adamw.beta1, adamw.beta2), adamw.eps);
        // adamw_step's `Hyper`, the bias corrections 1 - beta^t of step t last.
        let hyper = [lr, decay, betas.0, betas.1, eps, bc1, bc2];
        let hyper = gpu.upload("adamw settings", &hyper);
        let buffers = [&hyper, grads, weights, m, v];
        let len = (weights.size() / 4) as u32;
        let (params, groups) = (EntriesParams::new(len, 0.0), len.div_ceil(ENTRY_THREADS));
        let kernel = kernel!(gpu, "adamw_step");
        gpu.record(&[Dispatch::new(gpu, kernel, params, &buffers, groups, 0)?]);
        Ok(())
    }

    fn describe(&self) -> String {
        self.gpu.describe()
    }

    fn synchronize(&self) -> anyhow::Result<()> {
        self.gpu.flush();
        self.gpu
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| anyhow::anyhow!("the GPU did not finish: {e}"))?;
        Ok(self.gpu.check()?)
    }

    fn transfers(&self) -> Transfers {
        self.gpu.transfers()
    }

    fn load(&mut self, examples: &Examples) -> anyhow::Result<GpuExamples> {
        GpuExamples::upload(&self.gpu, examples, self.span_examples)
    }

    fn count_pairs(&mut self, ex: &GpuExamples) -> anyhow::Result<Vec<u32>> {
        // Counted afresh (the counts path keeps its own copy on the device).
        let (counts, len) = (self.counted(ex)?, ex.num_rows * ex.num_cols);
        Ok(self.gpu.read(&counts, len as usize)?)
    }

    fn normalize_rows(&mut self, counts: &[u32], cols: usize, s: f32) -> anyhow::Result<Vec<f32>> {
        let (rows, cols) = ((counts.len() / cols) as u32, cols as u32);
        let lanes = lanes_for(cols);
        let params = NormalizeRowsParams::new(rows, cols, s, lanes);
        let kernel = kernel!(self.gpu, "normalize_rows");
        let run = (kernel, params, normalize_bound(cols, lanes));
        self.map_rows(run, counts, (rows, lanes))
    }

    fn mean_nll(&mut self, probs: &[f32], ex: &GpuExamples) -> anyhow::Result<Nll> {
        let gpu = &self.gpu;
        let (probs, impossible) = (gpu.upload("probs", probs), gpu.zeroed("impossible", 1));
        let groups = |len: u32| len.div_ceil(BLOCK_VALUES);
        let num_partials = ex.spans.iter().map(|p| groups(p.len)).sum();
        let partials = gpu.zeroed("partials", num_partials as usize);
        let (mut sums, mut first_partial) = (Vec::new(), 0);
        for span in &ex.spans {
            let params = NllGatherParams::new(span.len, ex.num_cols, first_partial);
            let (contexts, targets) = (&span.contexts, &span.targets);
            let buffers = [&probs, contexts, targets, &partials, &impossible];
            let kernel = kernel!(gpu, "nll_gather", "reduce", "sum", "nll");
            let groups = groups(span.len);
            let sum = Dispatch::new(gpu, kernel, params, &buffers, groups, SUM_BOUND)?;
            sums.push(sum);
            first_partial += groups;
        }
        let partials = (&partials, num_partials);
        self.nll(sums, partials, Some(&impossible), ex.len as usize)
    }

    fn softmax_rows(&mut self, weights: &[f32], num_cols: usize) -> anyhow::Result<Vec<f32>> {
        let (rows, cols) = ((weights.len() / num_cols) as u32, num_cols as u32);
        let lanes = lanes_for(cols);
        let params = SoftmaxRowsParams::new(rows, cols, lanes);
        let kernel = kernel!(self.gpu, "softmax_rows", "reduce", "softmax");
        let run = (kernel, params, softmax_bound(cols, lanes));
        self.map_rows(run, weights, (rows, lanes))
    }

    fn table_limit(&self) -> TableLimit {
        let limits = &self.gpu.limits;
        let limit = |max_bytes, name: &str| TableLimit {
            max_bytes,
            name: format!("the device's {name}"),
        };
        let binding = limits.max_storage_buffer_binding_size;
        let binding = limit(binding, "max_storage_buffer_binding_size");
        let buffer = limit(limits.max_buffer_size, "max_buffer_size");
        TableLimit::tightest([binding, buffer, TableLimit::host()])
    }

    fn forward_loss(&mut self, w: &[f32], ex: &GpuExamples, form: NetForm) -> anyhow::Result<f64> {
        if form.one_hot {
            // The one-hot product's forward pass is part of a full step; skip the update.
            return Ok(self.loss_and_gradient(w, ex, 0.0, form)?.0.data);
        }
        let (gpu, cols) = (&self.gpu, ex.num_cols);
        let weights = gpu.upload("weights", w);
        // The spans take turns with one buffer of log-sum-exps.
        let lse = gpu.zeroed("lse", ex.span_len as usize);
        let num_partials = ex.spans.iter().map(|p| forward_groups(p.len, cols)).sum();
        let partials = gpu.zeroed("partials", num_partials as usize);
        let (mut sums, mut first_partial) = (Vec::new(), 0);
        for span in &ex.spans {
            let buffers = [&weights, &span.contexts, &span.targets, &lse, &partials];
            let shape = (span.len, cols, first_partial);
            sums.push(cross_entropy_forward(gpu, form.loss, buffers, shape)?);
            first_partial += forward_groups(span.len, cols);
        }
        let nll = self.nll(sums, (&partials, num_partials), None, ex.len as usize)?;
        Ok(nll.finite_mean)
    }

    /// Clean blocks as text (count_text), others as pairs (count_pairs), through two slots of
    /// buffers in turn: the host fills one while the device counts the other, after that one's
    /// last count. The total counted is checked against the first pass.
    fn count_pair_batches(
        &mut self,
        num_rows: usize,
        num_cols: usize,
        batches: &mut dyn PairBatches,
    ) -> anyhow::Result<Vec<u32>> {
        let gpu = &self.gpu;
        let counts = gpu.zeroed("counts", num_rows * num_cols);
        let (symbols, k) = batches.byte_symbols();
        // A text's bytes and their padding fit one binding (whose size is a multiple of 16).
        let limits = &gpu.limits;
        let binding = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        let most_bytes = binding.min(u32::MAX as u64) as usize / 16 * 16;
        let text = TextCounts {
            symbols: gpu.upload("byte symbols", &symbols),
            counts: &counts,
            shape: (num_rows as u32, num_cols as u32, k as u32),
            most_bytes,
        };
        let (mut slots, mut next) = (<[Slot; 2]>::default(), 0);
        while let Some(batch) = batches.next_batch(most_bytes.saturating_sub(16))? {
            let shape = (num_rows as u32, num_cols as u32);
            match batch {
                Batch::Text(bytes) => {
                    let slot = &mut slots[next];
                    next = 1 - next;
                    slot.wait(gpu)?;
                    slot.last = Some(gpu.submit(&[text.dispatch(gpu, slot, bytes)?]));
                }
                Batch::Pairs { contexts, targets } => {
                    for chunk in contexts
                        .chunks(BATCH_PAIRS)
                        .zip(targets.chunks(BATCH_PAIRS))
                    {
                        let slot = &mut slots[next];
                        next = 1 - next;
                        slot.wait(gpu)?;
                        let count = slot.pairs(gpu, chunk, &counts, shape)?;
                        slot.last = Some(gpu.submit(&[count]));
                    }
                }
            }
        }
        let counts: Vec<u32> = gpu.read(&counts, num_rows * num_cols)?;
        batches.check_total(counts.iter().map(|&n| n as u64).sum())?;
        Ok(counts)
    }

    /// count_nll (per cell: N * -log P, summed per workgroup), then loss_total.
    fn count_table_nll(&mut self, probs: &[f32], table: &CountTable) -> anyhow::Result<Nll> {
        let gpu = &self.gpu;
        let num_cells = table.counts.len() as u32;
        let probs = gpu.upload("probs", probs);
        let counts = gpu.upload("counts", &table.counts);
        let num_partials = num_cells.div_ceil(BLOCK_VALUES);
        let partials = gpu.zeroed("partials", num_partials as usize);
        let impossible = gpu.zeroed("impossible", 1);
        let params = EntriesParams::new(num_cells, 0.0);
        let buffers = [&probs, &counts, &partials, &impossible];
        let kernel = kernel!(gpu, "count_nll", "reduce", "sum", "nll");
        let count_nll = Dispatch::new(gpu, kernel, params, &buffers, num_partials, SUM_BOUND)?;
        let partials = (&partials, num_partials);
        self.nll(vec![count_nll], partials, Some(&impossible), table.examples)
    }
}

/// One of count_pair_batches' two sets of buffers, made when first needed, and its last count.
#[derive(Default)]
struct Slot {
    text: Option<wgpu::Buffer>,
    pairs: Option<(wgpu::Buffer, wgpu::Buffer)>,
    last: Option<wgpu::SubmissionIndex>,
}

impl Slot {
    /// Waits for the slot's last count, so that its buffers may be written.
    fn wait(&mut self, gpu: &Gpu) -> anyhow::Result<()> {
        if let Some(index) = self.last.take() {
            let wait = wgpu::PollType::Wait {
                submission_index: Some(index),
                timeout: None,
            };
            gpu.device
                .poll(wait)
                .map_err(|e| GpuError::Device(e.to_string()))?;
        }
        Ok(())
    }

    /// count_pairs of at most BATCH_PAIRS pairs, written into the slot's pair buffers.
    fn pairs(
        &mut self,
        gpu: &Gpu,
        (contexts, targets): (&[u32], &[u32]),
        counts: &wgpu::Buffer,
        shape: (u32, u32),
    ) -> anyhow::Result<Dispatch> {
        let buffer = || gpu.zeroed("batch pairs", BATCH_PAIRS);
        let (context_buffer, target_buffer) =
            self.pairs.get_or_insert_with(|| (buffer(), buffer()));
        let bytes = bytemuck::cast_slice::<u32, u8>;
        gpu.queue.write_buffer(context_buffer, 0, bytes(contexts));
        gpu.queue.write_buffer(target_buffer, 0, bytes(targets));
        let buffers = [&*context_buffer, &*target_buffer, counts];
        count_pairs(gpu, buffers, contexts.len() as u32, shape)
    }
}

/// What every count_text dispatch of a corpus shares: the byte symbols, the table, its shape
/// (V^K rows, V columns, K), and the most bytes a text buffer may hold.
struct TextCounts<'a> {
    symbols: wgpu::Buffer,
    counts: &'a wgpu::Buffer,
    shape: (u32, u32, u32),
    most_bytes: usize,
}

impl TextCounts<'_> {
    /// count_text of a clean block, written into the slot's text buffer with '\n' after it up
    /// to a whole vec4 (at least one: the end of a last line without one).
    fn dispatch(&self, gpu: &Gpu, slot: &mut Slot, bytes: &[u8]) -> anyhow::Result<Dispatch> {
        let padded = (bytes.len() + 1).next_multiple_of(16);
        if slot
            .text
            .as_ref()
            .is_none_or(|t| (t.size() as usize) < padded)
        {
            // Room for the blocks of about the same size that follow.
            let words = padded.next_multiple_of(1 << 16).min(self.most_bytes) / 4;
            slot.text = Some(gpu.zeroed("batch text", words));
        }
        let text = slot.text.as_ref().expect("made above");
        let aligned = bytes.len() / 4 * 4;
        let mut tail = bytes[aligned..].to_vec();
        tail.resize(padded - aligned, b'\n');
        if aligned > 0 {
            gpu.queue.write_buffer(text, 0, &bytes[..aligned]);
        }
        gpu.queue.write_buffer(text, aligned as u64, &tail);
        let (rows, cols, k) = self.shape;
        let num_bins = rows * cols;
        let private = fits_workgroup(gpu, num_bins);
        let num_quads = (padded / 16) as u32;
        let params = CountTextParams::new(num_quads, cols, rows, k, num_bins);
        let buffers = [&self.symbols, text, self.counts, text];
        let groups = num_quads.div_ceil(TEXT_QUADS * EXAMPLE_THREADS);
        let bound = text_bound(k, num_bins, private);
        let kernel = match private {
            true => kernel!(gpu, "count_text", "count_text", PRIVATE, "histogram"),
            false => kernel!(gpu, "count_text_global", "count_text", GLOBAL, "histogram"),
        };
        Dispatch::new(gpu, kernel, params, &buffers, groups, bound)
    }
}

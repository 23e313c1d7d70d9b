//! The [`Backend`] operations as sequences of kernel dispatches (dispatches.rs), each
//! submitted through [`Gpu::submit`].
//!
//! - The examples are loaded here: sorted by context, cut into segments for the backward pass
//!   and, when larger than one storage binding, into chunks of consecutive examples, each
//!   bound as its own buffers; a step dispatches the forward and backward kernels once per
//!   chunk (step.rs).
//! - The count model: count_pairs, normalize_rows, then nll_gather and loss_total for its
//!   mean NLL.
//! - The counts path (`train_counts`): `count_pairs` into a device buffer, once per set of
//!   examples, then count_descent steps over every row (count_descent.rs).
//!
//! Every dispatch's loop bound is computed from the sizes the host chose and checked against
//! the loop budget (loop_budget.rs) before anything is recorded.

use std::cell::OnceCell;

use crate::backend::{Backend, NetForm, Nll, StepLoss, TrainOptions};
use crate::data::Examples;
use crate::limits::TableLimit;
use crate::optim::{AdamState, AdamW};

use super::count_descent::{CountDescent, Table};
use super::dispatches::{
    self, cross_entropy_forward_groups, AdamwStepBuffers, CrossEntropyForwardBuffers,
    NllGatherBuffers, Pairs,
};
use super::kernels::{Dispatch, EXAMPLE_THREADS};
use super::loop_budget;
use super::loss::{LossTotal, Squares};
use super::params::{AdamwHyper, AdamwStepParams, NllGatherParams};
use super::Gpu;
use crate::corpus::{CountTable, PairBatches};

/// Shortest run of examples that one thread of cross_entropy_backward adds up (longer when a
/// context has so many examples that grad_rows would otherwise loop over too many segments).
/// Shorter runs mean more parallel threads and more partial sums for grad_rows to add.
const MIN_SEGMENT_LEN: u32 = 256;

/// count_descent steps recorded into one command buffer (each is a few short dispatches).
const DESCENT_STEPS_PER_SUBMISSION: usize = 256;

/// One chunk of the examples, bound as its own buffers: at most [`GpuExamples`]'s
/// `chunk_len` consecutive examples, with the segments that lie in it.
pub(super) struct ExampleChunk {
    pub(super) len: u32,
    pub(super) contexts: wgpu::Buffer,
    pub(super) targets: wgpu::Buffer,
    /// Example offsets of the chunk's segments from the chunk's first example (one more than
    /// there are segments).
    pub(super) segment_starts: wgpu::Buffer,
    /// The context (row of W) of each of the chunk's segments.
    pub(super) segment_rows: wgpu::Buffer,
    /// The index of the chunk's first segment among all the segments.
    pub(super) first_segment: u32,
    pub(super) num_segments: u32,
}

/// Examples on the device, sorted by context and cut into chunks, with the segment tables of
/// the backward pass.
pub struct GpuExamples {
    pub(super) len: u32,
    pub(super) num_rows: u32,
    pub(super) num_cols: u32,
    /// At least one (empty when there are no examples).
    pub(super) chunks: Vec<ExampleChunk>,
    /// The most examples of any chunk: the length of the `lse` buffer of a step.
    pub(super) chunk_len: u32,
    /// Segment offsets of each row (one more than there are rows).
    pub(super) row_segments: wgpu::Buffer,
    pub(super) num_segments: u32,
    /// Examples per segment (the last segment of a context, or one cut by a chunk boundary,
    /// may be shorter).
    pub(super) segment_len: u32,
    /// The most segments of any context.
    pub(super) most_segments_per_row: u32,
    /// The count matrix of these examples, counted on the device the first time the counts
    /// path needs it.
    pub(super) counts: OnceCell<wgpu::Buffer>,
}

impl GpuExamples {
    /// How many chunks the examples were cut into (one unless they exceed a binding).
    pub fn num_chunks(&self) -> usize {
        self.chunks.len()
    }
}

/// Checks that `n` examples can be indexed by the kernels: they index examples (and count
/// them, so no count can wrap) with u32. Data larger than one binding is cut into chunks.
pub fn check_fits(n: usize) -> anyhow::Result<()> {
    if n > u32::MAX as usize {
        anyhow::bail!(
            "{n} examples are more than the GPU kernels can index ({}); use fewer words or --device cpu",
            u32::MAX
        );
    }
    Ok(())
}

/// The largest buffer a kernel can bind whole: the tighter of the adapter's binding and
/// buffer limits.
fn largest_binding(limits: &wgpu::Limits) -> u64 {
    limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size)
}

/// Examples per chunk: each chunk's contexts, targets and `lse` (4 bytes an example each)
/// must fit one binding.
pub fn chunk_len(limits: &wgpu::Limits) -> u32 {
    (largest_binding(limits) / 4).clamp(1, u32::MAX as u64) as u32
}

/// The GPU implementation of the models' operations.
pub struct GpuBackend {
    gpu: Gpu,
    /// The most examples of one chunk, when set below what a binding holds.
    chunk_examples: Option<u32>,
}

impl GpuBackend {
    pub fn new(gpu: Gpu) -> GpuBackend {
        GpuBackend {
            gpu,
            chunk_examples: None,
        }
    }

    /// Cuts the examples into chunks of at most `examples` (at least one), below what one
    /// binding holds: the results are the same, so tests cross many chunk boundaries on small
    /// data this way.
    pub fn with_chunk_examples(mut self, examples: u32) -> GpuBackend {
        self.chunk_examples = Some(examples.max(1));
        self
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Counts all the examples into `counts` (zeroed by the caller), each chunk adding into
    /// the same table (integer atomics: exact).
    fn count_pairs_into(&self, ex: &GpuExamples, counts: &wgpu::Buffer) -> anyhow::Result<()> {
        let counting = ex
            .chunks
            .iter()
            .map(|chunk| {
                let pairs = Pairs {
                    len: chunk.len,
                    num_rows: ex.num_rows,
                    num_cols: ex.num_cols,
                    contexts: &chunk.contexts,
                    targets: &chunk.targets,
                };
                dispatches::count_pairs(&self.gpu, &pairs, counts)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        self.gpu.submit(&counting);
        Ok(())
    }

    /// The count matrix of `ex` on the device, counted the first time it is asked for.
    fn device_counts<'a>(&self, ex: &'a GpuExamples) -> anyhow::Result<&'a wgpu::Buffer> {
        if let Some(counts) = ex.counts.get() {
            return Ok(counts);
        }
        let counts = self
            .gpu
            .zeroed("counts", (ex.num_rows * ex.num_cols) as usize);
        self.count_pairs_into(ex, &counts)?;
        Ok(ex.counts.get_or_init(|| counts))
    }

    /// Runs `steps` steps of count_descent from `weights` on the counts of `ex`.
    fn count_descent(
        &self,
        weights: &[f32],
        ex: &GpuExamples,
        options: &TrainOptions,
        steps: usize,
    ) -> anyhow::Result<CountDescent> {
        let counts = self.device_counts(ex)?;
        let table = Table {
            num_rows: ex.num_rows,
            num_cols: ex.num_cols,
            num_examples: ex.len,
        };
        self.count_descent_on(counts, table, weights, options, steps)
    }

    /// Runs `steps` steps of count_descent from `weights` on the count table in `counts`,
    /// recorded DESCENT_STEPS_PER_SUBMISSION to a submission.
    pub(super) fn count_descent_on(
        &self,
        counts: &wgpu::Buffer,
        table: Table,
        weights: &[f32],
        options: &TrainOptions,
        steps: usize,
    ) -> anyhow::Result<CountDescent> {
        let descent = CountDescent::new(&self.gpu, counts, weights, table, options, steps)?;
        let mut done = 0;
        while done < steps {
            let chunk = DESCENT_STEPS_PER_SUBMISSION.min(steps - done);
            self.gpu
                .submit_pass(|pass| descent.record(&self.gpu, pass, done as u32, chunk as u32));
            done += chunk;
        }
        Ok(descent)
    }

    /// The two-kernel pattern of a mean loss without penalty: `sums` write one partial sum
    /// per workgroup into `partials` (`num_partials` of them, in order), and loss_total adds
    /// them into the mean over `num_examples`. Returns that mean.
    pub(super) fn mean_of_sums(
        &self,
        sums: &[Dispatch<'_>],
        partials: &wgpu::Buffer,
        num_partials: u32,
        num_examples: u32,
    ) -> anyhow::Result<f32> {
        let gpu = &self.gpu;
        let history = gpu.zeroed("loss", 2);
        let cursor = gpu.zeroed("history cursor", 1);
        let none = Squares::None;
        let total = LossTotal::new(
            gpu,
            partials,
            num_partials,
            none,
            num_examples,
            0,
            0.0,
            &history,
            &cursor,
        );
        gpu.submit_pass(|pass| {
            let max = gpu.max_groups();
            sums.iter().for_each(|dispatch| dispatch.record(pass, max));
            total.record(gpu, pass);
        });
        // The history holds (total, data); without a penalty both are the mean NLL.
        let history: Vec<f32> = gpu.read(&history, 2)?;
        Ok(history[1])
    }

    /// The (total, data) pairs of a loss history buffer.
    pub(super) fn read_losses(
        &self,
        history: &wgpu::Buffer,
        steps: usize,
    ) -> anyhow::Result<Vec<StepLoss>> {
        let history: Vec<f32> = self.gpu.read(history, 2 * steps)?;
        Ok(history
            .chunks(2)
            .map(|pair| StepLoss {
                total: pair[0] as f64,
                data: pair[1] as f64,
            })
            .collect())
    }

    /// The mean of a per-example loss over all the chunks of `ex`: `sum` dispatches one
    /// kernel on a chunk, writing `groups_of(chunk length)` workgroup sums into `partials`
    /// from `first_partial`; loss_total adds them in order (mean_of_sums).
    fn mean_over_chunks<'g>(
        &'g self,
        ex: &GpuExamples,
        groups_of: impl Fn(u32) -> u32,
        sum: impl Fn(&ExampleChunk, &wgpu::Buffer, u32) -> anyhow::Result<Dispatch<'g>>,
    ) -> anyhow::Result<f32> {
        let groups: u32 = ex.chunks.iter().map(|chunk| groups_of(chunk.len)).sum();
        let partials = self.gpu.zeroed("partials", groups as usize);
        let mut first_partial = 0;
        let mut sums = Vec::with_capacity(ex.chunks.len());
        for chunk in &ex.chunks {
            sums.push(sum(chunk, &partials, first_partial)?);
            first_partial += groups_of(chunk.len);
        }
        self.mean_of_sums(&sums, &partials, groups, ex.len)
    }
}

impl Backend for GpuBackend {
    type Examples = GpuExamples;

    fn describe(&self) -> String {
        self.gpu.describe()
    }

    fn load(&mut self, examples: &Examples) -> anyhow::Result<GpuExamples> {
        let n = examples.len();
        check_fits(n)?;
        let limits = &self.gpu.limits;
        let chunk_len = chunk_len(limits).min(self.chunk_examples.unwrap_or(u32::MAX));
        let grouped = examples.grouped_by_context();
        let offsets = &grouped.row_offsets;
        let most_examples = (0..examples.num_rows)
            .map(|row| offsets[row + 1] - offsets[row])
            .max()
            .unwrap_or(0);
        let segment_len = loop_budget::segment_len(most_examples as u64, MIN_SEGMENT_LEN);
        // Cut each context's run of examples into segments of at most segment_len, and at
        // the chunk boundaries, so that every segment lies in one chunk.
        let mut segment_starts = Vec::new();
        let mut row_segments = Vec::with_capacity(examples.num_rows + 1);
        for row in 0..examples.num_rows {
            row_segments.push(segment_starts.len() as u32);
            let (mut start, end) = (offsets[row] as u64, offsets[row + 1] as u64);
            while start < end {
                let chunk_end = (start / chunk_len as u64 + 1) * chunk_len as u64;
                segment_starts.push(start as u32);
                start = (start + segment_len as u64).min(end).min(chunk_end);
            }
        }
        row_segments.push(segment_starts.len() as u32);
        let num_segments = segment_starts.len() as u64;
        let most_segments_per_row = row_segments
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or(0);
        // Every buffer of a step must fit one binding: the chunks do by their length, the
        // per-(segment, column) sums are checked here, before anything is uploaded.
        let segment_grad_bytes = 4 * num_segments * examples.num_cols as u64;
        anyhow::ensure!(
            segment_grad_bytes <= largest_binding(limits),
            "{n} examples need {} MiB of per-segment gradient sums, more than this adapter's largest storage binding of {} MiB; use fewer words or --device cpu",
            segment_grad_bytes.div_ceil(1 << 20),
            largest_binding(limits) >> 20
        );

        let gpu = &self.gpu;
        let ex = &grouped.examples;
        let num_chunks = n.div_ceil(chunk_len as usize).max(1);
        let chunks = (0..num_chunks)
            .map(|c| {
                let first = c * chunk_len as usize;
                let end = (first + chunk_len as usize).min(n);
                let (lo, hi) = (first as u32, end as u32);
                let first_segment = segment_starts.partition_point(|&s| s < lo);
                let end_segment = segment_starts.partition_point(|&s| s < hi);
                let local_starts: Vec<u32> = segment_starts[first_segment..end_segment]
                    .iter()
                    .map(|&s| s - lo)
                    .chain(std::iter::once(hi - lo))
                    .collect();
                let rows: Vec<u32> = segment_starts[first_segment..end_segment]
                    .iter()
                    .map(|&s| ex.contexts[s as usize])
                    .collect();
                ExampleChunk {
                    len: hi - lo,
                    contexts: gpu.upload("contexts", &ex.contexts[first..end]),
                    targets: gpu.upload("targets", &ex.targets[first..end]),
                    segment_starts: gpu.upload("segment starts", &local_starts),
                    segment_rows: gpu.upload("segment rows", &rows),
                    first_segment: first_segment as u32,
                    num_segments: (end_segment - first_segment) as u32,
                }
            })
            .collect();
        Ok(GpuExamples {
            len: n as u32,
            num_rows: ex.num_rows as u32,
            num_cols: ex.num_cols as u32,
            chunks,
            chunk_len: chunk_len.min(n as u32),
            row_segments: gpu.upload("row segments", &row_segments),
            num_segments: num_segments as u32,
            segment_len,
            most_segments_per_row,
            counts: OnceCell::new(),
        })
    }

    fn count_pairs(&mut self, ex: &GpuExamples) -> anyhow::Result<Vec<u32>> {
        // Counted afresh (the counts path keeps its own copy on the device).
        let num_counts = (ex.num_rows * ex.num_cols) as usize;
        let counts = self.gpu.zeroed("counts", num_counts);
        self.count_pairs_into(ex, &counts)?;
        Ok(self.gpu.read(&counts, num_counts)?)
    }

    fn normalize_rows(
        &mut self,
        counts: &[u32],
        num_cols: usize,
        smoothing: f32,
    ) -> anyhow::Result<Vec<f32>> {
        let gpu = &self.gpu;
        let num_rows = (counts.len() / num_cols) as u32;
        let counts_buffer = gpu.upload("counts", counts);
        let probs = gpu.zeroed("probs", counts.len());
        let size = (num_rows, num_cols as u32);
        let normalize = dispatches::normalize_rows(gpu, &counts_buffer, &probs, size, smoothing)?;
        gpu.submit(&[normalize]);
        Ok(gpu.read(&probs, counts.len())?)
    }

    fn mean_nll(&mut self, probs: &[f32], ex: &GpuExamples) -> anyhow::Result<Nll> {
        let gpu = &self.gpu;
        let probs = gpu.upload("probs", probs);
        let impossible = gpu.zeroed("impossible", 1);
        let groups_of = |examples: u32| examples.div_ceil(EXAMPLE_THREADS);
        let mean = self.mean_over_chunks(ex, groups_of, |chunk, partials, first_partial| {
            let buffers = NllGatherBuffers {
                probs: &probs,
                contexts: &chunk.contexts,
                targets: &chunk.targets,
                partials,
                impossible: &impossible,
            };
            let params = NllGatherParams {
                num_examples: chunk.len,
                num_cols: ex.num_cols,
                first_partial,
                ..Default::default()
            };
            dispatches::nll_gather(gpu, buffers, params)
        })?;
        let impossible: Vec<u32> = gpu.read(&impossible, 1)?;
        Ok(Nll {
            finite_mean: mean as f64,
            impossible: impossible[0] as u64,
            examples: ex.len as usize,
        })
    }

    fn loss_and_gradient(
        &mut self,
        weights: &[f32],
        ex: &GpuExamples,
        reg: f32,
    ) -> anyhow::Result<(StepLoss, Vec<f32>)> {
        self.step_gradient(weights, ex, reg, NetForm::default())
    }

    fn train(
        &mut self,
        weights: &mut [f32],
        ex: &GpuExamples,
        options: &TrainOptions,
        steps: usize,
    ) -> anyhow::Result<Vec<StepLoss>> {
        self.train_steps(weights, ex, options, steps, NetForm::default())
    }

    fn loss_and_gradient_with(
        &mut self,
        weights: &[f32],
        ex: &GpuExamples,
        reg: f32,
        form: NetForm,
    ) -> anyhow::Result<(StepLoss, Vec<f32>)> {
        self.step_gradient(weights, ex, reg, form)
    }

    fn train_with(
        &mut self,
        weights: &mut [f32],
        ex: &GpuExamples,
        options: &TrainOptions,
        steps: usize,
        form: NetForm,
    ) -> anyhow::Result<Vec<StepLoss>> {
        self.train_steps(weights, ex, options, steps, form)
    }

    fn softmax_rows(&mut self, weights: &[f32], num_cols: usize) -> anyhow::Result<Vec<f32>> {
        let gpu = &self.gpu;
        let num_rows = (weights.len() / num_cols) as u32;
        let weights_buffer = gpu.upload("weights", weights);
        let probs = gpu.zeroed("probs", weights.len());
        let size = (num_rows, num_cols as u32);
        let softmax = dispatches::softmax_rows(gpu, &weights_buffer, &probs, size)?;
        gpu.submit(&[softmax]);
        Ok(gpu.read(&probs, weights.len())?)
    }

    fn table_limit(&self) -> TableLimit {
        let limits = &self.gpu.limits;
        TableLimit::tightest([
            TableLimit {
                max_bytes: limits.max_storage_buffer_binding_size,
                name: "the device's max_storage_buffer_binding_size".to_string(),
            },
            TableLimit {
                max_bytes: limits.max_buffer_size,
                name: "the device's max_buffer_size".to_string(),
            },
            TableLimit::host(),
        ])
    }

    fn forward_loss(
        &mut self,
        weights: &[f32],
        ex: &GpuExamples,
        form: NetForm,
    ) -> anyhow::Result<f64> {
        if form.one_hot {
            // The one-hot product's forward pass is part of a full step; skip the update.
            return Ok(self.step_gradient(weights, ex, 0.0, form)?.0.data);
        }
        let gpu = &self.gpu;
        let weights = gpu.upload("weights", weights);
        // The chunks take turns with one buffer of log-sum-exps.
        let lse = gpu.zeroed("lse", ex.chunk_len as usize);
        let groups_of = |examples: u32| cross_entropy_forward_groups(examples, ex.num_cols);
        let mean = self.mean_over_chunks(ex, groups_of, |chunk, partials, first_partial| {
            let buffers = CrossEntropyForwardBuffers {
                logits: &weights,
                rows: &chunk.contexts,
                targets: &chunk.targets,
                lse: &lse,
                partials,
            };
            let (n, cols) = (chunk.len, ex.num_cols);
            dispatches::cross_entropy_forward(gpu, form.loss, buffers, n, cols, first_partial)
        })?;
        Ok(mean as f64)
    }

    fn adamw_step(
        &mut self,
        weights: &mut [f32],
        grads: &[f32],
        state: &mut AdamState,
        lr: f32,
        adamw: &AdamW,
    ) -> anyhow::Result<()> {
        state.t += 1;
        let (bc1, bc2) = AdamState::bias_corrections(state.t, adamw);
        let hyper = AdamwHyper {
            lr,
            weight_decay: adamw.weight_decay,
            beta1: adamw.beta1,
            beta2: adamw.beta2,
            eps: adamw.eps,
            bc1,
            bc2,
        };
        let gpu = &self.gpu;
        let n = weights.len();
        let weights_buffer = gpu.upload("weights", weights);
        let m = gpu.upload("adam m", &state.m);
        let v = gpu.upload("adam v", &state.v);
        let buffers = AdamwStepBuffers {
            hyper: &gpu.upload("adamw settings", &[hyper]),
            grads: &gpu.upload("grads", grads),
            weights: &weights_buffer,
            m: &m,
            v: &v,
        };
        let params = AdamwStepParams {
            num_weights: n as u32,
            ..Default::default()
        };
        gpu.submit(&[dispatches::adamw_step(gpu, buffers, params)?]);
        weights.copy_from_slice(&gpu.read::<f32>(&weights_buffer, n)?);
        state.m = gpu.read(&m, n)?;
        state.v = gpu.read(&v, n)?;
        Ok(())
    }

    fn count_loss_and_gradient(
        &mut self,
        weights: &[f32],
        ex: &GpuExamples,
        reg: f32,
    ) -> anyhow::Result<(StepLoss, Vec<f32>)> {
        let options = TrainOptions { lr: 0.0, reg };
        let descent = self.count_descent(weights, ex, &options, 1)?;
        let grads = self.gpu.read(&descent.grads, weights.len())?;
        Ok((self.read_losses(&descent.history, 1)?[0], grads))
    }

    fn train_counts(
        &mut self,
        weights: &mut [f32],
        ex: &GpuExamples,
        options: &TrainOptions,
        steps: usize,
    ) -> anyhow::Result<Vec<StepLoss>> {
        if steps == 0 {
            return Ok(Vec::new());
        }
        let descent = self.count_descent(weights, ex, options, steps)?;
        let trained: Vec<f32> = self.gpu.read(&descent.weights, weights.len())?;
        weights.copy_from_slice(&trained);
        self.read_losses(&descent.history, steps)
    }

    fn count_pair_batches(
        &mut self,
        num_rows: usize,
        num_cols: usize,
        batches: &mut dyn PairBatches,
    ) -> anyhow::Result<Vec<u32>> {
        self.count_batches(num_rows, num_cols, batches)
    }

    fn count_table_nll(&mut self, probs: &[f32], table: &CountTable) -> anyhow::Result<Nll> {
        self.table_nll(probs, table)
    }

    fn train_on_counts(
        &mut self,
        weights: &mut [f32],
        table: &CountTable,
        options: &TrainOptions,
        steps: usize,
    ) -> anyhow::Result<Vec<StepLoss>> {
        if steps == 0 {
            return Ok(Vec::new());
        }
        let descent = self.table_descent(weights, table, options, steps)?;
        let trained: Vec<f32> = self.gpu.read(&descent.weights, weights.len())?;
        weights.copy_from_slice(&trained);
        self.read_losses(&descent.history, steps)
    }

    fn count_table_loss_and_gradient(
        &mut self,
        weights: &[f32],
        table: &CountTable,
        reg: f32,
    ) -> anyhow::Result<(StepLoss, Vec<f32>)> {
        let options = TrainOptions { lr: 0.0, reg };
        let descent = self.table_descent(weights, table, &options, 1)?;
        let grads = self.gpu.read(&descent.grads, weights.len())?;
        Ok((self.read_losses(&descent.history, 1)?[0], grads))
    }
}

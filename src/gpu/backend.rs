//! The [`Backend`] operations as kernel dispatches (dispatches.rs; the network's step is
//! step.rs), each loop bound checked against the loop budget before anything is recorded.
//!
//! count_descent, per row (1 to 64 lanes): the loss terms, the gradient, W -= lr * grad. A
//! small table goes to one workgroup, which appends each step's loss itself, many steps per
//! dispatch; a larger one takes one step per dispatch, then loss_total.

use crate::adamw::{AdamState, AdamW};
use crate::backend::{Backend, NetForm, Nll, StepLoss, TrainOptions, Transfers};
use crate::data::Examples;
use crate::limits::TableLimit;

use super::dispatches::{
    self, cross_entropy_forward_groups, AdamwHyper, AdamwStepBuffers, AdamwStepParams,
    CrossEntropyForwardBuffers, NllGatherBuffers, NllGatherParams, Pairs, SgdStepParams,
};
use super::kernels::{self, bind, dispatch, kernel, lanes_for, log2, per_lane, uniform};
use super::kernels::{Dispatch, EXAMPLE_THREADS, LOOP_BUDGET};
use super::step::{loss_total, ExampleChunk, GpuExamples, Squares, SUM_BLOCK};
use super::{Gpu, GpuError};
use crate::corpus::{CountTable, PairBatches};

/// count_descent steps recorded into one command buffer (each is a few short dispatches).
const DESCENT_STEPS_PER_SUBMISSION: usize = 256;
/// Training steps on the examples recorded into one command buffer.
const STEPS_PER_SUBMISSION: usize = 64;
/// Threads per workgroup of count_descent (its THREADS).
const THREADS: u32 = 64;
/// The most rounds of rows one workgroup takes to hold a whole table: up to 1,024 rows of up
/// to 256 columns run as one workgroup with many steps per dispatch.
const SMALL_TABLE_ROUNDS: u32 = 16;
/// Most pairs per dispatch of count_pairs on a streamed corpus (4 MiB per buffer).
const BATCH_PAIRS: usize = 1 << 20;

uniform! {
    /// count_descent's parameters; with `writes_history` 1, one workgroup holds the table and
    /// appends each step's loss to the history itself.
    struct CountDescentParams {
        num_rows: u32, num_cols: u32, num_examples: u32, lanes_per_row: u32, rows_per_thread: u32,
        steps: u32, first_step: u32, writes_history: u32, reg: f32, lr: f32, _pad: [u32; 2]
    }
}

/// count_descent's loop bound:
/// `steps * (rows_per_thread * (3 * ceil(C / L) + 2 * log2(L) + 1) + 64 + 1)`.
pub(super) fn loop_bound(cols: u32, lanes: u32, rows_per_thread: u32, steps: u32) -> u64 {
    let per_row = 3 * per_lane(cols, lanes) + 2 * log2(lanes) + 1;
    steps as u64 * (rows_per_thread as u64 * per_row + 64 + 1)
}

/// How count_descent spreads a table's rows over the threads, and its steps per dispatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    lanes_per_row: u32,
    rows_per_thread: u32,
    groups: u32,
    /// More than one only when one workgroup holds the table.
    steps_per_dispatch: u32,
}

impl Layout {
    /// Lanes for the row length; one workgroup for a small table, else enough rounds per
    /// thread to need at most 4,096 workgroups (loss_total's list).
    fn of(num_rows: u32, num_cols: u32) -> Layout {
        let lanes = lanes_for(num_cols);
        let rounds = num_rows.div_ceil(THREADS / lanes).max(1);
        let (rows_per_thread, groups, steps_per_dispatch) = if rounds <= SMALL_TABLE_ROUNDS {
            let per_step = loop_bound(num_cols, lanes, rounds, 1);
            (rounds, 1, (LOOP_BUDGET / per_step).max(1) as u32)
        } else {
            let rows_per_thread = rounds.div_ceil(SUM_BLOCK);
            (rows_per_thread, rounds.div_ceil(rows_per_thread), 1)
        };
        Layout {
            lanes_per_row: lanes,
            rows_per_thread,
            groups,
            steps_per_dispatch,
        }
    }

    /// The worst-case loop iterations of a dispatch of `steps` steps.
    fn loop_bound(&self, cols: u32, steps: u32) -> u64 {
        loop_bound(cols, self.lanes_per_row, self.rows_per_thread, steps)
    }
}

/// A vector of f32 on the device.
pub struct GpuBuffer {
    buffer: wgpu::Buffer,
    len: usize,
}

/// A loss history on the device: (total, data) per step, appended at the device's cursor.
pub struct GpuLosses {
    pub(super) history: wgpu::Buffer,
    pub(super) cursor: wgpu::Buffer,
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

    /// Chunks of at most `examples` (at least one): the same results, many chunk boundaries.
    pub fn with_chunk_examples(mut self, examples: u32) -> GpuBackend {
        self.chunk_examples = Some(examples.max(1));
        self
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// The count matrix of all the examples, each chunk adding into the same table (integer
    /// atomics: exact).
    fn counted(&self, ex: &GpuExamples) -> anyhow::Result<wgpu::Buffer> {
        let counts = (self.gpu).zeroed("counts", (ex.num_rows * ex.num_cols) as usize);
        let mut counting = Vec::with_capacity(ex.chunks.len());
        for chunk in &ex.chunks {
            let pairs = Pairs {
                len: chunk.len,
                num_rows: ex.num_rows,
                num_cols: ex.num_cols,
                contexts: &chunk.contexts,
                targets: &chunk.targets,
            };
            counting.push(dispatches::count_pairs(&self.gpu, &pairs, &counts)?);
        }
        self.gpu.submit(&counting);
        Ok(counts)
    }

    /// A mean loss without penalty: `sums` write `num_partials` partial sums into `partials`
    /// in order, and loss_total adds them into the mean over `num_examples`.
    fn mean_of_sums<'g>(
        &'g self,
        mut sums: Vec<Dispatch<'g>>,
        partials: &wgpu::Buffer,
        num_partials: u32,
        num_examples: u32,
    ) -> anyhow::Result<f32> {
        let gpu = &self.gpu;
        let history = gpu.zeroed("loss", 2);
        let cursor = gpu.zeroed("history cursor", 1);
        let partials = (partials, num_partials);
        let (n, none) = (num_examples, Squares::None);
        sums.extend(loss_total(
            gpu, partials, none, n, 0, 0.0, &history, &cursor,
        )?);
        gpu.submit(&sums);
        // The history holds (total, data); without a penalty both are the mean NLL.
        Ok(gpu.read::<f32>(&history, 2)?[1])
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
        self.mean_of_sums(sums, &partials, groups, ex.len)
    }
}

impl Backend for GpuBackend {
    type Examples = GpuExamples;
    type Buffer = GpuBuffer;
    type Losses = GpuLosses;
    type Counts = GpuCounts;
    const KIND: &'static str = "gpu";

    fn upload(&mut self, data: &[f32]) -> anyhow::Result<GpuBuffer> {
        let buffer = self.gpu.upload("buffer", data);
        Ok(GpuBuffer {
            buffer,
            len: data.len(),
        })
    }

    fn zeros(&mut self, len: usize) -> anyhow::Result<GpuBuffer> {
        let buffer = self.gpu.zeroed("buffer", len);
        Ok(GpuBuffer { buffer, len })
    }

    fn read(&mut self, buffer: &GpuBuffer) -> anyhow::Result<Vec<f32>> {
        Ok(self.gpu.read(&buffer.buffer, buffer.len)?)
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
        weights: &GpuBuffer,
        ex: &GpuExamples,
        reg: f32,
        form: NetForm,
        grads: &mut GpuBuffer,
        losses: &mut GpuLosses,
    ) -> anyhow::Result<()> {
        let options = TrainOptions { lr: 0.0, reg };
        let buffers = (&weights.buffer, &grads.buffer);
        let (gradient, _) = self.step(buffers, losses, ex, &options, form)?;
        let (mut pending, max) = (self.gpu.pending(), self.gpu.max_groups());
        let mut pass = pending.pass();
        gradient.iter().for_each(|d| d.record(&mut pass, max));
        losses.steps += 1;
        Ok(())
    }

    fn count_table(&mut self, ex: &GpuExamples) -> anyhow::Result<GpuCounts> {
        // Counted the first time the counts path asks.
        let buffer = match ex.counts.get() {
            Some(counts) => counts.clone(),
            None => {
                let counts = self.counted(ex)?;
                ex.counts.get_or_init(|| counts).clone()
            }
        };
        Ok(GpuCounts {
            buffer,
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
        weights: &mut GpuBuffer,
        grads: &mut GpuBuffer,
        counts: &GpuCounts,
        options: &TrainOptions,
        steps: usize,
        losses: &mut GpuLosses,
    ) -> anyhow::Result<()> {
        let gpu = &self.gpu;
        let (rows, cols) = (counts.num_rows, counts.num_cols);
        let layout = Layout::of(rows, cols);
        let per_dispatch = layout.steps_per_dispatch;
        kernels::check("count_descent", layout.loop_bound(cols, per_dispatch))?;
        let nll_sums = gpu.zeroed("descent nll sums", layout.groups as usize);
        let square_sums = gpu.zeroed("descent square sums", layout.groups as usize);
        let buffers = [
            &counts.buffer,
            &weights.buffer,
            &grads.buffer,
            &nll_sums,
            &square_sums,
        ];
        let buffers = [&buffers[..], &[&losses.history]].concat();
        let kernel = kernel!(gpu, "count_descent", "reduce", "softmax");
        let bind_steps = |first_step, steps| {
            let params = CountDescentParams {
                num_rows: rows,
                num_cols: cols,
                num_examples: counts.num_examples,
                lanes_per_row: layout.lanes_per_row,
                rows_per_thread: layout.rows_per_thread,
                steps,
                first_step,
                writes_history: (layout.groups == 1) as u32,
                reg: options.reg,
                lr: options.lr,
                ..Default::default()
            };
            bind(&gpu.device, &kernel, &gpu.params(params), &buffers)
        };
        // Many workgroups: one step per dispatch, one binding, and loss_total after each.
        let total = (layout.groups > 1)
            .then(|| {
                let squares = Squares::Sums(&square_sums, layout.groups);
                let (n, reg, history) = (counts.num_examples, options.reg, &losses.history);
                let (sums, cursor) = ((&nll_sums, layout.groups), &losses.cursor);
                loss_total(gpu, sums, squares, n, rows * cols, reg, history, cursor)
            })
            .transpose()?;
        let shared = total.is_some().then(|| bind_steps(0, 1));
        let max = gpu.max_groups();
        let mut done = 0;
        while done < steps {
            let end = done + DESCENT_STEPS_PER_SUBMISSION.min(steps - done);
            let mut pending = gpu.pending();
            let mut pass = pending.pass();
            for first in (done..end).step_by(per_dispatch as usize) {
                let n = per_dispatch.min((end - first) as u32);
                let group = match &shared {
                    Some(group) => group.clone(),
                    None => bind_steps((losses.steps + first) as u32, n),
                };
                let bound = layout.loop_bound(cols, n);
                dispatch(&mut pass, &kernel, &group, layout.groups, max, bound);
                for sum in total.iter().flatten() {
                    sum.record(&mut pass, max);
                }
            }
            drop(pass);
            drop(pending);
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
        weights: &mut GpuBuffer,
        grads: &GpuBuffer,
        lr: f32,
    ) -> anyhow::Result<()> {
        let params = SgdStepParams {
            num_weights: weights.len as u32,
            lr,
            ..Default::default()
        };
        let gpu = &self.gpu;
        let update = dispatches::sgd_step(gpu, &grads.buffer, &weights.buffer, params)?;
        update.record(&mut gpu.pending().pass(), gpu.max_groups());
        Ok(())
    }

    fn adamw_update(
        &mut self,
        weights: &mut GpuBuffer,
        grads: &GpuBuffer,
        (m, v): (&mut GpuBuffer, &mut GpuBuffer),
        t: u32,
        lr: f32,
        adamw: &AdamW,
    ) -> anyhow::Result<()> {
        let gpu = &self.gpu;
        let (bc1, bc2) = AdamState::bias_corrections(t, adamw);
        let hyper = AdamwHyper {
            lr,
            weight_decay: adamw.weight_decay,
            beta1: adamw.beta1,
            beta2: adamw.beta2,
            eps: adamw.eps,
            bc1,
            bc2,
        };
        let buffers = AdamwStepBuffers {
            hyper: &gpu.upload("adamw settings", &[hyper]),
            grads: &grads.buffer,
            weights: &weights.buffer,
            m: &m.buffer,
            v: &v.buffer,
        };
        let params = AdamwStepParams {
            num_weights: weights.len as u32,
            ..Default::default()
        };
        let update = dispatches::adamw_step(gpu, buffers, params)?;
        update.record(&mut gpu.pending().pass(), gpu.max_groups());
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
        let most_per_chunk = self.chunk_examples.unwrap_or(u32::MAX);
        GpuExamples::upload(&self.gpu, examples, most_per_chunk)
    }

    fn count_pairs(&mut self, ex: &GpuExamples) -> anyhow::Result<Vec<u32>> {
        // Counted afresh (the counts path keeps its own copy on the device).
        let counts = self.counted(ex)?;
        Ok(self
            .gpu
            .read(&counts, (ex.num_rows * ex.num_cols) as usize)?)
    }

    fn normalize_rows(
        &mut self,
        counts: &[u32],
        num_cols: usize,
        smoothing: f32,
    ) -> anyhow::Result<Vec<f32>> {
        let gpu = &self.gpu;
        let counts_buffer = gpu.upload("counts", counts);
        let probs = gpu.zeroed("probs", counts.len());
        let size = ((counts.len() / num_cols) as u32, num_cols as u32);
        gpu.submit(&[dispatches::normalize_rows(
            gpu,
            &counts_buffer,
            &probs,
            size,
            smoothing,
        )?]);
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

    fn train(
        &mut self,
        weights: &mut [f32],
        ex: &GpuExamples,
        options: &TrainOptions,
        steps: usize,
        form: NetForm,
    ) -> anyhow::Result<Vec<StepLoss>> {
        if steps == 0 {
            return Ok(Vec::new());
        }
        let (w, grads) = (self.upload(weights)?, self.zeros(weights.len())?);
        let mut losses = self.losses(steps)?;
        let buffers = (&w.buffer, &grads.buffer);
        let (gradient, update) = self.step(buffers, &losses, ex, options, form)?;
        let max = self.gpu.max_groups();
        for first in (0..steps).step_by(STEPS_PER_SUBMISSION) {
            {
                let mut pending = self.gpu.pending();
                let mut pass = pending.pass();
                for _ in first..steps.min(first + STEPS_PER_SUBMISSION) {
                    gradient.iter().for_each(|d| d.record(&mut pass, max));
                    update.record(&mut pass, max);
                }
            }
            self.gpu.flush();
        }
        losses.steps = steps;
        weights.copy_from_slice(&self.read(&w)?);
        self.read_losses(&losses)
    }

    fn softmax_rows(&mut self, weights: &[f32], num_cols: usize) -> anyhow::Result<Vec<f32>> {
        let gpu = &self.gpu;
        let weights_buffer = gpu.upload("weights", weights);
        let probs = gpu.zeroed("probs", weights.len());
        let size = ((weights.len() / num_cols) as u32, num_cols as u32);
        gpu.submit(&[dispatches::softmax_rows(
            gpu,
            &weights_buffer,
            &probs,
            size,
        )?]);
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
            return Ok(self.loss_and_gradient(weights, ex, 0.0, form)?.0.data);
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

    /// The pairs go through two device buffers of at most BATCH_PAIRS pairs each, in turn:
    /// the host uploads one batch while the device counts the other, and waits for a
    /// buffer's last count before writing into it again.
    fn count_pair_batches(
        &mut self,
        num_rows: usize,
        num_cols: usize,
        batches: &mut dyn PairBatches,
    ) -> anyhow::Result<Vec<u32>> {
        let gpu = &self.gpu;
        let counts = gpu.zeroed("counts", num_rows * num_cols);
        // (contexts, targets, the submission that last counted from them)
        let slot = || {
            let pairs = || gpu.zeroed("batch pairs", BATCH_PAIRS);
            (pairs(), pairs(), None::<wgpu::SubmissionIndex>)
        };
        let mut slots = [slot(), slot()];
        let mut next = 0;
        while let Some(batch) = batches.next_batch()? {
            let parts = batch
                .contexts
                .chunks(BATCH_PAIRS)
                .zip(batch.targets.chunks(BATCH_PAIRS));
            for (contexts, targets) in parts {
                let slot = &mut slots[next];
                next = 1 - next;
                if let Some(index) = slot.2.take() {
                    let wait = wgpu::PollType::Wait {
                        submission_index: Some(index),
                        timeout: None,
                    };
                    gpu.device
                        .poll(wait)
                        .map_err(|e| GpuError::Device(e.to_string()))?;
                }
                gpu.queue
                    .write_buffer(&slot.0, 0, bytemuck::cast_slice(contexts));
                gpu.queue
                    .write_buffer(&slot.1, 0, bytemuck::cast_slice(targets));
                let pairs = Pairs {
                    len: contexts.len() as u32,
                    num_rows: num_rows as u32,
                    num_cols: num_cols as u32,
                    contexts: &slot.0,
                    targets: &slot.1,
                };
                slot.2 = Some(gpu.submit(&[dispatches::count_pairs(gpu, &pairs, &counts)?]));
            }
        }
        Ok(gpu.read(&counts, num_rows * num_cols)?)
    }

    /// count_nll (per cell: N * -log P, summed per workgroup), then loss_total.
    fn count_table_nll(&mut self, probs: &[f32], table: &CountTable) -> anyhow::Result<Nll> {
        let gpu = &self.gpu;
        let num_cells = table.counts.len() as u32;
        let probs = gpu.upload("probs", probs);
        let counts = gpu.upload("counts", &table.counts);
        let num_partials = num_cells.div_ceil(EXAMPLE_THREADS);
        let partials = gpu.zeroed("partials", num_partials as usize);
        let impossible = gpu.zeroed("impossible", 1);
        let count_nll =
            dispatches::count_nll(gpu, &probs, &counts, &partials, &impossible, num_cells)?;
        let n = table.examples as u32;
        let mean = self.mean_of_sums(vec![count_nll], &partials, num_partials, n)?;
        let impossible: Vec<u32> = gpu.read(&impossible, 1)?;
        Ok(Nll {
            finite_mean: mean as f64,
            impossible: impossible[0] as u64,
            examples: table.examples,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_tables_take_one_workgroup_and_many_steps_per_dispatch() {
        let bigram = Layout::of(27, 27);
        assert_eq!((bigram.groups, bigram.rows_per_thread), (1, 1));
        assert_eq!(
            bigram.steps_per_dispatch,
            (LOOP_BUDGET / (3 * 27 + 1 + 65)) as u32
        );
        let trigram = Layout::of(729, 27);
        assert_eq!((trigram.groups, trigram.rows_per_thread), (1, 12));
        assert!(trigram.loop_bound(27, trigram.steps_per_dispatch) <= LOOP_BUDGET);
    }

    #[test]
    fn large_tables_spread_over_at_most_4096_workgroups_within_budget() {
        // Context 3 and 4 of the lecture's alphabet, a 5,000-symbol bigram, and the longest
        // rows (65,536 columns) at the largest row counts a 1 GiB table allows.
        for (rows, cols) in [
            (19_683, 27),
            (531_441, 27),
            (5_000, 5_000),
            (4_096, 65_536),
            ((1u32 << 28) / 27, 27),
            (1 << 27, 2),
        ] {
            let layout = Layout::of(rows, cols);
            assert!(layout.groups <= SUM_BLOCK, "{rows} x {cols}: {layout:?}");
            assert!(
                layout.groups * layout.rows_per_thread * (THREADS / layout.lanes_per_row) >= rows
            );
            assert_eq!(layout.steps_per_dispatch, 1);
            let b = layout.loop_bound(cols, 1);
            assert!(
                b <= LOOP_BUDGET,
                "{rows} x {cols}: {b} iterations, {layout:?}"
            );
        }
    }
}

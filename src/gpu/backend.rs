//! The [`Backend`] operations as sequences of kernel dispatches (dispatches.rs), each
//! submitted through [`Gpu::submit`].
//!
//! - `load` uploads the examples in chunks and segments (examples.rs); the network's steps
//!   on them are step.rs.
//! - The count model: count_pairs, normalize_rows, then nll_gather and loss_total for its
//!   mean NLL.
//! - The counts path (`train_counts`): `count_pairs` into a device buffer, once per set of
//!   examples, then count_descent steps over every row (count_descent.rs).
//!
//! Every dispatch's loop bound is computed from the sizes the host chose and checked against
//! the loop budget (kernels.rs) before anything is recorded.

use crate::adamw::{AdamState, AdamW};
use crate::backend::{Backend, NetForm, Nll, StepLoss, TrainOptions, Transfers};
use crate::data::Examples;
use crate::limits::TableLimit;

use super::count_descent::{CountDescent, Table};
use super::dispatches::{
    self, cross_entropy_forward_groups, AdamwHyper, AdamwStepBuffers, AdamwStepParams,
    CrossEntropyForwardBuffers, NllGatherBuffers, NllGatherParams, Pairs, SgdStepParams,
};
use super::examples::{ExampleChunk, GpuExamples};
use super::kernels::{Dispatch, EXAMPLE_THREADS};
use super::loss::{LossTotal, Squares};
use super::step::StepBuffers;
use super::Gpu;
use crate::corpus::{CountTable, PairBatches};

/// count_descent steps recorded into one command buffer (each is a few short dispatches).
const DESCENT_STEPS_PER_SUBMISSION: usize = 256;

/// A vector of f32 on the device.
pub struct GpuBuffer {
    buffer: wgpu::Buffer,
    len: usize,
}

/// A loss history on the device: (total, data) per step, appended at the device's cursor.
pub struct GpuLosses {
    history: wgpu::Buffer,
    cursor: wgpu::Buffer,
    steps: usize,
}

/// A count table on the device, and its shape.
pub struct GpuCounts {
    buffer: wgpu::Buffer,
    table: Table,
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
    pub(super) fn history_losses(
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

/// adamw_step's settings at step `t`.
fn adamw_hyper(t: u32, lr: f32, adamw: &AdamW) -> AdamwHyper {
    let (bc1, bc2) = AdamState::bias_corrections(t, adamw);
    AdamwHyper {
        lr,
        weight_decay: adamw.weight_decay,
        beta1: adamw.beta1,
        beta2: adamw.beta2,
        eps: adamw.eps,
        bc1,
        bc2,
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
        self.history_losses(&losses.history, losses.steps)
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
        let b = StepBuffers {
            weights: &weights.buffer,
            grads: &grads.buffer,
            history: &losses.history,
            cursor: &losses.cursor,
        };
        self.record_gradient(b, ex, reg, form)?;
        losses.steps += 1;
        Ok(())
    }

    fn count_table(&mut self, ex: &GpuExamples) -> anyhow::Result<GpuCounts> {
        let table = Table {
            num_rows: ex.num_rows,
            num_cols: ex.num_cols,
            num_examples: ex.len,
        };
        let buffer = self.device_counts(ex)?.clone();
        Ok(GpuCounts { buffer, table })
    }

    fn upload_counts(&mut self, table: &CountTable) -> anyhow::Result<GpuCounts> {
        let shape = Table {
            num_rows: (table.counts.len() / table.num_cols) as u32,
            num_cols: table.num_cols as u32,
            num_examples: table.examples as u32,
        };
        let buffer = self.gpu.upload("counts", &table.counts);
        Ok(GpuCounts {
            buffer,
            table: shape,
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
        let b = StepBuffers {
            weights: &weights.buffer,
            grads: &grads.buffer,
            history: &losses.history,
            cursor: &losses.cursor,
        };
        let descent = CountDescent::new(gpu, &counts.buffer, b, counts.table, options)?;
        // At most DESCENT_STEPS_PER_SUBMISSION steps to a submission.
        let mut done = 0;
        while done < steps {
            let piece = DESCENT_STEPS_PER_SUBMISSION.min(steps - done);
            let first = (losses.steps + done) as u32;
            gpu.record_pass(|pass| descent.record(gpu, pass, first, piece as u32));
            done += piece;
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
        gpu.record_pass(|pass| update.record(pass, gpu.max_groups()));
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
        let buffers = AdamwStepBuffers {
            hyper: &gpu.upload("adamw settings", &[adamw_hyper(t, lr, adamw)]),
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
        gpu.record_pass(|pass| update.record(pass, gpu.max_groups()));
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
        form: NetForm,
    ) -> anyhow::Result<(StepLoss, Vec<f32>)> {
        self.step_gradient(weights, ex, reg, form)
    }

    fn train(
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
}

//! The [`Backend`] operations as sequences of kernel dispatches.
//!
//! One training step is five dispatches in one compute pass (wgpu orders them and makes each
//! one's writes visible to the next):
//!
//! ```text
//! cross_entropy_forward   per example: lse_i, nll_i -> per-workgroup partial sums
//! cross_entropy_backward  per (segment, column): sum of softmax - onehot
//! grad_rows               per weight: segment sums / n + L2 gradient
//! loss_total              one workgroup: mean NLL + reg * mean(W^2), appended to the history
//! sgd_step                per weight: W -= lr * grad
//! ```
//!
//! Many steps are recorded into one submission and the loss history is read back once.
//!
//! The counts path (`train_counts`) is `count_pairs` into a device buffer followed by
//! `count_descent`, one workgroup that loops over up to STEPS_PER_DISPATCH steps: the
//! counts never leave the device and the loss history is read back once at the end.

use crate::backend::{Backend, Nll, StepLoss, TrainOptions};
use crate::data::Examples;

use super::kernels::{
    bind, dispatch, LongParams, Params, ENTRY_THREADS, EXAMPLE_THREADS, PRIVATE_HISTOGRAM_BINS,
    PRIVATE_HISTOGRAM_EXAMPLES,
};
use super::Gpu;

/// Longest run of examples that one thread of cross_entropy_backward adds up. Shorter runs
/// mean more parallel threads and more partial sums for grad_rows to add.
const SEGMENT_LEN: u32 = 256;

/// Training steps recorded into one command buffer.
const STEPS_PER_SUBMISSION: usize = 64;

/// Most steps one dispatch of count_descent runs: a long dispatch can trip the watchdog of a
/// GPU that also drives a display.
const STEPS_PER_DISPATCH: usize = 1000;

/// Examples on the device, sorted by context, with the segment tables of the backward pass.
pub struct GpuExamples {
    len: u32,
    num_rows: u32,
    num_cols: u32,
    contexts: wgpu::Buffer,
    targets: wgpu::Buffer,
    /// Example offsets of the segments (one more than there are segments).
    segment_starts: wgpu::Buffer,
    /// The context (row of W) of each segment.
    segment_rows: wgpu::Buffer,
    /// Segment offsets of each row (one more than there are rows).
    row_segments: wgpu::Buffer,
    num_segments: u32,
}

/// The GPU implementation of the models' operations.
pub struct GpuBackend {
    gpu: Gpu,
}

fn f(x: f32) -> u32 {
    x.to_bits()
}

impl GpuBackend {
    pub fn new(gpu: Gpu) -> GpuBackend {
        GpuBackend { gpu }
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    fn max_groups(&self) -> u32 {
        self.gpu.limits.max_compute_workgroups_per_dimension
    }

    fn submit(&self, encoder: wgpu::CommandEncoder) {
        self.gpu.queue.submit([encoder.finish()]);
    }
}

/// Buffers of one or more training steps on a set of examples.
struct StepBuffers {
    forward: wgpu::BindGroup,
    backward: wgpu::BindGroup,
    grad: wgpu::BindGroup,
    total: wgpu::BindGroup,
    update: wgpu::BindGroup,
    weights: wgpu::Buffer,
    grads: wgpu::Buffer,
    history: wgpu::Buffer,
    example_groups: u32,
    num_weights: u32,
}

impl GpuBackend {
    fn step_buffers(
        &self,
        weights: &[f32],
        ex: &GpuExamples,
        options: &TrainOptions,
        steps: usize,
    ) -> StepBuffers {
        let gpu = &self.gpu;
        let k = &gpu.kernels;
        let num_weights = ex.num_rows * ex.num_cols;
        let example_groups = ex.len.div_ceil(EXAMPLE_THREADS);

        let weights_buffer = gpu.upload("weights", weights);
        let grads = gpu.zeroed("grads", num_weights as usize);
        let lse = gpu.zeroed("lse", ex.len as usize);
        let partials = gpu.zeroed("partials", example_groups as usize);
        let segment_grads = gpu.zeroed("segment grads", (ex.num_segments * ex.num_cols) as usize);
        let history = gpu.zeroed("loss history", 2 * steps);
        let cursor = gpu.zeroed("history cursor", 1);

        let forward = bind(
            &gpu.device,
            &k.cross_entropy_forward,
            &gpu.params(Params::new(&[ex.len, ex.num_cols])),
            &[&weights_buffer, &ex.contexts, &ex.targets, &lse, &partials],
        );
        let backward = bind(
            &gpu.device,
            &k.cross_entropy_backward,
            &gpu.params(Params::new(&[ex.num_segments, ex.num_cols])),
            &[
                &weights_buffer,
                &ex.targets,
                &lse,
                &ex.segment_starts,
                &ex.segment_rows,
                &segment_grads,
            ],
        );
        let grad = bind(
            &gpu.device,
            &k.grad_rows,
            &gpu.params(Params::new(&[
                ex.num_rows,
                ex.num_cols,
                ex.len,
                f(options.reg),
            ])),
            &[&weights_buffer, &ex.row_segments, &segment_grads, &grads],
        );
        let total = bind(
            &gpu.device,
            &k.loss_total,
            &gpu.params(Params::new(&[
                example_groups,
                ex.len,
                num_weights,
                f(options.reg),
            ])),
            &[&partials, &weights_buffer, &history, &cursor],
        );
        let update = bind(
            &gpu.device,
            &k.sgd_step,
            &gpu.params(Params::new(&[num_weights, f(options.lr)])),
            &[&grads, &weights_buffer],
        );
        StepBuffers {
            forward,
            backward,
            grad,
            total,
            update,
            weights: weights_buffer,
            grads,
            history,
            example_groups,
            num_weights,
        }
    }

    /// Records the loss and gradient of one step, and the update when `update` is set.
    fn record_step(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        b: &StepBuffers,
        ex: &GpuExamples,
        update: bool,
    ) {
        let k = &self.gpu.kernels;
        let max = self.max_groups();
        let entry_groups = |n: u32| n.div_ceil(ENTRY_THREADS);
        dispatch(
            pass,
            &k.cross_entropy_forward,
            &b.forward,
            b.example_groups,
            max,
        );
        dispatch(
            pass,
            &k.cross_entropy_backward,
            &b.backward,
            entry_groups(ex.num_segments * ex.num_cols),
            max,
        );
        dispatch(
            pass,
            &k.grad_rows,
            &b.grad,
            entry_groups(b.num_weights),
            max,
        );
        dispatch(pass, &k.loss_total, &b.total, 1, max);
        if update {
            dispatch(
                pass,
                &k.sgd_step,
                &b.update,
                entry_groups(b.num_weights),
                max,
            );
        }
    }

    /// Records the counting of all the examples into `counts` (zeroed by the caller):
    /// `count_pairs_private` when the table fits in workgroup memory, else `count_pairs`.
    fn record_count_pairs(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        ex: &GpuExamples,
        counts: &wgpu::Buffer,
    ) {
        let gpu = &self.gpu;
        let k = &gpu.kernels;
        let num_bins = ex.num_rows * ex.num_cols;
        let fits = num_bins <= PRIVATE_HISTOGRAM_BINS
            && 4 * PRIVATE_HISTOGRAM_BINS <= gpu.limits.max_compute_workgroup_storage_size;
        let (pipeline, params, groups) = if fits {
            let params = Params::new(&[ex.len, ex.num_cols, num_bins, PRIVATE_HISTOGRAM_EXAMPLES]);
            (
                &k.count_pairs_private,
                params,
                ex.len.div_ceil(PRIVATE_HISTOGRAM_EXAMPLES),
            )
        } else {
            let params = Params::new(&[ex.len, ex.num_cols]);
            (&k.count_pairs, params, ex.len.div_ceil(EXAMPLE_THREADS))
        };
        let group = bind(
            &gpu.device,
            pipeline,
            &gpu.params(params),
            &[&ex.contexts, &ex.targets, counts],
        );
        let mut pass = encoder.begin_compute_pass(&Default::default());
        dispatch(&mut pass, pipeline, &group, groups, self.max_groups());
    }

    /// Counts the examples on the device and runs `steps` steps of count_descent from
    /// `weights`; returns the buffers of the weights, the last gradient and the loss history.
    fn count_descent(
        &self,
        weights: &[f32],
        ex: &GpuExamples,
        options: &TrainOptions,
        steps: usize,
    ) -> (wgpu::Buffer, wgpu::Buffer, wgpu::Buffer) {
        let gpu = &self.gpu;
        let num_weights = (ex.num_rows * ex.num_cols) as usize;
        let counts = gpu.zeroed("counts", num_weights);
        let weights_buffer = gpu.upload("weights", weights);
        let grads = gpu.zeroed("grads", num_weights);
        let history = gpu.zeroed("loss history", 2 * steps);
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        self.record_count_pairs(&mut encoder, ex, &counts);
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            for first in (0..steps).step_by(STEPS_PER_DISPATCH) {
                let chunk = STEPS_PER_DISPATCH.min(steps - first);
                let group = bind(
                    &gpu.device,
                    &gpu.kernels.count_descent,
                    &gpu.params(LongParams::new(&[
                        ex.num_rows,
                        ex.num_cols,
                        ex.len,
                        f(options.reg),
                        f(options.lr),
                        chunk as u32,
                        first as u32,
                    ])),
                    &[&counts, &weights_buffer, &grads, &history],
                );
                // One workgroup: it loops over the steps itself.
                dispatch(
                    &mut pass,
                    &gpu.kernels.count_descent,
                    &group,
                    1,
                    self.max_groups(),
                );
            }
        }
        self.submit(encoder);
        (weights_buffer, grads, history)
    }

    fn read_history(&self, b: &StepBuffers, steps: usize) -> anyhow::Result<Vec<StepLoss>> {
        self.read_losses(&b.history, steps)
    }

    /// The (total, data) pairs of a loss history buffer.
    fn read_losses(&self, history: &wgpu::Buffer, steps: usize) -> anyhow::Result<Vec<StepLoss>> {
        let history: Vec<f32> = self.gpu.read(history, 2 * steps)?;
        Ok(history
            .chunks(2)
            .map(|pair| StepLoss {
                total: pair[0] as f64,
                data: pair[1] as f64,
            })
            .collect())
    }
}

impl Backend for GpuBackend {
    type Examples = GpuExamples;

    fn describe(&self) -> String {
        self.gpu.describe()
    }

    fn load(&mut self, examples: &Examples) -> anyhow::Result<GpuExamples> {
        // Each array of the examples is one storage binding; they are not split into chunks.
        let bytes = 4 * examples.len() as u64;
        let largest = self.gpu.limits.max_storage_buffer_binding_size;
        if bytes > largest {
            anyhow::bail!(
                "{} examples take {} MiB per array on the GPU, above the adapter's largest \
                 storage binding ({} MiB); use --device cpu for data this large",
                examples.len(),
                bytes >> 20,
                largest >> 20
            );
        }
        let grouped = examples.grouped_by_context();
        // Cut each context's run of examples into segments of at most SEGMENT_LEN.
        let mut segment_starts = Vec::new();
        let mut segment_rows = Vec::new();
        let mut row_segments = Vec::with_capacity(examples.num_rows + 1);
        for row in 0..examples.num_rows {
            row_segments.push(segment_rows.len() as u32);
            let (start, end) = (grouped.row_offsets[row], grouped.row_offsets[row + 1]);
            for s in (start..end).step_by(SEGMENT_LEN as usize) {
                segment_starts.push(s);
                segment_rows.push(row as u32);
            }
        }
        row_segments.push(segment_rows.len() as u32);
        segment_starts.push(examples.len() as u32);

        let gpu = &self.gpu;
        let ex = &grouped.examples;
        Ok(GpuExamples {
            len: ex.len() as u32,
            num_rows: ex.num_rows as u32,
            num_cols: ex.num_cols as u32,
            contexts: gpu.upload("contexts", &ex.contexts),
            targets: gpu.upload("targets", &ex.targets),
            segment_starts: gpu.upload("segment starts", &segment_starts),
            segment_rows: gpu.upload("segment rows", &segment_rows),
            row_segments: gpu.upload("row segments", &row_segments),
            num_segments: segment_rows.len() as u32,
        })
    }

    fn count_pairs(&mut self, ex: &GpuExamples) -> anyhow::Result<Vec<u32>> {
        let gpu = &self.gpu;
        let num_counts = (ex.num_rows * ex.num_cols) as usize;
        let counts = gpu.zeroed("counts", num_counts);
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        self.record_count_pairs(&mut encoder, ex, &counts);
        self.submit(encoder);
        Ok(gpu.read(&counts, num_counts)?)
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
        let group = bind(
            &gpu.device,
            &gpu.kernels.normalize_rows,
            &gpu.params(Params::new(&[num_rows, num_cols as u32, f(smoothing)])),
            &[&counts_buffer, &probs],
        );
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            // One workgroup per row.
            dispatch(
                &mut pass,
                &gpu.kernels.normalize_rows,
                &group,
                num_rows,
                self.max_groups(),
            );
        }
        self.submit(encoder);
        Ok(gpu.read(&probs, counts.len())?)
    }

    fn mean_nll(&mut self, probs: &[f32], ex: &GpuExamples) -> anyhow::Result<Nll> {
        let gpu = &self.gpu;
        let k = &gpu.kernels;
        let groups = ex.len.div_ceil(EXAMPLE_THREADS);
        let probs_buffer = gpu.upload("probs", probs);
        let partials = gpu.zeroed("partials", groups as usize);
        let impossible = gpu.zeroed("impossible", 1);
        let history = gpu.zeroed("loss", 2);
        let cursor = gpu.zeroed("history cursor", 1);
        let gather = bind(
            &gpu.device,
            &k.nll_gather,
            &gpu.params(Params::new(&[ex.len, ex.num_cols])),
            &[
                &probs_buffer,
                &ex.contexts,
                &ex.targets,
                &partials,
                &impossible,
            ],
        );
        // The count model has no weights to penalize: loss_total with zero weights.
        let total = bind(
            &gpu.device,
            &k.loss_total,
            &gpu.params(Params::new(&[groups, ex.len, 0, f(0.0)])),
            &[&partials, &probs_buffer, &history, &cursor],
        );
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            dispatch(&mut pass, &k.nll_gather, &gather, groups, self.max_groups());
            dispatch(&mut pass, &k.loss_total, &total, 1, self.max_groups());
        }
        self.submit(encoder);
        let loss: Vec<f32> = gpu.read(&history, 2)?;
        let impossible: Vec<u32> = gpu.read(&impossible, 1)?;
        Ok(Nll {
            finite_mean: loss[1] as f64,
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
        let options = TrainOptions { lr: 0.0, reg };
        let b = self.step_buffers(weights, ex, &options, 1);
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            self.record_step(&mut pass, &b, ex, false);
        }
        self.submit(encoder);
        let grads = self.gpu.read(&b.grads, b.num_weights as usize)?;
        let loss = self.read_history(&b, 1)?[0];
        Ok((loss, grads))
    }

    fn train(
        &mut self,
        weights: &mut [f32],
        ex: &GpuExamples,
        options: &TrainOptions,
        steps: usize,
    ) -> anyhow::Result<Vec<StepLoss>> {
        if steps == 0 {
            return Ok(Vec::new());
        }
        let b = self.step_buffers(weights, ex, options, steps);
        let mut done = 0;
        while done < steps {
            let chunk = STEPS_PER_SUBMISSION.min(steps - done);
            let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                for _ in 0..chunk {
                    self.record_step(&mut pass, &b, ex, true);
                }
            }
            self.submit(encoder);
            done += chunk;
        }
        let trained: Vec<f32> = self.gpu.read(&b.weights, weights.len())?;
        weights.copy_from_slice(&trained);
        self.read_history(&b, steps)
    }

    fn softmax_rows(&mut self, weights: &[f32], num_cols: usize) -> anyhow::Result<Vec<f32>> {
        let gpu = &self.gpu;
        let num_rows = (weights.len() / num_cols) as u32;
        let weights_buffer = gpu.upload("weights", weights);
        let probs = gpu.zeroed("probs", weights.len());
        let group = bind(
            &gpu.device,
            &gpu.kernels.softmax_rows,
            &gpu.params(Params::new(&[num_rows, num_cols as u32])),
            &[&weights_buffer, &probs],
        );
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            let groups = num_rows.div_ceil(ENTRY_THREADS);
            dispatch(
                &mut pass,
                &gpu.kernels.softmax_rows,
                &group,
                groups,
                self.max_groups(),
            );
        }
        self.submit(encoder);
        Ok(gpu.read(&probs, weights.len())?)
    }

    fn count_loss_and_gradient(
        &mut self,
        weights: &[f32],
        ex: &GpuExamples,
        reg: f32,
    ) -> anyhow::Result<(StepLoss, Vec<f32>)> {
        let options = TrainOptions { lr: 0.0, reg };
        let (_, grads, history) = self.count_descent(weights, ex, &options, 1);
        let grads = self.gpu.read(&grads, weights.len())?;
        Ok((self.read_losses(&history, 1)?[0], grads))
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
        let (trained, _, history) = self.count_descent(weights, ex, options, steps);
        let trained: Vec<f32> = self.gpu.read(&trained, weights.len())?;
        weights.copy_from_slice(&trained);
        self.read_losses(&history, steps)
    }
}

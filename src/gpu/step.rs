//! One training step on the examples, as kernel dispatches in one compute pass (wgpu orders
//! them and makes each one's writes visible to the next):
//!
//! ```text
//! one_hot_matmul          (one-hot form only) logits = onehot(contexts) @ W
//! cross_entropy_forward   per example (1 to 64 lanes): lse_i, nll_i -> per-workgroup sums
//! cross_entropy_backward  per (segment, column): sum of softmax - onehot
//! (the two above once per chunk of examples: each chunk's buffers fit one binding)
//! one_hot_matmul_backward (one-hot form only) onehot^T @ dlogits, per block of examples
//! grad_rows               per weight: segment sums / n + L2 gradient
//! partial_sums, loss_total  mean NLL + reg * mean(W^2), appended to the history (loss.rs)
//! sgd_step                per weight: W -= lr * grad
//! ```
//!
//! The chunks' sums meet in `partials` and the per-segment sums, added in a fixed order as
//! for one chunk. Many steps are recorded into one submission and the loss history is read
//! back once.

use crate::backend::{NetForm, StepLoss, TrainOptions};

use super::backend::GpuBackend;
use super::dispatches::{
    self, cross_entropy_forward_groups, CrossEntropyBackwardBuffers, CrossEntropyBackwardParams,
    CrossEntropyForwardBuffers, GradRowsBuffers, GradRowsParams, OneHotMatmulBackwardParams,
    OneHotMatmulParams, SgdStepParams,
};
use super::examples::GpuExamples;
use super::kernels::{self, Dispatch};
use super::loss::{LossTotal, Squares};
use super::Gpu;

/// Fewest examples per block of one_hot_matmul_backward (more when there are so many
/// examples that grad_rows would otherwise loop over too many blocks).
const MIN_ONE_HOT_BLOCK: u32 = 4096;

/// Rows of W that one dispatch of one_hot_matmul adds up.
const ONE_HOT_ROW_CHUNK: u32 = 4096;

/// Training steps on the examples recorded into one command buffer.
const STEPS_PER_SUBMISSION: usize = 64;

/// The dispatches of one or more training steps on a set of examples.
struct Step<'g> {
    /// Everything up to the gradient in W: the loss's partial sums and grad_rows.
    gradient: Vec<Dispatch<'g>>,
    total: LossTotal,
    update: Dispatch<'g>,
}

/// What a step reads and writes that outlives it: W, its gradient, and the loss history
/// with the device's cursor into it.
#[derive(Clone, Copy)]
pub(super) struct StepBuffers<'a> {
    pub weights: &'a wgpu::Buffer,
    pub grads: &'a wgpu::Buffer,
    pub history: &'a wgpu::Buffer,
    pub cursor: &'a wgpu::Buffer,
}

/// Where the forward and backward kernels find the logits and the rows of the examples.
struct LogitsSource<'g> {
    table: wgpu::Buffer,
    /// Per chunk: the row of the table of each example, and the segment starts.
    chunks: Vec<ChunkSource>,
    /// What cross_entropy_backward writes: per (segment, column) sums.
    backward_out: wgpu::Buffer,
    /// What grad_rows adds up per row of W, with `row_segments`.
    grad_in: wgpu::Buffer,
    row_segments: wgpu::Buffer,
    /// Examples per segment of cross_entropy_backward.
    segment_len: u32,
    /// The most segments of grad_rows' rows.
    most_segments: u32,
    /// One-hot form: the product before the forward pass, and after the backward.
    product: Vec<Dispatch<'g>>,
    product_backward: Option<Dispatch<'g>>,
}

/// One chunk's rows of the logits table and its segments.
struct ChunkSource {
    rows: wgpu::Buffer,
    segment_starts: wgpu::Buffer,
    segment_rows: wgpu::Buffer,
    first_segment: u32,
    num_segments: u32,
}

/// Examples per block of one_hot_matmul_backward for `n` examples: at least
/// MIN_ONE_HOT_BLOCK, and few enough blocks for grad_rows' loop.
fn one_hot_block_len(n: u32) -> u32 {
    kernels::segment_len(n as u64, MIN_ONE_HOT_BLOCK)
}

/// Row select: the logits are rows of W, and the examples' segments are those of `load`.
fn row_select<'g>(gpu: &Gpu, ex: &GpuExamples, weights: &wgpu::Buffer) -> LogitsSource<'g> {
    let segment_grads = gpu.zeroed("segment grads", (ex.num_segments * ex.num_cols) as usize);
    let chunks = ex
        .chunks
        .iter()
        .map(|chunk| ChunkSource {
            rows: chunk.contexts.clone(),
            segment_starts: chunk.segment_starts.clone(),
            segment_rows: chunk.segment_rows.clone(),
            first_segment: chunk.first_segment,
            num_segments: chunk.num_segments,
        })
        .collect();
    LogitsSource {
        table: weights.clone(),
        chunks,
        backward_out: segment_grads.clone(),
        grad_in: segment_grads,
        row_segments: ex.row_segments.clone(),
        segment_len: ex.segment_len,
        most_segments: ex.most_segments_per_row,
        product: Vec::new(),
        product_backward: None,
    }
}

/// One-hot: the logits are the n x V product onehot(contexts) @ W, example i is its row i,
/// and the backward pass has one segment per example; grad_rows adds each row's blocks.
fn one_hot<'g>(
    gpu: &'g Gpu,
    ex: &GpuExamples,
    weights: &wgpu::Buffer,
) -> anyhow::Result<LogitsSource<'g>> {
    let chunk = &ex.chunks[0];
    let block_len = one_hot_block_len(ex.len);
    let logit_entries = ex.len * ex.num_cols;
    let logits = gpu.zeroed("logits", logit_entries as usize);
    let example_index: Vec<u32> = (0..ex.len).collect();
    let example_starts: Vec<u32> = (0..=ex.len).collect();
    // The backward product's blocks of examples: row r's are segments
    // r * blocks .. (r + 1) * blocks of grad_rows.
    let blocks = ex.len.div_ceil(block_len).max(1);
    let row_blocks: Vec<u32> = (0..=ex.num_rows).map(|r| r * blocks).collect();
    let logit_grads = gpu.zeroed("logit grads", logit_entries as usize);
    let partial_entries = ex.num_rows * blocks * ex.num_cols;
    let grad_sums = gpu.zeroed("one-hot partial grads", partial_entries as usize);
    let product = (0..ex.num_rows)
        .step_by(ONE_HOT_ROW_CHUNK as usize)
        .map(|first_row| {
            let params = OneHotMatmulParams {
                num_examples: ex.len,
                num_rows: ex.num_rows,
                num_cols: ex.num_cols,
                first_row,
                end_row: (first_row + ONE_HOT_ROW_CHUNK).min(ex.num_rows),
                ..Default::default()
            };
            dispatches::one_hot_matmul(gpu, weights, &chunk.contexts, &logits, params)
        })
        .collect::<anyhow::Result<_>>()?;
    let params = OneHotMatmulBackwardParams {
        num_examples: ex.len,
        num_rows: ex.num_rows,
        num_cols: ex.num_cols,
        num_blocks: blocks,
        block_len,
        ..Default::default()
    };
    let backward =
        dispatches::one_hot_matmul_backward(gpu, &chunk.contexts, &logit_grads, &grad_sums, params);
    Ok(LogitsSource {
        table: logits,
        chunks: vec![ChunkSource {
            rows: gpu.upload("example index", &example_index),
            segment_starts: gpu.upload("example starts", &example_starts),
            segment_rows: gpu.upload("example rows", &example_index),
            first_segment: 0,
            num_segments: ex.len,
        }],
        backward_out: logit_grads,
        // grad_rows reads the product's sums: one "segment" per row of W.
        grad_in: grad_sums,
        row_segments: gpu.upload("row blocks", &row_blocks),
        segment_len: 1,
        most_segments: blocks,
        product,
        product_backward: Some(backward?),
    })
}

/// Where the forward kernel leaves what the backward kernel and loss_total read.
struct LossSums<'a> {
    /// The log-sum-exp of each example of a chunk (the chunks take turns with it).
    lse: &'a wgpu::Buffer,
    /// The workgroup sums of nll_i of every chunk, in order.
    partials: &'a wgpu::Buffer,
}

/// The forward then backward kernel on each chunk of examples, in order; the chunk's
/// workgroup sums of nll_i start where the previous chunk's `forward_groups` end.
fn chunk_passes<'g>(
    gpu: &'g Gpu,
    ex: &GpuExamples,
    source: &LogitsSource<'_>,
    sums: LossSums<'_>,
    forward_groups: &[u32],
    form: NetForm,
) -> anyhow::Result<Vec<Dispatch<'g>>> {
    let mut passes = Vec::with_capacity(2 * ex.chunks.len());
    let mut first_partial = 0;
    for ((chunk, rows), &groups) in ex.chunks.iter().zip(&source.chunks).zip(forward_groups) {
        let buffers = CrossEntropyForwardBuffers {
            logits: &source.table,
            rows: &rows.rows,
            targets: &chunk.targets,
            lse: sums.lse,
            partials: sums.partials,
        };
        let (n, cols) = (chunk.len, ex.num_cols);
        let forward =
            dispatches::cross_entropy_forward(gpu, form.loss, buffers, n, cols, first_partial)?;
        first_partial += groups;
        let buffers = CrossEntropyBackwardBuffers {
            logits: &source.table,
            targets: &chunk.targets,
            lse: sums.lse,
            segment_starts: &rows.segment_starts,
            segment_rows: &rows.segment_rows,
            sums: &source.backward_out,
        };
        let params = CrossEntropyBackwardParams {
            num_segments: rows.num_segments,
            num_cols: ex.num_cols,
            first_segment: rows.first_segment,
            ..Default::default()
        };
        let backward =
            dispatches::cross_entropy_backward(gpu, buffers, params, source.segment_len)?;
        passes.extend([forward, backward]);
    }
    Ok(passes)
}

impl GpuBackend {
    fn step<'g>(
        &'g self,
        b: StepBuffers<'_>,
        ex: &GpuExamples,
        options: &TrainOptions,
        form: NetForm,
    ) -> anyhow::Result<Step<'g>> {
        let gpu = self.gpu();
        let num_weights = ex.num_rows * ex.num_cols;
        let (weights_buffer, grads) = (b.weights, b.grads);
        // The chunks take turns with one buffer of log-sum-exps.
        let lse = gpu.zeroed("lse", ex.chunk_len as usize);
        let forward_groups: Vec<u32> = ex
            .chunks
            .iter()
            .map(|chunk| cross_entropy_forward_groups(chunk.len, ex.num_cols))
            .collect();
        let num_partials: u32 = forward_groups.iter().sum();
        let partials = gpu.zeroed("partials", num_partials as usize);
        let mut source = if form.one_hot {
            one_hot(gpu, ex, weights_buffer)?
        } else {
            row_select(gpu, ex, weights_buffer)
        };

        let mut gradient = std::mem::take(&mut source.product);
        let sums = LossSums {
            lse: &lse,
            partials: &partials,
        };
        gradient.extend(chunk_passes(gpu, ex, &source, sums, &forward_groups, form)?);
        gradient.extend(source.product_backward.take());
        let buffers = GradRowsBuffers {
            weights: weights_buffer,
            row_segments: &source.row_segments,
            sums: &source.grad_in,
            grads,
        };
        let params = GradRowsParams {
            num_rows: ex.num_rows,
            num_cols: ex.num_cols,
            num_examples: ex.len,
            reg: options.reg,
        };
        gradient.push(dispatches::grad_rows(
            gpu,
            buffers,
            params,
            source.most_segments,
        )?);
        let total = LossTotal::new(
            gpu,
            &partials,
            num_partials,
            Squares::OfWeights(weights_buffer),
            ex.len,
            num_weights,
            options.reg,
            b.history,
            b.cursor,
        );
        let params = SgdStepParams {
            num_weights,
            lr: options.lr,
            ..Default::default()
        };
        let update = dispatches::sgd_step(gpu, grads, weights_buffer, params)?;
        Ok(Step {
            gradient,
            total,
            update,
        })
    }

    /// Records the loss and gradient at `b.weights` (W unchanged) into the pending encoder.
    pub(super) fn record_gradient(
        &self,
        b: StepBuffers<'_>,
        ex: &GpuExamples,
        reg: f32,
        form: NetForm,
    ) -> anyhow::Result<()> {
        self.check_one_hot(ex, form)?;
        let options = TrainOptions { lr: 0.0, reg };
        let step = self.step(b, ex, &options, form)?;
        self.record_step(&mut self.gpu().pending().pass(), &step, false);
        Ok(())
    }

    /// Records the loss and gradient of one step, and the update when `update` is set.
    fn record_step(&self, pass: &mut wgpu::ComputePass<'_>, step: &Step<'_>, update: bool) {
        let max = self.gpu().max_groups();
        for dispatch in &step.gradient {
            dispatch.record(pass, max);
        }
        step.total.record(self.gpu(), pass);
        if update {
            step.update.record(pass, max);
        }
    }

    /// The loss and gradient of the network at `weights`, W unchanged.
    pub(super) fn step_gradient(
        &self,
        weights: &[f32],
        ex: &GpuExamples,
        reg: f32,
        form: NetForm,
    ) -> anyhow::Result<(StepLoss, Vec<f32>)> {
        let gpu = self.gpu();
        let b = StepBuffers {
            weights: &gpu.upload("weights", weights),
            grads: &gpu.zeroed("grads", weights.len()),
            history: &gpu.zeroed("loss history", 2),
            cursor: &gpu.zeroed("history cursor", 1),
        };
        self.record_gradient(b, ex, reg, form)?;
        let grads = gpu.read(b.grads, weights.len())?;
        let loss = self.history_losses(b.history, 1)?[0];
        Ok((loss, grads))
    }

    /// `steps` steps of gradient descent on the examples, STEPS_PER_SUBMISSION to a
    /// submission.
    pub(super) fn train_steps(
        &self,
        weights: &mut [f32],
        ex: &GpuExamples,
        options: &TrainOptions,
        steps: usize,
        form: NetForm,
    ) -> anyhow::Result<Vec<StepLoss>> {
        if steps == 0 {
            return Ok(Vec::new());
        }
        self.check_one_hot(ex, form)?;
        let gpu = self.gpu();
        let b = StepBuffers {
            weights: &gpu.upload("weights", weights),
            grads: &gpu.zeroed("grads", weights.len()),
            history: &gpu.zeroed("loss history", 2 * steps),
            cursor: &gpu.zeroed("history cursor", 1),
        };
        let step = self.step(b, ex, options, form)?;
        let mut done = 0;
        while done < steps {
            let chunk = STEPS_PER_SUBMISSION.min(steps - done);
            {
                let mut pending = gpu.pending();
                let mut pass = pending.pass();
                for _ in 0..chunk {
                    self.record_step(&mut pass, &step, true);
                }
            }
            gpu.flush();
            done += chunk;
        }
        let trained: Vec<f32> = gpu.read(b.weights, weights.len())?;
        weights.copy_from_slice(&trained);
        self.history_losses(b.history, steps)
    }

    /// The one-hot form's n x V logits and V^K x blocks x V partial gradients must fit in one
    /// buffer each, like the tables: a one-line error before allocating otherwise.
    fn check_one_hot(&self, ex: &GpuExamples, form: NetForm) -> anyhow::Result<()> {
        if !form.one_hot {
            return Ok(());
        }
        anyhow::ensure!(
            ex.chunks.len() == 1,
            "--one-hot needs the n x V logits in one buffer, and the {} examples' are more than one storage binding holds; drop --one-hot (the row select computes the same)",
            ex.len
        );
        let limit = crate::Backend::table_limit(self);
        let blocks = ex.len.div_ceil(one_hot_block_len(ex.len)).max(1) as u64;
        let logits = 4 * ex.len as u64 * ex.num_cols as u64;
        let partials = 4 * ex.num_rows as u64 * blocks * ex.num_cols as u64;
        for (what, bytes) in [
            ("n x V logits", logits),
            ("V^K x blocks x V partial gradients", partials),
        ] {
            anyhow::ensure!(
                bytes <= limit.max_bytes,
                "--one-hot needs {bytes} bytes for its {what}, over {} of {} bytes; use the row select (no --one-hot) or a shorter context",
                limit.name,
                limit.max_bytes
            );
        }
        Ok(())
    }
}

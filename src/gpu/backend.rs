//! The [`Backend`] operations as sequences of kernel dispatches.
//!
//! One training step on the examples is these dispatches in one compute pass (wgpu orders
//! them and makes each one's writes visible to the next):
//!
//! ```text
//! cross_entropy_forward   per example (1 to 64 lanes): lse_i, nll_i -> per-workgroup sums
//! cross_entropy_backward  per (segment, column): sum of softmax - onehot
//! (the two above once per chunk of examples: each chunk's buffers fit one binding)
//! grad_rows               per weight: segment sums / n + L2 gradient
//! partial_sums, loss_total  mean NLL + reg * mean(W^2), appended to the history (loss.rs)
//! sgd_step                per weight: W -= lr * grad
//! ```
//!
//! Data larger than one storage binding is cut into chunks of consecutive examples (sorted by
//! context), each bound as its own buffers; a step dispatches the forward and backward kernels
//! once per chunk, and the chunks' sums meet in `partials` and `segment_grads`, added in a
//! fixed order as for one chunk.
//!
//! Many steps are recorded into one submission and the loss history is read back once.
//! The counts path (`train_counts`) is `count_pairs` into a device buffer, once per set of
//! examples, then count_descent steps over every row (count_descent.rs).
//!
//! Every dispatch's loop bound is computed here from the sizes the host chose and checked
//! against the loop budget (loop_budget.rs) before anything is recorded.

use std::cell::OnceCell;

use crate::backend::{Backend, LossForm, NetForm, Nll, StepLoss, TrainOptions};
use crate::data::Examples;
use crate::limits::TableLimit;
use crate::optim::{AdamState, AdamW};

use super::count_descent::{CountDescent, Table};
use super::kernels::{bind, dispatch, ENTRY_THREADS, EXAMPLE_THREADS};
use super::loop_budget::{self, bound, lanes_for};
use super::loss::{LossTotal, Squares};
use super::params::{
    AdamwHyper, AdamwStepParams, CrossEntropyBackwardParams, CrossEntropyForwardParams,
    GradRowsParams, NllGatherParams, NormalizeRowsParams, OneHotMatmulBackwardParams,
    OneHotMatmulParams, SgdStepParams, SoftmaxRowsParams,
};
use super::stream_counts::{record_counting, Pairs};
use super::Gpu;
use crate::corpus::{CountTable, PairBatches};

/// Shortest run of examples that one thread of cross_entropy_backward adds up (longer when a
/// context has so many examples that grad_rows would otherwise loop over too many segments).
/// Shorter runs mean more parallel threads and more partial sums for grad_rows to add.
const MIN_SEGMENT_LEN: u32 = 256;

/// Fewest examples per block of one_hot_matmul_backward (more when there are so many
/// examples that grad_rows would otherwise loop over too many blocks).
const MIN_ONE_HOT_BLOCK: u32 = 4096;

/// Rows of W that one dispatch of one_hot_matmul adds up.
const ONE_HOT_ROW_CHUNK: u32 = 4096;

/// Training steps on the examples recorded into one command buffer.
const STEPS_PER_SUBMISSION: usize = 64;

/// count_descent steps recorded into one command buffer (each is a few short dispatches).
const DESCENT_STEPS_PER_SUBMISSION: usize = 256;

/// One chunk of the examples, bound as its own buffers: at most [`GpuExamples`]'s
/// `chunk_len` consecutive examples, with the segments that lie in it.
struct ExampleChunk {
    len: u32,
    contexts: wgpu::Buffer,
    targets: wgpu::Buffer,
    /// Example offsets of the chunk's segments from the chunk's first example (one more than
    /// there are segments).
    segment_starts: wgpu::Buffer,
    /// The context (row of W) of each of the chunk's segments.
    segment_rows: wgpu::Buffer,
    /// The index of the chunk's first segment among all the segments.
    first_segment: u32,
    num_segments: u32,
}

/// Examples on the device, sorted by context and cut into chunks, with the segment tables of
/// the backward pass.
pub struct GpuExamples {
    len: u32,
    num_rows: u32,
    num_cols: u32,
    /// At least one (empty when there are no examples).
    chunks: Vec<ExampleChunk>,
    /// The most examples of any chunk: the length of the `lse` buffer of a step.
    chunk_len: u32,
    /// Segment offsets of each row (one more than there are rows).
    row_segments: wgpu::Buffer,
    num_segments: u32,
    /// Examples per segment (the last segment of a context, or one cut by a chunk boundary,
    /// may be shorter).
    segment_len: u32,
    /// The most segments of any context.
    most_segments_per_row: u32,
    /// The count matrix of these examples, counted on the device the first time the counts
    /// path needs it.
    counts: OnceCell<wgpu::Buffer>,
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

/// The loop bound of a loss form's forward kernel on rows of `cols`, with lanes_for(cols).
fn forward_bound(loss: LossForm, cols: u32) -> u64 {
    let lanes = lanes_for(cols);
    match loss {
        LossForm::Fused => bound::cross_entropy_forward(cols, lanes),
        LossForm::Explicit => bound::cross_entropy_explicit(cols, lanes),
    }
}

/// Refuses a dispatch over the loop budget, before anything is recorded.
fn within_budget(kernel: &super::kernels::Kernel, iterations: u64) -> anyhow::Result<u64> {
    loop_budget::check(kernel.name, iterations)?;
    Ok(iterations)
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

    fn max_groups(&self) -> u32 {
        self.gpu.limits.max_compute_workgroups_per_dimension
    }

    pub(super) fn submit(&self, encoder: wgpu::CommandEncoder) {
        self.gpu.queue.submit([encoder.finish()]);
    }
}

/// Buffers of one or more training steps on a set of examples, and each dispatch's grid and
/// loop bound.
struct StepBuffers {
    loss: LossForm,
    /// With the one-hot form: the product before the forward pass and after the backward.
    one_hot: Option<OneHotBindings>,
    /// The forward and backward dispatches of each chunk of examples, in order.
    chunks: Vec<ChunkPass>,
    grad: wgpu::BindGroup,
    total: LossTotal,
    update: wgpu::BindGroup,
    weights: wgpu::Buffer,
    grads: wgpu::Buffer,
    history: wgpu::Buffer,
    num_weights: u32,
    forward_bound: u64,
    backward_bound: u64,
    grad_bound: u64,
}

/// The forward and backward kernels on one chunk of examples.
struct ChunkPass {
    forward: wgpu::BindGroup,
    forward_groups: u32,
    backward: wgpu::BindGroup,
    /// Threads of cross_entropy_backward: (segments or examples) x columns.
    backward_entries: u32,
}

/// The one-hot form's two matrix products.
struct OneHotBindings {
    /// One bind group per chunk of rows of one_hot_matmul, with the chunk's rows.
    matmul_chunks: Vec<(wgpu::BindGroup, u32)>,
    matmul_backward: wgpu::BindGroup,
    /// n x V: the threads of one_hot_matmul.
    logit_entries: u32,
    /// V^K x blocks x V: the threads of one_hot_matmul_backward.
    partial_entries: u32,
    /// Examples per block of one_hot_matmul_backward.
    block_len: u32,
}

/// Where the forward and backward kernels find the logits and the rows of the examples.
struct LogitsSource {
    table: wgpu::Buffer,
    /// Per chunk: the row of the table of each example, and the segment starts.
    chunks: Vec<ChunkSource>,
    /// What cross_entropy_backward writes: per (segment, column) sums.
    backward_out: wgpu::Buffer,
    /// What grad_rows adds up per row of W, with `row_segments`.
    grad_in: wgpu::Buffer,
    row_segments: wgpu::Buffer,
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
    loop_budget::segment_len(n as u64, MIN_ONE_HOT_BLOCK)
}

impl GpuBackend {
    fn step_buffers(
        &self,
        weights: &[f32],
        ex: &GpuExamples,
        options: &TrainOptions,
        steps: usize,
        form: NetForm,
    ) -> anyhow::Result<StepBuffers> {
        let gpu = &self.gpu;
        let k = &gpu.kernels;
        let num_weights = ex.num_rows * ex.num_cols;
        let lanes = lanes_for(ex.num_cols);
        let examples_per_group = EXAMPLE_THREADS / lanes;
        let loss = form.loss;
        let forward_bound = within_budget(k.forward(loss), forward_bound(loss, ex.num_cols))?;
        // One-hot: one segment per example, and grad_rows adds each row's blocks.
        let block_len = one_hot_block_len(ex.len);
        let (segment_len, most_segments) = if form.one_hot {
            (1, ex.len.div_ceil(block_len).max(1))
        } else {
            (ex.segment_len, ex.most_segments_per_row)
        };
        let backward_bound = within_budget(
            &k.cross_entropy_backward,
            bound::cross_entropy_backward(segment_len),
        )?;
        let grad_bound = within_budget(&k.grad_rows, bound::grad_rows(most_segments))?;
        if form.one_hot {
            let kernel = &k.one_hot_matmul_backward;
            within_budget(kernel, bound::one_hot_matmul_backward(block_len))?;
        }

        let weights_buffer = gpu.upload("weights", weights);
        let grads = gpu.zeroed("grads", num_weights as usize);
        // The chunks take turns with one buffer of log-sum-exps.
        let lse = gpu.zeroed("lse", ex.chunk_len as usize);
        let forward_groups: Vec<u32> = ex
            .chunks
            .iter()
            .map(|chunk| chunk.len.div_ceil(examples_per_group))
            .collect();
        let num_partials: u32 = forward_groups.iter().sum();
        let partials = gpu.zeroed("partials", num_partials as usize);
        let history = gpu.zeroed("loss history", 2 * steps);
        let cursor = gpu.zeroed("history cursor", 1);

        // Row select: the logits are rows of W. One-hot: the logits are the n x V product,
        // example i is its row i, and the backward pass has one segment per example.
        let (source, one_hot) = if form.one_hot {
            let chunk = &ex.chunks[0];
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
            let matmul_chunks = (0..ex.num_rows)
                .step_by(ONE_HOT_ROW_CHUNK as usize)
                .map(|first_row| {
                    let end_row = (first_row + ONE_HOT_ROW_CHUNK).min(ex.num_rows);
                    let params = OneHotMatmulParams {
                        num_examples: ex.len,
                        num_rows: ex.num_rows,
                        num_cols: ex.num_cols,
                        first_row,
                        end_row,
                        ..Default::default()
                    };
                    let group = bind(
                        &gpu.device,
                        &k.one_hot_matmul,
                        &gpu.params(params),
                        &[&weights_buffer, &chunk.contexts, &logits],
                    );
                    (group, end_row - first_row)
                })
                .collect();
            let matmul_backward = bind(
                &gpu.device,
                &k.one_hot_matmul_backward,
                &gpu.params(OneHotMatmulBackwardParams {
                    num_examples: ex.len,
                    num_rows: ex.num_rows,
                    num_cols: ex.num_cols,
                    num_blocks: blocks,
                    block_len,
                    ..Default::default()
                }),
                &[&chunk.contexts, &logit_grads, &grad_sums],
            );
            let source = LogitsSource {
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
            };
            let bindings = OneHotBindings {
                matmul_chunks,
                matmul_backward,
                logit_entries,
                partial_entries,
                block_len,
            };
            (source, Some(bindings))
        } else {
            let segment_grads =
                gpu.zeroed("segment grads", (ex.num_segments * ex.num_cols) as usize);
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
            let source = LogitsSource {
                table: weights_buffer.clone(),
                chunks,
                backward_out: segment_grads.clone(),
                grad_in: segment_grads,
                row_segments: ex.row_segments.clone(),
            };
            (source, None)
        };

        let mut first_partial = 0;
        let mut chunks = Vec::with_capacity(ex.chunks.len());
        for ((chunk, rows), &groups) in ex.chunks.iter().zip(&source.chunks).zip(&forward_groups) {
            let forward = bind(
                &gpu.device,
                k.forward(loss),
                &gpu.params(CrossEntropyForwardParams {
                    num_examples: chunk.len,
                    num_cols: ex.num_cols,
                    lanes_per_example: lanes,
                    first_partial,
                }),
                &[&source.table, &rows.rows, &chunk.targets, &lse, &partials],
            );
            first_partial += groups;
            let backward = bind(
                &gpu.device,
                &k.cross_entropy_backward,
                &gpu.params(CrossEntropyBackwardParams {
                    num_segments: rows.num_segments,
                    num_cols: ex.num_cols,
                    first_segment: rows.first_segment,
                    ..Default::default()
                }),
                &[
                    &source.table,
                    &chunk.targets,
                    &lse,
                    &rows.segment_starts,
                    &rows.segment_rows,
                    &source.backward_out,
                ],
            );
            chunks.push(ChunkPass {
                forward,
                forward_groups: groups,
                backward,
                backward_entries: rows.num_segments * ex.num_cols,
            });
        }
        let grad = bind(
            &gpu.device,
            &k.grad_rows,
            &gpu.params(GradRowsParams {
                num_rows: ex.num_rows,
                num_cols: ex.num_cols,
                num_examples: ex.len,
                reg: options.reg,
            }),
            &[
                &weights_buffer,
                &source.row_segments,
                &source.grad_in,
                &grads,
            ],
        );
        let total = LossTotal::new(
            gpu,
            &partials,
            num_partials,
            Squares::OfWeights(&weights_buffer),
            ex.len,
            num_weights,
            options.reg,
            &history,
            &cursor,
        );
        let update = bind(
            &gpu.device,
            &k.sgd_step,
            &gpu.params(SgdStepParams {
                num_weights,
                lr: options.lr,
                ..Default::default()
            }),
            &[&grads, &weights_buffer],
        );
        Ok(StepBuffers {
            loss,
            one_hot,
            chunks,
            grad,
            total,
            update,
            weights: weights_buffer,
            grads,
            history,
            num_weights,
            forward_bound,
            backward_bound,
            grad_bound,
        })
    }

    /// Records the loss and gradient of one step, and the update when `update` is set.
    fn record_step(&self, pass: &mut wgpu::ComputePass<'_>, b: &StepBuffers, update: bool) {
        let k = &self.gpu.kernels;
        let max = self.max_groups();
        let entry_groups = |n: u32| n.div_ceil(ENTRY_THREADS);
        if let Some(one_hot) = &b.one_hot {
            let groups = entry_groups(one_hot.logit_entries);
            for (chunk, rows) in &one_hot.matmul_chunks {
                let rows_bound = bound::one_hot_matmul(*rows);
                dispatch(pass, &k.one_hot_matmul, chunk, groups, max, rows_bound);
            }
        }
        let forward = k.forward(b.loss);
        let backward = &k.cross_entropy_backward;
        for chunk in &b.chunks {
            let groups = chunk.forward_groups;
            dispatch(pass, forward, &chunk.forward, groups, max, b.forward_bound);
            let groups = entry_groups(chunk.backward_entries);
            dispatch(
                pass,
                backward,
                &chunk.backward,
                groups,
                max,
                b.backward_bound,
            );
        }
        if let Some(one_hot) = &b.one_hot {
            let groups = entry_groups(one_hot.partial_entries);
            let kernel = &k.one_hot_matmul_backward;
            let block_bound = bound::one_hot_matmul_backward(one_hot.block_len);
            dispatch(
                pass,
                kernel,
                &one_hot.matmul_backward,
                groups,
                max,
                block_bound,
            );
        }
        let groups = entry_groups(b.num_weights);
        dispatch(pass, &k.grad_rows, &b.grad, groups, max, b.grad_bound);
        b.total.record(&self.gpu, pass);
        if update {
            dispatch(pass, &k.sgd_step, &b.update, groups, max, 0);
        }
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
        let limit = self.table_limit();
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

    /// Records the counting of all the examples into `counts` (zeroed by the caller).
    fn record_count_pairs(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        ex: &GpuExamples,
        counts: &wgpu::Buffer,
    ) -> anyhow::Result<()> {
        // Each chunk adds its counts into the same table (integer atomics: exact).
        for chunk in &ex.chunks {
            let pairs = Pairs {
                len: chunk.len,
                num_rows: ex.num_rows,
                num_cols: ex.num_cols,
                contexts: &chunk.contexts,
                targets: &chunk.targets,
            };
            record_counting(&self.gpu, encoder, &pairs, counts)?;
        }
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
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        self.record_count_pairs(&mut encoder, ex, &counts)?;
        self.submit(encoder);
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
            let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                descent.record(&self.gpu, &mut pass, done as u32, chunk as u32);
            }
            self.submit(encoder);
            done += chunk;
        }
        Ok(descent)
    }

    fn read_history(&self, b: &StepBuffers, steps: usize) -> anyhow::Result<Vec<StepLoss>> {
        self.read_losses(&b.history, steps)
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
        let gpu = &self.gpu;
        let num_counts = (ex.num_rows * ex.num_cols) as usize;
        let counts = gpu.zeroed("counts", num_counts);
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        self.record_count_pairs(&mut encoder, ex, &counts)?;
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
        let kernel = &gpu.kernels.normalize_rows;
        let lanes = lanes_for(num_cols as u32);
        let loop_bound = within_budget(kernel, bound::normalize_rows(num_cols as u32, lanes))?;
        let counts_buffer = gpu.upload("counts", counts);
        let probs = gpu.zeroed("probs", counts.len());
        let group = bind(
            &gpu.device,
            &gpu.kernels.normalize_rows,
            &gpu.params(NormalizeRowsParams {
                num_rows,
                num_cols: num_cols as u32,
                smoothing,
                lanes_per_row: lanes,
            }),
            &[&counts_buffer, &probs],
        );
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            // 64 / lanes rows per workgroup.
            dispatch(
                &mut pass,
                kernel,
                &group,
                num_rows.div_ceil(ENTRY_THREADS / lanes),
                self.max_groups(),
                loop_bound,
            );
        }
        self.submit(encoder);
        Ok(gpu.read(&probs, counts.len())?)
    }

    fn mean_nll(&mut self, probs: &[f32], ex: &GpuExamples) -> anyhow::Result<Nll> {
        let gpu = &self.gpu;
        let k = &gpu.kernels;
        let chunk_groups: Vec<u32> = ex
            .chunks
            .iter()
            .map(|chunk| chunk.len.div_ceil(EXAMPLE_THREADS))
            .collect();
        let groups: u32 = chunk_groups.iter().sum();
        let probs_buffer = gpu.upload("probs", probs);
        let partials = gpu.zeroed("partials", groups as usize);
        let impossible = gpu.zeroed("impossible", 1);
        let history = gpu.zeroed("loss", 2);
        let cursor = gpu.zeroed("history cursor", 1);
        let mut first_partial = 0;
        let gathers: Vec<(wgpu::BindGroup, u32)> = ex
            .chunks
            .iter()
            .zip(&chunk_groups)
            .map(|(chunk, &chunk_groups)| {
                let group = bind(
                    &gpu.device,
                    &k.nll_gather,
                    &gpu.params(NllGatherParams {
                        num_examples: chunk.len,
                        num_cols: ex.num_cols,
                        first_partial,
                        ..Default::default()
                    }),
                    &[
                        &probs_buffer,
                        &chunk.contexts,
                        &chunk.targets,
                        &partials,
                        &impossible,
                    ],
                );
                first_partial += chunk_groups;
                (group, chunk_groups)
            })
            .collect();
        // The count model has no weights to penalize.
        let (n, none) = (ex.len, Squares::None);
        let total = LossTotal::new(gpu, &partials, groups, none, n, 0, 0.0, &history, &cursor);
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            let max = self.max_groups();
            for (gather, groups) in &gathers {
                let kernel = &k.nll_gather;
                dispatch(&mut pass, kernel, gather, *groups, max, bound::NLL_GATHER);
            }
            total.record(gpu, &mut pass);
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
        self.loss_and_gradient_with(weights, ex, reg, NetForm::default())
    }

    fn train(
        &mut self,
        weights: &mut [f32],
        ex: &GpuExamples,
        options: &TrainOptions,
        steps: usize,
    ) -> anyhow::Result<Vec<StepLoss>> {
        self.train_with(weights, ex, options, steps, NetForm::default())
    }

    fn loss_and_gradient_with(
        &mut self,
        weights: &[f32],
        ex: &GpuExamples,
        reg: f32,
        form: NetForm,
    ) -> anyhow::Result<(StepLoss, Vec<f32>)> {
        let options = TrainOptions { lr: 0.0, reg };
        self.check_one_hot(ex, form)?;
        let b = self.step_buffers(weights, ex, &options, 1, form)?;
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            self.record_step(&mut pass, &b, false);
        }
        self.submit(encoder);
        let grads = self.gpu.read(&b.grads, b.num_weights as usize)?;
        let loss = self.read_history(&b, 1)?[0];
        Ok((loss, grads))
    }

    fn train_with(
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
        self.check_one_hot(ex, form)?;
        let b = self.step_buffers(weights, ex, options, steps, form)?;
        let mut done = 0;
        while done < steps {
            let chunk = STEPS_PER_SUBMISSION.min(steps - done);
            let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                for _ in 0..chunk {
                    self.record_step(&mut pass, &b, true);
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
        let kernel = &gpu.kernels.softmax_rows;
        let num_rows = (weights.len() / num_cols) as u32;
        let lanes = lanes_for(num_cols as u32);
        let loop_bound = within_budget(kernel, bound::softmax_rows(num_cols as u32, lanes))?;
        let weights_buffer = gpu.upload("weights", weights);
        let probs = gpu.zeroed("probs", weights.len());
        let params = SoftmaxRowsParams {
            num_rows,
            num_cols: num_cols as u32,
            lanes_per_row: lanes,
            ..Default::default()
        };
        let group = bind(
            &gpu.device,
            kernel,
            &gpu.params(params),
            &[&weights_buffer, &probs],
        );
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            let groups = num_rows.div_ceil(ENTRY_THREADS / lanes);
            dispatch(
                &mut pass,
                kernel,
                &group,
                groups,
                self.max_groups(),
                loop_bound,
            );
        }
        self.submit(encoder);
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
            return Ok(self.loss_and_gradient_with(weights, ex, 0.0, form)?.0.data);
        }
        let loss = form.loss;
        let gpu = &self.gpu;
        let kernel = gpu.kernels.forward(loss);
        let lanes = lanes_for(ex.num_cols);
        let loop_bound = within_budget(kernel, forward_bound(loss, ex.num_cols))?;
        let chunk_groups: Vec<u32> = ex
            .chunks
            .iter()
            .map(|chunk| chunk.len.div_ceil(EXAMPLE_THREADS / lanes))
            .collect();
        let groups: u32 = chunk_groups.iter().sum();
        let weights_buffer = gpu.upload("weights", weights);
        let lse = gpu.zeroed("lse", ex.chunk_len as usize);
        let partials = gpu.zeroed("partials", groups as usize);
        let history = gpu.zeroed("loss", 2);
        let cursor = gpu.zeroed("history cursor", 1);
        let mut first_partial = 0;
        let forwards: Vec<(wgpu::BindGroup, u32)> = ex
            .chunks
            .iter()
            .zip(&chunk_groups)
            .map(|(chunk, &chunk_groups)| {
                let params = CrossEntropyForwardParams {
                    num_examples: chunk.len,
                    num_cols: ex.num_cols,
                    lanes_per_example: lanes,
                    first_partial,
                };
                let group = bind(
                    &gpu.device,
                    kernel,
                    &gpu.params(params),
                    &[
                        &weights_buffer,
                        &chunk.contexts,
                        &chunk.targets,
                        &lse,
                        &partials,
                    ],
                );
                first_partial += chunk_groups;
                (group, chunk_groups)
            })
            .collect();
        // The data loss alone: no weights to penalize.
        let (n, none) = (ex.len, Squares::None);
        let total = LossTotal::new(gpu, &partials, groups, none, n, 0, 0.0, &history, &cursor);
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            let max = self.max_groups();
            for (forward, groups) in &forwards {
                dispatch(&mut pass, kernel, forward, *groups, max, loop_bound);
            }
            total.record(gpu, &mut pass);
        }
        self.submit(encoder);
        let history: Vec<f32> = gpu.read(&history, 2)?;
        Ok(history[1] as f64)
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
        let group = bind(
            &gpu.device,
            &gpu.kernels.adamw_step,
            &gpu.params(AdamwStepParams {
                num_weights: n as u32,
                ..Default::default()
            }),
            &[
                &gpu.upload("adamw settings", &[hyper]),
                &gpu.upload("grads", grads),
                &weights_buffer,
                &m,
                &v,
            ],
        );
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            let groups = (n as u32).div_ceil(ENTRY_THREADS);
            let kernel = &gpu.kernels.adamw_step;
            dispatch(&mut pass, kernel, &group, groups, self.max_groups(), 0);
        }
        self.submit(encoder);
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

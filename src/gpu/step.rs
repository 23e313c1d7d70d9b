//! The network's steps on the examples, as kernel dispatches in one compute pass (wgpu orders
//! them and makes each one's writes visible to the next):
//!
//! ```text
//! one_hot_matmul          (one-hot form only) logits = onehot(contexts) @ W
//! cross_entropy_forward   per example (1 to 64 lanes): lse_i, nll_i -> per-workgroup sums
//! cross_entropy_backward  per (segment, column): sum of softmax - onehot
//! (the two above once per chunk of examples: each chunk's buffers fit one binding)
//! one_hot_matmul_backward (one-hot form only) onehot^T @ dlogits, per block of examples
//! grad_rows               per weight: segment sums / n + L2 gradient
//! partial_sums            levels of 4,096 -> 1 sums (squares for W^2), a fixed tree
//! loss_total              mean NLL + reg * mean(W^2), appended to the history
//! sgd_step                per weight: W -= lr * grad
//! ```
//!
//! The examples on the device are sorted by context, cut into segments of the backward pass
//! and, when larger than one binding, into chunks; the chunks' sums meet in a fixed order as
//! for one chunk.

use std::cell::OnceCell;

use crate::backend::{NetForm, TrainOptions};
use crate::data::Examples;

use super::backend::{GpuBackend, GpuLosses};
use super::dispatches::{
    self, cross_entropy_forward_groups, CrossEntropyBackwardBuffers, CrossEntropyBackwardParams,
    CrossEntropyForwardBuffers, GradRowsBuffers, GradRowsParams, OneHotMatmulBackwardParams,
    OneHotMatmulParams, SgdStepParams,
};
use super::kernels::{self, kernel, log2, uniform, Dispatch};
use super::Gpu;

/// Values per block of partial_sums, and the most sums loss_total takes per list.
pub const SUM_BLOCK: u32 = 4096;

uniform! {
    /// partial_sums' parameters; `square` 1 adds up the squares of the values.
    struct PartialSumsParams { num_values: u32, square: u32, _pad: [u32; 2] }
}

uniform! {
    /// loss_total's parameters.
    struct LossTotalParams {
        num_nll_sums: u32, num_square_sums: u32, num_examples: u32,
        num_weights: u32, reg: f32, _pad: [u32; 3]
    }
}

/// The list of squares loss_total adds for the penalty.
pub enum Squares<'a> {
    /// No penalty (the count model).
    None,
    /// The weights themselves: their squares are taken by the first level.
    OfWeights(&'a wgpu::Buffer),
    /// Sums of squares already taken (by count_descent), `len` of them.
    Sums(&'a wgpu::Buffer, u32),
}

/// partial_sums levels appended to `out` until at most SUM_BLOCK sums of the `len` values are
/// left (with `square`, at least one level, which squares them): those sums and their count.
fn sum_levels<'g>(
    gpu: &'g Gpu,
    values: &wgpu::Buffer,
    (mut len, mut square): (u32, bool),
    out: &mut Vec<Dispatch<'g>>,
) -> anyhow::Result<(wgpu::Buffer, u32)> {
    let mut sums = values.clone();
    while square || len > SUM_BLOCK {
        let groups = len.div_ceil(SUM_BLOCK).max(1);
        let next = gpu.zeroed("partial sums", groups as usize);
        let params = PartialSumsParams {
            num_values: len,
            square: square as u32,
            ..Default::default()
        };
        let kernel = kernel!(gpu, "partial_sums", "reduce");
        let bound = 16 + log2(256);
        out.push(Dispatch::new(
            gpu,
            kernel,
            params,
            &[&sums, &next],
            groups,
            bound,
        )?);
        (sums, len, square) = (next, groups, false);
    }
    Ok((sums, len))
}

/// The partial_sums levels of the NLL sums of `num_examples` examples (and of the squares of
/// `num_weights` weights), then loss_total appending (total, data) to `history` at `cursor`,
/// which it advances. Every level is a fixed tree: the loss is the same on every run.
#[allow(clippy::too_many_arguments)]
pub fn loss_total<'g>(
    gpu: &'g Gpu,
    (nll_sums, num_nll_sums): (&wgpu::Buffer, u32),
    squares: Squares<'_>,
    num_examples: u32,
    num_weights: u32,
    reg: f32,
    history: &wgpu::Buffer,
    cursor: &wgpu::Buffer,
) -> anyhow::Result<Vec<Dispatch<'g>>> {
    let mut out = Vec::new();
    let (nll, nll_len) = sum_levels(gpu, nll_sums, (num_nll_sums, false), &mut out)?;
    let squares = match squares {
        Squares::None => None,
        Squares::OfWeights(w) => Some(sum_levels(gpu, w, (num_weights, true), &mut out)?),
        Squares::Sums(s, len) => Some(sum_levels(gpu, s, (len, false), &mut out)?),
    };
    let params = LossTotalParams {
        num_nll_sums: nll_len,
        num_square_sums: squares.as_ref().map_or(0, |s| s.1),
        num_examples,
        num_weights: if squares.is_some() { num_weights } else { 0 },
        reg,
        ..Default::default()
    };
    let square_sums = squares.as_ref().map_or(&nll, |s| &s.0);
    let kernel = kernel!(gpu, "loss_total", "reduce");
    let buffers = [&nll, square_sums, history, cursor];
    let bound = 2 * 16 + 2 * log2(256);
    out.push(Dispatch::new(gpu, kernel, params, &buffers, 1, bound)?);
    Ok(out)
}
/// Fewest examples per block of one_hot_matmul_backward (more if grad_rows needs fewer blocks).
const MIN_ONE_HOT_BLOCK: u32 = 4096;

/// Rows of W that one dispatch of one_hot_matmul adds up.
const ONE_HOT_ROW_CHUNK: u32 = 4096;

/// Shortest segment that one thread of cross_entropy_backward adds up (longer if grad_rows
/// needs fewer segments): shorter ones mean more threads and more sums for grad_rows.
const MIN_SEGMENT_LEN: u32 = 256;

/// One chunk of the examples, bound as its own buffers: at most [`GpuExamples`]'s
/// `chunk_len` consecutive examples, with the segments that lie in it.
#[derive(Clone)]
pub(super) struct ExampleChunk {
    pub(super) len: u32,
    pub(super) contexts: wgpu::Buffer,
    pub(super) targets: wgpu::Buffer,
    /// Offsets of the chunk's segments from its first example (one more than segments).
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
    /// Examples per segment (a context's last one, or one cut by a chunk, may be shorter).
    pub(super) segment_len: u32,
    /// The most segments of any context.
    pub(super) most_segments_per_row: u32,
    /// The count matrix, counted the first time the counts path needs it.
    pub(super) counts: OnceCell<wgpu::Buffer>,
}

/// Checks that the kernels can index (and count, without wrapping) `n` examples with u32.
pub fn check_fits(n: usize) -> anyhow::Result<()> {
    if n > u32::MAX as usize {
        anyhow::bail!(
            "{n} examples are more than the GPU kernels can index ({}); use fewer words or --device cpu",
            u32::MAX
        );
    }
    Ok(())
}

impl GpuExamples {
    /// How many chunks the examples were cut into (one unless they exceed a binding).
    pub fn num_chunks(&self) -> usize {
        self.chunks.len()
    }

    /// Uploads `examples` grouped by context, in chunks of at most `most_per_chunk`.
    pub(super) fn upload(
        gpu: &Gpu,
        examples: &Examples,
        most_per_chunk: u32,
    ) -> anyhow::Result<GpuExamples> {
        let n = examples.len();
        check_fits(n)?;
        // The largest buffer a kernel can bind whole; each chunk's contexts, targets and
        // `lse` (4 bytes an example each) must fit one.
        let binding = (gpu.limits.max_storage_buffer_binding_size).min(gpu.limits.max_buffer_size);
        let chunk_len = ((binding / 4).clamp(1, u32::MAX as u64) as u32).min(most_per_chunk);
        let grouped = examples.grouped_by_context();
        let offsets = &grouped.row_offsets;
        let most_examples = (0..examples.num_rows)
            .map(|row| offsets[row + 1] - offsets[row])
            .max()
            .unwrap_or(0);
        let segment_len = kernels::segment_len(most_examples as u64, MIN_SEGMENT_LEN);
        let (segment_starts, row_segments) = segments(offsets, segment_len, chunk_len);
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
        segment_grad_bytes <= binding,
        "{n} examples need {} MiB of per-segment gradient sums, more than this adapter's largest storage binding of {} MiB; use fewer words or --device cpu",
        segment_grad_bytes.div_ceil(1 << 20),
        binding >> 20
    );

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
}

/// Cuts each context's examples (`offsets[r] .. offsets[r + 1]`) into segments of at most
/// `segment_len` that each lie in one chunk: each segment's first example, and each row's
/// first segment (one more than there are rows).
fn segments(offsets: &[u32], segment_len: u32, chunk_len: u32) -> (Vec<u32>, Vec<u32>) {
    let num_rows = offsets.len() - 1;
    let mut segment_starts = Vec::new();
    let mut row_segments = Vec::with_capacity(num_rows + 1);
    for row in 0..num_rows {
        row_segments.push(segment_starts.len() as u32);
        let (mut start, end) = (offsets[row] as u64, offsets[row + 1] as u64);
        while start < end {
            let chunk_end = (start / chunk_len as u64 + 1) * chunk_len as u64;
            segment_starts.push(start as u32);
            start = (start + segment_len as u64).min(end).min(chunk_end);
        }
    }
    row_segments.push(segment_starts.len() as u32);
    (segment_starts, row_segments)
}

/// Where the forward and backward kernels find the logits and the rows of the examples.
struct LogitsSource<'g> {
    table: wgpu::Buffer,
    /// The examples with their rows of the table (`contexts`) and segments.
    chunks: Vec<ExampleChunk>,
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

/// Examples per block of one_hot_matmul_backward for `n` examples: at least
/// MIN_ONE_HOT_BLOCK, and few enough blocks for grad_rows' loop.
fn one_hot_block_len(n: u32) -> u32 {
    kernels::segment_len(n as u64, MIN_ONE_HOT_BLOCK)
}

/// Row select: the logits are rows of W, and the examples' segments are those of `load`.
fn row_select<'g>(gpu: &Gpu, ex: &GpuExamples, weights: &wgpu::Buffer) -> LogitsSource<'g> {
    let segment_grads = gpu.zeroed("segment grads", (ex.num_segments * ex.num_cols) as usize);
    LogitsSource {
        table: weights.clone(),
        chunks: ex.chunks.clone(),
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
        chunks: vec![ExampleChunk {
            len: ex.len,
            contexts: gpu.upload("example index", &example_index),
            targets: chunk.targets.clone(),
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

/// The forward then backward kernel on each chunk of examples, in order. The chunks take
/// turns with `lse`, the log-sum-exp of each example; their workgroup sums of nll_i follow
/// each other in `partials`, `forward_groups` each.
fn chunk_passes<'g>(
    gpu: &'g Gpu,
    source: &LogitsSource<'_>,
    (lse, partials): (&wgpu::Buffer, &wgpu::Buffer),
    forward_groups: &[u32],
    (num_cols, form): (u32, NetForm),
) -> anyhow::Result<Vec<Dispatch<'g>>> {
    let mut passes = Vec::with_capacity(2 * source.chunks.len());
    let mut first_partial = 0;
    for (chunk, &groups) in source.chunks.iter().zip(forward_groups) {
        let buffers = CrossEntropyForwardBuffers {
            logits: &source.table,
            rows: &chunk.contexts,
            targets: &chunk.targets,
            lse,
            partials,
        };
        let (n, cols) = (chunk.len, num_cols);
        let forward =
            dispatches::cross_entropy_forward(gpu, form.loss, buffers, n, cols, first_partial)?;
        first_partial += groups;
        let buffers = CrossEntropyBackwardBuffers {
            logits: &source.table,
            targets: &chunk.targets,
            lse,
            segment_starts: &chunk.segment_starts,
            segment_rows: &chunk.segment_rows,
            sums: &source.backward_out,
        };
        let params = CrossEntropyBackwardParams {
            num_segments: chunk.num_segments,
            num_cols,
            first_segment: chunk.first_segment,
            ..Default::default()
        };
        let backward =
            dispatches::cross_entropy_backward(gpu, buffers, params, source.segment_len)?;
        passes.extend([forward, backward]);
    }
    Ok(passes)
}

impl GpuBackend {
    /// One training step's dispatches: up to the gradient in `grads` and the loss appended to
    /// `losses`, and the update of `weights`.
    pub(super) fn step<'g>(
        &'g self,
        (weights, grads): (&wgpu::Buffer, &wgpu::Buffer),
        losses: &GpuLosses,
        ex: &GpuExamples,
        options: &TrainOptions,
        form: NetForm,
    ) -> anyhow::Result<(Vec<Dispatch<'g>>, Dispatch<'g>)> {
        self.check_one_hot(ex, form)?;
        let gpu = self.gpu();
        let num_weights = ex.num_rows * ex.num_cols;
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
            one_hot(gpu, ex, weights)?
        } else {
            row_select(gpu, ex, weights)
        };
        let mut gradient = std::mem::take(&mut source.product);
        let sums = (&lse, &partials);
        let shape = (ex.num_cols, form);
        gradient.extend(chunk_passes(gpu, &source, sums, &forward_groups, shape)?);
        gradient.extend(source.product_backward.take());
        let buffers = GradRowsBuffers {
            weights,
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
        let most = source.most_segments;
        gradient.push(dispatches::grad_rows(gpu, buffers, params, most)?);
        gradient.extend(loss_total(
            gpu,
            (&partials, num_partials),
            Squares::OfWeights(weights),
            ex.len,
            num_weights,
            options.reg,
            &losses.history,
            &losses.cursor,
        )?);
        let params = SgdStepParams {
            num_weights,
            lr: options.lr,
            ..Default::default()
        };
        Ok((gradient, dispatches::sgd_step(gpu, grads, weights, params)?))
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

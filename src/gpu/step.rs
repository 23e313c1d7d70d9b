//! The network's step on the examples, as kernel dispatches in one compute pass:
//!
//! ```text
//! cross_entropy_fused     (row select, fused loss) per segment: nll and gradient sums
//!
//! or, for the other forms and for rows wider than cross_entropy_fused holds:
//!
//! one_hot_matmul          (one-hot form only) logits = onehot(contexts) @ W
//! cross_entropy_forward   per example (1 to 64 lanes): lse_i, nll_i -> per-workgroup sums
//! cross_entropy_backward  per (segment, column): sum of softmax - onehot
//! one_hot_matmul_backward (one-hot form only) onehot^T @ dlogits, per block of examples
//!
//! then, for every form:
//!
//! grad_rows               per weight: segment sums / n + L2 gradient
//! partial_sums, loss_total  mean NLL + reg * mean(W^2), appended to the history
//! ```
//!
//! The examples on the device are sorted by context and cut into segments of the backward
//! pass and, past one binding, into spans, each with its own dispatches. The buffers of the
//! sums are made once per set of examples.

use std::cell::OnceCell;

use crate::backend::{LossForm, NetForm};
use crate::data::Examples;
use crate::limits::TableLimit;

use super::backend::{loss_total, GpuBackend, GpuLosses};
use super::kernels::{forward_bound, fused_bound, kernel, lanes_for, segment_len, uniform};
use super::kernels::{Dispatch, ENTRY_THREADS, EXAMPLE_THREADS, FUSED_COLS, LOOP_BUDGET};
use super::Gpu;

/// Fewest examples per block of one_hot_matmul_backward, and rows of W per one_hot_matmul.
const MIN_ONE_HOT_BLOCK: u32 = 4096;
const ONE_HOT_ROWS: u32 = 4096;
/// Shortest segment of cross_entropy_backward: shorter means more threads and more sums.
const MIN_SEGMENT_LEN: u32 = 256;

/// Consecutive examples bound as their own buffers, with the segments that lie in them: their
/// offsets from the span's first example (one more than segments), their rows of W, and the
/// index of the first among all the segments.
#[derive(Clone)]
pub(super) struct Span {
    pub(super) len: u32,
    pub(super) contexts: wgpu::Buffer,
    pub(super) targets: wgpu::Buffer,
    segment_starts: wgpu::Buffer,
    segment_rows: wgpu::Buffer,
    first_segment: u32,
    num_segments: u32,
}

/// Examples on the device, sorted by context and cut into spans, with the segment tables of
/// the backward pass.
pub struct GpuExamples {
    pub(super) len: u32,
    pub(super) num_rows: u32,
    pub(super) num_cols: u32,
    /// At least one (empty when there are no examples), of at most `span_len` examples.
    pub(super) spans: Vec<Span>,
    pub(super) span_len: u32,
    /// Each row's first segment (one more than rows), and the segments' most examples (a
    /// row's last, or one cut by a span, may be shorter).
    row_segments: wgpu::Buffer,
    num_segments: u32,
    segment_len: u32,
    most_segments: u32,
    /// The count matrix, counted the first time the counts path needs it.
    pub(super) counts: OnceCell<wgpu::Buffer>,
    /// The step's per (segment, column) gradient sums and its loss sums (per segment, or per
    /// workgroup of the forward kernel), and the forward kernel's log-sum-exps: made on first
    /// use, for every step on these examples.
    step_sums: OnceCell<(wgpu::Buffer, wgpu::Buffer)>,
    lse: OnceCell<wgpu::Buffer>,
}

/// Checks that the kernels can index (and count, without wrapping) `n` examples with u32.
pub fn check_fits(n: usize) -> anyhow::Result<()> {
    anyhow::ensure!(
        n <= u32::MAX as usize,
        "{n} examples are more than the GPU kernels can index ({}); use fewer words or --device cpu",
        u32::MAX
    );
    Ok(())
}

impl GpuExamples {
    /// How many spans the examples were cut into (one unless they exceed a binding).
    pub fn num_spans(&self) -> usize {
        self.spans.len()
    }

    /// Uploads `examples` grouped by context, in spans of at most `most` examples.
    pub(super) fn upload(gpu: &Gpu, examples: &Examples, most: u32) -> anyhow::Result<Self> {
        let n = examples.len();
        check_fits(n)?;
        // Each span's contexts, targets and `lse` (4 bytes an example each) fit one binding.
        let binding = (gpu.limits.max_storage_buffer_binding_size).min(gpu.limits.max_buffer_size);
        let span_len = ((binding / 4).clamp(1, u32::MAX as u64) as u32).min(most);
        let grouped = examples.grouped_by_context();
        let offsets = &grouped.row_offsets;
        let most_examples = offsets.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
        let segment_len = segment_len(most_examples as u64, MIN_SEGMENT_LEN);
        let (segment_starts, row_segments) = segments(offsets, segment_len, span_len);
        let num_segments = segment_starts.len() as u64;
        let most_segments = row_segments.windows(2).map(|w| w[1] - w[0]).max();
        // The per-(segment, column) sums must fit one binding too.
        let segment_grad_bytes = 4 * num_segments * examples.num_cols as u64;
        anyhow::ensure!(
            segment_grad_bytes <= binding,
            "{n} examples need {} MiB of per-segment gradient sums, more than this adapter's largest storage binding of {} MiB; use fewer words or --device cpu",
            segment_grad_bytes.div_ceil(1 << 20),
            binding >> 20
        );
        let ex = &grouped.examples;
        let spans = (0..n.div_ceil(span_len as usize).max(1)).map(|p| {
            let first = p * span_len as usize;
            let end = (first + span_len as usize).min(n);
            let (lo, hi) = (first as u32, end as u32);
            let segments = segment_starts.partition_point(|&s| s < lo)
                ..segment_starts.partition_point(|&s| s < hi);
            let starts = &segment_starts[segments.clone()];
            let local: Vec<u32> = starts.iter().map(|&s| s - lo).chain([hi - lo]).collect();
            let rows: Vec<u32> = starts.iter().map(|&s| ex.contexts[s as usize]).collect();
            Span {
                len: hi - lo,
                contexts: gpu.upload("contexts", &ex.contexts[first..end]),
                targets: gpu.upload("targets", &ex.targets[first..end]),
                segment_starts: gpu.upload("segment starts", &local),
                segment_rows: gpu.upload("segment rows", &rows),
                first_segment: segments.start as u32,
                num_segments: segments.len() as u32,
            }
        });
        Ok(GpuExamples {
            len: n as u32,
            num_rows: ex.num_rows as u32,
            num_cols: ex.num_cols as u32,
            spans: spans.collect(),
            span_len: span_len.min(n as u32),
            row_segments: gpu.upload("row segments", &row_segments),
            num_segments: num_segments as u32,
            segment_len,
            most_segments: most_segments.unwrap_or(0),
            counts: OnceCell::new(),
            step_sums: OnceCell::new(),
            lse: OnceCell::new(),
        })
    }

    /// Workgroups of the forward kernel over all the spans: its sums of nll_i.
    fn forward_partials(&self) -> u32 {
        let groups = |span: &Span| forward_groups(span.len, self.num_cols);
        self.spans.iter().map(groups).sum()
    }

    /// The step's gradient and loss sums.
    fn step_sums(&self, gpu: &Gpu) -> &(wgpu::Buffer, wgpu::Buffer) {
        self.step_sums.get_or_init(|| {
            let grads = (self.num_segments * self.num_cols) as usize;
            let losses = self.num_segments.max(self.forward_partials()) as usize;
            (
                gpu.zeroed("segment grads", grads),
                gpu.zeroed("loss sums", losses),
            )
        })
    }

    /// Whether `form`'s step is cross_entropy_fused: the row select's fused loss, on rows that
    /// fit the kernel's private arrays, in segments within its loop budget.
    fn fused(&self, form: NetForm) -> bool {
        let fits = self.num_cols <= FUSED_COLS;
        let within = fused_bound(self.segment_len) <= LOOP_BUDGET;
        form.loss == LossForm::Fused && !form.one_hot && fits && within
    }
}

/// Cuts each context's examples (`offsets[r] .. offsets[r + 1]`) into segments of at most
/// `segment_len` that each lie in one span: each segment's first example, and each row's
/// first segment (one more than there are rows).
fn segments(offsets: &[u32], segment_len: u32, span_len: u32) -> (Vec<u32>, Vec<u32>) {
    let (mut segment_starts, mut row_segments) = (Vec::new(), Vec::with_capacity(offsets.len()));
    for row in offsets.windows(2) {
        row_segments.push(segment_starts.len() as u32);
        let (mut start, end) = (row[0] as u64, row[1] as u64);
        while start < end {
            let span_end = (start / span_len as u64 + 1) * span_len as u64;
            segment_starts.push(start as u32);
            start = (start + segment_len as u64).min(end).min(span_end);
        }
    }
    row_segments.push(segment_starts.len() as u32);
    (segment_starts, row_segments)
}

uniform! { CrossEntropyForwardParams(num_examples: u32, num_cols: u32, lanes: u32, first: u32) }

/// Workgroups of the forward kernels on `num_examples` examples of `num_cols` columns.
pub(super) fn forward_groups(num_examples: u32, num_cols: u32) -> u32 {
    num_examples.div_ceil(EXAMPLE_THREADS / lanes_for(num_cols))
}

/// The forward kernel of a loss form on a span: lse_i and nll_i per example (1 to 64 lanes
/// each), one sum of nll_i per workgroup into `partials` from `first_partial`. Buffers:
/// logits, the row of each example, targets, lse, partials.
pub(super) fn cross_entropy_forward(
    gpu: &Gpu,
    loss: LossForm,
    buffers: [&wgpu::Buffer; 5],
    (num_examples, num_cols, first_partial): (u32, u32, u32),
) -> anyhow::Result<Dispatch> {
    let lanes = lanes_for(num_cols);
    let params = CrossEntropyForwardParams::new(num_examples, num_cols, lanes, first_partial);
    let kernel = match loss {
        LossForm::Fused => kernel!(gpu, "cross_entropy_forward", "reduce", "softmax"),
        LossForm::Explicit => kernel!(
            gpu,
            "cross_entropy_explicit",
            "cross_entropy_forward",
            &[("stable", 0.0)],
            "reduce",
            "softmax"
        ),
    };
    let groups = forward_groups(num_examples, num_cols);
    let bound = forward_bound(loss, num_cols, lanes);
    Dispatch::new(gpu, kernel, params, &buffers, groups, bound)
}

// cross_entropy_fused's and cross_entropy_backward's.
uniform! { SegmentParams(num_segments: u32, num_cols: u32, first_segment: u32) pad 1 }
uniform! { GradRowsParams(num_rows: u32, num_cols: u32, num_examples: u32, reg: f32) }
uniform! { OneHotMatmulParams(num_examples: u32, num_rows: u32, num_cols: u32, first_row: u32,
end_row: u32) pad 3 }
uniform! { OneHotMatmulBackwardParams(num_examples: u32, num_rows: u32, num_cols: u32,
num_blocks: u32, block_len: u32) pad 3 }

/// Where a step's kernels find the logits and the rows of the examples; where the backward
/// pass writes its per (segment, column) sums; grad_rows' sums, each row's first (one more
/// than rows) and the most of a row; and the one-hot product before and after.
struct Logits {
    table: wgpu::Buffer,
    spans: Vec<Span>,
    segment_len: u32,
    backward_out: wgpu::Buffer,
    grad_in: (wgpu::Buffer, wgpu::Buffer, u32),
    product: (Vec<Dispatch>, Option<Dispatch>),
}

/// Row select: the logits are rows of W, and the examples' segments are those of `load`.
fn row_select(ex: &GpuExamples, weights: &wgpu::Buffer, segment_grads: &wgpu::Buffer) -> Logits {
    Logits {
        table: weights.clone(),
        spans: ex.spans.clone(),
        segment_len: ex.segment_len,
        backward_out: segment_grads.clone(),
        grad_in: (
            segment_grads.clone(),
            ex.row_segments.clone(),
            ex.most_segments,
        ),
        product: (Vec::new(), None),
    }
}

/// Examples per block of one_hot_matmul_backward for `n` examples, and how many blocks.
fn one_hot_blocks(n: u32) -> (u32, u32) {
    let block_len = segment_len(n as u64, MIN_ONE_HOT_BLOCK);
    (block_len, n.div_ceil(block_len).max(1))
}

/// One-hot: the logits are the n x V product onehot(contexts) @ W, example i is its row i,
/// one segment per example; grad_rows adds each row's blocks of the backward product. The
/// logits and the V^K x blocks x V partial gradients must fit in one buffer each, like the
/// tables: a one-line error before allocating otherwise.
fn one_hot(
    gpu: &Gpu,
    ex: &GpuExamples,
    weights: &wgpu::Buffer,
    limit: &TableLimit,
) -> anyhow::Result<Logits> {
    let (n, rows, cols, span) = (ex.len, ex.num_rows, ex.num_cols, &ex.spans[0]);
    anyhow::ensure!(
        ex.spans.len() == 1,
        "--one-hot needs the n x V logits in one buffer, and the {} examples' are more than one storage binding holds; drop --one-hot (the row select computes the same)",
        ex.len
    );
    let (block_len, blocks) = one_hot_blocks(n);
    let bytes = |rows: u32| 4 * rows as u64 * cols as u64;
    let grads = bytes(rows) * blocks as u64;
    let partials = ("V^K x blocks x V partial gradients", grads);
    for (what, bytes) in [("n x V logits", bytes(n)), partials] {
        anyhow::ensure!(
            bytes <= limit.max_bytes,
            "--one-hot needs {bytes} bytes for its {what}, over {} of {} bytes; use the row select (no --one-hot) or a shorter context",
            limit.name,
            limit.max_bytes
        );
    }
    let logits = gpu.zeroed("logits", (n * cols) as usize);
    let logit_grads = gpu.zeroed("logit grads", (n * cols) as usize);
    let grad_sums = gpu.zeroed("one-hot partial grads", (rows * blocks * cols) as usize);
    let mut product = Vec::new();
    for first_row in (0..rows).step_by(ONE_HOT_ROWS as usize) {
        let end_row = (first_row + ONE_HOT_ROWS).min(rows);
        let params = OneHotMatmulParams::new(n, rows, cols, first_row, end_row);
        let groups = (n * cols).div_ceil(ENTRY_THREADS);
        let buffers = [weights, &span.contexts, &logits];
        let kernel = kernel!(gpu, "one_hot_matmul");
        let bound = (end_row - first_row) as u64;
        product.push(Dispatch::new(gpu, kernel, params, &buffers, groups, bound)?);
    }
    let params = OneHotMatmulBackwardParams::new(n, rows, cols, blocks, block_len);
    let buffers = [&span.contexts, &logit_grads, &grad_sums];
    let kernel = kernel!(gpu, "one_hot_matmul_backward");
    let groups = (rows * blocks * cols).div_ceil(ENTRY_THREADS);
    let backward = Dispatch::new(gpu, kernel, params, &buffers, groups, block_len as u64)?;
    let index: Vec<u32> = (0..n).collect();
    // Row r's blocks are segments r * blocks .. (r + 1) * blocks of grad_rows.
    let row_blocks: Vec<u32> = (0..=rows).map(|r| r * blocks).collect();
    Ok(Logits {
        table: logits,
        spans: vec![Span {
            len: n,
            contexts: gpu.upload("example index", &index),
            targets: span.targets.clone(),
            segment_starts: gpu.upload("example starts", &(0..=n).collect::<Vec<u32>>()),
            segment_rows: gpu.upload("example rows", &index),
            first_segment: 0,
            num_segments: n,
        }],
        segment_len: 1,
        backward_out: logit_grads,
        grad_in: (grad_sums, gpu.upload("row blocks", &row_blocks), blocks),
        product: (product, Some(backward)),
    })
}

/// cross_entropy_fused on each span: per segment, its gradient sums into `segment_grads` and
/// its sum of nll_i into `nll_sums`.
fn fused(
    gpu: &Gpu,
    ex: &GpuExamples,
    weights: &wgpu::Buffer,
    (segment_grads, nll_sums): (&wgpu::Buffer, &wgpu::Buffer),
) -> anyhow::Result<Vec<Dispatch>> {
    let bound = fused_bound(ex.segment_len);
    let dispatch = |span: &Span| {
        let params = SegmentParams::new(span.num_segments, ex.num_cols, span.first_segment);
        let (starts, rows) = (&span.segment_starts, &span.segment_rows);
        let buffers = [
            weights,
            &span.targets,
            starts,
            rows,
            segment_grads,
            nll_sums,
        ];
        let kernel = kernel!(gpu, "cross_entropy_fused");
        let groups = span.num_segments.div_ceil(ENTRY_THREADS);
        Dispatch::new(gpu, kernel, params, &buffers, groups, bound)
    };
    ex.spans.iter().map(dispatch).collect()
}

/// The forward and backward kernels of `loss` on each span of `logits`, between the one-hot
/// product's passes: per workgroup of the forward kernel, its sum of nll_i into `partials`.
fn unfused(
    gpu: &Gpu,
    logits: Logits,
    loss: LossForm,
    (lse, partials): (&wgpu::Buffer, &wgpu::Buffer),
    cols: u32,
) -> anyhow::Result<Vec<Dispatch>> {
    let (mut step, mut first_partial) = (logits.product.0, 0);
    for span in &logits.spans {
        let (table, contexts, targets) = (&logits.table, &span.contexts, &span.targets);
        let buffers = [table, contexts, targets, lse, partials];
        let shape = (span.len, cols, first_partial);
        step.push(cross_entropy_forward(gpu, loss, buffers, shape)?);
        first_partial += forward_groups(span.len, cols);
        let params = SegmentParams::new(span.num_segments, cols, span.first_segment);
        let (starts, rows) = (&span.segment_starts, &span.segment_rows);
        let buffers = [table, targets, lse, starts, rows, &logits.backward_out];
        let kernel = kernel!(gpu, "cross_entropy_backward");
        let groups = (span.num_segments * cols).div_ceil(ENTRY_THREADS);
        let bound = logits.segment_len as u64;
        step.push(Dispatch::new(gpu, kernel, params, &buffers, groups, bound)?);
    }
    step.extend(logits.product.1);
    Ok(step)
}

impl GpuBackend {
    /// One training step's dispatches up to the gradient in `grads`, its loss appended to
    /// `losses`.
    pub(super) fn step(
        &self,
        (weights, grads): (&wgpu::Buffer, &wgpu::Buffer),
        losses: &GpuLosses,
        ex: &GpuExamples,
        reg: f32,
        form: NetForm,
    ) -> anyhow::Result<Vec<Dispatch>> {
        let gpu = &self.gpu;
        let (n, cols) = (ex.len, ex.num_cols);
        let (segment_grads, sums) = ex.step_sums(gpu);
        let (mut step, num_sums, grad_in) = if ex.fused(form) {
            let step = fused(gpu, ex, weights, (segment_grads, sums))?;
            let grad_in = (
                segment_grads.clone(),
                ex.row_segments.clone(),
                ex.most_segments,
            );
            (step, ex.num_segments, grad_in)
        } else {
            let logits = match form.one_hot {
                true => one_hot(gpu, ex, weights, &crate::Backend::table_limit(self))?,
                false => row_select(ex, weights, segment_grads),
            };
            let grad_in = logits.grad_in.clone();
            let lse = ex
                .lse
                .get_or_init(|| gpu.zeroed("lse", ex.span_len as usize));
            let step = unfused(gpu, logits, form.loss, (lse, sums), cols)?;
            (step, ex.forward_partials(), grad_in)
        };
        let params = GradRowsParams::new(ex.num_rows, cols, n, reg);
        let (sums_in, row_segments, most) = &grad_in;
        let buffers = [weights, row_segments, sums_in, grads];
        let groups = (ex.num_rows * cols).div_ceil(ENTRY_THREADS);
        let (kernel, bound) = (kernel!(gpu, "grad_rows"), *most as u64);
        step.push(Dispatch::new(gpu, kernel, params, &buffers, groups, bound)?);
        let num_weights = ex.num_rows * cols;
        let squares = Some((weights, num_weights, true));
        let total = loss_total(
            gpu,
            (sums, num_sums),
            squares,
            (n, num_weights, reg),
            losses,
        )?;
        step.extend(total);
        Ok(step)
    }
}

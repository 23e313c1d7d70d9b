//! One function per kernel: it takes the kernel's buffers by name (in the order its WGSL file
//! binds them) and its parameters (the uniform struct above it), computes the grid and the
//! loop bound per invocation (the formula of the WGSL header), and returns what to dispatch,
//! refused when that bound is over the loop budget (kernels.rs).
//!
//! partial_sums and loss_total are dispatched by step.rs, count_descent by backend.rs.

use crate::backend::LossForm;

use super::kernels::{buffers, kernel, lanes_for, log2, per_lane, uniform, wgsl};
use super::kernels::{Dispatch, ENTRY_THREADS, EXAMPLE_THREADS};
use super::Gpu;

type Buffer = wgpu::Buffer;

/// Workgroups of a kernel that gives one thread to each of `entries` entries.
fn entry_groups(entries: u32) -> u32 {
    entries.div_ceil(ENTRY_THREADS)
}

/// Cells of the largest table that count_pairs_private can count (its MAX_BINS).
const PRIVATE_HISTOGRAM_BINS: u32 = 4096;
/// Examples each workgroup of count_pairs_private adds into its private table.
const PRIVATE_HISTOGRAM_EXAMPLES: u32 = 16384;

/// A corpus's pairs on the device: `len` (context, target) index pairs into a V^K x V table.
pub struct Pairs<'a> {
    pub len: u32,
    pub num_rows: u32,
    pub num_cols: u32,
    pub contexts: &'a Buffer,
    pub targets: &'a Buffer,
}

uniform! {
    /// count_pairs' and count_pairs_private's parameters; the table's cells (V^K x V) and the
    /// examples each workgroup adds into its private table are count_pairs_private's only.
    struct CountPairsParams {
        num_examples: u32, num_cols: u32, num_bins: u32, examples_per_group: u32
    }
}

/// count_pairs_private where the table fits one workgroup's memory, count_pairs otherwise:
/// N[context, target] += 1 for every pair, into `counts`.
pub fn count_pairs<'g>(
    gpu: &'g Gpu,
    pairs: &Pairs<'_>,
    counts: &Buffer,
) -> anyhow::Result<Dispatch<'g>> {
    let num_bins = pairs.num_rows * pairs.num_cols;
    let buffers = [pairs.contexts, pairs.targets, counts];
    let mut params = CountPairsParams {
        num_examples: pairs.len,
        num_cols: pairs.num_cols,
        ..Default::default()
    };
    let fits = num_bins <= PRIVATE_HISTOGRAM_BINS
        && 4 * PRIVATE_HISTOGRAM_BINS <= gpu.limits.max_compute_workgroup_storage_size;
    if !fits {
        let groups = pairs.len.div_ceil(EXAMPLE_THREADS);
        return Dispatch::new(
            gpu,
            kernel!(gpu, "count_pairs"),
            params,
            &buffers,
            groups,
            0,
        );
    }
    params.num_bins = num_bins;
    params.examples_per_group = PRIVATE_HISTOGRAM_EXAMPLES;
    let groups = pairs.len.div_ceil(PRIVATE_HISTOGRAM_EXAMPLES);
    // `4096 / 256 + ceil(examples_per_group / 256) + ceil(num_bins / 256)`
    let loop_bound = 16 + per_lane(PRIVATE_HISTOGRAM_EXAMPLES, 256) + per_lane(num_bins, 256);
    let kernel = kernel!(gpu, "count_pairs_private");
    Dispatch::new(gpu, kernel, params, &buffers, groups, loop_bound)
}

uniform! {
    /// normalize_rows' parameters; `smoothing` is added to every count before the row is
    /// normalized.
    struct NormalizeRowsParams {
        num_rows: u32, num_cols: u32, smoothing: f32, lanes_per_row: u32
    }
}

/// normalize_rows' loop bound: `2 * ceil(C / L) + log2(L)`.
fn normalize_rows_bound(cols: u32, lanes: u32) -> u64 {
    2 * per_lane(cols, lanes) + log2(lanes)
}

/// normalize_rows: P = (N + smoothing) / row sums, `64 / lanes` rows per workgroup.
pub fn normalize_rows<'g>(
    gpu: &'g Gpu,
    counts: &Buffer,
    probs: &Buffer,
    (num_rows, num_cols): (u32, u32),
    smoothing: f32,
) -> anyhow::Result<Dispatch<'g>> {
    let lanes = lanes_for(num_cols);
    let params = NormalizeRowsParams {
        num_rows,
        num_cols,
        smoothing,
        lanes_per_row: lanes,
    };
    let groups = num_rows.div_ceil(ENTRY_THREADS / lanes);
    let loop_bound = normalize_rows_bound(num_cols, lanes);
    let kernel = kernel!(gpu, "normalize_rows");
    Dispatch::new(gpu, kernel, params, &[counts, probs], groups, loop_bound)
}

uniform! {
    /// softmax_rows' parameters.
    struct SoftmaxRowsParams { num_rows: u32, num_cols: u32, lanes_per_row: u32, _pad: u32 }
}

/// softmax_rows' loop bound: `3 * ceil(C / L) + 2 * log2(L)`.
fn softmax_rows_bound(cols: u32, lanes: u32) -> u64 {
    3 * per_lane(cols, lanes) + 2 * log2(lanes)
}

/// softmax_rows: P = exp(W) / row sums, `64 / lanes` rows per workgroup.
pub fn softmax_rows<'g>(
    gpu: &'g Gpu,
    weights: &Buffer,
    probs: &Buffer,
    (num_rows, num_cols): (u32, u32),
) -> anyhow::Result<Dispatch<'g>> {
    let lanes = lanes_for(num_cols);
    let params = SoftmaxRowsParams {
        num_rows,
        num_cols,
        lanes_per_row: lanes,
        ..Default::default()
    };
    let groups = num_rows.div_ceil(ENTRY_THREADS / lanes);
    let loop_bound = softmax_rows_bound(num_cols, lanes);
    let kernel = kernel!(gpu, "softmax_rows", "reduce", "softmax");
    Dispatch::new(gpu, kernel, params, &[weights, probs], groups, loop_bound)
}

buffers! {
    /// The buffers of nll_gather.
    NllGatherBuffers { probs, contexts, targets, partials, impossible }
}

uniform! {
    /// nll_gather's parameters; this chunk's workgroup sums start at `first_partial` in
    /// `partials`.
    pub struct NllGatherParams {
        num_examples: u32, num_cols: u32, first_partial: u32, _pad: u32
    }
}

/// nll_gather: -log P[context, target] per example, one sum per workgroup.
pub fn nll_gather<'g>(
    gpu: &'g Gpu,
    b: NllGatherBuffers<'_>,
    params: NllGatherParams,
) -> anyhow::Result<Dispatch<'g>> {
    let groups = params.num_examples.div_ceil(EXAMPLE_THREADS);
    let kernel = kernel!(gpu, "nll_gather", "reduce", "nll");
    // `log2(256)`
    Dispatch::new(gpu, kernel, params, &b.bindings(), groups, log2(256))
}

uniform! {
    /// count_nll's parameters.
    struct CountNllParams { num_cells: u32, _pad: [u32; 3] }
}

/// count_nll: N * -log P per cell of a count table, one sum per workgroup.
pub fn count_nll<'g>(
    gpu: &'g Gpu,
    probs: &Buffer,
    counts: &Buffer,
    partials: &Buffer,
    impossible: &Buffer,
    num_cells: u32,
) -> anyhow::Result<Dispatch<'g>> {
    let params = CountNllParams {
        num_cells,
        ..Default::default()
    };
    let buffers = [probs, counts, partials, impossible];
    let groups = num_cells.div_ceil(EXAMPLE_THREADS);
    let kernel = kernel!(gpu, "count_nll", "reduce", "nll");
    // `log2(256)`
    Dispatch::new(gpu, kernel, params, &buffers, groups, log2(256))
}

/// Workgroups of the forward kernels on `num_examples` examples of `num_cols` columns.
pub fn cross_entropy_forward_groups(num_examples: u32, num_cols: u32) -> u32 {
    num_examples.div_ceil(EXAMPLE_THREADS / lanes_for(num_cols))
}

buffers! {
    /// The buffers of cross_entropy_forward and cross_entropy_explicit: the logits table (W,
    /// or the one-hot product) and the row of it of each example.
    CrossEntropyForwardBuffers { logits, rows, targets, lse, partials }
}

uniform! {
    /// cross_entropy_forward's and cross_entropy_explicit's parameters; this chunk's workgroup
    /// sums start at `first_partial` in `partials`.
    struct CrossEntropyForwardParams {
        num_examples: u32, num_cols: u32, lanes_per_example: u32, first_partial: u32
    }
}

/// The forward kernel's loop bound: cross_entropy_forward's and cross_entropy_explicit's.
fn cross_entropy_forward_bound(loss: LossForm, cols: u32, lanes: u32) -> u64 {
    match loss {
        LossForm::Fused => 2 * per_lane(cols, lanes) + 2 * log2(lanes) + log2(256),
        LossForm::Explicit => per_lane(cols, lanes) + log2(lanes) + log2(256),
    }
}

/// The forward kernel of a loss form: lse_i and nll_i per example (1 to 64 lanes each), one
/// sum of nll_i per workgroup.
pub fn cross_entropy_forward<'g>(
    gpu: &'g Gpu,
    loss: LossForm,
    b: CrossEntropyForwardBuffers<'_>,
    num_examples: u32,
    num_cols: u32,
    first_partial: u32,
) -> anyhow::Result<Dispatch<'g>> {
    let lanes = lanes_for(num_cols);
    let params = CrossEntropyForwardParams {
        num_examples,
        num_cols,
        lanes_per_example: lanes,
        first_partial,
    };
    let kernel = match loss {
        LossForm::Fused => kernel!(gpu, "cross_entropy_forward", "reduce", "softmax"),
        LossForm::Explicit => {
            let source = wgsl!("cross_entropy_forward", "reduce", "softmax");
            gpu.kernel("cross_entropy_explicit", source, &[("stable", 0.0)])
        }
    };
    let groups = cross_entropy_forward_groups(num_examples, num_cols);
    let loop_bound = cross_entropy_forward_bound(loss, num_cols, lanes);
    Dispatch::new(gpu, kernel, params, &b.bindings(), groups, loop_bound)
}

buffers! {
    /// The buffers of cross_entropy_backward; `sums` per (segment, column): the sum of
    /// softmax - onehot over the segment.
    CrossEntropyBackwardBuffers { logits, targets, lse, segment_starts, segment_rows, sums }
}

uniform! {
    /// cross_entropy_backward's parameters; `first_segment` is the index of this chunk's first
    /// segment among all the segments.
    pub struct CrossEntropyBackwardParams {
        num_segments: u32, num_cols: u32, first_segment: u32, _pad: u32
    }
}

/// cross_entropy_backward: one thread per (segment, column) over segments of at most
/// `segment_len` examples, its loop bound.
pub fn cross_entropy_backward<'g>(
    gpu: &'g Gpu,
    b: CrossEntropyBackwardBuffers<'_>,
    params: CrossEntropyBackwardParams,
    segment_len: u32,
) -> anyhow::Result<Dispatch<'g>> {
    let groups = entry_groups(params.num_segments * params.num_cols);
    let kernel = kernel!(gpu, "cross_entropy_backward");
    Dispatch::new(
        gpu,
        kernel,
        params,
        &b.bindings(),
        groups,
        segment_len as u64,
    )
}

buffers! {
    /// The buffers of grad_rows: the segment offsets of each row of W (one more than there
    /// are rows), and the per (segment, column) sums from the backward pass.
    GradRowsBuffers { weights, row_segments, sums, grads }
}

uniform! {
    /// grad_rows' parameters; `reg` is the weight of the L2 penalty.
    pub struct GradRowsParams { num_rows: u32, num_cols: u32, num_examples: u32, reg: f32 }
}

/// grad_rows: one thread per weight, its row's segment sums / n + the L2 gradient; the loop
/// bound is the most segments (or one-hot blocks) of any row.
pub fn grad_rows<'g>(
    gpu: &'g Gpu,
    b: GradRowsBuffers<'_>,
    params: GradRowsParams,
    most_segments_per_row: u32,
) -> anyhow::Result<Dispatch<'g>> {
    let groups = entry_groups(params.num_rows * params.num_cols);
    let loop_bound = most_segments_per_row as u64;
    let kernel = kernel!(gpu, "grad_rows");
    Dispatch::new(gpu, kernel, params, &b.bindings(), groups, loop_bound)
}

uniform! {
    /// sgd_step's parameters.
    pub struct SgdStepParams { num_weights: u32, lr: f32, _pad: [u32; 2] }
}

/// sgd_step: W -= lr * grad, one thread per weight.
pub fn sgd_step<'g>(
    gpu: &'g Gpu,
    grads: &Buffer,
    weights: &Buffer,
    params: SgdStepParams,
) -> anyhow::Result<Dispatch<'g>> {
    let groups = entry_groups(params.num_weights);
    let kernel = kernel!(gpu, "sgd_step");
    Dispatch::new(gpu, kernel, params, &[grads, weights], groups, 0)
}

buffers! {
    /// The buffers of adamw_step; `hyper` holds the step's settings (an [`AdamwHyper`]).
    AdamwStepBuffers { hyper, grads, weights, m, v }
}

/// adamw_step's `Hyper` (a storage buffer, so no padding): the step's settings.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AdamwHyper {
    pub lr: f32,
    pub weight_decay: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// The bias corrections 1 - beta1^t and 1 - beta2^t of step t.
    pub bc1: f32,
    pub bc2: f32,
}
const _: () = assert!(std::mem::size_of::<AdamwHyper>() == 7 * 4);

uniform! {
    /// adamw_step's parameters.
    pub struct AdamwStepParams { num_weights: u32, _pad: [u32; 3] }
}

/// adamw_step: one step of AdamW, one thread per weight.
pub fn adamw_step<'g>(
    gpu: &'g Gpu,
    b: AdamwStepBuffers<'_>,
    params: AdamwStepParams,
) -> anyhow::Result<Dispatch<'g>> {
    let groups = entry_groups(params.num_weights);
    let kernel = kernel!(gpu, "adamw_step");
    Dispatch::new(gpu, kernel, params, &b.bindings(), groups, 0)
}

uniform! {
    /// one_hot_matmul's parameters: the rows `first_row .. end_row` of one chunk.
    pub struct OneHotMatmulParams {
        num_examples: u32, num_rows: u32, num_cols: u32,
        first_row: u32, end_row: u32, _pad: [u32; 3]
    }
}

/// one_hot_matmul: logits = onehot(contexts) @ W for the rows `first_row .. end_row`, one
/// thread per entry of the n x V product; the loop bound is the rows of the chunk.
pub fn one_hot_matmul<'g>(
    gpu: &'g Gpu,
    weights: &Buffer,
    contexts: &Buffer,
    logits: &Buffer,
    params: OneHotMatmulParams,
) -> anyhow::Result<Dispatch<'g>> {
    let groups = entry_groups(params.num_examples * params.num_cols);
    let loop_bound = (params.end_row - params.first_row) as u64;
    let kernel = kernel!(gpu, "one_hot_matmul");
    let buffers = [weights, contexts, logits];
    Dispatch::new(gpu, kernel, params, &buffers, groups, loop_bound)
}

uniform! {
    /// one_hot_matmul_backward's parameters.
    pub struct OneHotMatmulBackwardParams {
        num_examples: u32, num_rows: u32, num_cols: u32,
        num_blocks: u32, block_len: u32, _pad: [u32; 3]
    }
}

/// one_hot_matmul_backward: onehot(contexts)^T @ dlogits per block of examples, one thread per
/// (row, block, column); the loop bound is the examples of one block.
pub fn one_hot_matmul_backward<'g>(
    gpu: &'g Gpu,
    contexts: &Buffer,
    logit_grads: &Buffer,
    block_sums: &Buffer,
    params: OneHotMatmulBackwardParams,
) -> anyhow::Result<Dispatch<'g>> {
    let groups = entry_groups(params.num_rows * params.num_blocks * params.num_cols);
    let loop_bound = params.block_len as u64;
    let kernel = kernel!(gpu, "one_hot_matmul_backward");
    let buffers = [contexts, logit_grads, block_sums];
    Dispatch::new(gpu, kernel, params, &buffers, groups, loop_bound)
}

#[cfg(test)]
mod tests {
    use super::super::backend::loop_bound as count_descent_bound;
    use super::super::kernels::check;
    use super::*;

    #[test]
    fn row_kernels_stay_within_budget_for_every_vocabulary() {
        // Up to 65,536 symbols (the largest vocabulary), each lane count as the host picks it.
        for cols in (1..=65_536u32).step_by(97).chain([65_536]) {
            let lanes = lanes_for(cols);
            for (name, b) in [
                ("count_descent", count_descent_bound(cols, lanes, 1, 1)),
                (
                    "cross_entropy_forward",
                    cross_entropy_forward_bound(LossForm::Fused, cols, lanes),
                ),
                (
                    "cross_entropy_explicit",
                    cross_entropy_forward_bound(LossForm::Explicit, cols, lanes),
                ),
                ("softmax_rows", softmax_rows_bound(cols, lanes)),
                ("normalize_rows", normalize_rows_bound(cols, lanes)),
            ] {
                assert!(check(name, b).is_ok(), "{name} at {cols} columns: {b}");
            }
        }
        // The worst case: 65,536 columns over 64 lanes.
        let worst = count_descent_bound(65_536, 64, 1, 1);
        assert_eq!(worst, 3 * 1024 + 12 + 1 + 64 + 1);
    }
}

//! One function per kernel: it takes the kernel's buffers by name (in the order its WGSL file
//! binds them) and its parameters, computes the grid and the loop bound per invocation, checks
//! that bound against the loop budget, and returns what to dispatch.
//!
//! partial_sums and loss_total are dispatched by loss.rs, count_descent by count_descent.rs.

use crate::backend::LossForm;

use super::kernels::{bind, Dispatch, ENTRY_THREADS, EXAMPLE_THREADS};
use super::loop_budget::{self, bound, lanes_for};
use super::params::{
    AdamwStepParams, CountNllParams, CountPairsParams, CountPairsPrivateParams,
    CrossEntropyBackwardParams, CrossEntropyForwardParams, GradRowsParams, NllGatherParams,
    NormalizeRowsParams, OneHotMatmulBackwardParams, OneHotMatmulParams, SgdStepParams,
    SoftmaxRowsParams,
};
use super::Gpu;
use super::{kernels::PRIVATE_HISTOGRAM_BINS, kernels::PRIVATE_HISTOGRAM_EXAMPLES};

type Buffer = wgpu::Buffer;

/// Workgroups of a kernel that gives one thread to each of `entries` entries.
fn entry_groups(entries: u32) -> u32 {
    entries.div_ceil(ENTRY_THREADS)
}

/// A dispatch of `kernel` over `groups` workgroups, refused when `loop_bound` is over budget.
fn checked<'g, P: bytemuck::Pod>(
    gpu: &'g Gpu,
    kernel: &'g super::kernels::Kernel,
    params: P,
    buffers: &[&Buffer],
    groups: u32,
    loop_bound: u64,
) -> anyhow::Result<Dispatch<'g>> {
    loop_budget::check(kernel.name, loop_bound)?;
    let bind_group = bind(&gpu.device, kernel, &gpu.params(params), buffers);
    Ok(Dispatch {
        kernel,
        bind_group,
        groups,
        loop_bound,
    })
}

/// A corpus's pairs on the device: `len` (context, target) index pairs into a V^K x V table.
pub struct Pairs<'a> {
    pub len: u32,
    pub num_rows: u32,
    pub num_cols: u32,
    pub contexts: &'a Buffer,
    pub targets: &'a Buffer,
}

/// count_pairs_private where the table fits one workgroup's memory, count_pairs otherwise:
/// N[context, target] += 1 for every pair, into `counts`.
pub fn count_pairs<'g>(
    gpu: &'g Gpu,
    pairs: &Pairs<'_>,
    counts: &Buffer,
) -> anyhow::Result<Dispatch<'g>> {
    let k = &gpu.kernels;
    let num_bins = pairs.num_rows * pairs.num_cols;
    let buffers = [pairs.contexts, pairs.targets, counts];
    let fits = num_bins <= PRIVATE_HISTOGRAM_BINS
        && 4 * PRIVATE_HISTOGRAM_BINS <= gpu.limits.max_compute_workgroup_storage_size;
    if fits {
        let params = CountPairsPrivateParams {
            num_examples: pairs.len,
            num_cols: pairs.num_cols,
            num_bins,
            examples_per_group: PRIVATE_HISTOGRAM_EXAMPLES,
        };
        let groups = pairs.len.div_ceil(PRIVATE_HISTOGRAM_EXAMPLES);
        let loop_bound = bound::count_pairs_private(PRIVATE_HISTOGRAM_EXAMPLES, num_bins);
        checked(
            gpu,
            &k.count_pairs_private,
            params,
            &buffers,
            groups,
            loop_bound,
        )
    } else {
        let params = CountPairsParams {
            num_examples: pairs.len,
            num_cols: pairs.num_cols,
            ..Default::default()
        };
        let groups = pairs.len.div_ceil(EXAMPLE_THREADS);
        checked(gpu, &k.count_pairs, params, &buffers, groups, 0)
    }
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
    let loop_bound = bound::normalize_rows(num_cols, lanes);
    let kernel = &gpu.kernels.normalize_rows;
    checked(gpu, kernel, params, &[counts, probs], groups, loop_bound)
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
    let loop_bound = bound::softmax_rows(num_cols, lanes);
    let kernel = &gpu.kernels.softmax_rows;
    checked(gpu, kernel, params, &[weights, probs], groups, loop_bound)
}

/// The buffers of nll_gather.
pub struct NllGatherBuffers<'a> {
    pub probs: &'a Buffer,
    pub contexts: &'a Buffer,
    pub targets: &'a Buffer,
    pub partials: &'a Buffer,
    pub impossible: &'a Buffer,
}

/// nll_gather: -log P[context, target] per example, one sum per workgroup.
pub fn nll_gather<'g>(
    gpu: &'g Gpu,
    b: NllGatherBuffers<'_>,
    params: NllGatherParams,
) -> anyhow::Result<Dispatch<'g>> {
    let buffers = [b.probs, b.contexts, b.targets, b.partials, b.impossible];
    let groups = params.num_examples.div_ceil(EXAMPLE_THREADS);
    let kernel = &gpu.kernels.nll_gather;
    checked(gpu, kernel, params, &buffers, groups, bound::NLL_GATHER)
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
    let kernel = &gpu.kernels.count_nll;
    checked(gpu, kernel, params, &buffers, groups, bound::COUNT_NLL)
}

/// Workgroups of the forward kernels on `num_examples` examples of `num_cols` columns.
pub fn cross_entropy_forward_groups(num_examples: u32, num_cols: u32) -> u32 {
    num_examples.div_ceil(EXAMPLE_THREADS / lanes_for(num_cols))
}

/// The buffers of cross_entropy_forward and cross_entropy_explicit.
pub struct CrossEntropyForwardBuffers<'a> {
    /// The logits table (W, or the one-hot product).
    pub logits: &'a Buffer,
    /// The row of the logits table of each example.
    pub rows: &'a Buffer,
    pub targets: &'a Buffer,
    pub lse: &'a Buffer,
    pub partials: &'a Buffer,
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
    let (kernel, loop_bound) = match loss {
        LossForm::Fused => (
            &gpu.kernels.cross_entropy_forward,
            bound::cross_entropy_forward(num_cols, lanes),
        ),
        LossForm::Explicit => (
            &gpu.kernels.cross_entropy_explicit,
            bound::cross_entropy_explicit(num_cols, lanes),
        ),
    };
    let buffers = [b.logits, b.rows, b.targets, b.lse, b.partials];
    let groups = cross_entropy_forward_groups(num_examples, num_cols);
    checked(gpu, kernel, params, &buffers, groups, loop_bound)
}

/// The buffers of cross_entropy_backward.
pub struct CrossEntropyBackwardBuffers<'a> {
    pub logits: &'a Buffer,
    pub targets: &'a Buffer,
    pub lse: &'a Buffer,
    pub segment_starts: &'a Buffer,
    pub segment_rows: &'a Buffer,
    /// Per (segment, column): the sum of softmax - onehot over the segment.
    pub sums: &'a Buffer,
}

/// cross_entropy_backward: one thread per (segment, column) over segments of at most
/// `segment_len` examples.
pub fn cross_entropy_backward<'g>(
    gpu: &'g Gpu,
    b: CrossEntropyBackwardBuffers<'_>,
    params: CrossEntropyBackwardParams,
    segment_len: u32,
) -> anyhow::Result<Dispatch<'g>> {
    let buffers = [
        b.logits,
        b.targets,
        b.lse,
        b.segment_starts,
        b.segment_rows,
        b.sums,
    ];
    let groups = entry_groups(params.num_segments * params.num_cols);
    let loop_bound = bound::cross_entropy_backward(segment_len);
    let kernel = &gpu.kernels.cross_entropy_backward;
    checked(gpu, kernel, params, &buffers, groups, loop_bound)
}

/// The buffers of grad_rows.
pub struct GradRowsBuffers<'a> {
    pub weights: &'a Buffer,
    /// Segment offsets of each row of W (one more than there are rows).
    pub row_segments: &'a Buffer,
    /// Per (segment, column) sums from the backward pass.
    pub sums: &'a Buffer,
    pub grads: &'a Buffer,
}

/// grad_rows: one thread per weight, its row's segment sums / n + the L2 gradient.
pub fn grad_rows<'g>(
    gpu: &'g Gpu,
    b: GradRowsBuffers<'_>,
    params: GradRowsParams,
    most_segments_per_row: u32,
) -> anyhow::Result<Dispatch<'g>> {
    let buffers = [b.weights, b.row_segments, b.sums, b.grads];
    let groups = entry_groups(params.num_rows * params.num_cols);
    let loop_bound = bound::grad_rows(most_segments_per_row);
    let kernel = &gpu.kernels.grad_rows;
    checked(gpu, kernel, params, &buffers, groups, loop_bound)
}

/// sgd_step: W -= lr * grad, one thread per weight.
pub fn sgd_step<'g>(
    gpu: &'g Gpu,
    grads: &Buffer,
    weights: &Buffer,
    params: SgdStepParams,
) -> anyhow::Result<Dispatch<'g>> {
    let groups = entry_groups(params.num_weights);
    let kernel = &gpu.kernels.sgd_step;
    checked(gpu, kernel, params, &[grads, weights], groups, 0)
}

/// The buffers of adamw_step.
pub struct AdamwStepBuffers<'a> {
    /// The step's settings (an `AdamwHyper`).
    pub hyper: &'a Buffer,
    pub grads: &'a Buffer,
    pub weights: &'a Buffer,
    pub m: &'a Buffer,
    pub v: &'a Buffer,
}

/// adamw_step: one step of AdamW, one thread per weight.
pub fn adamw_step<'g>(
    gpu: &'g Gpu,
    b: AdamwStepBuffers<'_>,
    params: AdamwStepParams,
) -> anyhow::Result<Dispatch<'g>> {
    let buffers = [b.hyper, b.grads, b.weights, b.m, b.v];
    let groups = entry_groups(params.num_weights);
    let kernel = &gpu.kernels.adamw_step;
    checked(gpu, kernel, params, &buffers, groups, 0)
}

/// one_hot_matmul: logits = onehot(contexts) @ W for the rows `first_row .. end_row`, one
/// thread per entry of the n x V product.
pub fn one_hot_matmul<'g>(
    gpu: &'g Gpu,
    weights: &Buffer,
    contexts: &Buffer,
    logits: &Buffer,
    params: OneHotMatmulParams,
) -> anyhow::Result<Dispatch<'g>> {
    let groups = entry_groups(params.num_examples * params.num_cols);
    let loop_bound = bound::one_hot_matmul(params.end_row - params.first_row);
    let kernel = &gpu.kernels.one_hot_matmul;
    let buffers = [weights, contexts, logits];
    checked(gpu, kernel, params, &buffers, groups, loop_bound)
}

/// one_hot_matmul_backward: onehot(contexts)^T @ dlogits per block of examples, one thread per
/// (row, block, column).
pub fn one_hot_matmul_backward<'g>(
    gpu: &'g Gpu,
    contexts: &Buffer,
    logit_grads: &Buffer,
    block_sums: &Buffer,
    params: OneHotMatmulBackwardParams,
) -> anyhow::Result<Dispatch<'g>> {
    let groups = entry_groups(params.num_rows * params.num_blocks * params.num_cols);
    let loop_bound = bound::one_hot_matmul_backward(params.block_len);
    let kernel = &gpu.kernels.one_hot_matmul_backward;
    let buffers = [contexts, logit_grads, block_sums];
    checked(gpu, kernel, params, &buffers, groups, loop_bound)
}

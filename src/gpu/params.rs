//! Each shader's `Params` uniform as a Rust struct with the same fields in the same order,
//! so that every call site names the values it passes.
//!
//! Uniform structs are a multiple of 16 bytes: the `_pad` words stand for the WGSL struct's
//! `_pad0`, `_pad1`, ... fields, and the assertions at the end hold every struct to it.

use bytemuck::{Pod, Zeroable};

/// `count_pairs`' parameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct CountPairsParams {
    pub num_examples: u32,
    pub num_cols: u32,
    pub _pad: [u32; 2],
}

/// `count_pairs_private`'s parameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct CountPairsPrivateParams {
    pub num_examples: u32,
    pub num_cols: u32,
    /// Cells of the table: V^K x V.
    pub num_bins: u32,
    /// Examples each workgroup adds into its private table.
    pub examples_per_group: u32,
}

/// `normalize_rows`' parameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct NormalizeRowsParams {
    pub num_rows: u32,
    pub num_cols: u32,
    /// Added to every count before the row is normalized.
    pub smoothing: f32,
    pub lanes_per_row: u32,
}

/// `nll_gather`'s parameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct NllGatherParams {
    pub num_examples: u32,
    pub num_cols: u32,
    /// Where this chunk's workgroup sums start in `partials`.
    pub first_partial: u32,
    pub _pad: u32,
}

/// `count_nll`'s parameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct CountNllParams {
    pub num_cells: u32,
    pub _pad: [u32; 3],
}

/// `cross_entropy_forward`'s and `cross_entropy_explicit`'s parameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct CrossEntropyForwardParams {
    pub num_examples: u32,
    pub num_cols: u32,
    pub lanes_per_example: u32,
    /// Where this chunk's workgroup sums start in `partials`.
    pub first_partial: u32,
}

/// `cross_entropy_backward`'s parameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct CrossEntropyBackwardParams {
    pub num_segments: u32,
    pub num_cols: u32,
    /// The index of this chunk's first segment among all the segments.
    pub first_segment: u32,
    pub _pad: u32,
}

/// `grad_rows`' parameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct GradRowsParams {
    pub num_rows: u32,
    pub num_cols: u32,
    pub num_examples: u32,
    /// The weight of the L2 penalty.
    pub reg: f32,
}

/// `sgd_step`'s parameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct SgdStepParams {
    pub num_weights: u32,
    pub lr: f32,
    pub _pad: [u32; 2],
}

/// `adamw_step`'s parameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct AdamwStepParams {
    pub num_weights: u32,
    pub _pad: [u32; 3],
}

/// `adamw_step`'s `Hyper` (a storage buffer, so no padding): the step's settings.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
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

/// `softmax_rows`' parameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct SoftmaxRowsParams {
    pub num_rows: u32,
    pub num_cols: u32,
    pub lanes_per_row: u32,
    pub _pad: u32,
}

/// `one_hot_matmul`'s parameters: the rows `first_row .. end_row` of one chunk.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct OneHotMatmulParams {
    pub num_examples: u32,
    pub num_rows: u32,
    pub num_cols: u32,
    pub first_row: u32,
    pub end_row: u32,
    pub _pad: [u32; 3],
}

/// `one_hot_matmul_backward`'s parameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct OneHotMatmulBackwardParams {
    pub num_examples: u32,
    pub num_rows: u32,
    pub num_cols: u32,
    pub num_blocks: u32,
    pub block_len: u32,
    pub _pad: [u32; 3],
}

/// `partial_sums`' parameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct PartialSumsParams {
    pub num_values: u32,
    /// 1: add up the squares of the values (the L2 penalty's sum of W^2).
    pub square: u32,
    pub _pad: [u32; 2],
}

/// `loss_total`'s parameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct LossTotalParams {
    pub num_nll_sums: u32,
    pub num_square_sums: u32,
    pub num_examples: u32,
    pub num_weights: u32,
    pub reg: f32,
    pub _pad: [u32; 3],
}

/// `count_descent`'s parameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct CountDescentParams {
    pub num_rows: u32,
    pub num_cols: u32,
    pub num_examples: u32,
    pub lanes_per_row: u32,
    pub rows_per_thread: u32,
    pub steps: u32,
    pub first_step: u32,
    /// 1: one workgroup holds the table and appends each step's loss to the history itself.
    pub writes_history: u32,
    pub reg: f32,
    pub lr: f32,
    pub _pad: [u32; 2],
}

// A uniform struct's size is a multiple of 16 bytes; the storage `Hyper` is seven f32s.
macro_rules! uniform_sizes {
    ($($params:ty),*) => {
        $(const _: () = assert!(std::mem::size_of::<$params>() % 16 == 0);)*
    };
}
uniform_sizes!(
    CountPairsParams,
    CountPairsPrivateParams,
    NormalizeRowsParams,
    NllGatherParams,
    CountNllParams,
    CrossEntropyForwardParams,
    CrossEntropyBackwardParams,
    GradRowsParams,
    SgdStepParams,
    AdamwStepParams,
    SoftmaxRowsParams,
    OneHotMatmulParams,
    OneHotMatmulBackwardParams,
    PartialSumsParams,
    LossTotalParams,
    CountDescentParams
);
const _: () = assert!(std::mem::size_of::<AdamwHyper>() == 7 * 4);

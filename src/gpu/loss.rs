//! The last stage of every loss: many partial sums added up in a fixed order into one mean.
//!
//! ```text
//! partial_sums   one level: each block of 4,096 values -> one sum (squares for W^2)
//!                ... repeated until at most 4,096 sums are left
//! loss_total     one workgroup: mean NLL + reg * mean(W^2), appended to the history
//! ```
//!
//! Every level is a fixed tree, so the loss is the same on every run, and no invocation loops
//! over more than one block, however large the data or the table.

use super::kernels::{bind, dispatch, kernel, log2, uniform, Kernel};
use super::Gpu;

/// Values per block of partial_sums, and the most sums loss_total takes per list.
pub const SUM_BLOCK: u32 = 4096;

uniform! {
    /// partial_sums' parameters; `square` 1 adds up the squares of the values (the L2
    /// penalty's sum of W^2).
    struct PartialSumsParams { num_values: u32, square: u32, _pad: [u32; 2] }
}

/// partial_sums, whose loop bound is `16 + log2(256)`.
fn partial_sums(gpu: &Gpu) -> (Kernel, u64) {
    (kernel!(gpu, "partial_sums", "reduce"), 16 + log2(256))
}

uniform! {
    /// loss_total's parameters.
    struct LossTotalParams {
        num_nll_sums: u32, num_square_sums: u32, num_examples: u32,
        num_weights: u32, reg: f32, _pad: [u32; 3]
    }
}

/// loss_total, whose loop bound is `2 * 16 + 2 * log2(256)`.
fn loss_total(gpu: &Gpu) -> (Kernel, u64) {
    (kernel!(gpu, "loss_total", "reduce"), 2 * 16 + 2 * log2(256))
}

/// The partial_sums levels that shrink one list of values to at most [`SUM_BLOCK`] sums.
pub struct SumLevels {
    /// Each level's bind group and workgroups, in order.
    levels: Vec<(wgpu::BindGroup, u32)>,
    /// The sums left after the last level (the values themselves when there is none).
    pub sums: wgpu::Buffer,
    pub len: u32,
}

impl SumLevels {
    /// Levels for `len` values in `values`. With `square`, the first level adds the squares
    /// of the values, so there is always at least that one.
    pub fn new(gpu: &Gpu, values: &wgpu::Buffer, len: u32, square: bool) -> SumLevels {
        let mut levels = Vec::new();
        let mut sums = values.clone();
        let mut len = len;
        let mut square = square;
        while square || len > SUM_BLOCK {
            let groups = len.div_ceil(SUM_BLOCK).max(1);
            let next = gpu.zeroed("partial sums", groups as usize);
            let params = PartialSumsParams {
                num_values: len,
                square: square as u32,
                ..Default::default()
            };
            let group = bind(
                &gpu.device,
                &partial_sums(gpu).0,
                &gpu.params(params),
                &[&sums, &next],
            );
            levels.push((group, groups));
            sums = next;
            len = groups;
            square = false;
        }
        SumLevels { levels, sums, len }
    }

    fn record(&self, gpu: &Gpu, pass: &mut wgpu::ComputePass<'_>) {
        let max = gpu.limits.max_compute_workgroups_per_dimension;
        let (kernel, loop_bound) = partial_sums(gpu);
        for (group, groups) in &self.levels {
            dispatch(pass, &kernel, group, *groups, max, loop_bound);
        }
    }
}

/// What loss_total adds up: the NLL sums of `num_examples` examples and, for a penalized
/// model, the squares of its `num_weights` weights.
pub struct LossTotal {
    nll: SumLevels,
    squares: Option<SumLevels>,
    group: wgpu::BindGroup,
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

impl LossTotal {
    /// loss_total appending (total, data) to `history` at `cursor`, which it advances.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gpu: &Gpu,
        nll_sums: &wgpu::Buffer,
        num_nll_sums: u32,
        squares: Squares<'_>,
        num_examples: u32,
        num_weights: u32,
        reg: f32,
        history: &wgpu::Buffer,
        cursor: &wgpu::Buffer,
    ) -> LossTotal {
        let nll = SumLevels::new(gpu, nll_sums, num_nll_sums, false);
        let squares = match squares {
            Squares::None => None,
            Squares::OfWeights(weights) => Some(SumLevels::new(gpu, weights, num_weights, true)),
            Squares::Sums(sums, len) => Some(SumLevels::new(gpu, sums, len, false)),
        };
        let (square_sums, num_square_sums) = match &squares {
            Some(levels) => (&levels.sums, levels.len),
            None => (&nll.sums, 0),
        };
        let params = LossTotalParams {
            num_nll_sums: nll.len,
            num_square_sums,
            num_examples,
            num_weights: if squares.is_some() { num_weights } else { 0 },
            reg,
            ..Default::default()
        };
        let group = bind(
            &gpu.device,
            &loss_total(gpu).0,
            &gpu.params(params),
            &[&nll.sums, square_sums, history, cursor],
        );
        LossTotal {
            nll,
            squares,
            group,
        }
    }

    /// Records the levels and loss_total.
    pub fn record(&self, gpu: &Gpu, pass: &mut wgpu::ComputePass<'_>) {
        self.nll.record(gpu, pass);
        if let Some(squares) = &self.squares {
            squares.record(gpu, pass);
        }
        let (kernel, loop_bound) = loss_total(gpu);
        let max = gpu.limits.max_compute_workgroups_per_dimension;
        dispatch(pass, &kernel, &self.group, 1, max, loop_bound);
    }
}

//! The counts path on the GPU: full-batch gradient descent from the count matrix alone.
//!
//! A step is count_descent over every row, then the fixed-order sum of its per-workgroup
//! losses (see `loss.rs`):
//!
//! ```text
//! count_descent    per row (1 to 64 lanes each): loss terms, gradient, W -= lr * grad
//! loss_total       mean NLL + reg * mean(W^2) of the step, appended to the history
//! ```
//!
//! A small table (at most SMALL_TABLE_ROUNDS rounds of 64 / L rows) goes to one workgroup,
//! which appends the losses itself and runs as many steps per dispatch as the loop budget
//! allows. Either way, many steps are recorded into each submission, and the history is read
//! back once.

use super::kernels::{self, bind, dispatch, kernel, lanes_for, log2, per_lane, uniform, Kernel};
use super::kernels::{OverBudget, LOOP_BUDGET};
use super::loss::{LossTotal, Squares, SUM_BLOCK};
use super::step::StepBuffers;
use super::Gpu;
use crate::backend::TrainOptions;

/// Threads per workgroup of count_descent (its THREADS).
const THREADS: u32 = 64;

/// The most rounds of rows one workgroup takes to hold a whole table: up to 1,024 rows of up
/// to 256 columns run as one workgroup with many steps per dispatch.
const SMALL_TABLE_ROUNDS: u32 = 16;

uniform! {
    /// count_descent's parameters; with `writes_history` 1, one workgroup holds the table and
    /// appends each step's loss to the history itself.
    struct CountDescentParams {
        num_rows: u32, num_cols: u32, num_examples: u32, lanes_per_row: u32, rows_per_thread: u32,
        steps: u32, first_step: u32, writes_history: u32, reg: f32, lr: f32, _pad: [u32; 2]
    }
}

/// count_descent's pipeline.
fn count_descent(gpu: &Gpu) -> Kernel {
    kernel!(gpu, "count_descent", "reduce", "softmax")
}

/// count_descent's loop bound:
/// `steps * (rows_per_thread * (3 * ceil(C / L) + 2 * log2(L) + 1) + 64 + 1)`.
pub(super) fn loop_bound(cols: u32, lanes: u32, rows_per_thread: u32, steps: u32) -> u64 {
    let per_row = 3 * per_lane(cols, lanes) + 2 * log2(lanes) + 1;
    steps as u64 * (rows_per_thread as u64 * per_row + 64 + 1)
}

/// The table's shape and the number of examples it counts.
#[derive(Clone, Copy, Debug)]
pub struct Table {
    pub num_rows: u32,
    pub num_cols: u32,
    pub num_examples: u32,
}

/// How the rows are spread over the threads, and how many steps one dispatch runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub lanes_per_row: u32,
    pub rows_per_thread: u32,
    pub groups: u32,
    /// Steps per dispatch: more than one only when one workgroup holds the table.
    pub steps_per_dispatch: u32,
}

impl Layout {
    /// The layout of a table: lanes for its row length; one workgroup for a small table,
    /// else enough rounds per thread to need at most 4,096 workgroups (loss_total's list).
    pub fn of(table: Table) -> Layout {
        let lanes = lanes_for(table.num_cols);
        let rounds = table.num_rows.div_ceil(THREADS / lanes).max(1);
        if rounds <= SMALL_TABLE_ROUNDS {
            let per_step = loop_bound(table.num_cols, lanes, rounds, 1);
            Layout {
                lanes_per_row: lanes,
                rows_per_thread: rounds,
                groups: 1,
                steps_per_dispatch: (LOOP_BUDGET / per_step).max(1) as u32,
            }
        } else {
            let rows_per_thread = rounds.div_ceil(SUM_BLOCK);
            Layout {
                lanes_per_row: lanes,
                rows_per_thread,
                groups: rounds.div_ceil(rows_per_thread),
                steps_per_dispatch: 1,
            }
        }
    }

    /// The worst-case loop iterations of one dispatch.
    pub fn loop_bound(&self, cols: u32) -> u64 {
        let (lanes, rounds) = (self.lanes_per_row, self.rows_per_thread);
        loop_bound(cols, lanes, rounds, self.steps_per_dispatch)
    }
}

/// The buffers and bindings of a run of count_descent steps.
pub struct CountDescent {
    table: Table,
    layout: Layout,
    options: TrainOptions,
    counts: wgpu::Buffer,
    nll_sums: wgpu::Buffer,
    square_sums: wgpu::Buffer,
    /// With many workgroups: the one-step binding, and the loss they end each step with.
    many: Option<(wgpu::BindGroup, LossTotal)>,
    pub weights: wgpu::Buffer,
    pub grads: wgpu::Buffer,
    pub history: wgpu::Buffer,
}

impl CountDescent {
    /// Steps on `b.weights` from the counts in `counts`, their losses into `b.history`;
    /// refused before any allocation if a dispatch would be over the loop budget.
    pub fn new(
        gpu: &Gpu,
        counts: &wgpu::Buffer,
        b: StepBuffers<'_>,
        table: Table,
        options: &TrainOptions,
    ) -> Result<CountDescent, OverBudget> {
        let layout = Layout::of(table);
        kernels::check("count_descent", layout.loop_bound(table.num_cols))?;
        let num_weights = table.num_rows * table.num_cols;
        let mut descent = CountDescent {
            table,
            layout,
            options: *options,
            counts: counts.clone(),
            nll_sums: gpu.zeroed("descent nll sums", layout.groups as usize),
            square_sums: gpu.zeroed("descent square sums", layout.groups as usize),
            many: None,
            weights: b.weights.clone(),
            grads: b.grads.clone(),
            history: b.history.clone(),
        };
        if layout.groups > 1 {
            let group = descent.bind(gpu, 0, 1);
            let loss = LossTotal::new(
                gpu,
                &descent.nll_sums,
                layout.groups,
                Squares::Sums(&descent.square_sums, layout.groups),
                table.num_examples,
                num_weights,
                options.reg,
                &descent.history,
                b.cursor,
            );
            descent.many = Some((group, loss));
        }
        Ok(descent)
    }

    /// The binding of a dispatch that runs `steps` steps from step `first_step`.
    fn bind(&self, gpu: &Gpu, first_step: u32, steps: u32) -> wgpu::BindGroup {
        let params = CountDescentParams {
            num_rows: self.table.num_rows,
            num_cols: self.table.num_cols,
            num_examples: self.table.num_examples,
            lanes_per_row: self.layout.lanes_per_row,
            rows_per_thread: self.layout.rows_per_thread,
            steps,
            first_step,
            writes_history: (self.layout.groups == 1) as u32,
            reg: self.options.reg,
            lr: self.options.lr,
            ..Default::default()
        };
        let buffers = [
            &self.counts,
            &self.weights,
            &self.grads,
            &self.nll_sums,
            &self.square_sums,
            &self.history,
        ];
        bind(
            &gpu.device,
            &count_descent(gpu),
            &gpu.params(params),
            &buffers,
        )
    }

    /// Records steps `first_step .. first_step + steps`.
    pub fn record(&self, gpu: &Gpu, pass: &mut wgpu::ComputePass<'_>, first_step: u32, steps: u32) {
        let max = gpu.limits.max_compute_workgroups_per_dimension;
        let kernel = &count_descent(gpu);
        let cols = self.table.num_cols;
        match &self.many {
            Some((group, loss)) => {
                let loop_bound = self.layout.loop_bound(cols);
                for _ in 0..steps {
                    dispatch(pass, kernel, group, self.layout.groups, max, loop_bound);
                    loss.record(gpu, pass);
                }
            }
            None => {
                let per_dispatch = self.layout.steps_per_dispatch;
                for first in (first_step..first_step + steps).step_by(per_dispatch as usize) {
                    let chunk = per_dispatch.min(first_step + steps - first);
                    let group = self.bind(gpu, first, chunk);
                    let layout = Layout {
                        steps_per_dispatch: chunk,
                        ..self.layout
                    };
                    dispatch(pass, kernel, &group, 1, max, layout.loop_bound(cols));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(num_rows: u32, num_cols: u32) -> Table {
        Table {
            num_rows,
            num_cols,
            num_examples: 1,
        }
    }

    #[test]
    fn small_tables_take_one_workgroup_and_many_steps_per_dispatch() {
        let bigram = Layout::of(table(27, 27));
        assert_eq!((bigram.groups, bigram.rows_per_thread), (1, 1));
        assert_eq!(
            bigram.steps_per_dispatch,
            (LOOP_BUDGET / (3 * 27 + 1 + 65)) as u32
        );
        let trigram = Layout::of(table(729, 27));
        assert_eq!((trigram.groups, trigram.rows_per_thread), (1, 12));
        assert!(trigram.loop_bound(27) <= LOOP_BUDGET);
    }

    #[test]
    fn large_tables_spread_over_at_most_4096_workgroups_within_budget() {
        // Context 3 and 4 of the lecture's alphabet, a 5,000-symbol bigram, and the longest
        // rows (65,536 columns) at the largest row counts a 1 GiB table allows.
        for (rows, cols) in [
            (19_683, 27),
            (531_441, 27),
            (5_000, 5_000),
            (4_096, 65_536),
            ((1u32 << 28) / 27, 27),
            (1 << 27, 2),
        ] {
            let layout = Layout::of(table(rows, cols));
            assert!(layout.groups <= SUM_BLOCK, "{rows} x {cols}: {layout:?}");
            assert!(
                layout.groups * layout.rows_per_thread * (THREADS / layout.lanes_per_row) >= rows
            );
            assert_eq!(layout.steps_per_dispatch, 1);
            let b = layout.loop_bound(cols);
            assert!(
                b <= LOOP_BUDGET,
                "{rows} x {cols}: {b} iterations, {layout:?}"
            );
        }
    }
}

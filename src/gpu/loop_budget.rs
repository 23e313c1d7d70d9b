//! The loop budget: how many loop iterations one invocation of a kernel may make.
//!
//! Mesa's gallivm, which runs the shaders of both lavapipe (Vulkan) and llvmpipe (GL), ends
//! every loop of an invocation silently once the invocation has made 65,535 loop iterations
//! in total, counted across all of its loops (`LP_MAX_TGSI_LOOP_ITERATIONS`). The kernel
//! then goes on with whatever its loops had computed so far, and nothing reports it.
//! `tests/loop_budget.rs` shows it with a kernel that counts its own iterations. Real GPUs
//! have no such limit, but their watchdogs end long invocations too.
//!
//! So every kernel states, in its WGSL header, its worst-case loop iterations per invocation
//! as a formula in its parameters; the functions below compute those formulas for the
//! parameters the host chose; and no dispatch is recorded whose bound exceeds
//! [`LOOP_BUDGET`], a quarter of Mesa's limit. Work that grows with the data is spread over
//! more threads (lanes per row), cut into blocks, or summed in several levels instead.

/// The most loop iterations any invocation of any kernel may make (Mesa's limit is 65,535).
pub const LOOP_BUDGET: u64 = 16_384;

/// The longest row, in columns, that one lane of a row-parallel kernel reads: rows longer
/// than this are shared by more lanes.
const COLUMNS_PER_LANE: u64 = 256;

/// The most lanes on one row (the smaller workgroups have 64 threads).
pub const MAX_LANES: u32 = 64;

/// Lanes per row (or per example) for rows of `cols` columns: the smallest power of two that
/// leaves each lane at most 256 columns, and at most 64. One lane for the lecture's 27.
pub fn lanes_for(cols: u32) -> u32 {
    let wanted = (cols as u64).div_ceil(COLUMNS_PER_LANE).max(1);
    wanted.next_power_of_two().min(MAX_LANES as u64) as u32
}

/// log2 of a power of two.
fn log2(x: u64) -> u64 {
    x.max(1).trailing_zeros() as u64
}

/// Columns one of `lanes` lanes reads from a row of `cols`.
fn per_lane(cols: u32, lanes: u32) -> u64 {
    (cols as u64).div_ceil(lanes.max(1) as u64)
}

/// The bounds of the kernels' WGSL headers, one function per kernel with a loop.
pub mod bound {
    use super::{log2, per_lane};

    /// count_descent:
    /// `steps * (rows_per_thread * (3 * ceil(C / L) + 2 * log2(L) + 1) + 64 + 1)`.
    pub fn count_descent(cols: u32, lanes: u32, rows_per_thread: u32, steps: u32) -> u64 {
        let per_row = 3 * per_lane(cols, lanes) + 2 * log2(lanes as u64) + 1;
        steps as u64 * (rows_per_thread as u64 * per_row + 64 + 1)
    }

    /// cross_entropy_forward: `2 * ceil(C / L) + 2 * log2(L) + log2(256)`.
    pub fn cross_entropy_forward(cols: u32, lanes: u32) -> u64 {
        2 * per_lane(cols, lanes) + 2 * log2(lanes as u64) + log2(256)
    }

    /// cross_entropy_explicit: `ceil(C / L) + log2(L) + log2(256)`.
    pub fn cross_entropy_explicit(cols: u32, lanes: u32) -> u64 {
        per_lane(cols, lanes) + log2(lanes as u64) + log2(256)
    }

    /// softmax_rows: `3 * ceil(C / L) + 2 * log2(L)`.
    pub fn softmax_rows(cols: u32, lanes: u32) -> u64 {
        3 * per_lane(cols, lanes) + 2 * log2(lanes as u64)
    }

    /// normalize_rows: `2 * ceil(C / L) + log2(L)`.
    pub fn normalize_rows(cols: u32, lanes: u32) -> u64 {
        2 * per_lane(cols, lanes) + log2(lanes as u64)
    }

    /// nll_gather: `log2(256)`.
    pub const NLL_GATHER: u64 = 8;

    /// count_nll: `log2(256)`.
    pub const COUNT_NLL: u64 = 8;

    /// partial_sums: `16 + log2(256)`.
    pub const PARTIAL_SUMS: u64 = 24;

    /// loss_total: `2 * 16 + 2 * log2(256)`.
    pub const LOSS_TOTAL: u64 = 48;

    /// count_pairs_private:
    /// `4096 / 256 + ceil(examples_per_group / 256) + ceil(num_bins / 256)`.
    pub fn count_pairs_private(examples_per_group: u32, num_bins: u32) -> u64 {
        16 + per_lane(examples_per_group, 256) + per_lane(num_bins, 256)
    }

    /// cross_entropy_backward: the longest segment.
    pub fn cross_entropy_backward(segment_len: u32) -> u64 {
        segment_len as u64
    }

    /// grad_rows: the most segments (or one-hot blocks) of any row.
    pub fn grad_rows(most_segments_per_row: u32) -> u64 {
        most_segments_per_row as u64
    }

    /// one_hot_matmul: the rows of one chunk.
    pub fn one_hot_matmul(chunk_rows: u32) -> u64 {
        chunk_rows as u64
    }

    /// one_hot_matmul_backward: the examples of one block.
    pub fn one_hot_matmul_backward(block_len: u32) -> u64 {
        block_len as u64
    }
}

/// A dispatch whose loop bound is over the budget: the run is refused before any work.
#[derive(Debug, thiserror::Error)]
#[error(
    "{kernel} would loop {iterations} times per GPU thread on this data, over the budget of \
     {budget} that keeps every adapter's results exact; use --device cpu for data this large"
)]
pub struct OverBudget {
    pub kernel: &'static str,
    pub iterations: u64,
    pub budget: u64,
}

/// Checks one kernel's bound against the budget.
pub fn check(kernel: &'static str, iterations: u64) -> Result<(), OverBudget> {
    if iterations <= LOOP_BUDGET {
        Ok(())
    } else {
        Err(OverBudget {
            kernel,
            iterations,
            budget: LOOP_BUDGET,
        })
    }
}

/// Segment length of the per-example backward pass: at least `min_len` examples, and long
/// enough that the row with the most examples has at most [`LOOP_BUDGET`] segments (the loop
/// of grad_rows); the segment itself is cross_entropy_backward's loop.
pub fn segment_len(most_examples_per_row: u64, min_len: u32) -> u32 {
    let needed = most_examples_per_row.div_ceil(LOOP_BUDGET);
    needed.max(min_len as u64).min(u32::MAX as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_leave_each_lane_at_most_256_columns_up_to_64_lanes() {
        assert_eq!(lanes_for(1), 1);
        assert_eq!(lanes_for(27), 1);
        assert_eq!(lanes_for(256), 1);
        assert_eq!(lanes_for(257), 2);
        assert_eq!(lanes_for(5000), 32);
        assert_eq!(lanes_for(16384), 64);
        assert_eq!(lanes_for(65536), 64);
        assert_eq!(lanes_for(u32::MAX), 64);
    }

    #[test]
    fn row_kernels_stay_within_budget_for_every_vocabulary() {
        // Up to 65,536 symbols (the largest vocabulary), each lane count as the host picks it.
        for cols in (1..=65_536u32).step_by(97).chain([65_536]) {
            let lanes = lanes_for(cols);
            for (name, b) in [
                ("count_descent", bound::count_descent(cols, lanes, 1, 1)),
                (
                    "cross_entropy_forward",
                    bound::cross_entropy_forward(cols, lanes),
                ),
                (
                    "cross_entropy_explicit",
                    bound::cross_entropy_explicit(cols, lanes),
                ),
                ("softmax_rows", bound::softmax_rows(cols, lanes)),
                ("normalize_rows", bound::normalize_rows(cols, lanes)),
            ] {
                assert!(check(name, b).is_ok(), "{name} at {cols} columns: {b}");
            }
        }
        // The worst case: 65,536 columns over 64 lanes.
        assert_eq!(
            bound::count_descent(65_536, 64, 1, 1),
            3 * 1024 + 12 + 1 + 64 + 1
        );
    }

    #[test]
    fn segments_keep_both_backward_loops_within_budget() {
        // Up to 2^28 examples of one context (the most whose segments both fit).
        for most in [
            0u64,
            1,
            255,
            256,
            228_146,
            1 << 22,
            1 << 24,
            1 << 26,
            1 << 28,
        ] {
            let len = segment_len(most, 256);
            let segments = most.div_ceil(len as u64);
            assert!(len >= 256);
            assert!(
                check("cross_entropy_backward", len as u64).is_ok(),
                "{most}"
            );
            assert!(check("grad_rows", segments).is_ok(), "{most}");
        }
        // Past that, a segment would be over the budget, and the run is refused.
        let len = segment_len((1 << 28) + 1, 256);
        assert!(check("cross_entropy_backward", len as u64).is_err());
    }

    #[test]
    fn the_check_refuses_past_the_budget_with_a_reason() {
        assert!(check("k", LOOP_BUDGET).is_ok());
        let e = check("count_descent", LOOP_BUDGET + 1).unwrap_err();
        assert!(
            e.to_string()
                .contains("count_descent would loop 16385 times"),
            "{e}"
        );
    }
}

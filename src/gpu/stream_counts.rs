//! The counts path on a corpus streamed from a file: pairs counted batch by batch into one
//! device table, and everything after that from the table alone.
//!
//! ```text
//! count_pairs(_private)  per batch: the batch's pairs added into the one count table
//! count_nll              per cell: N * -log P, summed per workgroup (loss_total adds them)
//! count_descent          training steps on the table, uploaded once per run of steps
//! ```
//!
//! The pairs go through two device buffers of at most BATCH_PAIRS pairs each, used in turn:
//! the host encodes and uploads one batch while the device counts the other, and waits for a
//! buffer's last count before writing into it again. Device memory is the table and the two
//! buffers, whatever the size of the corpus.

use super::backend::GpuBackend;
use super::count_descent::{CountDescent, Table};
use super::kernels::{
    bind, dispatch, EXAMPLE_THREADS, PRIVATE_HISTOGRAM_BINS, PRIVATE_HISTOGRAM_EXAMPLES,
};
use super::loop_budget::{self, bound};
use super::loss::{LossTotal, Squares};
use super::params::{CountNllParams, CountPairsParams, CountPairsPrivateParams};
use super::{Gpu, GpuError};
use crate::backend::{Nll, TrainOptions};
use crate::corpus::{CountTable, PairBatches};

/// Most pairs per dispatch of the counting kernel (4 MiB per buffer).
const BATCH_PAIRS: usize = 1 << 20;

/// Pairs on the device: `len` of them in `contexts` and `targets`, for a V^K x V table.
pub(super) struct Pairs<'a> {
    pub len: u32,
    pub num_rows: u32,
    pub num_cols: u32,
    pub contexts: &'a wgpu::Buffer,
    pub targets: &'a wgpu::Buffer,
}

/// Records the counting of `pairs` into `counts` (added to what it holds):
/// `count_pairs_private` when the table fits in workgroup memory, else `count_pairs`.
pub(super) fn record_counting(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    pairs: &Pairs<'_>,
    counts: &wgpu::Buffer,
) -> anyhow::Result<()> {
    let k = &gpu.kernels;
    let num_bins = pairs.num_rows * pairs.num_cols;
    let fits = num_bins <= PRIVATE_HISTOGRAM_BINS
        && 4 * PRIVATE_HISTOGRAM_BINS <= gpu.limits.max_compute_workgroup_storage_size;
    let (kernel, params, groups, loop_bound) = if fits {
        let params = gpu.params(CountPairsPrivateParams {
            num_examples: pairs.len,
            num_cols: pairs.num_cols,
            num_bins,
            examples_per_group: PRIVATE_HISTOGRAM_EXAMPLES,
        });
        let loop_bound = bound::count_pairs_private(PRIVATE_HISTOGRAM_EXAMPLES, num_bins);
        let groups = pairs.len.div_ceil(PRIVATE_HISTOGRAM_EXAMPLES);
        (&k.count_pairs_private, params, groups, loop_bound)
    } else {
        let params = gpu.params(CountPairsParams {
            num_examples: pairs.len,
            num_cols: pairs.num_cols,
            ..Default::default()
        });
        (
            &k.count_pairs,
            params,
            pairs.len.div_ceil(EXAMPLE_THREADS),
            0,
        )
    };
    loop_budget::check(kernel.name, loop_bound)?;
    let group = bind(
        &gpu.device,
        kernel,
        &params,
        &[pairs.contexts, pairs.targets, counts],
    );
    let mut pass = encoder.begin_compute_pass(&Default::default());
    let max = gpu.limits.max_compute_workgroups_per_dimension;
    dispatch(&mut pass, kernel, &group, groups, max, loop_bound);
    Ok(())
}

/// One of the two upload buffers, and the submission that last counted from it.
struct Slot {
    contexts: wgpu::Buffer,
    targets: wgpu::Buffer,
    last_use: Option<wgpu::SubmissionIndex>,
}

impl GpuBackend {
    /// Counts every pair of `batches` into one device table and reads it back.
    pub(super) fn count_batches(
        &self,
        num_rows: usize,
        num_cols: usize,
        batches: &mut dyn PairBatches,
    ) -> anyhow::Result<Vec<u32>> {
        let gpu = self.gpu();
        let num_bins = num_rows * num_cols;
        let counts = gpu.zeroed("counts", num_bins);
        let slot = || Slot {
            contexts: gpu.zeroed("batch contexts", BATCH_PAIRS),
            targets: gpu.zeroed("batch targets", BATCH_PAIRS),
            last_use: None,
        };
        let mut slots = [slot(), slot()];
        let mut next = 0;
        while let Some(batch) = batches.next_batch()? {
            let parts = batch
                .contexts
                .chunks(BATCH_PAIRS)
                .zip(batch.targets.chunks(BATCH_PAIRS));
            for (contexts, targets) in parts {
                let slot = &mut slots[next];
                next = 1 - next;
                if let Some(index) = slot.last_use.take() {
                    gpu.device
                        .poll(wgpu::PollType::Wait {
                            submission_index: Some(index),
                            timeout: None,
                        })
                        .map_err(|e| GpuError::Device(e.to_string()))?;
                }
                gpu.queue
                    .write_buffer(&slot.contexts, 0, bytemuck::cast_slice(contexts));
                gpu.queue
                    .write_buffer(&slot.targets, 0, bytemuck::cast_slice(targets));
                let pairs = Pairs {
                    len: contexts.len() as u32,
                    num_rows: num_rows as u32,
                    num_cols: num_cols as u32,
                    contexts: &slot.contexts,
                    targets: &slot.targets,
                };
                let mut encoder = gpu.device.create_command_encoder(&Default::default());
                record_counting(gpu, &mut encoder, &pairs, &counts)?;
                slot.last_use = Some(gpu.queue.submit([encoder.finish()]));
            }
        }
        Ok(gpu.read(&counts, num_bins)?)
    }

    /// count_nll then loss_total: the mean NLL of the examples a table counts.
    pub(super) fn table_nll(&self, probs: &[f32], table: &CountTable) -> anyhow::Result<Nll> {
        let gpu = self.gpu();
        let k = &gpu.kernels;
        let num_cells = table.counts.len() as u32;
        let groups = num_cells.div_ceil(EXAMPLE_THREADS);
        loop_budget::check(k.count_nll.name, bound::COUNT_NLL)?;
        let probs_buffer = gpu.upload("probs", probs);
        let counts = gpu.upload("counts", &table.counts);
        let partials = gpu.zeroed("partials", groups as usize);
        let impossible = gpu.zeroed("impossible", 1);
        let history = gpu.zeroed("loss", 2);
        let cursor = gpu.zeroed("history cursor", 1);
        let group = bind(
            &gpu.device,
            &k.count_nll,
            &gpu.params(CountNllParams {
                num_cells,
                ..Default::default()
            }),
            &[&probs_buffer, &counts, &partials, &impossible],
        );
        // The count model has no weights to penalize.
        let n = table.examples as u32;
        let total = LossTotal::new(
            gpu,
            &partials,
            groups,
            Squares::None,
            n,
            0,
            0.0,
            &history,
            &cursor,
        );
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            let max = gpu.limits.max_compute_workgroups_per_dimension;
            dispatch(
                &mut pass,
                &k.count_nll,
                &group,
                groups,
                max,
                bound::COUNT_NLL,
            );
            total.record(gpu, &mut pass);
        }
        self.submit(encoder);
        let loss: Vec<f32> = gpu.read(&history, 2)?;
        let impossible: Vec<u32> = gpu.read(&impossible, 1)?;
        Ok(Nll {
            finite_mean: loss[1] as f64,
            impossible: impossible[0] as u64,
            examples: table.examples,
        })
    }

    /// `steps` steps of count_descent from `weights` on a table uploaded from the host.
    pub(super) fn table_descent(
        &self,
        weights: &[f32],
        table: &CountTable,
        options: &TrainOptions,
        steps: usize,
    ) -> anyhow::Result<CountDescent> {
        let counts = self.gpu().upload("counts", &table.counts);
        let shape = Table {
            num_rows: (table.counts.len() / table.num_cols) as u32,
            num_cols: table.num_cols as u32,
            num_examples: table.examples as u32,
        };
        self.count_descent_on(&counts, shape, weights, options, steps)
    }
}

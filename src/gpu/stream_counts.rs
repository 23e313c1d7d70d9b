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
use super::dispatches::{self, Pairs};
use super::kernels::EXAMPLE_THREADS;
use super::GpuError;
use crate::backend::Nll;
use crate::corpus::{CountTable, PairBatches};

/// Most pairs per dispatch of the counting kernel (4 MiB per buffer).
const BATCH_PAIRS: usize = 1 << 20;

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
                let counting = dispatches::count_pairs(gpu, &pairs, &counts)?;
                slot.last_use = Some(gpu.submit(&[counting]));
            }
        }
        Ok(gpu.read(&counts, num_bins)?)
    }

    /// count_nll then loss_total: the mean NLL of the examples a table counts.
    pub(super) fn table_nll(&self, probs: &[f32], table: &CountTable) -> anyhow::Result<Nll> {
        let gpu = self.gpu();
        let num_cells = table.counts.len() as u32;
        let probs = gpu.upload("probs", probs);
        let counts = gpu.upload("counts", &table.counts);
        let num_partials = num_cells.div_ceil(EXAMPLE_THREADS);
        let partials = gpu.zeroed("partials", num_partials as usize);
        let impossible = gpu.zeroed("impossible", 1);
        let count_nll =
            dispatches::count_nll(gpu, &probs, &counts, &partials, &impossible, num_cells)?;
        // The count model has no weights to penalize.
        let n = table.examples as u32;
        let mean = self.mean_of_sums(&[count_nll], &partials, num_partials, n)?;
        let impossible: Vec<u32> = gpu.read(&impossible, 1)?;
        Ok(Nll {
            finite_mean: mean as f64,
            impossible: impossible[0] as u64,
            examples: table.examples,
        })
    }
}

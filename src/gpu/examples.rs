//! The examples on the device: sorted by context, cut into segments of the backward pass
//! and, when larger than one storage binding, into chunks of consecutive examples, each bound
//! as its own buffers (a step dispatches the forward and backward kernels once per chunk, and
//! the chunks' sums meet in a fixed order as for one chunk).

use std::cell::OnceCell;

use crate::data::Examples;

use super::kernels;
use super::Gpu;

/// Shortest run of examples that one thread of cross_entropy_backward adds up (longer when a
/// context has so many examples that grad_rows would otherwise loop over too many segments).
/// Shorter runs mean more parallel threads and more partial sums for grad_rows to add.
const MIN_SEGMENT_LEN: u32 = 256;

/// One chunk of the examples, bound as its own buffers: at most [`GpuExamples`]'s
/// `chunk_len` consecutive examples, with the segments that lie in it.
pub(super) struct ExampleChunk {
    pub(super) len: u32,
    pub(super) contexts: wgpu::Buffer,
    pub(super) targets: wgpu::Buffer,
    /// Example offsets of the chunk's segments from the chunk's first example (one more than
    /// there are segments).
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
    /// Examples per segment (the last segment of a context, or one cut by a chunk boundary,
    /// may be shorter).
    pub(super) segment_len: u32,
    /// The most segments of any context.
    pub(super) most_segments_per_row: u32,
    /// The count matrix of these examples, counted on the device the first time the counts
    /// path needs it.
    pub(super) counts: OnceCell<wgpu::Buffer>,
}

impl GpuExamples {
    /// How many chunks the examples were cut into (one unless they exceed a binding).
    pub fn num_chunks(&self) -> usize {
        self.chunks.len()
    }
}

/// Checks that `n` examples can be indexed by the kernels: they index examples (and count
/// them, so no count can wrap) with u32. Data larger than one binding is cut into chunks.
pub fn check_fits(n: usize) -> anyhow::Result<()> {
    if n > u32::MAX as usize {
        anyhow::bail!(
            "{n} examples are more than the GPU kernels can index ({}); use fewer words or --device cpu",
            u32::MAX
        );
    }
    Ok(())
}

/// The largest buffer a kernel can bind whole: the tighter of the adapter's binding and
/// buffer limits.
fn largest_binding(limits: &wgpu::Limits) -> u64 {
    limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size)
}

/// Examples per chunk: each chunk's contexts, targets and `lse` (4 bytes an example each)
/// must fit one binding.
pub fn chunk_len(limits: &wgpu::Limits) -> u32 {
    (largest_binding(limits) / 4).clamp(1, u32::MAX as u64) as u32
}

impl GpuExamples {
    /// Uploads `examples` grouped by context, in chunks of at most `most_per_chunk` examples
    /// (fewer when one binding holds fewer).
    pub(super) fn upload(
        gpu: &Gpu,
        examples: &Examples,
        most_per_chunk: u32,
    ) -> anyhow::Result<GpuExamples> {
        let n = examples.len();
        check_fits(n)?;
        let limits = &gpu.limits;
        let chunk_len = chunk_len(limits).min(most_per_chunk);
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
        segment_grad_bytes <= largest_binding(limits),
        "{n} examples need {} MiB of per-segment gradient sums, more than this adapter's largest storage binding of {} MiB; use fewer words or --device cpu",
        segment_grad_bytes.div_ceil(1 << 20),
        largest_binding(limits) >> 20
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

/// Cuts each context's run of examples (rows `offsets[r] .. offsets[r + 1]` of the examples
/// grouped by context) into segments of at most `segment_len`, and at the chunk boundaries,
/// so that every segment lies in one chunk. Returns the first example of each segment and
/// the segment offsets of each row (one more than there are rows).
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

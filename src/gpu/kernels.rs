//! What every kernel shares: its pipeline, compiled on first use ([`kernel!`]), its parameters
//! ([`uniform!`]), its [`Dispatch`], and the one path to the queue ([`Gpu::record`]).
//!
//! The loop budget: Mesa's gallivm (lavapipe, llvmpipe) silently ends every loop of an
//! invocation after 65,535 iterations in all (tests/kernels/loop_budget.rs), and real GPUs have
//! watchdogs. So each kernel's WGSL header states its worst-case loop iterations, and no
//! dispatch is made over [`LOOP_BUDGET`]: work that grows with the data is spread over lanes,
//! cut into blocks, or summed in levels instead.

use super::Gpu;
use crate::backend::LossForm;

/// Threads per workgroup of the kernels with a thread per example, and per table entry or row.
pub const EXAMPLE_THREADS: u32 = 256;
pub const ENTRY_THREADS: u32 = 64;
/// Compute passes recorded before they are submitted without waiting for a readback.
const PENDING_PASSES: usize = 128;

/// The most loop iterations any invocation of any kernel may make (Mesa's limit is 65,535).
pub const LOOP_BUDGET: u64 = 16_384;

/// Lanes per row (or example) of `cols` columns: the smallest power of two that leaves each
/// lane at most 256 columns, at most 64. One lane for the lecture's 27.
pub fn lanes_for(cols: u32) -> u32 {
    let wanted = (cols as u64).div_ceil(256).max(1);
    wanted.next_power_of_two().min(64) as u32
}

/// log2 of a power of two.
pub fn log2(x: u32) -> u64 {
    x.max(1).trailing_zeros() as u64
}

/// Columns one of `lanes` lanes reads from a row of `cols`.
pub fn per_lane(cols: u32, lanes: u32) -> u64 {
    (cols as u64).div_ceil(lanes.max(1) as u64)
}

/// Checks one kernel's bound against the budget: over it, the run is refused before any work.
pub fn check(kernel: &str, iterations: u64) -> anyhow::Result<()> {
    anyhow::ensure!(
        iterations <= LOOP_BUDGET,
        "{kernel} would loop {iterations} times per GPU thread on this data, over the budget of \
         {LOOP_BUDGET} that keeps every adapter's results exact; use --device cpu for data this large"
    );
    Ok(())
}

/// Examples per segment (or block) of a backward pass: at least `min_len`, and long enough
/// that the row with the most examples has at most [`LOOP_BUDGET`] of them (grad_rows' loop).
pub fn segment_len(most_examples_per_row: u64, min_len: u32) -> u32 {
    let needed = most_examples_per_row.div_ceil(LOOP_BUDGET);
    needed.max(min_len as u64).min(u32::MAX as u64) as u32
}

/// The most workgroups count_descent spreads a table over.
pub const SUM_BLOCK: u32 = 4096;
/// Values each thread of a coarsened sum adds before the tree (shaders/common/sum.wgsl's
/// PER_THREAD), and the values of a block: what each workgroup of nll_gather, count_nll and
/// partial_sums adds, and the most sums loss_total takes per list.
pub const SUM_PER_THREAD: u32 = 32;
pub const BLOCK_VALUES: u32 = EXAMPLE_THREADS * SUM_PER_THREAD;

/// One coarsened sum's loop bound (sum.wgsl): `PER_THREAD + log2(256)`.
pub const SUM_BOUND: u64 = SUM_PER_THREAD as u64 + EXAMPLE_THREADS.trailing_zeros() as u64;
/// The most rounds of rows of a table one workgroup holds (1,024 rows of up to 256 columns).
const SMALL_TABLE_ROUNDS: u32 = 16;
/// The most columns of a row count_descent holds in private arrays (KEPT in the shader).
pub const DESCENT_KEPT: u32 = 32;

/// Whether count_descent holds rows of `cols` columns in private arrays (the `count_descent`
/// pipeline, loops of 32 per row) rather than lanes sharing them (`count_descent_wide`): at
/// most 32 columns, and few enough rows per thread for one step within the loop budget.
pub fn descent_keeps(cols: u32, rows_per_thread: u32) -> bool {
    let step = rows_per_thread as u64 * (3 * DESCENT_KEPT as u64 + 1) + 1 + 65;
    cols <= DESCENT_KEPT && step <= LOOP_BUDGET
}

/// count_descent's loop bound: `steps` steps of `rows_per_thread` rows of R iterations each,
/// then each step's sums over the workgroup, a step per thread:
/// `steps * (rows_per_thread * R + 1) + ceil(steps / 64) * 65`, with R = 3 * 32 + 1 where
/// [`descent_keeps`] the rows, else R = 3 * ceil(C / L) + 2 * log2(L) + 1.
pub fn descent_bound(cols: u32, lanes: u32, rows_per_thread: u32, steps: u32) -> u64 {
    let per_row = match descent_keeps(cols, rows_per_thread) {
        true => 3 * DESCENT_KEPT as u64 + 1,
        false => 3 * per_lane(cols, lanes) + 2 * log2(lanes) + 1,
    };
    let sums = (steps as u64).div_ceil(ENTRY_THREADS as u64) * (ENTRY_THREADS as u64 + 1);
    steps as u64 * (rows_per_thread as u64 * per_row + 1) + sums
}

/// The most workgroups count_descent spreads a table over on a CPU adapter (lavapipe,
/// llvmpipe, WARP), whose cores are few and whose every workgroup has a fixed cost (the
/// context-3 step in BENCHMARKS.md). A constant, so that a machine's results do not depend on
/// its core count.
pub const CPU_ADAPTER_GROUPS: u32 = 16;
/// The most rows a thread takes for fewer workgroups: 64 rows of up to 32 columns loop well
/// within the loop budget.
const MOST_ROWS_PER_THREAD: u32 = 64;

/// How count_descent spreads a table over its threads: lanes per row, rows per thread,
/// workgroups, and steps per dispatch. One workgroup, with as many steps per dispatch as the
/// loop budget allows, for a small table; else enough rows per thread to need at most
/// `most_groups` workgroups (SUM_BLOCK on a GPU, CPU_ADAPTER_GROUPS on a CPU adapter), within
/// MOST_ROWS_PER_THREAD and the loop budget, and at most SUM_BLOCK whatever it takes.
pub fn descent_layout(rows: u32, cols: u32, most_groups: u32) -> (u32, u32, u32, u32) {
    let lanes = lanes_for(cols);
    let rounds = rows.div_ceil(ENTRY_THREADS / lanes).max(1);
    if rounds <= SMALL_TABLE_ROUNDS {
        // descent_bound(.., steps) <= steps * (per_step + 2) + 65 (65 / 64 < 2).
        let per_step = descent_bound(cols, lanes, rounds, 1) - ENTRY_THREADS as u64 - 1;
        let steps = (LOOP_BUDGET - ENTRY_THREADS as u64 - 1) / (per_step + 2);
        (lanes, rounds, 1, steps.max(1) as u32)
    } else {
        let fewest = rounds.div_ceil(SUM_BLOCK);
        let wanted = rounds.div_ceil(most_groups).min(MOST_ROWS_PER_THREAD);
        let rows_per_thread = match descent_bound(cols, lanes, wanted, 1) <= LOOP_BUDGET {
            true => wanted.max(fewest),
            false => fewest,
        };
        (lanes, rows_per_thread, rounds.div_ceil(rows_per_thread), 1)
    }
}

/// The vec4s of contexts and of targets (4 examples each) that a thread of count_pairs and
/// count_pairs_private loads, and the most cells count_pairs_private's workgroup histogram
/// holds (16 KiB: the WebGPU baseline).
pub const COUNT_QUADS: u32 = 8;
pub const PRIVATE_BINS: u32 = 4096;

/// The counting kernels' loop bound: QUADS, and with the workgroup histogram (`private`)
/// `4096 / 256` stores to clear it and `ceil(bins / 256)` cells to add into the table.
pub fn count_bound(num_bins: u32, private: bool) -> u64 {
    let histogram = (PRIVATE_BINS / EXAMPLE_THREADS) as u64 + per_lane(num_bins, EXAMPLE_THREADS);
    COUNT_QUADS as u64 + if private { histogram } else { 0 }
}

/// The vec4s of text (16 bytes each) that a thread of count_text counts.
pub const TEXT_QUADS: u32 = 8;

/// count_text's loop bound: `QUADS * (K + 4 + 16)` (the context read back, the vec4's bytes),
/// and with the workgroup histogram (`private`) `4096 / 256 + ceil(bins / 256)`.
pub fn text_bound(context_len: u32, num_bins: u32, private: bool) -> u64 {
    let histogram = (PRIVATE_BINS / EXAMPLE_THREADS) as u64 + per_lane(num_bins, EXAMPLE_THREADS);
    TEXT_QUADS as u64 * (context_len as u64 + 20) + if private { histogram } else { 0 }
}

/// normalize_rows' loop bound: `2 * ceil(C / L) + log2(L)`.
pub fn normalize_bound(cols: u32, lanes: u32) -> u64 {
    2 * per_lane(cols, lanes) + log2(lanes)
}

/// softmax_rows' loop bound: `3 * ceil(C / L) + 2 * log2(L)`.
pub fn softmax_bound(cols: u32, lanes: u32) -> u64 {
    3 * per_lane(cols, lanes) + 2 * log2(lanes)
}

/// The forward kernel's loop bound (cross_entropy_forward's, cross_entropy_explicit's).
pub fn forward_bound(loss: LossForm, cols: u32, lanes: u32) -> u64 {
    match loss {
        LossForm::Fused => 2 * per_lane(cols, lanes) + 2 * log2(lanes) + log2(256),
        LossForm::Explicit => per_lane(cols, lanes) + log2(lanes) + log2(256),
    }
}

/// cross_entropy_fused's vec4s per row (its VECS), the widest rows they hold, and its examples
/// per block of the sums (its BLOCK).
const FUSED_VECS: u64 = 8;
pub const FUSED_COLS: u32 = 4 * FUSED_VECS as u32;
const FUSED_BLOCK: u64 = 16;

/// cross_entropy_fused's loop bound, segments of at most `segment_len` examples:
/// `10 * VECS + ceil(L / BLOCK) * (VECS + 1) + L * (2 * VECS + 1)`.
pub fn fused_bound(segment_len: u32) -> u64 {
    let len = segment_len as u64;
    10 * FUSED_VECS + len.div_ceil(FUSED_BLOCK) * (FUSED_VECS + 1) + len * (2 * FUSED_VECS + 1)
}

/// A kernel's `Params` uniform: the WGSL struct's fields in order, `new` taking them in that
/// order, and `pad` words for its `_pad0`, `_pad1`, ... (a uniform is a multiple of 16 bytes).
macro_rules! uniform {
    ($name:ident($($field:ident: $type:ty),*) $(pad $pad:literal)?) => {
        #[repr(C)]
        #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
        struct $name { $($field: $type,)* _pad: [u32; 0 $(+ $pad)?] }
        const _: () = assert!(std::mem::size_of::<$name>() % 16 == 0);
        impl $name {
            #[allow(clippy::too_many_arguments)]
            fn new($($field: $type),*) -> $name {
                $name { $($field,)* _pad: Default::default() }
            }
        }
    };
}
pub(crate) use uniform;

/// The kernel `shaders/NAME.wgsl` with shaders/common/kernel.wgsl and the other shared files
/// it names appended (WGSL's module scope does not depend on order, and naga's line numbers
/// stay the kernel's), its override `constants` set: `kernel!(gpu, "NAME", ...)`.
macro_rules! kernel {
    ($gpu:expr, $name:literal $(, $common:literal)*) => {
        $crate::gpu::kernels::kernel!($gpu, $name, $name, &[] $(, $common)*)
    };
    ($gpu:expr, $name:literal, $file:literal, $constants:expr $(, $common:literal)*) => {
        $gpu.kernel($name, $constants, wgpu::ShaderModuleDescriptor {
            label: Some($file),
            source: wgpu::ShaderSource::Wgsl(
                concat!(
                    include_str!(concat!("../../shaders/", $file, ".wgsl")),
                    include_str!("../../shaders/common/kernel.wgsl"),
                    $(include_str!(concat!("../../shaders/common/", $common, ".wgsl")),)*
                )
                .into(),
            ),
        })
    };
}
pub(crate) use kernel;

/// A compiled kernel and its name.
#[derive(Clone)]
pub struct Kernel {
    pub name: &'static str,
    pipeline: wgpu::ComputePipeline,
}

impl Gpu {
    /// The kernel `name`, compiled from `source` with the override `constants` on first use.
    pub fn kernel(
        &self,
        name: &'static str,
        constants: &[(&str, f64)],
        source: wgpu::ShaderModuleDescriptor<'_>,
    ) -> Kernel {
        let mut compiled = (self.compiled.lock()).unwrap_or_else(|e| e.into_inner());
        let compile = || Kernel {
            name,
            pipeline: self
                .device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(name),
                    layout: None,
                    module: &self.device.create_shader_module(source),
                    entry_point: Some("main"),
                    // Every kernel writes its workgroup arrays before it reads them, so the
                    // zero-fill is skipped: on GL, naga writes it as one array constructor of
                    // every zero, which llvmpipe takes over a minute to compile for
                    // count_pairs_private's 4,096 cells.
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants,
                        zero_initialize_workgroup_memory: false,
                    },
                    cache: None,
                }),
        };
        compiled.entry(name).or_insert_with(compile).clone()
    }
}

/// What to dispatch: a kernel, its bind group and its workgroups.
#[derive(Clone)]
pub struct Dispatch {
    kernel: Kernel,
    bind_group: wgpu::BindGroup,
    groups: u32,
}

impl Dispatch {
    /// `kernel` over `groups` workgroups with `params` at binding 0 and `buffers` at 1, 2, ...
    /// (the layout is derived from the shader), refused when `loop_bound` is over the budget.
    pub fn new<P: bytemuck::Pod>(
        gpu: &Gpu,
        kernel: Kernel,
        params: P,
        buffers: &[&wgpu::Buffer],
        groups: u32,
        loop_bound: u64,
    ) -> anyhow::Result<Dispatch> {
        check(kernel.name, loop_bound)?;
        let params = gpu.params(params);
        let entries: Vec<_> = std::iter::once(&params)
            .chain(buffers.iter().copied())
            .enumerate()
            .map(|(binding, buffer)| wgpu::BindGroupEntry {
                binding: binding as u32,
                resource: buffer.as_entire_binding(),
            })
            .collect();
        let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &kernel.pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        Ok(Dispatch {
            kernel,
            bind_group,
            groups,
        })
    }
}

impl Gpu {
    /// Records `dispatches` in one compute pass of the pending encoder, which [`Gpu::flush`]
    /// (every readback) submits, or this once PENDING_PASSES wait.
    pub fn record(&self, dispatches: &[Dispatch]) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let new = || (self.device.create_command_encoder(&Default::default()), 0);
        let (encoder, passes) = pending.get_or_insert_with(new);
        let mut pass = encoder.begin_compute_pass(&Default::default());
        // Past `max` workgroups the grid is 2D; the shaders flatten it back with
        // `group_id.x + group_id.y * num_workgroups.x` and skip its padding.
        let max = self.limits.max_compute_workgroups_per_dimension;
        let profiler = &self.profiler;
        for d in dispatches {
            pass.set_pipeline(&d.kernel.pipeline);
            pass.set_bind_group(0, &d.bind_group, &[]);
            // A timestamp on either side while a profile is open.
            let slot = profiler.before(&mut pass, d.kernel.name, d.groups);
            let groups = d.groups.max(1);
            pass.dispatch_workgroups(groups.min(max), groups.div_ceil(max), 1);
            profiler.after(&mut pass, slot);
        }
        drop(pass);
        *passes += 1;
        if *passes >= PENDING_PASSES {
            let (encoder, _) = pending.take().expect("recorded above");
            self.queue.submit([encoder.finish()]);
        }
    }

    /// Submits the pending command encoder, if any.
    pub fn flush(&self) -> Option<wgpu::SubmissionIndex> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending
            .take()
            .map(|(encoder, _)| self.queue.submit([encoder.finish()]))
    }

    /// Records `dispatches` after what is pending, and submits them.
    pub fn submit(&self, dispatches: &[Dispatch]) -> wgpu::SubmissionIndex {
        self.record(dispatches);
        self.flush().expect("a pass was recorded")
    }
}

//! What every kernel shares, and the one way its work reaches the device.
//!
//! A kernel's pipeline is compiled on first use and kept by name ([`Gpu::kernel`], the
//! [`kernel!`] macro). It binds its parameters (a [`uniform!`] struct beside its dispatch
//! function) at binding 0 and its buffers at 1, 2, ... in the order its WGSL file declares
//! them; the layout is derived from the shader, so the WGSL file is the one place a binding is
//! described. A [`Dispatch`] (made per kernel in dispatches.rs) is recorded into a compute
//! pass of the pending encoder ([`Gpu::pending`]), which [`Gpu::flush`] submits.
//!
//! The loop budget. Mesa's gallivm, which runs the shaders of both lavapipe (Vulkan) and
//! llvmpipe (GL), ends every loop of an invocation silently once the invocation has made
//! 65,535 loop iterations in total, counted across all of its loops
//! (`LP_MAX_TGSI_LOOP_ITERATIONS`); the kernel goes on with whatever its loops had computed,
//! and nothing reports it (`tests/kernels/loop_budget.rs` shows it). Real GPUs have watchdogs. So every
//! kernel states its worst-case loop iterations per invocation in its WGSL header, its
//! dispatch function computes that formula for the parameters the host chose, and no dispatch
//! is made whose bound exceeds [`LOOP_BUDGET`], a quarter of Mesa's limit. Work that grows
//! with the data is spread over more threads (lanes per row), cut into blocks, or summed in
//! several levels instead.

use super::profile::Profiler;
use super::Gpu;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard};

/// Threads per workgroup of the kernels that give one thread to each example.
pub const EXAMPLE_THREADS: u32 = 256;
/// Threads per workgroup of the kernels that give one thread to each table entry or row.
pub const ENTRY_THREADS: u32 = 64;
/// Compute passes recorded before they are submitted without waiting for a readback.
const PENDING_PASSES: usize = 128;

/// The most loop iterations any invocation of any kernel may make (Mesa's limit is 65,535).
pub const LOOP_BUDGET: u64 = 16_384;

/// Lanes per row (or per example) for rows of `cols` columns: the smallest power of two that
/// leaves each lane at most 256 columns, and at most 64 (the smaller workgroups' threads).
/// One lane for the lecture's 27.
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
    (iterations <= LOOP_BUDGET).then_some(()).ok_or(OverBudget {
        kernel,
        iterations,
        budget: LOOP_BUDGET,
    })
}

/// Segment length of the per-example backward pass: at least `min_len` examples, and long
/// enough that the row with the most examples has at most [`LOOP_BUDGET`] segments (the loop
/// of grad_rows); the segment itself is cross_entropy_backward's loop.
pub fn segment_len(most_examples_per_row: u64, min_len: u32) -> u32 {
    let needed = most_examples_per_row.div_ceil(LOOP_BUDGET);
    needed.max(min_len as u64).min(u32::MAX as u64) as u32
}

/// A kernel's `Params` uniform as a Rust struct with the same fields in the same order, so
/// that every call site names the values it passes. A uniform struct is a multiple of 16
/// bytes: the `_pad` words stand for the WGSL struct's `_pad0`, `_pad1`, ... fields.
macro_rules! uniform {
    ($(#[$doc:meta])* $vis:vis struct $name:ident {
        $($(#[$field_doc:meta])* $field:ident: $type:ty),* $(,)?
    }) => {
        $(#[$doc])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
        $vis struct $name { $($(#[$field_doc])* pub $field: $type,)* }
        const _: () = assert!(std::mem::size_of::<$name>() % 16 == 0);
    };
}
pub(super) use uniform;

/// A kernel's buffers by name, in the order its WGSL file binds them (from binding 1).
macro_rules! buffers {
    ($(#[$doc:meta])* $name:ident { $($(#[$field_doc:meta])* $field:ident),* $(,)? }) => {
        $(#[$doc])*
        pub struct $name<'a> { $($(#[$field_doc])* pub $field: &'a wgpu::Buffer,)* }
        impl $name<'_> {
            fn bindings(&self) -> Vec<&wgpu::Buffer> {
                vec![$(self.$field),*]
            }
        }
    };
}
pub(super) use buffers;

/// A kernel's WGSL with shaders/common/kernel.wgsl and the other shared files it names appended:
/// WGSL's module scope does not depend on order, and naga's line numbers stay the kernel's.
macro_rules! wgsl {
    ($file:literal $(, $common:literal)*) => {
        wgpu::ShaderModuleDescriptor {
            label: Some($file),
            source: wgpu::ShaderSource::Wgsl(
                concat!(
                    include_str!(concat!("../../shaders/", $file, ".wgsl")),
                    include_str!("../../shaders/common/kernel.wgsl"),
                    $(include_str!(concat!("../../shaders/common/", $common, ".wgsl")),)*
                )
                .into(),
            ),
        }
    };
}
pub(super) use wgsl;

/// The kernel of `shaders/NAME.wgsl` with the shared files it names: `kernel!(gpu, "NAME", ...)`.
macro_rules! kernel {
    ($gpu:expr, $name:literal $(, $common:literal)*) => {
        $gpu.kernel($name, $crate::gpu::kernels::wgsl!($name $(, $common)*), &[])
    };
}
pub(super) use kernel;

/// A compiled kernel, its name (the name of its WGSL file), and the device's profiler.
#[derive(Clone)]
pub struct Kernel {
    pub name: &'static str,
    pub pipeline: wgpu::ComputePipeline,
    profiler: Arc<Profiler>,
}

/// The kernels compiled so far, by name, and the timestamps `dispatch` writes around them while
/// a profile is open (profile.rs).
pub struct Kernels {
    pub profiler: Arc<Profiler>,
    compiled: Mutex<HashMap<&'static str, Kernel>>,
}

impl Kernels {
    pub fn new(device: &wgpu::Device) -> Kernels {
        Kernels {
            profiler: Arc::new(Profiler::new(device, device.features())),
            compiled: Mutex::default(),
        }
    }
}

impl Gpu {
    /// The kernel `name`, compiled from `source` with the override `constants` on first use.
    pub fn kernel(
        &self,
        name: &'static str,
        source: wgpu::ShaderModuleDescriptor<'_>,
        constants: &[(&str, f64)],
    ) -> Kernel {
        let mut compiled = (self.kernels.compiled.lock()).unwrap_or_else(|e| e.into_inner());
        let compile = || Kernel {
            name,
            pipeline: self
                .device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(name),
                    layout: None, // derived from the shader's bindings
                    module: &self.device.create_shader_module(source),
                    entry_point: Some("main"),
                    // Every kernel writes its workgroup arrays before it reads them, so the
                    // zero-fill WGSL would otherwise add is skipped: on GL, naga writes it as one
                    // array constructor of every zero, which llvmpipe takes over a minute to
                    // compile for count_pairs_private's 4,096 cells.
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants,
                        zero_initialize_workgroup_memory: false,
                    },
                    cache: None,
                }),
            profiler: self.kernels.profiler.clone(),
        };
        compiled.entry(name).or_insert_with(compile).clone()
    }
}

/// A bind group for `kernel` with `params` at binding 0 and `buffers` at 1, 2, ...
pub fn bind(
    device: &wgpu::Device,
    kernel: &Kernel,
    params: &wgpu::Buffer,
    buffers: &[&wgpu::Buffer],
) -> wgpu::BindGroup {
    let entries: Vec<wgpu::BindGroupEntry<'_>> = std::iter::once(params)
        .chain(buffers.iter().copied())
        .enumerate()
        .map(|(binding, buffer)| wgpu::BindGroupEntry {
            binding: binding as u32,
            resource: buffer.as_entire_binding(),
        })
        .collect();
    device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &kernel.pipeline.get_bind_group_layout(0),
        entries: &entries,
    })
}

/// Workgroup grid for `groups` workgroups: one row of the grid when it fits, otherwise a 2D
/// grid that the shaders flatten back with `group_id.x + group_id.y * num_workgroups.x`
/// (and whose padding they skip).
pub fn grid(groups: u32, max_per_dimension: u32) -> (u32, u32) {
    let groups = groups.max(1);
    if groups <= max_per_dimension {
        (groups, 1)
    } else {
        (max_per_dimension, groups.div_ceil(max_per_dimension))
    }
}

/// Records one dispatch of `groups` workgroups into a compute pass. `loop_bound` is the
/// kernel's worst-case loop iterations per invocation for this dispatch (its WGSL header's
/// formula); the host checked it against the loop budget before recording anything.
/// The kernel's profiler writes a timestamp on either side of it while a profile is open.
pub fn dispatch(
    pass: &mut wgpu::ComputePass<'_>,
    kernel: &Kernel,
    bind_group: &wgpu::BindGroup,
    groups: u32,
    max_per_dimension: u32,
    loop_bound: u64,
) {
    debug_assert!(
        loop_bound <= LOOP_BUDGET,
        "{}: {loop_bound} loop iterations per invocation, over the budget of {LOOP_BUDGET}",
        kernel.name
    );
    let (x, y) = grid(groups, max_per_dimension);
    pass.set_pipeline(&kernel.pipeline);
    pass.set_bind_group(0, bind_group, &[]);
    let slot = kernel.profiler.before(pass, kernel.name, groups);
    pass.dispatch_workgroups(x, y, 1);
    kernel.profiler.after(pass, slot);
}

/// What to dispatch on a [`Gpu`]: a kernel, its bind group, its workgroups and its loop bound
/// per invocation (checked against the loop budget when the dispatch was made, before anything
/// is recorded).
pub struct Dispatch<'g> {
    kernel: Kernel,
    bind_group: wgpu::BindGroup,
    groups: u32,
    loop_bound: u64,
    /// Made for, and recorded on, this Gpu.
    gpu: PhantomData<&'g Gpu>,
}

impl<'g> Dispatch<'g> {
    /// `kernel` over `groups` workgroups with `params` and `buffers`, refused when `loop_bound`
    /// is over the budget.
    pub fn new<P: bytemuck::Pod>(
        gpu: &'g Gpu,
        kernel: Kernel,
        params: P,
        buffers: &[&wgpu::Buffer],
        groups: u32,
        loop_bound: u64,
    ) -> anyhow::Result<Dispatch<'g>> {
        check(kernel.name, loop_bound)?;
        let bind_group = bind(&gpu.device, &kernel, &gpu.params(params), buffers);
        Ok(Dispatch {
            kernel,
            bind_group,
            groups,
            loop_bound,
            gpu: PhantomData,
        })
    }

    /// Records the dispatch into a compute pass.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>, max_per_dimension: u32) {
        let (group, groups) = (&self.bind_group, self.groups);
        dispatch(
            pass,
            &self.kernel,
            group,
            groups,
            max_per_dimension,
            self.loop_bound,
        );
    }
}

/// The pending command encoder, locked: [`Pending::pass`] begins a compute pass in it. It is
/// submitted by [`Gpu::flush`] (every readback flushes first), or here once PENDING_PASSES wait.
pub struct Pending<'g> {
    gpu: &'g Gpu,
    encoder: MutexGuard<'g, Option<(wgpu::CommandEncoder, usize)>>,
}

impl Pending<'_> {
    pub fn pass(&mut self) -> wgpu::ComputePass<'_> {
        let device = &self.gpu.device;
        let (encoder, passes) = (self.encoder)
            .get_or_insert_with(|| (device.create_command_encoder(&Default::default()), 0));
        *passes += 1;
        encoder.begin_compute_pass(&Default::default())
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self
            .encoder
            .as_ref()
            .is_some_and(|(_, n)| *n >= PENDING_PASSES)
        {
            self.gpu.submit_encoder(self.encoder.take());
        }
    }
}

impl Gpu {
    /// The most workgroups of one dimension of a dispatch grid.
    pub fn max_groups(&self) -> u32 {
        self.limits.max_compute_workgroups_per_dimension
    }

    /// The pending encoder: the one path by which kernels reach the queue.
    pub fn pending(&self) -> Pending<'_> {
        let encoder = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        Pending { gpu: self, encoder }
    }

    fn submit_encoder(
        &self,
        encoder: Option<(wgpu::CommandEncoder, usize)>,
    ) -> Option<wgpu::SubmissionIndex> {
        encoder.map(|(encoder, _)| self.queue.submit([encoder.finish()]))
    }

    /// Submits the pending command encoder, if any.
    pub fn flush(&self) -> Option<wgpu::SubmissionIndex> {
        let taken = self.pending().encoder.take();
        self.submit_encoder(taken)
    }

    /// Submits what is pending, then `dispatches` in order in one compute pass.
    pub fn submit(&self, dispatches: &[Dispatch<'_>]) -> wgpu::SubmissionIndex {
        let max = self.max_groups();
        {
            let mut pending = self.pending();
            let mut pass = pending.pass();
            dispatches.iter().for_each(|d| d.record(&mut pass, max));
        }
        self.flush().expect("a pass was recorded")
    }
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
            let backward = check("cross_entropy_backward", len as u64);
            assert!(backward.is_ok(), "{most}");
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
        let reason = "count_descent would loop 16385 times";
        assert!(e.to_string().contains(reason), "{e}");
    }
}

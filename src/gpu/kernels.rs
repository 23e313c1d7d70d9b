//! One compute pipeline per shader in `shaders/`, and the one way their work reaches the
//! device: a [`Dispatch`] (made per kernel in dispatches.rs) recorded into a compute pass
//! that [`Gpu::submit_pass`](super::Gpu::submit_pass) submits.
//!
//! Every kernel binds its parameters (its struct in params.rs) as a uniform at binding 0 and
//! its buffers at 1, 2, ... in the order its WGSL file declares them. The pipelines use the
//! layout wgpu derives from the shader, so the WGSL file is the one place where a binding is
//! described.

use super::loop_budget::LOOP_BUDGET;
use super::profile::Profiler;
use std::sync::Arc;

/// Threads per workgroup of the kernels that give one thread to each example.
pub const EXAMPLE_THREADS: u32 = 256;

/// Compute passes recorded before they are submitted without waiting for a readback.
const PENDING_PASSES: usize = 128;
/// Threads per workgroup of the kernels that give one thread to each table entry or row.
pub const ENTRY_THREADS: u32 = 64;

/// Cells of the largest table that count_pairs_private can count (its MAX_BINS).
pub const PRIVATE_HISTOGRAM_BINS: u32 = 4096;
/// Examples each workgroup of count_pairs_private adds into its private table.
pub const PRIVATE_HISTOGRAM_EXAMPLES: u32 = 16384;

/// A compiled kernel, its name (the name of its WGSL file), and the device's profiler.
pub struct Kernel {
    pub name: &'static str,
    pub pipeline: wgpu::ComputePipeline,
    profiler: Arc<Profiler>,
}

/// The compiled kernels, and the timestamps `dispatch` writes around them while a profile
/// is open (profile.rs).
pub struct Kernels {
    pub profiler: Arc<Profiler>,
    pub count_pairs: Kernel,
    pub count_pairs_private: Kernel,
    pub normalize_rows: Kernel,
    pub nll_gather: Kernel,
    pub cross_entropy_forward: Kernel,
    pub cross_entropy_explicit: Kernel,
    pub one_hot_matmul: Kernel,
    pub one_hot_matmul_backward: Kernel,
    pub cross_entropy_backward: Kernel,
    pub grad_rows: Kernel,
    pub loss_total: Kernel,
    pub sgd_step: Kernel,
    pub adamw_step: Kernel,
    pub softmax_rows: Kernel,
    pub count_descent: Kernel,
    pub partial_sums: Kernel,
    pub count_nll: Kernel,
}

fn pipeline(
    device: &wgpu::Device,
    profiler: &Arc<Profiler>,
    name: &'static str,
    source: wgpu::ShaderModuleDescriptor<'_>,
    constants: &[(&str, f64)],
) -> Kernel {
    let module = device.create_shader_module(source);
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(name),
        layout: None, // derived from the shader's bindings
        module: &module,
        entry_point: Some("main"),
        // Every kernel writes its workgroup arrays before it reads them (count_pairs_private
        // clears its histogram itself), so the zero-fill WGSL would otherwise add is skipped:
        // on GL, naga writes it as one array constructor of every zero, which llvmpipe takes
        // over a minute to compile for a 4,096-cell array.
        compilation_options: wgpu::PipelineCompilationOptions {
            constants,
            zero_initialize_workgroup_memory: false,
        },
        cache: None,
    });
    Kernel {
        name,
        pipeline,
        profiler: profiler.clone(),
    }
}

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

macro_rules! kernel {
    ($device:expr, $profiler:expr, $name:literal $(, $common:literal)*) => {
        pipeline($device, $profiler, $name, wgsl!($name $(, $common)*), &[])
    };
}

impl Kernels {
    pub fn new(device: &wgpu::Device) -> Kernels {
        let profiler = Arc::new(Profiler::new(device, device.features()));
        let p = &profiler;
        Kernels {
            count_pairs: kernel!(device, p, "count_pairs"),
            count_pairs_private: kernel!(device, p, "count_pairs_private"),
            normalize_rows: kernel!(device, p, "normalize_rows"),
            nll_gather: kernel!(device, p, "nll_gather", "reduce", "nll"),
            cross_entropy_forward: kernel!(device, p, "cross_entropy_forward", "reduce", "softmax"),
            cross_entropy_explicit: pipeline(
                device,
                p,
                "cross_entropy_explicit",
                wgsl!("cross_entropy_forward", "reduce", "softmax"),
                &[("stable", 0.0)],
            ),
            one_hot_matmul: kernel!(device, p, "one_hot_matmul"),
            one_hot_matmul_backward: kernel!(device, p, "one_hot_matmul_backward"),
            cross_entropy_backward: kernel!(device, p, "cross_entropy_backward"),
            grad_rows: kernel!(device, p, "grad_rows"),
            loss_total: kernel!(device, p, "loss_total", "reduce"),
            sgd_step: kernel!(device, p, "sgd_step"),
            adamw_step: kernel!(device, p, "adamw_step"),
            softmax_rows: kernel!(device, p, "softmax_rows", "reduce", "softmax"),
            count_descent: kernel!(device, p, "count_descent", "reduce", "softmax"),
            partial_sums: kernel!(device, p, "partial_sums", "reduce"),
            count_nll: kernel!(device, p, "count_nll", "reduce", "nll"),
            profiler,
        }
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

/// What to dispatch: a kernel, its bind group, its workgroups and its loop bound per
/// invocation (checked against the loop budget when the dispatch was made, before anything
/// is recorded). dispatches.rs makes one for each kernel.
pub struct Dispatch<'k> {
    pub kernel: &'k Kernel,
    pub bind_group: wgpu::BindGroup,
    pub groups: u32,
    pub loop_bound: u64,
}

impl Dispatch<'_> {
    /// Records the dispatch into a compute pass.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>, max_per_dimension: u32) {
        let (kernel, groups) = (self.kernel, self.groups);
        dispatch(
            pass,
            kernel,
            &self.bind_group,
            groups,
            max_per_dimension,
            self.loop_bound,
        );
    }
}

impl super::Gpu {
    /// The most workgroups of one dimension of a dispatch grid.
    pub fn max_groups(&self) -> u32 {
        self.limits.max_compute_workgroups_per_dimension
    }

    /// Records what `record` dispatches into one compute pass and submits it: the one path
    /// by which kernels reach the queue.
    pub fn submit_pass(
        &self,
        record: impl FnOnce(&mut wgpu::ComputePass<'_>),
    ) -> wgpu::SubmissionIndex {
        self.flush();
        let mut encoder = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            record(&mut pass);
        }
        self.queue.submit([encoder.finish()])
    }

    /// Records a compute pass into the pending command encoder, submitted by the next
    /// [`Gpu::flush`] (every readback flushes first), or when PENDING_PASSES are waiting.
    pub fn record_pass(&self, record: impl FnOnce(&mut wgpu::ComputePass<'_>)) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let (encoder, passes) = pending
            .get_or_insert_with(|| (self.device.create_command_encoder(&Default::default()), 0));
        record(&mut encoder.begin_compute_pass(&Default::default()));
        *passes += 1;
        let full = *passes >= PENDING_PASSES;
        drop(pending);
        if full {
            self.flush();
        }
    }

    /// Submits the pending command encoder, if any.
    pub fn flush(&self) {
        let taken = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some((encoder, _)) = taken {
            self.queue.submit([encoder.finish()]);
        }
    }

    /// Submits `dispatches` in order, in one compute pass.
    pub fn submit(&self, dispatches: &[Dispatch<'_>]) -> wgpu::SubmissionIndex {
        let max = self.max_groups();
        self.submit_pass(|pass| dispatches.iter().for_each(|d| d.record(pass, max)))
    }
}

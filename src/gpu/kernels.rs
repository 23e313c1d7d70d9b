//! One compute pipeline per shader in `shaders/`, and how each is dispatched.
//!
//! Every kernel binds its parameters as a uniform at binding 0 and its buffers at 1, 2, ...
//! in the order its WGSL file declares them. The pipelines use the layout wgpu derives from
//! the shader, so the WGSL file is the one place where a binding is described.

use bytemuck::{Pod, Zeroable};

/// Threads per workgroup of the kernels that give one thread to each example.
pub const EXAMPLE_THREADS: u32 = 256;
/// Threads per workgroup of the kernels that give one thread to each table entry or row.
pub const ENTRY_THREADS: u32 = 64;

/// Cells of the largest table that count_pairs_private can count (its MAX_BINS).
pub const PRIVATE_HISTOGRAM_BINS: u32 = 4096;
/// Examples each workgroup of count_pairs_private adds into its private table.
pub const PRIVATE_HISTOGRAM_EXAMPLES: u32 = 16384;

/// Parameters of a kernel: four 32-bit words, the layout of every `Params` struct in WGSL.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct Params {
    pub words: [u32; 4],
}

impl Params {
    /// Parameters from up to four words (unsigned integers or f32 bit patterns).
    pub fn new(words: &[u32]) -> Params {
        let mut p = Params::default();
        p.words[..words.len()].copy_from_slice(words);
        p
    }
}

/// Parameters of a kernel that needs eight 32-bit words (`count_descent`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct LongParams {
    pub words: [u32; 8],
}

impl LongParams {
    /// Parameters from up to eight words (unsigned integers or f32 bit patterns).
    pub fn new(words: &[u32]) -> LongParams {
        let mut p = LongParams::default();
        p.words[..words.len()].copy_from_slice(words);
        p
    }
}

/// The compiled kernels.
pub struct Kernels {
    pub count_pairs: wgpu::ComputePipeline,
    pub count_pairs_private: wgpu::ComputePipeline,
    pub normalize_rows: wgpu::ComputePipeline,
    pub nll_gather: wgpu::ComputePipeline,
    pub cross_entropy_forward: wgpu::ComputePipeline,
    pub cross_entropy_explicit: wgpu::ComputePipeline,
    pub one_hot_matmul: wgpu::ComputePipeline,
    pub one_hot_matmul_backward: wgpu::ComputePipeline,
    pub cross_entropy_backward: wgpu::ComputePipeline,
    pub grad_rows: wgpu::ComputePipeline,
    pub loss_total: wgpu::ComputePipeline,
    pub sgd_step: wgpu::ComputePipeline,
    pub adamw_step: wgpu::ComputePipeline,
    pub softmax_rows: wgpu::ComputePipeline,
    pub count_descent: wgpu::ComputePipeline,
}

fn pipeline(
    device: &wgpu::Device,
    label: &str,
    source: wgpu::ShaderModuleDescriptor<'_>,
) -> wgpu::ComputePipeline {
    let module = device.create_shader_module(source);
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(label),
        layout: None, // derived from the shader's bindings
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    })
}

macro_rules! kernel {
    ($device:expr, $name:literal) => {
        pipeline(
            $device,
            $name,
            wgpu::include_wgsl!(concat!("../../shaders/", $name, ".wgsl")),
        )
    };
}

impl Kernels {
    pub fn new(device: &wgpu::Device) -> Kernels {
        Kernels {
            count_pairs: kernel!(device, "count_pairs"),
            count_pairs_private: kernel!(device, "count_pairs_private"),
            normalize_rows: kernel!(device, "normalize_rows"),
            nll_gather: kernel!(device, "nll_gather"),
            cross_entropy_forward: kernel!(device, "cross_entropy_forward"),
            cross_entropy_explicit: kernel!(device, "cross_entropy_explicit"),
            one_hot_matmul: kernel!(device, "one_hot_matmul"),
            one_hot_matmul_backward: kernel!(device, "one_hot_matmul_backward"),
            cross_entropy_backward: kernel!(device, "cross_entropy_backward"),
            grad_rows: kernel!(device, "grad_rows"),
            loss_total: kernel!(device, "loss_total"),
            sgd_step: kernel!(device, "sgd_step"),
            adamw_step: kernel!(device, "adamw_step"),
            softmax_rows: kernel!(device, "softmax_rows"),
            count_descent: kernel!(device, "count_descent"),
        }
    }
}

impl Kernels {
    /// The forward kernel of a loss form (both have the same bindings).
    pub fn forward(&self, loss: crate::backend::LossForm) -> &wgpu::ComputePipeline {
        match loss {
            crate::backend::LossForm::Fused => &self.cross_entropy_forward,
            crate::backend::LossForm::Explicit => &self.cross_entropy_explicit,
        }
    }
}

/// A bind group for `pipeline` with `params` at binding 0 and `buffers` at 1, 2, ...
pub fn bind(
    device: &wgpu::Device,
    pipeline: &wgpu::ComputePipeline,
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
        layout: &pipeline.get_bind_group_layout(0),
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

/// Records one dispatch of `groups` workgroups into a compute pass.
pub fn dispatch(
    pass: &mut wgpu::ComputePass<'_>,
    pipeline: &wgpu::ComputePipeline,
    bind_group: &wgpu::BindGroup,
    groups: u32,
    max_per_dimension: u32,
) {
    let (x, y) = grid(groups, max_per_dimension);
    pass.set_pipeline(pipeline);
    pass.set_bind_group(0, bind_group, &[]);
    pass.dispatch_workgroups(x, y, 1);
}

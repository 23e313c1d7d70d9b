//! The loop budget's reason, measured: `tests/kernels/shaders/loop_probe.wgsl` counts the
//! loop iterations an invocation really makes, on every backend of MAKEMORE_TEST_BACKENDS.
//!
//! - Every adapter must run loops of up to the budget (16,384 iterations in all) in full:
//!   that is what every kernel's stated bound relies on.
//! - On Mesa's llvmpipe and lavapipe (the adapters of CI and of GPU-less machines), two loops
//!   of 40,000 iterations make 65,535 in total and then stop, silently: the limit is per
//!   invocation and shared between its loops. Other adapters must run them in full.

use crate::common;

use makemore::gpu::LOOP_BUDGET;
use makemore::Backend;
use wgpu::util::DeviceExt;

/// Mesa's `LP_MAX_TGSI_LOOP_ITERATIONS`.
const MESA_LOOP_LIMIT: u32 = 65_535;

/// How many iterations of each of two loops, of `first` and `second` iterations, one
/// invocation made.
fn probe(gpu: &makemore::Gpu, first: u32, second: u32) -> (u32, u32) {
    let device = &gpu.device;
    let module = device.create_shader_module(wgpu::include_wgsl!("shaders/loop_probe.wgsl"));
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("loop_probe"),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    let params = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("params"),
        contents: bytemuck::cast_slice(&[first, second, 0, 0]),
        usage: wgpu::BufferUsages::UNIFORM,
    });
    let made = gpu.zeroed("made", 2);
    let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: params.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: made.as_entire_binding(),
            },
        ],
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &group, &[]);
        pass.dispatch_workgroups(1, 1, 1);
    }
    gpu.queue.submit([encoder.finish()]);
    let made: Vec<u32> = gpu.read(&made, 2).expect("the probe's counts read back");
    (made[0], made[1])
}

fn is_mesa_software(gpu: &makemore::Gpu) -> bool {
    gpu.info.name.to_lowercase().contains("llvmpipe")
}

#[test]
fn loops_within_the_budget_run_in_full_on_every_adapter() {
    let budget = LOOP_BUDGET as u32;
    for backend in common::gpus() {
        let gpu = backend.gpu();
        for (first, second) in [(budget, 0), (budget / 2, budget / 2), (1, budget - 1)] {
            assert_eq!(
                probe(gpu, first, second),
                (first, second),
                "{}: loops of {first} + {second} iterations",
                backend.describe()
            );
        }
    }
}

#[test]
fn mesa_stops_every_loop_of_an_invocation_after_65535_iterations_in_total() {
    for backend in common::gpus() {
        let gpu = backend.gpu();
        let (a, b) = probe(gpu, 40_000, 40_000);
        if is_mesa_software(gpu) {
            // One loop stops after 65,535 iterations. With two, the first runs in full, its
            // exit test takes one more from the shared count, and the second stops where the
            // total reaches the limit.
            let (single, none) = probe(gpu, 100_000, 0);
            assert_eq!(
                (single, none),
                (MESA_LOOP_LIMIT, 0),
                "{}",
                backend.describe()
            );
            assert_eq!(
                (a, b),
                (40_000, MESA_LOOP_LIMIT - 1 - 40_000),
                "{}",
                backend.describe()
            );
        } else {
            assert_eq!((a, b), (40_000, 40_000), "{}", backend.describe());
        }
    }
}

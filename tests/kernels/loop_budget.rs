//! The loop budget's reason, measured: `tests/kernels/shaders/loop_probe.wgsl` counts the
//! loop iterations an invocation really makes, on every backend of MAKEMORE_TEST_BACKENDS.
//!
//! - Every adapter must run loops of up to the budget (16,384 iterations in all) in full:
//!   that is what every kernel's stated bound relies on.
//! - On Mesa's llvmpipe and lavapipe (the adapters of CI and of GPU-less machines), two loops
//!   of 40,000 iterations make 65,535 in total and then stop, silently: the limit is per
//!   invocation and shared between its loops. Other adapters must run them in full.
//! - Every kernel's stated bound is within the budget for every shape the host picks.

use crate::common;

use makemore::gpu::kernels::{
    check, count_bound, descent_bound, descent_keeps, descent_layout, forward_bound, fused_bound,
};
use makemore::gpu::kernels::{lanes_for, text_bound, PRIVATE_BINS};
use makemore::gpu::kernels::{
    normalize_bound, segment_len, softmax_bound, CPU_ADAPTER_GROUPS, SUM_BLOCK,
};
use makemore::gpu::kernels::{BLOCK_VALUES, SUM_BOUND, SUM_PER_THREAD};
use makemore::gpu::LOOP_BUDGET;
use makemore::{Backend, LossForm};
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
        let gpu = &backend.gpu;
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
        let gpu = &backend.gpu;
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

#[test]
fn lanes_leave_each_lane_at_most_256_columns_up_to_64_lanes() {
    let lanes = [1, 27, 256, 257, 5000, 16384, 65536, u32::MAX].map(lanes_for);
    assert_eq!(lanes, [1, 1, 1, 2, 32, 64, 64, 64]);
}

#[test]
fn segments_keep_both_backward_loops_within_budget() {
    // Up to 2^28 examples of one context (the most whose segments both fit).
    for most in [0, 1, 255, 256, 228_146, 1 << 22, 1 << 24, 1 << 26, 1 << 28] {
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
    assert!(check("k", LOOP_BUDGET).is_ok());
    let e = check("count_descent", LOOP_BUDGET + 1).unwrap_err();
    let reason = "count_descent would loop 16385 times";
    assert!(e.to_string().contains(reason), "{e}");
}

#[test]
fn the_fused_step_takes_segments_of_up_to_15_million_examples_of_a_context() {
    // cross_entropy_fused takes the backward pass's segments, 256 examples or more.
    for most in [0, 256, 228_146, 1 << 22, 15_000_000] {
        let bound = fused_bound(segment_len(most, 256));
        assert!(check("cross_entropy_fused", bound).is_ok(), "{most}");
    }
    // Past that, the step takes cross_entropy_forward and cross_entropy_backward.
    let longer = fused_bound(segment_len(1 << 24, 256));
    assert!(check("cross_entropy_fused", longer).is_err());
}

#[test]
fn small_tables_take_one_workgroup_and_many_steps_per_dispatch() {
    let (_, bigram_rows, bigram_groups, bigram_steps) = descent_layout(27, 27, SUM_BLOCK);
    assert_eq!((bigram_groups, bigram_rows), (1, 1));
    // Rows of at most 32 columns take 3 * 32 + 1 iterations; the sums after the steps, 65 per
    // 64 steps.
    assert_eq!(
        bigram_steps,
        ((LOOP_BUDGET - 65) / (3 * 32 + 1 + 1 + 2)) as u32
    );
    assert!(descent_bound(27, 1, 1, bigram_steps) <= LOOP_BUDGET);
    // Private arrays for rows of at most 32 columns, unless their loops of 32 would be over the
    // budget (many rows per thread of a tall, narrow table): then lanes, like wider rows.
    assert!(descent_keeps(27, 1) && descent_keeps(32, 16));
    assert!(!descent_keeps(33, 1) && !descent_keeps(2, 512));
    let (lanes, rows_per_thread, groups, steps) = descent_layout(729, 27, SUM_BLOCK);
    assert_eq!((groups, rows_per_thread), (1, 12));
    assert!(descent_bound(27, lanes, rows_per_thread, steps) <= LOOP_BUDGET);
}

#[test]
fn large_tables_spread_over_at_most_4096_workgroups_within_budget() {
    // Context 3 and 4 of the lecture's alphabet, a 5,000-symbol bigram, and the longest
    // rows (65,536 columns) at the largest row counts a 1 GiB table allows; on a GPU and on a
    // CPU adapter (fewer workgroups where the budget allows).
    let tables = [
        (19_683, 27),
        (531_441, 27),
        (5_000, 5_000),
        (4_096, 65_536),
        ((1u32 << 28) / 27, 27),
        (1 << 27, 2),
    ];
    for ((rows, cols), most_groups) in tables
        .into_iter()
        .flat_map(|t| [(t, SUM_BLOCK), (t, CPU_ADAPTER_GROUPS)])
    {
        let layout = descent_layout(rows, cols, most_groups);
        let (lanes, rows_per_thread, groups, steps) = layout;
        assert!(groups <= SUM_BLOCK, "{rows} x {cols}: {layout:?}");
        assert!(groups * rows_per_thread * (64 / lanes) >= rows);
        assert_eq!(steps, 1);
        let b = descent_bound(cols, lanes, rows_per_thread, 1);
        assert!(
            b <= LOOP_BUDGET,
            "{rows} x {cols}: {b} iterations, {layout:?}"
        );
    }
    // Context 3: 308 workgroups of a row a thread on a GPU, 16 of 20 rows on a CPU adapter.
    assert_eq!(descent_layout(19_683, 27, SUM_BLOCK), (1, 1, 308, 1));
    assert_eq!(
        descent_layout(19_683, 27, CPU_ADAPTER_GROUPS),
        (1, 20, 16, 1)
    );
}

#[test]
fn row_kernels_stay_within_budget_for_every_vocabulary() {
    // Up to 65,536 symbols (the largest vocabulary), each lane count as the host picks it.
    for cols in (1..=65_536u32).step_by(97).chain([65_536]) {
        let lanes = lanes_for(cols);
        for (name, b) in [
            ("count_descent", descent_bound(cols, lanes, 1, 1)),
            (
                "cross_entropy_forward",
                forward_bound(LossForm::Fused, cols, lanes),
            ),
            (
                "cross_entropy_explicit",
                forward_bound(LossForm::Explicit, cols, lanes),
            ),
            ("softmax_rows", softmax_bound(cols, lanes)),
            ("normalize_rows", normalize_bound(cols, lanes)),
        ] {
            assert!(check(name, b).is_ok(), "{name} at {cols} columns: {b}");
        }
    }
    // The worst case: 65,536 columns over 64 lanes.
    let worst = descent_bound(65_536, 64, 1, 1);
    assert_eq!(worst, 3 * 1024 + 12 + 1 + 1 + 65);
}

#[test]
fn coarsened_sums_stay_within_budget_with_the_shaders_block() {
    // The host's figures are sum.wgsl's: 32 values a thread, then a tree over 256.
    let shader = include_str!("../../shaders/common/sum.wgsl");
    let per_thread = format!("const PER_THREAD: u32 = {SUM_PER_THREAD}u;");
    assert!(
        shader.contains(&per_thread),
        "sum.wgsl lacks `{per_thread}`"
    );
    assert_eq!((SUM_BOUND, BLOCK_VALUES), (32 + 8, 256 * 32));
    // nll_gather, count_nll and partial_sums make one sum an invocation, loss_total two.
    assert!(check("partial_sums", SUM_BOUND).is_ok());
    assert!(check("loss_total", 2 * SUM_BOUND).is_ok());
}

#[test]
fn counting_stays_within_budget_for_every_table() {
    // The workgroup histogram up to its 4,096 cells; global atomics for any table.
    for bins in 1..=PRIVATE_BINS {
        assert!(check("count_pairs_private", count_bound(bins, true)).is_ok());
    }
    assert_eq!(count_bound(729, true), 16 + 8 + 3);
    assert!(check("count_pairs", count_bound(u32::MAX, false)).is_ok());
    // count_text reads back K bytes: up to 30 (a 2-symbol alphabet's longest context that a
    // table of 2^32 bytes holds).
    for k in 1..=30 {
        assert!(check("count_text", text_bound(k, PRIVATE_BINS, true)).is_ok());
        assert!(check("count_text", text_bound(k, u32::MAX, false)).is_ok());
    }
    assert_eq!(text_bound(1, 729, true), 8 * 21 + 16 + 3);
}

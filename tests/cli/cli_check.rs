//! The GPU against the CPU from the command line: a whole `train` run as a user starts it, and
//! `makemore check` on every adapter of the machine.

use crate::common;

use common::{json_lines, json_of, stderr, stdout};

/// `train --steps 1000` on the built-in names: the same final loss on the GPU as on the CPU
/// (1e-5 relative), and the GPU run really ran on an adapter, not the CPU fallback.
#[test]
fn train_1000_steps_gives_the_cpu_final_loss_on_the_gpu() {
    let run = |device: &str| {
        let lines = json_lines(&[
            "train",
            "--steps",
            "1000",
            "--samples",
            "0",
            "--json",
            "--device",
            device,
        ]);
        let device_line = lines
            .iter()
            .find(|l| l["event"] == "device")
            .expect("a device event")["device"]
            .as_str()
            .expect("a device name")
            .to_string();
        let last = lines.last().expect("a last event").clone();
        (
            device_line,
            last["final_loss"].as_f64().expect("a final loss"),
        )
    };
    let (gpu_device, gpu) = run("gpu");
    let (cpu_device, cpu) = run("cpu");
    assert!(
        !gpu_device.contains("CPU reference"),
        "the GPU run fell back to the CPU: {gpu_device}"
    );
    assert!(cpu_device.contains("CPU reference"), "{cpu_device}");
    assert!(
        (gpu - cpu).abs() <= 1e-5 * cpu,
        "final loss after 1000 steps: GPU {gpu} on {gpu_device}, CPU {cpu}"
    );
}

/// `check` passes on every adapter the tests run on, and compares every kernel of shaders/.
#[test]
fn check_compares_every_kernel_and_passes() {
    let backends = std::env::var("MAKEMORE_TEST_BACKENDS").unwrap_or_default();
    let runs: Vec<Vec<(&str, &str)>> = if backends.is_empty() {
        vec![vec![]]
    } else {
        backends
            .split(',')
            .map(|b| vec![("WGPU_BACKEND", b)])
            .collect()
    };
    let kernels: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders"))
        .expect("the shaders directory")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter_map(|name| name.strip_suffix(".wgsl").map(str::to_string))
        // `bench --ceilings` checks its own kernels' results (tests/cli/cli_bench.rs).
        .filter(|name| !name.starts_with("ceiling_"))
        .collect();
    assert!(kernels.len() >= 16, "{kernels:?}");
    for env in runs {
        let out = common::makemore_with_env(&["check", "--json"], &env);
        assert!(
            out.status.success(),
            "{env:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        let lines = json_of(&out);
        let verdict = lines.last().expect("a verdict");
        assert_eq!(verdict["pass"], true, "{verdict}");
        assert_eq!(verdict["failed"], 0);
        let comparisons = &lines[..lines.len() - 1];
        assert_eq!(verdict["checked"], comparisons.len());
        for c in comparisons {
            assert_eq!(c["pass"], true, "{c}");
            assert!(c["worst_over_tolerance"].as_f64().unwrap() <= 1.0, "{c}");
            assert!(!c["adapter"].as_str().unwrap().is_empty());
        }
        for kernel in &kernels {
            assert!(
                comparisons
                    .iter()
                    .any(|c| c["kernel"].as_str().unwrap().contains(kernel.as_str())),
                "{env:?}: no comparison covers {kernel}"
            );
        }
    }
}

/// Without any adapter to check, `check` says so in one line and fails.
#[test]
fn check_without_an_adapter_is_a_one_line_error() {
    let out = common::makemore_with_env(&["check"], &[("WGPU_ADAPTER_NAME", "no such adapter")]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains("no GPU adapter found to check"), "{err}");
}

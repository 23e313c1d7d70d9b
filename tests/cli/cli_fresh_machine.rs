//! The first run on a headless machine, as a newcomer meets it: no XDG_RUNTIME_DIR, no
//! NODEVICE_SELECT, and drivers that talk on stderr (Mesa's EGL made verbose with
//! EGL_LOG_LEVEL=debug). The tool's stderr holds only its own lines; GL is not initialized
//! when a native API has an adapter; without Vulkan the run falls back to GL, as quietly.

#![cfg(target_os = "linux")]

use crate::common;

use std::process::{Command, Output};

use common::{assert_gpu_device, stderr, stdout};

/// The binary in a fresh directory with the environment of a fresh headless machine, plus `env`.
fn fresh(args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_makemore"))
        .args(args)
        .current_dir(dir.path())
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("NODEVICE_SELECT")
        .env_remove("WGPU_BACKEND")
        .env_remove("WGPU_ADAPTER_NAME")
        .env_remove("RUST_LOG")
        .env("EGL_LOG_LEVEL", "debug")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

const TRAIN: &[&str] = &["train", "--steps", "2", "--samples", "1", "--json"];

fn device_of(out: &Output) -> String {
    let first = stdout(out).lines().next().unwrap_or_default().to_string();
    let line: serde_json::Value = serde_json::from_str(&first).expect("a device line");
    line["device"].as_str().unwrap().to_string()
}

#[test]
fn stderr_holds_only_the_tools_lines() {
    for args in [&["adapters"][..], TRAIN] {
        let out = fresh(args, &[]);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{args:?}: the drivers' lines leaked");
    }
}

#[test]
fn gl_is_left_alone_when_a_native_api_has_an_adapter() {
    // Under RUST_LOG=debug the drivers' captured lines are shown: EGL's appear only if GL
    // was initialized.
    let out = fresh(TRAIN, &[("RUST_LOG", "makemore=debug")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let device = device_of(&out);
    assert_gpu_device(&device);
    let native = ["(Vulkan, ", "(Metal, ", "(Dx12, "]
        .iter()
        .any(|b| device.contains(b));
    if native {
        assert!(
            !stderr(&out).contains("libEGL"),
            "GL was initialized beside {device}: {}",
            stderr(&out)
        );
    } else {
        // Only GL here: then no native API may have an adapter.
        let native_only = fresh(&["adapters"], &[("WGPU_BACKEND", "vulkan,metal,dx12")]);
        assert_eq!(
            stdout(&native_only).lines().next(),
            Some("no adapters found (WGPU_BACKEND limits the search to some backends)")
        );
    }
}

#[test]
fn without_a_vulkan_driver_the_run_falls_back_to_gl_quietly() {
    // The Vulkan loader finds no driver at all (as without mesa-vulkan-drivers).
    let no_vulkan = [
        ("VK_ICD_FILENAMES", "/nonexistent/icd.json"),
        ("VK_DRIVER_FILES", "/nonexistent/icd.json"),
    ];
    let out = fresh(TRAIN, &no_vulkan);
    assert!(out.status.success(), "{}", stderr(&out));
    let device = device_of(&out);
    assert!(device.contains("(Gl, "), "{device}");
    assert_eq!(stderr(&out), "", "the drivers' lines leaked");
}

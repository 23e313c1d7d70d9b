//! Helpers shared by the integration tests.
#![allow(dead_code)]

use makemore::data::{Examples, Vocab};
use makemore::{Gpu, GpuBackend};
use rand::{RngExt, SeedableRng};

/// The GPU backends to test: one per entry of MAKEMORE_TEST_BACKENDS (a comma list such as
/// `vulkan,gl`; .ci/run sets it), or the adapter wgpu picks when it is not set. These tests
/// exist to check the GPU: without an adapter they fail, they never skip.
pub fn gpus() -> Vec<GpuBackend> {
    let open = |backends: wgpu::Backends| match Gpu::on_backends(backends) {
        Ok(gpu) => GpuBackend::new(gpu),
        Err(e) => panic!("the GPU tests need a wgpu adapter (on Linux: mesa-vulkan-drivers): {e}"),
    };
    match std::env::var("MAKEMORE_TEST_BACKENDS") {
        Ok(list) => list
            .split(',')
            .map(|name| open(wgpu::Backends::from_comma_list(name)))
            .collect(),
        Err(_) => vec![open(
            wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all()),
        )],
    }
}

/// Random words over a random alphabet of `alphabet` characters, accented letters included.
pub fn random_words(seed: u64, alphabet: usize, count: usize) -> Vec<String> {
    let pool: Vec<char> = "abcdefghijklmnopqrstuvwxyzéèüñøåçßž".chars().collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut chars = pool.clone();
    // A random subset of the pool, in random order.
    for i in (1..chars.len()).rev() {
        chars.swap(i, rng.random_range(0..=i));
    }
    chars.truncate(alphabet.clamp(1, pool.len()));
    (0..count)
        .map(|_| {
            let len = rng.random_range(1..=12);
            (0..len)
                .map(|_| chars[rng.random_range(0..chars.len())])
                .collect()
        })
        .collect()
}

/// Words, vocabulary and examples with context length `k`.
pub fn encode(words: &[String], k: usize) -> (Vocab, Examples) {
    let vocab = Vocab::from_words(words);
    let examples = Examples::encode(words, &vocab, k).expect("vocabulary built from the words");
    (vocab, examples)
}

/// llm.c's check: |gpu - cpu| <= atol + rtol * |cpu| for every element.
pub fn assert_close(what: &str, gpu: &[f32], cpu: &[f32], atol: f64, rtol: f64) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths differ");
    let mut worst = (0.0f64, 0usize);
    for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        let excess = (g as f64 - c as f64).abs() - (atol + rtol * (c as f64).abs());
        if excess > worst.0 || g.is_nan() != c.is_nan() {
            worst = (excess.max(f64::MIN_POSITIVE), i);
        }
    }
    let i = worst.1;
    assert!(
        worst.0 <= 0.0,
        "{what}: element {i} is {} on the GPU and {} on the CPU (tolerance {atol} + {rtol} * |cpu|)",
        gpu[i],
        cpu[i]
    );
}

/// |a - b| <= rtol * |b|.
pub fn assert_rel(what: &str, a: f64, b: f64, rtol: f64) {
    assert!(
        (a - b).abs() <= rtol * b.abs(),
        "{what}: {a} vs {b} (relative difference {:.3e}, allowed {rtol:e})",
        (a - b).abs() / b.abs()
    );
}

/// The path of the lecture's names list, from MAKEMORE_LECTURE_NAMES (set by .ci/run when it
/// has the file). The tests that need it are `#[ignore]`d, so they run only when asked for,
/// and then a missing list is a failure, not a skip.
pub fn lecture_names_path() -> String {
    std::env::var("MAKEMORE_LECTURE_NAMES").unwrap_or_else(|_| {
        panic!("MAKEMORE_LECTURE_NAMES is not set: point it at the lecture's names.txt to run the ignored lecture-figure tests")
    })
}

/// The lecture's names list (see [`lecture_names_path`]).
pub fn lecture_words() -> Vec<String> {
    let path = lecture_names_path();
    makemore::data::read_words(std::path::Path::new(&path))
        .unwrap_or_else(|e| panic!("MAKEMORE_LECTURE_NAMES is set but unusable: {e}"))
}

/// Runs the binary as a user would, with `args`; `NODEVICE_SELECT` silences a Mesa notice.
pub fn makemore(args: &[&str]) -> std::process::Output {
    makemore_with_env(args, &[])
}

/// [`makemore`] with more environment variables set.
pub fn makemore_with_env(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    // A fresh working directory, so that a run without --work-dir saves its `out/` there.
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::process::Command::new(env!("CARGO_BIN_EXE_makemore"))
        .args(args)
        .current_dir(dir.path())
        .env("NODEVICE_SELECT", "1")
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs")
}

/// A run's stdout as text.
pub fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A run's stderr as text.
pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Its stdout, checked for success.
pub fn ok_stdout(args: &[&str]) -> String {
    let out = makemore(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Its stdout as JSON lines.
pub fn json_lines(args: &[&str]) -> Vec<serde_json::Value> {
    ok_stdout(args)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect()
}

/// The `error:` line of a run that must fail with exit code 1, checked to be the only one.
pub fn one_line_error(args: &[&str]) -> String {
    let out = makemore(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{args:?}: {err}");
    lines[0].to_string()
}

/// The backends the GPU tests of the binary run on: each entry of MAKEMORE_TEST_BACKENDS as a
/// `WGPU_BACKEND` value, or `None` (wgpu's choice) when it is not set.
pub fn test_backends() -> Vec<Option<String>> {
    match std::env::var("MAKEMORE_TEST_BACKENDS") {
        Ok(list) => list
            .split(',')
            .map(|b| Some(b.trim().to_string()))
            .collect(),
        Err(_) => vec![None],
    }
}

/// [`makemore`] on one of [`test_backends`].
pub fn makemore_on(backend: &Option<String>, args: &[&str]) -> std::process::Output {
    match backend {
        Some(name) => makemore_with_env(args, &[("WGPU_BACKEND", name)]),
        None => makemore(args),
    }
}

/// Asserts that a device description (`train`'s `device` line) names a wgpu adapter and its
/// backend, not the CPU reference that `--device gpu` falls back to without an adapter.
pub fn assert_gpu_device(device: &str) {
    let backend = ["(Vulkan, ", "(Gl, ", "(Metal, ", "(Dx12, "]
        .iter()
        .any(|b| device.contains(b));
    assert!(
        backend && !device.contains("CPU reference"),
        "expected a GPU adapter, the run used {device:?}"
    );
}

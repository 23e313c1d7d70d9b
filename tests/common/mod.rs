//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::process::Output;

use makemore::data::{builtin_words, Examples, Vocab};
use makemore::tools::check::Tolerance;
use makemore::{Backend, CpuBackend, Gpu, GpuBackend, NetForm, StepLoss, TrainOptions};
use rand::{RngExt, SeedableRng};
use serde_json::Value;

/// The lecture's learning rate and regularization.
pub const LECTURE: TrainOptions = TrainOptions {
    lr: 50.0,
    reg: 0.01,
};

/// The GPU backends to test: one per entry of MAKEMORE_TEST_BACKENDS (a comma list such as
/// `vulkan,gl`; .ci/run sets it), or the adapter wgpu picks when it is not set. These tests
/// exist to check the GPU: without an adapter they fail, they never skip.
pub fn gpus() -> Vec<GpuBackend> {
    adapters().into_iter().map(GpuBackend::new).collect()
}

/// The devices behind [`gpus`].
pub fn adapters() -> Vec<Gpu> {
    let open = |backends: wgpu::Backends| {
        Gpu::on_backends(backends).unwrap_or_else(|e| {
            panic!("the GPU tests need a wgpu adapter (on Linux: mesa-vulkan-drivers): {e}")
        })
    };
    match std::env::var("MAKEMORE_TEST_BACKENDS") {
        Ok(list) if !list.is_empty() => list
            .split(',')
            .map(|name| open(wgpu::Backends::from_comma_list(name)))
            .collect(),
        _ => vec![open(
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

/// Writes `words` to `path`, one a line. `awkward` writes them with everything a reader must
/// undo: a byte-order mark, CRLF and LF endings, blank and indented lines, multi-byte
/// characters, and a last word (`zoë`) without a final newline.
pub fn write_words(path: &std::path::Path, words: &[String], awkward: bool) {
    let text = if awkward {
        let mut text = String::from("\u{feff}");
        for (i, w) in words.iter().enumerate() {
            match i % 5 {
                0 => text.push_str(&format!("{w}\r\n")),
                1 => text.push_str(&format!("  {w} \n\n")),
                2 => text.push_str(&format!("\t{w}\r\n \r\n")),
                _ => text.push_str(&format!("{w}\n")),
            }
        }
        text + "zoë"
    } else {
        words.join("\n") + "\n"
    };
    std::fs::write(path, text).unwrap();
}

/// The built-in names with context 1, then each random data set (seed, alphabet size, number
/// of words, context length), encoded.
pub fn cases(random: &[(u64, usize, usize, usize)]) -> Vec<(Vocab, Examples)> {
    let mut cases = vec![encode(&builtin_words(), 1)];
    cases.extend(
        random
            .iter()
            .map(|&(seed, v, n, k)| encode(&random_words(seed, v, n), k)),
    );
    cases
}

/// Which gradient path a run takes (`--grad`).
#[derive(Clone, Copy, Debug)]
pub enum Grad {
    /// `--grad counts`: count_descent on the count matrix.
    Counts,
    /// `--grad examples`: the per-example kernels.
    Examples,
}

/// `steps` steps of `grad` with the lecture's options on `backend`, from `weights`.
pub fn run<B: Backend>(
    backend: &mut B,
    examples: &Examples,
    weights: &mut [f32],
    grad: Grad,
    steps: usize,
) -> Vec<StepLoss> {
    let loaded = backend.load(examples).unwrap();
    let losses = match grad {
        Grad::Counts => backend.train_counts(weights, &loaded, &LECTURE, steps),
        Grad::Examples => backend.train(weights, &loaded, &LECTURE, steps, NetForm::default()),
    }
    .unwrap();
    assert_eq!(losses.len(), steps);
    losses
}

/// `steps` steps on `words` with context `k`, from weights drawn with `seed`, on every GPU
/// backend and on the CPU: each step's loss (and its data part) must agree to 1e-5 relative,
/// the final weights to `tol` absolute plus `tol` relative (the f32 GPU and the
/// f64-accumulating CPU drift apart slowly).
pub fn compare_runs(
    what: &str,
    words: &[String],
    k: usize,
    grad: Grad,
    steps: usize,
    seed: u64,
    tol: f64,
) {
    let (vocab, examples) = encode(words, k);
    let initial = makemore::rng::standard_normal(examples.num_rows * vocab.len(), seed);
    let mut expected_weights = initial.clone();
    let expected = run(
        &mut CpuBackend,
        &examples,
        &mut expected_weights,
        grad,
        steps,
    );
    for gpu in &mut gpus() {
        let mut weights = initial.clone();
        let losses = run(gpu, &examples, &mut weights, grad, steps);
        let at = format!("{what}, {grad:?} path on {}", gpu.describe());
        assert_same_run(
            &at,
            (&losses, &weights),
            (&expected, &expected_weights),
            tol,
        );
    }
}

/// Two runs agree: every step's loss (and its data part) to 1e-5 relative, the final weights
/// to `tol` absolute plus `tol` relative.
pub fn assert_same_run(
    at: &str,
    (losses, weights): (&[StepLoss], &[f32]),
    (expected, expected_weights): (&[StepLoss], &[f32]),
    tol: f64,
) {
    assert_eq!(losses.len(), expected.len(), "{at}: steps");
    for (step, (got, want)) in losses.iter().zip(expected).enumerate() {
        assert_rel(
            &format!("{at}: loss at step {step}"),
            got.total,
            want.total,
            1e-5,
        );
        assert_rel(
            &format!("{at}: data loss at step {step}"),
            got.data,
            want.data,
            1e-5,
        );
    }
    let steps = losses.len();
    assert_close(
        &format!("{at}: W after {steps} steps"),
        weights,
        expected_weights,
        tol,
        tol,
    );
}

/// `makemore check`'s comparison (llm.c's): |gpu - cpu| <= atol + rtol * |cpu| for every element.
pub fn assert_close(what: &str, gpu: &[f32], cpu: &[f32], atol: f64, rtol: f64) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths differ");
    let (i, worst) = Tolerance::new(atol, rtol).worst_at(gpu, cpu);
    assert!(
        worst <= 1.0,
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
pub fn makemore(args: &[&str]) -> Output {
    makemore_with_env(args, &[])
}

/// [`makemore`] with more environment variables set.
pub fn makemore_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
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
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A run's stderr as text.
pub fn stderr(o: &Output) -> String {
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

/// Text as JSON lines.
fn parse_json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

/// Its stdout as JSON lines.
pub fn json_lines(args: &[&str]) -> Vec<Value> {
    parse_json_lines(&ok_stdout(args))
}

/// A run's stdout as JSON lines, whatever its exit code.
pub fn json_of(o: &Output) -> Vec<Value> {
    parse_json_lines(std::str::from_utf8(&o.stdout).expect("UTF-8 output"))
}

/// The event of `--json` output named `name` (and of `model`, when given).
pub fn event<'a>(lines: &'a [Value], name: &str, model: Option<&str>) -> &'a Value {
    lines
        .iter()
        .find(|l| l["event"] == name && model.is_none_or(|m| l["model"] == m))
        .unwrap_or_else(|| panic!("no {name} event"))
}

/// An event's list of names.
pub fn names(event: &Value) -> Vec<String> {
    event["names"]
        .as_array()
        .expect("a list of names")
        .iter()
        .map(|n| n.as_str().expect("a name").to_string())
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
pub fn makemore_on(backend: &Option<String>, args: &[&str]) -> Output {
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

/// `steps` steps on `weights` in place; the loss before each (on that step's batch).
#[allow(clippy::too_many_arguments)]
pub fn train_neural<B: Backend>(
    backend: &mut B,
    weights: &mut [f32],
    examples: &Examples,
    loaded: &B::Examples,
    options: &TrainOptions,
    steps: usize,
    form: NetForm,
    schedule: &makemore::optim::Schedule,
) -> anyhow::Result<Vec<StepLoss>> {
    let mut descent = makemore::optim::Descent::new(backend, weights, schedule)?;
    let losses = descent.steps(backend, (examples, loaded), options, steps, form, schedule)?;
    weights.copy_from_slice(&backend.read(&descent.weights)?);
    Ok(losses)
}

/// AdamW steps 1 to `steps` on `backend`, step t with the gradient `grads(t)`: the weights and
/// the moments m and v after the last.
pub fn adamw_steps<B: Backend>(
    backend: &mut B,
    weights: &[f32],
    (steps, lr): (u32, f32),
    grads: impl Fn(u32) -> Vec<f32>,
) -> [Vec<f32>; 3] {
    let adamw = makemore::adamw::AdamW::default();
    let n = weights.len();
    let mut w = backend.upload(weights).unwrap();
    let (mut m, mut v) = (backend.zeros(n).unwrap(), backend.zeros(n).unwrap());
    for t in 1..=steps {
        let g = backend.upload(&grads(t)).unwrap();
        let moments = (&mut m, &mut v);
        backend
            .adamw_update(&mut w, &g, moments, t, lr, &adamw)
            .unwrap();
    }
    [&w, &m, &v].map(|b| backend.read(b).unwrap())
}

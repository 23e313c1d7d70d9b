//! Context 4 on the lecture's names: a 27^4 x 27 table (531,441 rows, 14.3M weights), the
//! longest context whose table fits one storage binding of lavapipe (128 MiB), trained on
//! every backend of MAKEMORE_TEST_BACKENDS and on the CPU with the same losses; and tables
//! that do not fit refused with their sizes before any work.
//!
//! Tolerances as in long_runs.rs: every step's loss to 1e-5 relative; the final weights to
//! 2e-4 absolute plus 2e-4 relative.

use crate::common;

use common::{assert_close, assert_rel, encode, gpus, LECTURE};
use makemore::data::builtin_words;
use makemore::{Backend, CpuBackend};

const STEPS: usize = 4;

#[test]
fn counts_path_context_4_same_losses_on_every_backend() {
    let (vocab, examples) = encode(&builtin_words(), 4);
    assert_eq!(examples.num_rows, 531_441);
    let initial = makemore::rng::standard_normal(examples.num_rows * vocab.len(), 7);
    assert_eq!(initial.len(), 14_348_907);
    let mut expected_weights = initial.clone();
    let loaded = CpuBackend.load(&examples).unwrap();
    let expected = CpuBackend
        .train_counts(&mut expected_weights, &loaded, &LECTURE, STEPS)
        .unwrap();
    // The losses go down: the steps did something.
    assert!(
        expected[STEPS - 1].total < expected[0].total,
        "{expected:?}"
    );
    for gpu in &mut gpus() {
        let device = gpu.describe();
        let loaded = gpu.load(&examples).unwrap();
        let mut weights = initial.clone();
        let losses = gpu
            .train_counts(&mut weights, &loaded, &LECTURE, STEPS)
            .unwrap();
        assert_eq!(losses.len(), STEPS);
        for (step, (got, want)) in losses.iter().zip(&expected).enumerate() {
            let at = format!("K=4 on {device}: loss at step {step}");
            assert_rel(&at, got.total, want.total, 1e-5);
            assert_rel(&format!("{at} (data)"), got.data, want.data, 1e-5);
        }
        let at = format!("K=4 on {device}: W after {STEPS} steps");
        assert_close(&at, &weights, &expected_weights, 2e-4, 2e-4);
    }
}

/// `train --context 4` end to end (count model, its NLL, the steps, samples from both models)
/// prints the same losses on the CPU and on each GPU backend.
#[test]
fn train_context_4_prints_the_same_losses_on_cpu_and_gpu() {
    let args = [
        "train",
        "--context",
        "4",
        "--steps",
        "3",
        "--samples",
        "3",
        "--json",
    ];
    // The `neural_model` event (its per-step losses) and the summary (the count model's NLL).
    let run = |backend: &Option<String>, device: &str| -> serde_json::Value {
        let out = common::makemore_on(backend, &[&args[..], &["--device", device]].concat());
        assert!(out.status.success(), "{}", common::stderr(&out));
        let events = common::json_of(&out);
        let event = |name: &str| {
            events
                .iter()
                .find(|e| e["event"] == name)
                .unwrap_or_else(|| panic!("no {name} event"))
                .clone()
        };
        let mut neural = event("neural_model");
        neural["count_nll"] = event("summary")["count_nll"].clone();
        assert_eq!(event("neural_model")["rows"], 531_441);
        neural
    };
    let cpu = run(&None, "cpu");
    let losses = |v: &serde_json::Value| -> Vec<f64> {
        v["losses"]
            .as_array()
            .unwrap_or_else(|| panic!("no losses in {v}"))
            .iter()
            .map(|l| l.as_f64().unwrap())
            .collect()
    };
    let want = losses(&cpu);
    assert_eq!(want.len(), 3, "{cpu}");
    for backend in common::test_backends() {
        let gpu = run(&backend, "gpu");
        for (step, (g, c)) in losses(&gpu).iter().zip(&want).enumerate() {
            assert_rel(&format!("{backend:?}: step {step}"), *g, *c, 1e-5);
        }
        assert_rel(
            &format!("{backend:?}: count model NLL"),
            gpu["count_nll"].as_f64().unwrap(),
            cpu["count_nll"].as_f64().unwrap(),
            1e-5,
        );
    }
}

/// Tables over the adapter's (or the host's) limit are refused before any work, with the
/// sizes: the lecture's alphabet at context 5, and 300 symbols at context 3.
#[test]
fn tables_over_the_limit_are_refused_with_their_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let words = dir.path().join("words.txt");
    let symbols: Vec<char> = ('一'..).take(299).collect();
    let text: String = (0..3000)
        .map(|i| {
            let w: String = (0..6).map(|j| symbols[(i * 7 + j * 13) % 299]).collect();
            w + "\n"
        })
        .collect();
    std::fs::write(&words, text).unwrap();
    let words = words.to_str().unwrap();
    let cases: [(&[&str], &str); 2] = [
        (
            &["--context", "5"],
            "context 5 needs a 27^5 x 27 table (1549681956 bytes = 1.44 GiB)",
        ),
        (
            &["--input", words, "--context", "3"],
            "context 3 needs a 300^3 x 300 table (32400000000 bytes = 30.17 GiB)",
        ),
    ];
    let mut runs: Vec<(Option<String>, &str)> = vec![(None, "cpu")];
    runs.extend(common::test_backends().into_iter().map(|b| (b, "gpu")));
    for (flags, expected) in cases {
        for (backend, device) in &runs {
            let args = [&["train", "--device", device][..], flags].concat();
            let out = common::makemore_on(backend, &args);
            let err = common::stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
            assert!(!err.contains("panicked"), "{err}");
            let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
            assert_eq!(lines.len(), 1, "{err}");
            assert!(lines[0].contains(expected), "{}", lines[0]);
            assert!(
                lines[0].contains("the largest context that fits is"),
                "{}",
                lines[0]
            );
            // Nothing was trained, nor saved.
            assert!(!common::stdout(&out).contains("step"), "{args:?}");
        }
    }
}

//! Whole training runs, GPU against CPU, on every backend of MAKEMORE_TEST_BACKENDS: every
//! step's loss and the final weights. Long runs are where a kernel that loses work past some
//! number of loop iterations shows itself (Mesa's llvmpipe and lavapipe end every loop of an
//! invocation after 65,535 iterations in total), so these runs are as long as the tool's own.
//!
//! Tolerances (f32 on the GPU against f64 on the CPU): every step's loss to 1e-5 relative;
//! the final weights to 2e-4 absolute plus 2e-4 relative.

use crate::common;

use common::{assert_close, assert_rel, encode, gpus};
use makemore::data::builtin_words;
use makemore::{Backend, CpuBackend, NetForm, StepLoss, TrainOptions};

const LECTURE: TrainOptions = TrainOptions {
    lr: 50.0,
    reg: 0.01,
};

/// Which gradient path a run takes.
#[derive(Clone, Copy, Debug)]
enum Path {
    /// `--grad counts`: count_descent on the count matrix.
    Counts,
    /// `--grad examples`: the per-example kernels.
    Examples,
}

fn run<B: Backend>(
    backend: &mut B,
    examples: &makemore::data::Examples,
    weights: &mut [f32],
    path: Path,
    steps: usize,
) -> Vec<StepLoss> {
    let loaded = backend.load(examples).unwrap();
    let losses = match path {
        Path::Counts => backend.train_counts(weights, &loaded, &LECTURE, steps),
        Path::Examples => backend.train(weights, &loaded, &LECTURE, steps, NetForm::default()),
    }
    .unwrap();
    assert_eq!(losses.len(), steps);
    losses
}

/// `steps` steps on `words` with context `k` on every GPU backend and on the CPU: each step's
/// loss and the final weights must agree.
fn compare_runs(what: &str, words: &[String], k: usize, path: Path, steps: usize) {
    let (vocab, examples) = encode(words, k);
    let initial = makemore::rng::standard_normal(examples.num_rows * vocab.len(), 7);
    let mut expected_weights = initial.clone();
    let expected = run(
        &mut CpuBackend,
        &examples,
        &mut expected_weights,
        path,
        steps,
    );
    for gpu in &mut gpus() {
        let mut weights = initial.clone();
        let losses = run(gpu, &examples, &mut weights, path, steps);
        let device = gpu.describe();
        for (step, (got, want)) in losses.iter().zip(&expected).enumerate() {
            let at = format!("{what}, {path:?} path on {device}: loss at step {step}");
            assert_rel(&at, got.total, want.total, 1e-5);
            assert_rel(&format!("{at} (data)"), got.data, want.data, 1e-5);
        }
        let at = format!("{what}, {path:?} path on {device}: W after {steps} steps");
        assert_close(&at, &weights, &expected_weights, 2e-4, 2e-4);
    }
}

/// Words over `alphabet` distinct symbols (Greek, Cyrillic and CJK beyond the Latin letters).
fn words_over(alphabet: usize, count: usize, seed: u64) -> Vec<String> {
    use rand::{RngExt, SeedableRng};
    let symbols: Vec<char> = ('a'..='z')
        .chain('α'..='ω')
        .chain('а'..='я')
        .chain('一'..='鿿')
        .take(alphabet)
        .collect();
    assert_eq!(symbols.len(), alphabet);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..count)
        .map(|i| {
            let len = rng.random_range(1..=10);
            // Every symbol appears at least once.
            std::iter::once(symbols[i % alphabet])
                .chain((1..len).map(|_| symbols[rng.random_range(0..alphabet)]))
                .collect()
        })
        .collect()
}

#[test]
fn counts_path_bigram_2000_steps_on_the_builtin_names() {
    compare_runs("names, K=1", &builtin_words(), 1, Path::Counts, 2000);
}

#[test]
fn counts_path_trigram_500_steps_on_the_builtin_names() {
    compare_runs("names, K=2", &builtin_words(), 2, Path::Counts, 500);
}

#[test]
fn counts_path_context_3_100_steps_on_the_builtin_names() {
    compare_runs("names, K=3", &builtin_words(), 3, Path::Counts, 100);
}

#[test]
fn counts_path_300_steps_over_100_symbols() {
    let words = words_over(100, 3000, 1);
    compare_runs("100 symbols, K=1", &words, 1, Path::Counts, 300);
}

/// Rows long enough to be shared by lanes: 400 symbols (2 lanes a row, the whole table in one
/// workgroup, several steps per dispatch) and 1,200 symbols (8 lanes a row, many workgroups).
#[test]
fn counts_path_with_rows_shared_by_lanes() {
    let words = words_over(400, 4000, 3);
    compare_runs("400 symbols, K=1", &words, 1, Path::Counts, 300);
    let words = words_over(1200, 6000, 4);
    compare_runs("1,200 symbols, K=1", &words, 1, Path::Counts, 30);
}

/// The per-example path costs O(n V) per step: the same step counts, on every 32nd built-in
/// name (about 7,000 examples, drawn from the whole alphabetical list).
#[test]
fn examples_path_same_lengths_on_1000_names() {
    let words: Vec<String> = builtin_words().into_iter().step_by(32).collect();
    compare_runs("1,000 names, K=1", &words, 1, Path::Examples, 2000);
    compare_runs("1,000 names, K=2", &words, 2, Path::Examples, 500);
    compare_runs("1,000 names, K=3", &words, 3, Path::Examples, 100);
}

#[test]
fn examples_path_300_steps_over_100_symbols() {
    let words = words_over(100, 1000, 2);
    compare_runs("100 symbols, K=1", &words, 1, Path::Examples, 300);
}

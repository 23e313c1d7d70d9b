//! Whole training runs, GPU against CPU, on every backend of MAKEMORE_TEST_BACKENDS: every
//! step's loss and the final weights. Long runs are where a kernel that loses work past some
//! number of loop iterations shows itself (Mesa's llvmpipe and lavapipe end every loop of an
//! invocation after 65,535 iterations in total), so these runs are as long as the tool's own.
//!
//! Tolerances (f32 on the GPU against f64 on the CPU): every step's loss to 1e-5 relative;
//! the final weights, drawn with seed 7, to 2e-4 absolute plus 2e-4 relative.

use crate::common;

use common::{compare_runs, Grad};
use makemore::data::builtin_words;

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
    compare_runs(
        "names, K=1",
        &builtin_words(),
        1,
        Grad::Counts,
        2000,
        7,
        2e-4,
    );
}

#[test]
fn counts_path_trigram_500_steps_on_the_builtin_names() {
    compare_runs(
        "names, K=2",
        &builtin_words(),
        2,
        Grad::Counts,
        500,
        7,
        2e-4,
    );
}

#[test]
fn counts_path_context_3_100_steps_on_the_builtin_names() {
    compare_runs(
        "names, K=3",
        &builtin_words(),
        3,
        Grad::Counts,
        100,
        7,
        2e-4,
    );
}

#[test]
fn counts_path_300_steps_over_100_symbols() {
    let words = words_over(100, 3000, 1);
    compare_runs("100 symbols, K=1", &words, 1, Grad::Counts, 300, 7, 2e-4);
}

/// Rows long enough to be shared by lanes: 400 symbols (2 lanes a row, the whole table in one
/// workgroup, several steps per dispatch) and 1,200 symbols (8 lanes a row, many workgroups).
#[test]
fn counts_path_with_rows_shared_by_lanes() {
    let words = words_over(400, 4000, 3);
    compare_runs("400 symbols, K=1", &words, 1, Grad::Counts, 300, 7, 2e-4);
    let words = words_over(1200, 6000, 4);
    compare_runs("1,200 symbols, K=1", &words, 1, Grad::Counts, 30, 7, 2e-4);
}

/// The per-example path costs O(n V) per step: the same step counts, on every 32nd built-in
/// name (about 7,000 examples, drawn from the whole alphabetical list).
#[test]
fn examples_path_same_lengths_on_1000_names() {
    let words: Vec<String> = builtin_words().into_iter().step_by(32).collect();
    compare_runs("1,000 names, K=1", &words, 1, Grad::Examples, 2000, 7, 2e-4);
    compare_runs("1,000 names, K=2", &words, 2, Grad::Examples, 500, 7, 2e-4);
    compare_runs("1,000 names, K=3", &words, 3, Grad::Examples, 100, 7, 2e-4);
}

#[test]
fn examples_path_300_steps_over_100_symbols() {
    let words = words_over(100, 1000, 2);
    compare_runs("100 symbols, K=1", &words, 1, Grad::Examples, 300, 7, 2e-4);
}

//! Every kernel on the GPU against its CPU twin, on the built-in names and on random data.
//!
//! Tolerances: counts exactly; probabilities to 1e-6 relative (one f32 division against the
//! correctly rounded f64 result); losses to 1e-5 relative; gradients to 1e-6 absolute plus 1e-4
//! relative (f32 sums of thousands of terms); weights after training to the figures stated
//! in each test.

use crate::common;

use common::{
    assert_close, assert_rel, cases, compare_runs, encode, gpus, random_words, Grad, LECTURE,
};
use makemore::corpus::CountTable;
use makemore::data::{builtin_words, Examples};
use makemore::gpu::kernels::BLOCK_VALUES;
use makemore::{Backend, CpuBackend, NetForm};

/// Random data sets: (seed, alphabet size, number of words, context length).
const RANDOM_CASES: [(u64, usize, usize, usize); 5] = [
    (1, 1, 50, 1),
    (2, 5, 300, 2),
    (3, 26, 2000, 1),
    (4, 35, 1500, 1),
    (5, 8, 800, 3),
];

#[test]
fn counts_are_exact() {
    for (vocab, examples) in cases(&RANDOM_CASES) {
        let expected = CpuBackend.count_pairs(&examples).unwrap();
        assert_eq!(
            expected.iter().map(|&n| n as usize).sum::<usize>(),
            examples.len()
        );
        for gpu in &mut gpus() {
            let on_gpu = gpu.load(&examples).unwrap();
            let counts = gpu.count_pairs(&on_gpu).unwrap();
            assert_eq!(counts, expected, "vocabulary {vocab} on {}", gpu.describe());
        }
    }
}

#[test]
fn counts_are_exact_at_every_tail_and_block_boundary() {
    // Lengths on either side of a vec4 and of a workgroup's 8,192 examples, for the workgroup
    // histogram (K=1) and global atomics (K=2 of 30 symbols); the short ones in spans of 3, 5
    // and 6 examples too (shorter than a vec4, or not a multiple of 4).
    let spans = [u32::MAX, 3, 5, 6];
    let mut backends: Vec<_> = (spans.iter())
        .flat_map(|&span| gpus().into_iter().map(move |g| g.with_span_examples(span)))
        .collect();
    let short = gpus().len() * spans.len();
    for k in [1, 2] {
        let (_, all) = encode(&random_words(7, 30, 4_500), k);
        for len in (0..=13).chain([8_191, 8_192, 8_193, 16_385, 16_391, 32_771]) {
            let examples = Examples {
                contexts: all.contexts[..len].to_vec(),
                targets: all.targets[..len].to_vec(),
                ..all.clone()
            };
            let expected = CpuBackend.count_pairs(&examples).unwrap();
            let backends = &mut backends[..if len <= 13 {
                short
            } else {
                short / spans.len()
            }];
            for gpu in backends {
                let on_gpu = gpu.load(&examples).unwrap();
                let counts = gpu.count_pairs(&on_gpu).unwrap();
                assert_eq!(counts, expected, "K={k}, {len} on {}", gpu.describe());
            }
        }
    }
}

#[test]
fn probabilities_and_count_nll_match() {
    let mut gpus = gpus();
    for (vocab, examples) in cases(&RANDOM_CASES) {
        let counts = CpuBackend.count_pairs(&examples).unwrap();
        let pairs = (0..gpus.len()).flat_map(|g| [0.0, 0.5, 1.0, 10.0].map(|s| (g, s)));
        for (g, smoothing) in pairs {
            let gpu = &mut gpus[g];
            let on_gpu = gpu.load(&examples).unwrap();
            let probs = gpu.normalize_rows(&counts, vocab.len(), smoothing).unwrap();
            let expected = CpuBackend
                .normalize_rows(&counts, vocab.len(), smoothing)
                .unwrap();
            assert_close(
                &format!("probs, smoothing {smoothing}"),
                &probs,
                &expected,
                1e-9,
                1e-6,
            );
            for row in probs.chunks(vocab.len()) {
                let sum: f64 = row.iter().map(|&p| p as f64).sum();
                assert!(
                    sum == 0.0 || (sum - 1.0).abs() < 1e-5,
                    "a row sums to {sum}"
                );
            }
            let nll = gpu.mean_nll(&probs, &on_gpu).unwrap();
            let expected_nll = CpuBackend.mean_nll(&expected, &examples).unwrap();
            assert_eq!(nll.impossible, expected_nll.impossible);
            assert_eq!(
                nll.mean().is_infinite(),
                smoothing == 0.0 && nll.impossible > 0
            );
            assert_rel("count NLL", nll.finite_mean, expected_nll.finite_mean, 1e-5);
        }
    }
}

#[test]
fn loss_and_gradient_match() {
    let mut gpus = gpus();
    for (i, (vocab, examples)) in cases(&RANDOM_CASES).into_iter().enumerate() {
        let weights = makemore::rng::standard_normal(examples.num_rows * vocab.len(), i as u64);
        for reg in [0.0, 0.01, 1.0] {
            let (expected_loss, expected_grads) = CpuBackend
                .loss_and_gradient(&weights, &examples, reg, NetForm::default())
                .unwrap();
            for gpu in &mut gpus {
                let on_gpu = gpu.load(&examples).unwrap();
                let (loss, grads) = gpu
                    .loss_and_gradient(&weights, &on_gpu, reg, NetForm::default())
                    .unwrap();
                assert_rel("loss", loss.total, expected_loss.total, 1e-5);
                assert_rel("data loss", loss.data, expected_loss.data, 1e-5);
                assert_close("gradient", &grads, &expected_grads, 1e-6, 1e-4);
            }
        }
    }
}

#[test]
fn softmax_rows_match() {
    let mut gpus = gpus();
    let shapes = [(27, 27, 1.0f32), (1, 1, 1.0), (300, 35, 30.0)];
    let pairs = (0..gpus.len()).flat_map(|g| shapes.map(|shape| (g, shape)));
    for (g, (rows, cols, scale)) in pairs {
        let gpu = &mut gpus[g];
        let weights: Vec<f32> = makemore::rng::standard_normal(rows * cols, 9)
            .into_iter()
            .map(|w| w * scale)
            .collect();
        let probs = gpu.softmax_rows(&weights, cols).unwrap();
        let expected = CpuBackend.softmax_rows(&weights, cols).unwrap();
        assert_close("softmax", &probs, &expected, 1e-9, 1e-5);
    }
}

/// Weights and losses after 1 and after 100 steps of lr 50, from the weights of seed 42: the
/// weights to 1e-4 absolute + 1e-4 relative.
#[test]
fn weights_after_one_step_match() {
    compare_runs("names", &builtin_words(), 1, Grad::Examples, 1, 42, 1e-4);
    for &(seed, v, n, k) in &RANDOM_CASES {
        let words = random_words(seed, v, n);
        compare_runs(
            &format!("seed {seed}"),
            &words,
            k,
            Grad::Examples,
            1,
            42,
            1e-4,
        );
    }
}

#[test]
fn weights_after_100_steps_match() {
    compare_runs("names", &builtin_words(), 1, Grad::Examples, 100, 42, 1e-4);
    let words = random_words(11, 30, 1000);
    compare_runs("seed 11", &words, 1, Grad::Examples, 100, 42, 1e-4);
    let words = random_words(12, 6, 500);
    compare_runs("seed 12", &words, 2, Grad::Examples, 100, 42, 1e-4);
}

#[test]
fn gpu_runs_are_bit_identical() {
    let (vocab, examples) = encode(&builtin_words(), 1);
    for index in 0..gpus().len() {
        let run = || {
            let mut gpu = gpus().swap_remove(index);
            let on_gpu = gpu.load(&examples).unwrap();
            let counts = gpu.count_pairs(&on_gpu).unwrap();
            let probs = gpu.normalize_rows(&counts, vocab.len(), 1.0).unwrap();
            let nll = gpu.mean_nll(&probs, &on_gpu).unwrap();
            let mut weights = makemore::rng::standard_normal(vocab.len() * vocab.len(), 3);
            let losses = gpu
                .train(&mut weights, &on_gpu, &LECTURE, 5, NetForm::default())
                .unwrap();
            let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            let loss_bits: Vec<u64> = losses.iter().map(|l| l.total.to_bits()).collect();
            (
                counts,
                bits(&probs),
                nll.finite_mean.to_bits(),
                loss_bits,
                bits(&weights),
            )
        };
        assert_eq!(run(), run());
    }
}

/// `len` examples of a `rows` x `cols` table, from a fixed linear congruential sequence.
fn random_examples((rows, cols): (usize, usize), len: usize) -> Examples {
    let mut state = 12345u64;
    let mut next = |below: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) % below as u64) as u32
    };
    let contexts = (0..len).map(|_| next(rows)).collect();
    let targets = (0..len).map(|_| next(cols)).collect();
    Examples {
        contexts,
        targets,
        num_rows: rows,
        num_cols: cols,
    }
}

/// The coarsened sums (shaders/common/sum.wgsl) at the edges of their blocks of BLOCK_VALUES:
/// examples and table cells that end just before, on and after one, with cells of
/// probability 0 (their examples counted, not summed).
#[test]
fn nll_sums_match_the_cpu_at_block_edges() {
    let block = BLOCK_VALUES as usize;
    let examples_at_edges = [1, block - 1, block, block + 1, 3 * block + 7].map(|n| ((5, 5), n));
    // Tables of one block of cells, one cell less and one more.
    let (rows, cols) = (block / 64, 64);
    let cells_at_edges = [(rows, cols - 1), (rows, cols), (rows + 1, cols)].map(|s| (s, 2 * block));
    for gpu in &mut gpus() {
        let device = gpu.describe();
        for (shape, len) in examples_at_edges.into_iter().chain(cells_at_edges) {
            let examples = random_examples(shape, len);
            // Every 7th cell impossible, the others 1 / (1 + j % 13).
            let cell = |j: usize| [1.0 / (1 + j % 13) as f32, 0.0][(j % 7 == 3) as usize];
            let probs: Vec<f32> = (0..shape.0 * shape.1).map(cell).collect();
            let what = format!("{device}: {len} examples of a {shape:?} table");
            let loaded = gpu.load(&examples).unwrap();
            let got = gpu.mean_nll(&probs, &loaded).unwrap();
            let want = CpuBackend.mean_nll(&probs, &examples).unwrap();
            assert_eq!(got.impossible, want.impossible, "{what}");
            assert_rel(&what, got.finite_mean, want.finite_mean, 1e-5);
            let table = CountTable::new(CpuBackend.count_pairs(&examples).unwrap(), shape.1);
            let got = gpu.count_table_nll(&probs, &table).unwrap();
            assert_eq!(got.impossible, want.impossible, "{what}");
            assert_rel(&what, got.finite_mean, want.finite_mean, 1e-5);
        }
    }
}

//! The counts path (`count_descent`): the full-batch loss and gradient computed from the count
//! matrix, against its CPU twin and against the per-example path on the same data.
//!
//! Tolerances: losses to 1e-5 relative (the f32 GPU against f64 sums); gradients to 1e-6
//! absolute plus 1e-4 relative; weights after training to 1e-4 absolute plus 1e-4 relative,
//! as for the per-example kernels.

use crate::common;

use common::{
    assert_close, assert_rel, cases, compare_runs, encode, gpus, random_words, run, Grad, LECTURE,
};
use makemore::data::builtin_words;
use makemore::{Backend, CpuBackend, NetForm};

/// Random data sets: (seed, alphabet size, words, context length).
const RANDOM_CASES: [(u64, usize, usize, usize); 4] = [
    (1, 1, 50, 1),
    (2, 5, 300, 2),
    (4, 35, 1500, 1),
    (5, 8, 800, 3),
];

#[test]
fn cpu_counts_path_equals_cpu_example_path() {
    for (i, (vocab, examples)) in cases(&RANDOM_CASES).into_iter().enumerate() {
        let weights = makemore::rng::standard_normal(examples.num_rows * vocab.len(), i as u64);
        for reg in [0.0, 0.01, 1.0] {
            let (loss, grads) = CpuBackend
                .loss_and_gradient(&weights, &examples, reg, NetForm::default())
                .unwrap();
            let (count_loss, count_grads) = CpuBackend
                .count_loss_and_gradient(&weights, &examples, reg)
                .unwrap();
            // Both in f64: they differ only by the order of the additions.
            assert_rel("loss", count_loss.total, loss.total, 1e-12);
            assert_rel("data loss", count_loss.data, loss.data, 1e-12);
            assert_close("gradient", &count_grads, &grads, 1e-9, 1e-6);
        }
    }
}

#[test]
fn count_loss_and_gradient_match_the_cpu() {
    let mut gpus = gpus();
    for (i, (vocab, examples)) in cases(&RANDOM_CASES).into_iter().enumerate() {
        let weights = makemore::rng::standard_normal(examples.num_rows * vocab.len(), i as u64);
        for reg in [0.0, 0.01, 1.0] {
            let (expected_loss, expected_grads) = CpuBackend
                .count_loss_and_gradient(&weights, &examples, reg)
                .unwrap();
            for gpu in &mut gpus {
                let on_gpu = gpu.load(&examples).unwrap();
                let (loss, grads) = gpu.count_loss_and_gradient(&weights, &on_gpu, reg).unwrap();
                assert_rel("loss", loss.total, expected_loss.total, 1e-5);
                assert_rel("data loss", loss.data, expected_loss.data, 1e-5);
                assert_close("gradient", &grads, &expected_grads, 1e-6, 1e-4);
            }
        }
    }
}

/// `steps` steps of the counts path on the GPU and on the CPU, and of the per-example path on
/// the GPU: the three loss histories agree to 1e-5, the weights to 1e-4 + 1e-4 relative.
fn train_and_compare(words: &[String], k: usize, steps: usize, with_examples_path: bool) {
    compare_runs("counts path", words, k, Grad::Counts, steps, 42, 1e-4);
    if !with_examples_path {
        return;
    }
    let (vocab, examples) = encode(words, k);
    let initial = makemore::rng::standard_normal(examples.num_rows * vocab.len(), 42);
    for gpu in &mut gpus() {
        let mut w_gpu = initial.clone();
        let losses = run(gpu, &examples, &mut w_gpu, Grad::Counts, steps);
        let mut w_examples = initial.clone();
        let per_example = run(gpu, &examples, &mut w_examples, Grad::Examples, steps);
        for (step, (l, e)) in losses.iter().zip(&per_example).enumerate() {
            let what = format!("counts vs examples path, loss at step {step}");
            assert_rel(&what, l.total, e.total, 1e-5);
        }
        assert_close(
            "W, counts vs examples path",
            &w_gpu,
            &w_examples,
            1e-4,
            1e-4,
        );
    }
}

#[test]
fn counts_path_gives_the_per_example_losses() {
    train_and_compare(&builtin_words(), 1, 30, true);
    train_and_compare(&random_words(12, 6, 500), 2, 100, true);
}

#[test]
fn counts_path_runs_past_one_dispatch() {
    // More steps than one dispatch of count_descent holds (1000): the chunks continue the run.
    train_and_compare(&random_words(13, 4, 200), 1, 2500, false);
}

/// `grads` ends with the gradient of the run's last step (written at that step alone): on one
/// workgroup over several dispatches (bigram), and on many workgroups (context 3).
#[test]
fn count_descent_ends_with_the_last_gradient() {
    for (seed, alphabet, k, steps) in [(31, 6, 1, 400), (32, 11, 3, 5)] {
        let (vocab, examples) = encode(&random_words(seed, alphabet, 2000), k);
        let initial = makemore::rng::standard_normal(examples.num_rows * vocab.len(), seed);
        for gpu in &mut gpus() {
            let loaded = gpu.load(&examples).unwrap();
            let counts = gpu.count_table(&loaded).unwrap();
            let mut descend = |steps| {
                let mut w = gpu.upload(&initial).unwrap();
                let mut grads = gpu.zeros(initial.len()).unwrap();
                let mut losses = gpu.losses(steps).unwrap();
                let options = &LECTURE;
                gpu.count_descent(&mut w, &mut grads, &counts, options, steps, &mut losses)
                    .unwrap();
                (gpu.read(&w).unwrap(), gpu.read(&grads).unwrap())
            };
            let (before_last, _) = descend(steps - 1);
            let (_, grads) = descend(steps);
            let (_, expected) = gpu
                .count_loss_and_gradient(&before_last, &loaded, LECTURE.reg)
                .unwrap();
            assert_eq!(grads, expected, "{alphabet} symbols, context {k}");
        }
    }
}

#[test]
fn counts_path_is_bit_identical_across_runs() {
    let (vocab, examples) = encode(&builtin_words(), 1);
    for index in 0..gpus().len() {
        let run = || {
            let mut gpu = gpus().swap_remove(index);
            let on_gpu = gpu.load(&examples).unwrap();
            let mut weights = makemore::rng::standard_normal(vocab.len() * vocab.len(), 3);
            let losses = gpu
                .train_counts(&mut weights, &on_gpu, &LECTURE, 50)
                .unwrap();
            let loss_bits: Vec<u64> = losses.iter().map(|l| l.total.to_bits()).collect();
            let weight_bits: Vec<u32> = weights.iter().map(|w| w.to_bits()).collect();
            (loss_bits, weight_bits)
        };
        assert_eq!(run(), run());
    }
}

/// Counting on the GPU is exact on both of its kernels: the private (workgroup-memory)
/// histogram for tables of at most 4096 cells, the global one above.
#[test]
fn counts_are_exact_with_and_without_the_private_histogram() {
    let words = random_words(21, 20, 30_000);
    for k in [1, 2] {
        let (vocab, examples) = encode(&words, k);
        // k = 1: 441 cells (private); k = 2: 9261 cells (global atomics).
        assert_eq!(examples.num_rows * vocab.len() > 4096, k == 2);
        assert!(
            examples.len() > 3 * 16384,
            "several workgroups of the private kernel"
        );
        let expected = CpuBackend.count_pairs(&examples).unwrap();
        let sequential = makemore::cpu::count_pairs(
            &examples.contexts,
            &examples.targets,
            examples.num_rows,
            examples.num_cols,
        );
        assert_eq!(expected, sequential, "parallel CPU counting");
        let private = makemore::cpu::count_pairs_private(
            &examples.contexts,
            &examples.targets,
            examples.num_rows,
            examples.num_cols,
            16384,
        );
        assert_eq!(private, sequential, "the private kernel's twin");
        for gpu in &mut gpus() {
            let on_gpu = gpu.load(&examples).unwrap();
            assert_eq!(gpu.count_pairs(&on_gpu).unwrap(), expected, "context {k}");
        }
    }
}

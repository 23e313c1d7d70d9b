//! The per-example paths on data larger than one storage binding: the examples are cut into
//! spans, each bound as its own buffers, and a step dispatches the kernels once per span.
//! These tests cut small data into spans of a few hundred examples, so that it crosses many
//! span boundaries, and compare with the CPU on every backend of MAKEMORE_TEST_BACKENDS; one
//! also lowers the adapter's binding limit as the backend sees it.
//!
//! Tolerances, as in long_runs.rs: every step's loss to 1e-5 relative, the final weights to
//! 2e-4 absolute plus 2e-4 relative; counts exactly; the count model's NLL to 1e-6 relative.

use crate::common;

use common::{adapters, assert_rel, assert_same_run, encode, lecture_words, train_neural, LECTURE};
use makemore::adamw::AdamW;
use makemore::data::{builtin_words, Examples};
use makemore::gpu::kernels::BLOCK_VALUES;
use makemore::optim::{Optimizer, Schedule};
use makemore::{Backend, CpuBackend, GpuBackend, LossForm, NetForm, TrainOptions};

/// The GPU backends of MAKEMORE_TEST_BACKENDS, cutting the examples into spans of at most
/// `span` examples.
fn gpus_with_spans(span: u32) -> Vec<GpuBackend> {
    gpus_with_binding(u64::MAX)
        .into_iter()
        .map(|gpu| gpu.with_span_examples(span))
        .collect()
}

/// The GPU backends of MAKEMORE_TEST_BACKENDS, each believing its largest storage binding
/// holds `binding_bytes`.
fn gpus_with_binding(binding_bytes: u64) -> Vec<GpuBackend> {
    adapters()
        .into_iter()
        .map(|mut gpu| {
            let limits = &mut gpu.limits;
            limits.max_storage_buffer_binding_size =
                limits.max_storage_buffer_binding_size.min(binding_bytes);
            GpuBackend::new(gpu)
        })
        .collect()
}

/// The first `count` lecture names (the built-in list when the lecture's file is not given).
fn some_names(count: usize) -> Vec<String> {
    let words = if std::env::var("MAKEMORE_LECTURE_NAMES").is_ok() {
        lecture_words()
    } else {
        builtin_words()
    };
    words.into_iter().step_by(4).take(count).collect()
}

/// Loads `examples` on `gpu` and checks that they were cut into more than `at_least` spans.
fn load_in_spans(
    gpu: &mut GpuBackend,
    examples: &Examples,
    at_least: usize,
) -> makemore::gpu::GpuExamples {
    let loaded = gpu.load(examples).unwrap();
    assert!(
        loaded.num_spans() > at_least,
        "{} spans on {}",
        loaded.num_spans(),
        gpu.describe()
    );
    loaded
}

#[test]
fn full_batch_steps_across_spans_match_the_cpu() {
    for (k, steps) in [(1, 300), (2, 100)] {
        let (vocab, examples) = encode(&some_names(1000), k);
        let initial = makemore::rng::standard_normal(examples.num_rows * vocab.len(), 7);
        for form in [
            NetForm::default(),
            NetForm {
                loss: LossForm::Explicit,
                one_hot: false,
            },
        ] {
            let mut want_weights = initial.clone();
            let want = CpuBackend
                .train(&mut want_weights, &examples, &LECTURE, steps, form)
                .unwrap();
            for gpu in &mut gpus_with_spans(333) {
                let loaded = load_in_spans(gpu, &examples, 10);
                let mut weights = initial.clone();
                let got = gpu
                    .train(&mut weights, &loaded, &LECTURE, steps, form)
                    .unwrap();
                let at = format!("context {k}, {form:?} on {}", gpu.describe());
                assert_eq!(got.len(), steps);
                assert_same_run(&at, (&got, &weights), (&want, &want_weights), 2e-4);
            }
        }
    }
}

#[test]
fn minibatches_and_adamw_across_spans_match_the_cpu() {
    let (vocab, examples) = encode(&some_names(2000), 1);
    let initial = makemore::rng::standard_normal(examples.num_rows * vocab.len(), 3);
    let options = TrainOptions { lr: 0.1, reg: 0.0 };
    let steps = 20;
    for schedule in [
        Schedule {
            batch_size: 3000,
            optimizer: Optimizer::Sgd,
            seed: 5,
        },
        Schedule {
            batch_size: 0,
            optimizer: Optimizer::AdamW(AdamW::default()),
            seed: 5,
        },
    ] {
        let form = NetForm::default();
        let mut want_weights = initial.clone();
        let want = train_neural(
            &mut CpuBackend,
            &mut want_weights,
            &examples,
            &examples,
            &options,
            steps,
            form,
            &schedule,
        )
        .unwrap();
        for gpu in &mut gpus_with_spans(1000) {
            let loaded = load_in_spans(gpu, &examples, 5);
            let mut weights = initial.clone();
            let got = train_neural(
                gpu,
                &mut weights,
                &examples,
                &loaded,
                &options,
                steps,
                form,
                &schedule,
            )
            .unwrap();
            let at = format!("{schedule:?} on {}", gpu.describe());
            assert_same_run(&at, (&got, &weights), (&want, &want_weights), 2e-4);
        }
    }
}

#[test]
fn counts_losses_and_the_count_nll_across_spans_match_the_cpu() {
    let (vocab, examples) = encode(&some_names(1000), 2);
    let want_counts = CpuBackend.count_pairs(&examples).unwrap();
    let probs = CpuBackend
        .normalize_rows(&want_counts, vocab.len(), 1.0)
        .unwrap();
    let want_nll = CpuBackend.mean_nll(&probs, &examples).unwrap();
    let weights = makemore::rng::standard_normal(examples.num_rows * vocab.len(), 11);
    for gpu in &mut gpus_with_spans(257) {
        let loaded = load_in_spans(gpu, &examples, 10);
        let device = gpu.describe();
        assert_eq!(gpu.count_pairs(&loaded).unwrap(), want_counts, "{device}");
        let nll = gpu.mean_nll(&probs, &loaded).unwrap();
        assert_eq!(nll.impossible, want_nll.impossible, "{device}");
        assert_rel(&device, nll.finite_mean, want_nll.finite_mean, 1e-6);
        for loss in [LossForm::Fused, LossForm::Explicit] {
            let form = NetForm {
                loss,
                one_hot: false,
            };
            let got = gpu.forward_loss(&weights, &loaded, form).unwrap();
            let want = CpuBackend.forward_loss(&weights, &examples, form).unwrap();
            assert_rel(&format!("{device}: {loss:?} loss"), got, want, 1e-5);
        }
    }
}

#[test]
fn the_one_hot_form_on_data_cut_into_spans_is_refused_naming_the_flag() {
    let (vocab, examples) = encode(&some_names(1000), 1);
    let weights = makemore::rng::standard_normal(examples.num_rows * vocab.len(), 1);
    let form = NetForm {
        loss: LossForm::Fused,
        one_hot: true,
    };
    // 8 KiB bindings: 2048 examples a span.
    for gpu in &mut gpus_with_binding(8192) {
        let loaded = load_in_spans(gpu, &examples, 1);
        let err = gpu
            .loss_and_gradient(&weights, &loaded, 0.0, form)
            .unwrap_err()
            .to_string();
        assert!(err.contains("drop --one-hot"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
}

/// The count model's NLL from more spans than loss_total takes sums (BLOCK_VALUES): a level of
/// partial_sums adds them first.
#[test]
fn the_count_nll_of_more_spans_than_loss_total_takes_matches_the_cpu() {
    let len = 2 * BLOCK_VALUES as usize + 3;
    let (vocab, examples) = encode(&some_names(len / 6), 1);
    assert!(examples.len() > len, "{}", examples.len());
    let counts = CpuBackend.count_pairs(&examples).unwrap();
    let probs = CpuBackend
        .normalize_rows(&counts, vocab.len(), 1.0)
        .unwrap();
    let want = CpuBackend.mean_nll(&probs, &examples).unwrap();
    for gpu in &mut gpus_with_spans(2) {
        let loaded = load_in_spans(gpu, &examples, BLOCK_VALUES as usize);
        let nll = gpu.mean_nll(&probs, &loaded).unwrap();
        assert_rel(&gpu.describe(), nll.finite_mean, want.finite_mean, 1e-6);
    }
}

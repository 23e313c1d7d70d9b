//! The lecture's figures (REFERENCE.md) on the lecture's own names list, whose path .ci/run
//! passes in MAKEMORE_LECTURE_NAMES. The list is not part of the project, so these tests are
//! ignored by default (`cargo test` counts them as ignored) and .ci/run adds
//! `--include-ignored` when it has the file; run that way without the variable, they fail.

use crate::common;

use common::{assert_rel, encode, gpus, lecture_words};
use makemore::model::CountModel;
use makemore::train::{Event, TrainConfig};
use makemore::{Backend, CpuBackend, NetForm, RngKind, TrainOptions};

#[test]
#[ignore = "needs the lecture's names.txt: MAKEMORE_LECTURE_NAMES=PATH cargo test --release -- --include-ignored"]
fn dataset_figures() {
    let words = lecture_words();
    assert_eq!(words.len(), 32_033);
    let stats = makemore::data::WordStats::of(&words);
    assert_eq!((stats.shortest, stats.longest), (2, 15));
    let (vocab, examples) = encode(&words, 1);
    assert_eq!(vocab.to_string(), ".abcdefghijklmnopqrstuvwxyz");
    assert_eq!(examples.len(), 228_146);

    let first_row: [u32; 27] = [
        0, 4410, 1306, 1542, 1690, 1531, 417, 669, 874, 591, 2422, 2963, 1572, 2538, 1146, 394,
        515, 92, 1639, 2055, 1308, 78, 376, 307, 134, 535, 929,
    ];
    let mut backends: Vec<Box<dyn FnMut() -> CountModel>> = Vec::new();
    let cpu_examples = examples.clone();
    let cpu_vocab = vocab.clone();
    backends.push(Box::new(move || {
        CountModel::fit(&mut CpuBackend, &cpu_examples, &cpu_vocab, 1, 1.0).unwrap()
    }));
    for mut gpu in gpus() {
        let loaded = gpu.load(&examples).unwrap();
        let vocab = vocab.clone();
        backends.push(Box::new(move || {
            CountModel::fit(&mut gpu, &loaded, &vocab, 1, 1.0).unwrap()
        }));
    }
    for fit in &mut backends {
        let model = fit();
        assert_eq!(model.counts[..27], first_row);
        assert_eq!(model.distinct_pairs(), 627);
        let top: Vec<(String, u32)> = model.most_frequent(5);
        let expected = [
            ("n.", 6763),
            ("a.", 6640),
            ("an", 5438),
            (".a", 4410),
            ("e.", 3983),
        ];
        assert_eq!(top, expected.map(|(p, n)| (p.to_string(), n)));
    }
}

#[test]
#[ignore = "needs the lecture's names.txt: MAKEMORE_LECTURE_NAMES=PATH cargo test --release -- --include-ignored"]
fn count_model_nll() {
    let words = lecture_words();
    let (vocab, examples) = encode(&words, 1);
    let counts = CpuBackend.count_pairs(&examples).unwrap();
    for (smoothing, reference) in [(0.0, 2.454014), (1.0, 2.454577)] {
        let probs = CpuBackend
            .normalize_rows(&counts, vocab.len(), smoothing)
            .unwrap();
        let cpu = CpuBackend.mean_nll(&probs, &examples).unwrap();
        assert!(
            (cpu.mean() - reference).abs() < 2e-5,
            "CPU, smoothing {smoothing}: {}",
            cpu.mean()
        );
        for gpu in &mut gpus() {
            let loaded = gpu.load(&examples).unwrap();
            let probs = gpu.normalize_rows(&counts, vocab.len(), smoothing).unwrap();
            let nll = gpu.mean_nll(&probs, &loaded).unwrap();
            assert!(
                (nll.mean() - reference).abs() < 2e-5,
                "{}, smoothing {smoothing}: {}",
                gpu.describe(),
                nll.mean()
            );
        }
    }
}

/// The word `andrejq`: -27.8672 with smoothing 1, minus infinity without (`jq` was never seen).
#[test]
#[ignore = "needs the lecture's names.txt: MAKEMORE_LECTURE_NAMES=PATH cargo test --release -- --include-ignored"]
fn andrejq() {
    let words = lecture_words();
    let (vocab, examples) = encode(&words, 1);
    let counts = CpuBackend.count_pairs(&examples).unwrap();
    let word = makemore::data::Examples::encode(&["andrejq"], &vocab, 1).unwrap();
    for gpu in &mut gpus() {
        let loaded = gpu.load(&word).unwrap();
        let smoothed = gpu.normalize_rows(&counts, vocab.len(), 1.0).unwrap();
        let nll = gpu.mean_nll(&smoothed, &loaded).unwrap();
        assert_eq!(nll.examples, 8);
        assert_rel("andrejq log likelihood", -nll.mean() * 8.0, -27.8672, 1e-5);
        let raw = gpu.normalize_rows(&counts, vocab.len(), 0.0).unwrap();
        let nll = gpu.mean_nll(&raw, &loaded).unwrap();
        assert_eq!(nll.impossible, 1);
        assert_eq!(nll.mean(), f64::INFINITY);
    }
}

/// Gradient descent with the lecture's settings lowers the loss at every step; without the
/// penalty the data loss closes in on the count model's (smoothing 0) NLL, 2.454014.
#[test]
#[ignore = "needs the lecture's names.txt: MAKEMORE_LECTURE_NAMES=PATH cargo test --release -- --include-ignored"]
fn neural_net_descends_towards_the_count_model() {
    let words = lecture_words();
    let (vocab, examples) = encode(&words, 1);
    let initial = makemore::rng::standard_normal(vocab.len() * vocab.len(), 2147483647);
    for gpu in &mut gpus() {
        let loaded = gpu.load(&examples).unwrap();
        let mut weights = initial.clone();
        let lecture = TrainOptions {
            lr: 50.0,
            reg: 0.01,
        };
        let losses = gpu
            .train(&mut weights, &loaded, &lecture, 100, NetForm::default())
            .unwrap();
        for (step, pair) in losses.windows(2).enumerate() {
            assert!(
                pair[1].total < pair[0].total,
                "loss rose at step {}: {:?}",
                step + 1,
                pair
            );
        }

        let mut weights = initial.clone();
        let unregularized = TrainOptions { lr: 50.0, reg: 0.0 };
        let losses = gpu
            .train(
                &mut weights,
                &loaded,
                &unregularized,
                200,
                NetForm::default(),
            )
            .unwrap();
        let gaps: Vec<f64> = losses.iter().map(|l| l.data - 2.454014).collect();
        assert!(
            gaps.windows(2).all(|g| g[1] < g[0] && g[1] > 0.0),
            "the gap must shrink and stay above 0"
        );
        assert!(
            gaps[199] < 0.01,
            "after 200 steps the data loss is {}",
            losses[199].data
        );
    }
}

/// The lecture's samples, `.` included as its loop prints them: from the count model with
/// smoothing 1, and from the neural net trained 300 steps (the fifth name differs).
const LECTURE_COUNT_NAMES: [&str; 5] = [
    "mor.",
    "axx.",
    "minaymoryles.",
    "kondlaisah.",
    "anchshizarie.",
];
const LECTURE_NEURAL_NAMES: [&str; 5] = [
    "mor.",
    "axx.",
    "minaymoryles.",
    "kondlaisah.",
    "anchthizarie.",
];

/// Our names are printed without the closing `.`; the lecture's with it. A name matches when
/// it plus `.` is the lecture's exactly.
fn assert_lecture_names(what: &str, ours: &[String], lecture: &[&str; 5]) {
    let ours: Vec<String> = ours.iter().map(|name| format!("{name}.")).collect();
    assert_eq!(ours, lecture, "{what}");
}

/// `train --rng torch --seed 2147483647` end to end on `backend`: W is the lecture's
/// `torch.randn((27, 27), generator=g)` (loss 3.7686186 before the first update, 3.3788068
/// after it, to 1e-6 relative), and each sampling run starts from a fresh generator, as the
/// lecture's cells do, giving the lecture's names from both models.
fn lecture_output_with_torch_rng<B: Backend>(backend: &mut B, words: &[String]) {
    let config = TrainConfig {
        context_len: 1,
        smoothing: 1.0,
        seed: 2147483647,
        rng: RngKind::Torch,
        steps: 300,
        options: TrainOptions {
            lr: 50.0,
            reg: 0.01,
        },
        samples: 5,
        ..TrainConfig::default()
    };
    let device = backend.describe();
    let mut samples = Vec::new();
    let mut losses = Vec::new();
    makemore::train::run(
        backend,
        words,
        "names.txt",
        &config,
        &mut |event| match event {
            Event::Samples { model, names } => samples.push((model, names)),
            Event::NeuralModel { losses: l, .. } => losses = l,
            _ => {}
        },
    )
    .unwrap();
    assert_rel(
        &format!("{device}: loss before the first update"),
        losses[0].total,
        3.7686186,
        1e-6,
    );
    assert_rel(
        &format!("{device}: loss after one update"),
        losses[1].total,
        3.3788068,
        1e-6,
    );
    assert_eq!(samples.len(), 2);
    assert_eq!(samples[0].0, "count");
    assert_lecture_names(
        &format!("{device}: count model"),
        &samples[0].1,
        &LECTURE_COUNT_NAMES,
    );
    assert_eq!(samples[1].0, "neural");
    assert_lecture_names(
        &format!("{device}: neural model after 300 steps"),
        &samples[1].1,
        &LECTURE_NEURAL_NAMES,
    );
}

#[test]
#[ignore = "needs the lecture's names.txt: MAKEMORE_LECTURE_NAMES=PATH cargo test --release -- --include-ignored"]
fn torch_rng_reproduces_the_lecture_on_the_cpu() {
    let words = lecture_words();
    lecture_output_with_torch_rng(&mut CpuBackend, &words);
}

#[test]
#[ignore = "needs the lecture's names.txt: MAKEMORE_LECTURE_NAMES=PATH cargo test --release -- --include-ignored"]
fn torch_rng_reproduces_the_lecture_on_the_gpu() {
    let words = lecture_words();
    for gpu in &mut gpus() {
        lecture_output_with_torch_rng(gpu, &words);
    }
}

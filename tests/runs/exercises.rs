//! The lecture's exercises as library features, GPU against the CPU reference on random data
//! (contexts up to 3, vocabularies larger than 27 with accented letters): context limits,
//! the train/dev/test split and the sweep.

use crate::common;

use common::{assert_rel, encode, gpus, random_words};
use makemore::limits::check_context;
use makemore::split::Split;
use makemore::tools::sweep::{SweepConfig, SweepModel};
use makemore::train::{non_finite_loss, Event, TrainConfig};
use makemore::{Backend, CpuBackend, LossForm, NetForm};

fn loss_only(loss: LossForm) -> NetForm {
    NetForm {
        loss,
        one_hot: false,
    }
}

fn fused_form() -> NetForm {
    NetForm::default()
}

fn explicit_form() -> NetForm {
    NetForm {
        loss: LossForm::Explicit,
        one_hot: false,
    }
}

/// (seed, alphabet size, words, context length): V up to 36, K up to 3.
const CASES: [(u64, usize, usize, usize); 3] =
    [(21, 35, 600, 1), (22, 30, 400, 2), (23, 7, 500, 3)];

#[test]
fn forward_loss_matches_and_equals_the_data_loss() {
    let mut gpus = gpus();
    for (i, &(seed, v, n, k)) in CASES.iter().enumerate() {
        let (vocab, examples) = encode(&random_words(seed, v, n), k);
        let weights = makemore::rng::standard_normal(examples.num_rows * vocab.len(), i as u64);
        let expected = CpuBackend
            .forward_loss(&weights, &examples, fused_form())
            .unwrap();
        let (with_gradient, _) = CpuBackend
            .loss_and_gradient(&weights, &examples, 0.5, NetForm::default())
            .unwrap();
        assert_rel(
            "cpu forward vs data loss",
            expected,
            with_gradient.data,
            1e-12,
        );
        for gpu in &mut gpus {
            let on_gpu = gpu.load(&examples).unwrap();
            let loss = gpu.forward_loss(&weights, &on_gpu, fused_form()).unwrap();
            assert_rel(&format!("forward loss, case {i}"), loss, expected, 1e-5);
        }
    }
}

#[test]
fn too_long_a_context_is_refused_before_allocating() {
    // V = 27: the 27^5 x 27 table takes 1.55 GB, over every limit here; 27^4 x 27 takes 57 MB.
    let words = makemore::data::builtin_words();
    let mut limits = vec![CpuBackend.table_limit()];
    limits.extend(gpus().iter().map(|g| g.table_limit()));
    for limit in limits {
        let err = check_context(27, 5, &limit).unwrap_err();
        assert!(err.largest().is_some_and(|k| k >= 1), "{err}");
        let largest = err.largest().unwrap();
        assert!(check_context(27, largest, &limit).is_ok());
        assert!(check_context(27, largest + 1, &limit).is_err());
        assert!(err.to_string().contains(&limit.name), "{err}");
    }
    // Through the pipeline, on both devices: an error, not an allocation.
    let config = TrainConfig {
        context_len: 8,
        ..TrainConfig::default()
    };
    let err = makemore::train::run(&mut CpuBackend, &words, "t", &config, &mut |_| {})
        .expect_err("context 8 is refused");
    assert!(
        err.to_string().contains("the largest context that fits is"),
        "{err}"
    );
    for gpu in &mut gpus() {
        let err = makemore::train::run(gpu, &words, "t", &config, &mut |_| {})
            .expect_err("context 8 is refused");
        // The limit named is the tightest of this adapter's (a device limit on lavapipe's
        // 128 MiB bindings, the host bound on a card that binds 2 GiB).
        let limit = gpu.table_limit();
        let expected = check_context(27, 8, &limit).unwrap_err();
        assert_eq!(err.to_string(), expected.to_string());
        assert!(err.to_string().contains(&limit.name), "{err}");
    }
}

/// The evaluation event of `train` with a split, on one backend.
fn evaluation<B: Backend>(
    backend: &mut B,
    words: &[String],
    config: &TrainConfig,
) -> ([Option<f64>; 3], [Option<f64>; 3], [usize; 3]) {
    let mut found = None;
    let mut sizes = None;
    makemore::train::run(backend, words, "t", config, &mut |event| match event {
        Event::Evaluation { count, neural } => found = Some((count, neural)),
        Event::Split { words, .. } => sizes = Some(words),
        _ => {}
    })
    .unwrap();
    let (count, neural) = found.expect("an evaluation event with --split");
    (count, neural, sizes.expect("a split event"))
}

#[test]
fn split_losses_match_and_unseen_pairs_are_infinite() {
    let split: Split = "80/10/10".parse().unwrap();
    for &(seed, v, n, k) in &CASES {
        let words = random_words(seed, v, n);
        for smoothing in [0.0, 1.0] {
            let config = TrainConfig {
                context_len: k,
                smoothing,
                steps: 5,
                samples: 0,
                split: Some(split),
                ..TrainConfig::default()
            };
            let (count, neural, sizes) = evaluation(&mut CpuBackend, &words, &config);
            assert_eq!(sizes.iter().sum::<usize>(), n);
            assert_eq!(sizes[0], n * 8 / 10);
            if smoothing > 0.0 {
                assert!(count[1].unwrap().is_finite() && count[2].unwrap().is_finite());
            }
            for gpu in &mut gpus() {
                let (g_count, g_neural, g_sizes) = evaluation(gpu, &words, &config);
                assert_eq!(g_sizes, sizes);
                let parts = |l: [Option<f64>; 3]| l.map(Option::unwrap);
                for (g, c) in parts(g_count).into_iter().zip(parts(count)) {
                    assert_eq!(g.is_infinite(), c.is_infinite(), "count {g} vs {c}");
                    if c.is_finite() {
                        assert_rel("count loss by part", g, c, 1e-5);
                    }
                }
                for (g, c) in parts(g_neural).into_iter().zip(parts(neural)) {
                    assert_rel("neural loss by part", g, c, 1e-5);
                }
            }
        }
    }
    // Random words of 30 letters with K = 2 leave pairs unseen in train: smoothing 0 gives inf.
    let words = random_words(22, 30, 400);
    let config = TrainConfig {
        context_len: 2,
        smoothing: 0.0,
        steps: 1,
        samples: 0,
        split: Some(split),
        ..TrainConfig::default()
    };
    let (count, _, _) = evaluation(&mut CpuBackend, &words, &config);
    assert!(count[0].unwrap().is_finite());
    assert_eq!(count[1], Some(f64::INFINITY));
}

#[test]
fn without_a_split_there_is_no_evaluation() {
    let words = random_words(5, 8, 100);
    let config = TrainConfig {
        steps: 1,
        samples: 0,
        ..TrainConfig::default()
    };
    let mut events = 0;
    makemore::train::run(&mut CpuBackend, &words, "t", &config, &mut |event| {
        assert!(!matches!(
            event,
            Event::Evaluation { .. } | Event::Split { .. }
        ));
        events += 1;
    })
    .unwrap();
    assert!(events >= 3);
}

fn sweep_config(model: SweepModel, k: usize) -> SweepConfig {
    SweepConfig {
        model,
        strengths: vec![0.0, 0.1, 1.0, 10.0],
        split: "80/10/10".parse().unwrap(),
        context_len: k,
        seed: 3,
        steps: 5,
        lr: 10.0,
    }
}

#[test]
fn sweeps_match_and_choose_on_dev() {
    for &(seed, v, n, k) in &CASES {
        let words = random_words(seed, v, n);
        for model in [SweepModel::Count, SweepModel::Neural] {
            let config = sweep_config(model, k);
            let cpu = makemore::tools::sweep::run(&mut CpuBackend, &words, &config).unwrap();
            assert_eq!(cpu.rows.len(), 4);
            let best_dev = cpu.rows[cpu.best].dev;
            assert!(cpu.rows.iter().all(|r| r.dev >= best_dev));
            assert!(cpu.test.is_finite());
            for gpu in &mut gpus() {
                let on_gpu = makemore::tools::sweep::run(gpu, &words, &config).unwrap();
                assert_eq!(on_gpu.best, cpu.best, "{model:?}, case {seed}");
                assert_rel("test loss of the best", on_gpu.test, cpu.test, 1e-5);
                for (g, c) in on_gpu.rows.iter().zip(&cpu.rows) {
                    assert_eq!(g.dev.is_infinite(), c.dev.is_infinite());
                    if c.dev.is_finite() {
                        assert_rel("dev loss", g.dev, c.dev, 1e-5);
                        assert_rel("train loss", g.train, c.train, 1e-5);
                    }
                }
            }
        }
    }
    // Each strength trains its own model from the same initialization: the losses differ.
    let words = random_words(21, 35, 600);
    let result = makemore::tools::sweep::run(
        &mut CpuBackend,
        &words,
        &SweepConfig {
            steps: 30,
            ..sweep_config(SweepModel::Neural, 1)
        },
    )
    .unwrap();
    assert!(
        result.rows.windows(2).all(|w| w[0].train != w[1].train),
        "{result:?}"
    );
}

#[test]
fn fused_and_explicit_losses_agree_on_ordinary_logits() {
    let mut gpus = gpus();
    for (i, &(seed, v, n, k)) in CASES.iter().enumerate() {
        let (vocab, examples) = encode(&random_words(seed, v, n), k);
        let weights = makemore::rng::standard_normal(examples.num_rows * vocab.len(), i as u64);
        let fused = CpuBackend
            .loss_and_gradient(&weights, &examples, 0.1, fused_form())
            .unwrap();
        let explicit = CpuBackend
            .loss_and_gradient(&weights, &examples, 0.1, explicit_form())
            .unwrap();
        assert_rel(
            "explicit vs fused (CPU)",
            explicit.0.total,
            fused.0.total,
            1e-6,
        );
        common::assert_close(
            "explicit vs fused gradient",
            &explicit.1,
            &fused.1,
            1e-6,
            1e-4,
        );
        for gpu in &mut gpus {
            let on_gpu = gpu.load(&examples).unwrap();
            let (loss, grads) = gpu
                .loss_and_gradient(&weights, &on_gpu, 0.1, explicit_form())
                .unwrap();
            assert_rel(
                "explicit loss, GPU vs CPU",
                loss.total,
                explicit.0.total,
                1e-5,
            );
            common::assert_close(
                "explicit gradient, GPU vs CPU",
                &grads,
                &explicit.1,
                1e-6,
                1e-4,
            );
            let forward = gpu
                .forward_loss(&weights, &on_gpu, explicit_form())
                .unwrap();
            assert_rel("explicit forward loss", forward, explicit.0.data, 1e-5);
            let mut w_gpu = weights.clone();
            let mut w_cpu = weights.clone();
            let options = makemore::TrainOptions { lr: 5.0, reg: 0.01 };
            gpu.train(&mut w_gpu, &on_gpu, &options, 3, explicit_form())
                .unwrap();
            CpuBackend
                .train(&mut w_cpu, &examples, &options, 3, explicit_form())
                .unwrap();
            common::assert_close("W after 3 explicit steps", &w_gpu, &w_cpu, 1e-5, 1e-4);
        }
    }
}

#[test]
fn large_logits_overflow_the_explicit_loss_only() {
    let (vocab, examples) = encode(&random_words(31, 30, 200), 2);
    // Logits of magnitude 100 and more: exp(100) is beyond f32's largest value.
    let weights: Vec<f32> = makemore::rng::standard_normal(examples.num_rows * vocab.len(), 5)
        .into_iter()
        .map(|w| 100.0 + 50.0 * w.abs())
        .collect();
    let mut backends: Vec<Box<dyn FnMut(LossForm) -> f64>> = Vec::new();
    let ex = examples.clone();
    let w = weights.clone();
    backends.push(Box::new(move |form| {
        CpuBackend.forward_loss(&w, &ex, loss_only(form)).unwrap()
    }));
    for mut gpu in gpus() {
        let on_gpu = gpu.load(&examples).unwrap();
        let w = weights.clone();
        backends.push(Box::new(move |form| {
            gpu.forward_loss(&w, &on_gpu, loss_only(form)).unwrap()
        }));
    }
    for backend in &mut backends {
        let fused = backend(LossForm::Fused);
        let explicit = backend(LossForm::Explicit);
        assert!(fused.is_finite() && fused > 0.0, "fused {fused}");
        assert!(!explicit.is_finite(), "explicit {explicit}");
    }
    // The pipeline turns it into an error that says why, instead of printing NaN.
    let err = non_finite_loss(0, f64::NAN, &weights, loss_only(LossForm::Explicit)).to_string();
    assert!(
        err.contains("--loss fused") && err.contains("step 0"),
        "{err}"
    );
}

#[test]
fn one_hot_product_equals_the_row_select() {
    let mut gpus = gpus();
    for (i, &(seed, v, n, k)) in CASES.iter().enumerate() {
        let (vocab, examples) = encode(&random_words(seed, v, n), k);
        let weights = makemore::rng::standard_normal(examples.num_rows * vocab.len(), i as u64);
        // The logits: onehot(ctx) @ W is exactly the row W[ctx].
        let logits = makemore::cpu::one_hot_matmul(
            &weights,
            &examples.contexts,
            examples.num_rows,
            vocab.len(),
        );
        for (j, &ctx) in examples.contexts.iter().enumerate() {
            let row = &weights[ctx as usize * vocab.len()..][..vocab.len()];
            assert_eq!(&logits[j * vocab.len()..][..vocab.len()], row);
        }
        for loss in [LossForm::Fused, LossForm::Explicit] {
            let select = NetForm {
                loss,
                one_hot: false,
            };
            let one_hot = NetForm {
                loss,
                one_hot: true,
            };
            let (cpu_loss, cpu_grads) = CpuBackend
                .loss_and_gradient(&weights, &examples, 0.1, select)
                .unwrap();
            let (hot_loss, hot_grads) = CpuBackend
                .loss_and_gradient(&weights, &examples, 0.1, one_hot)
                .unwrap();
            assert_rel("one-hot loss (CPU)", hot_loss.total, cpu_loss.total, 1e-12);
            common::assert_close("one-hot gradient (CPU)", &hot_grads, &cpu_grads, 1e-7, 1e-6);
            for gpu in &mut gpus {
                let on_gpu = gpu.load(&examples).unwrap();
                let (g_select, g_select_grads) = gpu
                    .loss_and_gradient(&weights, &on_gpu, 0.1, select)
                    .unwrap();
                let (g_hot, g_hot_grads) = gpu
                    .loss_and_gradient(&weights, &on_gpu, 0.1, one_hot)
                    .unwrap();
                // Explicit: the same logits through the same loss kernel, the same loss to the
                // bit (the fused row select has a kernel of its own, cross_entropy_fused).
                let same = g_hot.total.to_bits() == g_select.total.to_bits();
                assert!(same || loss == LossForm::Fused);
                assert_rel(
                    "one-hot loss, GPU vs CPU",
                    g_hot.total,
                    cpu_loss.total,
                    1e-5,
                );
                common::assert_close(
                    "one-hot vs row-select gradient (GPU)",
                    &g_hot_grads,
                    &g_select_grads,
                    1e-6,
                    1e-4,
                );
                common::assert_close(
                    "one-hot gradient, GPU vs CPU",
                    &g_hot_grads,
                    &hot_grads,
                    1e-6,
                    1e-4,
                );
                let options = makemore::TrainOptions { lr: 5.0, reg: 0.01 };
                let mut w_hot = weights.clone();
                let mut w_select = weights.clone();
                gpu.train(&mut w_hot, &on_gpu, &options, 3, one_hot)
                    .unwrap();
                gpu.train(&mut w_select, &on_gpu, &options, 3, select)
                    .unwrap();
                common::assert_close("W after 3 steps", &w_hot, &w_select, 1e-5, 1e-4);
                let forward = gpu.forward_loss(&weights, &on_gpu, one_hot).unwrap();
                assert_rel("one-hot forward loss", forward, cpu_loss.data, 1e-5);
            }
        }
    }
}

/// More than 65,536 examples: a first one_hot_matmul_backward that summed all the examples in
/// one invocation lost every example past about 65,536 on lavapipe and llvmpipe (the sum is
/// now cut into blocks of 4,096); this holds it to the row select on all 229,804.
#[test]
fn one_hot_gradient_matches_on_all_the_builtin_names() {
    let (vocab, examples) = encode(&makemore::data::builtin_words(), 1);
    let weights = makemore::rng::standard_normal(vocab.len() * vocab.len(), 8);
    let one_hot = NetForm {
        loss: LossForm::Fused,
        one_hot: true,
    };
    for gpu in &mut gpus() {
        let on_gpu = gpu.load(&examples).unwrap();
        let (select_loss, select_grads) = gpu
            .loss_and_gradient(&weights, &on_gpu, 0.01, fused_form())
            .unwrap();
        let (hot_loss, hot_grads) = gpu
            .loss_and_gradient(&weights, &on_gpu, 0.01, one_hot)
            .unwrap();
        // The row select's kernel (cross_entropy_fused) adds the NLL in another order.
        assert_rel(
            "one-hot loss, all names",
            hot_loss.total,
            select_loss.total,
            1e-6,
        );
        common::assert_close(
            "one-hot gradient, all names",
            &hot_grads,
            &select_grads,
            1e-6,
            1e-4,
        );
    }
}

#[test]
fn adamw_step_matches() {
    use makemore::adamw::AdamW;
    let adamw = AdamW::default();
    for gpu in &mut gpus() {
        let n = 36 * 36 * 3;
        let weights = makemore::rng::standard_normal(n, 1);
        // Step t's gradient: 0.1 standard normals, seeded 9 + t.
        let grads = |t: u32| -> Vec<f32> {
            let normals = makemore::rng::standard_normal(n, 9 + t as u64);
            normals.into_iter().map(|g| g * 0.1).collect()
        };
        let [w_cpu, m_cpu, v_cpu] =
            common::adamw_steps(&mut CpuBackend, &weights, (5, 0.01), grads);
        let [w_gpu, m_gpu, v_gpu] = common::adamw_steps(gpu, &weights, (5, 0.01), grads);
        common::assert_close("AdamW weights", &w_gpu, &w_cpu, 1e-6, 1e-5);
        common::assert_close("AdamW m", &m_gpu, &m_cpu, 1e-7, 1e-5);
        common::assert_close("AdamW v", &v_gpu, &v_cpu, 1e-9, 1e-5);
        // The first step moves every weight by lr (m / sqrt(v) = g / |g|), plus the decay.
        let mut w = weights.clone();
        let grads = makemore::rng::standard_normal(n, 99);
        let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
        makemore::cpu::adamw_step(&mut w, &grads, (&mut m, &mut v), 1, 0.01, &adamw);
        for k in 0..n {
            let decayed = weights[k] as f64 * (1.0 - 0.01 * 0.01);
            let moved = (w[k] as f64 - decayed).abs();
            assert!((moved - 0.01).abs() < 1e-5, "weight {k} moved {moved}");
        }
    }
}

#[test]
fn minibatch_training_matches_and_is_seeded() {
    use common::train_neural;
    use makemore::adamw::AdamW;
    use makemore::optim::{Optimizer, Schedule};
    for &(seed, v, n, k) in &CASES {
        let (vocab, examples) = encode(&random_words(seed, v, n), k);
        let initial = makemore::rng::standard_normal(examples.num_rows * vocab.len(), 4);
        for optimizer in [Optimizer::Sgd, Optimizer::AdamW(AdamW::default())] {
            let schedule = Schedule {
                batch_size: 64,
                optimizer,
                seed: 9,
            };
            let options = makemore::TrainOptions { lr: 0.5, reg: 0.01 };
            let run_cpu = || {
                let mut w = initial.clone();
                let losses = train_neural(
                    &mut CpuBackend,
                    &mut w,
                    &examples,
                    &examples,
                    &options,
                    6,
                    fused_form(),
                    &schedule,
                )
                .unwrap();
                (w, losses)
            };
            let (w_cpu, l_cpu) = run_cpu();
            assert_eq!(run_cpu(), (w_cpu.clone(), l_cpu.clone()));
            assert_ne!(w_cpu, initial);
            for gpu in &mut gpus() {
                let loaded = gpu.load(&examples).unwrap();
                let mut w_gpu = initial.clone();
                let l_gpu = train_neural(
                    gpu,
                    &mut w_gpu,
                    &examples,
                    &loaded,
                    &options,
                    6,
                    fused_form(),
                    &schedule,
                )
                .unwrap();
                for (g, c) in l_gpu.iter().zip(&l_cpu) {
                    assert_rel("minibatch loss", g.total, c.total, 1e-5);
                }
                common::assert_close("W after 6 minibatch steps", &w_gpu, &w_cpu, 1e-5, 1e-4);
            }
        }
    }
}

/// The lecture's trigram (E01): smoothing 1 gives mean NLL 2.212582 over 228,146 examples.
#[test]
#[ignore = "needs the lecture's names.txt: MAKEMORE_LECTURE_NAMES=PATH cargo test --release -- --include-ignored"]
fn the_lecture_trigram_figure() {
    let words = common::lecture_words();
    let (vocab, examples) = encode(&words, 2);
    assert_eq!(examples.len(), 228_146);
    let counts = CpuBackend.count_pairs(&examples).unwrap();
    let probs = CpuBackend
        .normalize_rows(&counts, vocab.len(), 1.0)
        .unwrap();
    let cpu = CpuBackend.mean_nll(&probs, &examples).unwrap().mean();
    assert!((cpu - 2.212582).abs() < 2e-5, "CPU {cpu}");
    for gpu in &mut gpus() {
        let on_gpu = gpu.load(&examples).unwrap();
        let counts = gpu.count_pairs(&on_gpu).unwrap();
        let probs = gpu.normalize_rows(&counts, vocab.len(), 1.0).unwrap();
        let nll = gpu.mean_nll(&probs, &on_gpu).unwrap().mean();
        assert!((nll - 2.212582).abs() < 2e-5, "GPU {nll}");
    }
    let parts = "80/10/10"
        .parse::<Split>()
        .unwrap()
        .apply(&words, 2147483647);
    assert_eq!(
        (parts.train.len(), parts.dev.len(), parts.test.len()),
        (25_626, 3_203, 3_204)
    );
}

//! The first run on a machine whose only device is GL (Mesa's llvmpipe), with an empty shader
//! cache: opening the device, building every pipeline and the first dispatch of every kernel
//! must take seconds, not the minute a careless shader costs llvmpipe's compiler.
//!
//! Mesa reads MESA_SHADER_CACHE_DISABLE when it loads, so this file holds a single test that
//! sets it before anything in the process touches GL.

#![cfg(target_os = "linux")]

mod common;

use std::time::{Duration, Instant};

use common::{encode, random_words};
use makemore::adamw::{AdamState, AdamW};
use makemore::backend::{LossForm, NetForm};
use makemore::{Backend, Gpu, GpuBackend, TrainOptions};

/// The whole of it: device, pipelines and the first dispatch of each kernel. With no kernel
/// left to GL's zero-initialization of workgroup memory it took 1.2 s on a 2-core machine.
const BUDGET: Duration = Duration::from_secs(3);

#[test]
fn a_cold_gl_device_builds_and_runs_every_kernel_within_the_budget() {
    // Before the first GL call of this process (the only test of this binary).
    std::env::set_var("MESA_SHADER_CACHE_DISABLE", "true");
    let start = Instant::now();
    let gpu = Gpu::on_backends(wgpu::Backends::GL).unwrap_or_else(|e| {
        panic!("this test needs a GL adapter (on Linux: libegl1 libegl-mesa0 libgl1-mesa-dri): {e}")
    });
    let opened = start.elapsed();
    let mut backend = GpuBackend::new(gpu);
    let options = TrainOptions { lr: 1.0, reg: 0.01 };
    let mut stages = vec![("open the device and build every pipeline", opened)];
    let mut lap = Instant::now();
    let mut time = |what: &'static str, lap: &mut Instant| {
        stages.push((what, lap.elapsed()));
        *lap = Instant::now();
    };

    // A bigram table of 7 x 7 cells fits the private histogram (count_pairs_private); a
    // trigram over 17 symbols (17^2 x 17 = 4,913 cells) does not (count_pairs).
    let (small_vocab, small) = encode(&random_words(3, 6, 200), 1);
    let (_, large) = encode(&random_words(4, 16, 400), 2);
    assert!(small.num_rows * small.num_cols <= 4096 && large.num_rows * large.num_cols > 4096);
    let loaded = backend.load(&small).unwrap();
    let loaded_large = backend.load(&large).unwrap();
    let counts = backend.count_pairs(&loaded).unwrap();
    time("count_pairs_private", &mut lap);
    let large_counts = backend.count_pairs(&loaded_large).unwrap();
    time("count_pairs", &mut lap);
    let probs = backend
        .normalize_rows(&counts, small_vocab.len(), 1.0)
        .unwrap();
    time("normalize_rows", &mut lap);
    let nll = backend.mean_nll(&probs, &loaded).unwrap();
    time("nll_gather, loss_total", &mut lap);
    let v = small_vocab.len();
    let mut weights = makemore::rng::standard_normal(v * v, 1);
    let (loss, grads) = backend
        .loss_and_gradient(&weights, &loaded, options.reg, NetForm::default())
        .unwrap();
    time(
        "cross_entropy_forward, cross_entropy_backward, grad_rows",
        &mut lap,
    );
    backend
        .train(&mut weights, &loaded, &options, 1, NetForm::default())
        .unwrap();
    time("sgd_step", &mut lap);
    let explicit = NetForm {
        loss: LossForm::Explicit,
        one_hot: false,
    };
    let explicit_loss = backend.forward_loss(&weights, &loaded, explicit).unwrap();
    time("cross_entropy_explicit", &mut lap);
    let one_hot = NetForm {
        loss: LossForm::Fused,
        one_hot: true,
    };
    let (one_hot_loss, _) = backend
        .loss_and_gradient(&weights, &loaded, options.reg, one_hot)
        .unwrap();
    time("one_hot_matmul, one_hot_matmul_backward", &mut lap);
    let mut state = AdamState::new(weights.len());
    backend
        .adamw_step(&mut weights, &grads, &mut state, 1e-3, &AdamW::default())
        .unwrap();
    time("adamw_step", &mut lap);
    let descent = backend
        .train_counts(&mut weights, &loaded, &options, 2)
        .unwrap();
    time("count_descent", &mut lap);
    let softmax = backend.softmax_rows(&weights, v).unwrap();
    time("softmax_rows", &mut lap);
    let total = start.elapsed();

    // The kernels did their work: exact counts, finite losses, distributions.
    assert_eq!(
        counts.iter().map(|&n| n as usize).sum::<usize>(),
        small.len()
    );
    assert_eq!(
        large_counts.iter().map(|&n| n as usize).sum::<usize>(),
        large.len()
    );
    for value in [nll.mean(), loss.total, explicit_loss, one_hot_loss.total] {
        assert!(value.is_finite() && value > 0.0, "{value}");
    }
    assert_eq!(descent.len(), 2);
    let row: f32 = softmax[..v].iter().sum();
    assert!((row - 1.0).abs() < 1e-5, "{row}");

    let report: Vec<String> = stages
        .iter()
        .map(|(what, took)| format!("  {:>8.1} ms  {what}", took.as_secs_f64() * 1e3))
        .collect();
    eprintln!("cold GL start:\n{}", report.join("\n"));
    assert!(
        total <= BUDGET,
        "a cold GL start took {:.1} s, over the budget of {} s:\n{}",
        total.as_secs_f64(),
        BUDGET.as_secs(),
        report.join("\n")
    );
}

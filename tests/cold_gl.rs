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
use makemore::backend::{LossForm, NetForm};
use makemore::gpu::GpuExamples;
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
    let mut stages = Stages::new("open the device and build every pipeline", opened);

    // A bigram table of 7 x 7 cells fits the private histogram (count_pairs_private); a
    // trigram over 17 symbols (17^2 x 17 = 4,913 cells) does not (count_pairs).
    let (small_vocab, small) = encode(&random_words(3, 6, 200), 1);
    let (_, large) = encode(&random_words(4, 16, 400), 2);
    assert!(small.num_rows * small.num_cols <= 4096 && large.num_rows * large.num_cols > 4096);
    let loaded = backend.load(&small).unwrap();
    let loaded_large = backend.load(&large).unwrap();
    let v = small_vocab.len();
    let counted = count_model(&mut backend, &loaded, &loaded_large, v, &mut stages);
    let trained = neural_net(&mut backend, &loaded, v, &mut stages);
    let total = start.elapsed();

    // The kernels did their work: exact counts, finite losses, distributions.
    assert_eq!(
        counted.counts.iter().map(|&n| n as usize).sum::<usize>(),
        small.len()
    );
    assert_eq!(
        counted
            .large_counts
            .iter()
            .map(|&n| n as usize)
            .sum::<usize>(),
        large.len()
    );
    for value in [
        counted.nll,
        trained.loss,
        trained.explicit_loss,
        trained.one_hot_loss,
    ] {
        assert!(value.is_finite() && value > 0.0, "{value}");
    }
    assert_eq!(trained.descent_steps, 2);
    let row: f32 = trained.softmax[..v].iter().sum();
    assert!((row - 1.0).abs() < 1e-5, "{row}");

    stages.assert_within_budget(total);
}

/// The time of each stage, from the end of the one before.
struct Stages {
    took: Vec<(&'static str, Duration)>,
    lap: Instant,
}

impl Stages {
    fn new(first: &'static str, took: Duration) -> Self {
        Stages {
            took: vec![(first, took)],
            lap: Instant::now(),
        }
    }

    /// Ends the stage `what`.
    fn time(&mut self, what: &'static str) {
        self.took.push((what, self.lap.elapsed()));
        self.lap = Instant::now();
    }

    /// Prints the stages, and fails if `total` is over the budget.
    fn assert_within_budget(&self, total: Duration) {
        let report: Vec<String> = self
            .took
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
}

/// What the count model's kernels produced.
struct Counted {
    counts: Vec<u32>,
    large_counts: Vec<u32>,
    nll: f64,
}

/// The count model: N of a small table and a large one, P from the small N, and its NLL.
fn count_model(
    backend: &mut GpuBackend,
    small: &GpuExamples,
    large: &GpuExamples,
    v: usize,
    stages: &mut Stages,
) -> Counted {
    let counts = backend.count_pairs(small).unwrap();
    stages.time("count_pairs_private");
    let large_counts = backend.count_pairs(large).unwrap();
    stages.time("count_pairs");
    let probs = backend.normalize_rows(&counts, v, 1.0).unwrap();
    stages.time("normalize_rows");
    let nll = backend.mean_nll(&probs, small).unwrap();
    stages.time("nll_gather, loss_total");
    Counted {
        counts,
        large_counts,
        nll: nll.mean(),
    }
}

/// What the neural net's kernels produced.
struct Trained {
    loss: f64,
    explicit_loss: f64,
    one_hot_loss: f64,
    /// Losses returned by two steps from the counts.
    descent_steps: usize,
    /// softmax of the weights after every step.
    softmax: Vec<f32>,
}

/// The neural net on V x V weights: each form of the loss and its gradient, an SGD step, an
/// AdamW step, steps from the counts, and softmax(W).
fn neural_net(
    backend: &mut GpuBackend,
    loaded: &GpuExamples,
    v: usize,
    stages: &mut Stages,
) -> Trained {
    let options = TrainOptions { lr: 1.0, reg: 0.01 };
    let mut weights = makemore::rng::standard_normal(v * v, 1);
    let (loss, grads) = backend
        .loss_and_gradient(&weights, loaded, options.reg, NetForm::default())
        .unwrap();
    stages.time("cross_entropy_forward, cross_entropy_backward, grad_rows");
    backend
        .train(&mut weights, loaded, &options, 1, NetForm::default())
        .unwrap();
    stages.time("sgd_step");
    let explicit = NetForm {
        loss: LossForm::Explicit,
        one_hot: false,
    };
    let explicit_loss = backend.forward_loss(&weights, loaded, explicit).unwrap();
    stages.time("cross_entropy_explicit");
    let one_hot = NetForm {
        loss: LossForm::Fused,
        one_hot: true,
    };
    let (one_hot_loss, _) = backend
        .loss_and_gradient(&weights, loaded, options.reg, one_hot)
        .unwrap();
    stages.time("one_hot_matmul, one_hot_matmul_backward");
    [weights, ..] = common::adamw_steps(backend, &weights, (1, 1e-3), |_| grads.clone());
    stages.time("adamw_step");
    let descent = backend
        .train_counts(&mut weights, loaded, &options, 2)
        .unwrap();
    stages.time("count_descent");
    let softmax = backend.softmax_rows(&weights, v).unwrap();
    stages.time("softmax_rows");
    Trained {
        loss: loss.total,
        explicit_loss,
        one_hot_loss: one_hot_loss.total,
        descent_steps: descent.len(),
        softmax,
    }
}

//! `makemore check`: an adapter's kernels against their CPU twins, on random data.
//!
//! Our tests run on Mesa's software adapters; a user's Metal, DX12, NVIDIA, AMD or Intel
//! device runs the same WGSL through another compiler. This runs every kernel once on random
//! data shaped to reach each of its code paths (short and long rows, small and large count
//! tables), and whole training runs at contexts 1 to 3 long enough to cross the loop limits
//! that once made a kernel stop early, and compares each with the CPU reference.
//!
//! Tolerances are llm.c's form, |gpu - cpu| <= atol + rtol * |cpu| for every element (f32 on
//! the device against f64 sums on the CPU); counts must match exactly.

use std::time::Instant;

use rand::{RngExt, SeedableRng};

use crate::adamw::{AdamState, AdamW};
use crate::backend::{Backend, LossForm, NetForm, TrainOptions};
use crate::cpu::CpuBackend;
use crate::data::{Examples, Vocab};
use crate::gpu::GpuBackend;

/// One comparison of a kernel (or a run) with its CPU twin.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The kernels compared, and the case.
    pub kernel: String,
    pub case: String,
    /// The worst element's |gpu - cpu| divided by its tolerance: at most 1 passes.
    pub worst: f64,
    /// The tolerance, as a formula.
    pub tolerance: String,
    pub pass: bool,
    /// Why the comparison could not be made (the device reported an error), if it could not.
    pub error: Option<String>,
    /// Wall time of the comparison, GPU and CPU together.
    pub seconds: f64,
}

/// A tolerance `atol + rtol * |cpu|`, or exact equality.
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    pub atol: f64,
    pub rtol: f64,
}

pub const EXACT: Tolerance = Tolerance {
    atol: 0.0,
    rtol: 0.0,
};
/// Values of one kernel: probabilities, logits, losses.
pub const VALUES: Tolerance = Tolerance {
    atol: 1e-6,
    rtol: 1e-5,
};
/// Gradients: sums of many terms of both signs.
pub const GRADIENTS: Tolerance = Tolerance {
    atol: 1e-6,
    rtol: 1e-4,
};
/// Weights after a whole run.
pub const WEIGHTS: Tolerance = Tolerance {
    atol: 2e-4,
    rtol: 2e-4,
};

impl Tolerance {
    pub fn describe(&self) -> String {
        if self.atol == 0.0 && self.rtol == 0.0 {
            "exact".to_string()
        } else {
            format!("{:e} + {:e}*|cpu|", self.atol, self.rtol)
        }
    }

    /// The worst |gpu - cpu| / (atol + rtol |cpu|) over the elements (infinite for a
    /// mismatch of an exact value, a NaN, or a length mismatch).
    pub fn worst(&self, gpu: &[f64], cpu: &[f64]) -> f64 {
        if gpu.len() != cpu.len() {
            return f64::INFINITY;
        }
        gpu.iter()
            .zip(cpu)
            .map(|(&g, &c)| {
                let diff = (g - c).abs();
                let allowed = self.atol + self.rtol * c.abs();
                if diff.is_nan() {
                    f64::INFINITY
                } else if diff == 0.0 {
                    0.0
                } else if allowed == 0.0 {
                    f64::INFINITY
                } else {
                    diff / allowed
                }
            })
            .fold(0.0, f64::max)
    }
}

/// Values as f64, for [`Tolerance::worst`].
pub fn as_f64<T: Copy + Into<f64>>(values: &[T]) -> Vec<f64> {
    values.iter().map(|&v| v.into()).collect()
}

/// Random words over `alphabet` symbols (letters, then Greek and CJK), `count` of them.
fn random_words(seed: u64, alphabet: usize, count: usize) -> Vec<String> {
    let symbols: Vec<char> = ('a'..='z')
        .chain('α'..='ω')
        .chain('一'..='鿿')
        .take(alphabet)
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..count)
        .map(|i| {
            let len = rng.random_range(1..=10);
            std::iter::once(symbols[i % symbols.len()])
                .chain((1..len).map(|_| symbols[rng.random_range(0..symbols.len())]))
                .collect()
        })
        .collect()
}

/// Examples of `count` random words over `alphabet` symbols with context `k`.
fn random_examples(seed: u64, alphabet: usize, count: usize, k: usize) -> Examples {
    let words = random_words(seed, alphabet, count);
    let vocab = Vocab::from_words(&words);
    Examples::encode(&words, &vocab, k).expect("the vocabulary holds every word's symbols")
}

/// The checks' results on one adapter, in order.
pub struct Report {
    pub adapter: String,
    pub outcomes: Vec<Outcome>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.outcomes.iter().all(|o| o.pass)
    }
}

/// Runs every check on `gpu`.
pub fn check_adapter(gpu: &mut GpuBackend) -> Report {
    let adapter = gpu.describe();
    let mut checks = Checks {
        gpu,
        outcomes: Vec::new(),
        started: Instant::now(),
    };
    checks.counting();
    // Rows short (one lane each) and long (shared by lanes).
    for (case, alphabet, words) in [("27 columns", 27, 2000), ("600 columns", 600, 1200)] {
        let ex = random_examples(2, alphabet, words, 1);
        checks.count_model(case, &ex);
        let weights = crate::rng::standard_normal(ex.num_rows * ex.num_cols, 3);
        checks.neural_forward(case, &ex, &weights);
        checks.neural_backward(case, &ex, &weights, alphabet);
    }
    checks.adamw();
    for run in &WHOLE_RUNS {
        checks.whole_run(run);
    }
    Report {
        adapter,
        outcomes: checks.outcomes,
    }
}

/// The comparisons made so far on one adapter.
struct Checks<'g> {
    gpu: &'g mut GpuBackend,
    outcomes: Vec<Outcome>,
    /// When the last comparison ended: each one's time runs from there, preparing its data
    /// included.
    started: Instant,
}

impl Checks<'_> {
    /// Runs `compare` (GPU and CPU, giving the worst element over its tolerance) and
    /// records its outcome.
    fn compare(
        &mut self,
        kernel: &str,
        case: &str,
        tolerance: String,
        compare: impl FnOnce(&mut GpuBackend) -> anyhow::Result<f64>,
    ) {
        let (worst, error) = match compare(self.gpu) {
            Ok(worst) => (worst, None),
            Err(e) => (f64::INFINITY, Some(format!("{e:#}"))),
        };
        self.outcomes.push(Outcome {
            kernel: kernel.to_string(),
            case: case.to_string(),
            worst,
            tolerance,
            pass: worst <= 1.0 && error.is_none(),
            error,
            seconds: self.started.elapsed().as_secs_f64(),
        });
        self.started = Instant::now();
    }

    /// Counting: the workgroup-memory histogram (at most 4,096 cells) and the global one.
    fn counting(&mut self) {
        for (case, alphabet, k) in [("20 symbols, K=1", 20, 1), ("20 symbols, K=2", 20, 2)] {
            let ex = random_examples(1, alphabet, 20_000, k);
            let kernel = if ex.num_rows * ex.num_cols <= 4096 {
                "count_pairs_private"
            } else {
                "count_pairs"
            };
            self.compare(kernel, case, EXACT.describe(), |gpu| {
                let loaded = gpu.load(&ex)?;
                let got = gpu.count_pairs(&loaded)?;
                let want = CpuBackend.count_pairs(&ex)?;
                Ok(EXACT.worst(&as_f64(&got), &as_f64(&want)))
            });
        }
    }

    /// The count model: P = N / row sums, and its mean NLL over the examples and over the
    /// count table.
    fn count_model(&mut self, case: &str, ex: &Examples) {
        let cols = ex.num_cols;
        self.compare("normalize_rows", case, VALUES.describe(), |gpu| {
            let counts = CpuBackend.count_pairs(ex)?;
            let got = gpu.normalize_rows(&counts, cols, 1.0)?;
            let want = CpuBackend.normalize_rows(&counts, cols, 1.0)?;
            Ok(VALUES.worst(&as_f64(&got), &as_f64(&want)))
        });
        let kernel = "nll_gather, partial_sums, loss_total";
        self.compare(kernel, case, VALUES.describe(), |gpu| {
            let counts = CpuBackend.count_pairs(ex)?;
            let probs = CpuBackend.normalize_rows(&counts, cols, 1.0)?;
            let loaded = gpu.load(ex)?;
            let got = gpu.mean_nll(&probs, &loaded)?.mean();
            let want = CpuBackend.mean_nll(&probs, ex)?.mean();
            Ok(VALUES.worst(&[got], &[want]))
        });
        self.compare("count_nll, loss_total", case, VALUES.describe(), |gpu| {
            let counts = CpuBackend.count_pairs(ex)?;
            let probs = CpuBackend.normalize_rows(&counts, cols, 1.0)?;
            let table = crate::corpus::CountTable::new(counts, cols);
            let got = gpu.count_table_nll(&probs, &table)?.mean();
            let want = CpuBackend.count_table_nll(&probs, &table)?.mean();
            Ok(VALUES.worst(&[got], &[want]))
        });
    }

    /// The neural net's forward pass: softmax(W) and the loss, fused and explicit.
    fn neural_forward(&mut self, case: &str, ex: &Examples, weights: &[f32]) {
        let cols = ex.num_cols;
        self.compare("softmax_rows", case, VALUES.describe(), |gpu| {
            let got = gpu.softmax_rows(weights, cols)?;
            let want = CpuBackend.softmax_rows(weights, cols)?;
            Ok(VALUES.worst(&as_f64(&got), &as_f64(&want)))
        });
        for (kernel, loss) in [
            ("cross_entropy_forward", LossForm::Fused),
            ("cross_entropy_explicit", LossForm::Explicit),
        ] {
            let form = NetForm {
                loss,
                one_hot: false,
            };
            self.compare(kernel, case, VALUES.describe(), |gpu| {
                let loaded = gpu.load(ex)?;
                let got = gpu.forward_loss(weights, &loaded, form)?;
                let want = CpuBackend.forward_loss(weights, ex, form)?;
                Ok(VALUES.worst(&[got], &[want]))
            });
        }
    }

    /// The gradient of the loss, from the examples (row select or one-hot product) and
    /// from the counts.
    fn neural_backward(&mut self, case: &str, ex: &Examples, weights: &[f32], alphabet: usize) {
        // The one-hot product costs n x V^K x V: on the short rows only.
        let forms = [
            ("cross_entropy_backward, grad_rows", false),
            ("one_hot_matmul, one_hot_matmul_backward", true),
        ];
        for (kernel, one_hot) in forms.into_iter().filter(|&(_, o)| !o || alphabet <= 27) {
            let form = NetForm {
                loss: LossForm::Fused,
                one_hot,
            };
            self.compare(kernel, case, GRADIENTS.describe(), |gpu| {
                let loaded = gpu.load(ex)?;
                let (_, got) = gpu.loss_and_gradient(weights, &loaded, 0.01, form)?;
                let (_, want) = CpuBackend.loss_and_gradient(weights, ex, 0.01, form)?;
                Ok(GRADIENTS.worst(&as_f64(&got), &as_f64(&want)))
            });
        }
        self.compare("count_descent", case, GRADIENTS.describe(), |gpu| {
            let loaded = gpu.load(ex)?;
            let (loss, got) = gpu.count_loss_and_gradient(weights, &loaded, 0.01)?;
            let (want_loss, want) = CpuBackend.count_loss_and_gradient(weights, ex, 0.01)?;
            let worst = GRADIENTS.worst(&as_f64(&got), &as_f64(&want));
            Ok(worst.max(VALUES.worst(&[loss.total], &[want_loss.total])))
        });
    }

    /// Three AdamW steps from the same weights and gradient.
    fn adamw(&mut self) {
        let case = "5,000 weights, 3 steps";
        self.compare("adamw_step", case, VALUES.describe(), |gpu| {
            let n = 5000;
            let weights = crate::rng::standard_normal(n, 4);
            let grads = crate::rng::standard_normal(n, 5);
            let adamw = AdamW::default();
            let (mut w_gpu, mut w_cpu) = (weights.clone(), weights);
            let (mut s_gpu, mut s_cpu) = (AdamState::new(n), AdamState::new(n));
            for _ in 0..3 {
                gpu.adamw_step(&mut w_gpu, &grads, &mut s_gpu, 1e-2, &adamw)?;
                CpuBackend.adamw_step(&mut w_cpu, &grads, &mut s_cpu, 1e-2, &adamw)?;
            }
            Ok(VALUES.worst(&as_f64(&w_gpu), &as_f64(&w_cpu)))
        });
    }

    /// A whole run: every step's loss and the final weights.
    fn whole_run(&mut self, run: &WholeRun) {
        let lecture = TrainOptions {
            lr: 50.0,
            reg: 0.01,
        };
        let ex = random_examples(6, run.alphabet, 300, run.k);
        let initial = crate::rng::standard_normal(ex.num_rows * ex.num_cols, 7);
        let tolerance = format!("losses {}, W {}", VALUES.describe(), WEIGHTS.describe());
        self.compare(run.kernel, run.case, tolerance, |gpu| {
            let loaded = gpu.load(&ex)?;
            let (mut w_gpu, mut w_cpu) = (initial.clone(), initial.clone());
            let (got, want) = if run.counts {
                (
                    gpu.train_counts(&mut w_gpu, &loaded, &lecture, run.steps)?,
                    CpuBackend.train_counts(&mut w_cpu, &ex, &lecture, run.steps)?,
                )
            } else {
                let form = NetForm::default();
                (
                    gpu.train(&mut w_gpu, &loaded, &lecture, run.steps, form)?,
                    CpuBackend.train(&mut w_cpu, &ex, &lecture, run.steps, form)?,
                )
            };
            let got: Vec<f64> = got.iter().map(|l| l.total).collect();
            let want: Vec<f64> = want.iter().map(|l| l.total).collect();
            let losses = VALUES.worst(&got, &want);
            Ok(losses.max(WEIGHTS.worst(&as_f64(&w_gpu), &as_f64(&w_cpu))))
        });
    }
}

/// A whole training run compared step by step: the counts path or the per-example one.
struct WholeRun {
    kernel: &'static str,
    counts: bool,
    case: &'static str,
    alphabet: usize,
    k: usize,
    steps: usize,
}

/// Whole runs at each context length, long enough to cross a per-invocation limit of 65,535
/// loop iterations on the old kernel.
const WHOLE_RUNS: [WholeRun; 4] = [
    WholeRun {
        kernel: "count_descent run",
        counts: true,
        case: "27 symbols, K=1, 1,000 steps",
        alphabet: 27,
        k: 1,
        steps: 1000,
    },
    WholeRun {
        kernel: "count_descent run",
        counts: true,
        case: "27 symbols, K=2, 300 steps",
        alphabet: 27,
        k: 2,
        steps: 300,
    },
    WholeRun {
        kernel: "count_descent run",
        counts: true,
        case: "12 symbols, K=3, 100 steps",
        alphabet: 12,
        k: 3,
        steps: 100,
    },
    WholeRun {
        kernel: "per-example run, sgd_step",
        counts: false,
        case: "27 symbols, K=1, 150 steps",
        alphabet: 27,
        k: 1,
        steps: 150,
    },
];

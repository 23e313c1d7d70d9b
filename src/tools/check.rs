//! GPU against CPU: the one comparison `check`, `bench` and the tests share, the operations
//! they compare, and `makemore check`: every kernel once on random data shaped to reach each of
//! its code paths (short and long rows, small and large count tables), and whole runs at
//! contexts 1 to 3 long enough to cross the loop limits that once stopped a kernel early.

use std::time::Instant;

use anyhow::Result;
use serde_json::{json, Value};

use rand::{RngExt, SeedableRng};

use crate::adamw::AdamW;
use crate::backend::{Backend, LossForm, NetForm, TrainOptions};
use crate::corpus::{self, CountTable};
use crate::cpu::CpuBackend;
use crate::data::{Examples, Vocab};
use crate::gpu::kernels::FUSED_COLS;
use crate::gpu::GpuBackend;
use crate::rng::standard_normal as normal;

/// llm.c's tolerance: |got - want| <= atol + rtol * |want| for every element (f32 on the
/// device against f64 sums on the CPU); zero for both is exact equality.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    pub atol: f64,
    pub rtol: f64,
}

pub const EXACT: Tolerance = Tolerance::new(0.0, 0.0);
/// Values of one kernel: probabilities, logits, losses.
pub const VALUES: Tolerance = Tolerance::new(1e-6, 1e-5);
/// Gradients: sums of many terms of both signs.
pub const GRADIENTS: Tolerance = Tolerance::new(1e-6, 1e-4);
/// Weights after a whole run.
pub const WEIGHTS: Tolerance = Tolerance::new(2e-4, 2e-4);

impl Tolerance {
    pub const fn new(atol: f64, rtol: f64) -> Tolerance {
        Tolerance { atol, rtol }
    }

    /// The worst element: its index and |got - want| / (atol + rtol |want|), at most 1 where
    /// all agree; infinite for a NaN, an exact value missed, or (index 0) lengths that differ.
    pub fn worst_at<T: Copy + Into<f64>>(&self, got: &[T], want: &[T]) -> (usize, f64) {
        if got.len() != want.len() {
            return (0, f64::INFINITY);
        }
        let ratios = got.iter().zip(want).map(|(&g, &w)| {
            let (g, w): (f64, f64) = (g.into(), w.into());
            match (g - w).abs() {
                d if d.is_nan() => f64::INFINITY,
                0.0 => 0.0,
                d => d / (self.atol + self.rtol * w.abs()),
            }
        });
        ratios
            .enumerate()
            .fold((0, 0.0), |a, b| if b.1 > a.1 { b } else { a })
    }
}

impl std::fmt::Display for Tolerance {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match *self == EXACT {
            true => write!(f, "exact"),
            false => write!(f, "{:e} + {:e}*|cpu|", self.atol, self.rtol),
        }
    }
}

/// What an operation returns: each part with its tolerance.
pub type Output = Vec<(Tolerance, Vec<f64>)>;

/// The worst part of `got` against `want` over its tolerance, and that tolerance.
pub fn worst(got: &Output, want: &Output) -> (f64, Tolerance) {
    let parts = got.iter().zip(want);
    let parts = parts.map(|((t, g), (_, w))| (t.worst_at(g, w).1, *t));
    parts.fold((0.0, EXACT), |a, b| if b.0 > a.0 { b } else { a })
}

/// The lecture's full-batch settings.
pub const LECTURE: TrainOptions = TrainOptions {
    lr: 50.0,
    reg: 0.01,
};
/// The lecture's step: row select, fused loss; and the one-hot product with the explicit loss.
pub const FUSED: NetForm = NetForm {
    loss: LossForm::Fused,
    one_hot: false,
};
const ONE_HOT: NetForm = NetForm {
    one_hot: true,
    ..FUSED
};
pub const ONE_HOT_EXPLICIT: NetForm = NetForm {
    loss: LossForm::Explicit,
    ..ONE_HOT
};

/// One operation as `check`, `bench` and `bench --kernels` run it on a backend.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// count_pairs: the V^K x V counts N.
    Count,
    /// The streamed reader's counts of the words' text at context K, in blocks of 4 KiB
    /// (count_text where the blocks are clean).
    CountText(usize),
    /// normalize_rows: P = (N + 1) / row sums.
    Normalize,
    /// The count model's mean NLL under P: from the examples, or from the count table (true).
    Nll(bool),
    Softmax,
    /// The loss at W, forward only.
    Forward(LossForm),
    /// The gradient at W (reg 0.01): per example in a form, or from the counts (`None`).
    Gradient(Option<NetForm>),
    /// AdamW steps on W with the gradient `grads` from zero moments: (steps, lr).
    AdamW(usize, f32),
    /// The lecture's steps from W, per example in a form or from the counts: (form, steps).
    Train(Option<NetForm>, usize),
}

/// What the operations read besides the examples: N and P from the CPU, W and a gradient.
pub struct Tables {
    pub cols: usize,
    /// The words one a line (`random`'s sets; empty elsewhere).
    pub text: Vec<u8>,
    pub counts: Vec<u32>,
    pub probs: Vec<f32>,
    pub weights: Vec<f32>,
    pub grads: Vec<f32>,
}

impl Tables {
    /// The tables of `ex`, W and the gradient drawn with seeds `seed` and `seed + 1`.
    pub fn new(ex: &Examples, seed: u64) -> Tables {
        let (n, cols) = (ex.num_rows * ex.num_cols, ex.num_cols);
        let counts = crate::cpu::count_pairs(&ex.contexts, &ex.targets, ex.num_rows, cols);
        Tables {
            probs: crate::cpu::normalize_rows(&counts, cols, 1.0),
            weights: normal(n, seed),
            grads: normal(n, seed + 1),
            cols,
            text: Vec::new(),
            counts,
        }
    }
}

impl Op {
    /// Runs the operation on `b`: every call from the tools into a backend is here.
    pub fn run<B: Backend>(self, b: &mut B, ex: &B::Examples, t: &Tables) -> Result<Output> {
        fn f64s<T: Copy + Into<f64>>(v: &[T]) -> Vec<f64> {
            v.iter().map(|&x| x.into()).collect()
        }
        let (w, cols) = (&t.weights, t.cols);
        Ok(match self {
            Op::Count => vec![(EXACT, f64s(&b.count_pairs(ex)?))],
            Op::CountText(k) => {
                let (text, block) = (&t.text[..], 4096);
                let scan = corpus::scan_reader(text, "text", block)?;
                let mut pairs = corpus::PairEncoder::new(text, "text", &scan, k, block);
                let (rows, cols) = (pairs.num_rows(), scan.vocab.len());
                vec![(EXACT, f64s(&b.count_pair_batches(rows, cols, &mut pairs)?))]
            }
            Op::Normalize => vec![(VALUES, f64s(&b.normalize_rows(&t.counts, cols, 1.0)?))],
            Op::Nll(false) => vec![(VALUES, vec![b.mean_nll(&t.probs, ex)?.mean()])],
            Op::Nll(true) => {
                let table = CountTable::new(t.counts.clone(), cols);
                vec![(VALUES, vec![b.count_table_nll(&t.probs, &table)?.mean()])]
            }
            Op::Softmax => vec![(VALUES, f64s(&b.softmax_rows(w, cols)?))],
            Op::Forward(loss) => {
                let loss = b.forward_loss(w, ex, NetForm { loss, ..FUSED })?;
                vec![(VALUES, vec![loss])]
            }
            Op::Gradient(Some(form)) => {
                vec![(GRADIENTS, f64s(&b.loss_and_gradient(w, ex, 0.01, form)?.1))]
            }
            Op::Gradient(None) => {
                let (loss, grads) = b.count_loss_and_gradient(w, ex, 0.01)?;
                vec![(GRADIENTS, f64s(&grads)), (VALUES, vec![loss.total])]
            }
            Op::AdamW(steps, lr) => {
                let (mut w, grads) = (b.upload(w)?, b.upload(&t.grads)?);
                let (mut m, mut v) = (b.zeros(t.weights.len())?, b.zeros(t.weights.len())?);
                for step in 1..=steps as u32 {
                    let moments = (&mut m, &mut v);
                    b.adamw_update(&mut w, &grads, moments, step, lr, &AdamW::default())?;
                }
                vec![(VALUES, f64s(&b.read(&w)?))]
            }
            Op::Train(form, steps) => {
                let mut w = w.clone();
                let losses = match form {
                    Some(form) => b.train(&mut w, ex, &LECTURE, steps, form)?,
                    None => b.train_counts(&mut w, ex, &LECTURE, steps)?,
                };
                let losses = losses.iter().map(|l| l.total).collect();
                vec![(VALUES, losses), (WEIGHTS, f64s(&w))]
            }
        })
    }

    /// The kernels `check` names for the operation on `t`, and its tolerance as printed.
    fn describe(self, t: &Tables) -> (&'static str, String) {
        let runs = || format!("losses {VALUES}, W {WEIGHTS}");
        let (kernels, tolerance) = match self {
            Op::Count if t.counts.len() <= 4096 => ("count_pairs_private", EXACT),
            Op::Count => ("count_pairs", EXACT),
            Op::CountText(_) if t.counts.len() <= 4096 => ("count_text", EXACT),
            Op::CountText(_) => ("count_text_global", EXACT),
            Op::Normalize => ("normalize_rows", VALUES),
            Op::Nll(false) => ("nll_gather, partial_sums, loss_total", VALUES),
            Op::Nll(true) => ("count_nll, loss_total", VALUES),
            Op::Softmax => ("softmax_rows", VALUES),
            Op::Forward(LossForm::Fused) => ("cross_entropy_forward", VALUES),
            Op::Forward(LossForm::Explicit) => ("cross_entropy_explicit", VALUES),
            Op::Gradient(Some(f)) if f.one_hot => {
                ("one_hot_matmul, one_hot_matmul_backward", GRADIENTS)
            }
            Op::Gradient(Some(f)) if f.loss == LossForm::Fused && t.cols <= FUSED_COLS as usize => {
                ("cross_entropy_fused, grad_rows", GRADIENTS)
            }
            Op::Gradient(Some(_)) => ("cross_entropy_backward, grad_rows", GRADIENTS),
            Op::Gradient(None) => ("count_descent", GRADIENTS),
            Op::AdamW(..) => ("adamw_step", VALUES),
            Op::Train(Some(_), _) => return ("per-example run, sgd_step", runs()),
            Op::Train(None, _) => return ("count_descent run", runs()),
        };
        (kernels, tolerance.to_string())
    }
}

/// One comparison as JSON: kernels, case, adapter; the worst element over its tolerance (at most
/// 1 passes; null if infinite) or the error; the seconds since the previous one, data included.
pub fn outcome(kernels: [&str; 4], result: Result<f64>, seconds: f64) -> Value {
    let [kernel, case, adapter, tolerance] = kernels;
    let (worst, error) = match result {
        Ok(worst) => (worst, None),
        Err(e) => (f64::INFINITY, Some(format!("{e:#}"))),
    };
    json!({"kernel": kernel, "case": case, "adapter": adapter,
        "worst_over_tolerance": worst.is_finite().then_some(worst), "tolerance": tolerance,
        "pass": worst <= 1.0 && error.is_none(), "error": error, "seconds": seconds})
}

/// Examples of `count` random words of 1 to 10 symbols over an alphabet of `alphabet`
/// (letters, then Greek and CJK), with context `k`, and their tables (seed `w_seed`).
fn random(seed: u64, alphabet: usize, count: usize, k: usize, w_seed: u64) -> (Tables, Examples) {
    let symbols: Vec<char> = ('a'..='z').chain('α'..='ω').chain('一'..='鿿').collect();
    let symbols = &symbols[..alphabet];
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let word = |i: usize| -> String {
        let len = rng.random_range(1..=10);
        let rest = (1..len).map(|_| symbols[rng.random_range(0..alphabet)]);
        std::iter::once(symbols[i % alphabet]).chain(rest).collect()
    };
    let words: Vec<String> = (0..count).map(word).collect();
    let ex = Examples::encode(&words, &Vocab::from_words(&words), k);
    let ex = ex.expect("the vocabulary holds every word's symbols");
    let mut tables = Tables::new(&ex, w_seed);
    tables.text = words.join("\n").into_bytes();
    (tables, ex)
}

/// The operations on rows of W or P, each checked on short rows and long.
const ROW_OPS: [Op; 9] = [
    Op::Normalize,
    Op::Nll(false),
    Op::Nll(true),
    Op::Softmax,
    Op::Forward(LossForm::Fused),
    Op::Forward(LossForm::Explicit),
    Op::Gradient(Some(FUSED)),
    Op::Gradient(Some(ONE_HOT)),
    Op::Gradient(None),
];

/// Whole runs at each context length, long enough to cross a per-invocation limit of 65,535
/// loop iterations on the old kernel: alphabet, K, steps, form and the case as printed.
const RUNS: [(usize, usize, usize, Option<NetForm>, &str); 4] = [
    (27, 1, 1000, None, "27 symbols, K=1, 1,000 steps"),
    (27, 2, 300, None, "27 symbols, K=2, 300 steps"),
    (12, 3, 100, None, "12 symbols, K=3, 100 steps"),
    (27, 1, 150, Some(FUSED), "27 symbols, K=1, 150 steps"),
];

/// Runs every comparison on `gpu` (named `adapter`), in order, on random examples and W.
pub fn check_adapter(gpu: &mut GpuBackend, adapter: &str) -> Vec<Value> {
    let (mut outcomes, mut started) = (Vec::new(), Instant::now());
    let mut compare = |op: Op, case: &str, (t, ex): &(Tables, Examples)| {
        let result = gpu.load(ex).and_then(|loaded| {
            let got = op.run(gpu, &loaded, t)?;
            Ok(worst(&got, &op.run(&mut CpuBackend, ex, t)?).0)
        });
        let (kernel, tolerance) = op.describe(t);
        let seconds = started.elapsed().as_secs_f64();
        let row = outcome([kernel, case, adapter, &tolerance], result, seconds);
        outcomes.push(row);
        started = Instant::now();
    };
    // Counting: the workgroup-memory histogram (at most 4,096 cells) and the global one.
    for k in [1, 2] {
        let case = format!("20 symbols, K={k}");
        compare(Op::Count, &case, &random(1, 20, 20_000, k, 0));
    }
    // The streamed file's text on the device, both histograms.
    for k in [1, 3] {
        let case = format!("20 symbols, K={k}, text");
        compare(Op::CountText(k), &case, &random(1, 20, 20_000, k, 0));
    }
    // Rows short (one lane each) and long (shared by lanes). The one-hot product costs
    // n x V^K x V: on the short rows only.
    for (alphabet, words) in [(27, 2000), (600, 1200)] {
        let set = random(2, alphabet, words, 1, 3);
        for op in ROW_OPS {
            if alphabet <= 27 || !matches!(op, Op::Gradient(Some(f)) if f.one_hot) {
                compare(op, &format!("{alphabet} columns"), &set);
            }
        }
    }
    // AdamW reads no examples.
    let (mut t, ex) = random(2, 27, 10, 1, 0);
    (t.weights, t.grads) = (normal(5000, 4), normal(5000, 5));
    compare(Op::AdamW(3, 1e-2), "5,000 weights, 3 steps", &(t, ex));
    for (alphabet, k, steps, form, case) in RUNS {
        let set = random(6, alphabet, 300, k, 7);
        compare(Op::Train(form, steps), case, &set);
    }
    outcomes
}

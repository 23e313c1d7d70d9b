//! `bench --kernels`: the GPU time of every kernel, from timestamp queries, with the bytes it
//! moves and the arithmetic it does.
//!
//! Each operation (counting, one training step, ...) runs on the lecture's names once and is
//! compared with the CPU reference; only if they agree is it run again `reps` times with a
//! profile open (gpu/profile.rs), which times each dispatch between two timestamps written in
//! the compute pass. A kernel's time in a repetition is the sum over its dispatches in that
//! operation; the median over the repetitions is reported.
//!
//! Bytes are the compulsory traffic of one run of the kernel: every buffer element it must
//! read or write, counted once (4 bytes each), re-reads from caches not counted. With
//! n examples, a V^K x V table of E = V^K * V entries, g workgroups of the dispatch (64
//! threads each for the per-entry kernels), and P per-(segment, column) partial gradients
//! that grad_rows adds up (the threads of the backward kernel before it):
//!
//! ```text
//! kernel                    read                      written           operations
//! count_pairs               12 n (ctx, tgt, cell)     4 n               n atomic adds
//! count_pairs_private       8 n + 4 g E               4 g E             n + g E atomic adds
//! normalize_rows            4 E                       4 E               3 E
//! nll_gather                12 n (ctx, tgt, prob)     4 g               2 n (log, add)
//! cross_entropy_forward     8 n + 4 T                 4 n + 4 g         4 n V + 2 n
//! cross_entropy_explicit    8 n + 4 T                 4 n + 4 g         5 n V + 2 n
//! cross_entropy_backward    8 n + 4 T                 4 * 64 g          4 n V
//! grad_rows                 4 E + 4 P                 4 E               P + 3 E
//! one_hot_matmul            4 n + 4 E                 4 n V             2 n V R
//! one_hot_matmul_backward   4 n + 4 n V               4 * 64 g          2 n V R
//! partial_sums              at most 4 * 4096 g        4 g               4096 g
//! loss_total                (a few KiB: one workgroup, not reported)
//! sgd_step                  8 E                       4 E               2 E
//! adamw_step                16 E (W, grad, m, v)      12 E (W, m, v)    16 E
//! count_descent             8 E (N, W)                8 E (W, grad)     12 E (2 exp per entry)
//! softmax_rows              4 E                       4 E               5 E
//! ```
//!
//! T is the logits the step reads: E for the row select (W itself), n V for the one-hot
//! product's logits. The backward kernels write one value per thread (64 g, at most 63 more
//! than the segments or blocks times V). An exp, a log or a division counts as one
//! operation, like an add.

use std::time::Instant;

use crate::adamw::{AdamState, AdamW};
use crate::backend::{Backend, LossForm, NetForm, TrainOptions};
use crate::check::{as_f64, Tolerance, EXACT, VALUES, WEIGHTS};
use crate::cpu::CpuBackend;
use crate::data::{builtin_words, Examples, Vocab};
use crate::gpu::{GpuBackend, GpuExamples, Profile};

/// Threads per workgroup of the kernels with one thread per table entry (kernels.rs).
const ENTRY_THREADS: u64 = 64;

/// What one operation works on.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub examples: u64,
    pub rows: u64,
    pub cols: u64,
    /// The logits are the one-hot product's n x V matrix.
    pub one_hot: bool,
    /// Per-(segment, column) partial gradients that grad_rows adds up: the threads of the
    /// last backward kernel (one value per thread, so at most 63 too many).
    pub partials: u64,
}

/// The bytes a kernel moves and the operations it does in one dispatch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Traffic {
    pub read: u64,
    pub written: u64,
    pub operations: u64,
}

/// The traffic of one dispatch of `kernel` with `groups` workgroups (the table above), or
/// `None` for a kernel without a formula.
pub fn traffic(kernel: &str, s: &Shape, groups: u64) -> Option<Traffic> {
    let (n, v, r) = (s.examples, s.cols, s.rows);
    let e = r * v;
    let logits = if s.one_hot { n * v } else { e };
    let threads = ENTRY_THREADS * groups;
    let t = |read, written, operations| {
        Some(Traffic {
            read,
            written,
            operations,
        })
    };
    match kernel {
        "count_pairs" => t(12 * n, 4 * n, n),
        "count_pairs_private" => t(8 * n + 4 * groups * e, 4 * groups * e, n + groups * e),
        "normalize_rows" => t(4 * e, 4 * e, 3 * e),
        "nll_gather" => t(12 * n, 4 * groups, 2 * n),
        "cross_entropy_forward" => t(8 * n + 4 * logits, 4 * n + 4 * groups, 4 * n * v + 2 * n),
        "cross_entropy_explicit" => t(8 * n + 4 * logits, 4 * n + 4 * groups, 5 * n * v + 2 * n),
        "cross_entropy_backward" => t(8 * n + 4 * logits, 4 * threads, 4 * n * v),
        "grad_rows" => t(4 * e + 4 * s.partials, 4 * e, s.partials + 3 * e),
        "one_hot_matmul" => t(4 * n + 4 * e, 4 * n * v, 2 * n * v * r),
        "one_hot_matmul_backward" => t(4 * n + 4 * n * v, 4 * threads, 2 * n * v * r),
        "partial_sums" => t(4 * 4096 * groups, 4 * groups, 4096 * groups),
        "sgd_step" => t(8 * e, 4 * e, 2 * e),
        "adamw_step" => t(16 * e, 12 * e, 16 * e),
        "count_descent" => t(8 * e, 8 * e, 12 * e),
        "softmax_rows" => t(4 * e, 4 * e, 5 * e),
        _ => None,
    }
}

/// One kernel's figures within one operation.
#[derive(Clone, Debug)]
pub struct KernelRow {
    pub operation: &'static str,
    pub kernel: &'static str,
    /// Dispatches of the kernel in one run of the operation.
    pub dispatches: usize,
    /// Median over the repetitions of the kernel's summed GPU time, in seconds.
    pub seconds: f64,
    pub traffic: Option<Traffic>,
}

impl KernelRow {
    /// Bytes read and written per second.
    pub fn bytes_per_second(&self) -> Option<f64> {
        let t = self.traffic?;
        Some((t.read + t.written) as f64 / self.seconds)
    }

    /// Operations per second.
    pub fn operations_per_second(&self) -> Option<f64> {
        Some(self.traffic?.operations as f64 / self.seconds)
    }
}

/// An operation's wall time, where the adapter has no timestamps: submit, run and read back.
#[derive(Clone, Debug)]
pub struct OperationWall {
    pub operation: &'static str,
    /// The kernels it dispatches, in order, each once.
    pub kernels: Vec<&'static str>,
    pub seconds: f64,
}

/// What `bench --kernels` measured on one adapter.
#[derive(Clone, Debug, Default)]
pub struct KernelTimes {
    pub timestamps: bool,
    pub rows: Vec<KernelRow>,
    pub walls: Vec<OperationWall>,
}

/// The operations, in pipeline order: name, context length, and what they run.
pub const OPERATIONS: [(&str, &str); 10] = [
    (
        "count",
        "count_pairs of the bigram table (729 cells: the private histogram)",
    ),
    (
        "count_k2",
        "count_pairs of the trigram table (19,683 cells: global atomics)",
    ),
    ("normalize", "normalize_rows of the bigram counts"),
    ("nll", "nll_gather and its sums: the count model's mean NLL"),
    (
        "step_examples",
        "one per-example step (row select, fused loss)",
    ),
    (
        "step_one_hot_explicit",
        "one per-example step, --one-hot --loss explicit",
    ),
    (
        "step_counts",
        "one step from the bigram counts (one workgroup)",
    ),
    (
        "step_counts_k3",
        "one step from the context-3 counts (many workgroups)",
    ),
    ("softmax", "softmax_rows of W"),
    ("adamw", "one adamw_step on W"),
];

const LECTURE: TrainOptions = TrainOptions {
    lr: 50.0,
    reg: 0.01,
};

/// A GPU result against the CPU's, over its tolerance: the operation is not timed.
fn agree(operation: &str, worst: f64, tolerance: Tolerance) -> anyhow::Result<()> {
    anyhow::ensure!(
        worst <= 1.0,
        "{operation}: the GPU result differs from the CPU reference (worst element {worst:.3} times its tolerance {}); not timed",
        tolerance.describe()
    );
    Ok(())
}

/// Runs every operation on the built-in names on `gpu`: checked once against the CPU, then
/// profiled `reps` times (or timed on the host where the adapter has no timestamps).
pub fn run(gpu: &mut GpuBackend, reps: usize) -> anyhow::Result<KernelTimes> {
    let inputs = Inputs::new(gpu)?;
    let mut times = KernelTimes {
        timestamps: gpu.gpu().has_timestamps(),
        ..Default::default()
    };
    for (operation, _) in OPERATIONS {
        // The check, which is also the warm-up (and counts the pairs of the counts path).
        inputs.run_checked(gpu, operation)?;
        let (profiles, walls) = profile(gpu, reps, |gpu| inputs.run_checked(gpu, operation))?;
        let kernels = kernel_order(&profiles[0]);
        if !times.timestamps {
            times.walls.push(OperationWall {
                operation,
                kernels,
                seconds: median(walls),
            });
            continue;
        }
        let shape = inputs.shape(operation, &profiles[0]);
        for kernel in kernels {
            times
                .rows
                .push(kernel_row(operation, kernel, &shape, &profiles));
        }
    }
    Ok(times)
}

/// The context length K of an operation's examples, and whether its logits are the one-hot
/// product's.
fn context_and_one_hot(operation: &str) -> (usize, bool) {
    match operation {
        "count_k2" => (2, false),
        "step_counts_k3" => (3, false),
        "step_one_hot_explicit" => (1, true),
        _ => (1, false),
    }
}

/// What the operations work on: the built-in names at contexts 1 to 3, on the host and on
/// the device, and the tables and weights they start from.
struct Inputs {
    /// The vocabulary's size V.
    v: usize,
    encoded: Vec<Examples>,
    loaded: Vec<GpuExamples>,
    /// The bigram counts N, and P: each row of N + 1 divided by its sum; from the CPU.
    counts: Vec<u32>,
    probs: Vec<f32>,
    /// Random weights of the bigram and context-3 nets, and a random gradient of the first.
    w1: Vec<f32>,
    w3: Vec<f32>,
    grads1: Vec<f32>,
    adamw: AdamW,
}

impl Inputs {
    fn new(gpu: &mut GpuBackend) -> anyhow::Result<Self> {
        let words = builtin_words();
        let vocab = Vocab::from_words(&words);
        let v = vocab.len();
        let encoded: Vec<Examples> = (1..=3)
            .map(|k| Examples::encode(&words, &vocab, k))
            .collect::<Result<_, _>>()?;
        let ex1 = &encoded[0];
        let loaded: Vec<_> = encoded
            .iter()
            .map(|e| gpu.load(e))
            .collect::<Result<_, _>>()?;
        let counts = crate::cpu::count_pairs(&ex1.contexts, &ex1.targets, ex1.num_rows, v);
        let probs = crate::cpu::normalize_rows(&counts, v, 1.0);
        let w1 = crate::rng::standard_normal(ex1.num_rows * v, 1);
        let w3 = crate::rng::standard_normal(encoded[2].num_rows * v, 1);
        let grads1 = crate::rng::standard_normal(ex1.num_rows * v, 2);
        Ok(Inputs {
            v,
            encoded,
            loaded,
            counts,
            probs,
            w1,
            w3,
            grads1,
            adamw: AdamW::default(),
        })
    }

    /// Runs `operation` once on `gpu` and compares its result with the CPU reference.
    fn run_checked(&self, gpu: &mut GpuBackend, operation: &str) -> anyhow::Result<()> {
        let (k, one_hot) = context_and_one_hot(operation);
        let (ex, on_device) = (&self.encoded[k - 1], &self.loaded[k - 1]);
        let v = self.v;
        match operation {
            "count" | "count_k2" => {
                let got = gpu.count_pairs(on_device)?;
                let want = CpuBackend.count_pairs(ex)?;
                agree(operation, EXACT.worst(&as_f64(&got), &as_f64(&want)), EXACT)
            }
            "normalize" => {
                let got = gpu.normalize_rows(&self.counts, v, 1.0)?;
                let worst = VALUES.worst(&as_f64(&got), &as_f64(&self.probs));
                agree(operation, worst, VALUES)
            }
            "nll" => {
                let got = gpu.mean_nll(&self.probs, on_device)?.mean();
                let want = CpuBackend.mean_nll(&self.probs, ex)?.mean();
                agree(operation, VALUES.worst(&[got], &[want]), VALUES)
            }
            "step_examples" | "step_one_hot_explicit" => {
                let form = if one_hot {
                    NetForm {
                        loss: LossForm::Explicit,
                        one_hot: true,
                    }
                } else {
                    NetForm::default()
                };
                let (mut got, mut want) = (self.w1.clone(), self.w1.clone());
                let gl = gpu.train(&mut got, on_device, &LECTURE, 1, form)?;
                let cl = CpuBackend.train(&mut want, ex, &LECTURE, 1, form)?;
                agree_step(operation, (gl[0].total, cl[0].total), &got, &want)
            }
            "step_counts" | "step_counts_k3" => {
                let start = if k == 3 { &self.w3 } else { &self.w1 };
                let (mut got, mut want) = (start.clone(), start.clone());
                let gl = gpu.train_counts(&mut got, on_device, &LECTURE, 1)?;
                let cl = CpuBackend.train_counts(&mut want, ex, &LECTURE, 1)?;
                agree_step(operation, (gl[0].total, cl[0].total), &got, &want)
            }
            "softmax" => {
                let got = gpu.softmax_rows(&self.w1, v)?;
                let want = crate::cpu::softmax_rows(&self.w1, v);
                let worst = VALUES.worst(&as_f64(&got), &as_f64(&want));
                agree(operation, worst, VALUES)
            }
            "adamw" => {
                let (mut got, mut want) = (self.w1.clone(), self.w1.clone());
                let mut gs = AdamState::new(self.w1.len());
                let mut cs = AdamState::new(self.w1.len());
                gpu.adamw_step(&mut got, &self.grads1, &mut gs, 1e-3, &self.adamw)?;
                crate::cpu::adamw_step(&mut want, &self.grads1, &mut cs, 1e-3, &self.adamw);
                let worst = WEIGHTS.worst(&as_f64(&got), &as_f64(&want));
                agree(operation, worst, WEIGHTS)
            }
            other => anyhow::bail!("no operation {other}"),
        }
    }

    /// The shape of `operation` for the traffic formulas; the partial gradients are the
    /// threads of the last backward dispatch in its profile (none without one).
    fn shape(&self, operation: &str, profile: &Profile) -> Shape {
        let (k, one_hot) = context_and_one_hot(operation);
        let ex = &self.encoded[k - 1];
        let backward_threads = profile
            .dispatches
            .iter()
            .rev()
            .find(|d| d.kernel.ends_with("_backward"))
            .map(|d| d.workgroups as u64 * ENTRY_THREADS)
            .unwrap_or(0);
        Shape {
            examples: ex.len() as u64,
            rows: ex.num_rows as u64,
            cols: self.v as u64,
            one_hot,
            partials: backward_threads,
        }
    }
}

/// One training step on the GPU against the CPU's: the loss before it, then the weights
/// after it.
fn agree_step(
    operation: &str,
    (gpu_loss, cpu_loss): (f64, f64),
    got: &[f32],
    want: &[f32],
) -> anyhow::Result<()> {
    agree(operation, VALUES.worst(&[gpu_loss], &[cpu_loss]), VALUES)?;
    agree(
        operation,
        WEIGHTS.worst(&as_f64(got), &as_f64(want)),
        WEIGHTS,
    )
}

/// Runs an operation `reps` times (at least once), each with a profile open: the profiles,
/// and the wall times from submit to read-back.
fn profile(
    gpu: &mut GpuBackend,
    reps: usize,
    run_once: impl Fn(&mut GpuBackend) -> anyhow::Result<()>,
) -> anyhow::Result<(Vec<Profile>, Vec<f64>)> {
    let mut profiles: Vec<Profile> = Vec::new();
    let mut walls = Vec::new();
    for _ in 0..reps.max(1) {
        gpu.gpu().start_profile();
        let start = Instant::now();
        run_once(gpu)?;
        walls.push(start.elapsed().as_secs_f64());
        profiles.push(gpu.gpu().finish_profile()?);
    }
    Ok((profiles, walls))
}

/// One kernel's row of an operation: its dispatches and their traffic in the first profile,
/// and the median over the profiles of its summed GPU time.
fn kernel_row(
    operation: &'static str,
    kernel: &'static str,
    shape: &Shape,
    profiles: &[Profile],
) -> KernelRow {
    let of_kernel = |p: &Profile| -> Vec<(f64, u64)> {
        p.dispatches
            .iter()
            .filter(|d| d.kernel == kernel)
            .map(|d| (d.seconds, d.workgroups as u64))
            .collect()
    };
    let first = of_kernel(&profiles[0]);
    let traffic = summed_traffic(kernel, shape, first.iter().map(|&(_, groups)| groups));
    let seconds = median(
        profiles
            .iter()
            .map(|p| of_kernel(p).iter().map(|d| d.0).sum())
            .collect(),
    );
    KernelRow {
        operation,
        kernel,
        dispatches: first.len(),
        seconds,
        traffic,
    }
}

/// The traffic of a kernel's dispatches (their workgroup counts) added up: `None` for a
/// kernel without a formula, or one not dispatched.
fn summed_traffic(
    kernel: &str,
    shape: &Shape,
    dispatch_groups: impl Iterator<Item = u64>,
) -> Option<Traffic> {
    dispatch_groups
        .map(|groups| traffic(kernel, shape, groups))
        .try_fold(None::<Traffic>, |sum, t| {
            let t = t?;
            Some(Some(match sum {
                None => t,
                Some(s) => Traffic {
                    read: s.read + t.read,
                    written: s.written + t.written,
                    operations: s.operations + t.operations,
                },
            }))
        })
        .flatten()
}

/// The kernels of a profile, each once, in the order they first ran.
fn kernel_order(profile: &Profile) -> Vec<&'static str> {
    let mut kernels = Vec::new();
    for d in &profile.dispatches {
        if !kernels.contains(&d.kernel) {
            kernels.push(d.kernel);
        }
    }
    kernels
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_with_a_formula_moves_bytes() {
        let s = Shape {
            examples: 1000,
            rows: 27,
            cols: 27,
            one_hot: false,
            partials: 27 * 27 * 4,
        };
        for kernel in [
            "count_pairs",
            "count_pairs_private",
            "normalize_rows",
            "nll_gather",
            "cross_entropy_forward",
            "cross_entropy_explicit",
            "cross_entropy_backward",
            "grad_rows",
            "one_hot_matmul",
            "one_hot_matmul_backward",
            "partial_sums",
            "sgd_step",
            "adamw_step",
            "count_descent",
            "softmax_rows",
        ] {
            let t = traffic(kernel, &s, 2).unwrap();
            assert!(t.read > 0 && t.written > 0 && t.operations > 0, "{kernel}");
        }
        assert_eq!(traffic("loss_total", &s, 1), None);
        // sgd_step: W and its gradient read, W written.
        let sgd = traffic("sgd_step", &s, 12).unwrap();
        assert_eq!((sgd.read, sgd.written), (8 * 729, 4 * 729));
        // The one-hot step reads its n x V logits, not W.
        let one_hot = Shape { one_hot: true, ..s };
        let f = traffic("cross_entropy_forward", &one_hot, 4).unwrap();
        assert_eq!(f.read, 8 * 1000 + 4 * 1000 * 27);
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}

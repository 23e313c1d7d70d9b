//! `bench --kernels`: each kernel's GPU time from timestamp queries (gpu/profile.rs), summed
//! over its dispatches, median of the repetitions; the bytes it moves, the arithmetic it does,
//! and how close it comes to the adapter's ceilings (`bench --ceilings`, same run).
//!
//! Bytes are the compulsory traffic of one dispatch, each element once, 4 bytes each (formulas
//! and reasons in BENCHMARKS.md): n examples; a V^K x V table of E = R V entries; g workgroups
//! (64 threads each for the per-entry kernels); T the logits read (E for the row select, n V for
//! the one-hot product); P the partial gradients grad_rows adds up (one per thread of the
//! backward kernel before it). An exp, a log or a division counts as one operation; exps are
//! the exps and logs the math needs, each computed once.

use std::time::Instant;

use anyhow::Result;
use serde_json::{json, Value};

use crate::backend::Backend;
use crate::cpu::CpuBackend;
use crate::data::{builtin_words, Examples, Vocab};
use crate::gpu::{GpuBackend, KernelTime};
use crate::tools::bench::median;
use crate::tools::check::{worst, Op, Tables, FUSED, ONE_HOT_EXPLICIT};

/// Threads per workgroup of the kernels with one thread per table entry (kernels.rs).
const ENTRY_THREADS: u64 = 64;
const FUSED_KERNEL: &str = "cross_entropy_fused";

/// What one operation works on.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub examples: u64,
    pub rows: u64,
    pub cols: u64,
    /// The logits are the one-hot product's n x V matrix.
    pub one_hot: bool,
    /// The partial gradients grad_rows adds up.
    pub partials: u64,
}

/// The traffic of one dispatch of `kernel` with `groups` workgroups: bytes read, bytes written,
/// operations, and exps (an exp or a log, each the math needs computed once; also counted in
/// operations); `None` for a kernel without a formula (loss_total: a few KiB, one workgroup).
pub fn traffic(kernel: &str, s: &Shape, groups: u64) -> Option<[u64; 4]> {
    let (n, v, r, p) = (s.examples, s.cols, s.rows, s.partials);
    let e = r * v;
    let t = if s.one_hot { n * v } else { e };
    let (g, nv) = (groups, n * v);
    let threads = ENTRY_THREADS * g;
    Some(match kernel {
        // (context, target, cell) read, the cell written, one atomic add per example.
        "count_pairs" => [12 * n, 4 * n, n, 0],
        "count_pairs_private" => [8 * n + 4 * g * e, 4 * g * e, n + g * e, 0],
        "normalize_rows" => [4 * e, 4 * e, 3 * e, 0],
        "nll_gather" => [12 * n, 4 * g, 2 * n, n],
        "count_nll" => [8 * e, 4 * g, 3 * e, e],
        "cross_entropy_forward" => [8 * n + 4 * t, 4 * n + 4 * g, 4 * nv + 2 * n, nv + n],
        "cross_entropy_explicit" => [8 * n + 4 * t, 4 * n + 4 * g, 5 * nv + 2 * n, nv + 2 * n],
        // The backward kernels write one value per thread.
        "cross_entropy_backward" => [8 * n + 4 * t, 4 * threads, 4 * nv, nv],
        // A thread per segment (at most `threads`): its row read once, its sums written.
        "cross_entropy_fused" => [
            8 * n + 4 * threads * (v + 2),
            4 * threads * (v + 1),
            5 * nv + 4 * n + 2 * threads * v,
            nv + n,
        ],
        "grad_rows" => [4 * e + 4 * p, 4 * e, p + 3 * e, 0],
        "one_hot_matmul" => [4 * n + 4 * e, 4 * nv, 2 * nv * r, 0],
        "one_hot_matmul_backward" => [4 * n + 4 * nv, 4 * threads, 2 * nv * r, 0],
        "partial_sums" => [4 * 8192 * g, 4 * g, 8192 * g, 0],
        "sgd_step" => [8 * e, 4 * e, 2 * e, 0],
        // W, grad, m, v read; W, m, v written.
        "adamw_step" => [16 * e, 12 * e, 16 * e, 0],
        // N and W read once, W and the gradient written, and each thread's (nll, W^2) step
        // sums written and read back (8 bytes, 64 threads a group); an exp an entry, a log a row.
        "count_descent" => [8 * e + 512 * g, 8 * e + 520 * g, 11 * e, e + r],
        // Rows over 32 columns, shared by lanes: W read thrice and exp twice in the kernel.
        "count_descent_wide" => [8 * e, 8 * e + 8 * g, 12 * e, e + r],
        "softmax_rows" => [4 * e, 4 * e, 5 * e, e],
        _ => return None,
    })
}

/// The adapter's ceilings a kernel is held to, from `bench --ceilings`: the vec4 copy's
/// bandwidth (the best this adapter moves memory), the time of an exp with its operands in
/// registers, and the cost of a dispatch in a pass.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ceiling {
    pub gb_per_s: f64,
    pub ns_per_exp: f64,
    pub us_per_dispatch: f64,
}

impl Ceiling {
    /// The figures from `ceilings::run`'s rows; fails where one is missing, zero or not finite.
    pub fn from_rows(rows: &[Value]) -> Result<Self> {
        let figure = |name: &str| {
            let row = rows.iter().find(|r| r["measurement"] == name);
            let value = row.and_then(|r| r["value"].as_f64());
            match value.filter(|x| x.is_finite() && *x > 0.0) {
                Some(x) => Ok(x),
                None => anyhow::bail!("the ceiling {name} was not measured (got {value:?})"),
            }
        };
        Ok(Self {
            gb_per_s: figure("copy_vec4")?,
            ns_per_exp: figure("exp")?,
            us_per_dispatch: figure("dispatch")?,
        })
    }

    /// The least time of `dispatches` dispatches that move `bytes` and compute `exps`, in
    /// seconds, and what bounds it: max(bytes / bandwidth, exps x exp time) + dispatches x
    /// dispatch cost. Memory and exps can overlap (load units and ALUs work at once), so the
    /// larger one bounds; a dispatch's launch precedes its work and overlaps neither.
    pub fn model(&self, bytes: u64, exps: u64, dispatches: usize) -> (f64, &'static str) {
        let terms = [
            (bytes as f64 / (self.gb_per_s * 1e9), "memory"),
            (exps as f64 * self.ns_per_exp * 1e-9, "exp"),
            (dispatches as f64 * self.us_per_dispatch * 1e-6, "dispatch"),
        ];
        let bound = terms
            .iter()
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map_or("", |t| t.1);
        (terms[0].0.max(terms[1].0) + terms[2].0, bound)
    }

    pub fn json(&self) -> Value {
        json!({"gb_per_s": self.gb_per_s, "ns_per_exp": self.ns_per_exp,
            "us_per_dispatch": self.us_per_dispatch})
    }
}

/// The operations, in pipeline order: name, context K, operation. `count` fills the bigram
/// table's 729 cells in workgroup memory, `count_k2` the trigram's 19,683 with global atomics;
/// `step_counts` is one workgroup, `step_counts_k3` many.
const OPERATIONS: [(&str, usize, Op); 10] = [
    ("count", 1, Op::Count),
    ("count_k2", 2, Op::Count),
    ("normalize", 1, Op::Normalize),
    ("nll", 1, Op::Nll(false)),
    ("step_examples", 1, Op::Train(Some(FUSED), 1)),
    (
        "step_one_hot_explicit",
        1,
        Op::Train(Some(ONE_HOT_EXPLICIT), 1),
    ),
    ("step_counts", 1, Op::Train(None, 1)),
    ("step_counts_k3", 3, Op::Train(None, 1)),
    ("softmax", 1, Op::Softmax),
    ("adamw", 1, Op::AdamW(1, 1e-3)),
];

/// Every operation on the built-in names on `gpu`, checked once against the CPU, then profiled
/// `reps` times: rows per kernel where the adapter has timestamps (with the fraction of
/// `ceiling` and of `peak` GB/s), else per operation (wall time).
pub fn run(
    gpu: &mut GpuBackend,
    reps: usize,
    ceiling: &Ceiling,
    peak: Option<f64>,
) -> Result<Vec<Value>> {
    let words = builtin_words();
    let vocab = Vocab::from_words(&words);
    let mut sets = Vec::new();
    for k in 1..=3 {
        let ex = Examples::encode(&words, &vocab, k)?;
        sets.push((gpu.load(&ex)?, Tables::new(&ex, 1), ex));
    }
    let mut rows = Vec::new();
    for (operation, k, op) in OPERATIONS {
        let (loaded, t, ex) = &sets[k - 1];
        let got = op.run(gpu, loaded, t)?;
        let (worst, tolerance) = worst(&got, &op.run(&mut CpuBackend, ex, t)?);
        anyhow::ensure!(
            worst <= 1.0,
            "{operation}: the GPU result differs from the CPU reference (worst element {worst:.3} times its tolerance {tolerance}); not timed"
        );
        let (mut profiles, mut seconds) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            gpu.gpu.start_profile();
            let start = Instant::now();
            op.run(gpu, loaded, t)?;
            seconds.push(start.elapsed().as_secs_f64());
            profiles.push(gpu.gpu.finish_profile()?);
        }
        // The kernels in the order of their first dispatch.
        let mut kernels: Vec<&str> = profiles[0].iter().map(|d| d.kernel).collect();
        let mut seen = std::collections::HashSet::new();
        kernels.retain(|k| seen.insert(*k));
        if !gpu.gpu.has_timestamps() {
            let wall_ms = 1e3 * median(seconds);
            rows.push(json!({"operation": operation, "kernels": kernels, "wall_ms": wall_ms}));
            continue;
        }
        // The partial gradients: a value per thread of the last backward dispatch, V per
        // thread (segment) of the fused one.
        let mut dispatches = profiles[0].iter().rev();
        let backward =
            dispatches.find(|d| d.kernel.ends_with("_backward") || d.kernel == FUSED_KERNEL);
        let shape = Shape {
            examples: ex.len() as u64,
            rows: ex.num_rows as u64,
            cols: ex.num_cols as u64,
            one_hot: matches!(op, Op::Train(Some(f), _) if f.one_hot),
            partials: backward.map_or(0, |d| {
                let per_thread = if d.kernel == FUSED_KERNEL {
                    ex.num_cols
                } else {
                    1
                };
                d.workgroups as u64 * ENTRY_THREADS * per_thread as u64
            }),
        };
        for kernel in kernels {
            rows.push(kernel_row(
                operation, kernel, &profiles, &shape, ceiling, peak,
            ));
        }
    }
    Ok(rows)
}

/// A kernel's row: its dispatches and their traffic in the first profile, the median over the
/// profiles of its summed GPU time, the throughput, and the fractions of the ceiling and peak.
fn kernel_row(
    operation: &str,
    kernel: &str,
    profiles: &[Vec<KernelTime>],
    shape: &Shape,
    ceiling: &Ceiling,
    peak: Option<f64>,
) -> Value {
    let ran = |d: &&KernelTime| d.kernel == kernel;
    let first: Vec<_> = profiles[0].iter().filter(ran).collect();
    // Summed over the dispatches: none where the kernel has no formula.
    let traffic = first.iter().try_fold([0; 4], |sum, d| {
        let t = traffic(kernel, shape, d.workgroups as u64)?;
        Some(std::array::from_fn(|i| sum[i] + t[i]))
    });
    let time = |p: &Vec<KernelTime>| p.iter().filter(ran).map(|d| d.seconds).sum::<f64>();
    let seconds = median(profiles.iter().map(time).collect());
    let gbps = traffic.map(|t| (t[0] + t[1]) as f64 / seconds / 1e9);
    let model = traffic.map(|t| ceiling.model(t[0] + t[1], t[3], first.len()));
    json!({"operation": operation, "kernel": kernel, "dispatches": first.len(),
        "gpu_ms": 1e3 * seconds, "bytes_read": traffic.map(|t| t[0]),
        "bytes_written": traffic.map(|t| t[1]), "operations": traffic.map(|t| t[2]),
        "exps": traffic.map(|t| t[3]), "gb_per_s": gbps,
        "gop_per_s": traffic.map(|t| t[2] as f64 / seconds / 1e9),
        "model_ms": model.map(|m| 1e3 * m.0), "bound": model.map(|m| m.1),
        "fraction_of_ceiling": model.map(|m| m.0 / seconds),
        "fraction_of_peak": peak.and_then(|p| gbps.map(|g| g / p))})
}

//! `bench --ceilings`: what the adapter itself can do, each figure from a kernel whose result is
//! checked before it is timed: copy bandwidth (vec4 and scalar), the exp rate with the operands
//! in registers, the cost of a load, of a reduction (one value per thread and a 256-wide barrier
//! tree, or 64 values per thread first), of a dispatch and of a submission.
//!
//! Kernels are timed with timestamp queries where the adapter has them (gpu/profile.rs), else
//! by wall time from submit to idle; dispatches and submissions always by wall time.

use std::time::Instant;

use anyhow::Result;
use serde_json::{json, Value};

use crate::gpu::kernels::{kernel, uniform, Dispatch};
use crate::gpu::Gpu;
use crate::tools::bench::median;

/// Floats copied, loaded and summed: 32 MiB, past most caches.
const N: u32 = 1 << 23;
/// Floats the one-per-thread tree sums: fewer, as it is ~10x slower per value on a CPU adapter.
const TREE_N: u32 = 1 << 20;
const THREADS: u32 = 256;
/// Values per thread of ceiling_load and ceiling_sum_coarse.
const PER_THREAD: u32 = 64;
/// ceiling_sum_coarse's forms: 64 values a thread with the tree (coarse) and without (load),
/// one value a thread with the tree (tree).
const COARSE: &[(&str, f64)] = &[("TREE", 1.0), ("PER_THREAD", PER_THREAD as f64)];
const LOAD: &[(&str, f64)] = &[("TREE", 0.0), ("PER_THREAD", PER_THREAD as f64)];
const TREE: &[(&str, f64)] = &[("TREE", 1.0), ("PER_THREAD", 1.0)];
const EXP_STEPS: u32 = 1024;
const EXP_GROUPS: u32 = 256;
/// Dispatches in the one pass timed for a dispatch's cost; submissions timed per repetition.
const DISPATCHES: u32 = 512;
const SUBMITS: usize = 16;

/// The sums' tolerance relative to the CPU's f64 sum: f32 rounding over a 256-wide tree of
/// 64-value sums stays far below it (the inputs, multiples of 1/256, even sum exactly).
pub const SUM_TOLERANCE: f64 = 1e-5;
/// The exp chains' tolerance relative to the host's f64 iteration (WGSL's exp: 3 + 2|x| ulp).
pub const EXP_TOLERANCE: f64 = 1e-4;

uniform!(Params(n: u32) pad 3);
uniform!(Tick(add: f32) pad 3);

/// Fails unless every |got - want| <= tolerance * max(|want|, 1) (NaN fails), naming the
/// first element off.
pub fn check(what: &str, got: &[f32], want: &[f64], tolerance: f64) -> Result<()> {
    let (g, w) = (got.len(), want.len());
    anyhow::ensure!(
        g == w,
        "{what}: {g} values where {w} were expected; not timed"
    );
    let within = |(&g, &w): (&f32, &f64)| (g as f64 - w).abs() <= tolerance * w.abs().max(1.0);
    match got.iter().zip(want).position(|p| !within(p)) {
        Some(i) => anyhow::bail!(
            "{what}: element {i} is {}, the CPU's is {} (relative tolerance {tolerance}); not timed",
            got[i],
            want[i]
        ),
        None => Ok(()),
    }
}

/// The input: i mod 251 / 256, exact in f32, as are its sums up to 2^16.
fn value(i: u32) -> f32 {
    (i % 251) as f32 / 256.0
}

/// The sum of each block of `block` values, in f64.
fn block_sums(values: &[f32], block: usize) -> Vec<f64> {
    let sum = |c: &[f32]| c.iter().map(|&x| x as f64).sum();
    values.chunks(block).map(sum).collect()
}

/// ceiling_exp's result for a thread that starts from `x0`: four chains x <- exp(-x) summed,
/// in f64.
fn exp_chains(x0: f32) -> f64 {
    let chain = |c: u32| {
        let x0 = x0 as f64 + c as f64 / 4.0;
        (0..EXP_STEPS).fold(x0, |x, _| (-x).exp())
    };
    (0..4).map(chain).sum()
}

struct Ceilings<'a> {
    gpu: &'a Gpu,
    reps: usize,
    /// "timestamps" or "wall", for the kernels.
    timing: &'static str,
    rows: Vec<Value>,
}

impl Ceilings<'_> {
    /// Waits for the device to go idle.
    fn wait(&self) -> Result<()> {
        self.gpu.device.poll(wgpu::PollType::wait_indefinitely())?;
        Ok(self.gpu.check()?)
    }

    /// Seconds from submitting `dispatches` (one pass) to the device's idle.
    fn wall(&self, dispatches: &[Dispatch]) -> Result<f64> {
        let start = Instant::now();
        self.gpu.submit(dispatches);
        self.wait()?;
        Ok(start.elapsed().as_secs_f64())
    }

    /// `d` run once on a zeroed `out`, its first values checked against `want`; then `reps`
    /// runs timed (GPU time from timestamps, or wall time): their median.
    fn kernel(&self, name: &str, d: &Dispatch, out: &wgpu::Buffer, want: &Want) -> Result<f64> {
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        encoder.clear_buffer(out, 0, None);
        self.gpu.flush();
        self.gpu.queue.submit([encoder.finish()]);
        self.gpu.submit(std::slice::from_ref(d));
        let got = self.gpu.read(out, want.0.len())?;
        check(name, &got, &want.0, want.1)?;
        let mut seconds = Vec::new();
        for _ in 0..self.reps {
            self.gpu.start_profile();
            let wall = self.wall(std::slice::from_ref(d))?;
            let profile = self.gpu.finish_profile()?;
            seconds.push(match self.timing == "timestamps" {
                true => profile.first().map_or(f64::NAN, |t| t.seconds),
                false => wall,
            });
        }
        Ok(median(seconds))
    }

    /// A row: the figure (name, value, unit), the items one run works on, its median seconds,
    /// how it was timed and checked.
    fn row(&mut self, figure: (&str, f64, &str), items: u64, s: f64, how: [&str; 2]) {
        let (name, value, unit) = figure;
        self.rows
            .push(json!({"measurement": name, "value": value, "unit": unit,
            "items": items, "median_ms": 1e3 * s, "reps": self.reps, "timing": how[0],
            "checked": how[1]}));
    }
}

/// A kernel's expected output (its first values), the relative tolerance and the check in words.
type Want = (Vec<f64>, f64, &'static str);

/// What the kernel `name` must write, from the input `values`.
fn expected(name: &str, values: &[f32]) -> Want {
    let exact = || values.iter().map(|&x| x as f64);
    let block = (THREADS * PER_THREAD) as usize;
    let sums = |sums| (sums, SUM_TOLERANCE, "sums = CPU f64");
    match name {
        "copy_vec4" | "copy_scalar" => (exact().collect(), 0.0, "equals its input"),
        // Thread t sums 64 values 256 apart, from its group's block + t mod 256.
        "load" => {
            let first = |t: usize| t / 256 * block + t % 256;
            let strided = |t| (0..64).map(|j| values[first(t) + 256 * j] as f64).sum();
            sums((0..values.len() / 64).map(strided).collect())
        }
        "sum_tree" => sums(block_sums(&values[..TREE_N as usize], 256)),
        "sum_coarse" => sums(block_sums(values, block)),
        // exp: thread t's result depends on t mod 256 only.
        _ => {
            let per_local: Vec<f64> = (0..THREADS)
                .map(|l| exp_chains(values[l as usize]))
                .collect();
            let chains = (0..EXP_GROUPS * THREADS).map(|t| per_local[(t % THREADS) as usize]);
            (chains.collect(), EXP_TOLERANCE, "host f64 exp chains")
        }
    }
}

/// How the kernel `name` runs: its parameter, workgroups and loop bound, then the items it works
/// on (bytes / 8 for GB/s) and the unit of its figure.
fn plan(name: &str) -> (u32, u32, u64, u64, &'static str) {
    let (n, block, steps) = (N as u64, N / THREADS / PER_THREAD, EXP_STEPS as u64);
    match name {
        "copy_vec4" => (N / 4, N / 4 / THREADS, 0, n, "GB/s"),
        "copy_scalar" => (N, N / THREADS, 0, n, "GB/s"),
        "load" => (N, block, 64, n, "ns/value"),
        "sum_tree" => (TREE_N, TREE_N / THREADS, 8, TREE_N as u64, "ns/value"),
        "sum_coarse" => (N, block, 72, n, "ns/value"),
        // Four chains per thread.
        _ => (
            EXP_STEPS,
            EXP_GROUPS,
            steps,
            4 * (EXP_GROUPS * THREADS) as u64 * steps,
            "ns/exp",
        ),
    }
}

/// Every measurement on `gpu`, each checked first, `reps` timed runs each: one row apiece.
pub fn run(gpu: &Gpu, reps: usize) -> Result<Vec<Value>> {
    let timing = ["wall", "timestamps"][usize::from(gpu.has_timestamps())];
    let mut c = Ceilings {
        gpu,
        reps: reps.max(1),
        timing,
        rows: Vec::new(),
    };
    let values: Vec<f32> = (0..N).map(value).collect();
    let input = gpu.upload("ceiling values", &values);
    let out = gpu.zeroed("ceiling out", N as usize);
    let kernels = [
        ("copy_vec4", kernel!(gpu, "ceiling_copy_vec4")),
        ("copy_scalar", kernel!(gpu, "ceiling_copy")),
        (
            "load",
            kernel!(gpu, "ceiling_load", "ceiling_sum_coarse", LOAD, "reduce"),
        ),
        (
            "sum_tree",
            kernel!(
                gpu,
                "ceiling_sum_tree",
                "ceiling_sum_coarse",
                TREE,
                "reduce"
            ),
        ),
        (
            "sum_coarse",
            kernel!(
                gpu,
                "ceiling_sum_coarse",
                "ceiling_sum_coarse",
                COARSE,
                "reduce"
            ),
        ),
        ("exp", kernel!(gpu, "ceiling_exp")),
    ];
    for (name, k) in kernels {
        let (param, groups, bound, items, unit) = plan(name);
        let d = Dispatch::new(gpu, k, Params::new(param), &[&input, &out], groups, bound)?;
        let want = expected(name, &values);
        let s = c.kernel(name, &d, &out, &want)?;
        // GB/s: each value read and written once, 8 bytes; else ns per item.
        let value = match unit == "GB/s" {
            true => 8.0 * items as f64 / s / 1e9,
            false => 1e9 * s / items as f64,
        };
        c.row((name, value, unit), items, s, [timing, want.2]);
    }
    dispatch_and_submit(&mut c)?;
    Ok(c.rows)
}

/// A dispatch: (one pass of DISPATCHES ticks - one tick's submission) / (DISPATCHES - 1), wall
/// times submit to idle; a submission: one tick submitted and waited for. The count checks that
/// every tick ran.
fn dispatch_and_submit(c: &mut Ceilings) -> Result<()> {
    let gpu = c.gpu;
    let count = gpu.zeroed("ceiling count", 1);
    let k = kernel!(gpu, "ceiling_tick");
    let tick = Dispatch::new(gpu, k, Tick::new(1.0), &[&count], 1, 0)?;
    let pass = vec![tick; DISPATCHES as usize];
    let one = &pass[..1];
    c.wall(&pass)?;
    c.wall(one)?;
    let mut passes = Vec::new();
    let mut submits = Vec::new();
    for _ in 0..c.reps {
        passes.push(c.wall(&pass)?);
        for _ in 0..SUBMITS {
            submits.push(c.wall(one)?);
        }
    }
    let (pass_s, submit_s) = (median(passes), median(submits));
    let per_dispatch = (pass_s - submit_s) / (DISPATCHES - 1) as f64;
    let runs = ((c.reps + 1) * DISPATCHES as usize + 1 + c.reps * SUBMITS) as f64;
    check("dispatch and submit", &gpu.read(&count, 1)?, &[runs], 0.0)?;
    let d = DISPATCHES as u64;
    let how = ["wall", "count of runs"];
    let figure = ("dispatch", 1e6 * per_dispatch, "us/dispatch");
    c.row(figure, d, pass_s, how);
    c.row(("submit", 1e6 * submit_s, "us/submit"), 1, submit_s, how);
    Ok(())
}

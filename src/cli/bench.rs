//! `makemore bench`: every stage timed on the built-in names and on synthetic data, on the GPU
//! and on the CPU reference: a warm-up run, several repetitions, their median and spread. Each
//! timed call returns once its results are read back to the host, except `upload`, which is
//! followed by a wait for the device to go idle.

use std::time::Instant;

use serde_json::{json, Value};

use super::{say, thousands};
use makemore::data::{Examples, Vocab};
use makemore::sample::sample_symbols;
use makemore::tools::bench::{peak_memory_bytes, spread, stages, DataSet};
use makemore::tools::bench::{BACKEND_STAGES, OPT_IN_STAGE};
use makemore::tools::check::{worst, Tables};
use makemore::tools::kernel_times::Ceiling;
use makemore::{on_backend, Backend, Chosen, CpuBackend, DeviceChoice};

pub const EXAMPLE: &str = "Examples:
  makemore bench                                   # names and 10M pairs, GPU and CPU
  makemore bench --data names --device cpu --reps 20
  makemore bench --data 10m,100m --stages count,steps_counts_1000 --json
  makemore bench --data names --stages steps_counts_1000,steps_counts_1000_k3
  makemore bench --kernels --peak-gbps 3350       # per kernel: GPU time, % of its ceiling, % of 3350 GB/s
  makemore bench --ceilings                        # what the adapter can do: GB/s, ns per exp, ...

Stages: encode, upload, count, normalize, nll, step_examples, step_counts,
steps_counts_1000, sample; steps_counts_1000_k3 only when named.
Each GPU stage's first run is compared with the CPU reference: a stage whose result
differs is reported and not timed, and the command fails.

--kernels times each kernel on the GPU with timestamp queries, on the built-in names
(operations: count, count_k2, normalize, nll, step_examples, step_one_hot_explicit,
step_counts, step_counts_k3, softmax, adamw), each checked against the CPU first: GPU time,
bytes read and written (the compulsory traffic, formulas in BENCHMARKS.md), exps, GB/s, and
the fraction of the adapter's ceiling (measured first, as --ceilings does): model time =
max(bytes / copy GB/s, exps x ns per exp) + dispatches x dispatch cost, over the GPU time.
An adapter without timestamps gets each operation's wall time.

--ceilings measures the adapter itself, each result checked first: copy bandwidth (vec4 and
scalar), ns per exp (operands in registers), ns per load, a reduction with one value per
thread and a 256-wide tree vs 64 values per thread first, and the cost of a dispatch and of a
submission (wall time). The kernels are timed with timestamps where the adapter has them.";

#[derive(clap::Args)]
pub struct Args {
    /// Data sets, comma-separated: `names` (built in) or a number of random pairs (10m, 500k).
    #[arg(long, value_delimiter = ',', default_value = "names,10m", value_parser = DataSet::parse)]
    data: Vec<DataSet>,
    /// Devices, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "gpu,cpu")]
    device: Vec<DeviceChoice>,
    /// Stages to run, comma-separated [default: all but steps_counts_1000_k3].
    #[arg(long, value_delimiter = ',', value_parser = stage_name)]
    stages: Vec<String>,
    /// Timed repetitions per stage, after one warm-up run.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    reps: u32,
    /// Stop repeating a stage once its runs add up to this many seconds (after two runs).
    #[arg(long, default_value_t = 3.0, value_parser = super::positive)]
    budget: f32,
    /// Names drawn by the `sample` stage (into one buffer: at most 10,000,000).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    names: u64,
    /// One JSON object per timing instead of a table.
    #[arg(long)]
    json: bool,
    /// Time each kernel on the GPU with timestamp queries instead of the stages (--data,
    /// --stages, --budget and --names do not apply).
    #[arg(long)]
    kernels: bool,
    /// Measure what the adapter can do (bandwidth, exp rate, loads, reductions, dispatches and
    /// submissions) instead of the stages (only --reps and --json apply).
    #[arg(long, conflicts_with = "kernels")]
    ceilings: bool,
    /// With --kernels: the memory bandwidth to compare each kernel's GB/s with (a card's
    /// datasheet figure, in GB/s).
    #[arg(long, value_parser = super::positive, requires = "kernels")]
    peak_gbps: Option<f32>,
}

fn stage_name(s: &str) -> Result<String, String> {
    let all = stages();
    let known = all.contains(&s).then(|| s.to_string());
    known.ok_or_else(|| format!("unknown stage {s:?}; the stages are {}", all.join(", ")))
}

/// A text table's column: header, width (negative: left-aligned), cell from the row's JSON.
pub type Column = (&'static str, i32, fn(&Value) -> String);

/// A text table's line, cells one space apart (none at the end): the headers, or a row's.
pub fn line(columns: &[Column], row: Option<&Value>) -> String {
    let cells = columns.iter().map(|&(header, width, cell)| {
        let text = row.map_or(header.to_string(), cell);
        let w = width.unsigned_abs() as usize;
        match width < 0 {
            true => format!("{text:<w$}"),
            false => format!("{text:>w$}"),
        }
    });
    cells.collect::<Vec<_>>().join(" ").trim_end().to_string()
}

/// Prints a row: its JSON object, or its line of the table.
pub fn print(json: bool, columns: &[Column], row: &Value) {
    match json {
        true => say!("{row}"),
        false => say!("{}", line(columns, Some(row))),
    }
}

/// A cell: a string as it is, a number with `decimals`, a list comma-separated, or `-`.
pub fn cell(value: &Value, decimals: usize) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(x) => format!("{:.decimals$}", x.as_f64().unwrap_or(f64::NAN)),
        Value::Array(a) => {
            let cells: Vec<String> = a.iter().map(|x| cell(x, decimals)).collect();
            cells.join(", ")
        }
        _ => "-".to_string(),
    }
}

/// A whole number with thousands separators, or `-`.
fn grouped(value: &Value) -> String {
    value.as_f64().map_or("-".into(), |x| thousands(x as _))
}

const STAGE_COLUMNS: [Column; 8] = [
    ("stage", -18, |r| cell(&r["stage"], 0)),
    ("data", -11, |r| cell(&r["data"], 0)),
    ("device", -8, |r| cell(&r["device"], 0)),
    ("median ms", 11, |r| cell(&r["median_ms"], 3)),
    ("min ms", 11, |r| cell(&r["min_ms"], 3)),
    ("max ms", 11, |r| cell(&r["max_ms"], 3)),
    ("reps", 4, |r| cell(&r["reps"], 0)),
    ("per second", 14, |r| grouped(&r["items_per_second"])),
];

pub fn run(args: &Args) -> anyhow::Result<()> {
    if args.kernels {
        return run_kernels(args);
    }
    if args.ceilings {
        return run_ceilings(args);
    }
    let mut backends = Vec::new();
    for &flag in &args.device {
        let (backend, notice) = Chosen::open(flag)?;
        match notice {
            // Timing the CPU twice under the GPU's name would mislead: leave it out.
            Some(notice) => eprintln!("notice: {notice}; the GPU is left out of the benchmark"),
            None => backends.push(backend),
        }
    }
    if !args.json {
        for backend in &backends {
            say!("device   {}", on_backend!(backend, |b| b.describe()));
        }
        say!("\n{}", line(&STAGE_COLUMNS, None));
    }
    // Per data set the host stages once, the others on each backend; per context (1, and 3
    // when wanted) the CPU's tables, W from seed 1, and the examples.
    let mut refused = 0;
    for data in &args.data {
        let (label, words) = (data.label(), data.words());
        let host = [label.as_str(), "host", "host"];
        let vocab = Vocab::from_words(&words);
        let set = |k| Examples::encode(&words, &vocab, k).map(|ex| (Tables::new(&ex, 1), ex));
        let mut sets = vec![set(1)?];
        if args.wanted("encode") {
            let encode = || anyhow::Ok(Examples::encode(&words, &Vocab::from_words(&words), 1)?);
            encode()?;
            args.timing("encode", host, &args.repeat(encode)?, sets[0].1.len());
        }
        if args.wanted(OPT_IN_STAGE) {
            sets.push(set(3)?);
        }
        for backend in backends.iter_mut() {
            refused += on_backend!(backend, |b| run_backend(args, &label, b, &sets))?;
        }
        if args.wanted("sample") {
            let (probs, v, n) = (&sets[0].0.probs, sets[0].0.cols, args.names as usize);
            let draw = || anyhow::Ok(sample_symbols(probs, v, n, 7, &[]));
            draw()?;
            args.timing("sample", host, &args.repeat(draw)?, n);
        }
    }
    anyhow::ensure!(
        refused == 0,
        "{refused} GPU stages computed results that differ from the CPU reference and were not timed (`makemore check` compares every kernel)"
    );
    // Host memory only: what the GPU driver keeps in its own memory is not counted (with a
    // software adapter such as lavapipe, device memory is host memory and is counted).
    if let Some(bytes) = peak_memory_bytes() {
        let mib = bytes as f64 / (1024.0 * 1024.0);
        match args.json {
            true => say!("{}", json!({"peak_memory_mib": mib})),
            false => say!("\npeak memory of the process: {mib:.0} MiB"),
        }
    }
    Ok(())
}

impl Args {
    /// Whether `--stages` names `stage`, or is empty and `stage` is not opt-in.
    fn wanted(&self, stage: &str) -> bool {
        self.stages.iter().any(|s| s == stage) || (self.stages.is_empty() && stage != OPT_IN_STAGE)
    }

    /// The timed repetitions of `run` (after a warm-up the caller made): `--reps` of them,
    /// fewer once they add up to more than `--budget` seconds, but at least two.
    fn repeat<T>(&self, mut run: impl FnMut() -> anyhow::Result<T>) -> anyhow::Result<Vec<f64>> {
        let mut seconds = Vec::new();
        while seconds.len() < self.reps as usize {
            let start = Instant::now();
            run()?;
            seconds.push(start.elapsed().as_secs_f64());
            if seconds.len() >= 2 && seconds.iter().sum::<f64>() > f64::from(self.budget) {
                break;
            }
        }
        Ok(seconds)
    }

    /// Prints a stage's repetitions on a data set, device (`gpu`, `cpu` or `host`) and
    /// adapter, with the items it processes (pairs, cells, or names for `sample`).
    fn timing(&self, stage: &str, on: [&str; 3], seconds: &[f64], items: usize) {
        let (median, min, max) = spread(seconds);
        let row = json!({"stage": stage, "data": on[0], "device": on[1],
            "adapter": on[2], "median_ms": 1e3 * median, "min_ms": 1e3 * min,
            "max_ms": 1e3 * max, "reps": seconds.len(), "items": items,
            "items_per_second": items as f64 / median});
        print(self.json, &STAGE_COLUMNS, &row);
    }
}

/// The backend stages on one backend, each GPU stage's warm-up first compared with the CPU: how
/// many were refused. A backend that cannot hold the data set is left out, with the reason.
fn run_backend<B: Backend>(
    args: &Args,
    data: &str,
    b: &mut B,
    sets: &[(Tables, Examples)],
) -> anyhow::Result<usize> {
    let adapter = b.describe();
    let on = [data, B::KIND, &adapter];
    let examples = &sets[0].1;
    let mut upload = || b.load(examples).and_then(|_| b.synchronize());
    if let Err(e) = upload() {
        eprintln!("notice: {adapter} left out on {data}: {e}");
        return Ok(0);
    }
    if args.wanted("upload") {
        upload()?;
        args.timing("upload", on, &args.repeat(upload)?, examples.len());
    }
    let loaded = sets.iter().map(|(_, ex)| b.load(ex));
    let loaded = loaded.collect::<anyhow::Result<Vec<_>>>()?;
    b.synchronize()?;
    let mut refused = 0;
    for (stage, op, k) in BACKEND_STAGES.into_iter().filter(|s| args.wanted(s.0)) {
        let i = usize::from(k == 3);
        let (t, ex) = &sets[i];
        let got = op.run(b, &loaded[i], t)?;
        if B::KIND == "gpu" {
            let (worst, tolerance) = worst(&got, &op.run(&mut CpuBackend, ex, t)?);
            if worst > 1.0 {
                eprintln!("notice: {stage} on {adapter}: the result differs from the CPU reference (worst element {worst:.3} times its tolerance {tolerance}); not timed");
                refused += 1;
                continue;
            }
        }
        let seconds = args.repeat(|| op.run(b, &loaded[i], t))?;
        // normalize processes the cells of N, the others the pairs.
        let items = [ex.len(), t.counts.len()][usize::from(stage == "normalize")];
        args.timing(stage, on, &seconds, items);
    }
    Ok(refused)
}

const KERNEL_COLUMNS: [Column; 11] = [
    ("operation", -21, |r| cell(&r["operation"], 0)),
    ("kernel", -23, |r| cell(&r["kernel"], 0)),
    ("runs", 4, |r| cell(&r["dispatches"], 0)),
    ("GPU ms", 9, |r| cell(&r["gpu_ms"], 3)),
    ("bytes read", 11, |r| grouped(&r["bytes_read"])),
    ("written", 11, |r| grouped(&r["bytes_written"])),
    ("exps", 9, |r| grouped(&r["exps"])),
    ("GB/s", 6, |r| cell(&r["gb_per_s"], 3)),
    ("model ms", 9, |r| cell(&r["model_ms"], 3)),
    ("bound", -8, |r| cell(&r["bound"], 0)),
    ("ceiling", 7, |r| percent(&r["fraction_of_ceiling"])),
];

/// 100 x a fraction, with a percent sign, or `-`.
fn percent(value: &Value) -> String {
    value
        .as_f64()
        .map_or("-".into(), |f| format!("{:.1}%", 100.0 * f))
}

/// With `--peak-gbps`: 100 * fraction_of_peak.
const PEAK_COLUMN: Column = (" of peak", 0, |r| {
    let fraction = r["fraction_of_peak"].as_f64();
    fraction.map_or(String::new(), |f| format!(" {:>6.2}%", 100.0 * f))
});

/// Without timestamps: each operation's wall time and its kernels.
const WALL_COLUMNS: [Column; 3] = [
    ("operation", -22, |r| cell(&r["operation"], 0)),
    ("wall ms", 11, |r| cell(&r["wall_ms"], 3)),
    (" kernels", 0, |r| format!(" {}", cell(&r["kernels"], 0))),
];

/// `bench --kernels`: the adapter's ceilings measured first, then per kernel its GPU time,
/// traffic, throughput, model time and fraction of the ceiling (and of `--peak-gbps`); without
/// timestamps, each operation's wall time and its kernels.
fn run_kernels(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.device.contains(&DeviceChoice::Gpu),
        "--kernels times the GPU's kernels: use it with --device gpu (the default)"
    );
    let mut gpu = makemore::GpuBackend::new(makemore::gpu::open_gpu()?);
    let (adapter, timestamps) = (gpu.describe(), gpu.gpu.has_timestamps());
    let peak = args.peak_gbps.map(f64::from);
    let reps = args.reps as usize;
    let ceiling = Ceiling::from_rows(&makemore::tools::ceilings::run(&gpu.gpu, reps)?)?;
    if args.json {
        let head = json!({"adapter": adapter, "timestamps": timestamps, "peak_gbps": peak,
            "ceilings": ceiling.json()});
        say!("{head}");
    } else {
        say!("device   {adapter}");
        say!("{}", match timestamps {
            true => "timestamps: yes (TIMESTAMP_QUERY inside compute passes): GPU time per kernel",
            false => "timestamps: no (the adapter lacks TIMESTAMP_QUERY or TIMESTAMP_QUERY_INSIDE_PASSES): wall times per operation, submit to readback",
        });
        say!(
            "ceilings (bench --ceilings, this run): copy {:.3} GB/s, exp {:.3} ns, dispatch {:.1} us",
            ceiling.gb_per_s,
            ceiling.ns_per_exp,
            ceiling.us_per_dispatch
        );
        say!("model: max(bytes / GB/s, exps x ns/exp) + dispatches x dispatch; ceiling = model / GPU ms");
    }
    let rows = makemore::tools::kernel_times::run(&mut gpu, reps, &ceiling, peak)?;
    let mut columns = [&WALL_COLUMNS[..], &KERNEL_COLUMNS][usize::from(timestamps)].to_vec();
    columns.extend(peak.filter(|_| timestamps).map(|_| PEAK_COLUMN));
    if !args.json {
        say!("\n{}", line(&columns, None));
    }
    for row in rows {
        print(args.json, &columns, &row);
    }
    Ok(())
}

const CEILING_COLUMNS: [Column; 7] = [
    ("measurement", -12, |r| cell(&r["measurement"], 0)),
    ("value", 10, |r| cell(&r["value"], 3)),
    ("unit", -11, |r| cell(&r["unit"], 0)),
    ("items", 11, |r| grouped(&r["items"])),
    ("median ms", 10, |r| cell(&r["median_ms"], 3)),
    ("timing", -10, |r| cell(&r["timing"], 0)),
    ("checked", 0, |r| cell(&r["checked"], 0)),
];

/// `bench --ceilings`: the adapter's own figures, one row per measurement.
fn run_ceilings(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.device.contains(&DeviceChoice::Gpu),
        "--ceilings measures the GPU: use it with --device gpu (the default)"
    );
    let gpu = makemore::gpu::open_gpu()?;
    let (adapter, timestamps) = (gpu.describe(), gpu.has_timestamps());
    if !args.json {
        say!("device   {adapter}");
        say!(
            "kernels timed by {}; dispatches and submissions by wall time",
            match timestamps {
                true => "GPU timestamps",
                false => "wall time, submit to idle (the adapter has no timestamps inside passes)",
            }
        );
        say!("\n{}", line(&CEILING_COLUMNS, None));
    }
    for mut row in makemore::tools::ceilings::run(&gpu, args.reps as usize)? {
        row["adapter"] = adapter.clone().into();
        print(args.json, &CEILING_COLUMNS, &row);
    }
    Ok(())
}

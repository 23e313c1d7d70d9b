//! `makemore bench`: every stage timed on the built-in names and on synthetic data, on the GPU
//! and on the CPU reference.

use serde_json::json;

use super::{say, thousands};
use makemore::bench::{run_data_set, BenchConfig, DataSet, Timing, STAGES};
use makemore::kernel_times::{KernelRow, OperationWall};
use makemore::{on_backend, Backend, Chosen, DeviceChoice};

pub const EXAMPLE: &str = "Examples:
  makemore bench                                   # names and 10M pairs, GPU and CPU
  makemore bench --data names --device cpu --reps 20
  makemore bench --data 10m,100m --stages count,steps_counts_1000 --json
  makemore bench --data names --stages steps_counts_1000,steps_counts_1000_k3
  makemore bench --kernels --peak-gbps 3350       # each kernel's GPU time, GB/s, % of 3350

Stages: encode, upload, count, normalize, nll, step_examples, step_counts,
steps_counts_1000, sample; steps_counts_1000_k3 only when named.
Each GPU stage's first run is compared with the CPU reference: a stage whose result
differs is reported and not timed, and the command fails.

--kernels times each kernel on the GPU with timestamp queries, on the built-in names
(operations: count, count_k2, normalize, nll, step_examples, step_one_hot_explicit,
step_counts, step_counts_k3, softmax, adamw), each checked against the CPU first: GPU time,
bytes read and written (the compulsory traffic, formulas in BENCHMARKS.md), GB/s and
operations per second. An adapter without timestamps gets each operation's wall time.";

#[derive(clap::Args)]
pub struct Args {
    /// Data sets, comma-separated: `names` (built in) or a number of random pairs (10m, 500k).
    #[arg(long, value_delimiter = ',', default_value = "names,10m", value_parser = DataSet::parse)]
    data: Vec<DataSet>,
    /// Devices, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "gpu,cpu")]
    device: Vec<super::DeviceFlag>,
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
    /// With --kernels: the memory bandwidth to compare each kernel's GB/s with (a card's
    /// datasheet figure, in GB/s).
    #[arg(long, value_parser = super::positive, requires = "kernels")]
    peak_gbps: Option<f32>,
}

fn stage_name(s: &str) -> Result<String, String> {
    if STAGES.iter().any(|(name, _)| *name == s) {
        Ok(s.to_string())
    } else {
        let names: Vec<&str> = STAGES.iter().map(|(name, _)| *name).collect();
        Err(format!(
            "unknown stage {s:?}; the stages are {}",
            names.join(", ")
        ))
    }
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    if args.kernels {
        return run_kernels(args);
    }
    let mut backends = Vec::new();
    for &flag in &args.device {
        let choice: DeviceChoice = flag.into();
        let (backend, notice) = Chosen::open(choice)?;
        if let Some(notice) = notice {
            // Timing the CPU twice under the GPU's name would mislead: leave it out.
            eprintln!("notice: {notice}; the GPU is left out of the benchmark");
            continue;
        }
        backends.push(backend);
    }
    let config = BenchConfig {
        data_sets: args.data.clone(),
        stages: args.stages.clone(),
        repetitions: args.reps as usize,
        budget_seconds: args.budget as f64,
        sample_names: args.names as usize,
    };
    if !args.json {
        for backend in &backends {
            say!("device   {}", on_backend!(backend, |b| b.describe()));
        }
        say!(
            "\n{:<18} {:<11} {:<8} {:>11} {:>11} {:>11} {:>4} {:>14}",
            "stage",
            "data",
            "device",
            "median ms",
            "min ms",
            "max ms",
            "reps",
            "per second"
        );
    }
    let mut refused = 0;
    for data in &config.data_sets {
        refused += run_data_set(
            data,
            &mut backends,
            &config,
            &mut |t| {
                if args.json {
                    say!("{}", timing_json(&t));
                } else {
                    print_timing(&t);
                }
            },
            &mut |reason| eprintln!("notice: {reason}"),
        )?;
    }
    anyhow::ensure!(
        refused == 0,
        "{refused} GPU stages computed results that differ from the CPU reference and were not timed (`makemore check` compares every kernel)"
    );
    // Host memory only: what the GPU driver keeps in its own memory is not counted (with a
    // software adapter such as lavapipe, device memory is host memory and is counted).
    if let Some(bytes) = makemore::bench::peak_memory_bytes() {
        let mib = bytes as f64 / (1024.0 * 1024.0);
        if args.json {
            say!("{}", json!({"peak_memory_mib": mib}));
        } else {
            say!("\npeak memory of the process: {mib:.0} MiB");
        }
    }
    Ok(())
}

fn timing_json(t: &Timing) -> serde_json::Value {
    json!({"stage": t.stage, "data": t.data, "device": t.device,
        "adapter": t.adapter, "median_ms": 1e3 * t.median(), "min_ms": 1e3 * t.min(),
        "max_ms": 1e3 * t.max(), "reps": t.seconds.len(), "items": t.items,
        "items_per_second": t.items as f64 / t.median()})
}

fn print_timing(t: &Timing) {
    say!(
        "{:<18} {:<11} {:<8} {:>11.3} {:>11.3} {:>11.3} {:>4} {:>14}",
        t.stage,
        t.data,
        t.device,
        1e3 * t.median(),
        1e3 * t.min(),
        1e3 * t.max(),
        t.seconds.len(),
        thousands((t.items as f64 / t.median()) as usize)
    );
}

/// `bench --kernels`: each kernel's GPU time on the GPU `--device` names.
fn run_kernels(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.device
            .iter()
            .any(|&d| matches!(d, super::DeviceFlag::Gpu)),
        "--kernels times the GPU's kernels: use it with --device gpu (the default)"
    );
    let mut gpu = makemore::GpuBackend::new(makemore::gpu::open_gpu()?);
    let adapter = gpu.describe();
    let timestamps = gpu.gpu().has_timestamps();
    let peak = args.peak_gbps.map(f64::from);
    if args.json {
        say!(
            "{}",
            json!({"adapter": adapter, "timestamps": timestamps, "peak_gbps": peak})
        );
    } else {
        say!("device   {adapter}");
        if timestamps {
            say!("timestamps: yes (TIMESTAMP_QUERY inside compute passes): GPU time per kernel");
        } else {
            say!("timestamps: no (the adapter lacks TIMESTAMP_QUERY or TIMESTAMP_QUERY_INSIDE_PASSES): wall times per operation, submit to readback");
        }
    }
    let times = makemore::kernel_times::run(&mut gpu, args.reps as usize)?;
    if timestamps {
        print_kernel_rows(&times.rows, peak, args.json);
    } else {
        print_operation_walls(&times.walls, args.json);
    }
    Ok(())
}

/// Without timestamps: each operation's wall time, submit to readback, and its kernels.
fn print_operation_walls(walls: &[OperationWall], json: bool) {
    if !json {
        say!("\n{:<22} {:>11}  kernels", "operation", "wall ms");
    }
    for w in walls {
        if json {
            say!(
                "{}",
                json!({"operation": w.operation, "kernels": w.kernels, "wall_ms": 1e3 * w.seconds})
            );
        } else {
            say!(
                "{:<22} {:>11.3}  {}",
                w.operation,
                1e3 * w.seconds,
                w.kernels.join(", ")
            );
        }
    }
}

/// With timestamps: each kernel's GPU time, its traffic and throughput, and the fraction of
/// the `peak` bandwidth (GB/s) it reaches.
fn print_kernel_rows(rows: &[KernelRow], peak: Option<f64>, json: bool) {
    if !json {
        say!(
            "\n{:<22} {:<24} {:>4} {:>10} {:>12} {:>12} {:>8} {:>8}{}",
            "operation",
            "kernel",
            "runs",
            "GPU ms",
            "bytes read",
            "written",
            "GB/s",
            "Gop/s",
            if peak.is_some() { "  of peak" } else { "" }
        );
    }
    let figure = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.3}"));
    for row in rows {
        let gbps = row.bytes_per_second().map(|b| b / 1e9);
        let gops = row.operations_per_second().map(|o| o / 1e9);
        let fraction = peak.and_then(|p| gbps.map(|g| g / p));
        if json {
            say!(
                "{}",
                json!({"operation": row.operation, "kernel": row.kernel,
                    "dispatches": row.dispatches, "gpu_ms": 1e3 * row.seconds,
                    "bytes_read": row.traffic.map(|t| t.read),
                    "bytes_written": row.traffic.map(|t| t.written),
                    "operations": row.traffic.map(|t| t.operations),
                    "gb_per_s": gbps, "gop_per_s": gops, "fraction_of_peak": fraction})
            );
        } else {
            let bytes = |b: Option<u64>| b.map_or("-".to_string(), thousands_u64);
            say!(
                "{:<22} {:<24} {:>4} {:>10.4} {:>12} {:>12} {:>8} {:>8}{}",
                row.operation,
                row.kernel,
                row.dispatches,
                1e3 * row.seconds,
                bytes(row.traffic.map(|t| t.read)),
                bytes(row.traffic.map(|t| t.written)),
                figure(gbps),
                figure(gops),
                fraction.map_or(String::new(), |f| format!("  {:>6.2}%", 100.0 * f))
            );
        }
    }
}

fn thousands_u64(n: u64) -> String {
    thousands(n as usize)
}

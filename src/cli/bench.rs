//! `makemore bench`: every stage timed on the built-in names and on synthetic data, on the GPU
//! and on the CPU reference.

use serde_json::json;

use super::{say, thousands};
use makemore::bench::{run_data_set, BenchConfig, DataSet, Timing, STAGES};
use makemore::{AnyBackend, Backend, DeviceChoice};

pub const EXAMPLE: &str = "Examples:
  makemore bench                                   # names and 10M pairs, GPU and CPU
  makemore bench --data names --device cpu --reps 20
  makemore bench --data 10m,100m --stages count,steps_counts_1000 --json
  makemore bench --data names --stages steps_counts_1000,steps_counts_1000_k3

Stages: encode, upload, count, normalize, nll, step_examples, step_counts,
steps_counts_1000, sample; steps_counts_1000_k3 only when named.
Each GPU stage's first run is compared with the CPU reference: a stage whose result
differs is reported and not timed, and the command fails.";

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
    let mut backends = Vec::new();
    for &flag in &args.device {
        let choice: DeviceChoice = flag.into();
        let (backend, notice) = AnyBackend::open(choice)?;
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
            say!("device   {}", backend.describe());
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

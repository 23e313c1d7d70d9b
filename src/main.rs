//! The command line: parse the flags, run the library, print what it reports.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;

use makemore::data::{builtin_words, read_words};
use makemore::gpu::{list_adapters, GpuError};
use makemore::train::{self, Event, TrainConfig};
use makemore::{Backend, CpuBackend, Gpu, GpuBackend, TrainOptions};

#[derive(Parser)]
#[command(
    name = "makemore",
    version,
    about = "Character-level bigram language models (makemore, part 1) on the GPU with wgpu"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Count bigrams, train the neural net, print losses and sample names.
    #[command(
        after_help = "Example:\n  makemore train --input names.txt --steps 200 --samples 20"
    )]
    Train(TrainArgs),
    /// List the GPU adapters wgpu finds (WGPU_BACKEND and WGPU_ADAPTER_NAME choose among them).
    Adapters {
        /// One JSON object per adapter.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DeviceChoice {
    /// The WGSL kernels on a wgpu adapter (falls back to cpu when there is no adapter at all).
    Gpu,
    /// The CPU reference implementation.
    Cpu,
}

#[derive(clap::Args)]
struct TrainArgs {
    /// File of words, one per line [default: the built-in 2018 US baby names]
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Characters of context: 1 is the bigram model, 2 the trigram, ...
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=8))]
    context: u32,
    /// Fake counts added to every cell of the count matrix.
    #[arg(long, default_value_t = 1.0, value_parser = non_negative)]
    smoothing: f32,
    /// Seed of the weight initialization and of the samplers (the lecture's by default).
    #[arg(long, default_value_t = 2147483647)]
    seed: u64,
    /// Full-batch gradient-descent steps of the neural model.
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// Learning rate: W -= lr * grad.
    #[arg(long, default_value_t = 50.0, value_parser = positive)]
    lr: f32,
    /// Strength of the L2 penalty reg * mean(W^2).
    #[arg(long, default_value_t = 0.01, value_parser = non_negative)]
    reg: f32,
    /// Names to sample from each model.
    #[arg(long, default_value_t = 10)]
    samples: usize,
    /// Where the arithmetic runs.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Gpu)]
    device: DeviceChoice,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
}

fn non_negative(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!("{s:?} is not a finite number >= 0")),
    }
}

fn positive(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!("{s:?} is not a finite number > 0")),
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => run_train(&args),
        Command::Adapters { json } => run_adapters(json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let chain: Vec<String> = error.chain().map(|e| e.to_string()).collect();
            eprintln!("error: {}", chain.join(": "));
            ExitCode::FAILURE
        }
    }
}

fn run_adapters(as_json: bool) -> anyhow::Result<()> {
    let adapters = list_adapters();
    if adapters.is_empty() && !as_json {
        println!("no adapters found (WGPU_BACKEND limits the search to some backends)");
    }
    for (i, a) in adapters.iter().enumerate() {
        if as_json {
            let line = json!({"index": i, "name": a.name, "backend": a.backend,
                "type": a.device_type, "driver": a.driver});
            println!("{line}");
        } else {
            println!(
                "{i}: {} ({}, {}) {}",
                a.name, a.backend, a.device_type, a.driver
            );
        }
    }
    Ok(())
}

fn run_train(args: &TrainArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let (words, source) = match &args.input {
        Some(path) => (read_words(path)?, path.display().to_string()),
        None => (
            builtin_words(),
            "the built-in names (2018 US baby names)".to_string(),
        ),
    };
    let config = TrainConfig {
        context_len: args.context as usize,
        smoothing: args.smoothing,
        seed: args.seed,
        steps: args.steps,
        options: TrainOptions {
            lr: args.lr,
            reg: args.reg,
        },
        samples: args.samples,
        top_pairs: 5,
    };
    let summary = match args.device {
        DeviceChoice::Cpu => train_on(&mut CpuBackend, args.json, &words, &source, &config)?,
        DeviceChoice::Gpu => match Gpu::new() {
            Ok(gpu) => train_on(
                &mut GpuBackend::new(gpu),
                args.json,
                &words,
                &source,
                &config,
            )?,
            Err(GpuError::NoAdapter { backends }) => {
                eprintln!("notice: no GPU adapter found (backends {backends}); running on the CPU reference");
                train_on(&mut CpuBackend, args.json, &words, &source, &config)?
            }
            Err(other) => return Err(other.into()),
        },
    };
    let seconds = start.elapsed().as_secs_f64();
    if args.json {
        let line = json!({"event": "summary", "count_nll": finite_or_null(summary.count_nll),
            "final_loss": summary.final_loss.total, "final_data_loss": summary.final_loss.data,
            "seconds": seconds});
        println!("{line}");
    } else {
        println!("\ndone in {seconds:.2} s");
    }
    Ok(())
}

fn train_on<B: Backend>(
    backend: &mut B,
    as_json: bool,
    words: &[String],
    source: &str,
    config: &TrainConfig,
) -> anyhow::Result<train::TrainSummary> {
    let device = backend.describe();
    if as_json {
        println!("{}", json!({"event": "device", "device": device}));
    } else {
        println!("device   {device}");
    }
    train::run(backend, words, source, config, &mut |event| {
        if as_json {
            println!("{}", event_json(&event));
        } else {
            print_event(&event);
        }
    })
}

/// JSON has no infinity: an infinite loss is written as null.
fn finite_or_null(x: f64) -> serde_json::Value {
    if x.is_finite() {
        json!(x)
    } else {
        serde_json::Value::Null
    }
}

fn event_json(event: &Event) -> serde_json::Value {
    match event {
        Event::Data {
            source,
            stats,
            vocab,
            examples,
            context_len,
        } => json!({
            "event": "data", "source": source, "words": stats.words, "shortest": stats.shortest,
            "longest": stats.longest, "vocab": vocab.to_string(), "vocab_size": vocab.len(),
            "context": context_len, "examples": examples,
        }),
        Event::CountModel {
            smoothing,
            nll,
            distinct_pairs,
            most_frequent,
        } => json!({
            "event": "count_model", "smoothing": smoothing, "nll": finite_or_null(nll.mean()),
            "impossible_examples": nll.impossible, "distinct_pairs": distinct_pairs,
            "most_frequent": most_frequent.iter().map(|(p, n)| json!([p, n])).collect::<Vec<_>>(),
        }),
        Event::NeuralModel {
            rows,
            cols,
            options,
            losses,
            final_loss,
            ..
        } => json!({
            "event": "neural_model", "rows": rows, "cols": cols, "lr": options.lr, "reg": options.reg,
            "steps": losses.len(),
            "losses": losses.iter().map(|l| l.total).collect::<Vec<_>>(),
            "data_losses": losses.iter().map(|l| l.data).collect::<Vec<_>>(),
            "final_loss": final_loss.total, "final_data_loss": final_loss.data,
        }),
        Event::Samples { model, names } => {
            json!({"event": "samples", "model": model, "names": names})
        }
    }
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn format_nll(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.6}")
    } else {
        "inf".to_string()
    }
}

fn print_event(event: &Event) {
    match event {
        Event::Data {
            source,
            stats,
            vocab,
            examples,
            context_len,
        } => {
            println!(
                "data     {} words from {source}, {} to {} characters",
                thousands(stats.words),
                stats.shortest,
                stats.longest
            );
            println!("vocab    {} symbols: {vocab}", vocab.len());
            println!(
                "examples {} (context of {context_len}, next) pairs",
                thousands(*examples)
            );
        }
        Event::CountModel {
            smoothing,
            nll,
            distinct_pairs,
            most_frequent,
        } => {
            println!("\ncount model (smoothing {smoothing})");
            print!(
                "  mean NLL {} over {} examples",
                format_nll(nll.mean()),
                thousands(nll.examples)
            );
            if nll.impossible > 0 {
                print!(
                    " ({} examples have probability 0)",
                    thousands(nll.impossible as usize)
                );
            }
            println!();
            let top: Vec<String> = most_frequent
                .iter()
                .map(|(p, n)| format!("{p} {}", thousands(*n as usize)))
                .collect();
            println!(
                "  {} distinct pairs; most frequent: {}",
                thousands(*distinct_pairs),
                top.join(", ")
            );
        }
        Event::NeuralModel {
            rows,
            cols,
            options,
            losses,
            final_loss,
            count_nll,
        } => {
            println!(
                "\nneural model ({rows}x{cols} weights, lr {}, reg {}, {} steps)",
                options.lr,
                options.reg,
                losses.len()
            );
            let every = (losses.len() / 10).max(1);
            for (step, loss) in losses.iter().enumerate() {
                if step % every == 0 || step + 1 == losses.len() {
                    println!(
                        "  step {step:>5}  loss {:.6}  (data {:.6})",
                        loss.total, loss.data
                    );
                }
            }
            println!(
                "  final    loss {:.6}  (data {:.6}); count model {}",
                final_loss.total,
                final_loss.data,
                format_nll(*count_nll)
            );
        }
        Event::Samples { model, names } => {
            println!("\nsamples from the {model} model:");
            for name in names {
                println!("  {name}");
            }
        }
    }
}

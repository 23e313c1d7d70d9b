//! `makemore train`: the lecture end to end, printed stage by stage.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;

use super::{finite_or_null, format_loss, non_negative, positive, say, thousands, DeviceFlag};
use makemore::data::{builtin_words, read_words};
use makemore::train::{Event, GradientPath, TrainConfig};
use makemore::{AnyBackend, Backend, TrainOptions};

pub const EXAMPLE: &str = "Examples:
  makemore train                                   # the lecture on the built-in names
  makemore train --input names.txt --steps 200 --samples 20
  makemore train --device cpu --json               # the CPU reference, JSON lines
  makemore train --grad examples                   # the lecture's per-example gradient";

#[derive(clap::Args)]
pub struct Args {
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
    /// How each step's full-batch gradient is computed: from the count matrix (same losses,
    /// O(V^K * V) per step) or example by example as the lecture does (O(n * V) per step).
    #[arg(long = "grad", value_enum, default_value_t = GradFlag::Counts)]
    grad: GradFlag,
    /// Names to sample from each model.
    #[arg(long, default_value_t = 10)]
    samples: usize,
    /// Where the arithmetic runs.
    #[arg(long, value_enum, default_value_t = DeviceFlag::Gpu)]
    device: DeviceFlag,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
}

/// The `--grad` flag.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GradFlag {
    /// From the count matrix N: grad = (c_x softmax(W[x]) - N[x]) / n + the penalty's.
    Counts,
    /// Example by example: softmax(W[x_i]) - onehot(y_i), summed, / n + the penalty's.
    Examples,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
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
        gradient: match args.grad {
            GradFlag::Counts => GradientPath::Counts,
            GradFlag::Examples => GradientPath::Examples,
        },
        samples: args.samples,
        top_pairs: 5,
    };
    let (mut backend, notice) = AnyBackend::open(args.device.into())?;
    if let Some(notice) = notice {
        eprintln!("notice: {notice}");
    }
    if args.json {
        say!(
            "{}",
            json!({"event": "device", "device": backend.describe()})
        );
    } else {
        say!("device   {}", backend.describe());
    }
    let summary = makemore::train::run(&mut backend, &words, &source, &config, &mut |event| {
        if args.json {
            say!("{}", event_json(&event));
        } else {
            print_event(&event);
        }
    })?;
    let seconds = start.elapsed().as_secs_f64();
    if args.json {
        let line = json!({"event": "summary", "count_nll": finite_or_null(summary.count_nll),
            "final_loss": summary.final_loss.total, "final_data_loss": summary.final_loss.data,
            "seconds": seconds});
        say!("{line}");
    } else {
        say!("\ndone in {seconds:.2} s");
    }
    Ok(())
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
            gradient,
            losses,
            final_loss,
            ..
        } => json!({
            "event": "neural_model", "rows": rows, "cols": cols, "lr": options.lr, "reg": options.reg,
            "grad": gradient.name(),
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

fn print_event(event: &Event) {
    match event {
        Event::Data {
            source,
            stats,
            vocab,
            examples,
            context_len,
        } => {
            say!(
                "data     {} words from {source}, {} to {} characters",
                thousands(stats.words),
                stats.shortest,
                stats.longest
            );
            say!("vocab    {} symbols: {vocab}", vocab.len());
            say!(
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
            say!("\ncount model (smoothing {smoothing})");
            let impossible = match nll.impossible {
                0 => String::new(),
                n => format!(" ({} examples have probability 0)", thousands(n as usize)),
            };
            say!(
                "  mean NLL {} over {} examples{impossible}",
                format_loss(nll.mean()),
                thousands(nll.examples)
            );
            let top: Vec<String> = most_frequent
                .iter()
                .map(|(p, n)| format!("{p} {}", thousands(*n as usize)))
                .collect();
            say!(
                "  {} distinct pairs; most frequent: {}",
                thousands(*distinct_pairs),
                top.join(", ")
            );
        }
        Event::NeuralModel {
            rows,
            cols,
            options,
            gradient,
            losses,
            final_loss,
            count_nll,
        } => {
            say!(
                "\nneural model ({rows}x{cols} weights, lr {}, reg {}, {} steps, gradient from {})",
                options.lr,
                options.reg,
                losses.len(),
                gradient.name()
            );
            let every = (losses.len() / 10).max(1);
            for (step, loss) in losses.iter().enumerate() {
                if step % every == 0 || step + 1 == losses.len() {
                    say!(
                        "  step {step:>5}  loss {:.6}  (data {:.6})",
                        loss.total,
                        loss.data
                    );
                }
            }
            say!(
                "  final       loss {:.6}  (data {:.6}); count model {}",
                final_loss.total,
                final_loss.data,
                format_loss(*count_nll)
            );
        }
        Event::Samples { model, names } => {
            say!("\nsamples from the {model} model:");
            for name in names {
                say!("  {name}");
            }
        }
    }
}

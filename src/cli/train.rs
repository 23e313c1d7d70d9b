//! `makemore train`: the lecture end to end, printed stage by stage.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;

use super::{finite_or_null, format_loss, non_negative, positive, say, thousands, DeviceFlag};
use makemore::data::{builtin_words, read_words};
use makemore::optim::{AdamW, Optimizer, Schedule, ADAMW_DEFAULT_LR};
use makemore::split::Split;
use makemore::train::{Event, PartLosses, TrainConfig};
use makemore::{AnyBackend, Backend, LossForm, NetForm, TrainOptions};

pub const EXAMPLE: &str = "Examples:
  makemore train                                   # the lecture on the built-in names
  makemore train --input names.txt --steps 200 --samples 20
  makemore train --device cpu --json               # the CPU reference, JSON lines";

/// The `--optimizer` flag.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OptimizerFlag {
    /// Gradient descent: W -= lr * grad.
    Sgd,
    /// AdamW with makemore.py's settings.
    Adamw,
}

/// The `--loss` flag.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LossFlag {
    /// cross_entropy_forward: log-softmax with the row maximum subtracted, one pass.
    Fused,
    /// cross_entropy_explicit: exp, divide by the sum, the target's probability, log.
    Explicit,
}

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
    /// Learning rate [default: 50 with sgd, 5e-4 with adamw]
    #[arg(long, value_parser = positive)]
    lr: Option<f32>,
    /// Strength of the L2 penalty reg * mean(W^2).
    #[arg(long, default_value_t = 0.01, value_parser = non_negative)]
    reg: f32,
    /// Names to sample from each model.
    #[arg(long, default_value_t = 10)]
    samples: usize,
    /// Train/dev/test percentages, e.g. 80/10/10: the words are shuffled with the seed, the
    /// models learn from train only, and both are scored on every part [default: all train]
    #[arg(long, value_name = "TRAIN/DEV/TEST")]
    split: Option<String>,
    /// The neural model's loss: fused (stable log-softmax) or explicit (the lecture's exp,
    /// normalize, pick, log; overflows for logits above 88.7)
    #[arg(long, value_enum, default_value_t = LossFlag::Fused)]
    loss: LossFlag,
    /// Logits as the lecture's literal one-hot product onehot(context) @ W (one_hot_matmul)
    /// instead of the row select W[context]
    #[arg(long)]
    one_hot: bool,
    /// Examples per step, drawn with the seed (with replacement); 0 is the full batch
    #[arg(long, default_value_t = 0)]
    batch_size: usize,
    /// The update rule: sgd (W -= lr * grad) or adamw (makemore.py's: weight decay 0.01,
    /// betas 0.9/0.99, eps 1e-8)
    #[arg(long, value_enum, default_value_t = OptimizerFlag::Sgd)]
    optimizer: OptimizerFlag,
    /// Where the arithmetic runs.
    #[arg(long, value_enum, default_value_t = DeviceFlag::Gpu)]
    device: DeviceFlag,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
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
            lr: args.lr.unwrap_or(match args.optimizer {
                OptimizerFlag::Sgd => 50.0,
                OptimizerFlag::Adamw => ADAMW_DEFAULT_LR,
            }),
            reg: args.reg,
        },
        schedule: Schedule {
            batch_size: args.batch_size,
            optimizer: match args.optimizer {
                OptimizerFlag::Sgd => Optimizer::Sgd,
                OptimizerFlag::Adamw => Optimizer::AdamW(AdamW::default()),
            },
            seed: args.seed,
        },
        samples: args.samples,
        top_pairs: 5,
        split: args.split.as_deref().map(str::parse::<Split>).transpose()?,
        form: NetForm {
            loss: match args.loss {
                LossFlag::Fused => LossForm::Fused,
                LossFlag::Explicit => LossForm::Explicit,
            },
            one_hot: args.one_hot,
        },
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
            say!("{}", event_json(&event, &config));
        } else {
            print_event(&event, &config);
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

fn event_json(event: &Event, config: &TrainConfig) -> serde_json::Value {
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
            "loss": loss_name(config.form.loss), "one_hot": config.form.one_hot,
            "batch_size": config.schedule.batch_size,
            "optimizer": optimizer_name(config.schedule.optimizer),
        }),
        Event::Samples { model, names } => {
            json!({"event": "samples", "model": model, "names": names})
        }
        Event::Split {
            split,
            words,
            examples,
        } => json!({
            "event": "split", "split": split.to_string(), "train_words": words[0],
            "dev_words": words[1], "test_words": words[2], "train_examples": examples[0],
            "dev_examples": examples[1], "test_examples": examples[2],
        }),
        Event::Evaluation { count, neural } => {
            let part = |l: &PartLosses| {
                let value = |x: Option<f64>| x.map_or(serde_json::Value::Null, finite_or_null);
                json!({"train": value(l.train), "dev": value(l.dev), "test": value(l.test)})
            };
            json!({"event": "evaluation", "count_nll": part(count), "neural_nll": part(neural)})
        }
    }
}

fn loss_name(loss: LossForm) -> &'static str {
    match loss {
        LossForm::Fused => "fused",
        LossForm::Explicit => "explicit",
    }
}

fn optimizer_name(optimizer: Optimizer) -> &'static str {
    match optimizer {
        Optimizer::Sgd => "sgd",
        Optimizer::AdamW(_) => "adamw",
    }
}

/// ", explicit loss, one-hot, batches of 32, adamw": what differs from the lecture's settings.
fn form_note(config: &TrainConfig) -> String {
    let mut notes = Vec::new();
    if config.form.loss == LossForm::Explicit {
        notes.push("explicit loss".to_string());
    }
    if config.form.one_hot {
        notes.push("one-hot".to_string());
    }
    if config.schedule.batch_size > 0 {
        notes.push(format!("batches of {}", config.schedule.batch_size));
    }
    if config.schedule.optimizer != Optimizer::Sgd {
        notes.push(optimizer_name(config.schedule.optimizer).to_string());
    }
    notes.iter().map(|n| format!(", {n}")).collect()
}

/// A part's loss: six decimals, `inf`, or `-` for an empty part.
fn part_loss(x: Option<f64>) -> String {
    x.map_or("-".to_string(), format_loss)
}

fn print_event(event: &Event, config: &TrainConfig) {
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
            losses,
            final_loss,
            count_nll,
        } => {
            say!(
                "\nneural model ({rows}x{cols} weights, lr {}, reg {}, {} steps{})",
                options.lr,
                options.reg,
                losses.len(),
                form_note(config)
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
        Event::Split {
            split,
            words,
            examples,
        } => {
            say!(
                "split    {split}: train {} words ({} examples), dev {} ({}), test {} ({})",
                thousands(words[0]),
                thousands(examples[0]),
                thousands(words[1]),
                thousands(examples[1]),
                thousands(words[2]),
                thousands(examples[2])
            );
        }
        Event::Evaluation { count, neural } => {
            say!("\nmean NLL by part (both models learned from train only)");
            say!(
                "  {:<8} {:>10} {:>10} {:>10}",
                "model",
                "train",
                "dev",
                "test"
            );
            for (name, l) in [("count", count), ("neural", neural)] {
                say!(
                    "  {name:<8} {:>10} {:>10} {:>10}",
                    part_loss(l.train),
                    part_loss(l.dev),
                    part_loss(l.test)
                );
            }
        }
    }
}

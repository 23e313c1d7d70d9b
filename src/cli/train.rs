//! `makemore train`: the lecture end to end, printed stage by stage.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use serde_json::json;

use super::progress::{loss_name, optimizer_name, Progress};
use super::{finite_or_null, non_negative, positive, read_words_held, say, DeviceFlag, RngFlag};
use makemore::adamw::{AdamW, ADAMW_DEFAULT_LR};
use makemore::checkpoint::{
    self, load_log, Checkpoint, LogEntry, RunSettings, LOG_FILE, MODEL_FILE,
};
use makemore::corpus;
use makemore::data::{builtin_words, Vocab};
use makemore::limits::{check_run_counts, check_vocab};
use makemore::optim::{Optimizer, Schedule};
use makemore::split::Split;
use makemore::train::{run_streamed, streams};
use makemore::train::{Event, GradientPath, PartLosses, Resume, TrainConfig, TrainSummary};
use makemore::{on_backend, Backend, Chosen, LossForm, NetForm, TrainOptions, Transfers};

pub const EXAMPLE: &str = "Examples:
  makemore train                                   # the lecture on the built-in names, saved in out/
  makemore train --input names.txt --steps 200 --samples 20 --work-dir runs/names
  makemore train --resume --steps 100              # 100 more steps from out/model.safetensors
  makemore train --device cpu --json               # the CPU reference, JSON lines
  makemore train --rng torch --input names.txt     # the lecture's exact W and names
  makemore train --grad examples                   # the lecture's per-example gradient

Then: makemore sample, makemore eval --word andrejq, makemore plot counts.";

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
    /// The generator behind W's initialization and the samples.
    #[arg(long, value_enum, default_value_t = RngFlag::Std)]
    rng: RngFlag,
    /// Full-batch gradient-descent steps of the neural model.
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// Learning rate [default: 50 with sgd, 5e-4 with adamw]
    #[arg(long, value_parser = positive)]
    lr: Option<f32>,
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
    /// Train/dev/test percentages, e.g. 80/10/10: the words are shuffled with the seed, the
    /// models learn from train only, and both are scored on every part [default: all train]
    #[arg(long, value_name = "TRAIN/DEV/TEST")]
    split: Option<String>,
    /// With --split: the neural model's dev loss every N steps and after the last; the weights
    /// with the lowest are the ones saved, as makemore.py keeps its best model [default: 10]
    #[arg(long, value_name = "N")]
    eval_every: Option<usize>,
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
    /// Directory of the run: model.safetensors (both models) and log.jsonl (the losses).
    #[arg(long, value_name = "DIR", default_value = "out")]
    work_dir: PathBuf,
    /// Continue training W from WORK_DIR/model.safetensors (same words: --input defaults to
    /// the file it was trained on).
    #[arg(long)]
    resume: bool,
    /// No progress bar: plain lines, as when stdout is not a terminal.
    #[arg(long, short)]
    quiet: bool,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
}

/// What `train` learns from: words in memory, or a file read in blocks.
enum Input {
    Words(Vec<String>),
    /// The file and its first pass.
    Streamed(PathBuf, corpus::Scan),
}

/// The `--grad` flag.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GradFlag {
    /// From the count matrix N: grad = (c_x softmax(W[x]) - N[x]) / n + the penalty's.
    Counts,
    /// Example by example: softmax(W[x_i]) - onehot(y_i), summed, / n + the penalty's.
    Examples,
}

/// `train`: the settings from the flags (and the checkpoint when resuming), the words, the
/// device, the pipeline with its events printed as they come, and the run saved.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let start = Instant::now();
    let saved = args
        .resume
        .then(|| Checkpoint::load(&args.work_dir))
        .transpose()?;
    // Resuming without --input continues on the words the checkpoint was trained on.
    let input = args
        .input
        .clone()
        .or_else(|| saved.as_ref().and_then(|c| c.settings.input.clone()));
    // The log so far, read before training so that a bad one stops the run early.
    let earlier_log = match &saved {
        Some(_) if args.work_dir.join(LOG_FILE).exists() => load_log(&args.work_dir)?,
        _ => Vec::new(),
    };
    let resume = saved.as_ref().map(|c| Resume {
        vocab: c.settings.vocab.clone(),
        context_len: c.settings.context_len,
        weights: c.weights.clone(),
        steps_done: c.settings.steps,
        source: args.work_dir.join(MODEL_FILE).display().to_string(),
    });
    let config = train_config(args, resume)?;
    let data = read_input(input.as_ref(), &config)?;
    let source = match &input {
        Some(path) => path.display().to_string(),
        None => "the built-in names (2018 US baby names)".to_string(),
    };
    check_input_size(args, &config, &data)?;
    let mut backend = open_backend(args)?;
    let mut progress = Progress::new(args.json, args.quiet);
    let mut report = |event: Event| {
        if args.json {
            if let Some(line) = event_json(&event, &config) {
                say!("{line}");
            }
        } else {
            progress.print_event(&event, &config);
        }
    };
    let (summary, transfers) = on_backend!(&mut backend, |b| {
        let summary = match &data {
            Input::Words(words) => makemore::train::run(b, words, &source, &config, &mut report),
            Input::Streamed(path, scan) => {
                let chunk = corpus::chunk_bytes();
                run_streamed(b, path, scan, chunk, &source, &config, &mut report)
            }
        }?;
        (summary, b.transfers())
    });
    let (model_path, log_path) = save_run(args, &config, input.as_deref(), &summary, earlier_log)?;
    let seconds = start.elapsed().as_secs_f64();
    print_saved(args, &summary, transfers, (&model_path, &log_path), seconds);
    Ok(())
}

/// The pipeline's settings from the flags.
fn train_config(args: &Args, resume: Option<Resume>) -> anyhow::Result<TrainConfig> {
    Ok(TrainConfig {
        context_len: args.context as usize,
        smoothing: args.smoothing,
        seed: args.seed,
        rng: args.rng.into(),
        steps: args.steps,
        options: TrainOptions {
            lr: args.lr.unwrap_or(match args.optimizer {
                OptimizerFlag::Sgd => 50.0,
                OptimizerFlag::Adamw => ADAMW_DEFAULT_LR,
            }),
            reg: args.reg,
        },
        gradient: match args.grad {
            GradFlag::Counts => GradientPath::Counts,
            GradFlag::Examples => GradientPath::Examples,
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
        resume,
        split: args.split.as_deref().map(str::parse::<Split>).transpose()?,
        eval_every: match (&args.split, args.eval_every) {
            (None, Some(_)) => {
                anyhow::bail!("--eval-every needs --split: a dev set to evaluate on")
            }
            (_, every) => every.unwrap_or(10),
        },
        form: NetForm {
            loss: match args.loss {
                LossFlag::Fused => LossForm::Fused,
                LossFlag::Explicit => LossForm::Explicit,
            },
            one_hot: args.one_hot,
        },
    })
}

/// The words, or the first pass over a file the counts path reads in blocks.
fn read_input(input: Option<&PathBuf>, config: &TrainConfig) -> anyhow::Result<Input> {
    Ok(match input {
        Some(path) if streams(config) => {
            let scan_start = Instant::now();
            let scan = corpus::scan(path, corpus::chunk_bytes())?;
            let ms = scan_start.elapsed().as_secs_f64() * 1e3;
            log::debug!("first pass (blocks read, UTF-8, words, vocabulary): {ms:.1} ms");
            Input::Streamed(path.clone(), scan)
        }
        Some(path) => {
            let instead = "on its default path (no --split, gradient from counts) train reads \
                           a file of any size in blocks";
            Input::Words(read_words_held(path, instead)?)
        }
        None => Input::Words(builtin_words()),
    })
}

/// Counts that memory could not hold, and alphabets past the limit, refused before any work.
fn check_input_size(args: &Args, config: &TrainConfig, data: &Input) -> anyhow::Result<()> {
    let (train_examples, vocab_len) = match data {
        Input::Words(words) => {
            let train = config
                .split
                .map(|split| split.apply(words, config.seed).train);
            let train = train.as_deref().unwrap_or(words);
            let examples = train.iter().map(|w| w.chars().count() + 1).sum();
            (examples, Vocab::from_words(words).len())
        }
        Input::Streamed(_, scan) => (
            usize::try_from(scan.examples).unwrap_or(usize::MAX),
            scan.vocab.len(),
        ),
    };
    check_run_counts(args.steps, args.samples, args.batch_size, train_examples)
        .map_err(anyhow::Error::msg)?;
    check_vocab(vocab_len)?;
    Ok(())
}

/// The device the flags ask for, announced on the first line.
fn open_backend(args: &Args) -> anyhow::Result<Chosen> {
    let (backend, notice) = Chosen::open(args.device.into())?;
    let description = on_backend!(&backend, |b| b.describe());
    if let Some(notice) = notice {
        eprintln!("notice: {notice}");
    }
    if args.json {
        say!("{}", json!({"event": "device", "device": description}));
    } else {
        say!("device   {description}");
    }
    Ok(backend)
}

/// Where the run was saved, what crossed between host and device, and how long it took.
fn print_saved(
    args: &Args,
    summary: &TrainSummary,
    transfers: Transfers,
    (model_path, log_path): (&Path, &Path),
    seconds: f64,
) {
    let Transfers {
        uploads,
        upload_bytes,
        readbacks,
        readback_bytes,
    } = transfers;
    if args.json {
        let line = json!({"event": "summary", "count_nll": finite_or_null(summary.count_nll),
            "final_loss": summary.final_loss.total, "final_data_loss": summary.final_loss.data,
            "steps": summary.first_step + summary.losses.len(),
            "kept_step": summary.kept_step,
            "checkpoint": model_path.display().to_string(), "log": log_path.display().to_string(),
            "transfers": {"uploads": uploads, "upload_bytes": upload_bytes,
                "readbacks": readbacks, "readback_bytes": readback_bytes},
            "seconds": seconds});
        say!("{line}");
    } else {
        let kept = match summary.kept_step {
            Some(step) => format!(" (the weights after step {step}: the lowest dev loss)"),
            None => String::new(),
        };
        say!(
            "\ntransfers  {uploads} uploads ({}), {readbacks} readbacks ({})",
            bytes(upload_bytes),
            bytes(readback_bytes)
        );
        say!(
            "saved    {}{kept} and {}",
            model_path.display(),
            log_path.display()
        );
        say!("done in {seconds:.2} s");
    }
}

/// A byte count for people: `9 KB`, `1.8 MB`.
fn bytes(count: u64) -> String {
    let mut value = count as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < 4 {
        value /= 1000.0;
        unit += 1;
    }
    let shown = format!("{value:.1}");
    let shown = shown.strip_suffix(".0").unwrap_or(&shown);
    format!("{shown} {}", ["B", "KB", "MB", "GB", "TB"][unit])
}

/// Writes both models and the loss log into the work directory.
fn save_run(
    args: &Args,
    config: &TrainConfig,
    input: Option<&Path>,
    summary: &TrainSummary,
    mut log: Vec<LogEntry>,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let input = input
        .map(|p| {
            std::fs::canonicalize(p).with_context(|| format!("cannot resolve {}", p.display()))
        })
        .transpose()?;
    let mut checkpoint = Checkpoint {
        settings: RunSettings {
            vocab: summary.count_model.vocab.clone(),
            context_len: config.context_len,
            smoothing: config.smoothing,
            seed: config.seed,
            steps: summary
                .kept_step
                .unwrap_or(summary.first_step + summary.losses.len()),
            lr: config.options.lr,
            reg: config.options.reg,
            input,
            split: config.split,
            log: None,
        },
        counts: summary.count_model.counts.clone(),
        probs: summary.count_model.probs.clone(),
        weights: summary.neural_model.weights.clone(),
        neural_probs: summary.neural_probs.clone(),
    };
    // Entries of steps this run has redone (a resume from an older checkpoint) are replaced.
    log.retain(|e| e.step < summary.first_step);
    let dev_at = |step: usize| {
        let found = summary.dev_losses.iter().find(|(s, _)| *s == step);
        found.map(|&(_, loss)| loss)
    };
    log.extend(
        summary
            .losses
            .iter()
            .enumerate()
            .map(|(i, &loss)| LogEntry {
                step: summary.first_step + i,
                loss,
                dev_loss: dev_at(summary.first_step + i),
            }),
    );
    // The dev loss after the last step belongs to the weights training ended with.
    let end = summary.first_step + summary.losses.len();
    if let Some(dev_loss) = dev_at(end) {
        log.push(LogEntry {
            step: end,
            loss: summary.final_loss,
            dev_loss: Some(dev_loss),
        });
    }
    let (model_path, log_path) = checkpoint::save_run(&args.work_dir, &mut checkpoint, &log)?;
    log::debug!("saved {} and {}", model_path.display(), log_path.display());
    Ok((model_path, log_path))
}

fn event_json(event: &Event, config: &TrainConfig) -> Option<serde_json::Value> {
    Some(match event {
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
            first_step,
            gradient,
            losses,
            final_loss,
            ..
        } => json!({
            "event": "neural_model", "rows": rows, "cols": cols, "lr": options.lr, "reg": options.reg,
            "first_step": first_step, "grad": gradient.name(), "steps": losses.len(),
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
        Event::DevLoss { step, loss, best } => {
            json!({"event": "dev_loss", "step": step, "loss": finite_or_null(*loss), "best": best})
        }
        // Progress is for people watching; the neural_model line has every loss.
        Event::TrainingStarted { .. } | Event::Progress { .. } => return None,
    })
}

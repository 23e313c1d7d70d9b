//! `makemore train`: the lecture end to end, printed stage by stage.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use serde_json::json;

use super::progress::Printer;
use super::{non_negative, positive, read_words_held, say};
use makemore::adamw::{AdamW, ADAMW_DEFAULT_LR};
use makemore::checkpoint::{
    self, load_log, Checkpoint, LogEntry, RunSettings, LOG_FILE, MODEL_FILE,
};
use makemore::corpus;
use makemore::data::{builtin_words, Vocab};
use makemore::limits::{check_run_counts, check_vocab};
use makemore::optim::{Optimizer, Schedule};
use makemore::split::Split;
use makemore::train::{run_streamed, Event, GradientPath, Resume, TrainConfig, TrainSummary};
use makemore::{
    on_backend, Backend, Chosen, DeviceChoice, LossForm, NetForm, RngKind, TrainOptions,
};

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
    #[arg(long, value_enum, default_value_t = RngKind::Std)]
    rng: RngKind,
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
    #[arg(long, value_enum, default_value_t = GradientPath::Counts)]
    grad: GradientPath,
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
    #[arg(long, value_enum, default_value_t = LossForm::Fused)]
    loss: LossForm,
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
    #[arg(long, value_enum, default_value_t = DeviceChoice::Gpu)]
    device: DeviceChoice,
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

/// What `train` learns from: words in memory, or a file read in blocks (and its first pass).
enum Input {
    Words(Vec<String>),
    Streamed(PathBuf, corpus::Scan),
}

/// `train`: the settings from the flags (and the checkpoint when resuming), the words, the
/// device, the pipeline with its events printed as they come, and the run saved.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let start = Instant::now();
    let load = || Checkpoint::load(&args.work_dir);
    let saved = args.resume.then(load).transpose()?;
    // Resuming without --input continues on the words the checkpoint was trained on.
    let input = args.input.clone();
    let input = input.or_else(|| saved.as_ref()?.settings.input.clone());
    // The log so far, read before training so that a bad one stops the run early.
    let earlier_log = match &saved {
        Some(_) if args.work_dir.join(LOG_FILE).exists() => load_log(&args.work_dir)?,
        _ => Vec::new(),
    };
    let resume = saved.map(|checkpoint| Resume {
        checkpoint,
        source: args.work_dir.join(MODEL_FILE).display().to_string(),
    });
    let config = train_config(args, resume)?;
    // The device opens (its driver loads) while the input is read: a file's first pass.
    let (data, opened) = std::thread::scope(|scope| {
        let device = scope.spawn(|| Chosen::open(args.device));
        let data = read_input(args, input.as_ref(), &config);
        (data, device.join())
    });
    let data = data?;
    let builtin = "the built-in names (2018 US baby names)".to_string();
    let source = (input.as_ref()).map_or(builtin, |path| path.display().to_string());
    let (mut backend, notice) = opened.expect("opening the device does not panic")?;
    if let Some(notice) = notice {
        eprintln!("notice: {notice}");
    }
    let mut printer = Printer::new(&config, args.json, args.quiet);
    let device = on_backend!(&backend, |b| b.describe());
    match args.json {
        true => say!("{}", json!({"event": "device", "device": device})),
        false => say!("device   {device}"),
    }
    let report = &mut |event: Event| printer.event(&event);
    let (summary, transfers) = on_backend!(&mut backend, |b| {
        let summary = match &data {
            Input::Words(words) => makemore::train::run(b, words, &source, &config, report),
            Input::Streamed(path, scan) => {
                let block_bytes = corpus::block_bytes();
                run_streamed(b, path, scan, block_bytes, &source, &config, report)
            }
        }?;
        (summary, b.transfers())
    });
    let paths = save_run(args, &config, input.as_deref(), &summary, earlier_log)?;
    printer.saved(&summary, transfers, &paths, start.elapsed().as_secs_f64());
    Ok(())
}

/// The pipeline's settings from the flags.
fn train_config(args: &Args, resume: Option<Resume>) -> anyhow::Result<TrainConfig> {
    let (optimizer, lr) = match args.optimizer {
        OptimizerFlag::Sgd => (Optimizer::Sgd, 50.0),
        OptimizerFlag::Adamw => (Optimizer::AdamW(AdamW::default()), ADAMW_DEFAULT_LR),
    };
    if args.split.is_none() && args.eval_every.is_some() {
        anyhow::bail!("--eval-every needs --split: a dev set to evaluate on");
    }
    Ok(TrainConfig {
        context_len: args.context as usize,
        smoothing: args.smoothing,
        seed: args.seed,
        rng: args.rng,
        steps: args.steps,
        options: TrainOptions {
            lr: args.lr.unwrap_or(lr),
            reg: args.reg,
        },
        gradient: args.grad,
        schedule: Schedule {
            batch_size: args.batch_size,
            optimizer,
            seed: args.seed,
        },
        samples: args.samples,
        resume,
        split: args.split.as_deref().map(str::parse::<Split>).transpose()?,
        eval_every: args.eval_every.unwrap_or(10),
        form: NetForm {
            loss: args.loss,
            one_hot: args.one_hot,
        },
    })
}

/// The words, or the first pass over a file the counts path reads in blocks; counts that
/// memory could not hold, and alphabets past the limit, refused before any work.
fn read_input(args: &Args, input: Option<&PathBuf>, config: &TrainConfig) -> anyhow::Result<Input> {
    let check = |train_examples: usize, vocab_len: usize| -> anyhow::Result<()> {
        check_run_counts(args.steps, args.samples, args.batch_size, train_examples)
            .map_err(anyhow::Error::msg)?;
        Ok(check_vocab(vocab_len)?)
    };
    let words = match input {
        Some(path) if config.streams() => {
            let scan_start = Instant::now();
            let scan = corpus::scan(path, corpus::block_bytes())?;
            let ms = scan_start.elapsed().as_secs_f64() * 1e3;
            log::debug!("first pass (blocks read, UTF-8, words, vocabulary): {ms:.1} ms");
            let pairs = usize::try_from(scan.examples).unwrap_or(usize::MAX);
            check(pairs, scan.vocab.len())?;
            return Ok(Input::Streamed(path.clone(), scan));
        }
        Some(path) => {
            let instead = "on its default path (no --split, gradient from counts) train reads \
                           a file of any size in blocks";
            read_words_held(path, instead)?
        }
        None => builtin_words(),
    };
    let train = config.split.map(|s| s.apply(&words, config.seed).train);
    let train = train.as_deref().unwrap_or(&words);
    let examples = train.iter().map(|w| w.chars().count() + 1).sum();
    check(examples, Vocab::from_words(&words).len())?;
    Ok(Input::Words(words))
}

/// Writes both models and the loss log into the work directory; returns their paths.
fn save_run(
    args: &Args,
    config: &TrainConfig,
    input: Option<&Path>,
    summary: &TrainSummary,
    mut log: Vec<LogEntry>,
) -> anyhow::Result<[String; 2]> {
    let why = |p: &Path| format!("cannot resolve {}", p.display());
    let resolve = |p: &Path| std::fs::canonicalize(p).with_context(|| why(p));
    let input = input.map(resolve).transpose()?;
    let run = &summary.neural;
    let end = run.first_step + run.losses.len();
    let mut checkpoint = Checkpoint {
        settings: RunSettings {
            vocab: summary.count_model.vocab.clone(),
            context_len: config.context_len,
            smoothing: config.smoothing,
            seed: config.seed,
            steps: run.kept_step.unwrap_or(end),
            lr: config.options.lr,
            reg: config.options.reg,
            input,
            split: config.split,
            log: None,
        },
        counts: summary.count_model.counts.clone(),
        probs: summary.count_model.probs.clone(),
        weights: run.weights.clone(),
        neural_probs: summary.neural_probs.clone(),
    };
    // Entries of steps this run has redone (a resume from an older checkpoint) are replaced:
    // one per step of this run, and one for the weights training ended with if their dev loss
    // was measured.
    log.retain(|e| e.step < run.first_step);
    let dev_at = |step| run.dev_losses.iter().find(|(s, _)| *s == step).map(|d| d.1);
    let losses = run.losses.iter().chain([&run.final_loss]);
    let entries = losses.zip(run.first_step..).map(|(&loss, step)| LogEntry {
        step,
        loss,
        dev_loss: dev_at(step),
    });
    log.extend(entries.filter(|e| e.step < end || e.dev_loss.is_some()));
    let paths = checkpoint::save_run(&args.work_dir, &mut checkpoint, &log)?;
    Ok([paths.0, paths.1].map(|p| p.display().to_string()))
}

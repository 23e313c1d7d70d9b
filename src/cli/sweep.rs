//! `makemore sweep`: tune the count model's smoothing or the neural model's reg on dev, then
//! score the best strength on test, once.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;

use super::{format_loss, non_negative, positive, read_words_held, say, thousands};
use makemore::data::builtin_words;
use makemore::tools::sweep::{self, SweepConfig, SweepModel, DEFAULT_STRENGTHS};
use makemore::{on_backend, Backend, Chosen, DeviceChoice};

pub const EXAMPLE: &str = "Examples:
  makemore sweep                                   # count model: best smoothing on dev
  makemore sweep --model neural --strengths 0,0.1,1 --steps 100
  makemore sweep --context 2 --split 80/10/10 --json";

#[derive(clap::Args)]
pub struct Args {
    /// File of words, one per line [default: the built-in 2018 US baby names]
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Which model to tune.
    #[arg(long, value_enum, default_value_t = SweepModel::Count)]
    model: SweepModel,
    /// Comma-separated strengths, each a finite number >= 0 [default: 0,0.01,0.1,0.5,1,2,5,10]
    #[arg(long, value_name = "LIST")]
    strengths: Option<String>,
    /// Train/dev/test percentages.
    #[arg(long, default_value = "80/10/10", value_name = "TRAIN/DEV/TEST")]
    split: String,
    /// Characters of context: 1 is the bigram model, 2 the trigram, ...
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=8))]
    context: u32,
    /// Seed of the split and of W's initialization.
    #[arg(long, default_value_t = 2147483647)]
    seed: u64,
    /// Full-batch gradient-descent steps per strength (neural model).
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// Learning rate (neural model).
    #[arg(long, default_value_t = 50.0, value_parser = positive)]
    lr: f32,
    /// Where the arithmetic runs.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Gpu)]
    device: DeviceChoice,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
}

/// `sweep`: the settings from the flags, the words, then [`makemore::tools::sweep::run`] printed
/// as a table (or one JSON object).
pub fn run(args: &Args) -> anyhow::Result<()> {
    let start = Instant::now();
    let (words, source) = match &args.input {
        Some(path) => {
            let instead = "sweep holds every example of each part: sweep on a sample of the file";
            (read_words_held(path, instead)?, path.display().to_string())
        }
        None => (
            builtin_words(),
            "the built-in names (2018 US baby names)".to_string(),
        ),
    };
    let config = config(args)?;
    makemore::limits::check_vocab(makemore::data::Vocab::from_words(&words).len())?;
    let (mut backend, notice) = Chosen::open(args.device)?;
    if let Some(notice) = notice {
        eprintln!("notice: {notice}");
    }
    let result = on_backend!(&mut backend, |b| sweep::run(b, &words, &config))?;
    let seconds = start.elapsed().as_secs_f64();
    let device = on_backend!(&backend, |b| b.describe());
    let (model, name) = config.model.names();
    let (best, neural) = (result.rows[result.best], config.model == SweepModel::Neural);
    if args.json {
        let rows: Vec<serde_json::Value> = (result.rows.iter())
            .map(|r| json!({"strength": r.strength, "train": r.train, "dev": r.dev}))
            .collect();
        say!(
            "{}",
            json!({"event": "sweep", "device": device, "source": source,
                "model": model, "strength_name": name, "context": config.context_len,
                "split": config.split.to_string(), "words": result.words,
                "examples": result.examples, "steps": neural.then_some(config.steps),
                "lr": neural.then_some(config.lr), "rows": rows,
                "best_strength": best.strength, "best_dev": best.dev,
                "test": result.test, "seconds": seconds})
        );
        return Ok(());
    }
    let [train, dev, test] = result.words.map(thousands);
    let total = thousands(result.words.iter().sum());
    let split = config.split;
    say!("device   {device}");
    say!("data     {total} words from {source}; split {split}: train {train}, dev {dev}, test {test} words");
    let settings = match neural {
        true => format!(", {} steps of lr {}", config.steps, config.lr),
        false => String::new(),
    };
    let k = config.context_len;
    say!("\n{model} model, context {k}{settings}: mean NLL by {name}");
    say!("  {name:>10} {:>10} {:>10}", "train", "dev");
    for (i, row) in result.rows.iter().enumerate() {
        let mark = ["", "  <- best on dev"][usize::from(i == result.best)];
        let (train, dev) = (format_loss(row.train), format_loss(row.dev));
        say!("  {:>10} {train:>10} {dev:>10}{mark}", row.strength);
    }
    let (dev, test) = (format_loss(best.dev), format_loss(result.test));
    say!(
        "\nbest {name} on dev: {} (dev {dev}); test, scored once: {test}",
        best.strength
    );
    say!("\ndone in {seconds:.2} s");
    Ok(())
}

/// The sweep's settings from the flags: "0,0.1, 1" -> [0.0, 0.1, 1.0]; too many steps refused.
fn config(args: &Args) -> anyhow::Result<SweepConfig> {
    let list = args.strengths.as_deref();
    let strength = |item: &str| {
        let list = list.unwrap_or_default();
        non_negative(item.trim()).map_err(|e| anyhow::anyhow!("--strengths {list:?}: {e}"))
    };
    let parsed = list.map(|list| list.split(',').map(strength).collect());
    let strengths = parsed.unwrap_or(Ok(DEFAULT_STRENGTHS.to_vec()))?;
    let (split, max) = (args.split.parse()?, makemore::limits::MAX_STEPS);
    anyhow::ensure!(
        args.steps <= max,
        "--steps {} is over the {max} steps of one run",
        args.steps
    );
    Ok(SweepConfig {
        model: args.model,
        strengths,
        split,
        context_len: args.context as usize,
        seed: args.seed,
        steps: args.steps,
        lr: args.lr,
    })
}

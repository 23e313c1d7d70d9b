//! `makemore sample`: names from a saved model, without training (makemore.py's
//! `--sample-only`), sorted into those that are in the training data and those that are new.

use std::collections::HashSet;
use std::path::PathBuf;

use serde_json::json;

use super::{describe_checkpoint, positive, say, training_words, ModelFlag, RngFlag};
use makemore::checkpoint::{Checkpoint, MODEL_FILE};
use makemore::sample::{sample_names_with, SampleOptions};
use makemore::split::SplitWords;

pub const EXAMPLE: &str = "Examples:
  makemore train --steps 100                     # saves out/model.safetensors
  makemore sample                                # 10 names from the neural model
  makemore sample --model count --num 20 --seed 7
  makemore sample --prefix ka --temperature 0.7 --top-k 5
  makemore sample --json";

#[derive(clap::Args)]
pub struct Args {
    /// Directory of the run, as given to `train`.
    #[arg(long, value_name = "DIR", default_value = "out")]
    work_dir: PathBuf,
    /// Which model to draw from.
    #[arg(long, value_enum, default_value_t = ModelFlag::Neural)]
    model: ModelFlag,
    /// How many names.
    #[arg(long, default_value_t = 10)]
    num: usize,
    /// Seed of the sampler (train's default, so the same names as train printed).
    #[arg(long, default_value_t = 2147483647)]
    seed: u64,
    /// Divide the logits by T: below 1 safer names, above 1 wilder ones.
    #[arg(long, default_value_t = 1.0, value_parser = positive)]
    temperature: f32,
    /// Draw only from the K most likely next characters.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..))]
    top_k: Option<u32>,
    /// Every name starts with these characters.
    #[arg(long, default_value = "")]
    prefix: String,
    /// The sampler's generator: `torch` draws as the lecture's loop does.
    #[arg(long, value_enum, default_value_t = RngFlag::Std)]
    rng: RngFlag,
    /// The training words, to tell known names from new ones [default: the file the
    /// checkpoint was trained on, or the built-in names]
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let checkpoint = Checkpoint::load(&args.work_dir)?;
    let options = SampleOptions {
        temperature: args.temperature as f64,
        top_k: args.top_k.map(|k| k as usize),
        prefix: args.prefix.clone(),
    };
    let vocab = &checkpoint.settings.vocab;
    let names = sample_names_with(
        args.model.probs(&checkpoint),
        vocab,
        args.num,
        args.seed,
        args.rng.into(),
        &options,
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "--prefix {:?} has the character {:?}, which the model never saw (it knows {vocab})",
            e.word,
            e.ch
        )
    })?;
    let (words, source) = training_words(args.input.as_deref(), &checkpoint)?;
    // With a split, the run learned from its train part only: makemore.py's "in train",
    // "in test" and "new", with dev beside test.
    let parts = match checkpoint.settings.split {
        Some(split) => split.apply(&words, checkpoint.settings.seed),
        None => SplitWords {
            train: words,
            dev: Vec::new(),
            test: Vec::new(),
        },
    };
    let set = |part: &[String]| part.iter().cloned().collect::<HashSet<String>>();
    let (train, dev, test) = (set(&parts.train), set(&parts.dev), set(&parts.test));
    let (mut in_data, mut in_dev, mut in_test, mut new) = (vec![], vec![], vec![], vec![]);
    for name in &names {
        let group = if train.contains(name) {
            &mut in_data
        } else if dev.contains(name) {
            &mut in_dev
        } else if test.contains(name) {
            &mut in_test
        } else {
            &mut new
        };
        group.push(name);
    }
    if args.json {
        let line = json!({"event": "samples", "model": args.model.name(), "seed": args.seed,
            "temperature": args.temperature, "top_k": args.top_k, "prefix": args.prefix,
            "names": names, "in_training_data": in_data, "in_dev": in_dev, "in_test": in_test,
            "new": new, "training_words": source});
        say!("{line}");
        return Ok(());
    }
    let path = args.work_dir.join(MODEL_FILE);
    say!(
        "model    {} ({})",
        args.model.name(),
        describe_checkpoint(&path, &checkpoint)
    );
    let top_k = args.top_k.map_or("all".to_string(), |k| k.to_string());
    say!(
        "sampling {} names, seed {}, temperature {}, top-k {top_k}{}",
        args.num,
        args.seed,
        args.temperature,
        if args.prefix.is_empty() {
            String::new()
        } else {
            format!(", prefix {:?}", args.prefix)
        }
    );
    let train_part = match checkpoint.settings.split {
        Some(split) => format!("the train part of {split} of {source}"),
        None => source,
    };
    say!("\n{} in the training data ({train_part}):", in_data.len());
    for name in &in_data {
        say!("  {name}");
    }
    for (group, part) in [("dev", &in_dev), ("test", &in_test)] {
        if !part.is_empty() {
            say!("\n{} in the {group} part:", part.len());
            for name in part.iter() {
                say!("  {name}");
            }
        }
    }
    say!("\n{} new:", new.len());
    for name in &new {
        say!("  {name}");
    }
    Ok(())
}

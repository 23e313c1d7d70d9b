//! `makemore sample`: names from a saved model, without training (makemore.py's
//! `--sample-only`), sorted into those that are in the training data and those that are new.

use std::collections::HashSet;
use std::path::PathBuf;

use serde_json::json;

use super::{describe_checkpoint, positive, put, say, training_words, ModelFlag, RngFlag};
use makemore::checkpoint::{Checkpoint, MODEL_FILE};
use makemore::sample::{check_prefix, for_each_name, SampleOptions};
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
    /// How many names (printed as they are drawn; at most 1,000,000,000).
    #[arg(long, default_value_t = 10)]
    num: u64,
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

/// The most names one `sample` run draws: each is at least two bytes of output, so this is
/// already gigabytes; more would only take hours.
pub const MAX_NAMES: u64 = 1_000_000_000;

/// Where a drawn name belongs: makemore.py's "in train", "in test" and "new", with dev beside
/// test.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Group {
    Train,
    Dev,
    Test,
    New,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    if args.num > MAX_NAMES {
        anyhow::bail!(
            "--num {} is more than the {} names one run draws; draw them in several runs with other --seed values",
            args.num,
            super::thousands(MAX_NAMES as usize)
        );
    }
    let checkpoint = Checkpoint::load(&args.work_dir)?;
    let options = SampleOptions {
        temperature: args.temperature as f64,
        top_k: args.top_k.map(|k| k as usize),
        prefix: args.prefix.clone(),
    };
    let vocab = &checkpoint.settings.vocab;
    let probs = args.model.probs(&checkpoint);
    // The names are drawn again for each group they are printed in (the same seed gives the
    // same names), so that memory holds a few blocks of them, however many are asked for.
    let draw = |emit: &mut dyn FnMut(&str)| {
        for_each_name(
            probs,
            vocab,
            args.num,
            args.seed,
            args.rng.into(),
            &options,
            |name| {
                emit(name);
                true
            },
        )
        .map_err(|e| {
            anyhow::anyhow!(
                "--prefix {:?} has the character {:?}, which the model never saw (it knows {vocab})",
                e.word,
                e.ch
            )
        })
    };
    // Checked before anything is drawn or read.
    check_prefix(vocab, &args.prefix).map_err(|e| {
        anyhow::anyhow!(
            "--prefix {:?} has the character {:?}, which the model never saw (it knows {vocab})",
            e.word,
            e.ch
        )
    })?;
    let (words, source) = training_words(args.input.as_deref(), &checkpoint)?;
    // With a split, the run learned from its train part only.
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
    let group_of = |name: &str| {
        if train.contains(name) {
            Group::Train
        } else if dev.contains(name) {
            Group::Dev
        } else if test.contains(name) {
            Group::Test
        } else {
            Group::New
        }
    };
    // Writes the names of one group (all of them with `None`), as text lines or JSON strings,
    // through one buffer (a write per name would cost more than drawing it).
    let list = |group: Option<Group>, json: bool| -> anyhow::Result<()> {
        use std::io::Write as _;
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let mut first = true;
        let mut failed = None;
        draw(&mut |name| {
            if failed.is_some() || group.is_some_and(|g| g != group_of(name)) {
                return;
            }
            let written = if json {
                let comma = if first { "" } else { "," };
                write!(out, "{comma}{}", serde_json::Value::from(name))
            } else {
                writeln!(out, "  {name}")
            };
            failed = written.err();
            first = false;
        })?;
        match failed.map_or_else(|| out.flush(), Err) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
            other => Ok(other?),
        }
    };
    if args.json {
        // One object, written as the names are drawn, its keys in the order serde_json sorts
        // them: the same line as a serialized map.
        let field = |value: serde_json::Value| value.to_string();
        put!("{{\"event\":\"samples\",\"in_dev\":[");
        list(Some(Group::Dev), true)?;
        put!("],\"in_test\":[");
        list(Some(Group::Test), true)?;
        put!("],\"in_training_data\":[");
        list(Some(Group::Train), true)?;
        put!(
            "],\"model\":{},\"names\":[",
            field(args.model.name().into())
        );
        list(None, true)?;
        put!("],\"new\":[");
        list(Some(Group::New), true)?;
        put!(
            "],\"prefix\":{},\"seed\":{},\"temperature\":{},\"top_k\":{},\"training_words\":{}}}",
            field(args.prefix.clone().into()),
            args.seed,
            field(json!(args.temperature)),
            field(json!(args.top_k)),
            field(source.into())
        );
        say!("");
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
    // A first pass counts each group, for the headers. It prints nothing, so it looks for a
    // reader that went away (`| head`) itself, as a write would find it.
    let mut counts = [0u64; 4];
    let mut drawn = 0u64;
    draw(&mut |name| {
        counts[group_of(name) as usize] += 1;
        drawn += 1;
        if drawn.is_multiple_of(65_536) && stdout_closed() {
            std::process::exit(0);
        }
    })?;
    let train_part = match checkpoint.settings.split {
        Some(split) => format!("the train part of {split} of {source}"),
        None => source,
    };
    let count = |group: Group| counts[group as usize];
    say!(
        "\n{} in the training data ({train_part}):",
        count(Group::Train)
    );
    list(Some(Group::Train), false)?;
    for (group, name) in [(Group::Dev, "dev"), (Group::Test, "test")] {
        if counts[group as usize] > 0 {
            say!("\n{} in the {name} part:", count(group));
            list(Some(group), false)?;
        }
    }
    say!("\n{} new:", count(Group::New));
    list(Some(Group::New), false)?;
    Ok(())
}

/// True when stdout is a pipe whose reader has closed it (writing would fail with EPIPE).
#[cfg(unix)]
fn stdout_closed() -> bool {
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let mut fd = libc::pollfd {
        fd: 1,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no waiting.
    let ready = unsafe { libc::poll(&mut fd, 1, 0) };
    ready > 0 && fd.revents & (libc::POLLERR | libc::POLLHUP) != 0
}

#[cfg(not(unix))]
fn stdout_closed() -> bool {
    false
}

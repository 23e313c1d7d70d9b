//! `makemore sample`: names from a saved model, without training (makemore.py's
//! `--sample-only`), sorted into those that are in the training data and those that are new.

use std::collections::HashSet;
use std::path::PathBuf;

use serde_json::json;

use super::{describe_checkpoint, positive, put, say, training_words, ModelFlag, RngFlag};
use makemore::checkpoint::{Checkpoint, MODEL_FILE};
use makemore::data::{UnknownChar, Vocab};
use makemore::sample::{check_prefix, for_each_name, SampleOptions};

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
    let vocab = &checkpoint.settings.vocab;
    // Checked before anything is drawn or read.
    check_prefix(vocab, &args.prefix).map_err(|e| unknown_prefix_char(&e, vocab))?;
    let (words, source) = training_words(args.input.as_deref(), &checkpoint)?;
    let names = Names {
        args,
        checkpoint: &checkpoint,
        options: SampleOptions {
            temperature: args.temperature as f64,
            top_k: args.top_k.map(|k| k as usize),
            prefix: args.prefix.clone(),
        },
        parts: Parts::of(&words, &checkpoint),
    };
    if args.json {
        print_json(&names, source)
    } else {
        print_text(&names, source)
    }
}

/// The error of a `--prefix` with a character the model has no row or column for.
fn unknown_prefix_char(e: &UnknownChar, vocab: &Vocab) -> anyhow::Error {
    anyhow::anyhow!(
        "--prefix {:?} has the character {:?}, which the model never saw (it knows {vocab})",
        e.word,
        e.ch
    )
}

/// The training words as the run saw them, to tell which group a drawn name belongs to.
struct Parts {
    train: HashSet<String>,
    dev: HashSet<String>,
    test: HashSet<String>,
}

impl Parts {
    /// With a split, the run learned from its train part only.
    fn of(words: &[String], checkpoint: &Checkpoint) -> Parts {
        let set = |part: &[String]| part.iter().cloned().collect::<HashSet<String>>();
        match checkpoint.settings.split {
            Some(split) => {
                let parts = split.apply(words, checkpoint.settings.seed);
                Parts {
                    train: set(&parts.train),
                    dev: set(&parts.dev),
                    test: set(&parts.test),
                }
            }
            None => Parts {
                train: set(words),
                dev: HashSet::new(),
                test: HashSet::new(),
            },
        }
    }

    fn group_of(&self, name: &str) -> Group {
        if self.train.contains(name) {
            Group::Train
        } else if self.dev.contains(name) {
            Group::Dev
        } else if self.test.contains(name) {
            Group::Test
        } else {
            Group::New
        }
    }
}

/// The names one run asks for, and the words to sort them by. The names are drawn again for
/// each group they are printed in (the same seed gives the same names), so that memory holds a
/// few blocks of them, however many are asked for.
struct Names<'a> {
    args: &'a Args,
    checkpoint: &'a Checkpoint,
    options: SampleOptions,
    parts: Parts,
}

impl Names<'_> {
    /// Draws all the names, in order, handing each to `emit`.
    fn draw(&self, emit: &mut dyn FnMut(&str)) -> anyhow::Result<()> {
        let vocab = &self.checkpoint.settings.vocab;
        for_each_name(
            self.args.model.probs(self.checkpoint),
            vocab,
            self.args.num,
            self.args.seed,
            self.args.rng.into(),
            &self.options,
            |name| {
                emit(name);
                true
            },
        )
        .map_err(|e| unknown_prefix_char(&e, vocab))
    }

    /// Writes the names of one group (all of them with `None`), as text lines or JSON strings,
    /// through one buffer (a write per name would cost more than drawing it).
    fn list(&self, group: Option<Group>, json: bool) -> anyhow::Result<()> {
        use std::io::Write as _;
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let mut first = true;
        let mut failed = None;
        self.draw(&mut |name| {
            if failed.is_some() || group.is_some_and(|g| g != self.parts.group_of(name)) {
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
    }

    /// How many names fall in each group, indexed by `Group as usize`. This pass prints
    /// nothing, so it looks for a reader that went away (`| head`) itself, as a write would
    /// find it.
    fn count_groups(&self) -> anyhow::Result<[u64; 4]> {
        let mut counts = [0u64; 4];
        let mut drawn = 0u64;
        self.draw(&mut |name| {
            counts[self.parts.group_of(name) as usize] += 1;
            drawn += 1;
            if drawn.is_multiple_of(65_536) && stdout_closed() {
                std::process::exit(0);
            }
        })?;
        Ok(counts)
    }
}

/// One object, written as the names are drawn, its keys in the order serde_json sorts them:
/// the same line as a serialized map.
fn print_json(names: &Names, source: String) -> anyhow::Result<()> {
    let args = names.args;
    let field = |value: serde_json::Value| value.to_string();
    put!("{{\"event\":\"samples\",\"in_dev\":[");
    names.list(Some(Group::Dev), true)?;
    put!("],\"in_test\":[");
    names.list(Some(Group::Test), true)?;
    put!("],\"in_training_data\":[");
    names.list(Some(Group::Train), true)?;
    put!(
        "],\"model\":{},\"names\":[",
        field(args.model.name().into())
    );
    names.list(None, true)?;
    put!("],\"new\":[");
    names.list(Some(Group::New), true)?;
    put!(
        "],\"prefix\":{},\"seed\":{},\"temperature\":{},\"top_k\":{},\"training_words\":{}}}",
        field(args.prefix.clone().into()),
        args.seed,
        field(json!(args.temperature)),
        field(json!(args.top_k)),
        field(source.into())
    );
    say!("");
    Ok(())
}

/// The model and the sampler's settings, then each group under a header with its count (a
/// first pass counts them), the dev and test parts only when they have names.
fn print_text(names: &Names, source: String) -> anyhow::Result<()> {
    let (args, checkpoint) = (names.args, names.checkpoint);
    let path = args.work_dir.join(MODEL_FILE);
    say!(
        "model    {} ({})",
        args.model.name(),
        describe_checkpoint(&path, checkpoint)
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
    let counts = names.count_groups()?;
    let train_part = match checkpoint.settings.split {
        Some(split) => format!("the train part of {split} of {source}"),
        None => source,
    };
    let count = |group: Group| counts[group as usize];
    say!(
        "\n{} in the training data ({train_part}):",
        count(Group::Train)
    );
    names.list(Some(Group::Train), false)?;
    for (group, name) in [(Group::Dev, "dev"), (Group::Test, "test")] {
        if count(group) > 0 {
            say!("\n{} in the {name} part:", count(group));
            names.list(Some(group), false)?;
        }
    }
    say!("\n{} new:", count(Group::New));
    names.list(Some(Group::New), false)?;
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

//! `makemore sample`: names from a saved model, without training (makemore.py's
//! `--sample-only`), sorted into those that are in the training data and those that are new.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::json;

use super::{describe_checkpoint, flag_name, positive, put, say, training_words, ModelFlag};
use makemore::checkpoint::{Checkpoint, MODEL_FILE};
use makemore::sample::{for_each_name, prefix_symbols, shape_probs};
use makemore::RngKind;

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
    #[arg(long, value_enum, default_value_t = RngKind::Std)]
    rng: RngKind,
    /// The training words, to tell known names from new ones [default: the file the
    /// checkpoint was trained on, or the built-in names]
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// The most names one run draws: at least two bytes of output each, already gigabytes.
pub const MAX_NAMES: u64 = 1_000_000_000;

/// Where a drawn name belongs: makemore.py's "in train", "in test" and "new", dev beside test.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Group {
    Train,
    Dev,
    Test,
    New,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.num <= MAX_NAMES,
        "--num {} is more than the {} names one run draws; draw them in several runs with other --seed values",
        args.num,
        super::thousands(MAX_NAMES as usize)
    );
    let checkpoint = Checkpoint::load(&args.work_dir)?;
    let vocab = &checkpoint.settings.vocab;
    // Checked before anything is drawn or read.
    let prefix = prefix_symbols(vocab, &args.prefix).map_err(|ch| {
        let prefix = &args.prefix;
        anyhow::anyhow!("--prefix {prefix:?} has the character {ch:?}, which the model never saw (it knows {vocab})")
    })?;
    let (words, source) = training_words(args.input.as_deref(), &checkpoint)?;
    // With a split the run learned from its train part only; a word in two parts counts in
    // the first of train, dev, test.
    let mut groups = HashMap::new();
    let mut add = |part: Vec<String>, group| groups.extend(part.into_iter().map(|w| (w, group)));
    match checkpoint.settings.split {
        Some(split) => {
            let parts = split.apply(&words, checkpoint.settings.seed);
            add(parts.test, Group::Test);
            add(parts.dev, Group::Dev);
            add(parts.train, Group::Train);
        }
        None => add(words, Group::Train),
    }
    let table = args.model.probs(&checkpoint);
    let probs = shape_probs(table, vocab.len(), args.temperature, args.top_k);
    let names = Names {
        args,
        checkpoint: &checkpoint,
        groups,
        probs,
        prefix,
    };
    match args.json {
        true => print_json(&names, source),
        false => print_text(&names, source),
    }
}

/// The names one run asks for, and the training words' groups. The names are drawn again for
/// each group printed (the same seed, the same names), so that memory holds a few blocks.
struct Names<'a> {
    args: &'a Args,
    checkpoint: &'a Checkpoint,
    groups: HashMap<String, Group>,
    /// The model's table shaped by --temperature and --top-k.
    probs: Vec<f32>,
    prefix: Vec<u32>,
}

impl Names<'_> {
    fn group_of(&self, name: &str) -> Group {
        self.groups.get(name).copied().unwrap_or(Group::New)
    }

    /// Draws all the names, in order, handing each to `emit`.
    fn draw(&self, emit: &mut dyn FnMut(&str)) {
        let (args, vocab) = (self.args, &self.checkpoint.settings.vocab);
        let draws = (args.num, args.seed, args.rng);
        for_each_name(&self.probs, vocab, draws, &self.prefix, |name| {
            emit(name);
            true
        });
    }

    /// Writes the names of one group (all with `None`), as text lines or JSON strings, through
    /// one buffer (a write per name would cost more than drawing it).
    fn list(&self, group: Option<Group>, json: bool) -> anyhow::Result<()> {
        use std::io::Write as _;
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let (mut first, mut failed) = (true, None);
        self.draw(&mut |name| {
            if failed.is_some() || group.is_some_and(|g| g != self.group_of(name)) {
                return;
            }
            failed = match json {
                true => write!(out, "{}{}", if first { "" } else { "," }, json!(name)),
                false => writeln!(out, "  {name}"),
            }
            .err();
            first = false;
        });
        match failed.map_or_else(|| out.flush(), Err) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
            other => Ok(other?),
        }
    }
}

/// One object, written as the names are drawn, its keys in serde_json's sorted order.
fn print_json(names: &Names, source: String) -> anyhow::Result<()> {
    let args = names.args;
    put!("{{\"event\":\"samples\",\"in_dev\":[");
    names.list(Some(Group::Dev), true)?;
    put!("],\"in_test\":[");
    names.list(Some(Group::Test), true)?;
    put!("],\"in_training_data\":[");
    names.list(Some(Group::Train), true)?;
    put!("],\"model\":{},\"names\":[", json!(flag_name(args.model)));
    names.list(None, true)?;
    put!("],\"new\":[");
    names.list(Some(Group::New), true)?;
    let (prefix, top_k, source) = (json!(args.prefix), json!(args.top_k), json!(source));
    let (seed, temperature) = (args.seed, json!(args.temperature));
    say!("],\"prefix\":{prefix},\"seed\":{seed},\"temperature\":{temperature},\"top_k\":{top_k},\"training_words\":{source}}}");
    Ok(())
}

/// The model and the sampler's settings, then each group under a header with its count (a
/// first pass counts them; it prints nothing, so it looks for a reader that went away, as with
/// `| head`, itself), dev and test only when they have names.
fn print_text(names: &Names, source: String) -> anyhow::Result<()> {
    let (args, checkpoint) = (names.args, names.checkpoint);
    let model = describe_checkpoint(&args.work_dir.join(MODEL_FILE), checkpoint);
    say!("model    {} ({model})", flag_name(args.model));
    let top_k = args.top_k.map_or("all".to_string(), |k| k.to_string());
    let prefix = match args.prefix.as_str() {
        "" => String::new(),
        prefix => format!(", prefix {prefix:?}"),
    };
    let (num, seed, temperature) = (args.num, args.seed, args.temperature);
    say!("sampling {num} names, seed {seed}, temperature {temperature}, top-k {top_k}{prefix}");
    let (mut counts, mut drawn) = ([0u64; 4], 0u64);
    names.draw(&mut |name| {
        counts[names.group_of(name) as usize] += 1;
        drawn += 1;
        if drawn.is_multiple_of(65_536) && stdout_closed() {
            std::process::exit(0);
        }
    });
    let train_part = match checkpoint.settings.split {
        Some(split) => format!("the train part of {split} of {source}"),
        None => source,
    };
    let headers = [
        (Group::Train, format!("in the training data ({train_part})")),
        (Group::Dev, "in the dev part".into()),
        (Group::Test, "in the test part".into()),
        (Group::New, "new".into()),
    ];
    for (group, header) in headers {
        let count = counts[group as usize];
        if count > 0 || matches!(group, Group::Train | Group::New) {
            say!("\n{count} {header}:");
            names.list(Some(group), false)?;
        }
    }
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

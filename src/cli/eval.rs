//! `makemore eval`: how likely a saved model finds some words, pair by pair, as the lecture
//! scores "andrejq": each pair's probability and log-probability, then the log likelihood, the
//! negative log likelihood and its mean.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::json;

use super::{describe_checkpoint, read_words_held, say, thousands, ModelFlag};
use makemore::checkpoint::{Checkpoint, MODEL_FILE};
use makemore::data::Examples;
use makemore::model::context_label;

pub const EXAMPLE: &str = "Examples:
  makemore eval --word andrejq                   # the lecture's example, pair by pair
  makemore eval --word emma --word olivia --model neural
  makemore eval --input names.txt                # the mean NLL of a whole file
  makemore eval --input names.txt --pairs --json";

#[derive(clap::Args)]
pub struct Args {
    /// A word to score (repeat for more).
    #[arg(long, value_name = "WORD", required_unless_present = "input")]
    word: Vec<String>,
    /// A file of words to score, one per line.
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Print every pair of a file too (always on for --word).
    #[arg(long)]
    pairs: bool,
    /// Directory of the run, as given to `train`.
    #[arg(long, value_name = "DIR", default_value = "out")]
    work_dir: PathBuf,
    /// Which model scores the words.
    #[arg(long, value_enum, default_value_t = ModelFlag::Count)]
    model: ModelFlag,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let checkpoint = Checkpoint::load(&args.work_dir)?;
    let (vocab, k) = (&checkpoint.settings.vocab, checkpoint.settings.context_len);
    let mut words = args.word.clone();
    if let Some(path) = &args.input {
        let instead = "eval holds every example: score the file in parts";
        words.extend(read_words_held(path, instead)?);
    }
    // Every character must be in the vocabulary; the error names all the missing ones.
    if let Some(word) = words.iter().find(|w| w.contains(makemore::data::BOUNDARY)) {
        anyhow::bail!("the word {word:?} contains '.', which marks the start and end of words");
    }
    let unknown: BTreeSet<char> = (words.iter().flat_map(|w| w.chars()))
        .filter(|&c| vocab.index(c).is_none())
        .collect();
    let list: Vec<String> = unknown.iter().map(|c| format!("{c:?}")).collect();
    let (s, list) = (if list.len() > 1 { "s" } else { "" }, list.join(", "));
    anyhow::ensure!(
        list.is_empty(),
        "the model never saw the character{s} {list} (its vocabulary is {vocab})"
    );
    let examples = Examples::encode(&words, vocab, k)?;
    let probs = args.model.probs(&checkpoint);
    let show_pairs = args.pairs || args.input.is_none();
    if !args.json {
        let model = describe_checkpoint(&args.work_dir.join(MODEL_FILE), &checkpoint);
        say!("model    {} ({model})", super::flag_name(args.model));
    }
    // log likelihood = sum of log P[context, next] in f64; -inf once a pair has P = 0.
    let mut log_likelihood = 0.0f64;
    let mut impossible = BTreeSet::new();
    for (&context, &next) in examples.contexts.iter().zip(&examples.targets) {
        let p = probs[context as usize * vocab.len() + next as usize] as f64;
        let log_p = p.ln();
        log_likelihood += log_p;
        let mut pair = context_label(context as usize, vocab, k);
        pair.push(vocab.char(next));
        if show_pairs && args.json {
            let line = json!({"event": "pair", "pair": pair, "prob": p, "logprob": log_p});
            say!("{line}");
        } else if show_pairs {
            say!("{pair}: {p:.4} {log_p:.4}");
        }
        if p == 0.0 {
            impossible.insert(pair);
        }
    }
    let (n, nll) = (examples.len(), -log_likelihood);
    let mean = nll / n as f64;
    if args.json {
        let line = json!({"event": "total", "model": super::flag_name(args.model), "words": words.len(),
            "pairs": n, "log_likelihood": log_likelihood,
            "nll": nll, "mean_nll": mean,
            "impossible_pairs": impossible});
        say!("{line}");
        return Ok(());
    }
    let count =
        |n: usize, what| format!("{} {what}{}", thousands(n), if n == 1 { "" } else { "s" });
    say!("\n{}, {}", count(words.len(), "word"), count(n, "pair"));
    say!("log likelihood {log_likelihood:.4}");
    say!("nll            {nll:.4}");
    say!("mean nll       {mean:.4}");
    if !impossible.is_empty() {
        let list = impossible.into_iter().collect::<Vec<_>>().join(", ");
        say!("infinite: the model gives probability 0 to {list} (never seen; train with --smoothing above 0)");
    }
    Ok(())
}

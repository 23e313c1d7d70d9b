//! The lecture's notebook (makemore part 1, `makemore_part1_bigrams.ipynb`) walked in order:
//! every figure its cells print, computed here by the backend's kernels (counts, row
//! normalization, NLL, softmax, training) and PyTorch's generator ([`TorchGenerator`]), so that
//! `makemore lecture` can print them chapter by chapter, as the video shows them.
//!
//! [`walk`] computes everything once; [`CHAPTERS`] is the video's chapter list, which the
//! command uses to group the figures.

use crate::backend::{Backend, StepLoss, TrainOptions};
use crate::data::{Examples, Vocab, WordStats};
use crate::rng::RngKind;
use crate::sample::sample_names;
use crate::torch_rng::TorchGenerator;

/// One chapter of the video: its start time and title, as in the video's description.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chapter {
    pub number: usize,
    pub start: &'static str,
    pub title: &'static str,
}

const fn chapter(number: usize, start: &'static str, title: &'static str) -> Chapter {
    Chapter {
        number,
        start,
        title,
    }
}

/// The video's chapters ("The spelled-out intro to language modeling: building makemore").
pub const CHAPTERS: [Chapter; 24] = [
    chapter(1, "00:00:00", "intro"),
    chapter(2, "00:03:03", "reading and exploring the dataset"),
    chapter(3, "00:06:24", "exploring the bigrams in the dataset"),
    chapter(4, "00:09:24", "counting bigrams in a python dictionary"),
    chapter(
        5,
        "00:12:45",
        "counting bigrams in a 2D torch tensor (\"training the model\")",
    ),
    chapter(6, "00:18:19", "visualizing the bigram tensor"),
    chapter(
        7,
        "00:20:54",
        "deleting spurious (S) and (E) tokens in favor of a single . token",
    ),
    chapter(8, "00:24:02", "sampling from the model"),
    chapter(
        9,
        "00:36:17",
        "efficiency! vectorized normalization of the rows, tensor broadcasting",
    ),
    chapter(
        10,
        "00:50:14",
        "loss function (the negative log likelihood of the data under our model)",
    ),
    chapter(11, "01:00:50", "model smoothing with fake counts"),
    chapter(12, "01:02:57", "PART 2: the neural network approach: intro"),
    chapter(13, "01:05:26", "creating the bigram dataset for the neural net"),
    chapter(
        14,
        "01:10:01",
        "feeding integers into neural nets? one-hot encodings",
    ),
    chapter(
        15,
        "01:13:53",
        "the \"neural net\": one linear layer of neurons implemented with matrix multiplication",
    ),
    chapter(
        16,
        "01:18:46",
        "transforming neural net outputs into probabilities: the softmax",
    ),
    chapter(
        17,
        "01:26:17",
        "summary, preview to next steps, reference to micrograd",
    ),
    chapter(18, "01:35:49", "vectorized loss"),
    chapter(19, "01:38:36", "backward and update, in PyTorch"),
    chapter(20, "01:42:55", "putting everything together"),
    chapter(
        21,
        "01:47:49",
        "note 1: one-hot encoding really just selects a row of the next Linear layer's weight matrix",
    ),
    chapter(
        22,
        "01:50:18",
        "note 2: model smoothing as regularization loss",
    ),
    chapter(23, "01:54:31", "sampling from the neural net"),
    chapter(24, "01:56:16", "conclusion"),
];

/// The chapter `arg` names: its number (1-24) or a word of its title (the first chapter whose
/// title contains it, ignoring case).
pub fn find_chapter(arg: &str) -> Result<Chapter, String> {
    let arg = arg.trim();
    if let Ok(number) = arg.parse::<usize>() {
        return CHAPTERS
            .iter()
            .find(|c| c.number == number)
            .copied()
            .ok_or_else(|| format!("there is no chapter {number}: the chapters are 1 to 24"));
    }
    let word = arg.to_lowercase();
    if word.is_empty() {
        return Err("--chapter needs a number (1-24) or a word of a chapter's title".into());
    }
    CHAPTERS
        .iter()
        .find(|c| c.title.to_lowercase().contains(&word))
        .copied()
        .ok_or_else(|| format!("no chapter's title contains {arg:?}; the chapters are listed by `makemore lecture --help`"))
}

/// The settings of the walk: the lecture's unless changed.
#[derive(Clone, Copy, Debug)]
pub struct LectureConfig {
    /// `torch.Generator().manual_seed(seed)` in every cell that seeds one.
    pub seed: u64,
    /// The generator of W and of the samples.
    pub rng: RngKind,
    /// Updates `W -= 0.1 * grad` on the first word's examples (cells 602-605). The notebook's
    /// saved `loss.item()` (cell 603) is the loss after four of them.
    pub first_word_updates: usize,
    /// Full-batch steps `W -= 50 * grad` with `0.01 * mean(W^2)` (cell 716) before sampling.
    pub steps: usize,
}

impl Default for LectureConfig {
    fn default() -> Self {
        LectureConfig {
            seed: 2147483647,
            rng: RngKind::Torch,
            first_word_updates: 4,
            steps: NOTEBOOK_STEPS,
        }
    }
}

/// The step whose loss (before its update) the lecture's last run of the training cell printed
/// (2.481828...) to five digits: the notebook does not record how often the cell was run.
pub const NOTEBOOK_STEPS: usize = 267;

/// One of the first word's examples through the neural net (cell 560).
#[derive(Clone, Debug)]
pub struct ExampleWalk {
    pub input: u32,
    pub label: u32,
    /// softmax(W[input]), float32.
    pub probs: Vec<f32>,
    /// probs[label].
    pub prob: f32,
    /// log(prob), float32 as PyTorch computes it.
    pub log_likelihood: f32,
}

/// Every figure of the notebook, in the order its cells print them.
#[derive(Clone, Debug)]
pub struct Walk {
    pub source: String,
    pub vocab: Vocab,
    pub first_words: Vec<String>,
    pub stats: WordStats,
    /// The first word's bigrams with `<S>` and `<E>` (chapter 3).
    pub first_word_bigrams: Vec<(String, String)>,
    /// `sorted(b.items(), key=lambda kv: -kv[1])`: every bigram seen, most frequent first,
    /// ties in the order Python's dict met them (first occurrence in the words).
    pub bigrams: Vec<(String, String, u32)>,
    /// N, V x V.
    pub counts: Vec<u32>,
    pub examples: usize,
    /// `N[0] / N[0].sum()`.
    pub first_row_probs: Vec<f32>,
    /// `itos[torch.multinomial(p, 1, generator=g)]` with a fresh generator.
    pub first_draw: char,
    /// `torch.rand(3, generator=g)` (fresh generator) and it divided by its sum.
    pub rand3: [f32; 3],
    pub rand3_normalized: [f32; 3],
    /// `torch.multinomial(p, 100, replacement=True, generator=g)`, right after.
    pub draws: Vec<usize>,
    /// Five names from P = (N + 1) normalized, each with its closing `.`.
    pub count_names: Vec<String>,
    /// Mean NLL of all examples under P (smoothing 1).
    pub mean_nll: f64,
    /// `andrejq` under P: its log likelihood and number of bigrams; with smoothing 0 it is
    /// impossible (infinite NLL) when a pair in it was never seen. None when the vocabulary
    /// lacks one of its letters.
    pub andrejq: Option<(f64, usize, f64)>,
    /// The first word's examples: inputs xs and labels ys.
    pub xs: Vec<u32>,
    pub ys: Vec<u32>,
    /// W = torch.randn((V, V), generator=g).
    pub initial_weights: Vec<f32>,
    pub first_word_walk: Vec<ExampleWalk>,
    /// Mean of the five NLLs in float32 (`nlls.mean()`).
    pub first_word_mean_nll: f32,
    /// Loss on the first word's examples before each update `W -= 0.1 * grad` and after the last.
    pub first_word_losses: Vec<f64>,
    /// Full-batch losses before each step and after the last (`steps + 1` entries).
    pub losses: Vec<StepLoss>,
    /// Five names from softmax(W) after the steps, with their closing `.`.
    pub neural_names: Vec<String>,
}

/// The notebook, computed on `backend`.
pub fn walk<B: Backend>(
    backend: &mut B,
    words: &[String],
    source: &str,
    config: &LectureConfig,
) -> anyhow::Result<Walk> {
    anyhow::ensure!(!words.is_empty(), "{source} has no words");
    let vocab = Vocab::from_words(words);
    let v = vocab.len();
    let all = Examples::encode(words, &vocab, 1)?;
    let loaded = backend.load(&all)?;

    // Chapters 4-7: counting, on the device.
    let counts = backend.count_pairs(&loaded)?;
    let bigrams = sorted_bigrams(words, &vocab, &counts);
    let first_word_bigrams = bigram_tokens(&words[0]);

    // Chapter 8: the first row and the generator.
    let raw = backend.normalize_rows(&counts, v, 0.0)?;
    let first_row_probs = raw[..v].to_vec();
    let first_draw =
        vocab.char(TorchGenerator::new(config.seed).multinomial_one(&first_row_probs) as u32);
    let (rand3, rand3_normalized, draws) = rand3_and_draws(config.seed);

    // Chapters 9-11: P = (N + 1) normalized, its samples and its loss.
    let smoothed = backend.normalize_rows(&counts, v, 1.0)?;
    let count_names = five_names(&smoothed, &vocab, config);
    let mean_nll = backend.mean_nll(&smoothed, &loaded)?.mean();
    let andrejq = andrejq_likelihood(backend, &vocab, &smoothed, &raw)?;

    // Chapters 13-19: the first word through the neural net.
    let first = Examples::encode(&words[..1], &vocab, 1)?;
    let initial_weights = config.rng.standard_normal(v * v, config.seed);
    let softmax = backend.softmax_rows(&initial_weights, v)?;
    let first_word_walk = example_walks(&softmax, &first, v);
    // nlls.mean(), summed in float32.
    let nll_sum: f32 = first_word_walk.iter().map(|e| -e.log_likelihood).sum();
    let first_word_mean_nll = nll_sum / first_word_walk.len() as f32;
    let first_word_losses =
        first_word_descent(backend, &initial_weights, &first, config.first_word_updates)?;

    // Chapters 20-23: the full batch, then samples.
    let mut weights = initial_weights.clone();
    let losses = full_batch_descent(backend, &mut weights, &loaded, config.steps)?;
    let neural_probs = backend.softmax_rows(&weights, v)?;
    let neural_names = five_names(&neural_probs, &vocab, config);

    Ok(Walk {
        source: source.to_string(),
        first_words: words.iter().take(10).cloned().collect(),
        stats: WordStats::of(words),
        first_word_bigrams,
        bigrams,
        examples: all.len(),
        counts,
        first_row_probs,
        first_draw,
        rand3,
        rand3_normalized,
        draws,
        count_names,
        mean_nll,
        andrejq,
        xs: first.contexts,
        ys: first.targets,
        initial_weights,
        first_word_walk,
        first_word_mean_nll,
        first_word_losses,
        losses,
        neural_names,
        vocab,
    })
}

/// Cells 19-20: `p = torch.rand(3, generator=g)` from a fresh generator, p / p.sum(), then
/// `torch.multinomial(p, 100, replacement=True, generator=g)` from the same generator.
fn rand3_and_draws(seed: u64) -> ([f32; 3], [f32; 3], Vec<usize>) {
    let mut g = TorchGenerator::new(seed);
    let rand3 = [g.rand_f32(), g.rand_f32(), g.rand_f32()];
    let total = rand3[0] + rand3[1] + rand3[2];
    let rand3_normalized = rand3.map(|x| x / total);
    let draws = g.multinomial(&rand3_normalized, 100);
    (rand3, rand3_normalized, draws)
}

/// "andrejq" under the smoothed P: its log likelihood sum log P[x, y] over its bigrams, their
/// number, and its mean NLL under the unsmoothed P = N (infinite when a pair of it was never
/// seen). None when the vocabulary lacks one of its letters.
fn andrejq_likelihood<B: Backend>(
    backend: &mut B,
    vocab: &Vocab,
    smoothed: &[f32],
    raw: &[f32],
) -> anyhow::Result<Option<(f64, usize, f64)>> {
    match Examples::encode(&["andrejq"], vocab, 1) {
        Ok(word) => {
            let word = backend.load(&word)?;
            let nll = backend.mean_nll(smoothed, &word)?;
            let unsmoothed = backend.mean_nll(raw, &word)?.mean();
            Ok(Some((
                -nll.mean() * nll.examples as f64,
                nll.examples,
                unsmoothed,
            )))
        }
        Err(_) => Ok(None),
    }
}

/// Cell 560: each example (x, y) of `first` through the net: probs = softmax(W)[x] (`softmax`
/// is softmax(W), V x V), the probability probs[y] of the label and its log, in float32.
fn example_walks(softmax: &[f32], first: &Examples, v: usize) -> Vec<ExampleWalk> {
    first
        .contexts
        .iter()
        .zip(&first.targets)
        .map(|(&x, &y)| {
            let probs = softmax[x as usize * v..(x as usize + 1) * v].to_vec();
            let prob = probs[y as usize];
            ExampleWalk {
                input: x,
                label: y,
                probs,
                prob,
                log_likelihood: prob.ln(),
            }
        })
        .collect()
}

/// Cells 602-605: `updates` steps W -= 0.1 * dloss/dW on the first word's examples from W =
/// `initial_weights`, without regularization: the loss before each step and after the last.
fn first_word_descent<B: Backend>(
    backend: &mut B,
    initial_weights: &[f32],
    first: &Examples,
    updates: usize,
) -> anyhow::Result<Vec<f64>> {
    let first_loaded = backend.load(first)?;
    let mut weights = initial_weights.to_vec();
    let small = TrainOptions { lr: 0.1, reg: 0.0 };
    let mut losses: Vec<f64> = backend
        .train(
            &mut weights,
            &first_loaded,
            &small,
            updates,
            crate::NetForm::default(),
        )?
        .iter()
        .map(|l| l.total)
        .collect();
    losses.push(
        backend
            .loss_and_gradient(&weights, &first_loaded, 0.0, crate::NetForm::default())?
            .0
            .total,
    );
    Ok(losses)
}

/// Cell 716: `steps` full-batch steps W -= 50 * dloss/dW, loss = mean NLL + 0.01 * mean(W^2),
/// on the counts of `all`: the loss before each step and after the last; `weights` ends trained.
fn full_batch_descent<B: Backend>(
    backend: &mut B,
    weights: &mut [f32],
    all: &B::Examples,
    steps: usize,
) -> anyhow::Result<Vec<StepLoss>> {
    let lecture = TrainOptions {
        lr: 50.0,
        reg: 0.01,
    };
    let mut losses = backend.train_counts(weights, all, &lecture, steps)?;
    losses.push(
        backend
            .count_loss_and_gradient(weights, all, lecture.reg)?
            .0,
    );
    Ok(losses)
}

/// Five names sampled from the rows of `probs` (V x V), each with its closing `.`, as the
/// notebook prints them.
fn five_names(probs: &[f32], vocab: &Vocab, config: &LectureConfig) -> Vec<String> {
    let names = sample_names(probs, vocab, 5, config.seed, config.rng);
    names.into_iter().map(|n| format!("{n}.")).collect()
}

/// A word's bigrams as the dictionary cells write them: `<S>` first, `<E>` last.
fn bigram_tokens(word: &str) -> Vec<(String, String)> {
    let mut tokens = vec!["<S>".to_string()];
    tokens.extend(word.chars().map(String::from));
    tokens.push("<E>".to_string());
    tokens
        .windows(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect()
}

/// The counts of N listed as `sorted(b.items(), key=lambda kv: -kv[1])` lists the dictionary:
/// most frequent first; Python's sort is stable, so ties keep the order in which the loop
/// over the words first met each bigram.
fn sorted_bigrams(words: &[String], vocab: &Vocab, counts: &[u32]) -> Vec<(String, String, u32)> {
    let v = vocab.len();
    let mut first_seen = vec![usize::MAX; v * v];
    let mut order = 0;
    for word in words {
        let indices: Vec<usize> = std::iter::once(0)
            .chain(
                word.chars()
                    .filter_map(|c| vocab.index(c))
                    .map(|i| i as usize),
            )
            .chain(std::iter::once(0))
            .collect();
        for pair in indices.windows(2) {
            let cell = pair[0] * v + pair[1];
            if first_seen[cell] == usize::MAX {
                first_seen[cell] = order;
                order += 1;
            }
        }
    }
    let mut cells: Vec<usize> = (0..v * v).filter(|&i| counts[i] > 0).collect();
    cells.sort_by_key(|&i| (std::cmp::Reverse(counts[i]), first_seen[i]));
    let token = |index: usize, end: &str| match index {
        0 => end.to_string(),
        i => vocab.char(i as u32).to_string(),
    };
    cells
        .into_iter()
        .map(|i| (token(i / v, "<S>"), token(i % v, "<E>"), counts[i]))
        .collect()
}

/// The one-hot encoding of `xs` (cell 489's `plt.imshow(xenc)`) as a PNG: one row per example,
/// one column per symbol, in matplotlib's default colors (viridis: 0 dark purple, 1 yellow),
/// `cell` pixels per entry.
pub fn one_hot_png(xs: &[u32], num_cols: usize, cell: u32) -> anyhow::Result<Vec<u8>> {
    const ZERO: [u8; 3] = [68, 1, 84];
    const ONE: [u8; 3] = [253, 231, 37];
    let (width, height) = (num_cols as u32 * cell, xs.len() as u32 * cell);
    let mut rgb = Vec::with_capacity((width * height * 3) as usize);
    for &x in xs {
        for _ in 0..cell {
            for col in 0..num_cols {
                let color = if col == x as usize { ONE } else { ZERO };
                for _ in 0..cell {
                    rgb.extend_from_slice(&color);
                }
            }
        }
    }
    Ok(crate::plot::encode_png(&rgb, (width, height))?)
}

/// The figures of the notebook that cannot be reproduced, with the reason: the saved output
/// of each of these cells was produced from another state of the notebook than its code.
pub const UNREPRODUCIBLE: [(&str, &str); 7] = [
    (
        "N[0] (cell 159)",
        "the saved output is a float tensor of 27 ones, while N at that point holds int32 counts; the cell was last run while N held something else",
    ),
    (
        "log_likelihood, nll and nll/n (cell 435)",
        "the saved output (2.4765, with grad_fn=<AddBackward0>) was computed from a P that came out of the neural net (it carries a gradient), not from the counts of the cell above",
    ),
    (
        "xenc @ W (cell 493)",
        "W = torch.randn((27, 1)) draws from PyTorch's unseeded global generator, and the saved output is 5 x 27, so W was a 27 x 27 matrix when it ran",
    ),
    (
        "probs (cell 506)",
        "softmax of the unseeded W of cell 493",
    ),
    (
        "probs[0] (cell 509)",
        "first row of the unseeded probs of cell 506",
    ),
    (
        "the training cell's last loss (cell 716)",
        "2.481828451156616 is the loss before the update of the last of an unrecorded number of runs of the cell; here the loss passes it between steps 265 and 266 and matches it to 5 digits (2.4818) at step 266, not to the 16 shown",
    ),
    (
        "the probability of each correct character (cell 560), printed with 17 digits",
        "PyTorch's cell divides exp(x) by the sum of exp(x); softmax_rows subtracts the row maximum first, and a GPU's exp is not the CPU's, so the float32 results differ in the last bit or few: they match to 7 significant digits (the logs, NLLs and their average match to all digits on the CPU)",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chapters_by_number_and_word() {
        assert_eq!(find_chapter("1").unwrap().title, "intro");
        assert_eq!(find_chapter("24").unwrap().title, "conclusion");
        assert_eq!(find_chapter("softmax").unwrap().number, 16);
        assert_eq!(find_chapter("One-Hot").unwrap().number, 14);
        assert!(find_chapter("25").is_err());
        assert!(find_chapter("0").is_err());
        assert!(find_chapter("transformer").is_err());
    }

    #[test]
    fn bigrams_sort_like_python() {
        let words: Vec<String> = ["ab", "ba", "ab"].iter().map(|s| s.to_string()).collect();
        let vocab = Vocab::from_words(&words);
        let examples = Examples::encode(&words, &vocab, 1).unwrap();
        let counts = crate::CpuBackend.count_pairs(&examples).unwrap();
        let sorted = sorted_bigrams(&words, &vocab, &counts);
        let names: Vec<String> = sorted
            .iter()
            .map(|(a, b, n)| format!("{a}{b}{n}"))
            .collect();
        // .a, ab, b. met first (2 each); then .b, ba, a. (1 each).
        assert_eq!(names, ["<S>a2", "ab2", "b<E>2", "<S>b1", "ba1", "a<E>1"]);
    }

    #[test]
    fn one_hot_png_is_a_png() {
        let png = one_hot_png(&[0, 2], 3, 4).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
}

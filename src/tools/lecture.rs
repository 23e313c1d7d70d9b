//! The lecture's notebook (makemore part 1, `makemore_part1_bigrams.ipynb`) walked in order:
//! its chapters, and what the backend computes of it for `makemore lecture` to print.

use anyhow::anyhow;

use crate::backend::{Backend, StepLoss, TrainOptions};
use crate::data::{Examples, Vocab};
use crate::rng::RngKind;
use crate::sample::sample_names;
use crate::tools::check::LECTURE;

/// One chapter of the video: its number, start time and title.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chapter {
    pub number: usize,
    pub start: &'static str,
    pub title: &'static str,
}

/// The video's chapters ("The spelled-out intro to language modeling: building makemore").
const CHAPTERS: &str = "\
00:00:00 intro
00:03:03 reading and exploring the dataset
00:06:24 exploring the bigrams in the dataset
00:09:24 counting bigrams in a python dictionary
00:12:45 counting bigrams in a 2D torch tensor (\"training the model\")
00:18:19 visualizing the bigram tensor
00:20:54 deleting spurious (S) and (E) tokens in favor of a single . token
00:24:02 sampling from the model
00:36:17 efficiency! vectorized normalization of the rows, tensor broadcasting
00:50:14 loss function (the negative log likelihood of the data under our model)
01:00:50 model smoothing with fake counts
01:02:57 PART 2: the neural network approach: intro
01:05:26 creating the bigram dataset for the neural net
01:10:01 feeding integers into neural nets? one-hot encodings
01:13:53 the \"neural net\": one linear layer of neurons implemented with matrix multiplication
01:18:46 transforming neural net outputs into probabilities: the softmax
01:26:17 summary, preview to next steps, reference to micrograd
01:35:49 vectorized loss
01:38:36 backward and update, in PyTorch
01:42:55 putting everything together
01:47:49 note 1: one-hot encoding really just selects a row of the next Linear layer's weight matrix
01:50:18 note 2: model smoothing as regularization loss
01:54:31 sampling from the neural net
01:56:16 conclusion";

/// The video's chapters, in order.
pub fn chapters() -> impl Iterator<Item = Chapter> {
    (1..).zip(CHAPTERS.lines()).map(|(number, line)| Chapter {
        number,
        start: &line[..8],
        title: &line[9..],
    })
}

/// The chapter `arg` names: its number (1-24) or a word of its title (the first, in any case).
pub fn find_chapter(arg: &str) -> anyhow::Result<Chapter> {
    let arg = arg.trim();
    if let Ok(number) = arg.parse::<usize>() {
        let none = || anyhow!("there is no chapter {number}: the chapters are 1 to 24");
        return chapters().find(|c| c.number == number).ok_or_else(none);
    }
    anyhow::ensure!(
        !arg.is_empty(),
        "--chapter needs a number (1-24) or a word of a chapter's title"
    );
    let word = arg.to_lowercase();
    let found = chapters().find(|c| c.title.to_lowercase().contains(&word));
    found.ok_or_else(|| anyhow!("no chapter's title contains {arg:?}; the chapters are listed by `makemore lecture --help`"))
}

/// The notebook's figures that cannot be reproduced, one `figure: reason` a line: the saved
/// output of each of these cells was produced from another state of the notebook than its code.
const UNREPRODUCIBLE: &str = "\
N[0] (cell 159): the saved output is a float tensor of 27 ones, while N at that point holds int32 counts; the cell was last run while N held something else
log_likelihood, nll and nll/n (cell 435): the saved output (2.4765, with grad_fn=<AddBackward0>) was computed from a P that came out of the neural net (it carries a gradient), not from the counts of the cell above
xenc @ W (cell 493): W = torch.randn((27, 1)) draws from PyTorch's unseeded global generator, and the saved output is 5 x 27, so W was a 27 x 27 matrix when it ran
probs (cell 506): softmax of the unseeded W of cell 493
probs[0] (cell 509): first row of the unseeded probs of cell 506
the training cell's last loss (cell 716): 2.481828451156616 is the loss before the update of the last of an unrecorded number of runs of the cell; here the loss passes it between steps 265 and 266 and matches it to 5 digits (2.4818) at step 266, not to the 16 shown
the probability of each correct character (cell 560), printed with 17 digits: PyTorch's cell divides exp(x) by the sum of exp(x); softmax_rows subtracts the row maximum first, and a GPU's exp is not the CPU's, so the float32 results differ in the last bit or few: they match to 7 significant digits (the logs, NLLs and their average match to all digits on the CPU)";

/// The unreproducible figures as (figure, reason).
pub fn unreproducible() -> impl Iterator<Item = (&'static str, &'static str)> {
    UNREPRODUCIBLE
        .lines()
        .map(|line| line.split_once(": ").expect("figure: reason"))
}

/// Updates `W -= 0.1 * grad` on the first word's examples (cells 602-605): the notebook's saved
/// `loss.item()` (cell 603) is the loss after four of them.
const FIRST_WORD_UPDATES: usize = 4;

/// Full-batch steps `W -= 50 * grad` with `0.01 * mean(W^2)` (cell 716): the step whose loss the
/// notebook's last print (2.481828...) matches to five digits; how often the cell ran is unknown.
pub const NOTEBOOK_STEPS: usize = 267;

/// What the backend computes of the notebook, and what the figures are drawn from.
pub struct Walk<'a> {
    pub words: &'a [String],
    pub source: &'a str,
    pub seed: u64,
    pub rng: RngKind,
    pub vocab: Vocab,
    /// Every example, and the first word's: inputs xs and labels ys.
    pub all: Examples,
    pub first: Examples,
    /// N, V x V, and P normalized by rows from N (`raw`) and from N + 1 (`smoothed`).
    pub counts: Vec<u32>,
    pub raw: Vec<f32>,
    pub smoothed: Vec<f32>,
    /// The mean NLL of every example under the smoothed P.
    pub mean_nll: f64,
    /// `andrejq`: its log likelihood under the smoothed P, its number of bigrams and its mean
    /// NLL under the raw P (infinite when a pair was never seen); None when a letter of it is
    /// not in the vocabulary.
    pub andrejq: Option<(f64, usize, f64)>,
    /// W = torch.randn((V, V), generator=g), and softmax(W) by rows.
    pub weights: Vec<f32>,
    pub probs: Vec<f32>,
    /// The loss on the first word's examples before each update and after the last.
    pub first_word_losses: Vec<StepLoss>,
    /// The full batch's losses before each step and after the last, and softmax(W) after.
    pub losses: Vec<StepLoss>,
    pub trained_probs: Vec<f32>,
}

/// The notebook on `b`: every call into the backend is here.
pub fn walk<'a, B: Backend>(
    b: &mut B,
    words: &'a [String],
    source: &'a str,
    seed: u64,
    rng: RngKind,
) -> anyhow::Result<Walk<'a>> {
    anyhow::ensure!(!words.is_empty(), "{source} has no words");
    let vocab = Vocab::from_words(words);
    let v = vocab.len();
    let all = Examples::encode(words, &vocab, 1)?;
    let first = Examples::encode(&words[..1], &vocab, 1)?;
    let (on_all, on_first) = (b.load(&all)?, b.load(&first)?);
    let counts = b.count_pairs(&on_all)?;
    let raw = b.normalize_rows(&counts, v, 0.0)?;
    let smoothed = b.normalize_rows(&counts, v, 1.0)?;
    let andrejq = match Examples::encode(&["andrejq"], &vocab, 1) {
        Ok(word) => {
            let word = b.load(&word)?;
            let nll = b.mean_nll(&smoothed, &word)?;
            let ll = -nll.mean() * nll.examples as f64;
            Some((ll, nll.examples, b.mean_nll(&raw, &word)?.mean()))
        }
        Err(_) => None,
    };
    let weights = rng.standard_normal(v * v, seed);
    // W -= 0.1 * grad example by example on the first word; W -= 50 * grad from the counts.
    let (form, mut w) = (crate::NetForm::default(), weights.clone());
    let options = TrainOptions { lr: 0.1, reg: 0.0 };
    let mut first_word_losses = b.train(&mut w, &on_first, &options, FIRST_WORD_UPDATES, form)?;
    first_word_losses.push(b.loss_and_gradient(&w, &on_first, 0.0, form)?.0);
    let mut w = weights.clone();
    let mut losses = b.train_counts(&mut w, &on_all, &LECTURE, NOTEBOOK_STEPS)?;
    losses.push(b.count_loss_and_gradient(&w, &on_all, 0.01)?.0);
    Ok(Walk {
        probs: b.softmax_rows(&weights, v)?,
        trained_probs: b.softmax_rows(&w, v)?,
        words,
        source,
        seed,
        rng,
        vocab,
        all,
        first,
        counts,
        raw,
        mean_nll: b.mean_nll(&smoothed, &on_all)?.mean(),
        smoothed,
        andrejq,
        weights,
        first_word_losses,
        losses,
    })
}

impl Walk<'_> {
    /// Row `i` of a V x V matrix.
    pub fn row<'m, T>(&self, matrix: &'m [T], i: u32) -> &'m [T] {
        let v = self.vocab.len();
        &matrix[i as usize * v..][..v]
    }

    /// Five names sampled from the rows of `probs`, each with its closing `.`.
    pub fn five_names(&self, probs: &[f32]) -> Vec<String> {
        let names = sample_names(probs, &self.vocab, 5, self.seed, self.rng);
        names.into_iter().map(|n| format!("{n}.")).collect()
    }
}

/// Symbol `index` as the dictionary cells write it: `dot` (`<S>` or `<E>`) for `.`.
pub fn token(vocab: &Vocab, index: u32, dot: &str) -> String {
    match index {
        0 => dot.to_string(),
        i => vocab.char(i).to_string(),
    }
}

/// The counts of N as `sorted(b.items(), key=lambda kv: -kv[1])` lists the dictionary: most
/// frequent first; Python's sort is stable, so ties keep the order in which the loop over the
/// words (`all`, in order) first met each bigram.
pub fn sorted_bigrams(all: &Examples, vocab: &Vocab, counts: &[u32]) -> Vec<(String, String, u32)> {
    let v = vocab.len();
    let mut first_seen = vec![usize::MAX; v * v];
    let pairs = all.contexts.iter().zip(&all.targets).enumerate();
    for (order, (&x, &y)) in pairs.rev() {
        first_seen[x as usize * v + y as usize] = order;
    }
    let mut cells: Vec<usize> = (0..v * v).filter(|&i| counts[i] > 0).collect();
    cells.sort_by_key(|&i| (std::cmp::Reverse(counts[i]), first_seen[i]));
    let cell = |i: usize| {
        let (x, y) = ((i / v) as u32, (i % v) as u32);
        (token(vocab, x, "<S>"), token(vocab, y, "<E>"), counts[i])
    };
    cells.into_iter().map(cell).collect()
}

/// The one-hot encoding of `xs` (cell 489's `plt.imshow(xenc)`) as a PNG, `cell` pixels per
/// entry, in matplotlib's default viridis (0 dark purple, 1 yellow).
pub fn one_hot_png(xs: &[u32], num_cols: usize, cell: u32) -> anyhow::Result<Vec<u8>> {
    const ZERO: [u8; 3] = [68, 1, 84];
    const ONE: [u8; 3] = [253, 231, 37];
    let (width, height) = (num_cols as u32 * cell, xs.len() as u32 * cell);
    let mut rgb = Vec::with_capacity((width * height * 3) as usize);
    for &x in xs {
        for _ in 0..cell {
            for col in 0..num_cols {
                let color = if col == x as usize { ONE } else { ZERO };
                (0..cell).for_each(|_| rgb.extend_from_slice(&color));
            }
        }
    }
    crate::tools::plot::encode_png(&rgb, (width, height))
}

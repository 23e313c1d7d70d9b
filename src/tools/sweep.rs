//! Tuning on dev (exercise E03): one model trained on the training words for each strength of
//! its regularizer (the count model's smoothing, the neural model's L2 `reg * mean(W^2)`), each
//! scored on dev by its data loss (mean NLL, without the penalty); the best on dev is chosen,
//! and only then is test scored, once.

use crate::backend::{Backend, NetForm, TrainOptions};
use crate::data::Vocab;
use crate::model::{init_weights, CountModel};
use crate::rng::RngKind;
use crate::split::Split;
use crate::train::{load_parts, score_part};

/// The strengths tried when none are given.
pub const DEFAULT_STRENGTHS: [f32; 8] = [0.0, 0.01, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0];

/// The model a sweep tunes (also the `--model` flag of `sweep`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SweepModel {
    /// The count model; the strengths are smoothings.
    Count,
    /// The neural model; the strengths are L2 penalties (reg).
    Neural,
}

impl SweepModel {
    /// The model's name and its strength's.
    pub fn names(self) -> (&'static str, &'static str) {
        match self {
            SweepModel::Count => ("count", "smoothing"),
            SweepModel::Neural => ("neural", "reg"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct SweepConfig {
    pub model: SweepModel,
    pub strengths: Vec<f32>,
    pub split: Split,
    pub context_len: usize,
    /// Seed of the split and of W's initialization (the same W for every strength).
    pub seed: u64,
    /// Steps and learning rate of the neural model.
    pub steps: usize,
    pub lr: f32,
}

/// One strength's mean NLL on train and dev (infinite when an example has probability zero).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SweepRow {
    pub strength: f32,
    pub train: f64,
    pub dev: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SweepResult {
    pub rows: Vec<SweepRow>,
    /// Index in `rows` of the lowest dev loss (the first on ties).
    pub best: usize,
    /// The chosen strength's mean NLL on test.
    pub test: f64,
    /// Words and examples in train, dev and test.
    pub words: [usize; 3],
    pub examples: [usize; 3],
}

/// The index of the smallest loss (infinite losses lose to finite ones; NaN never wins; the
/// first of equals wins).
pub fn best_index(losses: &[f64]) -> Option<usize> {
    let finite = (0..losses.len()).filter(|&i| !losses[i].is_nan());
    finite.reduce(|best, i| if losses[i] < losses[best] { i } else { best })
}

/// Runs the sweep on `backend`. Dev and test must not be empty.
pub fn run<B: Backend>(
    backend: &mut B,
    words: &[String],
    config: &SweepConfig,
) -> anyhow::Result<SweepResult> {
    anyhow::ensure!(!config.strengths.is_empty(), "no strengths to sweep");
    let vocab = Vocab::from_words(words);
    let k = config.context_len;
    let parts = load_parts(backend, words, &vocab, k, Some(config.split), config.seed)?;
    let w = &parts.words;
    let part_words = [w.train.len(), w.dev.len(), w.test.len()];
    for (name, n) in [("dev", part_words[1]), ("test", part_words[2])] {
        anyhow::ensure!(
            n > 0,
            "the split {} leaves the {name} part with no words; a sweep needs dev and test",
            config.split
        );
    }
    let examples = [&parts.train, &parts.dev, &parts.test].map(|p| p.0.len());
    let none = || anyhow::anyhow!("a part of the split has no examples");
    // The counts do not depend on the smoothing: counted once, normalized per strength.
    let count_model = (config.model == SweepModel::Count)
        .then(|| CountModel::fit(backend, &parts.train.1, &vocab, k, 0.0))
        .transpose()?;
    // A candidate is the count model's probabilities or the net's weights.
    let score = |backend: &mut B, candidate: &[f32], part| {
        score_part(part, |e| match config.model {
            SweepModel::Count => Ok(backend.mean_nll(candidate, e)?.mean()),
            SweepModel::Neural => backend.forward_loss(candidate, e, NetForm::default()),
        })?
        .ok_or_else(none)
    };
    let (mut rows, mut candidates) = (Vec::new(), Vec::new());
    for &strength in &config.strengths {
        let candidate = match &count_model {
            Some(model) => backend.normalize_rows(&model.counts, vocab.len(), strength)?,
            None => {
                let mut w = init_weights(&vocab, k, config.seed, RngKind::Std);
                let options = TrainOptions {
                    lr: config.lr,
                    reg: strength,
                };
                let (train, steps) = (&parts.train.1, config.steps);
                backend.train(&mut w, train, &options, steps, NetForm::default())?;
                w
            }
        };
        rows.push(SweepRow {
            strength,
            train: score(backend, &candidate, &parts.train)?,
            dev: score(backend, &candidate, &parts.dev)?,
        });
        candidates.push(candidate);
    }
    let best = best_index(&rows.iter().map(|r| r.dev).collect::<Vec<_>>()).ok_or_else(none)?;
    let test = score(backend, &candidates[best], &parts.test)?;
    Ok(SweepResult {
        rows,
        best,
        test,
        words: part_words,
        examples,
    })
}

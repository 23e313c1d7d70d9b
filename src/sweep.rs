//! Tuning on dev (exercise E03): one model trained on the training words for each strength of
//! its regularizer, each scored on dev; the best on dev is chosen, and only then is the test
//! set scored, once, for that strength.
//!
//! For the count model the strength is the smoothing (fake counts); for the neural model it
//! is the L2 penalty `reg * mean(W^2)`. The losses compared are data losses (mean NLL, without
//! the penalty), so that every strength is scored by the same yardstick.

use crate::backend::{Backend, NetForm, TrainOptions};
use crate::data::Vocab;
use crate::model::{CountModel, NeuralModel};
use crate::split::Split;
use crate::train::{load_parts, score_part};

/// The strengths tried when none are given.
pub const DEFAULT_STRENGTHS: [f32; 8] = [0.0, 0.01, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0];

/// Which model the sweep tunes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SweepModel {
    /// The count model; the strength is the smoothing.
    Count,
    /// The neural model; the strength is `reg`.
    Neural,
}

impl SweepModel {
    /// What the strength is called for this model.
    pub fn strength_name(self) -> &'static str {
        match self {
            SweepModel::Count => "smoothing",
            SweepModel::Neural => "reg",
        }
    }
}

/// What `sweep` does.
#[derive(Clone, Debug)]
pub struct SweepConfig {
    pub model: SweepModel,
    pub strengths: Vec<f32>,
    pub split: Split,
    pub context_len: usize,
    /// Seed of the split and of W's initialization (the same W for every strength).
    pub seed: u64,
    /// Gradient-descent steps of the neural model.
    pub steps: usize,
    /// Learning rate of the neural model.
    pub lr: f32,
}

/// One strength's losses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SweepRow {
    pub strength: f32,
    /// Mean NLL on the training words (infinite when an example has probability zero).
    pub train: f64,
    /// Mean NLL on the dev words.
    pub dev: f64,
}

/// The table, the choice and its test loss.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepResult {
    pub rows: Vec<SweepRow>,
    /// Index in `rows` of the lowest dev loss (the first on ties).
    pub best: usize,
    /// The chosen strength's mean NLL on the test words.
    pub test: f64,
    /// Words in train, dev and test.
    pub words: [usize; 3],
    /// Examples in train, dev and test.
    pub examples: [usize; 3],
}

/// The index of the smallest loss (infinite losses lose to finite ones; NaN never wins; the
/// first of equals wins).
pub fn best_index(losses: &[f64]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, &loss) in losses.iter().enumerate() {
        if loss.is_nan() {
            continue;
        }
        if best.is_none_or(|b| loss < losses[b]) {
            best = Some(i);
        }
    }
    best
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
    let part_words = [&parts.words.train, &parts.words.dev, &parts.words.test].map(|w| w.len());
    for (name, n) in [("dev", part_words[1]), ("test", part_words[2])] {
        anyhow::ensure!(
            n > 0,
            "the split {} leaves the {name} part with no words; a sweep needs dev and test",
            config.split
        );
    }
    let examples = [&parts.train, &parts.dev, &parts.test].map(|p| p.0.len());
    let none = || anyhow::anyhow!("a part of the split has no examples");

    // One candidate per strength: the count model's probabilities or the net's weights.
    let mut rows = Vec::with_capacity(config.strengths.len());
    let mut candidates: Vec<Vec<f32>> = Vec::with_capacity(config.strengths.len());
    let form = NetForm::default();
    // The counts do not depend on the smoothing: count once, normalize per strength.
    let counts = match config.model {
        SweepModel::Count => Some(CountModel::fit(backend, &parts.train.1, &vocab, k, 0.0)?.counts),
        SweepModel::Neural => None,
    };
    for &strength in &config.strengths {
        let candidate = match &counts {
            Some(counts) => backend.normalize_rows(counts, vocab.len(), strength)?,
            None => {
                let mut model = NeuralModel::init(&vocab, k, config.seed, crate::rng::RngKind::Std);
                let options = TrainOptions {
                    lr: config.lr,
                    reg: strength,
                };
                model.train(backend, &parts.train.1, &options, config.steps)?;
                model.weights
            }
        };
        let mut score = |part| {
            score_part(part, |e| match config.model {
                SweepModel::Count => Ok(backend.mean_nll(&candidate, e)?.mean()),
                SweepModel::Neural => backend.forward_loss(&candidate, e, form),
            })?
            .ok_or_else(none)
        };
        let (train, dev) = (score(&parts.train)?, score(&parts.dev)?);
        rows.push(SweepRow {
            strength,
            train,
            dev,
        });
        candidates.push(candidate);
    }
    // Chosen on dev; only now is test scored, once.
    let best = best_index(&rows.iter().map(|r| r.dev).collect::<Vec<_>>()).ok_or_else(none)?;
    let chosen = &candidates[best];
    let test = score_part(&parts.test, |e| match config.model {
        SweepModel::Count => Ok(backend.mean_nll(chosen, e)?.mean()),
        SweepModel::Neural => backend.forward_loss(chosen, e, form),
    })?
    .ok_or_else(none)?;
    Ok(SweepResult {
        rows,
        best,
        test,
        words: part_words,
        examples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_prefers_finite_and_the_first_of_equals() {
        assert_eq!(best_index(&[f64::INFINITY, 2.0, 1.5, 1.5]), Some(2));
        assert_eq!(best_index(&[f64::INFINITY, f64::INFINITY]), Some(0));
        assert_eq!(best_index(&[f64::NAN, 3.0]), Some(1));
        assert_eq!(best_index(&[]), None);
    }
}

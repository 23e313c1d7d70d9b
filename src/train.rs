//! The `train` command's pipeline, front to back: data, count model, neural model, samples.
//! It reports each stage as an [`Event`] as soon as the stage is done; the command line turns
//! events into text or JSON.

use crate::backend::{Backend, LossForm, NetForm, Nll, StepLoss, TrainOptions};
use crate::data::{Examples, Vocab, WordStats};
use crate::limits::check_context;
use crate::model::{CountModel, NeuralModel};
use crate::optim::{train_neural, Schedule};
use crate::sample::sample_names;
use crate::split::{Split, SplitWords};

/// What `train` does, from the command-line flags.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    /// K, the number of previous characters the models condition on.
    pub context_len: usize,
    /// Fake counts added to every cell of the count model.
    pub smoothing: f32,
    /// Seed of the weight initialization and of the samplers.
    pub seed: u64,
    /// Full-batch gradient-descent steps.
    pub steps: usize,
    pub options: TrainOptions,
    /// Names to draw from each model.
    pub samples: usize,
    /// Most frequent pairs to report.
    pub top_pairs: usize,
    /// Train/dev/test percentages; `None`: every word is for training, as in the lecture.
    pub split: Option<Split>,
    /// How the neural model computes its logits and loss.
    pub form: NetForm,
    /// Minibatches and the optimizer of the neural model (full-batch SGD by default).
    pub schedule: Schedule,
}

impl Default for TrainConfig {
    /// The lecture's settings: bigrams, smoothing 1, 100 steps of lr 50 with reg 0.01.
    fn default() -> TrainConfig {
        TrainConfig {
            context_len: 1,
            smoothing: 1.0,
            seed: 2147483647,
            steps: 100,
            options: TrainOptions {
                lr: 50.0,
                reg: 0.01,
            },
            samples: 10,
            top_pairs: 5,
            split: None,
            form: NetForm::default(),
            schedule: Schedule::default(),
        }
    }
}

/// A model's mean NLL on each part of the split; `None` for an empty part.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PartLosses {
    pub train: Option<f64>,
    pub dev: Option<f64>,
    pub test: Option<f64>,
}

/// The parts of the split, encoded and loaded on the backend.
pub struct LoadedParts<E> {
    pub words: SplitWords,
    pub train: (Examples, E),
    pub dev: (Examples, E),
    pub test: (Examples, E),
}

/// Encodes and loads the three parts (with no split: everything is train).
pub fn load_parts<B: Backend>(
    backend: &mut B,
    words: &[String],
    vocab: &Vocab,
    context_len: usize,
    split: Option<Split>,
    seed: u64,
) -> anyhow::Result<LoadedParts<B::Examples>> {
    check_context(vocab.len(), context_len, &backend.table_limit())?;
    let words = match split {
        Some(split) => split.apply(words, seed),
        None => SplitWords {
            train: words.to_vec(),
            dev: Vec::new(),
            test: Vec::new(),
        },
    };
    let mut load = |part: &[String]| -> anyhow::Result<(Examples, B::Examples)> {
        let examples = Examples::encode(part, vocab, context_len)?;
        let loaded = backend.load(&examples)?;
        Ok((examples, loaded))
    };
    let train = load(&words.train)?;
    let dev = load(&words.dev)?;
    let test = load(&words.test)?;
    Ok(LoadedParts {
        words,
        train,
        dev,
        test,
    })
}

/// `score` on a part, or `None` when the part has no examples.
pub fn score_part<E>(
    part: &(Examples, E),
    mut score: impl FnMut(&E) -> anyhow::Result<f64>,
) -> anyhow::Result<Option<f64>> {
    if part.0.is_empty() {
        Ok(None)
    } else {
        Ok(Some(score(&part.1)?))
    }
}

/// A stage of the pipeline, finished.
#[derive(Clone, Debug)]
pub enum Event {
    Data {
        source: String,
        stats: WordStats,
        vocab: Vocab,
        examples: usize,
        context_len: usize,
    },
    /// With `--split`: the words and examples of each part.
    Split {
        split: Split,
        words: [usize; 3],
        examples: [usize; 3],
    },
    CountModel {
        smoothing: f32,
        nll: Nll,
        distinct_pairs: usize,
        most_frequent: Vec<(String, u32)>,
    },
    NeuralModel {
        rows: usize,
        cols: usize,
        options: TrainOptions,
        /// The loss before each step.
        losses: Vec<StepLoss>,
        /// The loss of the trained weights.
        final_loss: StepLoss,
        count_nll: f64,
    },
    Samples {
        model: &'static str,
        names: Vec<String>,
    },
    /// With `--split`: both models, trained on train, scored on every part.
    Evaluation {
        count: PartLosses,
        neural: PartLosses,
    },
}

/// The figures `train` ends with.
#[derive(Clone, Debug)]
pub struct TrainSummary {
    pub count_nll: f64,
    pub final_loss: StepLoss,
    pub count_model: CountModel,
    pub neural_model: NeuralModel,
}

/// Runs the whole pipeline on `backend`, reporting each stage to `report`.
pub fn run<B: Backend>(
    backend: &mut B,
    words: &[String],
    source: &str,
    config: &TrainConfig,
    report: &mut dyn FnMut(Event),
) -> anyhow::Result<TrainSummary> {
    // The vocabulary of every word, so that dev and test have no unknown characters.
    let vocab = Vocab::from_words(words);
    let parts = load_parts(
        backend,
        words,
        &vocab,
        config.context_len,
        config.split,
        config.seed,
    )?;
    let part_examples = [&parts.train, &parts.dev, &parts.test].map(|p| p.0.len());
    report(Event::Data {
        source: source.to_string(),
        stats: WordStats::of(words),
        vocab: vocab.clone(),
        examples: part_examples.iter().sum(),
        context_len: config.context_len,
    });
    if let Some(split) = config.split {
        let w = &parts.words;
        report(Event::Split {
            split,
            words: [w.train.len(), w.dev.len(), w.test.len()],
            examples: part_examples,
        });
    }
    let (examples, loaded) = &parts.train;

    let count_model = CountModel::fit(
        backend,
        loaded,
        &vocab,
        config.context_len,
        config.smoothing,
    )?;
    let nll = backend.mean_nll(&count_model.probs, loaded)?;
    report(Event::CountModel {
        smoothing: config.smoothing,
        nll,
        distinct_pairs: count_model.distinct_pairs(),
        most_frequent: count_model.most_frequent(config.top_pairs),
    });

    let mut neural_model = NeuralModel::init(&vocab, config.context_len, config.seed);
    let losses = train_neural(
        backend,
        &mut neural_model.weights,
        examples,
        loaded,
        &config.options,
        config.steps,
        config.form,
        &config.schedule,
    )?;
    let (final_loss, _) = backend.loss_and_gradient_with(
        &neural_model.weights,
        loaded,
        config.options.reg,
        config.form,
    )?;
    check_finite(&losses, final_loss, &neural_model.weights, config.form.loss)?;
    report(Event::NeuralModel {
        rows: examples.num_rows,
        cols: examples.num_cols,
        options: config.options,
        losses,
        final_loss,
        count_nll: nll.mean(),
    });

    if config.split.is_some() {
        let mut count = |part: &(Examples, B::Examples)| {
            score_part(part, |e| {
                Ok(backend.mean_nll(&count_model.probs, e)?.mean())
            })
        };
        let count_losses = PartLosses {
            train: count(&parts.train)?,
            dev: count(&parts.dev)?,
            test: count(&parts.test)?,
        };
        let mut neural = |part: &(Examples, B::Examples)| {
            score_part(part, |e| {
                backend.forward_loss(&neural_model.weights, e, config.form)
            })
        };
        let neural_losses = PartLosses {
            train: neural(&parts.train)?,
            dev: neural(&parts.dev)?,
            test: neural(&parts.test)?,
        };
        report(Event::Evaluation {
            count: count_losses,
            neural: neural_losses,
        });
    }
    let count_names = sample_names(&count_model.probs, &vocab, config.samples, config.seed);
    report(Event::Samples {
        model: "count",
        names: count_names,
    });
    let neural_probs = neural_model.probs(backend)?;
    let neural_names = sample_names(&neural_probs, &vocab, config.samples, config.seed);
    report(Event::Samples {
        model: "neural",
        names: neural_names,
    });

    Ok(TrainSummary {
        count_nll: nll.mean(),
        final_loss,
        count_model,
        neural_model,
    })
}

/// The loss stopped being a finite number during training.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum NonFiniteLoss {
    #[error(
        "the explicit loss is {value} at step {step} (the logits reach magnitude {largest:.1}): in f32, exp() overflows to infinity above 88.7 and rounds to 0 below -103.9, so the lecture's exp-then-normalize chain breaks down; --loss fused subtracts each row's maximum first and stays finite"
    )]
    ExplicitOverflow {
        step: usize,
        value: f64,
        largest: f32,
    },
    #[error("the loss is {value} at step {step}: training diverged; try a smaller --lr")]
    Diverged { step: usize, value: f64 },
}

/// An error naming the first step whose loss is not finite (`losses` then the final loss).
pub fn check_finite(
    losses: &[StepLoss],
    final_loss: StepLoss,
    weights: &[f32],
    loss: LossForm,
) -> Result<(), NonFiniteLoss> {
    let all = losses.iter().chain(std::iter::once(&final_loss));
    let Some((step, bad)) = all.enumerate().find(|(_, l)| !l.total.is_finite()) else {
        return Ok(());
    };
    let largest = weights.iter().fold(0.0f32, |m, &w| m.max(w.abs()));
    Err(match loss {
        LossForm::Explicit if largest.is_finite() => NonFiniteLoss::ExplicitOverflow {
            step,
            value: bad.total,
            largest,
        },
        _ => NonFiniteLoss::Diverged {
            step,
            value: bad.total,
        },
    })
}

//! The `train` command's pipeline, front to back: data, count model, neural model, samples.
//! It reports each stage as an [`Event`] as soon as the stage is done; the command line turns
//! events into text or JSON.

use crate::backend::{Backend, Nll, StepLoss, TrainOptions};
use crate::data::{Examples, Vocab, WordStats};
use crate::model::{CountModel, NeuralModel};
use crate::sample::sample_names;

/// How the full-batch gradient is computed: both give the same losses (to 1e-5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GradientPath {
    /// From the count matrix: O(V^K * V) per step, whatever the number of examples.
    Counts,
    /// Example by example, as the lecture's code does: O(n * V) per step.
    Examples,
}

impl GradientPath {
    /// The name of the path, as the `--grad` flag spells it.
    pub fn name(self) -> &'static str {
        match self {
            GradientPath::Counts => "counts",
            GradientPath::Examples => "examples",
        }
    }
}

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
    /// How each step's gradient is computed.
    pub gradient: GradientPath,
    /// Names to draw from each model.
    pub samples: usize,
    /// Most frequent pairs to report.
    pub top_pairs: usize,
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
        /// How the gradient was computed.
        gradient: GradientPath,
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
    let vocab = Vocab::from_words(words);
    let examples = Examples::encode(words, &vocab, config.context_len)?;
    report(Event::Data {
        source: source.to_string(),
        stats: WordStats::of(words),
        vocab: vocab.clone(),
        examples: examples.len(),
        context_len: config.context_len,
    });
    let loaded = backend.load(&examples)?;

    let count_model = CountModel::fit(
        backend,
        &loaded,
        &vocab,
        config.context_len,
        config.smoothing,
    )?;
    let nll = backend.mean_nll(&count_model.probs, &loaded)?;
    report(Event::CountModel {
        smoothing: config.smoothing,
        nll,
        distinct_pairs: count_model.distinct_pairs(),
        most_frequent: count_model.most_frequent(config.top_pairs),
    });

    let mut neural_model = NeuralModel::init(&vocab, config.context_len, config.seed);
    let reg = config.options.reg;
    let (losses, (final_loss, _)) = match config.gradient {
        GradientPath::Counts => (
            neural_model.train_counts(backend, &loaded, &config.options, config.steps)?,
            backend.count_loss_and_gradient(&neural_model.weights, &loaded, reg)?,
        ),
        GradientPath::Examples => (
            neural_model.train(backend, &loaded, &config.options, config.steps)?,
            backend.loss_and_gradient(&neural_model.weights, &loaded, reg)?,
        ),
    };
    report(Event::NeuralModel {
        rows: examples.num_rows,
        cols: examples.num_cols,
        options: config.options,
        gradient: config.gradient,
        losses,
        final_loss,
        count_nll: nll.mean(),
    });

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

//! The `train` command's pipeline, front to back: data, count model, neural model, samples.
//! It reports each stage as an [`Event`] as soon as the stage is done; the command line turns
//! events into text or JSON.

use std::time::Instant;

use crate::backend::{Backend, Nll, StepLoss, TrainOptions};
use crate::data::{Examples, Vocab, WordStats};
use crate::model::{CountModel, Diverged, NeuralModel};
use crate::rng::RngKind;
use crate::sample::sample_names;

/// Where training starts from when it continues a saved run (`--resume`).
#[derive(Clone, Debug)]
pub struct Resume {
    /// The vocabulary and context length the saved weights were trained with.
    pub vocab: Vocab,
    pub context_len: usize,
    /// The saved weights W.
    pub weights: Vec<f32>,
    /// Steps already taken.
    pub steps_done: usize,
    /// Where the saved run is, for error messages.
    pub source: String,
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
    /// The generator behind the weight initialization and the samplers.
    pub rng: RngKind,
    /// Full-batch gradient-descent steps.
    pub steps: usize,
    pub options: TrainOptions,
    /// Names to draw from each model.
    pub samples: usize,
    /// Most frequent pairs to report.
    pub top_pairs: usize,
    /// Continue from saved weights instead of a fresh initialization.
    pub resume: Option<Resume>,
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
    /// Training is about to start: `steps` steps after `first_step` already taken.
    TrainingStarted {
        rows: usize,
        cols: usize,
        options: TrainOptions,
        first_step: usize,
        steps: usize,
    },
    /// A chunk of training steps is done: `losses[i]` is the loss before step `first_step + i`.
    Progress {
        first_step: usize,
        losses: Vec<StepLoss>,
        /// Steps still to go after this chunk.
        remaining: usize,
        /// Steps per second so far in this run.
        steps_per_second: f64,
    },
    NeuralModel {
        rows: usize,
        cols: usize,
        options: TrainOptions,
        /// The step the first loss belongs to (non-zero when resuming).
        first_step: usize,
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
    /// The loss before each step of this run, the first being step `first_step`.
    pub losses: Vec<StepLoss>,
    pub first_step: usize,
    pub final_loss: StepLoss,
    /// The softmax of every row of the trained W.
    pub neural_probs: Vec<f32>,
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
    let mut clock = StageClock::start();
    let loaded = backend.load(&examples)?;
    clock.lap("upload of the examples");

    let count_model = CountModel::fit(
        backend,
        &loaded,
        &vocab,
        config.context_len,
        config.smoothing,
    )?;
    clock.lap("count model (count_pairs, normalize_rows)");
    let nll = backend.mean_nll(&count_model.probs, &loaded)?;
    clock.lap("count model NLL (nll_gather)");
    report(Event::CountModel {
        smoothing: config.smoothing,
        nll,
        distinct_pairs: count_model.distinct_pairs(),
        most_frequent: count_model.most_frequent(config.top_pairs),
    });

    let (mut neural_model, first_step) = match &config.resume {
        None => (
            NeuralModel::init(&vocab, config.context_len, config.seed, config.rng),
            0,
        ),
        Some(resume) => (
            resumed_model(resume, &vocab, config.context_len)?,
            resume.steps_done,
        ),
    };
    report(Event::TrainingStarted {
        rows: examples.num_rows,
        cols: examples.num_cols,
        options: config.options,
        first_step,
        steps: config.steps,
    });
    let losses = train_in_chunks(
        backend,
        &mut neural_model,
        &loaded,
        config,
        first_step,
        report,
    )?;
    clock.lap("training");
    let (final_loss, _) =
        backend.loss_and_gradient(&neural_model.weights, &loaded, config.options.reg)?;
    clock.lap("final loss");
    report(Event::NeuralModel {
        rows: examples.num_rows,
        cols: examples.num_cols,
        options: config.options,
        first_step,
        losses: losses.clone(),
        final_loss,
        count_nll: nll.mean(),
    });

    let count_names = sample_names(
        &count_model.probs,
        &vocab,
        config.samples,
        config.seed,
        config.rng,
    );
    report(Event::Samples {
        model: "count",
        names: count_names,
    });
    let neural_probs = neural_model.probs(backend)?;
    let neural_names = sample_names(
        &neural_probs,
        &vocab,
        config.samples,
        config.seed,
        config.rng,
    );
    clock.lap("sampling (softmax_rows, host draws)");
    report(Event::Samples {
        model: "neural",
        names: neural_names,
    });

    Ok(TrainSummary {
        count_nll: nll.mean(),
        losses,
        first_step,
        final_loss,
        neural_probs,
        count_model,
        neural_model,
    })
}

/// The saved model, once its vocabulary and context length are checked against the data's.
fn resumed_model(
    resume: &Resume,
    vocab: &Vocab,
    context_len: usize,
) -> anyhow::Result<NeuralModel> {
    if resume.vocab != *vocab {
        anyhow::bail!(
            "{} was trained on a vocabulary of {} symbols ({}), this input has {} ({}); resume with the same words or train without --resume",
            resume.source,
            resume.vocab.len(),
            resume.vocab,
            vocab.len(),
            vocab
        );
    }
    if resume.context_len != context_len {
        anyhow::bail!(
            "{} was trained with --context {}, not {context_len}",
            resume.source,
            resume.context_len
        );
    }
    Ok(NeuralModel {
        vocab: vocab.clone(),
        context_len,
        weights: resume.weights.clone(),
    })
}

/// Steps per chunk: about a hundred progress reports per run, at most 64 steps between them.
fn chunk_size(steps: usize) -> usize {
    (steps / 100).clamp(1, 64)
}

/// Gradient descent in chunks, reporting after each. The same steps in one call or in many
/// give the same weights: each step only reads W and the examples.
fn train_in_chunks<B: Backend>(
    backend: &mut B,
    model: &mut NeuralModel,
    examples: &B::Examples,
    config: &TrainConfig,
    first_step: usize,
    report: &mut dyn FnMut(Event),
) -> anyhow::Result<Vec<StepLoss>> {
    let start = Instant::now();
    let mut losses = Vec::new();
    while losses.len() < config.steps {
        let chunk = chunk_size(config.steps).min(config.steps - losses.len());
        let chunk_start = Instant::now();
        let done = first_step + losses.len();
        let chunk_losses = model
            .train(backend, examples, &config.options, chunk)
            .map_err(|e| match e.downcast::<Diverged>() {
                // The chunk counts its steps from 0; the run counts them from its first.
                Ok(d) => Diverged {
                    step: done + d.step,
                    ..d
                }
                .into(),
                Err(other) => other,
            })?;
        log::debug!(
            "steps {}..{}: {:.1} ms",
            first_step + losses.len(),
            first_step + losses.len() + chunk,
            chunk_start.elapsed().as_secs_f64() * 1e3
        );
        report(Event::Progress {
            first_step: first_step + losses.len(),
            losses: chunk_losses.clone(),
            remaining: config.steps - losses.len() - chunk,
            steps_per_second: (losses.len() + chunk) as f64 / start.elapsed().as_secs_f64(),
        });
        losses.extend(chunk_losses);
    }
    Ok(losses)
}

/// Per-stage wall times for `RUST_LOG=debug`.
struct StageClock(Instant);

impl StageClock {
    fn start() -> StageClock {
        StageClock(Instant::now())
    }

    /// Logs the time since the last lap under `stage`.
    fn lap(&mut self, stage: &str) {
        log::debug!("{stage}: {:.1} ms", self.0.elapsed().as_secs_f64() * 1e3);
        self.0 = Instant::now();
    }
}

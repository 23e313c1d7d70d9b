//! The `train` command's pipeline, front to back: data, count model, neural model, samples.
//! It reports each stage as an [`Event`] as soon as the stage is done; the command line turns
//! events into text or JSON.

use std::time::Instant;

use anyhow::Context as _;

use crate::backend::{Backend, LossForm, NetForm, Nll, StepLoss, TrainOptions};
use crate::corpus::CountTable;
use crate::data::{Examples, Vocab, WordStats};
use crate::limits::check_context;
use crate::model::{CountModel, NeuralModel};
use crate::optim::{Descent, Optimizer, Schedule};
use crate::rng::RngKind;
use crate::sample::sample_names;
use crate::split::{Split, SplitWords};

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
    /// The generator behind the weight initialization and the samplers.
    pub rng: RngKind,
    /// Full-batch gradient-descent steps.
    pub steps: usize,
    pub options: TrainOptions,
    /// How each step's gradient is computed.
    pub gradient: GradientPath,
    /// Names to draw from each model.
    pub samples: usize,
    /// Most frequent pairs to report.
    pub top_pairs: usize,
    /// Continue from saved weights instead of a fresh initialization.
    pub resume: Option<Resume>,
    /// Train/dev/test percentages; `None`: every word is for training, as in the lecture.
    pub split: Option<Split>,
    /// With a split: the dev loss every this many steps (0: only at the end); the weights with
    /// the lowest dev loss are the ones kept, as makemore.py keeps its best checkpoint.
    pub eval_every: usize,
    /// How the neural model computes its logits and loss.
    pub form: NetForm,
    /// Minibatches and the optimizer of the neural model (full-batch SGD by default).
    pub schedule: Schedule,
}

impl TrainConfig {
    /// The gradient path training takes: the counts path computes full-batch SGD on the fused
    /// loss of the row select, so minibatches, AdamW, `--loss explicit` and `--one-hot` (whose
    /// point is the per-example computation) go example by example.
    pub fn effective_gradient(&self) -> GradientPath {
        let full_batch_sgd =
            self.schedule.batch_size == 0 && self.schedule.optimizer == Optimizer::Sgd;
        if full_batch_sgd && self.form == NetForm::default() {
            self.gradient
        } else {
            GradientPath::Examples
        }
    }
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
            rng: RngKind::Std,
            resume: None,
            gradient: GradientPath::Counts,
            split: None,
            eval_every: 0,
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
    /// With a split: the neural model's loss on dev after `step` steps, and whether it is the
    /// lowest so far (then these weights are the ones kept).
    DevLoss { step: usize, loss: f64, best: bool },
    NeuralModel {
        rows: usize,
        cols: usize,
        options: TrainOptions,
        /// The step the first loss belongs to (non-zero when resuming).
        first_step: usize,
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
    /// The loss before each step of this run, the first being step `first_step`.
    pub losses: Vec<StepLoss>,
    pub first_step: usize,
    pub final_loss: StepLoss,
    /// With a split: the dev loss at each evaluation, as (steps taken, loss).
    pub dev_losses: Vec<(usize, f64)>,
    /// With a split: the steps after which the kept weights (lowest dev loss) were taken.
    pub kept_step: Option<usize>,
    /// The softmax of every row of the trained W.
    pub neural_probs: Vec<f32>,
    pub count_model: CountModel,
    pub neural_model: NeuralModel,
}

/// Runs the whole pipeline on `backend`, reporting each stage to `report`, one function per
/// stage: text -> examples ([`data_stage`]), pairs -> counts -> P -> NLL ([`count_stage`]),
/// W -> loss -> gradient -> descent ([`neural_stage`]), both models on the split's parts
/// ([`evaluation_stage`]), and names from both models ([`sample_stage`]).
pub fn run<B: Backend>(
    backend: &mut B,
    words: &[String],
    source: &str,
    config: &TrainConfig,
    report: &mut dyn FnMut(Event),
) -> anyhow::Result<TrainSummary> {
    let (vocab, parts) = data_stage(backend, words, source, config, report)?;
    let mut clock = StageClock::start();
    if let Some(split) = config.split {
        let w = &parts.words;
        report(Event::Split {
            split,
            words: [w.train.len(), w.dev.len(), w.test.len()],
            examples: parts.example_counts(),
        });
    }
    let (count_model, nll) =
        count_stage(backend, &parts.train.1, &vocab, config, &mut clock, report)?;
    let (examples, loaded) = &parts.train;
    let dev = (config.split.is_some() && !parts.dev.0.is_empty()).then_some(&parts.dev.1);
    let trained = neural_stage(
        backend,
        (Source::Examples(examples, loaded), dev),
        (&vocab, (examples.num_rows, examples.num_cols)),
        config,
        nll,
        &mut clock,
        report,
    )?;
    if config.split.is_some() {
        evaluation_stage(
            backend,
            &parts,
            &count_model,
            &trained.model,
            config,
            report,
        )?;
    }
    let neural_probs = sample_stage(
        backend,
        &count_model,
        &trained.model,
        config,
        &mut clock,
        report,
    )?;
    Ok(TrainSummary {
        count_nll: nll.mean(),
        losses: trained.losses,
        first_step: trained.first_step,
        final_loss: trained.final_loss,
        dev_losses: trained.dev_losses,
        kept_step: trained.kept_step,
        neural_probs,
        count_model,
        neural_model: trained.model,
    })
}

impl<E> LoadedParts<E> {
    /// The number of examples in train, dev and test.
    fn example_counts(&self) -> [usize; 3] {
        [&self.train, &self.dev, &self.test].map(|p| p.0.len())
    }
}

/// Text -> vocabulary -> examples: every word's characters as (K previous, next) pairs,
/// split into parts and loaded on the backend. Reports [`Event::Data`].
fn data_stage<B: Backend>(
    backend: &mut B,
    words: &[String],
    source: &str,
    config: &TrainConfig,
    report: &mut dyn FnMut(Event),
) -> anyhow::Result<(Vocab, LoadedParts<B::Examples>)> {
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
    report(Event::Data {
        source: source.to_string(),
        stats: WordStats::of(words),
        vocab: vocab.clone(),
        examples: parts.example_counts().iter().sum(),
        context_len: config.context_len,
    });
    Ok((vocab, parts))
}

/// The count model on the training examples: `N[context, next]` counted, then
/// `P = (N + smoothing) / row sum`, scored by the mean NLL `-mean(log P[context, next])`.
/// Reports [`Event::CountModel`].
fn count_stage<B: Backend>(
    backend: &mut B,
    train: &B::Examples,
    vocab: &Vocab,
    config: &TrainConfig,
    clock: &mut StageClock,
    report: &mut dyn FnMut(Event),
) -> anyhow::Result<(CountModel, Nll)> {
    let count_model = CountModel::fit(backend, train, vocab, config.context_len, config.smoothing)?;
    clock.lap("count model (count_pairs, normalize_rows)");
    let nll = backend.mean_nll(&count_model.probs, train)?;
    clock.lap("count model NLL (nll_gather)");
    report(Event::CountModel {
        smoothing: config.smoothing,
        nll,
        distinct_pairs: count_model.distinct_pairs(),
        most_frequent: count_model.most_frequent(config.top_pairs),
    });
    Ok((count_model, nll))
}

/// What the neural model is trained from: the count table of a streamed file, or examples.
pub(crate) enum Source<'a, E> {
    Table(&'a CountTable),
    Examples(&'a Examples, &'a E),
}

/// What the steps read and write on the device for the whole run: the count table and W (the
/// counts path), or the examples and the per-example descent. W is read back for each dev
/// evaluation and at the end.
#[allow(clippy::large_enum_variant)]
enum TrainData<'a, B: Backend> {
    Counts {
        counts: B::Counts,
        weights: B::Buffer,
        grads: B::Buffer,
    },
    Examples(&'a Examples, &'a B::Examples, Descent<B>),
}

impl<'a, B: Backend> TrainData<'a, B> {
    /// The source on the device, on the gradient path `config` takes, W from `weights`.
    fn load(
        backend: &mut B,
        source: Source<'a, B::Examples>,
        weights: &[f32],
        config: &TrainConfig,
    ) -> anyhow::Result<TrainData<'a, B>> {
        let counts = match source {
            Source::Table(table) => backend.upload_counts(table)?,
            Source::Examples(examples, loaded) => match config.effective_gradient() {
                GradientPath::Counts => backend.count_table(loaded)?,
                GradientPath::Examples => {
                    let descent = Descent::new(backend, weights, &config.schedule)?;
                    return Ok(TrainData::Examples(examples, loaded, descent));
                }
            },
        };
        let grads = backend.zeros(weights.len())?;
        let weights = backend.upload(weights)?;
        Ok(TrainData::Counts {
            counts,
            weights,
            grads,
        })
    }

    /// W back on the host, where it lives on the device.
    fn weights_to(&self, backend: &mut B, model: &mut NeuralModel) -> anyhow::Result<()> {
        model.weights = match self {
            TrainData::Counts { weights, .. } => backend.read(weights)?,
            TrainData::Examples(_, _, descent) => backend.read(&descent.weights)?,
        };
        Ok(())
    }
}

/// What the neural stage hands on: the kept model and the losses that got it there.
pub(crate) struct TrainedNeural {
    /// With a split: the weights with the lowest dev loss; otherwise the last ones.
    pub model: NeuralModel,
    pub first_step: usize,
    pub losses: Vec<StepLoss>,
    pub final_loss: StepLoss,
    pub dev_losses: Vec<(usize, f64)>,
    pub kept_step: Option<usize>,
}

/// The neural model: W initialized (or resumed), then `config.steps` steps of
/// `W -= lr * grad(mean NLL(softmax(W[context])) + reg * mean(W^2))` on the training
/// examples (or from their count table alone), then the loss of the trained W. Reports
/// [`Event::TrainingStarted`], the progress of [`train_in_chunks`], and [`Event::NeuralModel`].
pub(crate) fn neural_stage<B: Backend>(
    backend: &mut B,
    (source, dev): (Source<'_, B::Examples>, Option<&B::Examples>),
    (vocab, (rows, cols)): (&Vocab, (usize, usize)),
    config: &TrainConfig,
    count_nll: Nll,
    clock: &mut StageClock,
    report: &mut dyn FnMut(Event),
) -> anyhow::Result<TrainedNeural> {
    let (mut model, first_step) = initial_model(vocab, config)?;
    report(Event::TrainingStarted {
        rows,
        cols,
        options: config.options,
        first_step,
        steps: config.steps,
    });
    let mut data = TrainData::load(backend, source, &model.weights, config)
        .with_context(|| format!("training stopped at step {first_step}"))?;
    let (losses, dev_losses, kept) = train_in_chunks(
        backend, &mut model, &mut data, dev, config, first_step, report,
    )?;
    clock.lap("training");
    let final_loss = final_loss(backend, &model.weights, &data, config)?;
    clock.lap("final loss");
    check_finite(&losses, final_loss, &model.weights, config.form.loss)
        .map_err(|e| e.after(first_step))?;
    report(Event::NeuralModel {
        rows,
        cols,
        options: config.options,
        first_step,
        gradient: config.effective_gradient(),
        losses: losses.clone(),
        final_loss,
        count_nll: count_nll.mean(),
    });
    // The model kept is the one with the lowest dev loss (the last one without a split).
    let kept_step = kept.map(|k| {
        model.weights = k.weights;
        k.step
    });
    Ok(TrainedNeural {
        model,
        first_step,
        losses,
        final_loss,
        dev_losses,
        kept_step,
    })
}

/// W before training, and the steps already taken: a fresh `W ~ N(0, 1)` from the seed, or
/// the saved weights when resuming.
pub(crate) fn initial_model(
    vocab: &Vocab,
    config: &TrainConfig,
) -> anyhow::Result<(NeuralModel, usize)> {
    Ok(match &config.resume {
        None => (
            NeuralModel::init(vocab, config.context_len, config.seed, config.rng),
            0,
        ),
        Some(resume) => (
            resumed_model(resume, vocab, config.context_len)?,
            resume.steps_done,
        ),
    })
}

/// The loss of the trained weights, computed on the gradient path training took (on the
/// counts path: one count_descent step with lr 0, on a copy of W).
fn final_loss<B: Backend>(
    backend: &mut B,
    weights: &[f32],
    data: &TrainData<'_, B>,
    config: &TrainConfig,
) -> anyhow::Result<StepLoss> {
    let reg = config.options.reg;
    match data {
        TrainData::Counts { counts, .. } => {
            let (mut copy, mut grads) = (backend.upload(weights)?, backend.zeros(weights.len())?);
            let mut losses = backend.losses(1)?;
            let options = TrainOptions { lr: 0.0, reg };
            backend.count_descent(&mut copy, &mut grads, counts, &options, 1, &mut losses)?;
            Ok(backend.read_losses(&losses)?[0])
        }
        TrainData::Examples(_, loaded, _) => Ok(backend
            .loss_and_gradient(weights, loaded, reg, config.form)?
            .0),
    }
}

/// With `--split`: both models, trained on train, scored on every part by their mean NLL.
/// Reports [`Event::Evaluation`].
fn evaluation_stage<B: Backend>(
    backend: &mut B,
    parts: &LoadedParts<B::Examples>,
    count_model: &CountModel,
    neural_model: &NeuralModel,
    config: &TrainConfig,
    report: &mut dyn FnMut(Event),
) -> anyhow::Result<()> {
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
    Ok(())
}

/// Names from both models: each character drawn from its row of P (the count model's, then
/// `softmax(W)` row by row for the neural model) until the end mark. Reports
/// [`Event::Samples`] twice and returns the neural model's probabilities.
pub(crate) fn sample_stage<B: Backend>(
    backend: &mut B,
    count_model: &CountModel,
    neural_model: &NeuralModel,
    config: &TrainConfig,
    clock: &mut StageClock,
    report: &mut dyn FnMut(Event),
) -> anyhow::Result<Vec<f32>> {
    let vocab = &count_model.vocab;
    let count_names = sample_names(
        &count_model.probs,
        vocab,
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
        vocab,
        config.samples,
        config.seed,
        config.rng,
    );
    clock.lap("sampling (softmax_rows, host draws)");
    report(Event::Samples {
        model: "neural",
        names: neural_names,
    });
    Ok(neural_probs)
}

/// The saved model, once its vocabulary and context length are checked against the data's.
pub(crate) fn resumed_model(
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

/// Steps per chunk: about ten progress reports per run (the text output prints every tenth
/// step), at most 100 steps between them. Each chunk is one submission and one readback, so
/// fewer chunks keep the device busy.
pub(crate) fn chunk_size(steps: usize) -> usize {
    (steps / 10).clamp(1, 100)
}

/// The weights with the lowest dev loss so far, and the steps taken when they were.
struct Kept {
    step: usize,
    dev_loss: f64,
    weights: Vec<f32>,
}

/// The dev loss at each evaluation, and the weights with the lowest one so far.
struct DevTracker<'a, E> {
    /// The dev examples; `None`: no evaluation.
    dev: Option<&'a E>,
    /// (steps taken, dev loss) at each evaluation.
    losses: Vec<(usize, f64)>,
    kept: Option<Kept>,
}

impl<E> DevTracker<'_, E> {
    /// The dev loss of `weights` after `step` steps; keeps them when it is the lowest so far.
    /// Reports [`Event::DevLoss`].
    fn evaluate<B: Backend<Examples = E>>(
        &mut self,
        backend: &mut B,
        weights: &[f32],
        step: usize,
        form: NetForm,
        report: &mut dyn FnMut(Event),
    ) -> anyhow::Result<()> {
        let Some(dev) = self.dev else { return Ok(()) };
        let loss = backend.forward_loss(weights, dev, form)?;
        let best = self.kept.as_ref().is_none_or(|k| loss < k.dev_loss);
        if best {
            self.kept = Some(Kept {
                step,
                dev_loss: loss,
                weights: weights.to_vec(),
            });
        }
        self.losses.push((step, loss));
        report(Event::DevLoss { step, loss, best });
        Ok(())
    }
}

/// Steps per chunk of [`train_in_chunks`].
fn chunk_len(config: &TrainConfig, stateless: bool) -> usize {
    // The GPU counts the pairs once per set of examples and keeps the counts on the device,
    // so the counts path's chunks cost one upload of W and one readback each.
    match config.effective_gradient() {
        GradientPath::Counts => chunk_size(config.steps),
        GradientPath::Examples if stateless => chunk_size(config.steps),
        GradientPath::Examples => config.steps.max(1),
    }
}

/// `steps` steps of gradient descent on the data; the loss before each.
fn train_chunk<B: Backend>(
    backend: &mut B,
    data: &mut TrainData<'_, B>,
    config: &TrainConfig,
    steps: usize,
) -> anyhow::Result<Vec<StepLoss>> {
    match data {
        TrainData::Counts {
            counts,
            weights,
            grads,
        } => {
            let mut losses = backend.losses(steps)?;
            let options = &config.options;
            backend.count_descent(weights, grads, counts, options, steps, &mut losses)?;
            backend.read_losses(&losses)
        }
        TrainData::Examples(examples, loaded, descent) => descent.steps(
            backend,
            (examples, loaded),
            &config.options,
            steps,
            config.form,
            &config.schedule,
        ),
    }
}

/// Reports a chunk of steps as one [`Event::Progress`], up to its first loss that is not
/// finite (`check_finite` names that step), and appends its losses to those of the run so far.
/// `steps` is the run's (first step, steps to take); `start` is when it began.
/// Returns whether every loss of the chunk was finite.
pub(crate) fn report_chunk(
    losses: &mut Vec<StepLoss>,
    chunk_losses: Vec<StepLoss>,
    (first_step, steps): (usize, usize),
    start: Instant,
    report: &mut dyn FnMut(Event),
) -> bool {
    let chunk = chunk_losses.len();
    let finite = chunk_losses
        .iter()
        .position(|l| !l.total.is_finite())
        .unwrap_or(chunk);
    report(Event::Progress {
        first_step: first_step + losses.len(),
        losses: chunk_losses[..finite].to_vec(),
        remaining: steps - losses.len() - finite,
        steps_per_second: (losses.len() + finite) as f64 / start.elapsed().as_secs_f64(),
    });
    losses.extend(chunk_losses);
    finite == chunk
}

/// Gradient descent in chunks, reporting after each, and stopping after the first chunk
/// whose loss is not finite. W and the optimizer's state stay on the device from chunk to
/// chunk; minibatches and AdamW run as one chunk, full-batch SGD in about ten.
///
/// With `dev` examples, the dev loss is measured every `config.eval_every` steps (full-batch
/// SGD only) and after the last step, and the weights with the lowest one are kept.
/// Returns the loss before each step, the dev losses as (steps taken, loss), and the kept
/// weights.
#[allow(clippy::type_complexity)]
fn train_in_chunks<B: Backend>(
    backend: &mut B,
    model: &mut NeuralModel,
    data: &mut TrainData<'_, B>,
    dev: Option<&B::Examples>,
    config: &TrainConfig,
    first_step: usize,
    report: &mut dyn FnMut(Event),
) -> anyhow::Result<(Vec<StepLoss>, Vec<(usize, f64)>, Option<Kept>)> {
    let stateless = config.schedule.batch_size == 0 && config.schedule.optimizer == Optimizer::Sgd;
    let chunk_len = chunk_len(config, stateless);
    let eval_every = if stateless && dev.is_some() {
        config.eval_every
    } else {
        0
    };
    let start = Instant::now();
    let mut losses = Vec::new();
    let mut tracker = DevTracker {
        dev,
        losses: Vec::new(),
        kept: None,
    };
    while losses.len() < config.steps {
        let mut chunk = chunk_len.min(config.steps - losses.len());
        if eval_every > 0 {
            // End the chunk at the next evaluation.
            chunk = chunk.min(eval_every - losses.len() % eval_every);
        }
        let chunk_start = Instant::now();
        let chunk_losses = train_chunk(backend, data, config, chunk)
            // A device lost or out of memory mid-run: say how far training got.
            .with_context(|| format!("training stopped at step {}", first_step + losses.len()))?;
        log::debug!(
            "steps {}..{}: {:.1} ms",
            first_step + losses.len(),
            first_step + losses.len() + chunk,
            chunk_start.elapsed().as_secs_f64() * 1e3
        );
        let steps = (first_step, config.steps);
        let finite = report_chunk(&mut losses, chunk_losses, steps, start, report);
        let done = losses.len();
        let evaluate = eval_every > 0 && done % eval_every == 0 && done < config.steps;
        if !finite || evaluate {
            data.weights_to(backend, model)?;
        }
        if !finite {
            return Ok((losses, tracker.losses, None));
        }
        if evaluate {
            tracker.evaluate(
                backend,
                &model.weights,
                first_step + done,
                config.form,
                report,
            )?;
        }
    }
    data.weights_to(backend, model)?;
    let done = losses.len();
    tracker.evaluate(
        backend,
        &model.weights,
        first_step + done,
        config.form,
        report,
    )?;
    Ok((losses, tracker.losses, tracker.kept))
}

/// Per-stage wall times for `RUST_LOG=debug`.
pub(crate) struct StageClock(Instant);

impl StageClock {
    pub(crate) fn start() -> StageClock {
        StageClock(Instant::now())
    }

    /// Logs the time since the last lap under `stage`.
    pub(crate) fn lap(&mut self, stage: &str) {
        log::debug!("{stage}: {:.1} ms", self.0.elapsed().as_secs_f64() * 1e3);
        self.0 = Instant::now();
    }
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

impl NonFiniteLoss {
    /// The same error with its step counted from `first_step` (a resumed run's steps go on
    /// from the saved run's).
    pub fn after(self, first_step: usize) -> NonFiniteLoss {
        match self {
            NonFiniteLoss::ExplicitOverflow {
                step,
                value,
                largest,
            } => NonFiniteLoss::ExplicitOverflow {
                step: step + first_step,
                value,
                largest,
            },
            NonFiniteLoss::Diverged { step, value } => NonFiniteLoss::Diverged {
                step: step + first_step,
                value,
            },
        }
    }
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

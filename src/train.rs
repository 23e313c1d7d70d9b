//! The `train` command's pipeline, front to back: data, count model, neural model, samples,
//! each stage reported as an [`Event`] (the command line prints them as text or JSON).

use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;

use crate::backend::{Backend, LossForm, NetForm, Nll, StepLoss, TrainOptions};
use crate::corpus::{check_countable, CountTable, PairEncoder, Scan};
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
    /// What the saved weights W were trained with.
    pub vocab: Vocab,
    pub context_len: usize,
    pub weights: Vec<f32>,
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
    /// As the `--grad` flag spells it.
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
    /// Seed of the weight initialization and of the samplers, drawn by `rng`.
    pub seed: u64,
    pub rng: RngKind,
    pub steps: usize,
    pub options: TrainOptions,
    pub gradient: GradientPath,
    /// Names to draw from each model.
    pub samples: usize,
    /// Most frequent pairs to report.
    pub top_pairs: usize,
    pub resume: Option<Resume>,
    /// Train/dev/test percentages; `None`: every word is for training, as in the lecture.
    pub split: Option<Split>,
    /// With a split: the dev loss every this many steps (0: only at the end); the weights with
    /// the lowest dev loss are kept, as makemore.py keeps its best checkpoint.
    pub eval_every: usize,
    pub form: NetForm,
    pub schedule: Schedule,
}

impl TrainConfig {
    /// The counts path computes full-batch SGD on the fused loss of the row select, so
    /// minibatches, AdamW, `--loss explicit` and `--one-hot` go example by example.
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
    Ok(LoadedParts {
        train: load(&words.train)?,
        dev: load(&words.dev)?,
        test: load(&words.test)?,
        words,
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
    /// `steps` steps after `first_step` already taken.
    TrainingStarted {
        rows: usize,
        cols: usize,
        options: TrainOptions,
        first_step: usize,
        steps: usize,
    },
    /// `losses[i]` is the loss before step `first_step + i`; `remaining` steps to go.
    Progress {
        first_step: usize,
        losses: Vec<StepLoss>,
        remaining: usize,
        steps_per_second: f64,
    },
    /// The dev loss after `step` steps; `best`: the lowest so far (these weights are kept).
    DevLoss { step: usize, loss: f64, best: bool },
    NeuralModel {
        rows: usize,
        cols: usize,
        options: TrainOptions,
        first_step: usize,
        gradient: GradientPath,
        /// The loss before each step, then that of the trained weights.
        losses: Vec<StepLoss>,
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
    /// With a split: (steps taken, dev loss) at each evaluation, and the steps of the kept
    /// weights (lowest dev loss).
    pub dev_losses: Vec<(usize, f64)>,
    pub kept_step: Option<usize>,
    /// softmax of every row of the trained W.
    pub neural_probs: Vec<f32>,
    pub count_model: CountModel,
    pub neural_model: NeuralModel,
}

/// Whether `train` streams its input: the counts path on all the words (no split) needs only
/// the count table, so a file larger than memory trains.
pub fn streams(config: &TrainConfig) -> bool {
    config.split.is_none() && config.effective_gradient() == GradientPath::Counts
}

/// The pipeline on held words: data, count model, neural model, evaluation, samples; each
/// stage reported as an [`Event`] when done.
pub fn run<B: Backend>(
    backend: &mut B,
    words: &[String],
    source: &str,
    config: &TrainConfig,
    report: &mut dyn FnMut(Event),
) -> anyhow::Result<TrainSummary> {
    // The vocabulary of every word, so that dev and test have no unknown characters.
    let vocab = Vocab::from_words(words);
    let (k, seed) = (config.context_len, config.seed);
    let parts = load_parts(backend, words, &vocab, k, config.split, seed)?;
    let examples = [&parts.train, &parts.dev, &parts.test].map(|p| p.0.len());
    report(Event::Data {
        source: source.to_string(),
        stats: WordStats::of(words),
        vocab: vocab.clone(),
        examples: examples.iter().sum(),
        context_len: k,
    });
    if let Some(split) = config.split {
        let w = &parts.words;
        let words = [&w.train, &w.dev, &w.test].map(|p| p.len());
        report(Event::Split {
            split,
            words,
            examples,
        });
    }
    let (train, loaded) = &parts.train;
    let source = Source::Examples(train, loaded);
    let parts = config.split.is_some().then_some(&parts);
    stages(
        backend,
        source,
        parts,
        &vocab,
        config,
        StageClock::start(),
        report,
    )
}

/// The counts path on the file at `path`, whose first pass gave `scan`, read again in blocks
/// of about `chunk_bytes` and counted into one table: every event and figure is [`run`]'s,
/// the count NLL summed cell by cell instead of example by example.
#[allow(clippy::too_many_arguments)]
pub fn run_streamed<B: Backend>(
    backend: &mut B,
    path: &Path,
    scan: &Scan,
    chunk_bytes: usize,
    source: &str,
    config: &TrainConfig,
    report: &mut dyn FnMut(Event),
) -> anyhow::Result<TrainSummary> {
    anyhow::ensure!(
        streams(config),
        "only the counts path without --split trains on a streamed file"
    );
    let (v, k) = (scan.vocab.len(), config.context_len);
    check_context(v, k, &backend.table_limit())?;
    check_countable(scan.examples, source)?;
    report(Event::Data {
        source: source.to_string(),
        stats: scan.stats.clone(),
        vocab: scan.vocab.clone(),
        examples: scan.examples as usize,
        context_len: k,
    });
    let mut clock = StageClock::start();
    let mut pairs = PairEncoder::open(path, scan, k, chunk_bytes)?;
    let counts = backend.count_pair_batches(pairs.num_rows(), v, &mut pairs)?;
    let table = CountTable::new(counts, v);
    anyhow::ensure!(
        table.examples as u64 == scan.examples,
        "{source} changed while it was read: {} pairs in the first pass, {} counted",
        scan.examples,
        table.examples
    );
    clock.lap("count table (blocks read, encoded, count_pairs)");
    stages(
        backend,
        Source::Table(&table),
        None,
        &scan.vocab,
        config,
        clock,
        report,
    )
}

/// What the models are trained from: the count table of a streamed file, or examples.
enum Source<'a, E> {
    Table(&'a CountTable),
    Examples(&'a Examples, &'a E),
}

/// The stages after the data: the count model `P = (N + smoothing) / row sum` scored by its
/// mean NLL, the neural model, with a split both models on every part, and samples.
fn stages<B: Backend>(
    backend: &mut B,
    source: Source<'_, B::Examples>,
    parts: Option<&LoadedParts<B::Examples>>,
    vocab: &Vocab,
    config: &TrainConfig,
    mut clock: StageClock,
    report: &mut dyn FnMut(Event),
) -> anyhow::Result<TrainSummary> {
    let counts = match source {
        Source::Table(table) => table.counts.clone(),
        Source::Examples(_, loaded) => backend.count_pairs(loaded)?,
    };
    let probs = backend.normalize_rows(&counts, vocab.len(), config.smoothing)?;
    let count_model = CountModel {
        vocab: vocab.clone(),
        context_len: config.context_len,
        smoothing: config.smoothing,
        counts,
        probs,
    };
    let nll = match source {
        Source::Table(table) => backend.count_table_nll(&count_model.probs, table)?,
        Source::Examples(_, loaded) => backend.mean_nll(&count_model.probs, loaded)?,
    };
    clock.lap("count model");
    report(Event::CountModel {
        smoothing: config.smoothing,
        nll,
        distinct_pairs: count_model.distinct_pairs(),
        most_frequent: count_model.most_frequent(config.top_pairs),
    });
    let dev = parts.filter(|p| !p.dev.0.is_empty()).map(|p| &p.dev.1);
    let trained = neural_stage(backend, (source, dev), vocab, config, nll, report)?;
    clock.lap("training");
    if let Some(parts) = parts {
        evaluation_stage(backend, parts, &count_model, &trained.model, config, report)?;
    }
    // Names from each model: characters drawn from P's rows, then from softmax(W)'s.
    let sample =
        |probs: &[f32]| sample_names(probs, vocab, config.samples, config.seed, config.rng);
    report(Event::Samples {
        model: "count",
        names: sample(&count_model.probs),
    });
    let neural_probs = backend.softmax_rows(&trained.model.weights, vocab.len())?;
    report(Event::Samples {
        model: "neural",
        names: sample(&neural_probs),
    });
    clock.lap("sampling (softmax_rows, host draws)");
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

/// What the steps read and write on the device for the whole run: the count table and W (the
/// counts path), or the examples and the per-example descent.
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

    fn weights(&self, backend: &mut B) -> anyhow::Result<Vec<f32>> {
        match self {
            TrainData::Counts { weights, .. } => backend.read(weights),
            TrainData::Examples(_, _, descent) => backend.read(&descent.weights),
        }
    }

    fn steps(
        &mut self,
        backend: &mut B,
        config: &TrainConfig,
        steps: usize,
    ) -> anyhow::Result<Vec<StepLoss>> {
        match self {
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

    /// The loss of `weights` on the path training took (on the counts path: one
    /// count_descent step with lr 0, on a copy of W).
    fn loss(
        &self,
        backend: &mut B,
        weights: &[f32],
        config: &TrainConfig,
    ) -> anyhow::Result<StepLoss> {
        let reg = config.options.reg;
        match self {
            TrainData::Counts { counts, .. } => {
                let (mut copy, mut grads) =
                    (backend.upload(weights)?, backend.zeros(weights.len())?);
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
}

struct TrainedNeural {
    /// With a split: the weights with the lowest dev loss; otherwise the last ones.
    model: NeuralModel,
    first_step: usize,
    losses: Vec<StepLoss>,
    final_loss: StepLoss,
    dev_losses: Vec<(usize, f64)>,
    kept_step: Option<usize>,
}

/// W initialized (or resumed), then `config.steps` steps of
/// `W -= lr * grad(mean NLL(softmax(W[context])) + reg * mean(W^2))`, then the loss of the
/// trained W.
fn neural_stage<B: Backend>(
    backend: &mut B,
    (source, dev): (Source<'_, B::Examples>, Option<&B::Examples>),
    vocab: &Vocab,
    config: &TrainConfig,
    count_nll: Nll,
    report: &mut dyn FnMut(Event),
) -> anyhow::Result<TrainedNeural> {
    let (mut model, first_step) = initial_model(vocab, config)?;
    let cols = vocab.len();
    let rows = cols.pow(config.context_len as u32);
    let options = config.options;
    report(Event::TrainingStarted {
        rows,
        cols,
        options,
        first_step,
        steps: config.steps,
    });
    let mut data = TrainData::load(backend, source, &model.weights, config)
        .with_context(|| format!("training stopped at step {first_step}"))?;
    let (losses, dev_losses, kept) = train_in_chunks(
        backend, &mut model, &mut data, dev, config, first_step, report,
    )?;
    let final_loss = data.loss(backend, &model.weights, config)?;
    check_finite(&losses, final_loss, &model.weights, config.form.loss)
        .map_err(|e| e.after(first_step))?;
    report(Event::NeuralModel {
        rows,
        cols,
        options,
        first_step,
        gradient: config.effective_gradient(),
        losses: losses.clone(),
        final_loss,
        count_nll: count_nll.mean(),
    });
    // The model kept is the one with the lowest dev loss (the last one without a split).
    let kept_step = kept.map(|(step, _, weights)| {
        model.weights = weights;
        step
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

/// A fresh `W ~ N(0, 1)` from the seed, or the saved weights once their vocabulary and
/// context length are checked against the data's; and the steps already taken.
fn initial_model(vocab: &Vocab, config: &TrainConfig) -> anyhow::Result<(NeuralModel, usize)> {
    let k = config.context_len;
    let Some(resume) = &config.resume else {
        return Ok((NeuralModel::init(vocab, k, config.seed, config.rng), 0));
    };
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
    if resume.context_len != k {
        anyhow::bail!(
            "{} was trained with --context {}, not {k}",
            resume.source,
            resume.context_len
        );
    }
    let model = NeuralModel {
        vocab: vocab.clone(),
        context_len: k,
        weights: resume.weights.clone(),
    };
    Ok((model, resume.steps_done))
}

/// With `--split`: both models, trained on train, scored on every part by their mean NLL.
fn evaluation_stage<B: Backend>(
    backend: &mut B,
    parts: &LoadedParts<B::Examples>,
    count_model: &CountModel,
    neural_model: &NeuralModel,
    config: &TrainConfig,
    report: &mut dyn FnMut(Event),
) -> anyhow::Result<()> {
    let mut score = |neural: bool| -> anyhow::Result<PartLosses> {
        let mut part = |part: &(Examples, B::Examples)| {
            score_part(part, |e| match neural {
                true => backend.forward_loss(&neural_model.weights, e, config.form),
                false => Ok(backend.mean_nll(&count_model.probs, e)?.mean()),
            })
        };
        Ok(PartLosses {
            train: part(&parts.train)?,
            dev: part(&parts.dev)?,
            test: part(&parts.test)?,
        })
    };
    let count = score(false)?;
    let neural = score(true)?;
    report(Event::Evaluation { count, neural });
    Ok(())
}

struct DevTracker<'a, E> {
    dev: Option<&'a E>,
    losses: Vec<(usize, f64)>,
    /// The weights with the lowest dev loss so far: (steps taken, dev loss, W).
    kept: Option<(usize, f64, Vec<f32>)>,
}

impl<E> DevTracker<'_, E> {
    /// The dev loss of `weights` after `step` steps; keeps them when it is the lowest so far.
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
        let best = self.kept.as_ref().is_none_or(|k| loss < k.1);
        if best {
            self.kept = Some((step, loss, weights.to_vec()));
        }
        self.losses.push((step, loss));
        report(Event::DevLoss { step, loss, best });
        Ok(())
    }
}

/// Reports a chunk of steps as one [`Event::Progress`], up to its first loss that is not
/// finite, and appends its losses to the run's. Returns whether every loss was finite.
fn report_chunk(
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

/// Gradient descent in chunks, reporting after each, stopping after the first chunk whose
/// loss is not finite. W and the optimizer's state stay on the device; minibatches and AdamW
/// run as one chunk, full-batch SGD in about ten (at most 100 steps each: each chunk is one
/// submission and one readback). With `dev`, the dev loss every `config.eval_every` steps
/// (full-batch SGD only) and after the last; the weights with the lowest one are kept.
#[allow(clippy::type_complexity)]
fn train_in_chunks<B: Backend>(
    backend: &mut B,
    model: &mut NeuralModel,
    data: &mut TrainData<'_, B>,
    dev: Option<&B::Examples>,
    config: &TrainConfig,
    first_step: usize,
    report: &mut dyn FnMut(Event),
) -> anyhow::Result<(
    Vec<StepLoss>,
    Vec<(usize, f64)>,
    Option<(usize, f64, Vec<f32>)>,
)> {
    let stateless = config.schedule.batch_size == 0 && config.schedule.optimizer == Optimizer::Sgd;
    let (chunk_len, eval_every) = match stateless {
        true => (
            (config.steps / 10).clamp(1, 100),
            dev.map_or(0, |_| config.eval_every),
        ),
        false => (config.steps.max(1), 0),
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
        let chunk_losses = data
            .steps(backend, config, chunk)
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
            model.weights = data.weights(backend)?;
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
    model.weights = data.weights(backend)?;
    let done = first_step + losses.len();
    tracker.evaluate(backend, &model.weights, done, config.form, report)?;
    Ok((losses, tracker.losses, tracker.kept))
}

/// Per-stage wall times for `RUST_LOG=debug`.
struct StageClock(Instant);

impl StageClock {
    fn start() -> StageClock {
        StageClock(Instant::now())
    }

    fn lap(&mut self, stage: &str) {
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
    /// The step counted from `first_step` (a resumed run's steps go on from the saved run's).
    pub fn after(mut self, first_step: usize) -> NonFiniteLoss {
        match &mut self {
            NonFiniteLoss::ExplicitOverflow { step, .. } | NonFiniteLoss::Diverged { step, .. } => {
                *step += first_step
            }
        }
        self
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
    let (value, largest) = (
        bad.total,
        weights.iter().fold(0.0f32, |m, &w| m.max(w.abs())),
    );
    Err(match loss {
        LossForm::Explicit if largest.is_finite() => NonFiniteLoss::ExplicitOverflow {
            step,
            value,
            largest,
        },
        _ => NonFiniteLoss::Diverged { step, value },
    })
}

//! The `train` command's pipeline, front to back: data, count model, neural model, samples,
//! each stage reported as an [`Event`] (the command line prints them as text or JSON).

use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;

use crate::backend::{Backend, LossForm, NetForm, Nll, StepLoss, TrainOptions};
use crate::checkpoint::Checkpoint;
use crate::corpus::{check_countable, CountTable, PairEncoder, Scan};
use crate::data::{Examples, Vocab, WordStats};
use crate::limits::check_context;
use crate::model::{init_weights, CountModel};
use crate::optim::{Descent, Schedule};
use crate::rng::RngKind;
use crate::sample::sample_names;
use crate::split::{Split, SplitWords};

/// A saved run that training continues (`--resume`), and where it is (for error messages).
#[derive(Clone, Debug)]
pub struct Resume {
    pub checkpoint: Checkpoint,
    pub source: String,
}

/// How the full-batch gradient is computed (`--grad`); both give the same losses (to 1e-5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GradientPath {
    /// From the count matrix N: grad = (c_x softmax(W[x]) - N[x]) / n + the penalty's.
    Counts,
    /// Example by example: softmax(W[x_i]) - onehot(y_i), summed, / n + the penalty's.
    Examples,
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
        match self.schedule.full_batch_sgd() && self.form == NetForm::default() {
            true => self.gradient,
            false => GradientPath::Examples,
        }
    }

    /// Whether `train` streams its input: the counts path on all the words (no split) needs
    /// only the count table, so a file larger than memory trains.
    pub fn streams(&self) -> bool {
        self.split.is_none() && self.effective_gradient() == GradientPath::Counts
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
    (!part.0.is_empty()).then(|| score(&part.1)).transpose()
}

/// A stage of the pipeline, finished. The settings of the run are the [`TrainConfig`]'s.
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
        nll: Nll,
        distinct_pairs: usize,
        most_frequent: Vec<(String, u32)>,
    },
    /// W is `rows` x `cols`; the run's steps follow `first_step` already taken.
    TrainingStarted {
        rows: usize,
        cols: usize,
        first_step: usize,
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
    /// The loss before each step, then that of the trained weights.
    NeuralModel {
        rows: usize,
        cols: usize,
        first_step: usize,
        losses: Vec<StepLoss>,
        final_loss: StepLoss,
        count_nll: f64,
    },
    Samples {
        model: &'static str,
        names: Vec<String>,
    },
    /// With `--split`: both models, trained on train, scored by their mean NLL on train, dev
    /// and test (`None` for an empty part).
    Evaluation {
        count: [Option<f64>; 3],
        neural: [Option<f64>; 3],
    },
}

/// The figures `train` ends with.
#[derive(Clone, Debug)]
pub struct TrainSummary {
    pub count_model: CountModel,
    pub count_nll: f64,
    pub neural: NeuralRun,
    /// softmax of every row of the kept W.
    pub neural_probs: Vec<f32>,
}

/// The neural model's training: the loss before each step of this run, and of the last W.
#[derive(Clone, Debug)]
pub struct NeuralRun {
    /// With a split: the weights with the lowest dev loss; otherwise the last ones.
    pub weights: Vec<f32>,
    pub first_step: usize,
    pub losses: Vec<StepLoss>,
    pub final_loss: StepLoss,
    /// With a split: (steps taken, dev loss) at each evaluation, and the steps of the kept W.
    pub dev_losses: Vec<(usize, f64)>,
    pub kept_step: Option<usize>,
}

/// The pipeline on held words: data, count model, neural model, evaluation, samples.
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
    let source = Source::Parts(&parts);
    stages(backend, source, &vocab, config, Instant::now(), report)
}

/// The counts path on the file at `path` (first pass: `scan`), counted in blocks of about
/// `block_bytes` into one table: [`run`]'s events, the count NLL summed cell by cell.
#[allow(clippy::too_many_arguments)]
pub fn run_streamed<B: Backend>(
    backend: &mut B,
    path: &Path,
    scan: &Scan,
    block_bytes: usize,
    source: &str,
    config: &TrainConfig,
    report: &mut dyn FnMut(Event),
) -> anyhow::Result<TrainSummary> {
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
    let mut clock = Instant::now();
    let mut pairs = PairEncoder::open(path, scan, k, block_bytes)?;
    let counts = backend.count_pair_batches(pairs.num_rows(), v, &mut pairs)?;
    let table = CountTable::new(counts, v);
    let stage = "count table (blocks read; clean ones counted as text, others as pairs)";
    lap(&mut clock, stage);
    let source = Source::Table(&table);
    stages(backend, source, &scan.vocab, config, clock, report)
}

/// What the models are trained from: the count table of a streamed file, or the examples of
/// each part (with no split: all in train).
enum Source<'a, E> {
    Table(&'a CountTable),
    Parts(&'a LoadedParts<E>),
}

/// The stages after the data: the count model `P = (N + smoothing) / row sum` scored by its
/// mean NLL, the neural model, with a split both models on every part, and samples.
fn stages<B: Backend>(
    backend: &mut B,
    source: Source<'_, B::Examples>,
    vocab: &Vocab,
    config: &TrainConfig,
    mut clock: Instant,
    report: &mut dyn FnMut(Event),
) -> anyhow::Result<TrainSummary> {
    let counts = match source {
        Source::Table(table) => table.counts.clone(),
        Source::Parts(parts) => backend.count_pairs(&parts.train.1)?,
    };
    let count_model = CountModel {
        probs: backend.normalize_rows(&counts, vocab.len(), config.smoothing)?,
        vocab: vocab.clone(),
        context_len: config.context_len,
        smoothing: config.smoothing,
        counts,
    };
    let nll = match source {
        Source::Table(table) => backend.count_table_nll(&count_model.probs, table)?,
        Source::Parts(parts) => backend.mean_nll(&count_model.probs, &parts.train.1)?,
    };
    lap(&mut clock, "count model");
    report(Event::CountModel {
        nll,
        distinct_pairs: count_model.distinct_pairs(),
        most_frequent: count_model.most_frequent(5),
    });
    let neural = neural_stage(backend, &source, vocab, config, nll.mean(), report)?;
    lap(&mut clock, "training");
    if let (Source::Parts(parts), Some(_)) = (source, config.split) {
        let mut score = |net: bool| -> anyhow::Result<[Option<f64>; 3]> {
            let mut part = |part: &(Examples, B::Examples)| {
                score_part(part, |e| match net {
                    true => backend.forward_loss(&neural.weights, e, config.form),
                    false => Ok(backend.mean_nll(&count_model.probs, e)?.mean()),
                })
            };
            Ok([part(&parts.train)?, part(&parts.dev)?, part(&parts.test)?])
        };
        let (count, neural) = (score(false)?, score(true)?);
        report(Event::Evaluation { count, neural });
    }
    // Names from each model: characters drawn from P's rows, then from softmax(W)'s.
    let neural_probs = backend.softmax_rows(&neural.weights, vocab.len())?;
    for (model, probs) in [("count", &count_model.probs), ("neural", &neural_probs)] {
        let names = sample_names(probs, vocab, config.samples, config.seed, config.rng);
        report(Event::Samples { model, names });
    }
    lap(&mut clock, "sampling (softmax_rows, host draws)");
    Ok(TrainSummary {
        count_model,
        count_nll: nll.mean(),
        neural,
        neural_probs,
    })
}

/// The wall time since `clock` for `RUST_LOG=debug`; the clock starts again.
fn lap(clock: &mut Instant, stage: &str) {
    log::debug!("{stage}: {:.1} ms", clock.elapsed().as_secs_f64() * 1e3);
    *clock = Instant::now();
}

/// What the steps read on the device besides W, its gradient and the optimizer's state (the
/// descent's): the count table (the counts path), or the examples.
enum TrainData<'a, B: Backend> {
    Counts(B::Counts, Descent<B>),
    Examples(&'a (Examples, B::Examples), Descent<B>),
}

impl<'a, B: Backend> TrainData<'a, B> {
    fn load(
        backend: &mut B,
        source: &Source<'a, B::Examples>,
        weights: &[f32],
        config: &TrainConfig,
    ) -> anyhow::Result<TrainData<'a, B>> {
        let descent = |b: &mut B| Descent::new(b, weights, &config.schedule);
        let counts = match (source, config.effective_gradient()) {
            (Source::Table(table), _) => backend.upload_counts(table)?,
            (Source::Parts(parts), GradientPath::Counts) => backend.count_table(&parts.train.1)?,
            (Source::Parts(parts), GradientPath::Examples) => {
                return Ok(TrainData::Examples(&parts.train, descent(backend)?));
            }
        };
        Ok(TrainData::Counts(counts, descent(backend)?))
    }

    fn weights(&self, backend: &mut B) -> anyhow::Result<Vec<f32>> {
        let (TrainData::Counts(_, descent) | TrainData::Examples(_, descent)) = self;
        backend.read(&descent.weights)
    }

    /// `steps` steps; the loss before each, read back once.
    fn steps(
        &mut self,
        backend: &mut B,
        config: &TrainConfig,
        steps: usize,
    ) -> anyhow::Result<Vec<StepLoss>> {
        let (options, form) = (&config.options, config.form);
        match self {
            TrainData::Counts(counts, descent) => {
                let mut losses = backend.losses(steps)?;
                let (weights, grads) = (&mut descent.weights, &mut descent.grads);
                backend.count_descent(weights, grads, counts, options, steps, &mut losses)?;
                backend.read_losses(&losses)
            }
            TrainData::Examples((examples, loaded), descent) => {
                let data = (examples, loaded);
                descent.steps(backend, data, options, steps, form, &config.schedule)
            }
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
            TrainData::Counts(counts, _) => {
                let (mut copy, mut grads) =
                    (backend.upload(weights)?, backend.zeros(weights.len())?);
                let mut losses = backend.losses(1)?;
                let options = TrainOptions { lr: 0.0, reg };
                backend.count_descent(&mut copy, &mut grads, counts, &options, 1, &mut losses)?;
                Ok(backend.read_losses(&losses)?[0])
            }
            TrainData::Examples((_, loaded), _) => Ok(backend
                .loss_and_gradient(weights, loaded, reg, config.form)?
                .0),
        }
    }
}

/// W drawn from the seed or resumed (its vocabulary and context checked against the data's),
/// then `config.steps` steps of `W -= lr * grad(mean NLL(softmax(W[context])) + reg *
/// mean(W^2))`, then the loss of the trained W.
fn neural_stage<B: Backend>(
    backend: &mut B,
    source: &Source<'_, B::Examples>,
    vocab: &Vocab,
    config: &TrainConfig,
    count_nll: f64,
    report: &mut dyn FnMut(Event),
) -> anyhow::Result<NeuralRun> {
    let k = config.context_len;
    let (weights, first_step) = match &config.resume {
        None => (init_weights(vocab, k, config.seed, config.rng), 0),
        Some(Resume { checkpoint, source }) => {
            let saved = &checkpoint.settings;
            anyhow::ensure!(
                saved.vocab == *vocab,
                "{source} was trained on a vocabulary of {} symbols ({}), this input has {} ({}); resume with the same words or train without --resume",
                saved.vocab.len(),
                saved.vocab,
                vocab.len(),
                vocab
            );
            anyhow::ensure!(
                saved.context_len == k,
                "{source} was trained with --context {}, not {k}",
                saved.context_len
            );
            (checkpoint.weights.clone(), saved.steps)
        }
    };
    let (cols, rows) = (vocab.len(), vocab.len().pow(k as u32));
    report(Event::TrainingStarted {
        rows,
        cols,
        first_step,
    });
    let mut data = TrainData::load(backend, source, &weights, config)
        .with_context(|| format!("training stopped at step {first_step}"))?;
    let dev = match source {
        Source::Parts(parts) if !parts.dev.0.is_empty() => Some(&parts.dev.1),
        _ => None,
    };
    let run = train_in_chunks(backend, &mut data, first_step, dev, config, report)?;
    report(Event::NeuralModel {
        rows,
        cols,
        first_step,
        losses: run.losses.clone(),
        final_loss: run.final_loss,
        count_nll,
    });
    Ok(run)
}

/// The steps in chunks (one submission and readback each: a tenth of the run, at most 100
/// steps, for full-batch SGD; one for minibatches and AdamW), each reported, then the last W's
/// loss; an error at the first loss not finite. With `dev`: the dev loss every
/// `config.eval_every` steps (full-batch SGD only) and after the last; the lowest one's W kept.
fn train_in_chunks<B: Backend>(
    backend: &mut B,
    data: &mut TrainData<'_, B>,
    first_step: usize,
    dev: Option<&B::Examples>,
    config: &TrainConfig,
    report: &mut dyn FnMut(Event),
) -> anyhow::Result<NeuralRun> {
    let (steps, form) = (config.steps, config.form);
    let eval_every = dev.map_or(0, |_| config.eval_every);
    let (chunk_len, eval_every) = match config.schedule.full_batch_sgd() {
        true => ((steps / 10).clamp(1, 100), eval_every),
        false => (steps.max(1), 0),
    };
    let mut dev_run = DevRun::default();
    let (start, mut losses) = (Instant::now(), Vec::new());
    while losses.len() < steps {
        let (done, chunk_start) = (losses.len(), Instant::now());
        let mut chunk = chunk_len.min(steps - done);
        if eval_every > 0 {
            // End the chunk at the next evaluation.
            chunk = chunk.min(eval_every - done % eval_every);
        }
        let step = first_step + done;
        let chunk_losses = data
            .steps(backend, config, chunk)
            // A device lost or out of memory mid-run: say how far training got.
            .with_context(|| format!("training stopped at step {step}"))?;
        let ms = chunk_start.elapsed().as_secs_f64() * 1e3;
        log::debug!("steps {step}..{}: {ms:.1} ms", step + chunk);
        let first_bad = chunk_losses.iter().position(|l| !l.total.is_finite());
        let finite = first_bad.unwrap_or(chunk_losses.len());
        report(Event::Progress {
            first_step: step,
            losses: chunk_losses[..finite].to_vec(),
            remaining: steps - done - finite,
            steps_per_second: (done + finite) as f64 / start.elapsed().as_secs_f64(),
        });
        if let Some(bad) = first_bad {
            let (w, value) = (data.weights(backend)?, chunk_losses[bad].total);
            return Err(non_finite_loss(step + bad, value, &w, form));
        }
        losses.extend(chunk_losses);
        let done = losses.len();
        if eval_every > 0 && done % eval_every == 0 && done < steps {
            let (w, at) = (data.weights(backend)?, first_step + done);
            dev_run.evaluate(backend, dev, &w, at, form, report)?;
        }
    }
    let mut weights = data.weights(backend)?;
    let end = first_step + losses.len();
    dev_run.evaluate(backend, dev, &weights, end, form, report)?;
    let final_loss = data.loss(backend, &weights, config)?;
    if !final_loss.total.is_finite() {
        return Err(non_finite_loss(end, final_loss.total, &weights, form));
    }
    // The model kept is the one with the lowest dev loss (the last one without a split).
    let kept_step = dev_run.kept.map(|(step, _, kept)| {
        weights = kept;
        step
    });
    Ok(NeuralRun {
        weights,
        first_step,
        losses,
        final_loss,
        dev_losses: dev_run.losses,
        kept_step,
    })
}

/// The dev losses so far: (steps taken, dev loss) at each evaluation, and the weights with
/// the lowest: (steps taken, dev loss, W).
#[derive(Default)]
struct DevRun {
    losses: Vec<(usize, f64)>,
    kept: Option<(usize, f64, Vec<f32>)>,
}

impl DevRun {
    /// The dev loss of `weights` after `step` steps; keeps them when it is the lowest so far.
    fn evaluate<B: Backend>(
        &mut self,
        backend: &mut B,
        dev: Option<&B::Examples>,
        weights: &[f32],
        step: usize,
        form: NetForm,
        report: &mut dyn FnMut(Event),
    ) -> anyhow::Result<()> {
        let Some(dev) = dev else { return Ok(()) };
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

/// The error for the loss `value` before `step`, not a finite number: the explicit loss's
/// overflow while W is finite, else divergence.
pub fn non_finite_loss(step: usize, value: f64, weights: &[f32], form: NetForm) -> anyhow::Error {
    let largest = weights.iter().fold(0.0f32, |m, &w| m.max(w.abs()));
    match form.loss {
        LossForm::Explicit if largest.is_finite() => anyhow::anyhow!(
            "the explicit loss is {value} at step {step} (the logits reach magnitude {largest:.1}): in f32, exp() overflows to infinity above 88.7 and rounds to 0 below -103.9, so the lecture's exp-then-normalize chain breaks down; --loss fused subtracts each row's maximum first and stays finite"
        ),
        _ => anyhow::anyhow!("the loss is {value} at step {step}: training diverged; try a smaller --lr"),
    }
}

//! The benchmark: every stage of the pipeline timed on a data set, on the GPU and on the CPU
//! reference, with a warm-up run, several repetitions, and the median and spread.
//!
//! Each timed call returns only when its results are on the host (the backends read back
//! what they compute), except `upload`, which is followed by a wait for the device to go idle.

use std::time::Instant;

use rand::{RngExt, SeedableRng};

use crate::backend::{Backend, Chosen, TrainOptions};
use crate::check::{as_f64, Tolerance, EXACT, VALUES, WEIGHTS};
use crate::cpu::CpuBackend;
use crate::data::{builtin_words, Examples, Vocab};
use crate::sample::sample_symbols;

/// The stages, in pipeline order, with what each one times.
pub const STAGES: [(&str, &str); 10] = [
    ("encode", "words -> (context, next) examples on the host"),
    (
        "upload",
        "examples to the device (GPU: sort by context, segment tables, copy)",
    ),
    ("count", "count_pairs: the V x V matrix, read back"),
    ("normalize", "normalize_rows with smoothing 1, read back"),
    (
        "nll",
        "nll_gather + loss_total: mean NLL of every example, read back",
    ),
    (
        "step_examples",
        "one full-batch step, per-example kernels, W and loss read back",
    ),
    (
        "step_counts",
        "one full-batch step from the counts (counted once per set of examples), read back",
    ),
    (
        "steps_counts_1000",
        "1000 full-batch steps from the counts, read back once",
    ),
    (
        "steps_counts_1000_k3",
        "the same with a context of 3 characters (a V^3 x V table)",
    ),
    (
        "sample",
        "names drawn from the count model on the host, as symbols",
    ),
];

/// Stages run only when `--stages` names them: a 1000-step context-3 run takes about a minute
/// on a software adapter.
pub const OPT_IN_STAGES: [&str; 1] = ["steps_counts_1000_k3"];

/// A data set to time the stages on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataSet {
    /// The built-in names.
    Names,
    /// Random words over a..z, 2 to 15 letters, until they make at least this many pairs.
    Synthetic(usize),
}

impl DataSet {
    /// `names`, or a number of pairs with an optional `k`/`m` suffix (`10m`, `500k`).
    pub fn parse(s: &str) -> Result<DataSet, String> {
        let lower = s.to_lowercase();
        if lower == "names" {
            return Ok(DataSet::Names);
        }
        let (digits, scale) = match lower.chars().last() {
            Some('k') => (&lower[..lower.len() - 1], 1_000),
            Some('m') => (&lower[..lower.len() - 1], 1_000_000),
            _ => (&lower[..], 1),
        };
        match digits.parse::<usize>() {
            Ok(n) if n > 0 && n.checked_mul(scale).is_some() => Ok(DataSet::Synthetic(n * scale)),
            _ => Err(format!(
                "{s:?} is neither `names` nor a number of pairs such as 10m or 500k"
            )),
        }
    }

    /// A short label: `names` or `10M pairs`.
    pub fn label(&self) -> String {
        match self {
            DataSet::Names => "names".to_string(),
            DataSet::Synthetic(n) if n % 1_000_000 == 0 => format!("{}M pairs", n / 1_000_000),
            DataSet::Synthetic(n) => format!("{n} pairs"),
        }
    }

    /// The words of the data set (synthetic ones drawn with a fixed seed).
    pub fn words(&self) -> Vec<String> {
        match self {
            DataSet::Names => builtin_words(),
            DataSet::Synthetic(pairs) => synthetic_words(*pairs, 1),
        }
    }
}

/// Random words of 2 to 15 letters a..z until they hold at least `pairs` (context, next)
/// pairs (one per letter plus one end per word).
pub fn synthetic_words(pairs: usize, seed: u64) -> Vec<String> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut words = Vec::with_capacity(pairs / 9 + 1);
    let mut total = 0;
    while total < pairs {
        let len = rng.random_range(2..=15usize);
        let word: String = (0..len)
            .map(|_| (b'a' + rng.random_range(0..26u8)) as char)
            .collect();
        total += len + 1;
        words.push(word);
    }
    words
}

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub data_sets: Vec<DataSet>,
    /// Stage names to run (all of [`STAGES`] but the [`OPT_IN_STAGES`] when empty).
    pub stages: Vec<String>,
    /// Timed repetitions per stage (after one warm-up run).
    pub repetitions: usize,
    /// A stage stops repeating once its timed runs add up to this many seconds (after at
    /// least two).
    pub budget_seconds: f64,
    /// Names drawn by the `sample` stage.
    pub sample_names: usize,
}

/// Steps of the `steps_counts_1000` stage.
pub const MANY_STEPS: usize = 1000;

/// The times of one stage.
#[derive(Clone, Debug)]
pub struct Timing {
    pub stage: &'static str,
    pub data: String,
    /// `gpu`, `cpu`, or `host` for the stages that do not use the backend.
    pub device: &'static str,
    /// The adapter or device description (`host` for the host stages).
    pub adapter: String,
    /// Seconds of each timed repetition.
    pub seconds: Vec<f64>,
    /// Items the stage processes (pairs, or names for `sample`), for a throughput.
    pub items: usize,
}

impl Timing {
    fn sorted(&self) -> Vec<f64> {
        let mut s = self.seconds.clone();
        s.sort_by(f64::total_cmp);
        s
    }

    /// Median of the repetitions, in seconds.
    pub fn median(&self) -> f64 {
        let s = self.sorted();
        let mid = s.len() / 2;
        if s.len() % 2 == 1 {
            s[mid]
        } else {
            (s[mid - 1] + s[mid]) / 2.0
        }
    }

    /// Fastest repetition, in seconds.
    pub fn min(&self) -> f64 {
        self.sorted()[0]
    }

    /// Slowest repetition, in seconds.
    pub fn max(&self) -> f64 {
        *self.sorted().last().expect("at least one repetition")
    }
}

/// Times `run` once as a warm-up and then `config.repetitions` times (fewer when the runs
/// exceed the time budget, but at least two).
fn time<F: FnMut() -> anyhow::Result<()>>(
    config: &BenchConfig,
    mut run: F,
) -> anyhow::Result<Vec<f64>> {
    run()?;
    time_repetitions(config, run)
}

/// The timed repetitions of [`time`], after a warm-up run made by the caller.
fn time_repetitions<F: FnMut() -> anyhow::Result<()>>(
    config: &BenchConfig,
    mut run: F,
) -> anyhow::Result<Vec<f64>> {
    let mut seconds = Vec::new();
    let target = config.repetitions.max(1);
    while seconds.len() < target {
        let start = Instant::now();
        run()?;
        seconds.push(start.elapsed().as_secs_f64());
        if seconds.len() >= 2 && seconds.iter().sum::<f64>() > config.budget_seconds {
            break;
        }
    }
    Ok(seconds)
}

/// A GPU result that differs from the CPU reference: the stage is not timed.
#[derive(Debug, thiserror::Error)]
#[error("{stage} on {adapter}: the result differs from the CPU reference (worst element {worst:.3} times its tolerance {tolerance}); not timed")]
pub struct WrongResult {
    pub stage: &'static str,
    pub adapter: String,
    pub worst: f64,
    pub tolerance: String,
}

/// Runs a GPU stage once (its warm-up), compares what it computed with the CPU reference,
/// and times it only if they agree.
fn time_checked<T, F: FnMut() -> anyhow::Result<T>>(
    config: &BenchConfig,
    stage: &'static str,
    adapter: &str,
    mut run: F,
    compare: impl FnOnce(T) -> anyhow::Result<(f64, Tolerance)>,
) -> anyhow::Result<Result<Vec<f64>, WrongResult>> {
    let (worst, tolerance) = compare(run()?)?;
    // A NaN is a wrong result too.
    if worst.is_nan() || worst > 1.0 {
        return Ok(Err(WrongResult {
            stage,
            adapter: adapter.to_string(),
            worst,
            tolerance: tolerance.describe(),
        }));
    }
    Ok(Ok(time_repetitions(config, || run().map(drop))?))
}

/// Whether `stage` runs: the ones `--stages` names, or all but the opt-in ones.
fn wanted(config: &BenchConfig, stage: &str) -> bool {
    if config.stages.is_empty() {
        !OPT_IN_STAGES.contains(&stage)
    } else {
        config.stages.iter().any(|s| s == stage)
    }
}

/// A backend as timings name it: its kind (`gpu` or `cpu`) and its adapter.
type Device<'a> = (&'static str, &'a str);

/// The CPU reference of one data set, computed once: the bigram examples, their counts
/// `N`, the probabilities `P = (N + 1) / row sum`, and the W every timed training run
/// starts from.
struct Reference {
    words: Vec<String>,
    vocab: Vocab,
    examples: Examples,
    counts: Vec<u32>,
    probs: Vec<f32>,
    initial: Vec<f32>,
}

/// Where the timings of one data set go: each timing to `report`, each refusal to `skipped`.
struct Recorder<'a> {
    /// The data set's label.
    label: String,
    report: &'a mut dyn FnMut(Timing),
    skipped: &'a mut dyn FnMut(String),
    /// Stages refused for a wrong result.
    refused: usize,
}

impl Recorder<'_> {
    /// Reports one stage's timing on `device`.
    fn timing(&mut self, stage: &'static str, device: Device, seconds: Vec<f64>, items: usize) {
        (self.report)(Timing {
            stage,
            data: self.label.clone(),
            device: device.0,
            adapter: device.1.to_string(),
            seconds,
            items,
        });
    }

    /// Reports a checked stage: its timing, or why it was not timed.
    fn checked(
        &mut self,
        stage: &'static str,
        device: Device,
        result: Result<Vec<f64>, WrongResult>,
        items: usize,
    ) {
        match result {
            Ok(seconds) => self.timing(stage, device, seconds, items),
            Err(wrong) => {
                (self.skipped)(wrong.to_string());
                self.refused += 1;
            }
        }
    }
}

/// The comparison that decides whether a stage is timed: a GPU stage's worst element against
/// its tolerance; the CPU's own stages are the reference, so they always agree.
fn agree(device: Device, worst: f64, tolerance: Tolerance) -> anyhow::Result<(f64, Tolerance)> {
    Ok(if device.0 == "gpu" {
        (worst, tolerance)
    } else {
        (0.0, tolerance)
    })
}

/// Runs the configured stages on one data set: the host stages once, the backend stages on
/// each backend. Each timing is passed to `report` as soon as it is measured; a backend that
/// cannot load the data set, and a GPU stage whose result differs from the CPU reference
/// (which is then not timed), are passed to `skipped` with the reason. Returns how many
/// stages were refused for a wrong result.
pub fn run_data_set(
    data: &DataSet,
    backends: &mut [Chosen],
    config: &BenchConfig,
    report: &mut dyn FnMut(Timing),
    skipped: &mut dyn FnMut(String),
) -> anyhow::Result<usize> {
    let mut out = Recorder {
        label: data.label(),
        report,
        skipped,
        refused: 0,
    };
    let words = data.words();
    let vocab = Vocab::from_words(&words);
    let examples = Examples::encode(&words, &vocab, 1)?;
    let pairs = examples.len();
    let host = ("host", "host");

    if wanted(config, "encode") {
        let seconds = time(config, || {
            let vocab = Vocab::from_words(&words);
            Examples::encode(&words, &vocab, 1)?;
            Ok(())
        })?;
        out.timing("encode", host, seconds, pairs);
    }

    let counts = crate::cpu::count_pairs(
        &examples.contexts,
        &examples.targets,
        examples.num_rows,
        examples.num_cols,
    );
    let probs = crate::cpu::normalize_rows(&counts, vocab.len(), 1.0);
    let initial = crate::rng::standard_normal(examples.num_rows * vocab.len(), 1);
    let reference = Reference {
        words,
        vocab,
        examples,
        counts,
        probs,
        initial,
    };

    for backend in backends.iter_mut() {
        crate::on_backend!(backend, |b| run_backend(b, &reference, config, &mut out))?;
    }

    if wanted(config, "sample") {
        let seconds = time(config, || {
            let v = reference.vocab.len();
            sample_symbols(&reference.probs, v, config.sample_names, 7, &[]);
            Ok(())
        })?;
        out.timing("sample", host, seconds, config.sample_names);
    }
    Ok(out.refused)
}

/// The backend stages on one backend: the upload, then the counts path and the training
/// runs, each first compared with the CPU reference. A backend that cannot hold the data set
/// is left out of it, with the reason.
fn run_backend<B: Backend>(
    backend: &mut B,
    reference: &Reference,
    config: &BenchConfig,
    out: &mut Recorder,
) -> anyhow::Result<()> {
    let examples = &reference.examples;
    if let Err(e) = backend.load(examples).and_then(|_| backend.synchronize()) {
        (out.skipped)(format!(
            "{} left out on {}: {e}",
            backend.describe(),
            out.label
        ));
        return Ok(());
    }
    let description = backend.describe();
    let device = (B::KIND, description.as_str());
    if wanted(config, "upload") {
        let seconds = time(config, || {
            backend.load(examples)?;
            backend.synchronize()
        })?;
        out.timing("upload", device, seconds, examples.len());
    }
    let loaded = backend.load(examples)?;
    backend.synchronize()?;
    run_counts_stages(backend, &loaded, reference, config, device, out)?;
    run_training_stages(backend, &loaded, reference, config, device, out)
}

/// Pairs -> counts `N` (exact), `N` -> `P` (normalize_rows), `P` -> mean NLL.
fn run_counts_stages<B: Backend>(
    backend: &mut B,
    loaded: &B::Examples,
    reference: &Reference,
    config: &BenchConfig,
    device: Device,
    out: &mut Recorder,
) -> anyhow::Result<()> {
    let Reference {
        vocab,
        examples,
        counts,
        probs,
        ..
    } = reference;
    let pairs = examples.len();
    if wanted(config, "count") {
        let result = time_checked(
            config,
            "count",
            device.1,
            || backend.count_pairs(loaded),
            |got| agree(device, EXACT.worst(&as_f64(&got), &as_f64(counts)), EXACT),
        )?;
        out.checked("count", device, result, pairs);
    }
    if wanted(config, "normalize") {
        let result = time_checked(
            config,
            "normalize",
            device.1,
            || backend.normalize_rows(counts, vocab.len(), 1.0),
            |got| agree(device, VALUES.worst(&as_f64(&got), &as_f64(probs)), VALUES),
        )?;
        out.checked("normalize", device, result, counts.len());
    }
    if wanted(config, "nll") {
        let result = time_checked(
            config,
            "nll",
            device.1,
            || backend.mean_nll(probs, loaded),
            |got| {
                let want = CpuBackend.mean_nll(probs, examples)?.mean();
                agree(device, VALUES.worst(&[got.mean()], &[want]), VALUES)
            },
        )?;
        out.checked("nll", device, result, pairs);
    }
    Ok(())
}

/// Gradient descent from the reference W: one step on each gradient path, 1000 steps from
/// the counts, and (opt-in) 1000 steps with a context of 3 characters.
fn run_training_stages<B: Backend>(
    backend: &mut B,
    loaded: &B::Examples,
    reference: &Reference,
    config: &BenchConfig,
    device: Device,
    out: &mut Recorder,
) -> anyhow::Result<()> {
    let Reference {
        words,
        vocab,
        examples,
        initial,
        ..
    } = reference;
    for (stage, path, steps) in [
        ("step_examples", Path::Examples, 1),
        ("step_counts", Path::Counts, 1),
        ("steps_counts_1000", Path::Counts, MANY_STEPS),
    ] {
        if !wanted(config, stage) {
            continue;
        }
        let result = time_checked(
            config,
            stage,
            device.1,
            || train(backend, loaded, initial, path, steps),
            |got| {
                let want = train(&mut CpuBackend, examples, initial, path, steps)?;
                agree(device, worst_run(&got, &want), VALUES)
            },
        )?;
        out.checked(stage, device, result, examples.len());
    }
    if wanted(config, "steps_counts_1000_k3") {
        let examples = Examples::encode(words, vocab, 3)?;
        let initial = crate::rng::standard_normal(examples.num_rows * vocab.len(), 1);
        let loaded = backend.load(&examples)?;
        let result = time_checked(
            config,
            "steps_counts_1000_k3",
            device.1,
            || train(backend, &loaded, &initial, Path::Counts, MANY_STEPS),
            |got| {
                let want = train(
                    &mut CpuBackend,
                    &examples,
                    &initial,
                    Path::Counts,
                    MANY_STEPS,
                )?;
                agree(device, worst_run(&got, &want), VALUES)
            },
        )?;
        out.checked("steps_counts_1000_k3", device, result, examples.len());
    }
    Ok(())
}

/// Which training path a timed run takes.
#[derive(Clone, Copy)]
enum Path {
    Examples,
    Counts,
}

/// `steps` full-batch steps with the lecture's settings from `initial`: the losses and the
/// final weights.
fn train<B: Backend>(
    backend: &mut B,
    loaded: &B::Examples,
    initial: &[f32],
    path: Path,
    steps: usize,
) -> anyhow::Result<(Vec<f64>, Vec<f32>)> {
    let lecture = TrainOptions {
        lr: 50.0,
        reg: 0.01,
    };
    let mut weights = initial.to_vec();
    let losses = match path {
        Path::Examples => backend.train(
            &mut weights,
            loaded,
            &lecture,
            steps,
            crate::NetForm::default(),
        )?,
        Path::Counts => backend.train_counts(&mut weights, loaded, &lecture, steps)?,
    };
    Ok((losses.iter().map(|l| l.total).collect(), weights))
}

/// The worst of a run's losses (against [`VALUES`]) and final weights (against
/// [`WEIGHTS`]), each over its tolerance.
fn worst_run(got: &(Vec<f64>, Vec<f32>), want: &(Vec<f64>, Vec<f32>)) -> f64 {
    let losses = VALUES.worst(&got.0, &want.0);
    losses.max(WEIGHTS.worst(&as_f64(&got.1), &as_f64(&want.1)))
}

/// The process's peak resident memory in bytes (Linux: VmHWM of /proc/self/status), when the
/// system reports it.
pub fn peak_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_sets_parse() {
        assert_eq!(DataSet::parse("names"), Ok(DataSet::Names));
        assert_eq!(DataSet::parse("10m"), Ok(DataSet::Synthetic(10_000_000)));
        assert_eq!(DataSet::parse("500K"), Ok(DataSet::Synthetic(500_000)));
        assert_eq!(DataSet::parse("1234"), Ok(DataSet::Synthetic(1234)));
        assert!(DataSet::parse("0").is_err());
        assert!(DataSet::parse("ten").is_err());
    }

    #[test]
    fn synthetic_words_hold_the_pairs_asked_for() {
        let words = synthetic_words(10_000, 1);
        let pairs: usize = words.iter().map(|w| w.len() + 1).sum();
        assert!((10_000..10_016).contains(&pairs), "{pairs} pairs");
        assert!(words.iter().all(|w| (2..=15).contains(&w.len())));
        assert_eq!(words, synthetic_words(10_000, 1));
    }

    #[test]
    fn median_and_spread() {
        let t = Timing {
            stage: "count",
            data: "names".into(),
            device: "host",
            adapter: "host".into(),
            seconds: vec![3.0, 1.0, 2.0, 10.0],
            items: 1,
        };
        assert_eq!(t.median(), 2.5);
        assert_eq!(t.min(), 1.0);
        assert_eq!(t.max(), 10.0);
    }
}

//! `makemore bench`: every stage of the pipeline timed on a data set, on the GPU and on the CPU
//! reference, with a warm-up run, several repetitions, and the median and spread.
//!
//! Each timed call returns only when its results are on the host (the backends read back
//! what they compute), except `upload`, which is followed by a wait for the device to go idle.

use std::time::Instant;

use rand::{RngExt, SeedableRng};
use serde_json::{json, Value};

use crate::backend::{Backend, Chosen};
use crate::cpu::CpuBackend;
use crate::data::{builtin_words, Examples, Vocab};
use crate::sample::sample_symbols;
use crate::tools::check::{worst, Op, Tables, FUSED};

/// The stages on a backend, in pipeline order: the operation and its context K, each read
/// back. A step from the counts counts the pairs once per set of examples.
const BACKEND_STAGES: [(&str, Op, usize); 7] = [
    ("count", Op::Count, 1),
    ("normalize", Op::Normalize, 1),
    ("nll", Op::Nll(false), 1),
    ("step_examples", Op::Train(Some(FUSED), 1), 1),
    ("step_counts", Op::Train(None, 1), 1),
    ("steps_counts_1000", Op::Train(None, 1000), 1),
    ("steps_counts_1000_k3", Op::Train(None, 1000), 3),
];

/// Every stage, in pipeline order: `encode` (words -> examples on the host), `upload` (the
/// examples to the device; GPU: sorted by context, segment tables, copied), the backend
/// stages, and `sample` (names drawn from the count model on the host).
pub fn stages() -> Vec<&'static str> {
    let mut all = vec!["encode", "upload"];
    all.extend(BACKEND_STAGES.map(|s| s.0));
    all.push("sample");
    all
}

/// Run only when `--stages` names it: a 1000-step context-3 run takes about a minute on a
/// software adapter.
const OPT_IN_STAGE: &str = "steps_counts_1000_k3";

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
        let (digits, scale) = match lower.strip_suffix('k') {
            Some(d) => (d, 1_000),
            None => lower
                .strip_suffix('m')
                .map_or((&lower[..], 1), |d| (d, 1_000_000)),
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

    /// The words: the names, or random words of 2 to 15 letters a..z (seed 1) until they hold
    /// the pairs asked for (one per letter plus one end per word).
    pub fn words(&self) -> Vec<String> {
        let DataSet::Synthetic(pairs) = *self else {
            return builtin_words();
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let (mut words, mut total) = (Vec::with_capacity(pairs / 9 + 1), 0);
        while total < pairs {
            let len = rng.random_range(2..=15usize);
            let letters = (0..len).map(|_| (b'a' + rng.random_range(0..26u8)) as char);
            words.push(letters.collect());
            total += len + 1;
        }
        words
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Stage names to run (all but the [`OPT_IN_STAGE`] when empty).
    pub stages: Vec<String>,
    /// Timed repetitions per stage, after one warm-up run.
    pub repetitions: usize,
    /// A stage stops repeating once its timed runs add up to this many seconds (after two).
    pub budget_seconds: f64,
    /// Names drawn by the `sample` stage.
    pub sample_names: usize,
}

impl BenchConfig {
    fn wanted(&self, stage: &str) -> bool {
        match self.stages.is_empty() {
            true => stage != OPT_IN_STAGE,
            false => self.stages.iter().any(|s| s == stage),
        }
    }

    /// The timed repetitions of `run` (after a warm-up the caller made): `repetitions` of
    /// them, fewer once they exceed the budget, but at least two.
    fn repeat(&self, mut run: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Vec<f64>> {
        let mut seconds = Vec::new();
        while seconds.len() < self.repetitions.max(1) {
            let start = Instant::now();
            run()?;
            seconds.push(start.elapsed().as_secs_f64());
            if seconds.len() >= 2 && seconds.iter().sum::<f64>() > self.budget_seconds {
                break;
            }
        }
        Ok(seconds)
    }
}

/// The median, fastest and slowest of the repetitions.
pub fn spread(seconds: &[f64]) -> (f64, f64, f64) {
    let min = seconds.iter().copied().fold(f64::INFINITY, f64::min);
    let max = seconds.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (median(seconds.to_vec()), min, max)
}

pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    match values.len() % 2 {
        1 => values[mid],
        _ => (values[mid - 1] + values[mid]) / 2.0,
    }
}

/// Where one data set's timings go: each to `report` as it is measured; a backend that
/// cannot hold the data, and a GPU stage that differs from the CPU (not timed), to `skipped`.
struct Recorder<'a> {
    label: String,
    report: &'a mut dyn FnMut(Value),
    skipped: &'a mut dyn FnMut(String),
    /// Stages refused for a wrong result.
    refused: usize,
}

impl Recorder<'_> {
    /// Reports a stage's repetitions on a device (`gpu`, `cpu` or `host`) and adapter, with
    /// the items it processes (pairs, cells, or names for `sample`) for a throughput.
    fn timing(
        &mut self,
        stage: &str,
        (device, adapter): (&str, &str),
        seconds: &[f64],
        items: usize,
    ) {
        let (median, min, max) = spread(seconds);
        (self.report)(json!({"stage": stage, "data": self.label, "device": device,
            "adapter": adapter, "median_ms": 1e3 * median, "min_ms": 1e3 * min,
            "max_ms": 1e3 * max, "reps": seconds.len(), "items": items,
            "items_per_second": items as f64 / median}));
    }
}

/// Runs the configured stages on one data set: the host stages once, the others on each
/// backend. Returns how many stages were refused for a wrong result.
pub fn run_data_set(
    data: &DataSet,
    backends: &mut [Chosen],
    config: &BenchConfig,
    report: &mut dyn FnMut(Value),
    skipped: &mut dyn FnMut(String),
) -> anyhow::Result<usize> {
    let label = data.label();
    let mut out = Recorder {
        label,
        report,
        skipped,
        refused: 0,
    };
    let host = ("host", "host");
    let words = data.words();
    let vocab = Vocab::from_words(&words);
    let mut sets = vec![Examples::encode(&words, &vocab, 1)?];
    if config.wanted("encode") {
        let encode = || Examples::encode(&words, &Vocab::from_words(&words), 1).map(drop);
        encode()?;
        let seconds = config.repeat(|| Ok(encode()?))?;
        out.timing("encode", host, &seconds, sets[0].len());
    }
    if config.wanted(OPT_IN_STAGE) {
        sets.push(Examples::encode(&words, &vocab, 3)?);
    }
    // Per context (1, and 3 when wanted): the examples and the CPU's tables, W from seed 1.
    let sets: Vec<(Examples, Tables)> = (sets.into_iter())
        .map(|ex| {
            let weights = crate::rng::standard_normal(ex.num_rows * ex.num_cols, 1);
            let t = Tables::new(&ex, weights, vec![]);
            (ex, t)
        })
        .collect();
    for backend in backends.iter_mut() {
        crate::on_backend!(backend, |b| run_backend(b, &sets, config, &mut out))?;
    }
    if config.wanted("sample") {
        let (probs, v) = (&sets[0].1.probs, sets[0].1.cols);
        let draw = || drop(sample_symbols(probs, v, config.sample_names, 7, &[]));
        draw();
        let seconds = config.repeat(|| {
            draw();
            Ok(())
        })?;
        out.timing("sample", host, &seconds, config.sample_names);
    }
    Ok(out.refused)
}

/// The backend stages on one backend, each GPU stage's warm-up first compared with the CPU
/// reference (the CPU's own stages are the reference). A backend that cannot hold the data
/// set is left out of it, with the reason.
fn run_backend<B: Backend>(
    backend: &mut B,
    sets: &[(Examples, Tables)],
    config: &BenchConfig,
    out: &mut Recorder,
) -> anyhow::Result<()> {
    let (kind, adapter) = (B::KIND, backend.describe());
    let device = (kind, adapter.as_str());
    let examples = &sets[0].0;
    if let Err(e) = backend.load(examples).and_then(|_| backend.synchronize()) {
        (out.skipped)(format!("{adapter} left out on {}: {e}", out.label));
        return Ok(());
    }
    if config.wanted("upload") {
        let mut upload = || backend.load(examples).and_then(|_| backend.synchronize());
        upload()?;
        let seconds = config.repeat(upload)?;
        out.timing("upload", device, &seconds, examples.len());
    }
    let mut loaded = Vec::new();
    for (ex, _) in sets {
        loaded.push(backend.load(ex)?);
        backend.synchronize()?;
    }
    for (stage, op, k) in BACKEND_STAGES.into_iter().filter(|s| config.wanted(s.0)) {
        let i = usize::from(k == 3);
        let (ex, t) = &sets[i];
        let got = op.run(backend, &loaded[i], t)?;
        if kind == "gpu" {
            let (worst, tolerance) = worst(&got, &op.run(&mut CpuBackend, ex, t)?);
            if worst > 1.0 {
                let tolerance = tolerance.describe();
                (out.skipped)(format!("{stage} on {adapter}: the result differs from the CPU reference (worst element {worst:.3} times its tolerance {tolerance}); not timed"));
                out.refused += 1;
                continue;
            }
        }
        let seconds = config.repeat(|| op.run(backend, &loaded[i], t).map(drop))?;
        let items = if stage == "normalize" {
            t.counts.len()
        } else {
            ex.len()
        };
        out.timing(stage, device, &seconds, items);
    }
    Ok(())
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
        let words = DataSet::Synthetic(10_000).words();
        let pairs: usize = words.iter().map(|w| w.len() + 1).sum();
        assert!((10_000..10_016).contains(&pairs), "{pairs} pairs");
        assert!(words.iter().all(|w| (2..=15).contains(&w.len())));
        assert_eq!(words, DataSet::Synthetic(10_000).words());
    }

    #[test]
    fn median_and_spread() {
        assert_eq!(spread(&[3.0, 1.0, 2.0, 10.0]), (2.5, 1.0, 10.0));
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}

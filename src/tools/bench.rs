//! `makemore bench`: its stages, the data sets it times them on, and their statistics.

use rand::{RngExt, SeedableRng};

use crate::data::builtin_words;
use crate::tools::check::{Op, FUSED};

/// The stages on a backend, in pipeline order: the operation and its context K, each read
/// back. A step from the counts counts the pairs once per set of examples.
pub const BACKEND_STAGES: [(&str, Op, usize); 7] = [
    ("count", Op::Count, 1),
    ("normalize", Op::Normalize, 1),
    ("nll", Op::Nll(false), 1),
    ("step_examples", Op::Train(Some(FUSED), 1), 1),
    ("step_counts", Op::Train(None, 1), 1),
    ("steps_counts_1000", Op::Train(None, 1000), 1),
    ("steps_counts_1000_k3", Op::Train(None, 1000), 3),
];

/// Every stage in pipeline order: `encode` (words -> examples), `upload` (to the device; GPU:
/// sorted by context, segment tables), the backend stages, `sample` (names from the count model).
pub fn stages() -> Vec<&'static str> {
    let backend = BACKEND_STAGES.map(|s| s.0);
    [&["encode", "upload"][..], &backend, &["sample"]].concat()
}

/// Run only when named: a 1000-step context-3 run takes a minute on a software adapter.
pub const OPT_IN_STAGE: &str = "steps_counts_1000_k3";

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
        let suffixed = |suffix, scale| lower.strip_suffix(suffix).map(|d| (d, scale));
        let suffixed = suffixed('k', 1_000).or(suffixed('m', 1_000_000));
        let (digits, scale) = suffixed.unwrap_or((&lower, 1));
        let n = digits.parse::<usize>().ok();
        let pairs = n.and_then(|n| n.checked_mul(scale)).filter(|&n| n > 0);
        let why = format!("{s:?} is neither `names` nor a number of pairs such as 10m or 500k");
        pairs.map(DataSet::Synthetic).ok_or(why)
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

/// The process's peak resident memory in bytes (VmHWM of /proc/self/status), where reported.
pub fn peak_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

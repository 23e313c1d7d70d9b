//! The lecture's train/dev/test split (exercise E02): the words shuffled with the seed and cut
//! by percentage. Models learn from train; dev chooses settings; test is looked at once.

use std::fmt;
use std::str::FromStr;

use rand::{RngExt, SeedableRng};

/// Three non-negative percentages that sum to 100: train, dev, test.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Split {
    pub train: f64,
    pub dev: f64,
    pub test: f64,
}

/// Why a split such as `80/10/10` (or `80,10,10`) was not understood.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("split {given:?}: {reason} (expected three percentages train/dev/test summing to 100, e.g. 80/10/10)")]
pub struct SplitError {
    pub given: String,
    pub reason: String,
}

impl FromStr for Split {
    type Err = SplitError;

    fn from_str(s: &str) -> Result<Split, SplitError> {
        let fail = |reason: String| SplitError {
            given: s.to_string(),
            reason,
        };
        // 80/10/10, or 80,10,10 as a list is often written.
        let parts: Vec<&str> = s.split(['/', ',']).map(str::trim).collect();
        let [train, dev, test] = parts[..] else {
            return Err(fail(format!("{} parts, not three", parts.len())));
        };
        let percent = |part: &str| match part.parse::<f64>() {
            Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
            _ => Err(fail(format!("{part:?} is not a number >= 0"))),
        };
        let (train, dev, test) = (percent(train)?, percent(dev)?, percent(test)?);
        let sum = train + dev + test;
        if (sum - 100.0).abs() > 1e-9 {
            return Err(fail(format!("the parts sum to {sum}")));
        }
        if train == 0.0 {
            return Err(fail("the training part is empty".to_string()));
        }
        Ok(Split { train, dev, test })
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.train, self.dev, self.test)
    }
}

/// The three parts of a word list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitWords {
    pub train: Vec<String>,
    pub dev: Vec<String>,
    pub test: Vec<String>,
}

impl Split {
    /// Shuffles the words with `seed` (Fisher-Yates, by hand: `SliceRandom::shuffle` draws
    /// other indices) and cuts them at `floor(n * train / 100)` and `floor(n * (train + dev)
    /// / 100)`, as makemore.py's `int(0.8 * n)`. The training part keeps at least one word.
    pub fn apply(&self, words: &[String], seed: u64) -> SplitWords {
        let mut train = words.to_vec();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for i in (1..train.len()).rev() {
            train.swap(i, rng.random_range(0..=i));
        }
        let n = train.len();
        let cut = |percent: f64| ((n as f64 * percent / 100.0).floor() as usize).min(n);
        let first = cut(self.train).max(1).min(n);
        let second = cut(self.train + self.dev).max(first);
        let test = train.split_off(second);
        let dev = train.split_off(first);
        SplitWords { train, dev, test }
    }
}

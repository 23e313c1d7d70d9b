//! The last stage: drawing names on the host from a model's probability table.
//!
//! Each row's cumulative distribution is built once; a draw is then one uniform number and a
//! binary search, with no allocation per character.

use rand::{Rng, RngExt};

use crate::data::Vocab;

/// A name longer than this is cut off (a model whose end probability is tiny could otherwise
/// go on for a very long time).
pub const MAX_NAME_LEN: usize = 256;

/// Per-row cumulative distributions of a V^K x V probability table.
#[derive(Clone, Debug)]
pub struct Sampler {
    /// cdf[r * V + c] = sum of P[r, 0..=c] / sum of P[r, ..] (f64 for exact ordering).
    cdf: Vec<f64>,
    num_cols: usize,
    num_rows: usize,
}

impl Sampler {
    pub fn new(probs: &[f32], num_cols: usize) -> Sampler {
        let mut cdf = Vec::with_capacity(probs.len());
        for row in probs.chunks(num_cols) {
            let total: f64 = row.iter().map(|&p| p as f64).sum();
            let mut running = 0.0;
            for &p in row {
                running += p as f64;
                // A row with no mass (a context never seen) ends the word: all its mass on `.`.
                cdf.push(if total > 0.0 { running / total } else { 1.0 });
            }
        }
        Sampler {
            cdf,
            num_cols,
            num_rows: probs.len() / num_cols,
        }
    }

    /// One draw from row `row`: the first column whose cumulative probability exceeds a
    /// uniform number in [0, 1).
    pub fn draw<R: Rng + ?Sized>(&self, row: usize, rng: &mut R) -> u32 {
        let cdf = &self.cdf[row * self.num_cols..][..self.num_cols];
        let u = rng.random::<f64>();
        let column = cdf.partition_point(|&c| c <= u);
        // u < 1 = the last entry up to rounding; never step past the table.
        column.min(self.num_cols - 1) as u32
    }

    /// Symbols of one name, drawn one at a time from the start context until `.` (not included).
    pub fn name<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<u32> {
        let mut context = 0usize;
        let mut symbols = Vec::new();
        while symbols.len() < MAX_NAME_LEN {
            let next = self.draw(context, rng);
            if next == 0 {
                break;
            }
            symbols.push(next);
            context = (context * self.num_cols + next as usize) % self.num_rows;
        }
        symbols
    }
}

/// `count` names from a probability table, with a generator seeded by `seed`.
pub fn sample_names(probs: &[f32], vocab: &Vocab, count: usize, seed: u64) -> Vec<String> {
    use rand::SeedableRng;
    let sampler = Sampler::new(probs, vocab.len());
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            sampler
                .name(&mut rng)
                .into_iter()
                .map(|s| vocab.char(s))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn draws_follow_the_distribution() {
        let sampler = Sampler::new(&[0.0, 0.25, 0.75], 3);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut hits = [0usize; 3];
        for _ in 0..40_000 {
            hits[sampler.draw(0, &mut rng) as usize] += 1;
        }
        assert_eq!(hits[0], 0, "a zero-probability column is never drawn");
        let share = hits[2] as f64 / 40_000.0;
        assert!((share - 0.75).abs() < 0.01, "share {share}");
    }

    #[test]
    fn a_name_ends_at_the_boundary() {
        // From `.` always `a`, from `a` always `.`: every name is "a".
        let vocab = Vocab::from_words(&["a"]);
        let names = sample_names(&[0.0, 1.0, 1.0, 0.0], &vocab, 3, 5);
        assert_eq!(names, vec!["a", "a", "a"]);
    }
}

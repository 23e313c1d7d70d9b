//! The last stage: drawing names on the host from a model's probability table, one character
//! at a time from the start context until `.`, with the generator [`RngKind`] names.
//!
//! With [`RngKind::Std`] each row's cumulative distribution is built once; a draw is then one
//! uniform number and a binary search, with no allocation per character. With
//! [`RngKind::Torch`] each draw is the lecture's
//! `torch.multinomial(p, num_samples=1, replacement=True, generator=g)` on the row.

use rand::{Rng, RngExt};

use crate::data::{UnknownChar, Vocab};
use crate::rng::RngKind;
use crate::torch_rng::TorchGenerator;

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
        self.name_from(&[], rng)
    }

    /// A name that starts with `prefix`: the context is moved through the prefix's symbols,
    /// then the rest is drawn as in [`Sampler::name`].
    pub fn name_from<R: Rng + ?Sized>(&self, prefix: &[u32], rng: &mut R) -> Vec<u32> {
        draw_name(self.num_rows, self.num_cols, prefix, |row| {
            self.draw(row, rng)
        })
    }
}

/// Symbols of one name: `draw(context row)` gives the next symbol. The context starts at row 0
/// (all `.`) and moves through `prefix`; symbols are then drawn until `.` (not included) or
/// [`MAX_NAME_LEN`] symbols. The context row after symbol s is `(row * V + s) mod V^K`: the
/// oldest character drops out.
fn draw_name(
    num_rows: usize,
    num_cols: usize,
    prefix: &[u32],
    mut draw: impl FnMut(usize) -> u32,
) -> Vec<u32> {
    let mut context = 0usize;
    for &symbol in prefix {
        context = (context * num_cols + symbol as usize) % num_rows;
    }
    let mut symbols = prefix.to_vec();
    while symbols.len() < MAX_NAME_LEN {
        let next = draw(context);
        if next == 0 {
            break;
        }
        symbols.push(next);
        context = (context * num_cols + next as usize) % num_rows;
    }
    symbols
}

/// One symbol as the lecture draws it: `torch.multinomial(P[row], 1, replacement=True,
/// generator=g)` (the row need not be normalized; the draw normalizes it in float32 as
/// PyTorch did). PyTorch refuses a row with no mass; here such a row (a context never seen,
/// with smoothing 0) ends the word, after using its draw, as [`Sampler::draw`] does.
fn torch_draw(generator: &mut TorchGenerator, row: &[f32]) -> u32 {
    let drawn = generator.multinomial_one(row) as u32;
    if row.iter().any(|&p| p > 0.0) {
        drawn
    } else {
        0
    }
}

/// How names are drawn: makemore.py's `--temperature` and `--top-k`, and a fixed start.
#[derive(Clone, Debug, PartialEq)]
pub struct SampleOptions {
    /// Logits are divided by T: T < 1 sharpens each distribution, T > 1 flattens it.
    pub temperature: f64,
    /// Only the k most probable next characters of each row are drawn from.
    pub top_k: Option<usize>,
    /// Every name starts with these characters.
    pub prefix: String,
}

impl Default for SampleOptions {
    fn default() -> Self {
        SampleOptions {
            temperature: 1.0,
            top_k: None,
            prefix: String::new(),
        }
    }
}

/// A probability table reshaped by temperature and top-k, row by row:
/// q[c] = p[c]^(1/T) (the softmax of logits / T, since p = softmax(logits)), zero outside the
/// k largest of the row (ties kept in column order), then renormalized by the sampler.
/// With T = 1 and no k the table is returned unchanged.
pub fn shape_probs(probs: &[f32], num_cols: usize, options: &SampleOptions) -> Vec<f32> {
    if options.temperature == 1.0 && options.top_k.is_none() {
        return probs.to_vec();
    }
    let mut shaped = Vec::with_capacity(probs.len());
    for row in probs.chunks(num_cols) {
        // Divided by the row's largest value so that p^(1/T) cannot underflow to all zeros.
        let largest = row.iter().copied().fold(0.0f32, f32::max) as f64;
        let mut q: Vec<f64> = row
            .iter()
            .map(|&p| {
                if largest > 0.0 {
                    (p as f64 / largest).powf(1.0 / options.temperature)
                } else {
                    0.0
                }
            })
            .collect();
        if let Some(k) = options.top_k.filter(|&k| k < num_cols) {
            let mut order: Vec<usize> = (0..num_cols).collect();
            order.sort_by(|&a, &b| q[b].total_cmp(&q[a]));
            for &c in &order[k..] {
                q[c] = 0.0;
            }
        }
        shaped.extend(q.into_iter().map(|x| x as f32));
    }
    shaped
}

/// `count` names from a V^K x V probability table, drawn with a fresh generator of kind `rng`
/// seeded by `seed`.
pub fn sample_names(
    probs: &[f32],
    vocab: &Vocab,
    count: usize,
    seed: u64,
    rng: RngKind,
) -> Vec<String> {
    sample_names_with(probs, vocab, count, seed, rng, &SampleOptions::default())
        .expect("no prefix, so no unknown character")
}

/// `count` names drawn with the given temperature, top-k and prefix. A prefix character the
/// vocabulary does not have is an error.
pub fn sample_names_with(
    probs: &[f32],
    vocab: &Vocab,
    count: usize,
    seed: u64,
    rng: RngKind,
    options: &SampleOptions,
) -> Result<Vec<String>, UnknownChar> {
    let prefix: Vec<u32> = options
        .prefix
        .chars()
        .map(|ch| {
            vocab
                .index(ch)
                .filter(|&i| i != 0)
                .ok_or_else(|| UnknownChar {
                    word: options.prefix.clone(),
                    ch,
                })
        })
        .collect::<Result<_, _>>()?;
    let num_cols = vocab.len();
    let num_rows = probs.len() / num_cols;
    let probs = shape_probs(probs, num_cols, options);
    let names: Vec<Vec<u32>> = match rng {
        RngKind::Std => {
            use rand::SeedableRng;
            let sampler = Sampler::new(&probs, num_cols);
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            (0..count)
                .map(|_| sampler.name_from(&prefix, &mut rng))
                .collect()
        }
        RngKind::Torch => {
            let mut generator = TorchGenerator::new(seed);
            (0..count)
                .map(|_| {
                    draw_name(num_rows, num_cols, &prefix, |row| {
                        torch_draw(&mut generator, &probs[row * num_cols..][..num_cols])
                    })
                })
                .collect()
        }
    };
    Ok(names
        .into_iter()
        .map(|symbols| symbols.into_iter().map(|s| vocab.char(s)).collect())
        .collect())
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
        for rng in [RngKind::Std, RngKind::Torch] {
            let names = sample_names(&[0.0, 1.0, 1.0, 0.0], &vocab, 3, 5, rng);
            assert_eq!(names, vec!["a", "a", "a"], "{rng:?}");
        }
    }

    #[test]
    fn a_row_with_no_mass_ends_the_name() {
        // From `.` always `a`; `a` was never followed by anything.
        let vocab = Vocab::from_words(&["a"]);
        for rng in [RngKind::Std, RngKind::Torch] {
            let names = sample_names(&[0.0, 1.0, 0.0, 0.0], &vocab, 2, 5, rng);
            assert_eq!(names, vec!["a", "a"], "{rng:?}");
        }
    }

    #[test]
    fn torch_draws_are_torch_multinomial() {
        // Each character is one multinomial draw on its context's row, in order.
        let vocab = Vocab::from_words(&["ab"]);
        let probs = [0.2, 0.5, 0.3, 0.4, 0.1, 0.5, 0.6, 0.3, 0.1];
        let names = sample_names(&probs, &vocab, 20, 7, RngKind::Torch);
        let mut generator = TorchGenerator::new(7);
        for name in names {
            let mut row = 0;
            for ch in name.chars().chain(['.']) {
                let symbol = generator.multinomial_one(&probs[row * 3..][..3]);
                assert_eq!(vocab.char(symbol as u32), ch);
                row = symbol;
            }
        }
    }

    #[test]
    fn temperature_and_top_k_reshape_a_row() {
        let row = [0.1f32, 0.2, 0.7];
        let cold = SampleOptions {
            temperature: 0.5,
            ..SampleOptions::default()
        };
        // p^2 normalized: 0.01, 0.04, 0.49 over 0.54.
        let q = shape_probs(&row, 3, &cold);
        let total: f32 = q.iter().sum();
        assert!((q[2] / total - 0.49 / 0.54).abs() < 1e-6, "{q:?}");
        let top1 = SampleOptions {
            top_k: Some(1),
            ..SampleOptions::default()
        };
        assert_eq!(shape_probs(&row, 3, &top1), vec![0.0, 0.0, 1.0]);
        assert_eq!(
            shape_probs(&row, 3, &SampleOptions::default()),
            row.to_vec()
        );
    }

    #[test]
    fn names_start_with_the_prefix() {
        let vocab = Vocab::from_words(&["ab", "ba"]);
        let uniform = vec![1.0f32 / 3.0; 9];
        let options = SampleOptions {
            prefix: "ba".to_string(),
            ..SampleOptions::default()
        };
        let names = sample_names_with(&uniform, &vocab, 20, 3, RngKind::Std, &options).unwrap();
        assert!(names.iter().all(|n| n.starts_with("ba")), "{names:?}");
        let bad = SampleOptions {
            prefix: "bz".to_string(),
            ..SampleOptions::default()
        };
        let err = sample_names_with(&uniform, &vocab, 1, 3, RngKind::Std, &bad).unwrap_err();
        assert_eq!(err.ch, 'z');
    }
}

//! The last stage: names drawn on the host from a model's probability table, one character at
//! a time from the start context until `.`. With [`RngKind::Std`] each row's cumulative
//! distribution is built once as 32-bit thresholds with a guide table (a draw is one 32-bit
//! number, a lookup and a short scan), and names are drawn in seeded blocks on two threads.
//! With [`RngKind::Torch`] each draw is the lecture's
//! `torch.multinomial(p, num_samples=1, replacement=True, generator=g)` on the row.

use rand::Rng;

use crate::data::{UnknownChar, Vocab};
use crate::rng::RngKind;
use crate::torch_rng::TorchGenerator;

/// A name longer than this is cut off (a tiny end probability could go on for very long).
pub const MAX_NAME_LEN: usize = 256;

/// The most guide bits of a row: more would not shorten the scan, and at context 4 (531,441
/// rows of 27) 256 buckets a row would take 272 MB where 32 take 34 MB.
const GUIDE_BITS: u32 = 8;

/// Bits of the guide of rows of `num_cols` columns: ceil(log2(V)), from 1 to GUIDE_BITS.
fn guide_bits(num_cols: usize) -> u32 {
    num_cols
        .next_power_of_two()
        .trailing_zeros()
        .clamp(1, GUIDE_BITS)
}

/// Per-row cumulative distributions of a V^K x V probability table.
#[derive(Clone, Debug)]
pub struct Sampler {
    /// threshold[r * V + c] = round(2^32 * sum of P[r, 0..=c] / sum of P[r, ..]) in f64; the
    /// last of every row is 2^32, above every 32-bit draw.
    threshold: Vec<u64>,
    /// guide[r * 2^guide_bits + b]: the first column whose threshold is above the smallest
    /// draw of bucket b, where the scan starts (u16: V <= [`crate::limits::MAX_VOCAB`] = 2^16).
    guide: Vec<u16>,
    guide_bits: u32,
    num_cols: usize,
    num_rows: usize,
}

impl Sampler {
    pub fn new(probs: &[f32], num_cols: usize) -> Sampler {
        let full = (1u64 << 32) as f64;
        let mut threshold = Vec::with_capacity(probs.len());
        for row in probs.chunks(num_cols) {
            let total: f64 = row.iter().map(|&p| p as f64).sum();
            let mut running = 0.0;
            for (c, &p) in row.iter().enumerate() {
                running += p as f64;
                // A row with no mass (a context never seen) ends the word: all its mass on `.`.
                threshold.push(if total > 0.0 && c + 1 < num_cols {
                    (running / total * full).round().min(full) as u64
                } else {
                    1u64 << 32
                });
            }
        }
        let bits = guide_bits(num_cols);
        let mut guide = Vec::with_capacity((threshold.len() / num_cols.max(1)) << bits);
        for row in threshold.chunks(num_cols) {
            let mut c = 0;
            for b in 0..1u64 << bits {
                while row[c] <= b << (32 - bits) {
                    c += 1;
                }
                guide.push(c as u16);
            }
        }
        let num_rows = probs.len() / num_cols;
        Sampler {
            threshold,
            guide,
            guide_bits: bits,
            num_cols,
            num_rows,
        }
    }

    /// One draw from row `row`: the first column whose threshold is above a uniform 32-bit u.
    #[inline]
    pub fn draw<R: Rng + ?Sized>(&self, row: usize, rng: &mut R) -> u32 {
        let u = rng.next_u32() as u64;
        let thresholds = &self.threshold[row * self.num_cols..][..self.num_cols];
        let bits = self.guide_bits;
        let mut c = self.guide[(row << bits) + (u >> (32 - bits)) as usize] as usize;
        while thresholds[c] <= u {
            c += 1; // stops inside the row: the last threshold is 2^32 > u
        }
        c as u32
    }
}

/// Draws from context row `context` until `.` (not passed on) or `limit` symbols, each
/// `draw(row)` passed to `push`; the context then drops its oldest character:
/// `(row * V + symbol) mod V^K`.
#[inline]
fn walk(
    mut context: usize,
    limit: usize,
    (num_rows, num_cols): (usize, usize),
    mut draw: impl FnMut(usize) -> u32,
    mut push: impl FnMut(u32),
) {
    for _ in 0..limit {
        let next = draw(context);
        if next == 0 {
            break;
        }
        push(next);
        context = next_context(context, next, num_rows, num_cols);
    }
}

#[inline]
fn next_context(row: usize, symbol: u32, num_rows: usize, num_cols: usize) -> usize {
    if num_rows == num_cols {
        symbol as usize
    } else {
        (row * num_cols + symbol as usize) % num_rows
    }
}

/// The context row after the start (all `.`) and `prefix`.
fn start_row(prefix: &[u32], (num_rows, num_cols): (usize, usize)) -> usize {
    (prefix.iter()).fold(0, |row, &s| next_context(row, s, num_rows, num_cols))
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

/// The table reshaped row by row: q[c] = p[c]^(1/T) (softmax(logits / T), p being
/// softmax(logits)), zero outside the k largest (ties kept in column order); the sampler
/// renormalizes. Unchanged with T = 1 and no k.
pub fn shape_probs(probs: &[f32], num_cols: usize, options: &SampleOptions) -> Vec<f32> {
    if options.temperature == 1.0 && options.top_k.is_none() {
        return probs.to_vec();
    }
    let mut shaped = Vec::with_capacity(probs.len());
    for row in probs.chunks(num_cols) {
        // Over the row's largest value, so that p^(1/T) cannot underflow to all zeros.
        let largest = row.iter().copied().fold(0.0f32, f32::max) as f64;
        let power = |p: f32| (p as f64 / largest).powf(1.0 / options.temperature);
        let mut q: Vec<f64> = row
            .iter()
            .map(|&p| if largest > 0.0 { power(p) } else { 0.0 })
            .collect();
        if let Some(k) = options.top_k.filter(|&k| k < num_cols) {
            let mut order: Vec<usize> = (0..num_cols).collect();
            order.sort_by(|&a, &b| q[b].total_cmp(&q[a]));
            order[k..].iter().for_each(|&c| q[c] = 0.0);
        }
        shaped.extend(q.into_iter().map(|x| x as f32));
    }
    shaped
}

/// Names drawn with one generator, seeded from the sampling seed and the block's index.
pub const NAMES_PER_BLOCK: usize = 4096;

/// `count` names in blocks of [`NAMES_PER_BLOCK`], two blocks at a time on two threads, each
/// block passed to `emit` in order (`emit` returns false to stop), so that memory holds a few
/// blocks whatever `count` is. A block is one buffer of symbols, each name (`prefix` and the
/// symbols drawn after it) followed by a 0; block b's generator is seeded by `seed` and b
/// alone, so the first n names do not depend on `count` or on the threads.
fn for_each_block(
    probs: &[f32],
    num_cols: usize,
    count: u64,
    seed: u64,
    prefix: &[u32],
    mut emit: impl FnMut(&[u32]) -> bool,
) {
    use rand::SeedableRng;
    let sampler = &Sampler::new(probs, num_cols);
    let shape = (sampler.num_rows, num_cols);
    let start = start_row(prefix, shape);
    let per_block = NAMES_PER_BLOCK as u64;
    let draw_block = move |b: u64| {
        let len = (count - b * per_block).min(per_block) as usize;
        let block_seed = seed ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let rng = &mut rand::rngs::StdRng::seed_from_u64(block_seed);
        let mut symbols = Vec::with_capacity(8 * len);
        for _ in 0..len {
            symbols.extend_from_slice(prefix);
            let push = |s| symbols.push(s);
            walk(
                start,
                MAX_NAME_LEN,
                shape,
                |row| sampler.draw(row, rng),
                push,
            );
            symbols.push(0);
        }
        symbols
    };
    let blocks = count.div_ceil(per_block);
    for first in (0..blocks).step_by(2) {
        let drawn: Vec<Vec<u32>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (first..blocks.min(first + 2))
                .map(|b| scope.spawn(move || draw_block(b)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a sampling thread panicked"))
                .collect()
        });
        if !drawn.iter().all(|symbols| emit(symbols)) {
            return;
        }
    }
}
/// `count` names as one buffer of symbols, each name followed by a 0: the names of
/// [`for_each_name`] with [`RngKind::Std`].
pub fn sample_symbols(
    probs: &[f32],
    num_cols: usize,
    count: usize,
    seed: u64,
    prefix: &[u32],
) -> Vec<u32> {
    let mut all = Vec::new();
    for_each_block(probs, num_cols, count as u64, seed, prefix, |symbols| {
        all.extend_from_slice(symbols);
        true
    });
    all
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

/// `count` names drawn with the given temperature, top-k and prefix.
pub fn sample_names_with(
    probs: &[f32],
    vocab: &Vocab,
    count: usize,
    seed: u64,
    rng: RngKind,
    options: &SampleOptions,
) -> Result<Vec<String>, UnknownChar> {
    let mut names = Vec::with_capacity(count.min(NAMES_PER_BLOCK));
    for_each_name(probs, vocab, count as u64, seed, rng, options, |name| {
        names.push(name.to_string());
        true
    })?;
    Ok(names)
}

/// The symbols of `prefix`: an error names a character the vocabulary lacks (or `.`).
pub fn prefix_symbols(vocab: &Vocab, prefix: &str) -> Result<Vec<u32>, UnknownChar> {
    let symbol = |ch| vocab.index(ch).filter(|&i| i != 0);
    let unknown = |ch| UnknownChar {
        word: prefix.to_string(),
        ch,
    };
    prefix
        .chars()
        .map(|ch| symbol(ch).ok_or_else(|| unknown(ch)))
        .collect()
}

/// The names of [`sample_names_with`], passed to `emit` one at a time as they are drawn (it
/// returns false to stop), in memory bounded by the table whatever `count` is. A prefix
/// character the vocabulary lacks is an error before anything is drawn.
pub fn for_each_name(
    probs: &[f32],
    vocab: &Vocab,
    count: u64,
    seed: u64,
    rng: RngKind,
    options: &SampleOptions,
    mut emit: impl FnMut(&str) -> bool,
) -> Result<(), UnknownChar> {
    let prefix = prefix_symbols(vocab, &options.prefix)?;
    let num_cols = vocab.len();
    let shape = (probs.len() / num_cols, num_cols);
    let probs = shape_probs(probs, num_cols, options);
    let mut name = String::new();
    let mut emit_name = |symbols: &[u32]| {
        name.clear();
        name.extend(symbols.iter().map(|&s| vocab.char(s)));
        emit(&name)
    };
    match rng {
        RngKind::Std => for_each_block(&probs, num_cols, count, seed, &prefix, |symbols| {
            let mut names = symbols.split_inclusive(|&s| s == 0); // each ends with its 0
            names.all(|named| emit_name(&named[..named.len() - 1]))
        }),
        RngKind::Torch => {
            let generator = &mut TorchGenerator::new(seed);
            let start = start_row(&prefix, shape);
            // A row with no mass (a context never seen, smoothing 0) ends the word after its
            // draw, where PyTorch would refuse it.
            let mut draw = |row: usize| {
                let row = &probs[row * num_cols..][..num_cols];
                let drawn = generator.multinomial_one(row) as u32;
                if row.iter().any(|&p| p > 0.0) {
                    drawn
                } else {
                    0
                }
            };
            for _ in 0..count {
                let mut symbols = prefix.clone();
                let limit = MAX_NAME_LEN.saturating_sub(prefix.len());
                walk(start, limit, shape, &mut draw, |s| symbols.push(s));
                if !emit_name(&symbols) {
                    break;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn seeded(seed: u64) -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(seed)
    }

    #[test]
    fn draws_follow_the_distribution() {
        let sampler = Sampler::new(&[0.0, 0.25, 0.75], 3);
        let (mut rng, mut hits) = (seeded(1), [0usize; 3]);
        (0..40_000).for_each(|_| hits[sampler.draw(0, &mut rng) as usize] += 1);
        assert_eq!(hits[0], 0, "a zero-probability column is never drawn");
        let share = hits[2] as f64 / 40_000.0;
        assert!((share - 0.75).abs() < 0.01, "share {share}");
    }

    /// The guide only says where the scan starts: every draw is the first column whose
    /// threshold is above u, whatever the row length (and so the guide's size).
    #[test]
    fn draws_equal_a_full_scan_for_every_guide_size() {
        for cols in [1, 2, 3, 27, 255, 256, 300] {
            let probs: Vec<f32> = (0..2 * cols).map(|i| ((i * 7919) % 13) as f32).collect();
            let sampler = Sampler::new(&probs, cols);
            assert_eq!(sampler.guide.len(), 2 << guide_bits(cols));
            let (mut rng, mut same) = (seeded(cols as u64), seeded(cols as u64));
            for i in 0..20_000 {
                let got = sampler.draw(i % 2, &mut rng);
                let u = same.next_u32() as u64;
                let thresholds = &sampler.threshold[(i % 2) * cols..][..cols];
                let want = thresholds.iter().position(|&t| t > u).unwrap();
                assert_eq!(got as usize, want, "{cols} columns, draw {i}");
            }
        }
        assert_eq!((guide_bits(27), guide_bits(2), guide_bits(1000)), (5, 1, 8));
    }

    #[test]
    fn columns_past_255_are_drawn() {
        // 5,000 columns: all the mass on the last, then uniform.
        let mut last = vec![0.0f32; 5000];
        last[4999] = 1.0;
        let sampler = Sampler::new(&last, 5000);
        let mut rng = seeded(3);
        assert!((0..100).all(|_| sampler.draw(0, &mut rng) == 4999));
        let uniform = Sampler::new(&vec![1.0f32; 5000], 5000);
        let draws: Vec<u32> = (0..20_000).map(|_| uniform.draw(0, &mut rng)).collect();
        let high = draws.iter().filter(|&&c| c >= 256).count();
        assert!(draws.iter().all(|&c| c < 5000));
        let share = high as f64 / draws.len() as f64;
        assert!((share - 4744.0 / 5000.0).abs() < 0.01, "{share}");
    }

    const AB: [f32; 9] = [0.0, 0.5, 0.5, 0.3, 0.0, 0.7, 0.4, 0.6, 0.0];

    #[test]
    fn names_stream_in_the_order_they_are_collected() {
        let vocab = Vocab::from_words(&["ab", "ba"]);
        let count = 2 * NAMES_PER_BLOCK as u64 + 7;
        let options = SampleOptions::default();
        for rng in [RngKind::Std, RngKind::Torch] {
            let all = sample_names_with(&AB, &vocab, count as usize, 5, rng, &options).unwrap();
            let first = |count, stop: usize| {
                let mut names = Vec::new();
                for_each_name(&AB, &vocab, count, 5, rng, &options, |n| {
                    names.push(n.to_string());
                    names.len() < stop
                })
                .unwrap();
                names
            };
            assert_eq!(first(count, usize::MAX), all, "{rng:?}");
            // Stopping early: the first names, no more.
            assert_eq!(first(u64::MAX, 10), all[..10].to_vec(), "{rng:?}");
        }
    }

    #[test]
    fn names_do_not_depend_on_how_many_are_drawn() {
        let vocab = Vocab::from_words(&["ab", "ba"]);
        let n = 3 * NAMES_PER_BLOCK + 5;
        let many = sample_names(&AB, &vocab, n, 9, RngKind::Std);
        assert_eq!(many.len(), n);
        assert_eq!(
            sample_names(&AB, &vocab, 10, 9, RngKind::Std),
            many[..10].to_vec()
        );
        assert_eq!(many, sample_names(&AB, &vocab, n, 9, RngKind::Std));
        assert!(many[NAMES_PER_BLOCK..].iter().all(|n| !n.contains('.')));
    }

    #[test]
    fn a_name_ends_at_the_boundary_or_a_row_with_no_mass() {
        // From `.` always `a`, from `a` always `.` (or, second, nothing: never seen).
        let vocab = Vocab::from_words(&["a"]);
        for rng in [RngKind::Std, RngKind::Torch] {
            let names = sample_names(&[0.0, 1.0, 1.0, 0.0], &vocab, 3, 5, rng);
            assert_eq!(names, vec!["a", "a", "a"], "{rng:?}");
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
                row = generator.multinomial_one(&probs[row * 3..][..3]);
                assert_eq!(vocab.char(row as u32), ch);
            }
        }
    }

    #[test]
    fn temperature_and_top_k_reshape_a_row() {
        let row = [0.1f32, 0.2, 0.7];
        let default = SampleOptions::default();
        // p^2 normalized: 0.01, 0.04, 0.49 over 0.54.
        let q = shape_probs(
            &row,
            3,
            &SampleOptions {
                temperature: 0.5,
                ..default.clone()
            },
        );
        let total: f32 = q.iter().sum();
        assert!((q[2] / total - 0.49 / 0.54).abs() < 1e-6, "{q:?}");
        let top1 = SampleOptions {
            top_k: Some(1),
            ..default.clone()
        };
        assert_eq!(shape_probs(&row, 3, &top1), vec![0.0, 0.0, 1.0]);
        assert_eq!(shape_probs(&row, 3, &default), row.to_vec());
    }

    #[test]
    fn names_start_with_the_prefix() {
        let vocab = Vocab::from_words(&["ab", "ba"]);
        let uniform = vec![1.0f32 / 3.0; 9];
        let with = |prefix: &str| SampleOptions {
            prefix: prefix.into(),
            ..Default::default()
        };
        let names = sample_names_with(&uniform, &vocab, 20, 3, RngKind::Std, &with("ba")).unwrap();
        assert!(names.iter().all(|n| n.starts_with("ba")), "{names:?}");
        let err = sample_names_with(&uniform, &vocab, 1, 3, RngKind::Std, &with("bz")).unwrap_err();
        assert_eq!(err.ch, 'z');
    }
}

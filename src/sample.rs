//! The last stage: drawing names on the host from a model's probability table, one character
//! at a time from the start context until `.`, with the generator [`RngKind`] names.
//!
//! With [`RngKind::Std`] each row's cumulative distribution is built once, as 32-bit
//! thresholds with a guide table; a draw is then one 32-bit uniform number, a lookup and a
//! short scan, with no allocation per character, and names are drawn in seeded blocks on two
//! threads. With [`RngKind::Torch`] each draw is the lecture's
//! `torch.multinomial(p, num_samples=1, replacement=True, generator=g)` on the row.

use rand::Rng;

use crate::data::{UnknownChar, Vocab};
use crate::rng::RngKind;
use crate::torch_rng::TorchGenerator;

/// A name longer than this is cut off (a model whose end probability is tiny could otherwise
/// go on for a very long time).
pub const MAX_NAME_LEN: usize = 256;

/// The most buckets of the guide table of each row: the top GUIDE_BITS bits of a draw pick
/// one. A row of V columns gets the fewest bits that give it at least V buckets, up to this:
/// more would not shorten the scan, and at context 4 (531,441 rows of 27) 256 buckets a row
/// would take 272 MB where 32 take 34 MB.
const GUIDE_BITS: u32 = 8;

/// Bits of the guide of rows of `num_cols` columns: ceil(log2(V)), from 1 to GUIDE_BITS.
fn guide_bits(num_cols: usize) -> u32 {
    num_cols
        .next_power_of_two()
        .trailing_zeros()
        .clamp(1, GUIDE_BITS)
}

/// Per-row cumulative distributions of a V^K x V probability table, as 32-bit thresholds
/// with a guide table, so that a draw is one 32-bit random number, one table lookup and a
/// short forward scan.
#[derive(Clone, Debug)]
pub struct Sampler {
    /// threshold[r * V + c] = round(2^32 * sum of P[r, 0..=c] / sum of P[r, ..]), computed in
    /// f64; the last entry of every row is 2^32, above every 32-bit draw.
    threshold: Vec<u64>,
    /// guide[r * 2^guide_bits + b]: the first column whose threshold is above the smallest
    /// draw of bucket b, where the scan for a draw in that bucket can start (16 bits: a
    /// vocabulary has at most [`crate::limits::MAX_VOCAB`] = 2^16 symbols).
    guide: Vec<u16>,
    guide_bits: u32,
    num_cols: usize,
    num_rows: usize,
}

impl Sampler {
    /// The sampler of a V^K x V table; V is at most [`crate::limits::MAX_VOCAB`], which
    /// every vocabulary is held to before a table is made.
    pub fn new(probs: &[f32], num_cols: usize) -> Sampler {
        let full = (1u64 << 32) as f64;
        let mut threshold = Vec::with_capacity(probs.len());
        for row in probs.chunks(num_cols) {
            let total: f64 = row.iter().map(|&p| p as f64).sum();
            let mut running = 0.0;
            for (c, &p) in row.iter().enumerate() {
                running += p as f64;
                // A row with no mass (a context never seen) ends the word: all its mass on `.`.
                let t = if total > 0.0 && c + 1 < num_cols {
                    (running / total * full).round().min(full) as u64
                } else {
                    1u64 << 32
                };
                threshold.push(t);
            }
        }
        let bits = guide_bits(num_cols);
        let buckets = 1usize << bits;
        let mut guide = Vec::with_capacity(threshold.len() / num_cols.max(1) * buckets);
        for row in threshold.chunks(num_cols) {
            let mut c = 0;
            for b in 0..buckets as u64 {
                let lowest = b << (32 - bits);
                while row[c] <= lowest {
                    c += 1;
                }
                // c < V <= 2^16: the column of a threshold above `lowest`, in the row.
                guide.push(c as u16);
            }
        }
        Sampler {
            threshold,
            guide,
            guide_bits: bits,
            num_cols,
            num_rows: probs.len() / num_cols,
        }
    }

    /// One draw from row `row`: the first column whose threshold is above a uniform 32-bit
    /// number u, i.e. whose cumulative probability exceeds u / 2^32.
    #[inline]
    pub fn draw<R: Rng + ?Sized>(&self, row: usize, rng: &mut R) -> u32 {
        let u = rng.next_u32() as u64;
        let thresholds = &self.threshold[row * self.num_cols..][..self.num_cols];
        let bits = self.guide_bits;
        let mut c = self.guide[(row << bits) + (u >> (32 - bits)) as usize] as usize;
        // The last threshold is 2^32 > u: the scan stops inside the row.
        while thresholds[c] <= u {
            c += 1;
        }
        c as u32
    }

    /// Symbols of one name, drawn one at a time from the start context until `.` (not included).
    pub fn name<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<u32> {
        let mut symbols = Vec::new();
        self.name_into(0, rng, |s| symbols.push(s));
        symbols
    }

    /// Draws the rest of one name from context row `context`, passing each symbol to `push`,
    /// with no allocation.
    #[inline]
    pub fn name_into<R: Rng + ?Sized>(
        &self,
        mut context: usize,
        rng: &mut R,
        mut push: impl FnMut(u32),
    ) {
        for _ in 0..MAX_NAME_LEN {
            let next = self.draw(context, rng);
            if next == 0 {
                break;
            }
            push(next);
            context = next_context(context, next, self.num_rows, self.num_cols);
        }
    }
}

/// The context row after `symbol`: `(row * V + symbol) mod V^K`, the oldest character
/// dropping out (with one character of context, simply `symbol`).
#[inline]
fn next_context(row: usize, symbol: u32, num_rows: usize, num_cols: usize) -> usize {
    if num_rows == num_cols {
        symbol as usize
    } else {
        (row * num_cols + symbol as usize) % num_rows
    }
}

/// The context row after the start (all `.`) and the symbols of `prefix`.
fn context_after(prefix: &[u32], num_rows: usize, num_cols: usize) -> usize {
    prefix
        .iter()
        .fold(0, |row, &s| next_context(row, s, num_rows, num_cols))
}

/// Symbols of one name the lecture's way: `draw(context row)` gives the next symbol, from the
/// context after `prefix` until `.` (not included) or [`MAX_NAME_LEN`] symbols in all.
fn draw_name(
    num_rows: usize,
    num_cols: usize,
    prefix: &[u32],
    mut draw: impl FnMut(usize) -> u32,
) -> Vec<u32> {
    let mut context = context_after(prefix, num_rows, num_cols);
    let mut symbols = prefix.to_vec();
    while symbols.len() < MAX_NAME_LEN {
        let next = draw(context);
        if next == 0 {
            break;
        }
        symbols.push(next);
        context = next_context(context, next, num_rows, num_cols);
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

/// Names drawn with one generator, seeded from the sampling seed and the block's index.
pub const NAMES_PER_BLOCK: usize = 4096;

/// Threads that draw blocks of names.
const SAMPLE_THREADS: usize = 2;

/// Block `b` of the names drawn with `seed`: `len` names as one buffer of symbols, each name
/// (`prefix` and the symbols drawn after it, from context row `start`) followed by a 0 (the
/// `.` that ends it). Its generator is seeded by `seed` and b alone.
fn draw_block(
    sampler: &Sampler,
    start: usize,
    prefix: &[u32],
    seed: u64,
    b: usize,
    len: usize,
) -> Vec<u32> {
    use rand::SeedableRng;
    let block_seed = seed ^ (b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut rng = rand::rngs::StdRng::seed_from_u64(block_seed);
    let mut symbols = Vec::with_capacity(8 * len);
    #[allow(clippy::same_item_push)] // the 0 after each name, between its symbols
    for _ in 0..len {
        symbols.extend_from_slice(prefix);
        sampler.name_into(start, &mut rng, |s| symbols.push(s));
        symbols.push(0); // the `.` that ends the name
    }
    symbols
}

/// `count` names drawn in blocks of [`NAMES_PER_BLOCK`], [`SAMPLE_THREADS`] blocks at a time,
/// each block passed to `emit` (in block order) as [`draw_block`] makes it, so that memory
/// holds a few blocks whatever `count` is. `emit` returns false to stop early.
/// Block b is drawn with a generator seeded by `seed` and b, so the names depend only on the
/// seed (not on how many threads draw the blocks), and the first n names are the same
/// whatever `count` >= n.
fn for_each_block(
    probs: &[f32],
    num_cols: usize,
    count: u64,
    seed: u64,
    prefix: &[u32],
    mut emit: impl FnMut(&[u32]) -> bool,
) {
    let sampler = Sampler::new(probs, num_cols);
    let start = context_after(prefix, probs.len() / num_cols, num_cols);
    let per_block = NAMES_PER_BLOCK as u64;
    let blocks = count.div_ceil(per_block);
    let len = |b: u64| (count - b * per_block).min(per_block) as usize;
    let mut b = 0u64;
    while b < blocks {
        let group = (blocks - b).min(SAMPLE_THREADS as u64);
        let drawn: Vec<Vec<u32>> = if group == 1 {
            vec![draw_block(
                &sampler,
                start,
                prefix,
                seed,
                b as usize,
                len(b),
            )]
        } else {
            std::thread::scope(|scope| {
                let sampler = &sampler;
                let handles: Vec<_> = (b..b + group)
                    .map(|block| {
                        scope.spawn(move || {
                            draw_block(sampler, start, prefix, seed, block as usize, len(block))
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("a sampling thread panicked"))
                    .collect()
            })
        };
        for symbols in &drawn {
            if !emit(symbols) {
                return;
            }
        }
        b += group;
    }
}

/// `count` names as one buffer of symbols, each name (`prefix` and the symbols drawn after it)
/// followed by a 0 (the `.` that ends it); the names of [`for_each_name`] with [`RngKind::Std`].
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
    let mut names = Vec::with_capacity(count.min(NAMES_PER_BLOCK));
    for_each_name(probs, vocab, count as u64, seed, rng, options, |name| {
        names.push(name.to_string());
        true
    })?;
    Ok(names)
}

/// Checks that every character of `prefix` is in the vocabulary (and none is the boundary).
pub fn check_prefix(vocab: &Vocab, prefix: &str) -> Result<(), UnknownChar> {
    prefix_symbols(vocab, prefix).map(|_| ())
}

/// The symbols of `prefix`, none of them the boundary.
fn prefix_symbols(vocab: &Vocab, prefix: &str) -> Result<Vec<u32>, UnknownChar> {
    prefix
        .chars()
        .map(|ch| {
            vocab
                .index(ch)
                .filter(|&i| i != 0)
                .ok_or_else(|| UnknownChar {
                    word: prefix.to_string(),
                    ch,
                })
        })
        .collect()
}

/// The names of [`sample_names_with`], passed to `emit` one at a time as they are drawn, in
/// memory bounded by the table (a few blocks of names at a time), whatever `count` is.
/// `emit` returns false to stop. A prefix character the vocabulary does not have is an error,
/// before anything is drawn.
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
    let num_rows = probs.len() / num_cols;
    let probs = shape_probs(probs, num_cols, options);
    let mut name = String::new();
    match rng {
        RngKind::Std => for_each_block(&probs, num_cols, count, seed, &prefix, |symbols| {
            // Each name ends with its 0.
            for named in symbols.split_inclusive(|&s| s == 0) {
                let symbols = &named[..named.len() - 1];
                name.clear();
                name.extend(symbols.iter().map(|&s| vocab.char(s)));
                if !emit(&name) {
                    return false;
                }
            }
            true
        }),
        RngKind::Torch => {
            let mut generator = TorchGenerator::new(seed);
            for _ in 0..count {
                let symbols = draw_name(num_rows, num_cols, &prefix, |row| {
                    torch_draw(&mut generator, &probs[row * num_cols..][..num_cols])
                });
                name.clear();
                name.extend(symbols.into_iter().map(|s| vocab.char(s)));
                if !emit(&name) {
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

    /// The guide only says where the scan starts: every draw is the first column whose
    /// threshold is above u, whatever the row length (and so the guide's size).
    #[test]
    fn draws_equal_a_full_scan_for_every_guide_size() {
        for cols in [1, 2, 3, 27, 255, 256, 300] {
            let probs: Vec<f32> = (0..2 * cols).map(|i| ((i * 7919) % 13) as f32).collect();
            let sampler = Sampler::new(&probs, cols);
            assert_eq!(sampler.guide.len(), 2 << guide_bits(cols));
            let mut rng = rand::rngs::StdRng::seed_from_u64(cols as u64);
            let mut same = rand::rngs::StdRng::seed_from_u64(cols as u64);
            for i in 0..20_000 {
                let row = i % 2;
                let got = sampler.draw(row, &mut rng);
                let u = same.next_u32() as u64;
                let thresholds = &sampler.threshold[row * cols..][..cols];
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
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        assert!((0..100).all(|_| sampler.draw(0, &mut rng) == 4999));
        let uniform = Sampler::new(&vec![1.0f32; 5000], 5000);
        let draws: Vec<u32> = (0..20_000).map(|_| uniform.draw(0, &mut rng)).collect();
        let high = draws.iter().filter(|&&c| c >= 256).count();
        assert!(draws.iter().all(|&c| c < 5000));
        let share = high as f64 / draws.len() as f64;
        assert!((share - 4744.0 / 5000.0).abs() < 0.01, "{share}");
    }

    #[test]
    fn names_stream_in_the_order_they_are_collected() {
        let vocab = Vocab::from_words(&["ab", "ba"]);
        let probs = [0.0, 0.5, 0.5, 0.3, 0.0, 0.7, 0.4, 0.6, 0.0];
        let count = 2 * NAMES_PER_BLOCK as u64 + 7;
        for rng in [RngKind::Std, RngKind::Torch] {
            let options = SampleOptions::default();
            let all = sample_names_with(&probs, &vocab, count as usize, 5, rng, &options).unwrap();
            let mut streamed = Vec::new();
            for_each_name(&probs, &vocab, count, 5, rng, &options, |n| {
                streamed.push(n.to_string());
                true
            })
            .unwrap();
            assert_eq!(streamed, all, "{rng:?}");
            // Stopping early: the first names, no more.
            let mut first = Vec::new();
            for_each_name(&probs, &vocab, u64::MAX, 5, rng, &options, |n| {
                first.push(n.to_string());
                first.len() < 10
            })
            .unwrap();
            assert_eq!(first, all[..10].to_vec(), "{rng:?}");
        }
    }

    #[test]
    fn names_do_not_depend_on_how_many_are_drawn() {
        let vocab = Vocab::from_words(&["ab", "ba"]);
        let probs = [0.0, 0.5, 0.5, 0.3, 0.0, 0.7, 0.4, 0.6, 0.0];
        let many = sample_names(&probs, &vocab, 3 * NAMES_PER_BLOCK + 5, 9, RngKind::Std);
        assert_eq!(many.len(), 3 * NAMES_PER_BLOCK + 5);
        assert_eq!(
            sample_names(&probs, &vocab, 10, 9, RngKind::Std),
            many[..10].to_vec()
        );
        assert_eq!(
            many,
            sample_names(&probs, &vocab, 3 * NAMES_PER_BLOCK + 5, 9, RngKind::Std)
        );
        assert!(many[NAMES_PER_BLOCK..].iter().all(|n| !n.contains('.')));
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

//! The last stage: names drawn on the host from a model's probability table, one character at
//! a time from the start context until `.`. With [`RngKind::Std`] each row's cumulative
//! distribution is built once as 32-bit thresholds with a guide table (a draw is one 32-bit
//! number, a lookup and a short scan), and names are drawn in seeded blocks on two threads.
//! With [`RngKind::Torch`] each draw is the lecture's
//! `torch.multinomial(p, num_samples=1, replacement=True, generator=g)` on the row.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::data::Vocab;
use crate::rng::RngKind;
use crate::torch_rng::TorchGenerator;

/// A name longer than this is cut off (a tiny end probability could go on for very long).
pub const MAX_NAME_LEN: usize = 256;
/// Names drawn with one generator, seeded from the sampling seed and the block's index.
pub const NAMES_PER_BLOCK: usize = 4096;

/// The most guide bits of a row: more would not shorten the scan, and at context 4 (531,441
/// rows of 27) 256 buckets a row would take 272 MB where 32 take 34 MB.
const GUIDE_BITS: u32 = 8;

/// Per-row cumulative distributions of a V^K x V probability table.
struct Sampler {
    /// threshold[r * V + c] = round(2^32 * sum of P[r, 0..=c] / sum of P[r, ..]) in f64; the
    /// last of every row is 2^32, above every 32-bit draw.
    threshold: Vec<u64>,
    /// guide[r * 2^guide_bits + b]: the first column whose threshold is above the smallest
    /// draw of bucket b, where the scan starts (u16: V <= [`crate::limits::MAX_VOCAB`] = 2^16).
    guide: Vec<u16>,
    /// ceil(log2(V)), from 1 to GUIDE_BITS.
    guide_bits: u32,
    num_cols: usize,
}

impl Sampler {
    fn new(probs: &[f32], num_cols: usize) -> Sampler {
        let full = (1u64 << 32) as f64;
        let mut threshold = Vec::with_capacity(probs.len());
        for row in probs.chunks(num_cols) {
            let total: f64 = row.iter().map(|&p| p as f64).sum();
            let mut running = 0.0;
            for (c, &p) in row.iter().enumerate() {
                running += p as f64;
                // A row with no mass (a context never seen) ends the word: all its mass on `.`.
                let kept = total > 0.0 && c + 1 < num_cols;
                let share = if kept { running / total } else { 1.0 };
                threshold.push((share * full).round().min(full) as u64);
            }
        }
        let bits = num_cols.next_power_of_two().trailing_zeros();
        let guide_bits = bits.clamp(1, GUIDE_BITS);
        let mut guide = Vec::with_capacity((threshold.len() / num_cols.max(1)) << guide_bits);
        for row in threshold.chunks(num_cols) {
            let mut c = 0;
            for b in 0..1u64 << guide_bits {
                while row[c] <= b << (32 - guide_bits) {
                    c += 1;
                }
                guide.push(c as u16);
            }
        }
        Sampler {
            threshold,
            guide,
            guide_bits,
            num_cols,
        }
    }

    /// One draw from row `row`: the first column whose threshold is above a uniform 32-bit u.
    #[inline]
    fn draw<R: Rng + ?Sized>(&self, row: usize, rng: &mut R) -> u32 {
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

/// `len` names as one buffer of symbols, each `prefix` and the symbols `draw(row)` gives after
/// it until `.` (not kept) or `limit` symbols, then a 0. The context row drops its oldest
/// character at each symbol: `(row * V + symbol) mod V^K`.
#[inline]
fn draw_names(
    len: usize,
    prefix: &[u32],
    limit: usize,
    (num_rows, num_cols): (usize, usize),
    mut draw: impl FnMut(usize) -> u32,
) -> Vec<u32> {
    let next = |row: usize, symbol: u32| match num_rows == num_cols {
        true => symbol as usize,
        false => (row * num_cols + symbol as usize) % num_rows,
    };
    let start = prefix.iter().fold(0, |row, &s| next(row, s));
    let mut symbols = Vec::with_capacity(8 * len);
    for _ in 0..len {
        symbols.extend_from_slice(prefix);
        let mut row = start;
        for _ in 0..limit {
            let symbol = draw(row);
            if symbol == 0 {
                break;
            }
            symbols.push(symbol);
            row = next(row, symbol);
        }
        symbols.push(0);
    }
    symbols
}

/// `count` names in blocks of [`NAMES_PER_BLOCK`] (see [`draw_names`]), each block passed to
/// `emit` in order (`emit` returns false to stop), so that memory holds a few blocks whatever
/// `count` is. With [`RngKind::Std`] block b's generator is seeded by `seed` and b alone, so
/// the first n names do not depend on `count` or on the threads, and two threads draw them;
/// with [`RngKind::Torch`] one generator draws every name in turn.
fn for_each_block(
    probs: &[f32],
    num_cols: usize,
    (count, seed, rng): (u64, u64, RngKind),
    prefix: &[u32],
    mut emit: impl FnMut(&[u32]) -> bool,
) {
    let (shape, per_block) = ((probs.len() / num_cols, num_cols), NAMES_PER_BLOCK as u64);
    let len = |b: u64| (count - b * per_block).min(per_block) as usize;
    let blocks = count.div_ceil(per_block);
    if rng == RngKind::Torch {
        let generator = &mut TorchGenerator::new(seed);
        // A row with no mass (a context never seen, smoothing 0) ends the word (0) after its
        // draw, where PyTorch would refuse it.
        let mut draw = |row: usize| {
            let row = &probs[row * num_cols..][..num_cols];
            generator.multinomial_one(row) as u32 * row.iter().any(|&p| p > 0.0) as u32
        };
        let limit = MAX_NAME_LEN.saturating_sub(prefix.len());
        (0..blocks).all(|b| emit(&draw_names(len(b), prefix, limit, shape, &mut draw)));
        return;
    }
    let sampler = &Sampler::new(probs, num_cols);
    let draw_block = move |b: u64| {
        let rng = &mut StdRng::seed_from_u64(seed ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let draw = |row| sampler.draw(row, rng);
        draw_names(len(b), prefix, MAX_NAME_LEN, shape, draw)
    };
    // One thread for the whole run draws the odd blocks, each while this one draws and emits
    // the block before it (a thread per block or pair waits to be scheduled each time).
    std::thread::scope(|scope| {
        let (send, receive) = std::sync::mpsc::sync_channel(0);
        scope.spawn(move || {
            (1..blocks)
                .step_by(2)
                .all(|b| send.send(draw_block(b)).is_ok())
        });
        let odd = || receive.recv().expect("a sampling thread panicked");
        for b in (0..blocks).step_by(2) {
            if !emit(&draw_block(b)) || (b + 1 < blocks && !emit(&odd())) {
                return;
            }
        }
    });
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
    let (mut all, std) = (Vec::new(), (count as u64, seed, RngKind::Std));
    for_each_block(probs, num_cols, std, prefix, |symbols| {
        all.extend_from_slice(symbols);
        true
    });
    all
}

/// `count` names from a V^K x V probability table, drawn with a fresh `rng` seeded by `seed`.
pub fn sample_names(
    probs: &[f32],
    vocab: &Vocab,
    count: usize,
    seed: u64,
    rng: RngKind,
) -> Vec<String> {
    let mut names = Vec::with_capacity(count.min(NAMES_PER_BLOCK));
    for_each_name(probs, vocab, (count as u64, seed, rng), &[], |name| {
        names.push(name.to_string());
        true
    });
    names
}

/// The table reshaped row by row for makemore.py's `--temperature` T and `--top-k` k:
/// q[c] = p[c]^(1/T) (softmax(logits / T), p being softmax(logits)), zero outside the k largest
/// (ties kept in column order); the sampler renormalizes. Unchanged with T = 1 and no k.
pub fn shape_probs(probs: &[f32], cols: usize, temperature: f32, top_k: Option<u32>) -> Vec<f32> {
    if temperature == 1.0 && top_k.is_none() {
        return probs.to_vec();
    }
    let (temperature, top_k) = (temperature as f64, top_k.map(|k| k as usize));
    let mut shaped = Vec::with_capacity(probs.len());
    for row in probs.chunks(cols) {
        // Over the row's largest value, so that p^(1/T) cannot underflow to all zeros.
        let largest = row.iter().copied().fold(0.0f32, f32::max) as f64;
        let power = |p: f32| (p as f64 / largest).powf(1.0 / temperature);
        let mut q: Vec<f64> = row
            .iter()
            .map(|&p| if largest > 0.0 { power(p) } else { 0.0 })
            .collect();
        if let Some(k) = top_k.filter(|&k| k < cols) {
            let mut order: Vec<usize> = (0..cols).collect();
            order.sort_by(|&a, &b| q[b].total_cmp(&q[a]));
            order[k..].iter().for_each(|&c| q[c] = 0.0);
        }
        shaped.extend(q.into_iter().map(|x| x as f32));
    }
    shaped
}

/// The symbols of `prefix`, or the first character the vocabulary lacks (or `.`).
pub fn prefix_symbols(vocab: &Vocab, prefix: &str) -> Result<Vec<u32>, char> {
    let symbol = |ch| vocab.index(ch).filter(|&i| i != 0).ok_or(ch);
    prefix.chars().map(symbol).collect()
}

/// `count` names, each `prefix` and what is drawn after it, passed to `emit` as they are
/// drawn (it returns false to stop), in memory bounded by the table whatever `count` is.
pub fn for_each_name(
    probs: &[f32],
    vocab: &Vocab,
    draws: (u64, u64, RngKind),
    prefix: &[u32],
    mut emit: impl FnMut(&str) -> bool,
) {
    let mut name = String::new();
    for_each_block(probs, vocab.len(), draws, prefix, |symbols| {
        // Each name ends with its 0.
        symbols.split_inclusive(|&s| s == 0).all(|symbols| {
            name.clear();
            name.extend(symbols[..symbols.len() - 1].iter().map(|&s| vocab.char(s)));
            emit(&name)
        })
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ceil(log2(V)) bits, from 1 to 8, and 2^bits buckets a row (the draws themselves are
    /// tested through the public functions, in tests/units).
    #[test]
    fn the_guide_takes_ceil_log2_v_bits_up_to_8() {
        let bits = |cols| Sampler::new(&vec![1.0; cols], cols).guide_bits;
        assert_eq!((bits(27), bits(2), bits(1000)), (5, 1, 8));
        for cols in [1, 2, 3, 27, 255, 256, 300] {
            let sampler = Sampler::new(&vec![1.0; 2 * cols], cols);
            assert_eq!(sampler.guide.len(), 2 << sampler.guide_bits);
        }
    }
}

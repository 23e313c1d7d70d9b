//! The last stage: drawing names on the host from a model's probability table.
//!
//! Each row's cumulative distribution is built once, as 32-bit thresholds with a guide table;
//! a draw is then one 32-bit uniform number, a lookup and a short scan, with no allocation
//! per character.

use rand::Rng;

use crate::data::Vocab;

/// A name longer than this is cut off (a model whose end probability is tiny could otherwise
/// go on for a very long time).
pub const MAX_NAME_LEN: usize = 256;

/// Buckets of the guide table of each row: the top GUIDE_BITS bits of a draw pick one.
const GUIDE_BITS: u32 = 8;

/// Per-row cumulative distributions of a V^K x V probability table, as 32-bit thresholds
/// with a guide table, so that a draw is one 32-bit random number, one table lookup and a
/// short forward scan.
#[derive(Clone, Debug)]
pub struct Sampler {
    /// threshold[r * V + c] = round(2^32 * sum of P[r, 0..=c] / sum of P[r, ..]), computed in
    /// f64; the last entry of every row is 2^32, above every 32-bit draw.
    threshold: Vec<u64>,
    /// guide[r * 2^GUIDE_BITS + b]: the first column whose threshold is above the smallest
    /// draw of bucket b, where the scan for a draw in that bucket can start.
    guide: Vec<u8>,
    num_cols: usize,
    num_rows: usize,
}

impl Sampler {
    pub fn new(probs: &[f32], num_cols: usize) -> Sampler {
        assert!(
            num_cols <= 256,
            "the guide table holds column indices in a byte"
        );
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
        let buckets = 1usize << GUIDE_BITS;
        let mut guide = Vec::with_capacity(threshold.len() / num_cols.max(1) * buckets);
        for row in threshold.chunks(num_cols) {
            let mut c = 0;
            for b in 0..buckets as u64 {
                let lowest = b << (32 - GUIDE_BITS);
                while row[c] <= lowest {
                    c += 1;
                }
                guide.push(c as u8);
            }
        }
        Sampler {
            threshold,
            guide,
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
        let mut c = self.guide[(row << GUIDE_BITS) + (u >> (32 - GUIDE_BITS)) as usize] as usize;
        // The last threshold is 2^32 > u: the scan stops inside the row.
        while thresholds[c] <= u {
            c += 1;
        }
        c as u32
    }

    /// Symbols of one name, drawn one at a time from the start context until `.` (not included).
    pub fn name<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<u32> {
        let mut symbols = Vec::new();
        self.name_into(rng, |s| symbols.push(s));
        symbols
    }

    /// Draws one name, passing each symbol to `push`, with no allocation.
    #[inline]
    pub fn name_into<R: Rng + ?Sized>(&self, rng: &mut R, mut push: impl FnMut(u32)) {
        let mut context = 0usize;
        for _ in 0..MAX_NAME_LEN {
            let next = self.draw(context, rng);
            if next == 0 {
                break;
            }
            push(next);
            // The context drops its oldest symbol; with one symbol of context it is `next`.
            context = if self.num_rows == self.num_cols {
                next as usize
            } else {
                (context * self.num_cols + next as usize) % self.num_rows
            };
        }
    }
}

/// Names drawn with one generator, seeded from the sampling seed and the block's index.
pub const NAMES_PER_BLOCK: usize = 4096;

/// Threads that draw blocks of names.
const SAMPLE_THREADS: usize = 2;

/// `count` names from a probability table, drawn in blocks (see [`sample_symbols`]).
pub fn sample_names(probs: &[f32], vocab: &Vocab, count: usize, seed: u64) -> Vec<String> {
    sample_symbols(probs, vocab.len(), count, seed)
        .split(|&s| s == 0)
        .take(count)
        .map(|name| name.iter().map(|&s| vocab.char(s)).collect())
        .collect()
}

/// `count` names as one buffer of symbols, each name followed by a 0 (the `.` that ends it).
/// Block b of NAMES_PER_BLOCK names is drawn with a generator seeded by `seed` and b, so the
/// names depend only on the seed (not on how many threads draw the blocks), and the first n
/// names are the same whatever `count` >= n.
pub fn sample_symbols(probs: &[f32], num_cols: usize, count: usize, seed: u64) -> Vec<u32> {
    use rand::SeedableRng;
    let sampler = Sampler::new(probs, num_cols);
    let block = |b: usize| -> Vec<u32> {
        let block_seed = seed ^ (b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut rng = rand::rngs::StdRng::seed_from_u64(block_seed);
        let len = NAMES_PER_BLOCK.min(count - b * NAMES_PER_BLOCK);
        let mut symbols = Vec::with_capacity(8 * len);
        #[allow(clippy::same_item_push)] // the 0 after each name, between its symbols
        for _ in 0..len {
            sampler.name_into(&mut rng, |s| symbols.push(s));
            symbols.push(0); // the `.` that ends the name
        }
        symbols
    };
    let blocks = count.div_ceil(NAMES_PER_BLOCK);
    if blocks <= 1 {
        return (0..blocks).flat_map(block).collect();
    }
    // Thread t draws blocks t, t + SAMPLE_THREADS, ...; they are put back in block order.
    let mut drawn: Vec<Vec<u32>> = vec![Vec::new(); blocks];
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..SAMPLE_THREADS)
            .map(|t| {
                let block = &block;
                scope.spawn(move || {
                    (t..blocks)
                        .step_by(SAMPLE_THREADS)
                        .map(|b| (b, block(b)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for handle in handles {
            for (b, symbols) in handle.join().expect("a sampling thread panicked") {
                drawn[b] = symbols;
            }
        }
    });
    drawn.concat()
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
    fn names_do_not_depend_on_how_many_are_drawn() {
        let vocab = Vocab::from_words(&["ab", "ba"]);
        let probs = [0.0, 0.5, 0.5, 0.3, 0.0, 0.7, 0.4, 0.6, 0.0];
        let many = sample_names(&probs, &vocab, 3 * NAMES_PER_BLOCK + 5, 9);
        assert_eq!(many.len(), 3 * NAMES_PER_BLOCK + 5);
        assert_eq!(sample_names(&probs, &vocab, 10, 9), many[..10].to_vec());
        assert_eq!(
            many,
            sample_names(&probs, &vocab, 3 * NAMES_PER_BLOCK + 5, 9)
        );
        assert!(many[NAMES_PER_BLOCK..].iter().all(|n| !n.contains('.')));
    }

    #[test]
    fn a_name_ends_at_the_boundary() {
        // From `.` always `a`, from `a` always `.`: every name is "a".
        let vocab = Vocab::from_words(&["a"]);
        let names = sample_names(&[0.0, 1.0, 1.0, 0.0], &vocab, 3, 5);
        assert_eq!(names, vec!["a", "a", "a"]);
    }
}

//! The lecture's two models, both V^K x V tables (row: the K previous characters as a base-V
//! number; column: the next): counts normalized into P, and weights W as log-counts.

use crate::backend::Backend;
use crate::data::Vocab;
use crate::rng::RngKind;

/// The label of a context row: its K characters, oldest first (`..` for a word's start at K = 2).
pub fn context_label(row: usize, vocab: &Vocab, context_len: usize) -> String {
    let v = vocab.len();
    let digit = |k: usize| vocab.char((row / v.pow(k as u32) % v) as u32);
    (0..context_len).rev().map(digit).collect()
}

/// The count model: `N[context, next]` and the smoothed probabilities `P`.
#[derive(Clone, Debug)]
pub struct CountModel {
    pub vocab: Vocab,
    pub context_len: usize,
    pub smoothing: f32,
    pub counts: Vec<u32>,
    pub probs: Vec<f32>,
}

impl CountModel {
    pub fn fit<B: Backend>(
        backend: &mut B,
        examples: &B::Examples,
        vocab: &Vocab,
        context_len: usize,
        smoothing: f32,
    ) -> anyhow::Result<CountModel> {
        let counts = backend.count_pairs(examples)?;
        let probs = backend.normalize_rows(&counts, vocab.len(), smoothing)?;
        Ok(CountModel {
            vocab: vocab.clone(),
            context_len,
            smoothing,
            counts,
            probs,
        })
    }

    /// The `k` most frequent (context, next) pairs and their counts (ties in table order).
    pub fn most_frequent(&self, k: usize) -> Vec<(String, u32)> {
        let (v, n) = (self.vocab.len(), &self.counts);
        let mut order: Vec<usize> = (0..n.len()).filter(|&i| n[i] > 0).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(n[i]));
        let pair = |i: usize| {
            let mut label = context_label(i / v, &self.vocab, self.context_len);
            label.push(self.vocab.char((i % v) as u32));
            (label, n[i])
        };
        order.into_iter().take(k).map(pair).collect()
    }

    pub fn distinct_pairs(&self) -> usize {
        self.counts.iter().filter(|&&n| n > 0).count()
    }
}

/// The neural model's W, V^K x V, drawn from a standard normal by a fresh generator of kind
/// `rng` seeded with `seed` (with [`RngKind::Torch`]: `torch.randn((V^K, V), generator=g)`).
pub fn init_weights(vocab: &Vocab, context_len: usize, seed: u64, rng: RngKind) -> Vec<f32> {
    let rows = vocab.len().pow(context_len as u32);
    rng.standard_normal(rows * vocab.len(), seed)
}

//! How the neural model learns: full-batch or minibatch gradient descent, with plain SGD or
//! AdamW (makemore.py's optimizer and defaults). Every step's arithmetic runs in the
//! backend's kernels; the host only draws the minibatches (seeded) and counts the steps.

use rand::{RngExt, SeedableRng};

use crate::backend::{Backend, NetForm, StepLoss, TrainOptions};
use crate::data::Examples;

/// AdamW's settings (the learning rate is `TrainOptions::lr`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamW {
    pub weight_decay: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
}

/// makemore.py's learning rate for AdamW.
pub const ADAMW_DEFAULT_LR: f32 = 5e-4;

impl Default for AdamW {
    /// makemore.py: `torch.optim.AdamW(lr=5e-4, weight_decay=0.01, betas=(0.9, 0.99), eps=1e-8)`.
    fn default() -> AdamW {
        AdamW {
            weight_decay: 0.01,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
        }
    }
}

/// AdamW's moment estimates and step count.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamState {
    pub m: Vec<f32>,
    pub v: Vec<f32>,
    /// Steps taken so far (the next step is `t + 1`).
    pub t: u32,
}

impl AdamState {
    pub fn new(num_weights: usize) -> AdamState {
        AdamState {
            m: vec![0.0; num_weights],
            v: vec![0.0; num_weights],
            t: 0,
        }
    }

    /// The bias corrections `1 - beta1^t` and `1 - beta2^t` of step `t`.
    pub fn bias_corrections(t: u32, adamw: &AdamW) -> (f32, f32) {
        let t = t as i32;
        (
            (1.0 - (adamw.beta1 as f64).powi(t)) as f32,
            (1.0 - (adamw.beta2 as f64).powi(t)) as f32,
        )
    }
}

/// The update rule.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Optimizer {
    /// `W -= lr * grad` (the lecture's).
    #[default]
    Sgd,
    /// AdamW (makemore.py's).
    AdamW(AdamW),
}

/// How the neural model's steps are taken.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Schedule {
    /// Examples per step, drawn uniformly with replacement; 0: every example (full batch).
    pub batch_size: usize,
    pub optimizer: Optimizer,
    /// Seed of the minibatch draws.
    pub seed: u64,
}

/// A minibatch: `size` examples drawn uniformly with replacement, as makemore.py's
/// `torch.randint(0, n, (batch_size,))` does.
pub fn draw_batch(examples: &Examples, size: usize, rng: &mut rand::rngs::StdRng) -> Examples {
    let n = examples.len();
    let picks: Vec<usize> = (0..size).map(|_| rng.random_range(0..n)).collect();
    Examples {
        contexts: picks.iter().map(|&i| examples.contexts[i]).collect(),
        targets: picks.iter().map(|&i| examples.targets[i]).collect(),
        num_rows: examples.num_rows,
        num_cols: examples.num_cols,
    }
}

/// `steps` steps on `weights` in place; the loss before each (on that step's batch).
#[allow(clippy::too_many_arguments)]
pub fn train_neural<B: Backend>(
    backend: &mut B,
    weights: &mut [f32],
    examples: &Examples,
    loaded: &B::Examples,
    options: &TrainOptions,
    steps: usize,
    form: NetForm,
    schedule: &Schedule,
) -> anyhow::Result<Vec<StepLoss>> {
    if schedule.batch_size == 0 && schedule.optimizer == Optimizer::Sgd {
        // Full-batch SGD: every step recorded on the device at once.
        return backend.train(weights, loaded, options, steps, form);
    }
    anyhow::ensure!(!examples.is_empty(), "no examples to train on");
    let mut rng = rand::rngs::StdRng::seed_from_u64(schedule.seed);
    let mut state = AdamState::new(weights.len());
    let mut losses = Vec::with_capacity(steps);
    for _ in 0..steps {
        let batch = if schedule.batch_size > 0 {
            let drawn = draw_batch(examples, schedule.batch_size, &mut rng);
            Some(backend.load(&drawn)?)
        } else {
            None
        };
        let batch = batch.as_ref().unwrap_or(loaded);
        match schedule.optimizer {
            Optimizer::Sgd => {
                losses.extend(backend.train(weights, batch, options, 1, form)?);
            }
            Optimizer::AdamW(adamw) => {
                let (loss, grads) = backend.loss_and_gradient(weights, batch, options.reg, form)?;
                backend.adamw_step(weights, &grads, &mut state, options.lr, &adamw)?;
                losses.push(loss);
            }
        }
    }
    Ok(losses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makemore_defaults_and_bias_corrections() {
        let a = AdamW::default();
        assert_eq!(
            (a.weight_decay, a.beta1, a.beta2, a.eps),
            (0.01, 0.9, 0.99, 1e-8)
        );
        let (bc1, bc2) = AdamState::bias_corrections(1, &a);
        assert!((bc1 - 0.1).abs() < 1e-7 && (bc2 - 0.01).abs() < 1e-7);
    }

    #[test]
    fn batches_are_seeded_draws() {
        let examples = Examples {
            contexts: (0..100).collect(),
            targets: (0..100).map(|i| i % 3).collect(),
            num_rows: 100,
            num_cols: 3,
        };
        let draw = |seed| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            draw_batch(&examples, 32, &mut rng)
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
        let b = draw(1);
        assert_eq!(b.len(), 32);
        assert!(b.contexts.iter().zip(&b.targets).all(|(&c, &t)| t == c % 3));
    }
}

//! How the neural model learns: full-batch or minibatch gradient descent, with plain SGD or
//! AdamW (makemore.py's optimizer and defaults). Every step's arithmetic runs in the
//! backend's kernels; the host only draws the minibatches (seeded) and counts the steps.

use rand::{RngExt, SeedableRng};

use crate::adamw::AdamW;
use crate::backend::{Backend, NetForm, StepLoss, TrainOptions};
use crate::data::Examples;

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
    // W, the gradient, the moments and the losses stay on the device for all the steps.
    let mut w = backend.upload(weights)?;
    let mut grads = backend.zeros(weights.len())?;
    let mut losses = backend.losses(steps)?;
    let mut moments = match schedule.optimizer {
        Optimizer::AdamW(_) => Some((backend.zeros(weights.len())?, backend.zeros(weights.len())?)),
        Optimizer::Sgd => None,
    };
    for t in 1..=steps {
        let batch = if schedule.batch_size > 0 {
            let drawn = draw_batch(examples, schedule.batch_size, &mut rng);
            Some(backend.load(&drawn)?)
        } else {
            None
        };
        let batch = batch.as_ref().unwrap_or(loaded);
        backend.gradient(&w, batch, options.reg, form, &mut grads, &mut losses)?;
        match (schedule.optimizer, moments.as_mut()) {
            (Optimizer::AdamW(adamw), Some((m, v))) => {
                let t = t as u32;
                backend.adamw_update(&mut w, &grads, (m, v), t, options.lr, &adamw)?;
            }
            _ => backend.sgd_update(&mut w, &grads, options.lr)?,
        }
    }
    weights.copy_from_slice(&backend.read(&w)?);
    backend.read_losses(&losses)
}

#[cfg(test)]
mod tests {
    use super::*;

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

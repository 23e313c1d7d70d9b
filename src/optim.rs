//! Full-batch or minibatch gradient descent with SGD or AdamW (makemore.py's), in the
//! backend's kernels; the host only draws the minibatches (seeded) and counts the steps.

use rand::{RngExt, SeedableRng};

use crate::adamw::AdamW;
use crate::backend::{Backend, NetForm, StepLoss, TrainOptions};
use crate::data::Examples;

/// The lecture's `W -= lr * grad`, or makemore.py's AdamW.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Optimizer {
    #[default]
    Sgd,
    AdamW(AdamW),
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Schedule {
    /// Examples per step, drawn uniformly with replacement; 0: every example (full batch).
    pub batch_size: usize,
    pub optimizer: Optimizer,
    /// Seed of the minibatch draws.
    pub seed: u64,
}

impl Schedule {
    /// Full-batch SGD: W is the only state, so training goes in chunks with dev losses between.
    pub fn full_batch_sgd(&self) -> bool {
        self.batch_size == 0 && self.optimizer == Optimizer::Sgd
    }
}

/// `size` examples drawn uniformly with replacement (makemore.py's `torch.randint`).
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

/// W, its gradient and AdamW's moments on the device for a whole run.
pub struct Descent<B: Backend> {
    pub weights: B::Buffer,
    pub grads: B::Buffer,
    moments: Option<(B::Buffer, B::Buffer)>,
    rng: rand::rngs::StdRng,
    /// Steps taken.
    t: u32,
}

impl<B: Backend> Descent<B> {
    pub fn new(backend: &mut B, weights: &[f32], schedule: &Schedule) -> anyhow::Result<Self> {
        let adamw = matches!(schedule.optimizer, Optimizer::AdamW(_));
        let zeros = |b: &mut B| b.zeros(weights.len());
        let moments = adamw.then(|| anyhow::Ok((zeros(backend)?, zeros(backend)?)));
        Ok(Descent {
            weights: backend.upload(weights)?,
            grads: backend.zeros(weights.len())?,
            moments: moments.transpose()?,
            rng: rand::rngs::StdRng::seed_from_u64(schedule.seed),
            t: 0,
        })
    }

    /// `steps` steps (gradient, then update); the loss before each on its batch, read once.
    #[allow(clippy::too_many_arguments)]
    pub fn steps(
        &mut self,
        backend: &mut B,
        (examples, loaded): (&Examples, &B::Examples),
        options: &TrainOptions,
        steps: usize,
        form: NetForm,
        schedule: &Schedule,
    ) -> anyhow::Result<Vec<StepLoss>> {
        let nothing_to_draw = !schedule.full_batch_sgd() && examples.is_empty();
        anyhow::ensure!(!nothing_to_draw, "no examples to train on");
        let mut losses = backend.losses(steps)?;
        for _ in 0..steps {
            self.t += 1;
            let size = schedule.batch_size;
            let drawn = (size > 0).then(|| draw_batch(examples, size, &mut self.rng));
            let batch = drawn.map(|d| backend.load(&d)).transpose()?;
            let batch = batch.as_ref().unwrap_or(loaded);
            let (weights, grads) = (&mut self.weights, &mut self.grads);
            backend.gradient(weights, batch, options.reg, form, grads, &mut losses)?;
            match (schedule.optimizer, self.moments.as_mut()) {
                (Optimizer::AdamW(adamw), Some((m, v))) => {
                    backend.adamw_update(weights, grads, (m, v), self.t, options.lr, &adamw)?
                }
                _ => backend.sgd_update(weights, grads, options.lr)?,
            }
        }
        backend.read_losses(&losses)
    }
}

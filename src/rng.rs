//! Which generator initializes W and draws the names. Each use starts a fresh generator from
//! the same seed, as each of the lecture's cells calls `manual_seed` again.

use rand::{RngExt, SeedableRng};

use crate::torch_rng::TorchGenerator;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RngKind {
    /// The `rand` crate's StdRng.
    ///
    /// W by Box-Muller ([`standard_normal`]), names from per-row cumulative tables.
    #[default]
    Std,
    /// PyTorch's CPU generator, draw for draw: the lecture's exact W and names.
    ///
    /// [`crate::torch_rng`]: `torch.randn((V^K, V), generator=g)`, `torch.multinomial(p, 1)`.
    Torch,
}

impl RngKind {
    /// `n` standard normal values from a fresh generator seeded with `seed`: W's initialization.
    pub fn standard_normal(self, n: usize, seed: u64) -> Vec<f32> {
        match self {
            RngKind::Std => standard_normal(n, seed),
            RngKind::Torch => TorchGenerator::new(seed).randn(n),
        }
    }
}

/// `n` standard normal values from `StdRng` seeded with `seed`: Box-Muller on pairs of
/// uniforms, u1 in (0, 1] so that the logarithm is finite.
pub fn standard_normal(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut values = Vec::with_capacity(n + 1);
    while values.len() < n {
        let u1 = 1.0 - rng.random::<f64>();
        let radius = (-2.0 * u1.ln()).sqrt();
        let angle = std::f64::consts::TAU * rng.random::<f64>();
        values.push((radius * angle.cos()) as f32);
        values.push((radius * angle.sin()) as f32);
    }
    values.truncate(n);
    values
}

//! PyTorch's CPU generator, bit for bit: the lecture's `torch.Generator().manual_seed(s)`
//! with `torch.rand`, `torch.randn` and `torch.multinomial` print the same numbers here.
//!
//! - Engine: the reference MT19937 (`mt19937ar`, n = 624, m = 397, matrix 0x9908b0df), seeded
//!   by `init_genrand(seed as u32)`: only the low 32 bits of the seed count. `random64()` is
//!   two words, the first one high.
//! - Uniforms keep the low mantissa bits of a raw draw: f32 `(random() & (2^24 - 1)) * 2^-24`,
//!   f64 `(random64() & (2^53 - 1)) * 2^-53`.
//! - `randn(n)`, n >= 16 (`normal_fill`): n f32 uniforms, then Box-Muller on each block of 16
//!   pairing x[j] with x[j + 8]: u1 = 1 - x[j], u2 = x[j + 8], r = sqrt(-2 ln u1),
//!   theta = 2 pi u2 (in f64, stored in f32), x[j] = r cos theta, x[j + 8] = r sin theta, all
//!   else in f32. When 16 does not divide n, 16 fresh uniforms fill the last 16 slots (over the
//!   last full block) and are transformed again: n + 16 draws in all.
//! - `randn(n)`, n < 16: f64 Box-Muller per value, u1, u2 f64 uniforms,
//!   r = sqrt(-2 log1p(-u2)), theta = 2 pi u1; r cos theta is returned and r sin theta cached
//!   for the next scalar normal (even of a later call; the n >= 16 path leaves the cache).
//! - This is the scalar kernel (builds without AVX2, or `ATEN_CPU_CAPABILITY=default`); AVX2
//!   builds approximate log/sincos and may differ by about 2e-6. libm gives `ln`/`cos`/`sin`,
//!   so on glibc the values are identical.
//! - `multinomial(p, k, replacement=True)` as PyTorch 1.x drew it (2.x draws k = 1 otherwise):
//!   a float32 running sum c, divided by its total when that is positive, the last entry forced
//!   to 1; per sample one f64 uniform u and a binary search for the first c[j] >= u (compared
//!   in f64). Zero-probability entries share the CDF value before them, so they are drawn only
//!   when first and u == 0, as in PyTorch.

use std::f64::consts::PI;

/// MT19937's state words and middle offset.
const N: usize = 624;
const M: usize = 397;

/// PyTorch's CPU generator (`torch.Generator()`), reproduced draw for draw.
#[derive(Clone, Debug)]
pub struct TorchGenerator {
    state: [u32; N],
    /// The next state word to temper; N: twist first.
    index: usize,
    /// The scalar Box-Muller path's cached r sin(theta) (`next_double_normal_sample_`).
    next_double_normal: Option<f64>,
}

impl TorchGenerator {
    /// `torch.Generator().manual_seed(seed)`: only the low 32 bits count, as in PyTorch.
    pub fn new(seed: u64) -> Self {
        let mut state = [seed as u32; N];
        for i in 1..N {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        Self {
            state,
            index: N,
            next_double_normal: None,
        }
    }

    /// One tempered word (`CPUGeneratorImpl::random`), twisting all N words every N draws.
    fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            for i in 0..N {
                let y = (self.state[i] & 0x8000_0000) | (self.state[(i + 1) % N] & 0x7fff_ffff);
                let mag = if y & 1 == 0 { 0 } else { 0x9908_b0df };
                self.state[i] = self.state[(i + M) % N] ^ (y >> 1) ^ mag;
            }
            self.index = 0;
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// One value of `torch.rand(n, generator=g)`: 24 random bits, one draw (exact conversions).
    pub fn rand_f32(&mut self) -> f32 {
        (self.next_u32() & ((1 << 24) - 1)) as f32 / (1u32 << 24) as f32
    }

    /// One value of `torch.rand(n, generator=g, dtype=torch.float64)`: 53 bits of two words,
    /// the first high (`CPUGeneratorImpl::random64`).
    pub fn rand_f64(&mut self) -> f64 {
        let word = (u64::from(self.next_u32()) << 32) | u64::from(self.next_u32());
        (word & ((1 << 53) - 1)) as f64 / (1u64 << 53) as f64
    }

    /// `torch.randn(n, generator=g)` of a float32 CPU tensor, in row-major order.
    pub fn randn(&mut self, n: usize) -> Vec<f32> {
        if n < 16 {
            return (0..n).map(|_| self.normal_f64() as f32).collect();
        }
        let mut data: Vec<f32> = (0..n).map(|_| self.rand_f32()).collect();
        data.chunks_exact_mut(16).for_each(normal_fill_16);
        if !n.is_multiple_of(16) {
            let tail = &mut data[n - 16..];
            tail.iter_mut().for_each(|x| *x = self.rand_f32());
            normal_fill_16(tail);
        }
        data
    }

    /// One `at::normal_distribution<double>` value, using and refilling the cache.
    fn normal_f64(&mut self) -> f64 {
        if let Some(cached) = self.next_double_normal.take() {
            return cached;
        }
        let (u1, u2) = (self.rand_f64(), self.rand_f64());
        let r = (-2.0 * (-u2).ln_1p()).sqrt();
        let theta = 2.0 * PI * u1;
        self.next_double_normal = Some(r * theta.sin());
        r * theta.cos()
    }

    /// `torch.multinomial(p, 1, replacement=True, generator=g)` as PyTorch 1.x drew it; `probs`
    /// need not be normalized. Rows PyTorch refuses (negative, infinite or NaN entries, no
    /// mass) get the same arithmetic without a panic: one f64 draw, an index in the row (an
    /// all-zero row gives the last, or 0 when u == 0). Panics on an empty row.
    pub fn multinomial_one(&mut self, probs: &[f32]) -> usize {
        self.multinomial(probs, 1)[0]
    }

    /// `torch.multinomial(p, num_samples, replacement=True, generator=g)` of a 1-D `p`: each
    /// sample as [`TorchGenerator::multinomial_one`] draws it.
    pub fn multinomial(&mut self, probs: &[f32], num_samples: usize) -> Vec<usize> {
        assert!(
            !probs.is_empty(),
            "multinomial: probability slice must not be empty"
        );
        // The float32 CDF, divided by its total only when that is positive, the last entry 1.
        let (mut cdf, mut sum) = (Vec::with_capacity(probs.len()), 0.0f32);
        for &p in probs {
            sum += p;
            cdf.push(sum);
        }
        if sum > 0.0 {
            cdf.iter_mut().for_each(|c| *c /= sum);
        }
        cdf[probs.len() - 1] = 1.0;
        // PyTorch's binary search for the first CDF value not below one f64 uniform. The last
        // value is 1 > u, so the index stays in the row even with NaNs (a NaN moves `right`).
        let draw = |_| {
            let u = self.rand_f64();
            let (mut left, mut right) = (0, cdf.len());
            while left < right {
                let mid = left + (right - left) / 2;
                match f64::from(cdf[mid]) < u {
                    true => left = mid + 1,
                    false => right = mid,
                }
            }
            left
        };
        (0..num_samples).map(draw).collect()
    }
}

/// Scalar `normal_fill_16`: Box-Muller pairing x[j] with x[j + 8]; theta is
/// `2.0f * c10::pi<double> * u2`, computed in f64 and stored in f32.
fn normal_fill_16(x: &mut [f32]) {
    for j in 0..8 {
        let radius = (-2.0 * (1.0 - x[j]).ln()).sqrt(); // 1 - u in (0, 1] for the log
        let theta = (2.0 * PI * f64::from(x[j + 8])) as f32;
        x[j] = radius * theta.cos();
        x[j + 8] = radius * theta.sin();
    }
}

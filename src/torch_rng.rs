//! A bit-exact re-implementation of PyTorch's CPU random number generator.
//!
//! The makemore lecture seeds `g = torch.Generator().manual_seed(2147483647)`
//! and then draws from `torch.rand`, `torch.randn` and `torch.multinomial`.
//! [`TorchGenerator`] reproduces those draws exactly, so that this crate can
//! print the same numbers (and sample the same names) as the notebook.
//!
//! # The engine: MT19937
//!
//! `CPUGeneratorImpl` wraps `at::mt19937`, the reference 32-bit Mersenne
//! Twister (Matsumoto & Nishimura, `mt19937ar`) with its usual constants
//! (n = 624, m = 397, matrix `0x9908b0df`).
//!
//! * **Seeding.** `manual_seed(seed)` stores the full 64-bit seed, but the
//!   state is initialised with `init_genrand` on `seed & 0xffff_ffff` only:
//!   `state[0] = seed as u32`, `state[i] = 1812433253 * (state[i-1] ^
//!   (state[i-1] >> 30)) + i` (mod 2^32). Seeds that differ only in their
//!   upper 32 bits therefore give the same stream. Seeding also clears the
//!   cached second Box-Muller value (see below).
//! * **Twist** (every 624 outputs, and before the first one): each word is
//!   replaced by `state[i+m] ^ (y >> 1) ^ (y & 1 ? 0x9908b0df : 0)` where
//!   `y` joins the top bit of `state[i]` with the low 31 bits of `state[i+1]`.
//! * **Tempering** of each output word `y`:
//!   `y ^= y >> 11; y ^= (y << 7) & 0x9d2c5680; y ^= (y << 15) & 0xefc60000;
//!   y ^= y >> 18`.
//!
//! `random()` is one tempered word; `random64()` is two, the **first** one
//! forming the high half: `(first << 32) | second`.
//!
//! # Uniforms
//!
//! `at::uniform_real_distribution<T>` keeps the low `digits(T)` bits of a raw
//! draw and scales by `2^-digits`, giving values in `[0, 1)`:
//!
//! * `float`: `(random() & 0xff_ffff) * 2^-24` (one 32-bit draw per value),
//! * `double`: `(random64() & (2^53 - 1)) * 2^-53` (two 32-bit draws per value;
//!   only the low 21 bits of the first draw survive the mask).
//!
//! # Normals
//!
//! `torch.randn` on a float32 CPU tensor takes one of two paths:
//!
//! * **`n >= 16` (`normal_fill`)**: first all `n` entries are filled with
//!   float uniforms, in order. Then each complete block of 16 is transformed
//!   in place by Box-Muller (`normal_fill_16`), pairing entry `j` with entry
//!   `j + 8` for `j` in `0..8`:
//!   `u1 = 1 - x[j]` (so the log sees `(0, 1]`), `u2 = x[j + 8]`,
//!   `r = sqrt(-2 ln u1)`, `theta = 2 pi u2` (product formed in double,
//!   rounded to float), `x[j] = r cos theta`, `x[j + 8] = r sin theta`; all
//!   other arithmetic is single precision.
//!   **Tail rule:** when `n` is not a multiple of 16, 16 *fresh* uniforms are
//!   drawn into the last 16 slots (`n - 16 .. n`, overlapping the last full
//!   block, whose already-transformed values get overwritten) and that window
//!   is transformed again. Such a call therefore consumes `n + 16` draws.
//! * **`n < 16`** (scalar `at::normal_distribution<double>`): each value is a
//!   double Box-Muller draw cast to float. Two double uniforms `u1, u2` give
//!   `r = sqrt(-2 log1p(-u2))`, `theta = 2 pi u1`; `r cos theta` is returned
//!   and `r sin theta` is cached in the generator and returned by the next
//!   scalar-path normal (even one from a later call). The cache is not used
//!   or cleared by the `n >= 16` path.
//!
//! PyTorch builds for x86 with AVX2 use a vectorised `normal_fill_16`
//! (polynomial `log`/`sincos` approximations, `theta` rounded in float) whose
//! results can differ from the scalar kernel by up to about 2e-6; the scalar
//! kernel (used by builds without AVX2, such as Apple-silicon Macs, and by
//! x86 builds run with `ATEN_CPU_CAPABILITY=default`) is what is implemented
//! here. Its `log`/`cos`/`sin` come from the platform's libm, as do Rust's
//! `f32::ln` etc., so on glibc the results are bit-identical; another libm
//! may rarely differ in the last bit. PyTorch 1.x computed the scalar path's radius as `log(1 - u2)`
//! instead of `log1p(-u2)`; both operate on the exactly representable value
//! `1 - u2` and agree after rounding to float in practice.
//!
//! # Multinomial (pre-2.0 behaviour)
//!
//! `torch.multinomial(p, k, replacement=True)` on the CPU samples by
//! inverting the cumulative distribution. PyTorch 1.x (checked against
//! 1.13.1) does this for every `k`, including the `k = 1` draws the lecture
//! uses to sample names; recent 2.x releases still do it for `k > 1` but draw
//! single samples by a different method, so their `k = 1` results differ.
//!
//! 1. a float32 running sum gives the unnormalised CDF `c[j] = p[0] + ... + p[j]`;
//! 2. if the total `s = c[n-1]` is positive, every `c[j]` is divided by `s`
//!    (in float32);
//! 3. `c[n-1]` is forced to exactly `1`;
//! 4. per sample, one double uniform `u` is drawn (as [`TorchGenerator::rand_f64`])
//!    and a binary search returns the first index `j` with `c[j] >= u`
//!    (the comparison is done in double). Entries with zero probability
//!    share their CDF value with the entry before them, so the search, which
//!    returns the *first* such index, can select them only when they come
//!    first and `u == 0`, exactly as in PyTorch.

use std::f64::consts::PI;

/// Number of 32-bit words in the MT19937 state.
const N: usize = 624;
/// MT19937 middle word offset.
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// Mask keeping the 24 mantissa bits of an `f32` uniform.
const F32_MASK: u32 = (1 << f32::MANTISSA_DIGITS) - 1;
/// `2^-24`.
const F32_SCALE: f32 = 1.0 / (1u32 << f32::MANTISSA_DIGITS) as f32;
/// Mask keeping the 53 mantissa bits of an `f64` uniform.
const F64_MASK: u64 = (1 << f64::MANTISSA_DIGITS) - 1;
/// `2^-53`.
const F64_SCALE: f64 = 1.0 / (1u64 << f64::MANTISSA_DIGITS) as f64;

/// PyTorch's CPU generator (`torch.Generator()`), reproduced draw for draw.
#[derive(Clone, Debug)]
pub struct TorchGenerator {
    /// MT19937 state words.
    state: [u32; N],
    /// Index of the next state word to temper and return; `N` means that the
    /// state must be twisted first.
    index: usize,
    /// The cached `r sin(theta)` from the scalar Box-Muller path
    /// (`CPUGeneratorImpl::next_double_normal_sample_`).
    next_double_normal: Option<f64>,
}

impl TorchGenerator {
    /// A generator in the state of `torch.Generator().manual_seed(seed)`.
    ///
    /// Only the low 32 bits of `seed` affect the stream (PyTorch does the
    /// same), so `new(s)` and `new(s + (1 << 32))` are identical.
    pub fn new(seed: u64) -> Self {
        let mut state = [0u32; N];
        // Truncation to the low 32 bits is PyTorch's own seed reduction.
        state[0] = seed as u32;
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

    /// Regenerates all `N` state words (the MT19937 "twist").
    fn twist(&mut self) {
        for i in 0..N {
            let y = (self.state[i] & UPPER_MASK) | (self.state[(i + 1) % N] & LOWER_MASK);
            let mag = if y & 1 == 0 { 0 } else { MATRIX_A };
            self.state[i] = self.state[(i + M) % N] ^ (y >> 1) ^ mag;
        }
        self.index = 0;
    }

    /// One tempered 32-bit output (`CPUGeneratorImpl::random`).
    fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }

    /// Two outputs joined first-high (`CPUGeneratorImpl::random64`).
    fn next_u64(&mut self) -> u64 {
        let hi = u64::from(self.next_u32());
        let lo = u64::from(self.next_u32());
        (hi << 32) | lo
    }

    /// One element of `torch.rand(n, generator=g)` (float32): a uniform in
    /// `[0, 1)` with 24 random bits, consuming one 32-bit draw.
    pub fn rand_f32(&mut self) -> f32 {
        // The masked value is below 2^24, so both conversions are exact.
        (self.next_u32() & F32_MASK) as f32 * F32_SCALE
    }

    /// One element of `torch.rand(n, generator=g, dtype=torch.float64)`: a
    /// uniform in `[0, 1)` with 53 random bits, consuming two 32-bit draws.
    pub fn rand_f64(&mut self) -> f64 {
        // The masked value is below 2^53, so both conversions are exact.
        (self.next_u64() & F64_MASK) as f64 * F64_SCALE
    }

    /// `torch.randn(n, generator=g)` for a float32 CPU tensor with `n`
    /// elements (any shape; values in row-major order).
    ///
    /// See the module documentation for the two code paths (`n >= 16` and
    /// `n < 16`) and the tail rule for `n` not divisible by 16.
    pub fn randn(&mut self, n: usize) -> Vec<f32> {
        if n < 16 {
            return (0..n).map(|_| self.normal_f64() as f32).collect();
        }

        let mut data: Vec<f32> = (0..n).map(|_| self.rand_f32()).collect();
        for block in data.chunks_exact_mut(16) {
            normal_fill_16(block);
        }
        if !n.is_multiple_of(16) {
            // Redraw and recompute the last 16 values (overlapping the last
            // complete block).
            let tail = &mut data[n - 16..];
            for x in tail.iter_mut() {
                *x = self.rand_f32();
            }
            normal_fill_16(tail);
        }
        data
    }

    /// One standard normal from `at::normal_distribution<double>`, using and
    /// refilling the generator's cached second Box-Muller value.
    fn normal_f64(&mut self) -> f64 {
        if let Some(cached) = self.next_double_normal.take() {
            return cached;
        }
        let u1 = self.rand_f64();
        let u2 = self.rand_f64();
        let r = (-2.0 * (-u2).ln_1p()).sqrt();
        let theta = 2.0 * PI * u1;
        self.next_double_normal = Some(r * theta.sin());
        r * theta.cos()
    }

    /// One sample of `torch.multinomial(p, 1, replacement=True, generator=g)`
    /// as drawn by PyTorch before 2.0 (CDF inversion with one double
    /// uniform). `probs` need not be normalised.
    ///
    /// PyTorch rejects rows with a negative, infinite or NaN entry, or with a
    /// non-positive sum. This function performs the same arithmetic without
    /// those checks, so it never panics on such rows: it still consumes
    /// exactly one double uniform and returns an index in `0..probs.len()`.
    /// In particular an all-zero row (which is left unnormalised) yields the
    /// last index, except for the `2^-53`-likely draw `u == 0`, which yields 0.
    ///
    /// # Panics
    ///
    /// If `probs` is empty.
    pub fn multinomial_one(&mut self, probs: &[f32]) -> usize {
        let cdf = cumulative_distribution(probs);
        self.sample_cdf(&cdf)
    }

    /// `torch.multinomial(p, num_samples, replacement=True, generator=g)` for
    /// a 1-D `p`: `num_samples` independent draws, each one double uniform
    /// and a binary search over the same cumulative distribution (see
    /// [`TorchGenerator::multinomial_one`], including the handling of invalid
    /// rows). `num_samples == 0` returns an empty vector and draws nothing.
    ///
    /// # Panics
    ///
    /// If `probs` is empty.
    pub fn multinomial(&mut self, probs: &[f32], num_samples: usize) -> Vec<usize> {
        let cdf = cumulative_distribution(probs);
        (0..num_samples).map(|_| self.sample_cdf(&cdf)).collect()
    }

    /// Draws one double uniform and returns the first index whose CDF value
    /// is not below it (PyTorch's binary search, comparisons in double).
    fn sample_cdf(&mut self, cdf: &[f32]) -> usize {
        let u = self.rand_f64();
        let (mut left, mut right) = (0, cdf.len());
        while left < right {
            let mid = left + (right - left) / 2;
            if f64::from(cdf[mid]) < u {
                left = mid + 1;
            } else {
                right = mid;
            }
        }
        // `cdf[len - 1] == 1 > u`, so `left < len` even when NaNs are present
        // (a NaN comparison moves `right` down, never `left` up).
        left
    }
}

/// Box-Muller on 16 float uniforms in place (PyTorch's scalar
/// `normal_fill_16` with mean 0 and std 1), pairing `x[j]` with `x[j + 8]`.
fn normal_fill_16(x: &mut [f32]) {
    debug_assert_eq!(x.len(), 16);
    for j in 0..8 {
        let u1 = 1.0 - x[j]; // [0, 1) -> (0, 1] for the log
        let u2 = x[j + 8];
        let radius = (-2.0 * u1.ln()).sqrt();
        // `2.0f * c10::pi<double> * u2` is evaluated in double and then
        // stored in a float.
        let theta = (2.0 * PI * f64::from(u2)) as f32;
        x[j] = radius * theta.cos();
        x[j + 8] = radius * theta.sin();
    }
}

/// PyTorch's normalised float32 cumulative distribution for multinomial
/// sampling, with the last entry forced to exactly 1.
fn cumulative_distribution(probs: &[f32]) -> Vec<f32> {
    assert!(
        !probs.is_empty(),
        "multinomial: probability slice must not be empty"
    );
    let mut sum = 0.0f32;
    let mut cdf: Vec<f32> = probs
        .iter()
        .map(|&p| {
            sum += p;
            sum
        })
        .collect();
    // PyTorch normalises only when the total is positive (a NaN total is not).
    if sum > 0.0 {
        for c in &mut cdf {
            *c /= sum;
        }
    }
    if let Some(last) = cdf.last_mut() {
        *last = 1.0;
    }
    cdf
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first outputs of the reference `mt19937ar.c` for
    /// `init_genrand(5489)` (also `std::mt19937`'s default seed).
    #[test]
    fn matches_reference_mt19937() {
        let mut g = TorchGenerator::new(5489);
        let first: Vec<u32> = (0..5).map(|_| g.next_u32()).collect();
        assert_eq!(
            first,
            [3499211612, 581869302, 3890346734, 3586334585, 545404204]
        );
        // The 10000th output of std::mt19937 with the default seed.
        let mut g = TorchGenerator::new(5489);
        let x = (0..10_000).map(|_| g.next_u32()).last();
        assert_eq!(x, Some(4123659995));
    }

    #[test]
    fn seed_uses_low_32_bits_only() {
        let mut a = TorchGenerator::new(42);
        let mut b = TorchGenerator::new(42 + (1 << 32));
        for _ in 0..10 {
            assert_eq!(a.next_u32(), b.next_u32());
        }
    }

    #[test]
    fn random64_is_first_draw_high() {
        let mut a = TorchGenerator::new(7);
        let mut b = a.clone();
        let hi = u64::from(b.next_u32());
        let lo = u64::from(b.next_u32());
        assert_eq!(a.next_u64(), (hi << 32) | lo);
    }

    #[test]
    fn tail_rule_draw_count() {
        // n = 20 consumes 20 + 16 float draws; n = 32 consumes exactly 32.
        for (n, draws) in [(20usize, 36usize), (32, 32), (16, 16)] {
            let mut a = TorchGenerator::new(1);
            let mut b = TorchGenerator::new(1);
            a.randn(n);
            for _ in 0..draws {
                b.next_u32();
            }
            assert_eq!(a.next_u32(), b.next_u32(), "n = {n}");
        }
    }

    #[test]
    fn scalar_normal_caches_second_value() {
        let mut a = TorchGenerator::new(3);
        let mut b = TorchGenerator::new(3);
        let three = a.randn(3); // cos, sin (cached), cos; sin stays cached
        let one = a.randn(1); // the cached sin
        let four = b.randn(4);
        assert_eq!([three, one].concat(), four);
    }

    #[test]
    fn degenerate_rows_do_not_panic() {
        let mut g = TorchGenerator::new(0);
        for _ in 0..100 {
            assert_eq!(g.multinomial_one(&[0.0, 0.0, 0.0]), 2);
            assert!(g.multinomial_one(&[f32::NAN, 1.0, 2.0]) < 3);
            assert!(g.multinomial_one(&[1.0, f32::NAN, 2.0]) < 3);
            assert!(g.multinomial_one(&[f32::INFINITY, 1.0]) < 2);
            assert!(g.multinomial_one(&[-1.0, 0.5, 0.25]) < 3);
            assert_eq!(g.multinomial_one(&[0.0]), 0);
        }
        assert!(g.multinomial(&[1.0, 2.0], 0).is_empty());
    }

    #[test]
    fn zero_probability_entries_are_never_drawn() {
        let mut g = TorchGenerator::new(11);
        let p = [0.0, 0.3, 0.0, 0.0, 0.7, 0.0];
        for s in g.multinomial(&p, 10_000) {
            assert!(s == 1 || s == 4, "drew {s}");
        }
    }

    #[test]
    fn each_sample_consumes_one_double() {
        let mut a = TorchGenerator::new(5);
        let mut b = TorchGenerator::new(5);
        a.multinomial(&[0.2, 0.8], 7);
        a.multinomial_one(&[0.5, 0.5]);
        for _ in 0..8 {
            b.rand_f64();
        }
        assert_eq!(a.next_u32(), b.next_u32());
    }

    #[test]
    #[should_panic(expected = "must not be empty")]
    fn empty_row_panics() {
        TorchGenerator::new(0).multinomial_one(&[]);
    }
}

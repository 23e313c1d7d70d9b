//! Pins `TorchGenerator` to values printed by PyTorch for the makemore
//! lecture's seed.

use makemore::torch_rng::TorchGenerator;

const SEED: u64 = 2147483647;

/// Compares float32 results with reference values written out in decimal
/// (kept as `f64` so that the literals are exactly the printed digits).
fn assert_close_f32(actual: &[f32], expected: &[f64], tol: f64) {
    assert_eq!(actual.len(), expected.len());
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let a = f64::from(a);
        assert!((a - e).abs() <= tol, "index {i}: got {a}, expected {e}");
    }
}

fn assert_close_f64(actual: &[f64], expected: &[f64], tol: f64) {
    assert_eq!(actual.len(), expected.len());
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        assert!((a - e).abs() <= tol, "index {i}: got {a}, expected {e}");
    }
}

/// `torch.rand(3, generator=g)`.
#[test]
fn rand_f32_matches_torch() {
    let mut g = TorchGenerator::new(SEED);
    let x: Vec<f32> = (0..3).map(|_| g.rand_f32()).collect();
    assert_close_f32(&x, &[0.708128870, 0.354239106, 0.105432332], 1e-7);

    // p = x / x.sum(), printed by PyTorch as tensor([0.6064, 0.3033, 0.0903]).
    let sum: f32 = x.iter().sum();
    let p: Vec<f32> = x.iter().map(|v| v / sum).collect();
    assert_close_f32(&p, &[0.6064, 0.3033, 0.0903], 5e-5);
}

/// `torch.rand(3, generator=g, dtype=torch.float64)`.
#[test]
fn rand_f64_matches_torch() {
    let mut g = TorchGenerator::new(SEED);
    let x: Vec<f64> = (0..3).map(|_| g.rand_f64()).collect();
    assert_close_f64(
        &x,
        &[0.6650313816112263, 0.843458957224422, 0.723553514275463],
        1e-15,
    );
}

/// `torch.randn((27, 27), generator=g)`.
#[test]
fn randn_27x27_matches_torch() {
    let mut g = TorchGenerator::new(SEED);
    let w = g.randn(27 * 27);
    assert_eq!(w.len(), 729);
    assert_close_f32(
        &w[..5],
        &[1.5673620, -0.2372923, -0.0273846, -1.1007794, 0.2858815],
        1e-6,
    );
    assert_close_f32(
        &w[729 - 5..],
        &[0.3432960, 2.0698483, 1.3404642, -0.2174630, 0.8627286],
        1e-6,
    );
    let sum: f64 = w.iter().map(|&v| f64::from(v)).sum();
    assert!((sum - 12.1954116).abs() <= 1e-4, "sum = {sum}");
}

/// `torch.multinomial(p, num_samples=100, replacement=True, generator=g)`
/// right after `p = torch.rand(3, generator=g); p = p / p.sum()`.
#[test]
fn multinomial_100_matches_torch() {
    let mut g = TorchGenerator::new(SEED);
    let x: Vec<f32> = (0..3).map(|_| g.rand_f32()).collect();
    let sum: f32 = x.iter().sum();
    let p: Vec<f32> = x.iter().map(|v| v / sum).collect();

    let expected: [usize; 100] = [
        1, 1, 2, 0, 0, 2, 1, 1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, //
        0, 2, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1, 1, 1, 0, 1, 1, 0, 0, 1, //
        1, 1, 0, 1, 1, 0, 1, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, //
        1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, //
        0, 1, 2, 0, 0, 0, 0, 0, 0, 1, 0, 0, 2, 0, 1, 0, 0, 1, 1, 1, //
    ];

    let mut many = g.clone();
    assert_eq!(many.multinomial(&p, 100), expected);

    // Pre-2.0 PyTorch drew each single sample the same way, so 100 calls
    // of `multinomial_one` give the same sequence.
    let one_by_one: Vec<usize> = (0..100).map(|_| g.multinomial_one(&p)).collect();
    assert_eq!(one_by_one, expected);
}

// The values below were produced with PyTorch 1.13.1 (the lecture era) on
// the CPU, with `ATEN_CPU_CAPABILITY=default` (the scalar kernels; x86 AVX2
// builds vectorise `normal_fill` and can differ by about 1e-6).

/// 40 calls of `torch.multinomial(p, 1, replacement=True, generator=g)` with
/// `p = torch.arange(1, 28).float(); p[0] = p[5] = p[26] = 0` (unnormalised,
/// with zero-probability entries). PyTorch 2.x draws single samples
/// differently and gives other indices.
#[test]
fn multinomial_one_matches_torch_1_13() {
    let mut p: Vec<f32> = (1..=27).map(|v| v as f32).collect();
    p[0] = 0.0;
    p[5] = 0.0;
    p[26] = 0.0;
    let expected: [usize; 40] = [
        21, 23, 22, 6, 7, 25, 24, 7, 20, 21, 21, 18, 25, 21, 24, 23, 25, 19, 15, 23, //
        7, 18, 23, 16, 19, 22, 10, 16, 23, 10, 14, 11, 2, 21, 19, 19, 25, 18, 22, 25, //
    ];
    let mut g = TorchGenerator::new(SEED);
    let drawn: Vec<usize> = (0..40).map(|_| g.multinomial_one(&p)).collect();
    assert_eq!(drawn, expected);
}

/// `torch.randn(20, generator=g)` right after `torch.randn(3, generator=g)`.
#[rustfmt::skip]
const RANDN_20_AFTER_3: [f64; 20] = [
    -0.0351296812, 0.826763988, 1.59143639, -0.938765585, 1.72492027,
    0.0379551314, -1.06939077, -0.537442088, 0.0511139408, 1.30948579,
    -0.802199185, -0.850424469, -0.964318097, -0.881521702, -0.829534054,
    -0.254771203, -0.964780748, -0.232109249, -0.34761706, 0.33244279,
];

/// `torch.randn(3)`, `torch.randn(20)`, `torch.randn(2)` on one generator:
/// the scalar path (n < 16) caches the second Box-Muller value across calls,
/// the `normal_fill` path (n >= 16) leaves that cache alone, and n = 20
/// redraws its last 16 values.
#[test]
fn randn_small_path_cache_and_tail_match_torch() {
    let mut g = TorchGenerator::new(SEED);
    assert_close_f32(
        &g.randn(3),
        &[-0.98000735, -1.65784788, -0.0571662299],
        1e-6,
    );
    assert_close_f32(&g.randn(20), &RANDN_20_AFTER_3, 1e-6);
    // The first value is the one cached by `randn(3)`.
    assert_close_f32(&g.randn(2), &[-0.340854108, 0.363119096], 1e-6);
}

/// `manual_seed` only uses the low 32 bits of the seed.
#[test]
fn seed_reduction_keeps_low_32_bits() {
    let mut a = TorchGenerator::new(SEED);
    let mut b = TorchGenerator::new(SEED | (0xdead_beef << 32));
    for _ in 0..1000 {
        assert_eq!(a.rand_f32().to_bits(), b.rand_f32().to_bits());
    }
}

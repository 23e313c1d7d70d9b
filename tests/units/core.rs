//! The CPU reference, the optimizers' settings and the models' labels.

use makemore::adamw::AdamW;
use makemore::cpu::{
    count_pairs, count_pairs_parallel, count_pairs_private, cross_entropy_backward,
    cross_entropy_explicit, cross_entropy_forward, cross_entropy_fused, grad_rows, loss_total,
    normalize_rows,
};
use makemore::data::{Examples, Vocab};
use makemore::model::context_label;
use makemore::optim::draw_batch;
use makemore::{Backend, CpuBackend, LossForm, NetForm};
use rand::SeedableRng;

/// The analytic gradient against central differences of the loss, all in f64.
#[test]
fn gradient_matches_finite_differences() {
    let (contexts, targets) = (vec![0, 1, 1, 2, 0, 2, 2], vec![1, 2, 0, 0, 2, 1, 1]);
    let examples = Examples {
        contexts,
        targets,
        num_rows: 3,
        num_cols: 3,
    };
    let weights: Vec<f32> = (0..9).map(|i| ((i * 7 % 5) as f32 - 2.0) * 0.3).collect();
    let reg = 0.1;
    let form = NetForm::default();
    let (_, grads) = (CpuBackend.loss_and_gradient(&weights, &examples, reg, form)).unwrap();
    // Mean over examples of logsumexp(W[x]) - W[x, y], plus the penalty.
    let loss_at = |w: &[f64]| {
        let nll: f64 = (0..examples.len())
            .map(|i| {
                let row = &w[examples.contexts[i] as usize * 3..][..3];
                let lse = row.iter().map(|x| x.exp()).sum::<f64>().ln();
                lse - row[examples.targets[i] as usize]
            })
            .sum();
        nll / examples.len() as f64 + reg as f64 * w.iter().map(|x| x * x).sum::<f64>() / 9.0
    };
    let h = 1e-3;
    for k in 0..9 {
        let mut plus: Vec<f64> = weights.iter().map(|&w| w as f64).collect();
        let mut minus = plus.clone();
        (plus[k], minus[k]) = (plus[k] + h, minus[k] - h);
        let numeric = (loss_at(&plus) - loss_at(&minus)) / (2.0 * h);
        let analytic = grads[k] as f64;
        assert!(
            (numeric - analytic).abs() < 1e-5,
            "{k}: {numeric} vs {analytic}"
        );
    }
}

/// The fused and threaded passes against the forward and backward twins, and the parallel
/// and private counting against the sequential one.
#[test]
fn fused_pass_and_parallel_counts_match_the_twins() {
    let contexts: Vec<u32> = (0..1001u32).map(|i| (i * 7 + i / 5) % 4).collect();
    let targets: Vec<u32> = (0..1001u32).map(|i| (i * 3 + i / 7) % 4).collect();
    let weights: Vec<f32> = (0..16).map(|i| ((i * 5 % 7) as f32 - 3.0) * 0.7).collect();
    let (x, w) = ((&contexts[..], &targets[..]), &weights[..]);
    let (lse, nll) = cross_entropy_forward(w, x.0, x.1, 4);
    let mut grad = vec![0.0; 16];
    cross_entropy_backward(w, x.0, x.1, &lse, 4, &mut grad);
    let mut fused_grad = vec![0.0; 16];
    let fused_nll = cross_entropy_fused(w, x.0, x.1, 4, &mut fused_grad);
    let (explicit_lse, explicit_nll) = cross_entropy_explicit(w, x.0, x.1, 4);
    let mut explicit_grad = vec![0.0; 16];
    cross_entropy_backward(w, x.0, x.1, &explicit_lse, 4, &mut explicit_grad);
    assert!((fused_nll - nll).abs() <= 1e-12 * nll.abs(), "fused");
    for (a, b) in fused_grad.iter().zip(&grad) {
        assert!((a - b).abs() <= 1e-9, "fused: {a} vs {b}");
    }
    // The threaded pass of the CPU backend: the twins' sums, divided by n (reg 0).
    let examples = Examples {
        contexts: contexts.clone(),
        targets: targets.clone(),
        num_rows: 4,
        num_cols: 4,
    };
    for (what, loss, twin) in [
        ("threaded", LossForm::Fused, (nll, &grad)),
        (
            "explicit threaded",
            LossForm::Explicit,
            (explicit_nll, &explicit_grad),
        ),
    ] {
        let form = NetForm {
            loss,
            one_hot: false,
        };
        let (step, grads) = CpuBackend
            .loss_and_gradient(w, &examples, 0.0, form)
            .unwrap();
        let data = loss_total(twin.0, 1001, w, 0.0).data;
        assert!((step.data - data).abs() <= 1e-12 * data.abs(), "{what}");
        for (a, b) in grads.iter().zip(grad_rows(twin.1, w, 1001, 0.0)) {
            assert!((a - b).abs() <= 1e-7, "{what}: {a} vs {b}");
        }
    }
    let sequential = count_pairs(x.0, x.1, 4, 4);
    assert_eq!(count_pairs_parallel(x.0, x.1, 4, 4), sequential);
    assert_eq!(count_pairs_parallel(&[], &[], 2, 2), vec![0; 4]);
    assert_eq!(count_pairs_private(x.0, x.1, 4, 4, 64), sequential);
}

#[test]
fn normalized_rows_sum_to_one_and_empty_rows_are_zero() {
    let probs = normalize_rows(&[1, 3, 0, 0], 2, 0.0);
    assert_eq!(probs, vec![0.25, 0.75, 0.0, 0.0]);
    let smoothed = normalize_rows(&[1, 3, 0, 0], 2, 1.0);
    assert_eq!(smoothed, vec![2.0 / 6.0, 4.0 / 6.0, 0.5, 0.5]);
}

#[test]
fn makemore_defaults_and_bias_corrections() {
    let a = AdamW::default();
    let settings = (a.weight_decay, a.beta1, a.beta2, a.eps);
    assert_eq!(settings, (0.01, 0.9, 0.99, 1e-8));
    let (bc1, bc2) = a.bias_corrections(1);
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

#[test]
fn context_labels_read_oldest_first() {
    let vocab = Vocab::from_words(&["ab"]);
    assert_eq!(context_label(0, &vocab, 2), "..");
    assert_eq!(context_label(5, &vocab, 2), "ab");
    assert_eq!(context_label(2, &vocab, 1), "b");
}

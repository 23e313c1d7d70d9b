//! The tools: lecture's chapters and figures, bench's data sets and statistics, the traffic
//! of `bench --kernels`.

use makemore::data::{Examples, Vocab};
use makemore::tools::bench::{median, spread, DataSet};
use makemore::tools::ceilings::{check, SUM_TOLERANCE};
use makemore::tools::kernel_times::{traffic, Ceiling, Shape};
use makemore::tools::lecture::{find_chapter, one_hot_png, sorted_bigrams};
use makemore::{Backend, CpuBackend};

#[test]
fn chapters_by_number_and_word() {
    assert_eq!(find_chapter("1").unwrap().title, "intro");
    assert_eq!(find_chapter("24").unwrap().title, "conclusion");
    assert_eq!(find_chapter("softmax").unwrap().number, 16);
    assert_eq!(find_chapter("One-Hot").unwrap().number, 14);
    assert!(find_chapter("25").is_err());
    assert!(find_chapter("0").is_err());
    assert!(find_chapter("transformer").is_err());
}

#[test]
fn bigrams_sort_like_python() {
    let words: Vec<String> = ["ab", "ba", "ab"].iter().map(|s| s.to_string()).collect();
    let vocab = Vocab::from_words(&words);
    let examples = Examples::encode(&words, &vocab, 1).unwrap();
    let counts = CpuBackend.count_pairs(&examples).unwrap();
    let sorted = sorted_bigrams(&examples, &vocab, &counts);
    let names: Vec<String> = sorted
        .iter()
        .map(|(a, b, n)| format!("{a}{b}{n}"))
        .collect();
    // .a, ab, b. met first (2 each); then .b, ba, a. (1 each).
    assert_eq!(names, ["<S>a2", "ab2", "b<E>2", "<S>b1", "ba1", "a<E>1"]);
}

#[test]
fn one_hot_png_is_a_png() {
    let png = one_hot_png(&[0, 2], 3, 4).unwrap();
    assert_eq!(&png[1..4], b"PNG");
}

#[test]
fn data_sets_parse() {
    assert_eq!(DataSet::parse("names"), Ok(DataSet::Names));
    assert_eq!(DataSet::parse("10m"), Ok(DataSet::Synthetic(10_000_000)));
    assert_eq!(DataSet::parse("500K"), Ok(DataSet::Synthetic(500_000)));
    assert_eq!(DataSet::parse("1234"), Ok(DataSet::Synthetic(1234)));
    assert!(DataSet::parse("0").is_err());
    assert!(DataSet::parse("ten").is_err());
}

#[test]
fn synthetic_words_hold_the_pairs_asked_for() {
    let words = DataSet::Synthetic(10_000).words();
    let pairs: usize = words.iter().map(|w| w.len() + 1).sum();
    assert!((10_000..10_016).contains(&pairs), "{pairs} pairs");
    assert!(words.iter().all(|w| (2..=15).contains(&w.len())));
    assert_eq!(words, DataSet::Synthetic(10_000).words());
}

#[test]
fn median_and_spread() {
    assert_eq!(spread(&[3.0, 1.0, 2.0, 10.0]), (2.5, 1.0, 10.0));
    assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
    assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
}

#[test]
fn every_kernel_with_a_formula_moves_bytes() {
    let s = Shape {
        examples: 1000,
        rows: 27,
        cols: 27,
        one_hot: false,
        partials: 27 * 27 * 4,
    };
    let kernels = "count_pairs count_pairs_private normalize_rows nll_gather \
        cross_entropy_forward cross_entropy_explicit cross_entropy_backward grad_rows \
        one_hot_matmul one_hot_matmul_backward partial_sums sgd_step adamw_step \
        count_descent softmax_rows";
    for kernel in kernels.split_whitespace() {
        let t = traffic(kernel, &s, 2).unwrap();
        assert!(t[..3].iter().all(|&x| x > 0), "{kernel}");
        assert!(t[3] <= t[2], "{kernel}: exps are operations too");
    }
    assert_eq!(traffic("loss_total", &s, 1), None);
    // sgd_step: W and its gradient read, W written.
    let sgd = traffic("sgd_step", &s, 12).unwrap();
    assert_eq!((sgd[0], sgd[1]), (8 * 729, 4 * 729));
    // The one-hot step reads its n x V logits, not W.
    let one_hot = Shape { one_hot: true, ..s };
    let f = traffic("cross_entropy_forward", &one_hot, 4).unwrap();
    assert_eq!(f[0], 8 * 1000 + 4 * 1000 * 27);
    // Exps: one per logit and a log per example; one per weight and a log per row.
    assert_eq!(f[3], 1000 * 27 + 1000);
    assert_eq!(traffic("count_descent", &s, 1).unwrap()[3], 729 + 27);
    assert_eq!(traffic("sgd_step", &s, 1).unwrap()[3], 0);
}

/// A kernel's model: the larger of its memory and exp times, plus its dispatches; the bound is
/// the largest term.
#[test]
fn ceiling_model_adds_dispatches_to_the_larger_bound() {
    let c = Ceiling {
        gb_per_s: 2.0,
        ns_per_exp: 0.5,
        us_per_dispatch: 40.0,
    };
    // 2 MB at 2 GB/s: 1 ms; 1M exps at 0.5 ns: 0.5 ms; 2 dispatches: 0.08 ms.
    let (seconds, bound) = c.model(2_000_000, 1_000_000, 2);
    assert!((seconds - 1.08e-3).abs() < 1e-12, "{seconds}");
    assert_eq!(bound, "memory");
    let (seconds, bound) = c.model(2_000_000, 4_000_000, 1);
    assert!((seconds - 2.04e-3).abs() < 1e-12, "{seconds}");
    assert_eq!(bound, "exp");
    assert_eq!(c.model(4, 0, 1).1, "dispatch");
}

/// `bench --kernels` refuses ceilings that were not measured: a missing figure, zero, NaN.
#[test]
fn ceiling_figures_must_be_measured() {
    let row = |name: &str, value: f64| serde_json::json!({"measurement": name, "value": value});
    let rows = vec![
        row("copy_vec4", 4.0),
        row("exp", 0.3),
        row("dispatch", 40.0),
    ];
    let c = Ceiling::from_rows(&rows).unwrap();
    assert_eq!(
        (c.gb_per_s, c.ns_per_exp, c.us_per_dispatch),
        (4.0, 0.3, 40.0)
    );
    for bad in [0.0, f64::NAN, -1.0] {
        let mut off = rows.clone();
        off[1] = row("exp", bad);
        let err = Ceiling::from_rows(&off).unwrap_err();
        assert!(err.to_string().contains("exp"), "{err}");
    }
    assert!(Ceiling::from_rows(&rows[..2]).is_err());
}

/// `bench --ceilings` refuses a kernel's result that is off: a corrupted copy, a sum past its
/// tolerance, a NaN, a short result.
#[test]
fn ceiling_checks_reject_a_corrupted_result() {
    let want = [0.5, 1024.0, 3.0];
    assert!(check("copy", &[0.5, 1024.0, 3.0], &want, 0.0).is_ok());
    let err = check("copy", &[0.5, 1024.0, 3.5], &want, 0.0).unwrap_err();
    assert!(err.to_string().contains("element 2"), "{err}");
    // Within 1e-5 of 1024 relative passes; 1e-4 does not.
    assert!(check("sum", &[0.5, 1024.005, 3.0], &want, SUM_TOLERANCE).is_ok());
    assert!(check("sum", &[0.5, 1024.1, 3.0], &want, SUM_TOLERANCE).is_err());
    assert!(check("sum", &[0.5, f32::NAN, 3.0], &want, SUM_TOLERANCE).is_err());
    assert!(check("sum", &[0.5, 1024.0], &want, SUM_TOLERANCE).is_err());
}

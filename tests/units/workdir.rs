//! The work directory and what reads it: checkpoints and the loss log, sampling, the
//! generators, plots and the sweep's choice.

use makemore::checkpoint::{
    load_log, log_from_str, log_to_string, save_run, write_atomically, Checkpoint, LogEntry,
    RunSettings, LOG_FILE, MODEL_FILE,
};
use makemore::data::Vocab;
use makemore::rng::{standard_normal, RngKind};
use makemore::sample::{
    for_each_name, prefix_symbols, sample_names, sample_symbols, shape_probs, MAX_NAME_LEN,
    NAMES_PER_BLOCK,
};
use makemore::tools::plot::CountsFigure;
use makemore::tools::sweep::best_index;
use makemore::torch_rng::TorchGenerator;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use safetensors::tensor::{Dtype, TensorView};

/// The names of `sample_symbols` as a full scan of each row's thresholds draws them, with the
/// same generator per block: the thresholds are round(2^32 * cumulative share) in f64, the
/// last 2^32 (all of them in a row with no mass), a draw the first column above a 32-bit u.
fn full_scan(probs: &[f32], cols: usize, count: usize, seed: u64) -> Vec<u32> {
    let full = (1u64 << 32) as f64;
    let mut thresholds = Vec::new();
    for row in probs.chunks(cols) {
        let (total, mut running) = (row.iter().map(|&p| p as f64).sum::<f64>(), 0.0);
        for (c, &p) in row.iter().enumerate() {
            running += p as f64;
            let share = if total > 0.0 && c + 1 < cols {
                running / total
            } else {
                1.0
            };
            thresholds.push((share * full).round().min(full) as u64);
        }
    }
    let mut symbols = Vec::new();
    for b in 0..count.div_ceil(NAMES_PER_BLOCK) {
        let seed = seed ^ (b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut rng = StdRng::seed_from_u64(seed);
        for _ in 0..(count - b * NAMES_PER_BLOCK).min(NAMES_PER_BLOCK) {
            let mut row = 0;
            for _ in 0..MAX_NAME_LEN {
                let u = rng.next_u32() as u64;
                row = thresholds[row * cols..][..cols]
                    .iter()
                    .position(|&t| t > u)
                    .unwrap();
                if row == 0 {
                    break;
                }
                symbols.push(row as u32);
            }
            symbols.push(0);
        }
    }
    symbols
}

/// The guide only says where the scan starts: every draw is the first column whose threshold
/// is above u, whatever the row length (and so the guide's size); zero-probability columns are
/// never drawn, the others in proportion, past column 255 too.
#[test]
fn draws_follow_the_distribution_and_equal_a_full_scan() {
    for cols in [1, 2, 3, 27, 255, 256, 300] {
        let probs: Vec<f32> = (0..cols * cols).map(|i| ((i * 7919) % 13) as f32).collect();
        let count = NAMES_PER_BLOCK + 100;
        let got = sample_symbols(&probs, cols, count, 3, &[]);
        assert!(got == full_scan(&probs, cols, count, 3), "{cols} columns");
    }
    // From `.`: never `.` itself, `a` a quarter of the time; every name one character.
    let probs = [0.0, 0.25, 0.75, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0];
    let drawn = sample_symbols(&probs, 3, 40_000, 1, &[]);
    assert_eq!(drawn.len(), 80_000);
    let share = drawn.iter().filter(|&&s| s == 2).count() as f64 / 40_000.0;
    assert!((share - 0.75).abs() < 0.01, "share {share}");
    // 300 columns, from `.` uniform over the 299 others.
    let mut probs = vec![0.0f32; 300 * 300];
    probs[1..300].fill(1.0);
    (1..300).for_each(|r| probs[r * 300] = 1.0);
    let drawn = sample_symbols(&probs, 300, 20_000, 5, &[]);
    assert!(drawn.chunks(2).all(|name| name[0] > 0 && name[1] == 0));
    let share = drawn.iter().filter(|&&c| c >= 256).count() as f64 / 20_000.0;
    assert!((share - 44.0 / 299.0).abs() < 0.01, "past 255: {share}");
}

const AB: [f32; 9] = [0.0, 0.5, 0.5, 0.3, 0.0, 0.7, 0.4, 0.6, 0.0];

/// The first `stop` of `count` names of the vocabulary "ab" from `probs`, after `prefix`.
fn first(probs: &[f32], rng: RngKind, (count, stop): (u64, usize), prefix: &str) -> Vec<String> {
    let (vocab, mut names) = (Vocab::from_words(&["ab"]), Vec::new());
    let prefix = prefix_symbols(&vocab, prefix).unwrap();
    for_each_name(probs, &vocab, (count, 5, rng), &prefix, |n| {
        names.push(n.to_string());
        names.len() < stop
    });
    names
}

#[test]
fn names_stream_in_order_whatever_their_number() {
    let vocab = Vocab::from_words(&["ab"]);
    let count = 2 * NAMES_PER_BLOCK as u64 + 7;
    for rng in [RngKind::Std, RngKind::Torch] {
        let all = sample_names(&AB, &vocab, count as usize, 5, rng);
        assert_eq!(first(&AB, rng, (count, usize::MAX), ""), all);
        // Stopping early: the first names, no more.
        assert_eq!(first(&AB, rng, (u64::MAX, 10), ""), all[..10]);
    }
    let n = 3 * NAMES_PER_BLOCK + 5;
    let many = sample_names(&AB, &vocab, n, 9, RngKind::Std);
    assert_eq!(many.len(), n);
    assert_eq!(sample_names(&AB, &vocab, 10, 9, RngKind::Std), many[..10]);
    assert_eq!(many, sample_names(&AB, &vocab, n, 9, RngKind::Std));
    assert!(many[NAMES_PER_BLOCK..].iter().all(|n| !n.contains('.')));
}

#[test]
fn a_name_ends_at_the_boundary_or_a_row_with_no_mass() {
    // From `.` always `a`, from `a` always `.` (or, second, nothing: never seen).
    let vocab = Vocab::from_words(&["a"]);
    for rng in [RngKind::Std, RngKind::Torch] {
        let names = sample_names(&[0.0, 1.0, 1.0, 0.0], &vocab, 3, 5, rng);
        assert_eq!(names, ["a", "a", "a"], "{rng:?}");
        let names = sample_names(&[0.0, 1.0, 0.0, 0.0], &vocab, 2, 5, rng);
        assert_eq!(names, ["a", "a"], "{rng:?}");
    }
}

#[test]
fn torch_draws_are_torch_multinomial() {
    // Each character is one multinomial draw on its context's row, in order.
    let vocab = Vocab::from_words(&["ab"]);
    let probs = [0.2, 0.5, 0.3, 0.4, 0.1, 0.5, 0.6, 0.3, 0.1];
    let mut generator = TorchGenerator::new(7);
    for name in sample_names(&probs, &vocab, 20, 7, RngKind::Torch) {
        let mut row = 0;
        for ch in name.chars().chain(['.']) {
            row = generator.multinomial_one(&probs[row * 3..][..3]);
            assert_eq!(vocab.char(row as u32), ch);
        }
    }
}

#[test]
fn temperature_top_k_and_prefix_shape_the_names() {
    let row = [0.1f32, 0.2, 0.7];
    // p^2 normalized: 0.01, 0.04, 0.49 over 0.54.
    let q = shape_probs(&row, 3, 0.5, None);
    let total: f32 = q.iter().sum();
    assert!((q[2] / total - 0.49 / 0.54).abs() < 1e-6, "{q:?}");
    assert_eq!(shape_probs(&row, 3, 1.0, Some(1)), [0.0, 0.0, 1.0]);
    assert_eq!(shape_probs(&row, 3, 1.0, None), row);
    let names = first(&[1.0 / 3.0; 9], RngKind::Std, (20, 99), "ba");
    let prefixed = names.len() == 20 && names.iter().all(|n| n.starts_with("ba"));
    assert!(prefixed, "{names:?}");
    let vocab = Vocab::from_words(&["ab"]);
    assert_eq!(prefix_symbols(&vocab, "bz"), Err('z'));
}

fn tiny(log: Option<(usize, u64)>) -> Checkpoint {
    let (vocab, input, split) = (Vocab::from_words(&["ab"]), None, None);
    let settings = RunSettings {
        vocab,
        context_len: 1,
        smoothing: 1.0,
        seed: 7,
        steps: 3,
        lr: 50.0,
        reg: 0.01,
        input,
        split,
        log,
    };
    Checkpoint {
        settings,
        counts: (0..9).collect(),
        probs: (0..9).map(|i| i as f32 / 9.0).collect(),
        weights: (0..9).map(|i| -(i as f32)).collect(),
        neural_probs: vec![0.5; 9],
    }
}

#[test]
fn checkpoints_read_back_as_written_and_bad_bytes_are_refused() {
    let c = tiny(Some((3, 0x0123_4567_89ab_cdef)));
    let bytes = c.to_bytes().unwrap();
    assert_eq!(Checkpoint::from_bytes(&bytes, "t").unwrap(), c);
    let refused = |bytes: &[u8]| Checkpoint::from_bytes(bytes, "t").unwrap_err().to_string();
    for cut in [0, 4, 9, bytes.len() / 2, bytes.len() - 1] {
        let err = refused(&bytes[..cut]);
        assert!(err.starts_with("t is not a safetensors"), "{cut}: {err}");
    }
    let x = TensorView::new(Dtype::F32, vec![1], &[0u8; 4][..]).unwrap();
    let err = refused(&safetensors::serialize([("x", x)], None).unwrap());
    assert!(err.starts_with("t is not a makemore checkpoint"), "{err}");
    // A vocabulary out of order or twice; the same length, so the header stays valid.
    for chars in [".ba", ".aa"] {
        let mut bytes = bytes.clone();
        let at = bytes.windows(5).position(|w| w == b"\".ab\"").unwrap();
        bytes[at + 1..at + 4].copy_from_slice(chars.as_bytes());
        let err = refused(&bytes);
        assert!(err.contains("vocabulary is not valid"), "{chars}: {err}");
    }
}

#[test]
fn the_model_names_the_lines_of_the_log_that_belong_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let entries = |steps: std::ops::Range<usize>, data: f64| -> Vec<LogEntry> {
        let total = |step| data - step as f64 * 0.125;
        let line = |s| {
            format!(
                "{{\"step\":{s},\"loss\":{},\"data_loss\":{data}}}\n",
                total(s)
            )
        };
        log_from_str(&steps.map(line).collect::<String>(), "t").unwrap()
    };
    let save_log = |e: &[LogEntry]| {
        write_atomically(&dir.path().join(LOG_FILE), log_to_string(e).as_bytes()).unwrap()
    };
    save_run(dir.path(), &mut tiny(None), &entries(0..3, 3.0)).unwrap();
    assert_eq!(load_log(dir.path()).unwrap(), entries(0..3, 3.0));
    let saved = Checkpoint::load(dir.path()).unwrap();
    assert_eq!(saved.settings.log.map(|l| l.0), Some(3));
    // A resumed run stopped after writing its log, before its model: the old model's
    // three lines are read, the two past them left out.
    save_log(&entries(0..5, 3.0));
    assert_eq!(load_log(dir.path()).unwrap(), entries(0..3, 3.0));
    // A new run stopped at the same point: its log is not the model's, and says so.
    save_log(&entries(0..5, 2.0));
    let err = load_log(dir.path()).unwrap_err().to_string();
    assert!(err.contains("does not hold the 3 lines"), "{err}");
    save_log(&entries(0..2, 3.0));
    assert!(load_log(dir.path()).is_err(), "a log shorter");
    // A model saved without a link (an older version) takes the whole log.
    let unlinked = tiny(None).to_bytes().unwrap();
    write_atomically(&dir.path().join(MODEL_FILE), &unlinked).unwrap();
    assert_eq!(load_log(dir.path()).unwrap(), entries(0..2, 3.0));
    // Dev losses read back too; a line without the losses is refused.
    let mut with_dev = entries(0..3, 2.5);
    with_dev[2].dev_loss = Some(2.75);
    let text = log_to_string(&with_dev);
    assert_eq!(log_from_str(&text, "t").unwrap(), with_dev);
    assert!(log_from_str("{\"step\": 1}\n", "t").is_err());
}

#[test]
fn each_kind_draws_its_normals() {
    // The lecture's W: torch.randn((27, 27), generator=g) with g seeded 2147483647.
    let w = RngKind::Torch.standard_normal(27 * 27, 2147483647);
    assert_eq!(w, TorchGenerator::new(2147483647).randn(729));
    let std = RngKind::Std.standard_normal(100, 3);
    assert_eq!(std, standard_normal(100, 3));
    let x = standard_normal(100_001, 7);
    assert_eq!(x.len(), 100_001);
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / x.len() as f64;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / x.len() as f64;
    assert!(mean.abs() < 0.01, "mean {mean}");
    assert!((var - 1.0).abs() < 0.02, "variance {var}");
    assert_eq!(x, standard_normal(100_001, 7));
}

#[test]
fn best_prefers_finite_and_the_first_of_equals() {
    assert_eq!(best_index(&[f64::INFINITY, 2.0, 1.5, 1.5]), Some(2));
    assert_eq!(best_index(&[f64::INFINITY, f64::INFINITY]), Some(0));
    assert_eq!(best_index(&[f64::NAN, 3.0]), Some(1));
    assert_eq!(best_index(&[]), None);
}

/// The reference `mt19937ar.c` (and `std::mt19937`) with `init_genrand(5489)`: the first
/// outputs and the 10000th, through the uniforms that keep their low bits; `random64()` is two
/// words, the first one high.
#[test]
fn the_engine_is_the_reference_mt19937() {
    let f32_of = |word: u32| (word & 0xff_ffff) as f32 / (1u32 << 24) as f32;
    let first = [3499211612, 581869302, 3890346734, 3586334585, 545404204];
    let mut g = TorchGenerator::new(5489);
    assert_eq!(first.map(|_| g.rand_f32()), first.map(f32_of));
    let mut g = TorchGenerator::new(5489);
    assert_eq!(
        (0..10_000).map(|_| g.rand_f32()).last(),
        Some(f32_of(4123659995))
    );
    let mut g = TorchGenerator::new(5489);
    let two = (u64::from(first[0]) << 32 | u64::from(first[1])) & ((1 << 53) - 1);
    assert_eq!(g.rand_f64(), two as f64 / (1u64 << 53) as f64);
}

#[test]
fn randn_draws_and_caches_as_torch_does() {
    // n = 20 consumes 20 + 16 float draws; n = 32 consumes exactly 32.
    for (n, draws) in [(20usize, 36usize), (32, 32), (16, 16)] {
        let (mut a, mut b) = (TorchGenerator::new(1), TorchGenerator::new(1));
        a.randn(n);
        (0..draws).for_each(|_| _ = b.rand_f32());
        assert_eq!(a.rand_f32(), b.rand_f32(), "n = {n}");
    }
    let (mut a, mut b) = (TorchGenerator::new(3), TorchGenerator::new(3));
    let three = a.randn(3); // cos, sin (cached), cos; sin stays cached
    let one = a.randn(1); // the cached sin
    assert_eq!([three, one].concat(), b.randn(4));
}

#[test]
fn multinomial_draws_one_double_a_sample_and_survives_degenerate_rows() {
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
    let mut g = TorchGenerator::new(11);
    for s in g.multinomial(&[0.0, 0.3, 0.0, 0.0, 0.7, 0.0], 10_000) {
        assert!(s == 1 || s == 4, "a zero-probability entry: {s}");
    }
    let (mut a, mut b) = (TorchGenerator::new(5), TorchGenerator::new(5));
    a.multinomial(&[0.2, 0.8], 7);
    a.multinomial_one(&[0.5, 0.5]);
    (0..8).for_each(|_| _ = b.rand_f64());
    assert_eq!(a.rand_f32(), b.rand_f32());
}

#[test]
#[should_panic(expected = "must not be empty")]
fn an_empty_row_panics() {
    TorchGenerator::new(0).multinomial_one(&[]);
}

#[test]
fn the_lecture_grid_is_labelled_and_a_large_one_is_not() {
    let vocab = Vocab::from_words(&["abcdefghijklmnopqrstuvwxyz"]);
    let layout = |context_len| {
        let counts = vec![1000; 27usize.pow(context_len as u32) * 27];
        let (counts, vocab, source) = (&counts, &vocab, "");
        CountsFigure {
            counts,
            vocab,
            context_len,
            source,
        }
        .layout()
    };
    assert_eq!(layout(1), (40, Some(12.0), None));
    let (_, label_px, note) = layout(2);
    assert!(label_px.is_none() && note.unwrap().contains("left out"));
}

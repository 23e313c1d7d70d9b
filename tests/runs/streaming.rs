//! `train --input` on the counts path reads its file in blocks (corpus.rs, train_streamed.rs):
//! the streamed pipeline against the in-memory one on files that cross many block
//! boundaries, on the CPU and on every GPU backend of MAKEMORE_TEST_BACKENDS.
//!
//! Tolerances: counts, word statistics, vocabulary and samples exactly equal; the count NLL
//! and every training loss to 1e-6 relative (the training losses come from the same integer
//! counts, so they are in fact identical; the count NLL is the same sum taken cell by cell).

use crate::common;

use std::path::Path;

use common::{assert_rel, gpus, makemore_with_env, random_words, stderr, stdout, write_words};
use makemore::corpus::{self, CountTable};
use makemore::data::read_words;
use makemore::train::run_streamed;
use makemore::train::{Event, TrainConfig, TrainSummary};
use makemore::{Backend, CpuBackend};

/// Every event's figures that must agree, as text (timings and steps/s left out).
fn figures(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Data {
                stats,
                vocab,
                examples,
                context_len,
                ..
            } => Some(format!(
                "data {} {} {} {vocab} {examples} {context_len}",
                stats.words, stats.shortest, stats.longest
            )),
            Event::CountModel {
                distinct_pairs,
                most_frequent,
                nll,
                ..
            } => Some(format!(
                "counts {distinct_pairs} {most_frequent:?} {} {}",
                nll.impossible, nll.examples
            )),
            Event::Samples { model, names } => Some(format!("{model} {names:?}")),
            _ => None,
        })
        .collect()
}

fn in_memory<B: Backend>(
    b: &mut B,
    path: &Path,
    config: &TrainConfig,
) -> (TrainSummary, Vec<Event>) {
    let words = read_words(path).unwrap();
    let mut events = Vec::new();
    let summary = makemore::train::run(b, &words, "f", config, &mut |e| events.push(e)).unwrap();
    (summary, events)
}

fn streamed<B: Backend>(
    b: &mut B,
    path: &Path,
    config: &TrainConfig,
    block_bytes: usize,
) -> (TrainSummary, Vec<Event>) {
    let scan = corpus::scan(path, block_bytes).unwrap();
    let mut events = Vec::new();
    let summary = run_streamed(b, path, &scan, block_bytes, "f", config, &mut |e| {
        events.push(e)
    })
    .unwrap();
    (summary, events)
}

fn assert_same(
    what: &str,
    memory: &(TrainSummary, Vec<Event>),
    stream: &(TrainSummary, Vec<Event>),
) {
    let (m, s) = (&memory.0, &stream.0);
    assert_eq!(m.count_model.counts, s.count_model.counts, "{what}: counts");
    assert_eq!(
        m.count_model.probs, s.count_model.probs,
        "{what}: probabilities"
    );
    assert_eq!(figures(&memory.1), figures(&stream.1), "{what}");
    assert_rel(
        &format!("{what}: count NLL"),
        s.count_nll,
        m.count_nll,
        1e-6,
    );
    assert_eq!(m.neural.losses.len(), s.neural.losses.len(), "{what}");
    for (i, (a, b)) in s.neural.losses.iter().zip(&m.neural.losses).enumerate() {
        assert_rel(&format!("{what}: loss at step {i}"), a.total, b.total, 1e-6);
        assert_rel(
            &format!("{what}: data loss at step {i}"),
            a.data,
            b.data,
            1e-6,
        );
    }
    assert_rel(
        &format!("{what}: final loss"),
        s.neural.final_loss.total,
        m.neural.final_loss.total,
        1e-6,
    );
}

fn config(context_len: usize, steps: usize) -> TrainConfig {
    TrainConfig {
        context_len,
        steps,
        samples: 5,
        ..TrainConfig::default()
    }
}

/// (seed, alphabet, words, context length, block bytes): blocks of a few bytes (a block per
/// line or less, lines longer than a block) up to several lines per block.
const CASES: [(u64, usize, usize, usize, usize); 4] = [
    (1, 6, 400, 1, 1),
    (2, 30, 1500, 1, 7),
    (3, 12, 900, 2, 64),
    (4, 5, 300, 3, 13),
];

#[test]
fn streamed_cpu_training_equals_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    for (seed, alphabet, count, k, block_bytes) in CASES {
        let path = dir.path().join(format!("words{seed}.txt"));
        write_words(&path, &random_words(seed, alphabet, count), true);
        let config = config(k, 60);
        let memory = in_memory(&mut CpuBackend, &path, &config);
        let stream = streamed(&mut CpuBackend, &path, &config, block_bytes);
        assert_same(&format!("CPU case {seed}"), &memory, &stream);
        // Streamed in one block or in many: the same counts.
        let whole = streamed(&mut CpuBackend, &path, &config, 1 << 20);
        assert_eq!(whole.0.count_model.counts, stream.0.count_model.counts);
    }
}

#[test]
fn streamed_gpu_training_equals_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    for mut gpu in gpus() {
        let device = gpu.describe();
        for (seed, alphabet, count, k, block_bytes) in CASES {
            let path = dir.path().join(format!("words{seed}.txt"));
            write_words(&path, &random_words(seed, alphabet, count), true);
            let config = config(k, 60);
            let memory = in_memory(&mut gpu, &path, &config);
            let stream = streamed(&mut gpu, &path, &config, block_bytes);
            assert_same(&format!("{device} case {seed}"), &memory, &stream);
            let cpu = streamed(&mut CpuBackend, &path, &config, block_bytes);
            assert_eq!(
                cpu.0.count_model.counts, stream.0.count_model.counts,
                "{device}"
            );
        }
    }
}

/// Clean blocks go to the GPU as bytes (count_text): a text of names, digits and '_' (38
/// symbols), with blank lines and a BOM, without a '\n' at the end, gives the CPU's counts
/// at contexts 1 to 3 (the workgroup histogram, then global atomics), in blocks of 1 byte
/// to the whole file; a mixed file too (its lines with a space go as pairs).
#[test]
fn clean_text_counted_on_the_gpu_equals_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<&str> = makemore::data::BUILTIN_NAMES.lines().take(1500).collect();
    let mut text = String::from("\u{feff}");
    for (i, name) in names.iter().enumerate() {
        match i % 50 {
            0 => text.push_str("\n\n"),
            7 => text.push_str(&format!("{name}_{i}\n")),
            _ => text.push_str(&format!("{name}\n")),
        }
    }
    let clean = text.trim_end().to_string();
    let mixed = clean.replace("ava\n", " ava\n");
    assert_ne!(mixed, clean);
    for mut gpu in gpus() {
        for (name, text) in [("clean", &clean), ("mixed", &mixed)] {
            let path = dir.path().join(format!("{name}.txt"));
            std::fs::write(&path, text).unwrap();
            for (k, block_bytes) in [1, 2, 3]
                .into_iter()
                .flat_map(|k| [1, 5, 64, 1000, 1 << 20].map(|b| (k, b)))
            {
                let scan = corpus::scan(&path, block_bytes).unwrap();
                let encoder = || corpus::PairEncoder::open(&path, &scan, k, block_bytes).unwrap();
                let (v, rows) = (scan.vocab.len(), encoder().num_rows());
                let cpu = CpuBackend.count_pair_batches(rows, v, &mut encoder());
                let got = gpu.count_pair_batches(rows, v, &mut encoder());
                let (cpu, got) = (cpu.unwrap(), got.unwrap());
                let what = format!("{name} K={k} blocks of {block_bytes} on {}", gpu.describe());
                assert_eq!(got, cpu, "{what}");
            }
        }
    }
}

/// count_nll against its CPU twin, and both against nll_gather on the examples the table
/// counts: random tables, smoothed and not (cells of probability 0 with examples).
#[test]
fn count_nll_matches_the_cpu_and_nll_gather() {
    for mut gpu in gpus() {
        let device = gpu.describe();
        for (seed, alphabet, count, k) in [(5, 4, 200, 1), (6, 20, 3000, 2), (7, 9, 1000, 3)] {
            let (vocab, examples) = common::encode(&random_words(seed, alphabet, count), k);
            let v = vocab.len();
            let counts = CpuBackend.count_pairs(&examples).unwrap();
            let table = CountTable::new(counts.clone(), v);
            assert_eq!(table.examples, examples.len());
            for smoothing in [1.0, 0.0] {
                // Without smoothing, other data's probabilities leave cells of this data at 0.
                let probs_counts = if smoothing == 0.0 {
                    let (_, other) = common::encode(&random_words(seed + 100, alphabet, count), k);
                    if other.num_cols != v {
                        continue;
                    }
                    CpuBackend.count_pairs(&other).unwrap()
                } else {
                    counts.clone()
                };
                let probs = CpuBackend
                    .normalize_rows(&probs_counts, v, smoothing)
                    .unwrap();
                let want = CpuBackend.mean_nll(&probs, &examples).unwrap();
                let cpu = CpuBackend.count_table_nll(&probs, &table).unwrap();
                let got = gpu.count_table_nll(&probs, &table).unwrap();
                let what = format!("{device} seed {seed} smoothing {smoothing}");
                assert_eq!(cpu.impossible, want.impossible, "{what}");
                assert_eq!(got.impossible, want.impossible, "{what}");
                assert_rel(&what, cpu.finite_mean, want.finite_mean, 1e-12);
                assert_rel(&what, got.finite_mean, want.finite_mean, 1e-5);
            }
        }
    }
}

/// The binary's errors for a bad file are the in-memory reader's (`--grad examples` reads the
/// whole file), with blocks of 3 bytes so that the bad byte is at a block boundary.
#[test]
fn bad_files_give_the_in_memory_readers_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut bad_utf8 = b"ann\r\nbob\nc\xC3\xA9line\n".to_vec();
    bad_utf8.extend(b"d\xC3\n\xFFx\n");
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("utf8.txt", bad_utf8, "line 4, byte offset 18"),
        ("dot.txt", b"ann\n\nb.b\nc.c\n".to_vec(), "line 3"),
        ("empty.txt", b" \r\n\n".to_vec(), "has no words"),
        (
            "both.txt",
            b"a.b\nx\xFF\n".to_vec(),
            "line 2, byte offset 5",
        ),
    ];
    for (name, bytes, expected) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let path = path.to_str().unwrap();
        let mut errors = Vec::new();
        for grad in ["counts", "examples"] {
            let args = ["train", "--device", "cpu", "--input", path, "--grad", grad];
            let out = makemore_with_env(&args, &[("MAKEMORE_CHUNK_BYTES", "3")]);
            assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
            errors.push(stderr(&out));
        }
        assert_eq!(errors[0], errors[1], "{name}");
        assert!(errors[0].contains(expected), "{name}: {}", errors[0]);
        assert_eq!(errors[0].lines().count(), 1, "{name}: {}", errors[0]);
    }
}

/// The binary's output streamed in blocks of 100 bytes is the in-memory run's: the built-in
/// names (held in memory) against the same names from a file, on the CPU and the GPU.
#[test]
fn train_output_streamed_equals_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("names.txt");
    std::fs::write(&path, makemore::data::BUILTIN_NAMES).unwrap();
    let path = path.to_str().unwrap();
    let strip = |text: String| -> Vec<String> {
        text.lines()
            .filter(|l| !l.contains("steps/s") && !l.starts_with("done in"))
            .filter(|l| !l.starts_with("transfers"))
            .filter(|l| !l.starts_with("saved") && !l.starts_with("data"))
            .map(str::to_string)
            .collect()
    };
    let mut backends: Vec<Vec<(&str, String)>> = vec![vec![]];
    if let Ok(list) = std::env::var("MAKEMORE_TEST_BACKENDS") {
        backends = list
            .split(',')
            .map(|b| vec![("WGPU_BACKEND", b.to_string())])
            .collect();
    }
    for device in ["cpu", "gpu"] {
        for env in &backends {
            let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let base = ["train", "--quiet", "--steps", "40", "--device", device];
            let memory = makemore_with_env(&base, &env);
            env.push(("MAKEMORE_CHUNK_BYTES", "100"));
            let mut args = base.to_vec();
            args.extend(["--input", path]);
            let stream = makemore_with_env(&args, &env);
            assert!(stream.status.success(), "{}", stderr(&stream));
            let (m, s) = (strip(stdout(&memory)), strip(stdout(&stream)));
            assert!(m.len() > 30, "{m:?}");
            assert_eq!(m, s, "{device} {env:?}");
        }
    }
}

//! The command line fuzzed: `train`, `sample`, `eval` and `plot` run on random combinations of
//! flags and values over small random word lists. Most values are valid, so that the runs get
//! past the parser and do work; a minority is out of range, huge, empty, or made of characters
//! the model never saw. Whatever the case: no panic (exit code 101), no death by a signal
//! (an abort, the OOM killer), an `error:` line whenever the exit code is not 0, and the files
//! of the work directory either left byte for byte (a failed run) or a consistent model and
//! log (a run that succeeded).
//!
//! 500 cases by default (seeded, the same every run); `MAKEMORE_CLI_FUZZ_CASES=N` runs N,
//! `MAKEMORE_CLI_FUZZ_SEED=S` another sequence.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// A case that runs longer than this is a failure (a count the tool should have refused).
const CASE_TIMEOUT: Duration = Duration::from_secs(60);

/// Values past what a flag accepts, or past what memory holds.
const HUGE: &[&str] = &[
    "4294967296",
    "999999999999",
    "18446744073709551615",
    "18446744073709551616",
    "-1",
    "1e30",
    "nan",
    "inf",
    "",
    "ten",
];

/// Characters to build words and prefixes from: ASCII, accents, CJK, an emoji, a combining
/// mark, the boundary `.`, a space.
const ODD: &[char] = &[
    'a', 'b', 'é', 'ü', '中', '文', '🙂', '\u{301}', '.', ' ', 'z', 'ß',
];

struct Fixture {
    dir: tempfile::TempDir,
    /// Word files, each with a trained work directory (CPU, a few steps), and its alphabet.
    inputs: Vec<(PathBuf, PathBuf)>,
    alphabets: Vec<Vec<char>>,
}

fn random_word(rng: &mut StdRng, alphabet: &[char]) -> String {
    let len = rng.random_range(1..=8);
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())])
        .collect()
}

fn fixture(rng: &mut StdRng) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let alphabets: Vec<Vec<char>> = vec![
        vec!['a', 'b', 'c', 'd', 'e'],
        vec!['a', 'é', 'ü', 'n', 'o', 'r', 's', 't', 'ß'],
        vec!['中', '文', '字', '词', '语', 'a', 'b'],
    ];
    let mut inputs = Vec::new();
    for (i, alphabet) in alphabets.iter().enumerate() {
        let words: Vec<String> = (0..rng.random_range(20..120))
            .map(|_| random_word(rng, alphabet))
            .collect();
        let input = dir.path().join(format!("words{i}.txt"));
        std::fs::write(&input, words.join("\n") + "\n").unwrap();
        let work = dir.path().join(format!("work{i}"));
        let out = run(&[
            "train",
            "--device",
            "cpu",
            "--steps",
            "3",
            "--samples",
            "0",
            "--input",
            input.to_str().unwrap(),
            "--work-dir",
            work.to_str().unwrap(),
        ])
        .expect("the fixture's training finishes");
        assert!(out.status.success(), "{}", common::stderr(&out));
        inputs.push((input, work));
    }
    Fixture {
        dir,
        inputs,
        alphabets,
    }
}

/// Runs the binary, killing it after [`CASE_TIMEOUT`] (then `None`).
fn run(args: &[&str]) -> Option<std::process::Output> {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_makemore"))
        .args(args)
        .current_dir(dir.path())
        .env("NODEVICE_SELECT", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drain both pipes while waiting, so that a large output never blocks the child.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut bytes).ok();
        bytes
    });
    let err_reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut bytes).ok();
        bytes
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > CASE_TIMEOUT {
            child.kill().ok();
            child.wait().ok();
            break None;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let stdout = out_reader.join().unwrap();
    let stderr = err_reader.join().unwrap();
    status.map(|status| std::process::Output {
        status,
        stdout,
        stderr,
    })
}

/// Every file of a directory and its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for (name, bytes) in snapshot(from) {
        std::fs::write(to.join(name), bytes).unwrap();
    }
}

/// A value for a count flag: mostly small and valid, sometimes 0, sometimes out of range.
fn count(rng: &mut StdRng, valid_max: u64) -> String {
    match rng.random_range(0..25) {
        0 | 1 => HUGE[rng.random_range(0..HUGE.len())].to_string(),
        2 => "0".to_string(),
        _ => rng.random_range(1..=valid_max).to_string(),
    }
}

/// A value for a real flag: mostly in `range`, sometimes not a finite number >= 0.
fn real(rng: &mut StdRng, low: f64, high: f64) -> String {
    match rng.random_range(0..25) {
        0 | 1 => HUGE[rng.random_range(0..HUGE.len())].to_string(),
        2 => "0".to_string(),
        _ => format!("{:.4}", rng.random_range(low..high)),
    }
}

fn pick<'a>(rng: &mut StdRng, values: &[&'a str]) -> &'a str {
    values[rng.random_range(0..values.len())]
}

/// A word or prefix: mostly of the model's characters, sometimes empty or of odd ones.
fn text(rng: &mut StdRng, alphabet: &[char]) -> String {
    match rng.random_range(0..8) {
        0 => String::new(),
        1 => random_word(rng, ODD),
        _ => random_word(rng, alphabet),
    }
}

/// Flags and how to draw a value for each.
type FlagValues = Vec<(&'static str, Box<dyn Fn(&mut StdRng) -> String>)>;

/// Mostly the first value, sometimes any of them.
fn mostly<'a>(rng: &mut StdRng, values: &[&'a str]) -> &'a str {
    if rng.random_range(0..4) > 0 {
        values[0]
    } else {
        pick(rng, values)
    }
}

/// One random command line; `work` is the work directory it may use, a copy of the run on
/// input `trained` (if any).
fn case(
    rng: &mut StdRng,
    fixture: &Fixture,
    trained: usize,
    work: &Path,
    scratch: &Path,
) -> Vec<String> {
    // Mostly the words the work directory was trained on.
    let same = rng.random_range(0..5) > 0;
    let which = if same {
        trained
    } else {
        rng.random_range(0..fixture.inputs.len())
    };
    let input = fixture.inputs[which].0.to_str().unwrap();
    let alphabet = fixture.alphabets[trained].clone();
    let work = work.to_str().unwrap().to_string();
    let device = if rng.random_range(0..10) == 0 {
        "gpu"
    } else {
        "cpu"
    };
    match rng.random_range(0..10) {
        0..=3 => train_case(rng, input, work, device),
        4..=6 => sample_case(rng, work, alphabet),
        7..=8 => eval_case(rng, input, work, &alphabet),
        _ => plot_case(rng, work, scratch),
    }
}

/// Appends `name value` to a command line.
fn flag(args: &mut Vec<String>, name: &str, value: String) {
    args.push(name.to_string());
    args.push(value);
}

/// Appends each of the `options`, with a value drawn for it, with probability 1 / `one_in`.
fn some_of(rng: &mut StdRng, args: &mut Vec<String>, options: &FlagValues, one_in: i32) {
    for (name, value) in options {
        if rng.random_range(0..one_in) == 0 {
            let value = value(rng);
            flag(args, name, value);
        }
    }
}

/// The flags of `train` that take a value, and how to draw one.
fn train_flags() -> FlagValues {
    vec![
        ("--steps", Box::new(|r| count(r, 30))),
        ("--samples", Box::new(|r| count(r, 20))),
        ("--context", Box::new(|r| count(r, 3))),
        ("--smoothing", Box::new(|r| real(r, 0.0, 3.0))),
        ("--lr", Box::new(|r| real(r, 0.1, 60.0))),
        ("--reg", Box::new(|r| real(r, 0.0, 0.5))),
        ("--seed", Box::new(|r| count(r, 1 << 40))),
        ("--batch-size", Box::new(|r| count(r, 64))),
        (
            "--split",
            Box::new(|r| {
                pick(
                    r,
                    &[
                        "80/10/10", "50/50/0", "100/0/0", "0/50/50", "80/10", "a/b/c", "",
                    ],
                )
                .into()
            }),
        ),
        (
            "--rng",
            Box::new(|r| mostly(r, &["std", "torch", "dice"]).into()),
        ),
        (
            "--grad",
            Box::new(|r| pick(r, &["counts", "examples"]).into()),
        ),
        (
            "--loss",
            Box::new(|r| pick(r, &["fused", "explicit"]).into()),
        ),
        (
            "--optimizer",
            Box::new(|r| pick(r, &["sgd", "adamw"]).into()),
        ),
    ]
}

/// `train` on `input` into `work`: a third of its flags, `--eval-every` mostly with a split,
/// a few switches.
fn train_case(rng: &mut StdRng, input: &str, work: String, device: &str) -> Vec<String> {
    let mut args = vec!["train".to_string()];
    flag(&mut args, "--input", input.into());
    flag(&mut args, "--work-dir", work);
    flag(&mut args, "--device", device.into());
    some_of(rng, &mut args, &train_flags(), 3);
    // --eval-every mostly with a split, as it must be.
    let split = args.contains(&"--split".to_string());
    if rng.random_range(0..if split { 2 } else { 12 }) == 0 {
        let every = count(rng, 10);
        flag(&mut args, "--eval-every", every);
    }
    if !args.contains(&"--steps".to_string()) {
        flag(&mut args, "--steps", "5".into()); // not the default 100: keep cases short
    }
    for switch in ["--resume", "--one-hot", "--json", "--quiet"] {
        if rng.random_range(0..5) == 0 {
            args.push(switch.into());
        }
    }
    args
}

/// `sample` from `work`: half of its flags, prefixes mostly of the model's `alphabet`.
fn sample_case(rng: &mut StdRng, work: String, alphabet: Vec<char>) -> Vec<String> {
    let mut args = vec!["sample".to_string()];
    flag(&mut args, "--work-dir", work);
    let options: FlagValues = vec![
        ("--num", Box::new(|r| count(r, 2000))),
        ("--seed", Box::new(|r| count(r, 1 << 40))),
        ("--temperature", Box::new(|r| real(r, 0.05, 3.0))),
        ("--top-k", Box::new(|r| count(r, 12))),
        ("--prefix", Box::new(move |r| text(r, &alphabet))),
        (
            "--model",
            Box::new(|r| mostly(r, &["count", "neural", "other"]).into()),
        ),
        ("--rng", Box::new(|r| pick(r, &["std", "torch"]).into())),
    ];
    some_of(rng, &mut args, &options, 2);
    if rng.random_range(0..3) == 0 {
        args.push("--json".into());
    }
    args
}

/// `eval` of `work` on a few words (mostly at least one), sometimes with `input`.
fn eval_case(rng: &mut StdRng, input: &str, work: String, alphabet: &[char]) -> Vec<String> {
    let mut args = vec!["eval".to_string()];
    flag(&mut args, "--work-dir", work);
    for _ in 0..rng
        .random_range(0..4)
        .max(usize::from(rng.random_range(0..6) > 0))
    {
        let word = text(rng, alphabet);
        flag(&mut args, "--word", word);
    }
    if rng.random_range(0..3) == 0 {
        flag(&mut args, "--input", input.into());
    }
    if rng.random_range(0..3) == 0 {
        let model = pick(rng, &["count", "neural"]).to_string();
        flag(&mut args, "--model", model);
    }
    for switch in ["--pairs", "--json"] {
        if rng.random_range(0..3) == 0 {
            args.push(switch.into());
        }
    }
    args
}

/// `plot` of `work` to a file in `scratch`, of any extension, or none.
fn plot_case(rng: &mut StdRng, work: String, scratch: &Path) -> Vec<String> {
    let mut args = vec!["plot".to_string()];
    args.push(pick(rng, &["counts", "loss"]).into());
    flag(&mut args, "--work-dir", work);
    let name = pick(rng, &["p.png", "p.svg", "p.txt", "sub/p.png", ""]);
    flag(
        &mut args,
        "--output",
        scratch.join(name).to_str().unwrap().into(),
    );
    args
}

#[test]
fn random_command_lines_never_crash_and_never_damage_the_work_directory() {
    let cases: usize = std::env::var("MAKEMORE_CLI_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(500);
    let seed: u64 = std::env::var("MAKEMORE_CLI_FUZZ_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(14);
    let mut rng = StdRng::seed_from_u64(seed);
    let fixture = fixture(&mut rng);
    let start = Instant::now();
    let mut exits: BTreeMap<i32, usize> = BTreeMap::new();
    // Two workers, each with its own generator, so that the cases are the same every run.
    let seeds: Vec<u64> = (0..2).map(|_| rng.random()).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = seeds
            .iter()
            .enumerate()
            .map(|(worker, &seed)| {
                let fixture = &fixture;
                scope.spawn(move || {
                    let mut rng = StdRng::seed_from_u64(seed);
                    let mut exits: BTreeMap<i32, usize> = BTreeMap::new();
                    for i in (worker..cases).step_by(2) {
                        let code = one_case(&mut rng, fixture, i);
                        *exits.entry(code).or_default() += 1;
                    }
                    exits
                })
            })
            .collect();
        for handle in handles {
            for (code, n) in handle.join().unwrap() {
                *exits.entry(code).or_default() += n;
            }
        }
    });
    // The shared fixture was only read: each case used its own copy of a work directory.
    eprintln!(
        "{cases} command lines in {:.1} s; exit codes {exits:?}",
        start.elapsed().as_secs_f64()
    );
    assert!(
        exits.get(&0).copied().unwrap_or(0) * 3 >= cases,
        "most cases should get past the parser and succeed: {exits:?}"
    );
    drop(fixture.dir);
}

/// Runs case `i`; returns its exit code after checking it.
fn one_case(rng: &mut StdRng, fixture: &Fixture, i: usize) -> i32 {
    let scratch = tempfile::tempdir().unwrap();
    let work = scratch.path().join("work");
    // A copy of a trained work directory (for --resume, sample, eval, plot), or none at all.
    let trained = rng.random_range(0..fixture.inputs.len());
    if rng.random_range(0..8) > 0 {
        copy_dir(&fixture.inputs[trained].1, &work);
    }
    let args = case(rng, fixture, trained, &work, scratch.path());
    let before = snapshot(&work);
    let shown = format!("case {i}: makemore {}", shell_words(&args));
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out =
        run(&arg_refs).unwrap_or_else(|| panic!("{shown}: still running after {CASE_TIMEOUT:?}"));
    let err = common::stderr(&out);
    let code = out.status.code().unwrap_or_else(|| {
        panic!(
            "{shown}: killed by a signal ({:?}); stderr: {err}",
            out.status
        )
    });
    assert_ne!(code, 101, "{shown}: panicked: {err}");
    assert!(!err.contains("panicked"), "{shown}: {err}");
    if std::env::var_os("MAKEMORE_CLI_FUZZ_SHOW").is_some() {
        let first = err.lines().find(|l| l.starts_with("error:")).unwrap_or("");
        eprintln!("{code} {shown}\n    {first}");
    }
    if code != 0 {
        assert!(
            err.lines().any(|l| l.starts_with("error:")),
            "{shown}: exit code {code} without an error line: {err:?}"
        );
    }
    let after = snapshot(&work);
    if code != 0 || args[0] != "train" {
        // Nothing but pictures (only at --output, in the scratch directory) is written by the
        // other commands, and a failed train writes nothing.
        assert_eq!(
            before.keys().collect::<Vec<_>>(),
            after.keys().collect::<Vec<_>>(),
            "{shown}: files added or removed: {err}"
        );
        assert!(
            before == after,
            "{shown}: a file of the work directory changed: {err}"
        );
    } else {
        // A run that succeeded leaves a model and a log that read back together.
        makemore::checkpoint::Checkpoint::load(&work)
            .unwrap_or_else(|e| panic!("{shown}: the saved model does not load: {e}"));
        makemore::checkpoint::load_log(&work)
            .unwrap_or_else(|e| panic!("{shown}: the saved log does not load: {e}"));
    }
    code
}

/// The arguments as a shell would need them, to rerun a failing case by hand.
fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

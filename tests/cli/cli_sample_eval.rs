//! `sample` and `eval` on a saved run, as a user calls them.

use crate::common;

use std::path::PathBuf;
use std::sync::OnceLock;

use common::{json_lines, ok_stdout, one_line_error};

/// One small run on the built-in names (CPU, 5 steps) shared by the tests of this file, and
/// one with zero smoothing.
fn trained(smoothing: &str) -> String {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().unwrap());
    let work: PathBuf = dir.path().join(format!("smoothing-{smoothing}"));
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !work.join("model.safetensors").exists() {
        ok_stdout(&[
            "train",
            "--device",
            "cpu",
            "--steps",
            "5",
            "--samples",
            "0",
            "--smoothing",
            smoothing,
            "--work-dir",
            work.to_str().unwrap(),
        ]);
    }
    work.to_str().unwrap().to_string()
}

#[test]
fn eval_scores_andrejq_pair_by_pair() {
    let work = trained("1");
    let text = ok_stdout(&["eval", "--word", "andrejq", "--work-dir", &work]);
    let pairs: Vec<(&str, f64, f64)> = text
        .lines()
        .filter_map(|l| {
            let (pair, rest) = l.split_once(": ")?;
            let mut numbers = rest.split_whitespace().map(|x| x.parse::<f64>().ok());
            Some((pair, numbers.next()??, numbers.next()??))
        })
        .collect();
    let names: Vec<&str> = pairs.iter().map(|p| p.0).collect();
    assert_eq!(
        names,
        [".a", "an", "nd", "dr", "re", "ej", "jq", "q."],
        "{text}"
    );
    assert!(pairs.iter().all(|&(_, p, _)| p > 0.0 && p < 1.0), "{text}");
    let total = json_lines(&["eval", "--word", "andrejq", "--work-dir", &work, "--json"]);
    for pair in &total[..8] {
        let (p, log_p) = (
            pair["prob"].as_f64().unwrap(),
            pair["logprob"].as_f64().unwrap(),
        );
        assert!((p.ln() - log_p).abs() < 1e-12, "{pair}");
    }
    let last = total.last().unwrap();
    assert_eq!(last["pairs"], 8);
    let sum: f64 = total[..8]
        .iter()
        .map(|l| l["logprob"].as_f64().unwrap())
        .sum();
    let ll = last["log_likelihood"].as_f64().unwrap();
    assert!((sum - ll).abs() < 1e-9, "{sum} vs {ll}");
    assert!((last["mean_nll"].as_f64().unwrap() + ll / 8.0).abs() < 1e-12);
    // Smoothed counts of the built-in names (docs/work-dir.md: "log likelihood -27.8238").
    assert!((ll - -27.823791).abs() < 1e-5, "{ll}");
}

#[test]
fn an_impossible_pair_is_infinite_and_named() {
    let work = trained("0");
    let text = ok_stdout(&["eval", "--word", "andrejq", "--work-dir", &work]);
    assert!(text.contains("jq: 0.0000 -inf"), "{text}");
    assert!(text.contains("log likelihood -inf"), "{text}");
    assert!(text.contains("probability 0 to jq"), "{text}");
    let json = json_lines(&["eval", "--word", "andrejq", "--work-dir", &work, "--json"]);
    assert_eq!(
        json.last().unwrap()["impossible_pairs"],
        serde_json::json!(["jq"])
    );
    assert!(json.last().unwrap()["nll"].is_null());
}

#[test]
fn unknown_characters_are_named_in_one_line() {
    let work = trained("1");
    let error = one_line_error(&[
        "eval",
        "--word",
        "zoë",
        "--word",
        "andré",
        "--work-dir",
        &work,
    ]);
    assert!(error.contains("'é', 'ë'"), "{error}");
    let error = one_line_error(&["sample", "--prefix", "ü", "--work-dir", &work]);
    assert!(error.contains("'ü'"), "{error}");
}

#[test]
fn a_file_is_scored_as_a_whole() {
    let work = trained("1");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("two.txt");
    std::fs::write(&file, "emma\nava\n").unwrap();
    let text = ok_stdout(&[
        "eval",
        "--input",
        file.to_str().unwrap(),
        "--work-dir",
        &work,
    ]);
    assert!(text.contains("2 words, 9 pairs"), "{text}");
    assert!(
        !text.contains(".e:"),
        "pairs of a file only with --pairs: {text}"
    );
    let text = ok_stdout(&[
        "eval",
        "--input",
        file.to_str().unwrap(),
        "--pairs",
        "--work-dir",
        &work,
    ]);
    assert!(text.contains(".e:"), "{text}");
}

#[test]
fn sampling_options_shape_the_names() {
    let work = trained("1");
    let sample = |extra: &[&str]| {
        let mut args = vec!["sample", "--work-dir", &work, "--json", "--num", "12"];
        args.extend(extra);
        json_lines(&args)[0].clone()
    };
    let greedy = sample(&["--top-k", "1", "--model", "count"]);
    let names = greedy["names"].as_array().unwrap();
    assert!(
        names.iter().all(|n| n == &names[0]),
        "top-k 1 is greedy: {greedy}"
    );
    let prefixed = sample(&["--prefix", "ka", "--temperature", "0.8"]);
    assert!(prefixed["names"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n.as_str().unwrap().starts_with("ka")));
    assert_ne!(
        sample(&["--seed", "1"])["names"],
        sample(&["--seed", "2"])["names"]
    );
    let text = ok_stdout(&["sample", "--work-dir", &work, "--model", "count"]);
    assert!(
        text.contains("in the training data (the built-in names)"),
        "{text}"
    );
    assert!(text.contains("new:"), "{text}");
}

#[test]
fn every_command_has_a_worked_example_in_its_help() {
    for command in [
        &[][..],
        &["train"],
        &["sample"],
        &["eval"],
        &["plot"],
        &["plot", "counts"],
        &["plot", "loss"],
        &["adapters"],
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        let help = ok_stdout(&args);
        assert!(help.contains("Example"), "{command:?}:\n{help}");
        assert!(help.contains("makemore "), "{command:?}:\n{help}");
    }
}

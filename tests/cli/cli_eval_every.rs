//! Held-out evaluation while training: `--split` with `--eval-every`, the kept weights, the
//! log's dev losses, and `sample` sorting names by part.

use crate::common;

use common::{json_lines, one_line_error};

#[test]
fn dev_loss_every_n_steps_keeps_the_lowest() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("run");
    let work = work.to_str().unwrap();
    let lines = json_lines(&[
        "train",
        "--split",
        "80/10/10",
        "--steps",
        "12",
        "--eval-every",
        "5",
        "--samples",
        "0",
        "--work-dir",
        work,
        "--json",
    ]);
    let dev: Vec<&serde_json::Value> = lines.iter().filter(|l| l["event"] == "dev_loss").collect();
    let steps: Vec<u64> = dev.iter().map(|l| l["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, [5, 10, 12], "after every 5 steps and after the last");
    // The loss falls with lr 50 this early, so each evaluation is the lowest so far.
    assert!(dev.iter().all(|l| l["best"] == true), "{dev:?}");
    let summary = lines.last().unwrap();
    assert_eq!(summary["kept_step"], 12);

    let log = std::fs::read_to_string(format!("{work}/log.jsonl")).unwrap();
    let with_dev: Vec<u64> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l.get("dev_loss").is_some())
        .map(|l| l["step"].as_u64().unwrap())
        .collect();
    assert_eq!(with_dev, [5, 10, 12]);

    let sample = json_lines(&["sample", "--num", "40", "--work-dir", work, "--json"]);
    let s = &sample[0];
    let count = |k: &str| s[k].as_array().unwrap().len();
    assert_eq!(
        count("in_training_data") + count("in_dev") + count("in_test") + count("new"),
        40
    );
}

#[test]
fn eval_every_needs_a_split() {
    let error = one_line_error(&["train", "--eval-every", "5", "--steps", "1"]);
    assert!(error.contains("--eval-every needs --split"), "{error}");
}

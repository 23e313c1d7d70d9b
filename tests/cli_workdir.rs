//! The work directory as a user meets it: train saves both models and the loss log, `sample`
//! in a fresh process draws the same names, `--resume` continues, and bad checkpoints are one
//! clear line that leaves the user's files alone.

mod common;

use common::{json_lines, ok_stdout, one_line_error};

fn names_of(event: &serde_json::Value) -> Vec<String> {
    event["names"]
        .as_array()
        .expect("names")
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn train_save_load_sample_the_same_names_on_the_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("run");
    let work = work.to_str().unwrap();
    let lines = json_lines(&[
        "train",
        "--steps",
        "5",
        "--samples",
        "8",
        "--seed",
        "42",
        "--json",
        "--work-dir",
        work,
    ]);
    assert_eq!(lines[0]["event"], "device");
    common::assert_gpu_device(lines[0]["device"].as_str().unwrap());
    let summary = lines.last().unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["steps"], 5);
    assert!(summary["checkpoint"]
        .as_str()
        .unwrap()
        .ends_with("model.safetensors"));
    let trained: Vec<Vec<String>> = lines
        .iter()
        .filter(|l| l["event"] == "samples")
        .map(names_of)
        .collect();
    assert_eq!(trained.len(), 2);
    for (model, names) in ["count", "neural"].iter().zip(&trained) {
        let sampled = json_lines(&[
            "sample",
            "--work-dir",
            work,
            "--model",
            model,
            "--num",
            "8",
            "--seed",
            "42",
            "--json",
        ]);
        assert_eq!(&names_of(&sampled[0]), names, "{model} model");
        let known = sampled[0]["in_training_data"].as_array().unwrap().len();
        let new = sampled[0]["new"].as_array().unwrap().len();
        assert_eq!(known + new, 8);
    }
    let log = std::fs::read_to_string(dir.path().join("run/log.jsonl")).unwrap();
    let steps: Vec<u64> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(steps, [0, 1, 2, 3, 4]);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("run"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn resuming_continues_where_the_checkpoint_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let (straight, split) = (dir.path().join("straight"), dir.path().join("split"));
    let (straight, split) = (straight.to_str().unwrap(), split.to_str().unwrap());
    let run = |work: &str, steps: &str, resume: bool| {
        let mut args = vec![
            "train",
            "--device",
            "cpu",
            "--samples",
            "0",
            "--json",
            "--steps",
            steps,
            "--work-dir",
            work,
        ];
        if resume {
            args.push("--resume");
        }
        json_lines(&args).last().unwrap().clone()
    };
    let five = run(straight, "5", false);
    run(split, "3", false);
    let resumed = run(split, "2", true);
    assert_eq!(resumed["steps"], 5);
    assert_eq!(
        resumed["final_loss"], five["final_loss"],
        "3 + 2 steps give the weights of 5"
    );
    let log = std::fs::read_to_string(dir.path().join("split/log.jsonl")).unwrap();
    let straight_log = std::fs::read_to_string(dir.path().join("straight/log.jsonl")).unwrap();
    assert_eq!(log, straight_log, "the log runs on across the resume");
    let text = ok_stdout(&[
        "train",
        "--device",
        "cpu",
        "--samples",
        "0",
        "--steps",
        "1",
        "--work-dir",
        split,
        "--resume",
        "--quiet",
    ]);
    assert!(text.contains("resumed after step 4"), "{text}");
    assert!(text.contains("step     5  loss"), "{text}");
}

#[test]
fn resuming_on_other_words_is_refused_and_keeps_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let abc = dir.path().join("abc.txt");
    std::fs::write(&abc, "abc\ncab\n").unwrap();
    let xyz = dir.path().join("xyz.txt");
    std::fs::write(&xyz, "xyz\n").unwrap();
    let work = dir.path().join("run");
    let work_str = work.to_str().unwrap();
    ok_stdout(&[
        "train",
        "--device",
        "cpu",
        "--steps",
        "2",
        "--input",
        abc.to_str().unwrap(),
        "--work-dir",
        work_str,
    ]);
    let before = std::fs::read(work.join("model.safetensors")).unwrap();
    let error = one_line_error(&[
        "train",
        "--device",
        "cpu",
        "--steps",
        "2",
        "--input",
        xyz.to_str().unwrap(),
        "--work-dir",
        work_str,
        "--resume",
    ]);
    assert!(error.contains("vocabulary of 4 symbols (.abc)"), "{error}");
    assert!(error.contains("(.xyz)"), "{error}");
    assert_eq!(
        std::fs::read(work.join("model.safetensors")).unwrap(),
        before
    );
    // Without --input, a resume goes on with the words the checkpoint was trained on.
    let text = ok_stdout(&[
        "train",
        "--device",
        "cpu",
        "--steps",
        "1",
        "--work-dir",
        work_str,
        "--resume",
    ]);
    assert!(text.contains("abc.txt"), "{text}");
}

#[test]
fn a_bad_checkpoint_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("run");
    let work_str = work.to_str().unwrap();
    let missing = one_line_error(&["sample", "--work-dir", work_str]);
    assert!(missing.contains("no checkpoint in"), "{missing}");

    let words = dir.path().join("w.txt");
    std::fs::write(&words, "ab\nba\n").unwrap();
    ok_stdout(&[
        "train",
        "--device",
        "cpu",
        "--steps",
        "1",
        "--input",
        words.to_str().unwrap(),
        "--work-dir",
        work_str,
    ]);
    let model = work.join("model.safetensors");
    let good = std::fs::read(&model).unwrap();
    for (what, bytes) in [
        ("truncated", good[..good.len() / 2].to_vec()),
        ("text", b"hello, not a model\n".to_vec()),
        ("empty", Vec::new()),
    ] {
        std::fs::write(&model, &bytes).unwrap();
        for command in ["sample", "eval"] {
            let mut args = vec![command, "--work-dir", work_str];
            if command == "eval" {
                args.extend(["--word", "ab"]);
            }
            let error = one_line_error(&args);
            assert!(
                error.contains("is not a safetensors file"),
                "{what} {command}: {error}"
            );
        }
    }
}

#[test]
fn a_run_stopped_half_way_leaves_the_previous_checkpoint_whole() {
    let dir = tempfile::tempdir().unwrap();
    let words = dir.path().join("w.txt");
    std::fs::write(&words, "anna\nbob\n").unwrap();
    let work = dir.path().join("run");
    let (words, work_str) = (words.to_str().unwrap(), work.to_str().unwrap());
    ok_stdout(&[
        "train",
        "--device",
        "cpu",
        "--steps",
        "1",
        "--input",
        words,
        "--work-dir",
        work_str,
    ]);
    let before = std::fs::read(work.join("model.safetensors")).unwrap();
    let log_before = std::fs::read(work.join("log.jsonl")).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_makemore"))
        .args([
            "train",
            "--device",
            "cpu",
            "--steps",
            "100000000",
            "--input",
            words,
            "--work-dir",
            work_str,
            "--quiet",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        std::fs::read(work.join("model.safetensors")).unwrap(),
        before
    );
    assert_eq!(std::fs::read(work.join("log.jsonl")).unwrap(), log_before);
}

//! The work directory as a user meets it: train saves both models and the loss log, `sample`
//! in a fresh process draws the same names, `--resume` continues, and bad checkpoints are one
//! clear line that leaves the user's files alone.

use crate::common;

use common::{json_lines, ok_stdout, one_line_error};

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
        .map(common::names)
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
        assert_eq!(&common::names(&sampled[0]), names, "{model} model");
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

/// Starts `train` with every file of the work directory pausing between its temporary write
/// and its rename, and kills it once `ready` says the run is at the point to test.
fn kill_while_saving(args: &[&str], ready: impl Fn() -> bool) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_makemore"))
        .args(args)
        .env("NODEVICE_SELECT", "1")
        .env("MAKEMORE_TEST_PAUSE_BEFORE_RENAME_MS", "1500")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !ready() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before the kill point"
        );
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "the kill point never came"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// A temporary file of the work directory whose name starts with `prefix`, if any.
fn temp_file(dir: &std::path::Path, prefix: &str) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        name.starts_with(prefix) && name.ends_with(".tmp")
    })
}

/// A work directory trained 3 steps on a few words, the run that the kills interrupt.
struct KilledRuns {
    dir: tempfile::TempDir,
    words: String,
    work: std::path::PathBuf,
    model: std::path::PathBuf,
    log: std::path::PathBuf,
}

impl KilledRuns {
    fn new() -> KilledRuns {
        let dir = tempfile::tempdir().unwrap();
        let words = dir.path().join("w.txt");
        std::fs::write(&words, "anna\nbob\ncarol\n").unwrap();
        let work = dir.path().join("run");
        let runs = KilledRuns {
            words: words.to_str().unwrap().to_string(),
            model: work.join("model.safetensors"),
            log: work.join("log.jsonl"),
            work,
            dir,
        };
        run(&runs.train(runs.work_str(), "3", &[]));
        runs
    }

    fn work_str(&self) -> &str {
        self.work.to_str().unwrap()
    }

    /// `train` on the words into `work` (quiet, on the CPU), with `extra` flags.
    fn train(&self, work: &str, steps: &str, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "train",
            "--device",
            "cpu",
            "--samples",
            "0",
            "--quiet",
            "--input",
            &self.words,
            "--work-dir",
            work,
            "--steps",
            steps,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// Killed while the log is written (before its rename): both files as they were.
    fn killed_while_the_log_is_written(&self) {
        let (model_before, log_before) = (read(&self.model), read(&self.log));
        let resume = self.train(self.work_str(), "2", &["--resume"]);
        kill_while_saving(&as_strs(&resume), || temp_file(&self.work, ".log.jsonl."));
        assert_eq!(read(&self.model), model_before);
        assert_eq!(read(&self.log), log_before);
    }

    /// Killed between the two renames: the new log is in place, the model is the old one.
    /// The log's lines past the model's are left out: the resume has no gap, and gives the
    /// log and loss of five straight steps.
    fn killed_between_the_renames(&self) {
        let (model_before, log_before) = (read(&self.model), read(&self.log));
        let resume = self.train(self.work_str(), "2", &["--resume"]);
        kill_while_saving(&as_strs(&resume), || {
            read(&self.log) != log_before && temp_file(&self.work, ".model.safetensors.")
        });
        assert_eq!(
            read(&self.model),
            model_before,
            "the previous checkpoint survives"
        );
        assert_eq!(
            String::from_utf8(read(&self.log)).unwrap().lines().count(),
            5
        );
        run(&resume);
        let straight = self.dir.path().join("straight");
        run(&self.train(straight.to_str().unwrap(), "5", &[]));
        assert_eq!(read(&self.log), read(&straight.join("log.jsonl")));
        let loss = |work: &std::path::Path| {
            let out = ok_stdout(&[
                "plot",
                "loss",
                "--work-dir",
                work.to_str().unwrap(),
                "--json",
            ]);
            assert!(out.contains("\"plot\""), "{out}");
            makemore::checkpoint::load_log(work).unwrap()
        };
        assert_eq!(loss(&self.work), loss(&straight));
    }

    /// A new run (another seed) killed between the renames: its log is not the model's,
    /// which every reader says in one line; a fresh run puts things right.
    fn another_run_killed_between_the_renames(&self) {
        let (model_before, log_before) = (read(&self.model), read(&self.log));
        let other = self.train(self.work_str(), "2", &["--seed", "7"]);
        kill_while_saving(&as_strs(&other), || {
            // (The killed runs above left temporary files: wait for the new log.)
            read(&self.log) != log_before && temp_file(&self.work, ".model.safetensors.")
        });
        assert_eq!(read(&self.model), model_before);
        let error = one_line_error(&["plot", "loss", "--work-dir", self.work_str()]);
        assert!(error.contains("does not hold the 5 lines"), "{error}");
        let error = one_line_error(&as_strs(&self.train(self.work_str(), "1", &["--resume"])));
        assert!(error.contains("does not hold the 5 lines"), "{error}");
        assert_eq!(
            read(&self.model),
            model_before,
            "a refused resume writes nothing"
        );
        run(&other);
        assert_eq!(makemore::checkpoint::load_log(&self.work).unwrap().len(), 2);
    }
}

fn run(args: &[String]) {
    ok_stdout(&as_strs(args));
}

fn read(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn a_run_killed_while_saving_leaves_a_consistent_work_directory() {
    let runs = KilledRuns::new();
    runs.killed_while_the_log_is_written();
    runs.killed_between_the_renames();
    runs.another_run_killed_between_the_renames();
}

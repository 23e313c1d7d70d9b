//! The exercises' flags and the `sweep` command as a user runs them: output, JSON, exit codes
//! and one-line errors.

use crate::common;

use std::process::Output;

use common::{json_of, makemore, random_words, stdout, write_words};

/// The one line of stderr that starts with `error:` (Mesa may add lines of its own).
fn error_lines(o: &Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter(|l| l.starts_with("error:") && !l.contains("XDG_RUNTIME_DIR"))
        .map(str::to_string)
        .collect()
}

#[test]
fn too_long_a_context_is_one_line_naming_the_largest_that_fits() {
    for device in ["gpu", "cpu"] {
        let out = makemore(&["train", "--context", "5", "--device", device]);
        assert_eq!(out.status.code(), Some(1));
        let errors = error_lines(&out);
        assert_eq!(errors.len(), 1, "{errors:?}");
        let e = &errors[0];
        assert!(e.contains("context 5 needs a 27^5 x 27 table"), "{e}");
        assert!(e.contains("the largest context that fits is 4"), "{e}");
    }
}

#[test]
fn bad_splits_and_strengths_are_one_line_errors() {
    for args in [
        &["train", "--split", "80/10"][..],
        &["train", "--split", "80/30/-10"],
        &["sweep", "--split", "90/10/5"],
        &["sweep", "--split", "100/0/0"],
        &["sweep", "--strengths", "0,abc"],
    ] {
        let out = makemore(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(
            error_lines(&out).len(),
            1,
            "{args:?}: {:?}",
            error_lines(&out)
        );
    }
}

#[test]
fn train_with_a_split_reports_every_part() {
    let out = makemore(&[
        "train",
        "--split",
        "80/10/10",
        "--steps",
        "3",
        "--samples",
        "0",
        "--json",
        "--device",
        "cpu",
    ]);
    assert!(out.status.success());
    let lines = json_of(&out);
    let split = lines.iter().find(|l| l["event"] == "split").expect("split");
    assert_eq!(split["train_words"], 25_805);
    let evaluation = lines.iter().find(|l| l["event"] == "evaluation").unwrap();
    for model in ["count_nll", "neural_nll"] {
        for part in ["train", "dev", "test"] {
            let loss = evaluation[model][part].as_f64().unwrap();
            assert!(loss > 2.0 && loss < 4.0, "{model} {part}: {loss}");
        }
    }
    // Without smoothing a pair unseen in train makes dev infinite: null in JSON, inf in text.
    let dir = tempfile::tempdir().unwrap();
    let words = dir.path().join("split.txt");
    write_words(&words, &random_words(3, 30, 300), false);
    let args = [
        "train",
        "--input",
        words.to_str().unwrap(),
        "--context",
        "2",
        "--smoothing",
        "0",
        "--split",
        "80/10/10",
        "--steps",
        "1",
        "--samples",
        "0",
    ];
    let out = makemore(&args);
    assert!(out.status.success());
    let text = stdout(&out);
    let count_row = text
        .lines()
        .find(|l| l.trim_start().starts_with("count    "))
        .unwrap();
    assert!(count_row.contains("inf"), "{text}");
    assert!(!text.contains("NaN"));
}

#[test]
fn sweep_prints_the_table_and_scores_test_once() {
    let out = makemore(&["sweep", "--strengths", "0,0.5,100"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("  <- best on dev"), "{text}");
    let zero_row = text
        .lines()
        .find(|l| l.trim_start().starts_with("0 "))
        .unwrap();
    assert!(zero_row.trim_end().ends_with("inf"), "{text}");
    assert!(text.contains("best smoothing on dev: 0.5"), "{text}");
    assert_eq!(text.matches("test, scored once").count(), 1);

    let out = makemore(&[
        "sweep",
        "--model",
        "neural",
        "--strengths",
        "0,1",
        "--steps",
        "2",
        "--device",
        "cpu",
        "--json",
    ]);
    assert!(out.status.success());
    let line = &json_of(&out)[0];
    assert_eq!(line["model"], "neural");
    assert_eq!(line["rows"].as_array().unwrap().len(), 2);
    assert!(line["test"].as_f64().unwrap() > 2.0);
}

#[test]
fn explicit_loss_overflow_is_reported_not_printed() {
    let args = ["train", "--lr", "10000", "--steps", "5", "--samples", "0"];
    let fused = makemore(&args);
    assert!(fused.status.success());
    assert!(!stdout(&fused).contains("NaN") && !stdout(&fused).contains("inf"));
    let explicit = makemore(&[&args[..], &["--loss", "explicit"]].concat());
    assert_eq!(explicit.status.code(), Some(1));
    let errors = error_lines(&explicit);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("--loss fused"), "{}", errors[0]);
    assert!(!stdout(&explicit).contains("NaN"));
}

#[test]
fn one_hot_and_explicit_give_the_same_numbers_on_ordinary_data() {
    let dir = tempfile::tempdir().unwrap();
    let words = dir.path().join("one-hot.txt");
    write_words(&words, &random_words(4, 30, 200), false);
    let run = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--input",
            words.to_str().unwrap(),
            "--steps",
            "5",
            "--samples",
            "0",
            "--json",
            "--lr",
            "5",
        ];
        args.extend_from_slice(extra);
        let out = makemore(&args);
        assert!(out.status.success(), "{extra:?}");
        let lines = json_of(&out);
        let neural = lines.iter().find(|l| l["event"] == "neural_model").unwrap();
        neural["final_loss"].as_f64().unwrap()
    };
    let select = run(&[]);
    for extra in [
        &["--one-hot"][..],
        &["--loss", "explicit"],
        &["--device", "cpu", "--one-hot"],
    ] {
        let other = run(extra);
        assert!(
            (other - select).abs() <= 1e-5 * select,
            "{extra:?}: {other} vs {select}"
        );
    }
}

#[test]
fn adamw_minibatches_use_makemore_defaults() {
    let out = makemore(&[
        "train",
        "--optimizer",
        "adamw",
        "--batch-size",
        "32",
        "--steps",
        "3",
        "--samples",
        "0",
        "--json",
    ]);
    assert!(out.status.success());
    let lines = json_of(&out);
    let neural = lines.iter().find(|l| l["event"] == "neural_model").unwrap();
    assert!((neural["lr"].as_f64().unwrap() - 5e-4).abs() < 1e-9);
    assert_eq!(neural["losses"].as_array().unwrap().len(), 3);
}

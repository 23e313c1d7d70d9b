//! The binary as a user runs it: output, JSON lines, exit codes and error messages.

use crate::common;

use std::process::Output;

use common::{
    assert_gpu_device, event, json_of, makemore, makemore_on, stderr, stdout, test_backends,
};

#[test]
fn train_prints_the_four_stages_in_order() {
    let out = makemore(&["train", "--steps", "3", "--samples", "4"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let positions: Vec<usize> = [
        "device",
        "data",
        "vocab",
        "examples",
        "count model",
        "mean NLL",
        "neural model",
        "final",
        "samples from the count model",
        "samples from the neural model",
        "done in",
    ]
    .iter()
    .map(|needle| {
        text.find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{text}"))
    })
    .collect();
    assert!(
        positions.windows(2).all(|p| p[0] < p[1]),
        "stages out of order:\n{text}"
    );
    assert!(text.contains("32,257 words"), "{text}");
}

#[test]
fn json_lines_end_with_a_summary() {
    let out = makemore(&[
        "train",
        "--steps",
        "5",
        "--samples",
        "3",
        "--json",
        "--device",
        "cpu",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_of(&out);
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        [
            "device",
            "data",
            "count_model",
            "neural_model",
            "samples",
            "samples",
            "summary"
        ]
    );
    let summary = &lines[6];
    let count_nll = summary["count_nll"].as_f64().unwrap();
    // The built-in names' figures on the CPU reference (README: "mean NLL 2.454951").
    assert!((count_nll - 2.454951).abs() < 1e-6, "{summary}");
    let final_loss = summary["final_loss"].as_f64().unwrap();
    assert!((final_loss - 2.826797).abs() < 1e-6, "{summary}");
    assert_eq!(lines[3]["losses"].as_array().unwrap().len(), 5);
    assert_eq!(lines[4]["names"].as_array().unwrap().len(), 3);
    assert_eq!(summary["final_loss"], lines[3]["final_loss"]);
}

#[test]
fn same_seed_same_output() {
    let args = ["train", "--steps", "4", "--samples", "5", "--json"];
    let strip_time = |o: &Output| {
        stdout(o)
            .lines()
            .filter(|l| !l.contains("\"summary\""))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let (a, b) = (makemore(&args), makemore(&args));
    assert!(a.status.success() && b.status.success());
    assert_eq!(strip_time(&a), strip_time(&b));
    let other = makemore(&[
        "train",
        "--steps",
        "4",
        "--samples",
        "5",
        "--json",
        "--seed",
        "7",
    ]);
    assert_ne!(
        strip_time(&a),
        strip_time(&other),
        "another seed gives other samples"
    );
}

#[test]
fn gpu_and_cpu_agree_from_the_command_line() {
    let run = |backend: &Option<String>, device: &str| {
        let args = [
            "train",
            "--steps",
            "10",
            "--samples",
            "0",
            "--json",
            "--device",
            device,
        ];
        let out = makemore_on(backend, &args);
        assert!(out.status.success(), "{}", stderr(&out));
        let lines = json_of(&out);
        let device = lines[0]["device"]
            .as_str()
            .expect("a device line")
            .to_string();
        (device, lines.last().unwrap().clone())
    };
    let (cpu_device, cpu) = run(&None, "cpu");
    assert!(cpu_device.contains("CPU reference"), "{cpu_device}");
    for backend in test_backends() {
        let (device, gpu) = run(&backend, "gpu");
        assert_gpu_device(&device);
        for field in ["count_nll", "final_loss"] {
            let (g, c) = (gpu[field].as_f64().unwrap(), cpu[field].as_f64().unwrap());
            assert!(
                (g - c).abs() <= 1e-5 * c,
                "{device}: {field}: GPU {g}, CPU {c}"
            );
        }
    }
}

#[test]
fn bad_input_is_one_line_and_a_nonzero_exit() {
    let dir = std::env::temp_dir().join(format!("makemore-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "\n  \n").unwrap();
    let dotted = dir.join("dotted.txt");
    std::fs::write(&dotted, "ann\nj.r\n").unwrap();
    let binary = dir.join("binary.txt");
    std::fs::write(&binary, b"ann\nb\xffb\n").unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["train", "--input", "/no/such/file"],
            "cannot read /no/such/file",
        ),
        (
            &["train", "--input", dir.to_str().unwrap()],
            "is a directory",
        ),
        (
            &["train", "--input", empty.to_str().unwrap()],
            "has no words",
        ),
        (&["train", "--input", dotted.to_str().unwrap()], "line 2"),
        (
            &["train", "--input", binary.to_str().unwrap()],
            "not valid UTF-8 (line 2",
        ),
    ];
    for (args, needle) in cases {
        let out = makemore(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(lines.len(), 1, "{args:?}: {err}");
        assert!(lines[0].contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    let out = makemore(&["train", "--smoothing=-1"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "clap rejects bad flags with its usage code"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `train --rng torch` on the lecture's names list (path in MAKEMORE_LECTURE_NAMES; ignored
/// without it): the count model's samples are the lecture's, which its loop prints with the
/// closing `.` that ours leave out; W is the lecture's, so the loss before and after one step
/// is too.
#[test]
#[ignore = "needs the lecture's names.txt: MAKEMORE_LECTURE_NAMES=PATH cargo test --release -- --include-ignored"]
fn torch_rng_prints_the_lectures_names() {
    let names_file = common::lecture_names_path();
    let out = makemore(&[
        "train",
        "--rng",
        "torch",
        "--seed",
        "2147483647",
        "--input",
        &names_file,
        "--samples",
        "5",
        "--steps",
        "1",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_of(&out);
    let names: Vec<String> = event(&lines, "samples", Some("count"))["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| format!("{}.", n.as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        [
            "mor.",
            "axx.",
            "minaymoryles.",
            "kondlaisah.",
            "anchshizarie."
        ]
    );
    let neural = event(&lines, "neural_model", None);
    let before = neural["losses"][0].as_f64().unwrap();
    let after = neural["final_loss"].as_f64().unwrap();
    assert!((before - 3.7686186).abs() <= 1e-6 * 3.7686186, "{before}");
    assert!((after - 3.3788068).abs() <= 1e-6 * 3.3788068, "{after}");
}

#[test]
fn adapters_lists_at_least_one() {
    let out = makemore(&["adapters", "--json"]);
    assert!(out.status.success());
    let first = stdout(&out)
        .lines()
        .next()
        .map(str::to_string)
        .unwrap_or_default();
    let adapter: serde_json::Value = serde_json::from_str(&first).expect("an adapter as JSON");
    assert!(adapter["backend"].is_string());
}

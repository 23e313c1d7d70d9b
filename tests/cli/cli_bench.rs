//! `makemore bench` and `train --grad` as a user runs them.

use crate::common;

use common::{json_of, makemore, makemore_on, test_backends};

#[test]
fn bench_times_every_stage_on_both_devices() {
    let out = makemore(&[
        "bench", "--data", "3000", "--reps", "2", "--names", "500", "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = json_of(&out);
    // The last line is the peak memory, where the system reports it (Linux does).
    let has_peak = lines
        .last()
        .is_some_and(|l| l.get("peak_memory_mib").is_some());
    assert!(
        has_peak || !cfg!(target_os = "linux"),
        "no peak memory line"
    );
    if has_peak {
        let peak = lines.pop().expect("a last line");
        assert!(peak["peak_memory_mib"].as_f64().unwrap() > 1.0, "{peak}");
    }
    let stages = [
        "encode",
        "upload",
        "count",
        "normalize",
        "nll",
        "step_examples",
        "step_counts",
        "steps_counts_1000",
        "sample",
    ];
    for stage in stages {
        let devices: Vec<&str> = lines
            .iter()
            .filter(|t| t["stage"] == stage)
            .map(|t| t["device"].as_str().unwrap())
            .collect();
        let expected: &[&str] = if stage == "encode" || stage == "sample" {
            &["host"]
        } else {
            &["gpu", "cpu"]
        };
        assert_eq!(devices, expected, "stage {stage}");
    }
    for t in &lines {
        let (min, median, max) = (
            t["min_ms"].as_f64().unwrap(),
            t["median_ms"].as_f64().unwrap(),
            t["max_ms"].as_f64().unwrap(),
        );
        assert!(0.0 < min && min <= median && median <= max, "{t}");
        assert_eq!(t["reps"], 2);
        assert_eq!(t["data"], "3000 pairs");
        if t["device"] == "gpu" {
            common::assert_gpu_device(t["adapter"].as_str().unwrap());
        }
    }
}

#[test]
fn bench_rejects_unknown_data_and_stages() {
    for args in [
        ["bench", "--data", "ten"],
        ["bench", "--stages", "warp"],
        ["bench", "--reps", "0"],
    ] {
        let out = makemore(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("error"), "{err}");
    }
}

#[test]
fn both_gradient_paths_give_the_same_losses() {
    let losses = |grad: &str| {
        let out = makemore(&[
            "train",
            "--steps",
            "10",
            "--samples",
            "1",
            "--json",
            "--grad",
            grad,
        ]);
        assert!(out.status.success());
        let lines = json_of(&out);
        assert_eq!(lines[0]["event"], "device");
        common::assert_gpu_device(lines[0]["device"].as_str().unwrap());
        let neural = lines
            .iter()
            .find(|l| l["event"] == "neural_model")
            .expect("a neural_model line")
            .clone();
        assert_eq!(neural["grad"], grad);
        neural["losses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect::<Vec<f64>>()
    };
    let (counts, examples) = (losses("counts"), losses("examples"));
    assert_eq!(counts.len(), 10);
    for (c, e) in counts.iter().zip(&examples) {
        assert!((c - e).abs() <= 1e-5 * e.abs(), "{c} vs {e}");
    }
    let out = makemore(&["train", "--grad", "sideways"]);
    assert_eq!(out.status.code(), Some(2));
}

/// `bench --kernels` on each GPU backend under test: a row per kernel with positive figures
/// (the fraction of the ceiling among them) where the adapter has timestamps, else a positive
/// wall time per operation.
#[test]
fn bench_kernels_reports_every_kernel_on_each_backend() {
    let kernels = [
        "count_pairs",
        "count_pairs_private",
        "normalize_rows",
        "nll_gather",
        "cross_entropy_fused",
        "cross_entropy_explicit",
        "cross_entropy_backward",
        "grad_rows",
        "one_hot_matmul",
        "one_hot_matmul_backward",
        "partial_sums",
        "loss_total",
        "sgd_step",
        "adamw_step",
        "count_descent",
        "softmax_rows",
    ];
    for (i, backend) in common::test_backends().into_iter().enumerate() {
        let args = ["bench", "--kernels", "--reps", "1", "--peak-gbps", "100"];
        let out = common::makemore_on(&backend, &[&args[..], &["--json"]].concat());
        assert!(out.status.success(), "{}", common::stderr(&out));
        let lines = json_of(&out);
        let head = &lines[0];
        assert!(head["adapter"].as_str().is_some(), "{head}");
        let timestamps = head["timestamps"].as_bool().expect("a timestamps field");
        let rows = &lines[1..];
        let positive = |row: &serde_json::Value, field: &str| {
            let x = row[field].as_f64();
            assert!(x.is_some_and(|x| x > 0.0), "{backend:?}: {field} in {row}");
        };
        for kernel in kernels {
            let of_kernel: Vec<&serde_json::Value> = if timestamps {
                rows.iter().filter(|r| r["kernel"] == kernel).collect()
            } else {
                rows.iter()
                    .filter(|r| r["kernels"].as_array().unwrap().iter().any(|k| k == kernel))
                    .collect()
            };
            assert!(!of_kernel.is_empty(), "{backend:?}: no row for {kernel}");
        }
        for row in rows {
            if !timestamps {
                positive(row, "wall_ms");
                continue;
            }
            positive(row, "gpu_ms");
            if row["kernel"] != "loss_total" {
                for field in [
                    "bytes_read",
                    "bytes_written",
                    "operations",
                    "gb_per_s",
                    "gop_per_s",
                    "fraction_of_peak",
                    "model_ms",
                    "fraction_of_ceiling",
                ] {
                    positive(row, field);
                }
                assert!(row["exps"].as_u64().is_some(), "{backend:?}: exps in {row}");
                let fraction = row["fraction_of_ceiling"].as_f64().unwrap();
                assert!(fraction.is_finite(), "{backend:?}: {row}");
                let bound = row["bound"].as_str().unwrap_or("");
                assert!(["memory", "exp", "dispatch"].contains(&bound), "{row}");
            }
        }
        // The ceilings the model uses, measured in the same run.
        for field in ["gb_per_s", "ns_per_exp", "us_per_dispatch"] {
            let x = head["ceilings"][field].as_f64().unwrap_or(f64::NAN);
            assert!(x.is_finite() && x > 0.0, "{backend:?}: {field} in {head}");
        }
        if i > 0 {
            continue;
        }
        // The human-readable table says whether the adapter has timestamps.
        let out = common::makemore_on(&backend, &args);
        let text = common::stdout(&out);
        assert!(text.contains("timestamps: "), "{text}");
        assert!(text.contains("count_descent"), "{text}");
        assert!(text.contains("ceiling") && text.contains("%"), "{text}");
    }
}

/// `bench --ceilings` measures every figure on each backend, each finite and positive.
#[test]
fn bench_ceilings_measures_every_figure_on_each_backend() {
    let names = [
        "copy_vec4",
        "copy_scalar",
        "load",
        "sum_tree",
        "sum_coarse",
        "exp",
        "dispatch",
        "submit",
    ];
    for backend in test_backends() {
        let out = makemore_on(&backend, &["bench", "--ceilings", "--json", "--reps", "2"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{backend:?}: {err}");
        let rows = json_of(&out);
        let found: Vec<&str> = rows
            .iter()
            .map(|r| r["measurement"].as_str().unwrap())
            .collect();
        assert_eq!(found, names, "{backend:?}");
        for r in &rows {
            for field in ["value", "median_ms"] {
                let x = r[field].as_f64().unwrap_or(f64::NAN);
                assert!(x.is_finite() && x > 0.0, "{backend:?}: {field} of {r}");
            }
            assert!(
                ["timestamps", "wall"].contains(&r["timing"].as_str().unwrap()),
                "{r}"
            );
            common::assert_gpu_device(r["adapter"].as_str().unwrap());
        }
    }
}

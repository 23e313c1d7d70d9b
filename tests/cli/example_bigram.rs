//! `examples/bigram.rs`, the lecture in one file, run in this process on the CPU reference and
//! on every GPU backend: it must tell the story `makemore train` tells on the built-in names,
//! on the same device. The same examples and count-model NLL (1e-12 relative), the loss before
//! every step and after the last (1e-5 relative, the tolerance of GPU against CPU losses), the
//! same names from both models; and the figures `train` prints in the README.

// The example's own file, compiled into this test: its `main` is the example's entry point
// and is not called here.
#[allow(dead_code)]
#[path = "../../examples/bigram.rs"]
mod bigram;
use crate::common;

use common::{assert_rel, event, gpus, json_lines, json_of, makemore_on, names, test_backends};
use makemore::{Backend, CpuBackend};
use serde_json::Value;

/// Runs the example's lecture on `device` and compares it with `train --json`'s events.
fn matches_train(device: &mut impl Backend, train: &[Value]) {
    let what = device.describe();
    let run = bigram::lecture(device).expect("the example runs");

    let data = event(train, "data", None);
    assert_eq!(
        run.examples as u64,
        data["examples"].as_u64().unwrap(),
        "{what}"
    );
    assert_eq!(
        run.vocab.to_string(),
        data["vocab"].as_str().unwrap(),
        "{what}"
    );
    let count = event(train, "count_model", None);
    assert_rel(
        "count NLL",
        run.count_nll,
        count["nll"].as_f64().unwrap(),
        1e-12,
    );

    let neural = event(train, "neural_model", None);
    let losses = neural["losses"].as_array().unwrap();
    let data_losses = neural["data_losses"].as_array().unwrap();
    assert_eq!(run.losses.len(), losses.len(), "{what}");
    for (k, loss) in run.losses.iter().enumerate() {
        assert_rel(
            &format!("loss {k}"),
            loss.total,
            losses[k].as_f64().unwrap(),
            1e-5,
        );
        assert_rel(
            &format!("data {k}"),
            loss.data,
            data_losses[k].as_f64().unwrap(),
            1e-5,
        );
    }
    let final_loss = neural["final_loss"].as_f64().unwrap();
    assert_rel("final loss", run.final_loss.total, final_loss, 1e-5);

    assert_eq!(
        run.count_names,
        names(event(train, "samples", Some("count"))),
        "{what}"
    );
    assert_eq!(
        run.neural_names,
        names(event(train, "samples", Some("neural"))),
        "{what}"
    );

    // The figures of "What `train` prints" in the README.
    assert_rel("README's count NLL", run.count_nll, 2.454951, 1e-6);
    assert_rel("README's first loss", run.losses[0].total, 3.659605, 1e-6);
    assert_rel("README's final loss", run.final_loss.total, 2.490572, 1e-6);
    assert_eq!(
        &run.count_names[..3],
        ["jatonionoha", "mica", "jesa"],
        "{what}"
    );
    assert_eq!(
        &run.neural_names[..3],
        ["jatoniplyah", "mid", "ainn"],
        "{what}"
    );
}

#[test]
fn the_example_on_the_cpu_prints_what_train_prints() {
    let train = json_lines(&["train", "--device", "cpu", "--json"]);
    matches_train(&mut CpuBackend, &train);
}

#[test]
fn the_example_on_every_gpu_backend_prints_what_train_prints() {
    for (mut gpu, backend) in gpus().into_iter().zip(test_backends()) {
        let out = makemore_on(&backend, &["train", "--json"]);
        assert!(out.status.success(), "train on {backend:?} failed");
        let train = json_of(&out);
        common::assert_gpu_device(event(&train, "device", None)["device"].as_str().unwrap());
        matches_train(&mut gpu, &train);
    }
}

//! `makemore lecture` against the saved outputs of the lecture's notebook
//! (karpathy/nn-zero-to-hero, lectures/makemore/makemore_part1_bigrams.ipynb): each value
//! below is quoted from the cell named beside it. The comparisons need the lecture's names
//! list (MAKEMORE_LECTURE_NAMES; .ci/run sets it); the structure test runs on the built-in
//! names on every device.

use crate::common;

use common::{
    assert_rel, json_of, lecture_names_path, makemore_with_env, one_line_error, stderr, stdout,
};
use serde_json::Value;

/// Cell [10]: `sorted(b.items(), key = lambda kv: -kv[1])`, all 627 bigrams.
const NOTEBOOK_BIGRAMS: &str = include_str!("data/notebook_bigrams.txt");

/// Cell [5]: `words[:10]`; [6] `len(words)`; [7] and [8] the shortest and longest.
const FIRST_WORDS: [&str; 10] = [
    "emma",
    "olivia",
    "ava",
    "isabella",
    "sophia",
    "charlotte",
    "mia",
    "amelia",
    "harper",
    "evelyn",
];

/// Cell [17]: `p = N[0].float(); p = p / p.sum()`.
const FIRST_ROW_PROBS: [f64; 27] = [
    0.0000, 0.1377, 0.0408, 0.0481, 0.0528, 0.0478, 0.0130, 0.0209, 0.0273, 0.0184, 0.0756, 0.0925,
    0.0491, 0.0792, 0.0358, 0.0123, 0.0161, 0.0029, 0.0512, 0.0642, 0.0408, 0.0024, 0.0117, 0.0096,
    0.0042, 0.0167, 0.0290,
];

/// Cell [20]: `torch.multinomial(p, num_samples=100, replacement=True, generator=g)`.
const DRAWS: [u64; 100] = [
    1, 1, 2, 0, 0, 2, 1, 1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 0, 2, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1,
    1, 1, 0, 1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0,
    0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 1, 0, 0, 2, 0, 1, 0,
    0, 1, 1, 1,
];

/// Cell [560]: the five examples of "emma" under the seeded W: the rounded output
/// probabilities (4 decimals), then the probability of the label, its log and the NLL as
/// printed (float32 values printed by Python with 17 digits).
struct NotebookExample {
    bigram: &'static str,
    input: u64,
    label: u64,
    probs: [f64; 27],
    prob: f64,
    log_likelihood: f64,
}

const EXAMPLES: [NotebookExample; 5] = [
    NotebookExample {
        bigram: ".e",
        input: 0,
        label: 5,
        probs: [
            0.0607, 0.0100, 0.0123, 0.0042, 0.0168, 0.0123, 0.0027, 0.0232, 0.0137, 0.0313, 0.0079,
            0.0278, 0.0091, 0.0082, 0.0500, 0.2378, 0.0603, 0.0025, 0.0249, 0.0055, 0.0339, 0.0109,
            0.0029, 0.0198, 0.0118, 0.1537, 0.1459,
        ],
        prob: 0.012286253273487091,
        log_likelihood: -4.3992743492126465,
    },
    NotebookExample {
        bigram: "em",
        input: 5,
        label: 13,
        probs: [
            0.0290, 0.0796, 0.0248, 0.0521, 0.1989, 0.0289, 0.0094, 0.0335, 0.0097, 0.0301, 0.0702,
            0.0228, 0.0115, 0.0181, 0.0108, 0.0315, 0.0291, 0.0045, 0.0916, 0.0215, 0.0486, 0.0300,
            0.0501, 0.0027, 0.0118, 0.0022, 0.0472,
        ],
        prob: 0.018050702288746834,
        log_likelihood: -4.014570713043213,
    },
    NotebookExample {
        bigram: "mm",
        input: 13,
        label: 13,
        probs: [
            0.0312, 0.0737, 0.0484, 0.0333, 0.0674, 0.0200, 0.0263, 0.0249, 0.1226, 0.0164, 0.0075,
            0.0789, 0.0131, 0.0267, 0.0147, 0.0112, 0.0585, 0.0121, 0.0650, 0.0058, 0.0208, 0.0078,
            0.0133, 0.0203, 0.1204, 0.0469, 0.0126,
        ],
        prob: 0.026691533625125885,
        log_likelihood: -3.623408794403076,
    },
    NotebookExample {
        bigram: "ma",
        input: 13,
        label: 1,
        probs: [
            0.0312, 0.0737, 0.0484, 0.0333, 0.0674, 0.0200, 0.0263, 0.0249, 0.1226, 0.0164, 0.0075,
            0.0789, 0.0131, 0.0267, 0.0147, 0.0112, 0.0585, 0.0121, 0.0650, 0.0058, 0.0208, 0.0078,
            0.0133, 0.0203, 0.1204, 0.0469, 0.0126,
        ],
        prob: 0.07367684692144394,
        log_likelihood: -2.6080667972564697,
    },
    NotebookExample {
        bigram: "a.",
        input: 1,
        label: 0,
        probs: [
            0.0150, 0.0086, 0.0396, 0.0100, 0.0606, 0.0308, 0.1084, 0.0131, 0.0125, 0.0048, 0.1024,
            0.0086, 0.0988, 0.0112, 0.0232, 0.0207, 0.0408, 0.0078, 0.0899, 0.0531, 0.0463, 0.0309,
            0.0051, 0.0329, 0.0654, 0.0503, 0.0091,
        ],
        prob: 0.0149775305762887,
        log_likelihood: -4.201204299926758,
    },
];

/// Cell [560]: "average negative log likelihood, i.e. loss =".
const FIVE_EXAMPLE_LOSS: f64 = 3.7693049907684326;
/// Cell [603]: `print(loss.item())`, after four updates `W.data += -0.1 * W.grad`.
const LOSS_AFTER_FOUR_UPDATES: f64 = 3.6891887187957764;
/// Cell [716]: the training cell's last printed loss.
const LAST_TRAINING_LOSS: f64 = 2.481828451156616;
/// Cell [164] (P = (N+1) normalized) and cell [725] (the trained net): the five names.
const COUNT_NAMES: [&str; 5] = [
    "mor.",
    "axx.",
    "minaymoryles.",
    "kondlaisah.",
    "anchshizarie.",
];
const NEURAL_NAMES: [&str; 5] = [
    "mor.",
    "axx.",
    "minaymoryles.",
    "kondlaisah.",
    "anchthizarie.",
];

/// A run of the command: its name, its environment and its --device.
type Run = (String, Vec<(&'static str, String)>, &'static str);

/// The device runs to check: the CPU, then the GPU on each of MAKEMORE_TEST_BACKENDS.
fn devices() -> Vec<Run> {
    let mut runs = vec![("cpu".to_string(), Vec::new(), "cpu")];
    match std::env::var("MAKEMORE_TEST_BACKENDS") {
        Ok(list) if !list.is_empty() => {
            for name in list.split(',') {
                runs.push((
                    format!("gpu ({name})"),
                    vec![("WGPU_BACKEND", name.to_string())],
                    "gpu",
                ));
            }
        }
        _ => runs.push(("gpu".to_string(), Vec::new(), "gpu")),
    }
    runs
}

/// The command's JSON lines, the header first, then one object per chapter.
fn lecture_json(args: &[&str], env: &[(&str, String)]) -> Vec<Value> {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = makemore_with_env(args, &env);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    json_of(&out)
}

fn chapter(lines: &[Value], number: u64) -> &Value {
    lines
        .iter()
        .find(|l| l["chapter"] == number)
        .unwrap_or_else(|| panic!("no chapter {number}"))
}

fn f64s(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

/// `ours` rounded to the notebook's `decimals` is the notebook's value.
fn assert_rounds_to(what: &str, ours: f64, notebook: f64, decimals: i32) {
    let scale = 10f64.powi(decimals);
    assert_eq!(
        (ours * scale).round() / scale,
        notebook,
        "{what}: ours {ours}, the notebook {notebook}"
    );
}

#[test]
fn lecture_on_builtin_names_runs_on_every_device() {
    for (device, env, flag) in devices() {
        let lines = lecture_json(&["lecture", "--json", "--device", flag], &env);
        assert_eq!(lines.len(), 25, "{device}: a header and 24 chapters");
        let on = lines[0]["device"].as_str().unwrap_or_default();
        assert_eq!(on.starts_with("CPU"), flag == "cpu", "{device} ran on {on}");
        let note = lines[0]["differs_from_video"].as_str().unwrap_or_default();
        assert!(note.contains("differs from the video"), "{device}: {note}");
        for (i, line) in lines[1..].iter().enumerate() {
            assert_eq!(line["chapter"], i as u64 + 1, "{device}");
            assert!(line["title"].is_string() && line["start"].is_string());
        }
        assert_eq!(chapter(&lines, 8)["draws"].as_array().unwrap().len(), 100);
        let probs = f64s(&chapter(&lines, 8)["first_row_probs"]);
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-5, "{device}");
        for (key, n) in [("count_names", 9), ("neural_names", 23)] {
            let names = chapter(&lines, n)[key].as_array().unwrap();
            assert_eq!(names.len(), 5, "{device}: {key}");
            assert!(names.iter().all(|n| n.as_str().unwrap().ends_with('.')));
        }
        let losses = f64s(&chapter(&lines, 20)["full_losses"]);
        assert!(losses.windows(2).all(|w| w[1] < w[0]), "{device}: losses");
        let walk = chapter(&lines, 17)["examples"].as_array().unwrap();
        let first_word_loss = f64s(&chapter(&lines, 19)["losses"])[0];
        let mean: f64 =
            walk.iter().map(|e| e["nll"].as_f64().unwrap()).sum::<f64>() / walk.len() as f64;
        assert_rel(&device, mean, first_word_loss, 1e-5);
    }
    // Text: the same note, and one chapter picked by a word of its title.
    let out = makemore_with_env(&["lecture", "--device", "cpu", "--chapter", "softmax"], &[]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains("differs from the video"), "{text}");
    assert!(text.contains("[16] 01:18:46 transforming neural net outputs into probabilities"));
    assert!(!text.contains("[15]") && !text.contains("[17]"), "{text}");
}

#[test]
fn lecture_rejects_an_unknown_chapter() {
    for chapter in ["25", "transformer", ""] {
        let line = one_line_error(&["lecture", "--device", "cpu", "--chapter", chapter]);
        assert!(line.contains("chapter"), "{line}");
    }
}

/// Every figure the notebook printed and that a run can reproduce, compared on one device.
fn notebook_figures(device: &str, lines: &[Value]) {
    assert!(lines[0]["differs_from_video"].is_null(), "{device}");
    reading_and_counting(device, lines);
    sampling_from_the_counts(device, lines);
    the_first_word_through_the_net(device, lines);
    the_five_example_walk(device, lines);
    training_on_every_word(device, lines);
}

/// Chapters 2 and 4: the words (cells [5]-[8]) and the sorted bigram counts (cell [10]).
fn reading_and_counting(device: &str, lines: &[Value]) {
    let ch2 = chapter(lines, 2);
    assert_eq!(ch2["first_words"], serde_json::json!(FIRST_WORDS));
    assert_eq!(
        (
            ch2["words"].as_u64(),
            ch2["shortest"].as_u64(),
            ch2["longest"].as_u64()
        ),
        (Some(32033), Some(2), Some(15))
    );

    let ours: Vec<String> = chapter(lines, 4)["bigrams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            format!(
                "{} {} {}",
                b[0].as_str().unwrap(),
                b[1].as_str().unwrap(),
                b[2]
            )
        })
        .collect();
    let notebook: Vec<&str> = NOTEBOOK_BIGRAMS
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect();
    assert_eq!(ours, notebook, "{device}: cell [10], the sorted bigrams");
}

/// Chapters 8 and 9: p = N[0] normalized, PyTorch's generator drawing from it and from
/// torch.rand(3) (cells [17]-[21]); P = (N+1) normalized, its shapes and five names
/// (cells [28]-[30], [164]).
fn sampling_from_the_counts(device: &str, lines: &[Value]) {
    let ch8 = chapter(lines, 8);
    for (i, (&ours, &notebook)) in f64s(&ch8["first_row_probs"])
        .iter()
        .zip(&FIRST_ROW_PROBS)
        .enumerate()
    {
        assert_rounds_to(&format!("{device}: cell [17] p[{i}]"), ours, notebook, 4);
    }
    assert_eq!(ch8["first_draw"], "m", "{device}: cell [18]");
    let normalized = f64s(&ch8["rand3_normalized"]);
    for (i, notebook) in [0.6064, 0.3033, 0.0903].into_iter().enumerate() {
        assert_rounds_to(
            &format!("{device}: cell [19] p[{i}]"),
            normalized[i],
            notebook,
            4,
        );
    }
    assert_eq!(
        ch8["draws"],
        serde_json::json!(DRAWS.as_slice()),
        "{device}: cell [20]"
    );
    assert_eq!(
        ch8["rand3_shape"],
        serde_json::json!([3]),
        "{device}: cell [21]"
    );
    let ch9 = chapter(lines, 9);
    assert_eq!(ch9["probs_shape"], serde_json::json!([27, 27]), "cell [30]");
    assert_eq!(
        ch9["row_sums_keepdim_shape"],
        serde_json::json!([27, 1]),
        "cell [29]"
    );
    assert_eq!(ch9["row_sums_shape"], serde_json::json!([27]), "cell [28]");
    assert_eq!(
        ch9["count_names"],
        serde_json::json!(COUNT_NAMES),
        "{device}: cell [164]"
    );
}

/// Chapters 13, 14 and 16: the first word's examples (cells [449]-[451]), one-hot encoded
/// (cells [487]-[490]), and the shapes and row sum of their softmax (cells [507]-[559]).
fn the_first_word_through_the_net(device: &str, lines: &[Value]) {
    let ch13 = chapter(lines, 13);
    assert_eq!(
        ch13["first_word_pairs"],
        serde_json::json!([". e", "e m", "m m", "m a", "a ."]),
        "cell [449]"
    );
    assert_eq!(
        ch13["xs"],
        serde_json::json!([0, 5, 13, 13, 1]),
        "cells [450], [528]"
    );
    assert_eq!(
        ch13["ys"],
        serde_json::json!([5, 13, 13, 1, 0]),
        "cells [451], [529]"
    );
    let ch14 = chapter(lines, 14);
    let onehot: Vec<Vec<u8>> = [0, 5, 13, 13, 1]
        .iter()
        .map(|&x| (0..27).map(|j| u8::from(j == x)).collect())
        .collect();
    assert_eq!(ch14["xenc"], serde_json::json!(onehot), "cell [487]");
    assert_eq!(ch14["xenc_shape"], serde_json::json!([5, 27]), "cell [488]");
    assert_eq!(ch14["xenc_dtype"], "torch.float32", "cell [490]");
    let ch16 = chapter(lines, 16);
    assert_eq!(
        ch16["probs_first_row_shape"],
        serde_json::json!([27]),
        "cell [510]"
    );
    assert_rounds_to(
        &format!("{device}: cell [507]"),
        ch16["probs_first_row_sum"].as_f64().unwrap(),
        1.0,
        4,
    );
    assert_eq!(
        ch16["probs_shape"],
        serde_json::json!([5, 27]),
        "cell [559]"
    );
}

/// Chapters 17 and 19: the five examples of "emma" through the seeded net (cell [560]) and
/// the loss after four updates (cell [603]).
fn the_five_example_walk(device: &str, lines: &[Value]) {
    // Cell [560]: float32 values; PyTorch's softmax divides exp(x) by its sum, ours subtracts
    // the row maximum first, so the last bit or two of a float32 may differ: compared to 1e-6.
    let walk = chapter(lines, 17)["examples"].as_array().unwrap();
    assert_eq!(walk.len(), 5);
    for (ours, notebook) in walk.iter().zip(&EXAMPLES) {
        let what = format!("{device}: cell [560] {}", notebook.bigram);
        assert_eq!(ours["bigram"], notebook.bigram, "{what}");
        assert_eq!(
            (ours["input"].as_u64(), ours["label"].as_u64()),
            (Some(notebook.input), Some(notebook.label)),
            "{what}"
        );
        for (i, (&p, &q)) in f64s(&ours["probs"]).iter().zip(&notebook.probs).enumerate() {
            assert_rounds_to(&format!("{what} probs[{i}]"), p, q, 4);
        }
        assert_rel(
            &format!("{what} probability"),
            ours["prob"].as_f64().unwrap(),
            notebook.prob,
            1e-6,
        );
        assert_rel(
            &format!("{what} log likelihood"),
            ours["log_likelihood"].as_f64().unwrap(),
            notebook.log_likelihood,
            1e-6,
        );
        assert_rel(
            &format!("{what} nll"),
            ours["nll"].as_f64().unwrap(),
            -notebook.log_likelihood,
            1e-6,
        );
    }
    assert_rel(
        &format!("{device}: cell [560] average"),
        chapter(lines, 17)["mean_nll"].as_f64().unwrap(),
        FIVE_EXAMPLE_LOSS,
        1e-6,
    );
    let first_word_losses = f64s(&chapter(lines, 19)["losses"]);
    assert_rel(
        &format!("{device}: cell [603]"),
        first_word_losses[4],
        LOSS_AFTER_FOUR_UPDATES,
        1e-7,
    );
}

/// Chapters 20 and 23: the number of examples (cell [682]), the training cell's last loss
/// (cell [716]) and the trained net's five names (cell [725]).
fn training_on_every_word(device: &str, lines: &[Value]) {
    let ch20 = chapter(lines, 20);
    assert_eq!(ch20["examples"], 228146, "cell [682]");
    let losses = f64s(&ch20["full_losses"]);
    // Cell [716] printed the loss of the last of its runs; 266 updates come nearest (5 digits).
    assert_rounds_to(&format!("{device}: cell [716]"), losses[266], 2.4818, 4);
    assert!((losses[266] - LAST_TRAINING_LOSS).abs() < (losses[265] - LAST_TRAINING_LOSS).abs());
    assert_eq!(
        chapter(lines, 23)["neural_names"],
        serde_json::json!(NEURAL_NAMES),
        "{device}: cell [725]"
    );
}

#[test]
#[ignore = "needs the lecture's names.txt: MAKEMORE_LECTURE_NAMES=PATH cargo test --release -- --include-ignored"]
fn lecture_reproduces_the_notebook_on_the_cpu() {
    let list = lecture_names_path();
    let lines = lecture_json(
        &["lecture", "--json", "--device", "cpu", "--input", &list],
        &[],
    );
    notebook_figures("cpu", &lines);
}

#[test]
#[ignore = "needs the lecture's names.txt: MAKEMORE_LECTURE_NAMES=PATH cargo test --release -- --include-ignored"]
fn lecture_reproduces_the_notebook_on_the_gpu() {
    let list = lecture_names_path();
    for (device, env, flag) in devices().into_iter().filter(|d| d.2 == "gpu") {
        let lines = lecture_json(
            &["lecture", "--json", "--device", flag, "--input", &list],
            &env,
        );
        notebook_figures(&device, &lines);
    }
}

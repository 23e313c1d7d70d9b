//! Alphabets far beyond a-z, end to end through the binary: 300 and 5,000 distinct CJK
//! characters trained, sampled, scored, plotted and saved on the CPU reference and on every
//! GPU backend under test, the devices agreeing; past 65,536 symbols, or when the table does
//! not fit, one line before any work.

use crate::common;

use std::path::Path;

use common::{
    assert_gpu_device, event, json_of, makemore_on, names, one_line_error, stderr, test_backends,
    write_words,
};
use rand::{RngExt, SeedableRng};

/// `words` random words of 1 to 6 characters over `symbols - 1` CJK characters (the boundary
/// is the last symbol), then each character once, so that all of them occur.
fn write_cjk_words(path: &Path, symbols: usize, words: usize) -> Vec<char> {
    let chars: Vec<char> = (0..symbols as u32 - 1)
        .map(|i| char::from_u32(0x4E00 + i).unwrap())
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(symbols as u64);
    let mut lines: Vec<String> = (0..words)
        .map(|_| {
            let len = rng.random_range(1..=6);
            (0..len)
                .map(|_| chars[rng.random_range(0..chars.len())])
                .collect()
        })
        .collect();
    lines.extend(chars.iter().map(|c| c.to_string()));
    write_words(path, &lines, false);
    chars
}

/// A run's JSON lines, checked for success.
fn json(out: &std::process::Output, what: &str) -> Vec<serde_json::Value> {
    assert!(out.status.success(), "{what}: {}", stderr(out));
    json_of(out)
}

/// Trains on `symbols` symbols on the CPU and on every GPU backend, then uses each run's work
/// directory with sample, eval and plot.
fn end_to_end(symbols: usize, words: usize) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("words.txt");
    let chars = write_cjk_words(&input, symbols, words);
    let input = input.to_str().unwrap();
    let mut devices: Vec<(String, Option<String>)> = vec![("cpu".to_string(), None)];
    devices.extend(test_backends().into_iter().map(|b| ("gpu".to_string(), b)));
    let mut cpu: Option<Vec<serde_json::Value>> = None;
    for (i, (device, backend)) in devices.iter().enumerate() {
        let work = dir.path().join(format!("run{i}"));
        let run = DeviceRun {
            symbols,
            chars: &chars,
            device,
            backend,
            work: work.to_str().unwrap(),
            what: format!("{symbols} symbols on {device} {backend:?}"),
        };
        let (lines, neural_names) = run.train(input);

        // The saved run: the same names drawn again, a word scored, the grid drawn or
        // declined in one line.
        run.sample_again(&neural_names);
        run.score_a_word();
        run.plot_counts(&dir.path().join(format!("counts{i}.png")));

        match &cpu {
            None => cpu = Some(lines.clone()),
            Some(cpu) => assert_devices_agree(&lines, cpu, &run.what),
        }
    }
}

/// One device's run on an alphabet of `symbols` symbols, and its work directory.
struct DeviceRun<'a> {
    symbols: usize,
    chars: &'a [char],
    device: &'a str,
    backend: &'a Option<String>,
    work: &'a str,
    /// The alphabet and the device, for the failure messages.
    what: String,
}

impl DeviceRun<'_> {
    /// Trains 2 steps on `input`, 3 names from each model; returns train's JSON lines and the
    /// neural model's names, after checking that all of the alphabet was seen and that the
    /// names are made of it.
    fn train(&self, input: &str) -> (Vec<serde_json::Value>, Vec<String>) {
        let what = &self.what;
        let args = [
            "train",
            "--input",
            input,
            "--steps",
            "2",
            "--samples",
            "3",
            "--json",
            "--device",
            self.device,
            "--work-dir",
            self.work,
        ];
        let lines = json(&makemore_on(self.backend, &args), what);
        let device_line = event(&lines, "device", None)["device"].as_str().unwrap();
        if self.device == "gpu" {
            assert_gpu_device(device_line);
        }
        let data = event(&lines, "data", None);
        assert_eq!(data["vocab_size"], self.symbols, "{what}");
        let count = event(&lines, "count_model", None);
        assert_eq!(count["impossible_examples"], 0, "{what}");
        let mut trained: Vec<Vec<String>> = ["count", "neural"]
            .iter()
            .map(|m| names(event(&lines, "samples", Some(m))))
            .collect();
        for name in trained.iter().flatten() {
            assert!(
                name.chars().all(|c| self.chars.contains(&c)),
                "{what}: {name:?}"
            );
        }
        assert_eq!(trained[0].len(), 3, "{what}");
        let neural_names = trained.pop().unwrap();
        (lines, neural_names)
    }

    /// `sample` from the saved run draws the names train printed.
    fn sample_again(&self, neural_names: &[String]) {
        let sampled = json(
            &makemore_on(
                self.backend,
                &["sample", "--work-dir", self.work, "--num", "3", "--json"],
            ),
            &self.what,
        );
        assert_eq!(names(&sampled[0]), neural_names, "{}", self.what);
    }

    /// `eval` of a word of three symbols: four pairs with the boundaries, a log-likelihood
    /// below 0.
    fn score_a_word(&self) {
        let what = &self.what;
        let word: String = self.chars[..3].iter().collect();
        let scored = json(
            &makemore_on(
                self.backend,
                &["eval", "--word", &word, "--work-dir", self.work, "--json"],
            ),
            what,
        );
        let total = scored.last().unwrap();
        assert_eq!(total["pairs"], 4, "{what}");
        assert!(total["log_likelihood"].as_f64().unwrap() < 0.0, "{what}");
    }

    /// `plot counts` draws the grid up to 1,024 symbols and declines in one line past that,
    /// writing nothing.
    fn plot_counts(&self, png: &Path) {
        let what = &self.what;
        let plot = [
            "plot",
            "counts",
            "--work-dir",
            self.work,
            "--output",
            png.to_str().unwrap(),
        ];
        if self.symbols <= 1024 {
            assert!(makemore_on(self.backend, &plot).status.success(), "{what}");
            let bytes = std::fs::read(png).unwrap();
            assert_eq!(&bytes[1..4], b"PNG", "{what}");
        } else {
            let error = one_line_error(&plot);
            assert!(
                error.contains("too many to draw legibly"),
                "{what}: {error}"
            );
            assert!(!png.exists(), "{what}");
        }
    }
}

/// The devices agree: the count model to 1e-5 relative, the neural model's losses to 1e-4
/// relative.
fn assert_devices_agree(lines: &[serde_json::Value], cpu: &[serde_json::Value], what: &str) {
    let close = |field: &str, event_name: &str| {
        let (g, c) = (
            event(lines, event_name, None)[field].as_f64().unwrap(),
            event(cpu, event_name, None)[field].as_f64().unwrap(),
        );
        assert!(
            (g - c).abs() <= 1e-5 * c.abs(),
            "{what}: {event_name} {field}: GPU {g}, CPU {c}"
        );
    };
    close("nll", "count_model");
    let losses = |l: &[serde_json::Value]| -> Vec<f64> {
        let neural = event(l, "neural_model", None);
        let mut all: Vec<f64> = neural["losses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        all.push(neural["final_loss"].as_f64().unwrap());
        all
    };
    let (g, c) = (losses(lines), losses(cpu));
    for (step, (g, c)) in g.iter().zip(&c).enumerate() {
        assert!(
            (g - c).abs() <= 1e-4 * c.abs(),
            "{what}: neural loss at step {step}: GPU {g}, CPU {c}"
        );
    }
}

#[test]
fn three_hundred_symbols_end_to_end() {
    end_to_end(300, 3000);
}

#[test]
fn five_thousand_symbols_end_to_end() {
    end_to_end(5000, 20_000);
}

/// One character per line: `count` distinct characters from U+10000 on (all valid scalar
/// values, none of them `.`).
fn distinct_characters(path: &Path, count: u32) {
    let words: Vec<String> = (0x10000..0x10000 + count)
        .map(|c| char::from_u32(c).unwrap().to_string())
        .collect();
    write_words(path, &words, false);
}

#[test]
fn past_the_limit_or_too_large_a_table_is_one_line_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let over = dir.path().join("over.txt");
    distinct_characters(&over, 65_536); // 65,537 symbols with the boundary
    let at = dir.path().join("at.txt");
    distinct_characters(&at, 65_535); // 65,536: allowed, but 16 GiB a table
    for device in ["cpu", "gpu"] {
        let work = dir.path().join(format!("run-{device}"));
        let args = |input: &Path| {
            vec![
                "train".to_string(),
                "--input".to_string(),
                input.to_str().unwrap().to_string(),
                "--device".to_string(),
                device.to_string(),
                "--work-dir".to_string(),
                work.to_str().unwrap().to_string(),
            ]
        };
        let start = std::time::Instant::now();
        let over_args = args(&over);
        let error = one_line_error(&over_args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(
            error.contains("65537 distinct symbols"),
            "{device}: {error}"
        );
        assert!(error.contains("limit of 65536"), "{device}: {error}");
        let at_args = args(&at);
        let error = one_line_error(&at_args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(error.contains("65536^1 x 65536 table"), "{device}: {error}");
        assert!(
            error.contains("not even a context of 1 fits"),
            "{device}: {error}"
        );
        assert!(!work.exists(), "{device}: nothing is written");
        // Refused before any table is made: seconds, not the minutes of a 16 GiB table.
        let took = start.elapsed();
        assert!(took.as_secs() < 20, "{device}: {took:?}");
    }
}

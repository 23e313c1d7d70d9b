//! Bad input and faults, each as a user meets them: one line on stderr starting with
//! `error:`, exit code 1 (2 for flags clap rejects), never a panic.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{makemore_with_env as makemore, stderr, stdout};

/// Exit code 1, exactly one `error:` line containing `needle`, no panic.
fn assert_fails(out: &Output, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains(needle), "expected {needle:?} in {err}");
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("makemore-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn file(&self, name: &str, contents: &[u8]) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path.to_str().unwrap().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `train --json` without the lines that name the file or the time.
fn model_lines(out: &Output) -> Vec<String> {
    stdout(out)
        .lines()
        .filter(|l| !l.contains("\"summary\"") && !l.contains("\"event\":\"data\""))
        .map(str::to_string)
        .collect()
}

#[test]
fn crlf_and_bom_give_the_same_result_as_the_clean_file() {
    let dir = TempDir::new("crlf");
    let clean = dir.file("clean.txt", b"emma\nolivia\nava\n");
    let windows = dir.file("windows.txt", b"\xef\xbb\xbfemma\r\nolivia\r\n\r\nava\r\n");
    let args = |input: &str| {
        [
            "train",
            "--input",
            input,
            "--steps",
            "3",
            "--samples",
            "3",
            "--json",
        ]
        .map(str::to_string)
    };
    let run = |input: &str| {
        makemore(
            &args(input).iter().map(String::as_str).collect::<Vec<_>>(),
            &[],
        )
    };
    let (a, b) = (run(&clean), run(&windows));
    assert!(a.status.success() && b.status.success(), "{}", stderr(&b));
    assert_eq!(model_lines(&a), model_lines(&b));
}

#[test]
fn unreadable_file() {
    // Permission bits do not stop root; /proc/self/mem refuses a plain read for everyone.
    if Path::new("/proc/self/mem").exists() {
        assert_fails(
            &makemore(&["train", "--input", "/proc/self/mem"], &[]),
            "cannot read /proc/self/mem",
        );
    }
}

#[test]
fn a_one_megabyte_line_works() {
    let dir = TempDir::new("long-line");
    let word: String = (0..1_000_000)
        .map(|i| ['a', 'b', 'c', 'd'][(i * 7 + i / 3) % 4])
        .collect();
    let path = dir.file("long.txt", format!("{word}\nab\n").as_bytes());
    let out = makemore(
        &[
            "train",
            "--input",
            &path,
            "--steps",
            "2",
            "--samples",
            "2",
            "--json",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("\"examples\":1000004"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_diverging_learning_rate_names_the_step() {
    for device in ["gpu", "cpu"] {
        let out = makemore(
            &["train", "--lr", "1e30", "--steps", "5", "--device", device],
            &[],
        );
        assert_fails(&out, ": training diverged; try a smaller --lr");
    }
}

#[test]
fn flags_out_of_range_are_usage_errors() {
    for args in [
        &["train", "--steps=-1"][..],
        &["train", "--lr=0"],
        &["train", "--lr=nan"],
        &["train", "--reg=-0.5"],
        &["train", "--smoothing=inf"],
        &["train", "--context=0"],
        &["train", "--samples=-3"],
        &["train", "--device=tpu"],
    ] {
        let out = makemore(args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"));
    }
}

#[test]
fn no_adapter_falls_back_to_the_cpu_with_a_notice() {
    // A backend this machine cannot have: wgpu finds no adapter at all.
    let backend = if cfg!(target_os = "macos") {
        "dx12"
    } else {
        "metal"
    };
    let out = makemore(
        &["train", "--steps", "1", "--samples", "1"],
        &[("WGPU_BACKEND", backend)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("notice: no GPU adapter found"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("CPU reference"));
}

#[test]
fn an_adapter_name_that_matches_nothing_is_an_error() {
    let out = makemore(
        &["train", "--steps", "1"],
        &[("WGPU_ADAPTER_NAME", "no such adapter")],
    );
    assert_fails(
        &out,
        "WGPU_ADAPTER_NAME=\"no such adapter\" matches none of the adapters",
    );
}

#[test]
fn a_backend_name_wgpu_does_not_know_is_an_error_and_a_blank_one_means_all() {
    for args in [&["train", "--steps", "1"][..], &["adapters"], &["check"]] {
        let out = makemore(args, &[("WGPU_BACKEND", "vulkan,vulcan")]);
        assert_fails(&out, "WGPU_BACKEND names \"vulcan\", not a backend");
    }
    let all = makemore(&["adapters"], &[("WGPU_BACKEND", "vulkan,metal,dx12,gl,")]);
    assert!(all.status.success(), "{}", stderr(&all));
    let blank = makemore(&["adapters"], &[("WGPU_BACKEND", " ")]);
    assert!(blank.status.success(), "{}", stderr(&blank));
    assert_eq!(stdout(&blank), stdout(&all));
}

#[test]
fn data_larger_than_the_kernels_can_index_is_refused_up_front() {
    use makemore::gpu::check_fits;
    // Data larger than one storage binding is cut into chunks: only u32 indexing bounds it.
    assert!(check_fits(1000).is_ok());
    assert!(check_fits(40_000_000).is_ok());
    let too_many = check_fits(u32::MAX as usize + 1).unwrap_err().to_string();
    assert!(
        too_many.contains("more than the GPU kernels can index"),
        "{too_many}"
    );
}

#[test]
fn ten_million_short_lines_work() {
    let dir = TempDir::new("ten-million");
    let path = dir.file("many.txt", &b"ab\n".repeat(10_000_000));
    let out = makemore(
        &[
            "train",
            "--input",
            &path,
            "--steps",
            "1",
            "--samples",
            "1",
            "--json",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("\"examples\":30000000"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn same_seed_same_checkpoint_bytes() {
    let dir = TempDir::new("determinism");
    let run = |name: &str| {
        let work = dir.0.join(name);
        let work = work.to_str().unwrap().to_string();
        let out = makemore(
            &[
                "train",
                "--steps",
                "3",
                "--samples",
                "2",
                "--work-dir",
                &work,
            ],
            &[],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        (
            std::fs::read(format!("{work}/model.safetensors")).unwrap(),
            std::fs::read(format!("{work}/log.jsonl")).unwrap(),
        )
    };
    let (first, second) = (run("a"), run("b"));
    assert!(first.0 == second.0, "the checkpoints differ");
    assert!(first.1 == second.1, "the logs differ");
}

/// A file that a command holds whole with its examples (a split, the per-example gradient,
/// `eval`, `sweep`, `lecture`) is refused before it is read when that would take more than the
/// memory available, in one line naming what to do instead, and nothing is written. The
/// default path of `train` reads the same file in blocks, and runs.
#[test]
fn a_file_too_large_for_the_memory_available_is_refused_before_it_is_read() {
    let dir = TempDir::new("memory-limit");
    let path = dir.file("names.txt", &b"emma\nolivia\nava\n".repeat(1000)); // 16,000 bytes
    let work = dir.0.join("run");
    let work = work.to_str().unwrap();
    // Held whole, 16,000 bytes take about 36 x 16,000 = 576,000 bytes.
    let tight = [("MAKEMORE_MEMORY_LIMIT", "500000")];
    let held: [&[&str]; 4] = [
        &[
            "train",
            "--input",
            &path,
            "--split",
            "80/10/10",
            "--work-dir",
            work,
        ],
        &[
            "train",
            "--input",
            &path,
            "--grad",
            "examples",
            "--work-dir",
            work,
        ],
        &["sweep", "--input", &path],
        &["lecture", "--input", &path, "--chapter", "3"],
    ];
    for args in held {
        let out = makemore(args, &tight);
        assert_fails(
            &out,
            "(16000 bytes = 15.62 KiB) held in memory with its examples takes about 576000 bytes",
        );
        assert_fails(&out, "more than the 500000 bytes = 488.28 KiB available");
    }
    assert!(!Path::new(work).exists(), "a refused run wrote {work}");

    let streamed = ["train", "--input", &path, "--steps", "2", "--samples", "0"];
    let out = makemore(&[&streamed[..], &["--work-dir", work]].concat(), &tight);
    assert!(out.status.success(), "{}", stderr(&out));
    let eval = makemore(&["eval", "--work-dir", work, "--input", &path], &tight);
    assert_fails(&eval, "eval holds every example");

    let roomy = [("MAKEMORE_MEMORY_LIMIT", "600000")];
    let split = [
        "train", "--input", &path, "--split", "80/10/10", "--steps", "2",
    ];
    let out = makemore(
        &[&split[..], &["--samples", "0", "--work-dir", work]].concat(),
        &roomy,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let not_a_number = [("MAKEMORE_MEMORY_LIMIT", "lots")];
    let out = makemore(
        &["eval", "--work-dir", work, "--input", &path],
        &not_a_number,
    );
    assert_fails(
        &out,
        "MAKEMORE_MEMORY_LIMIT=\"lots\" is not a number of bytes",
    );
}

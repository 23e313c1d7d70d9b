//! `makemore check`: every kernel of each adapter against the CPU reference, as a table.

use serde_json::{json, Value};

use super::bench::{cell, line, print, Column};
use super::say;
use makemore::gpu::open_each;
use makemore::tools::check::{check_adapter, outcome};
use makemore::GpuBackend;

pub const EXAMPLE: &str =
    "Run it first on new hardware: it compares every kernel, and short training runs at
contexts 1 to 3, with the CPU reference on random data, on each adapter wgpu finds.

Example:
  makemore check
  WGPU_BACKEND=vulkan makemore check --json
  WGPU_ADAPTER_NAME=nvidia makemore check";

#[derive(clap::Args)]
pub struct Args {
    /// One JSON object per comparison, then one with the verdict.
    #[arg(long)]
    json: bool,
}

/// The table's columns, written from each comparison's JSON object.
const COLUMNS: [Column; 7] = [
    ("kernel", -40, |r| cell(&r["kernel"], 0)),
    ("case", -28, |r| cell(&r["case"], 0)),
    ("adapter", -20, |r| cell(&r["adapter"], 0)),
    ("worst/tol", 9, |r| match &r["worst_over_tolerance"] {
        Value::Null => "inf".to_string(),
        worst => cell(worst, 3),
    }),
    (" tolerance", -45, |r| {
        format!(" {}", cell(&r["tolerance"], 0))
    }),
    ("s", 6, |r| cell(&r["seconds"], 2)),
    (" verdict", 0, |r| {
        format!(" {}", if r["pass"] == true { "pass" } else { "FAIL" })
    }),
];

pub fn run(args: &Args) -> anyhow::Result<()> {
    // Every adapter is opened, GL's too: the drivers' own lines stay out of ours.
    let (adapters, driver_text) = makemore::driver_output::captured(open_each);
    makemore::driver_output::show_if_debugging(&driver_text);
    let adapters = adapters?;
    anyhow::ensure!(
        !adapters.is_empty(),
        "no GPU adapter found to check (WGPU_BACKEND and WGPU_ADAPTER_NAME limit the search; on Linux, install mesa-vulkan-drivers)"
    );
    if !args.json {
        say!("{}", line(&COLUMNS, None));
    }
    let (mut checked, mut failed) = (0, 0);
    for (summary, opened) in adapters {
        // "llvmpipe (LLVM 15.0.6, 256 bits)" on Vulkan -> "llvmpipe Vulkan".
        let short = summary.name.split(" (").next().unwrap_or(&summary.name);
        let adapter = format!("{short} {}", summary.backend);
        let outcomes = match opened {
            Ok(gpu) => check_adapter(&mut GpuBackend::new(gpu), &adapter),
            Err(e) => {
                let error = Err(anyhow::anyhow!(e.to_string()));
                vec![outcome(["open the device", "", &adapter, ""], error, 0.0)]
            }
        };
        for row in outcomes {
            checked += 1;
            failed += usize::from(row["pass"] != true);
            print(args.json, &COLUMNS, &row);
            if let (false, Some(e)) = (args.json, row["error"].as_str()) {
                say!("    {e}");
            }
        }
    }
    let verdict = json!({"checked": checked, "failed": failed, "pass": failed == 0});
    match args.json {
        true => say!("{verdict}"),
        false => say!("{} of {checked} comparisons passed", checked - failed),
    }
    anyhow::ensure!(
        failed == 0,
        "{failed} of {checked} comparisons with the CPU reference failed on this adapter (the table above names them)"
    );
    Ok(())
}

//! `makemore check`: every kernel of each adapter against the CPU reference, as a table.

use serde_json::json;

use super::say;
use makemore::check::{check_adapter, Outcome};
use makemore::gpu::open_each;
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

pub fn run(args: &Args) -> anyhow::Result<()> {
    // Every adapter is opened, GL's too: the drivers' own lines stay out of ours.
    let (adapters, driver_text) = makemore::driver_output::captured(open_each);
    makemore::driver_output::show_if_debugging(&driver_text);
    anyhow::ensure!(
        !adapters.is_empty(),
        "no GPU adapter found to check (WGPU_BACKEND and WGPU_ADAPTER_NAME limit the search; on Linux, install mesa-vulkan-drivers)"
    );
    if !args.json {
        say!(
            "{:<40} {:<28} {:<20} {:>9}  {:<44} {:>6}  verdict",
            "kernel",
            "case",
            "adapter",
            "worst/tol",
            "tolerance",
            "s"
        );
    }
    let (mut checked, mut failed) = (0, 0);
    for (summary, opened) in adapters {
        // "llvmpipe (LLVM 15.0.6, 256 bits)" on Vulkan -> "llvmpipe Vulkan".
        let short = summary.name.split(" (").next().unwrap_or(&summary.name);
        let name = format!("{short} {}", summary.backend);
        let outcomes = match opened {
            Ok(gpu) => check_adapter(&mut GpuBackend::new(gpu)).outcomes,
            Err(e) => vec![Outcome {
                kernel: "open the device".to_string(),
                case: String::new(),
                worst: f64::INFINITY,
                tolerance: String::new(),
                pass: false,
                error: Some(e.to_string()),
                seconds: 0.0,
            }],
        };
        for o in &outcomes {
            checked += 1;
            failed += usize::from(!o.pass);
            print(args.json, &name, o);
        }
    }
    if args.json {
        say!(
            "{}",
            json!({"checked": checked, "failed": failed, "pass": failed == 0})
        );
    } else {
        say!("{} of {checked} comparisons passed", checked - failed);
    }
    anyhow::ensure!(
        failed == 0,
        "{failed} of {checked} comparisons with the CPU reference failed on this adapter (the table above names them)"
    );
    Ok(())
}

fn print(as_json: bool, adapter: &str, o: &Outcome) {
    let verdict = if o.pass { "pass" } else { "FAIL" };
    if as_json {
        let worst = if o.worst.is_finite() {
            json!(o.worst)
        } else {
            serde_json::Value::Null
        };
        say!(
            "{}",
            json!({"kernel": o.kernel, "case": o.case, "adapter": adapter, "worst_over_tolerance": worst,
                "tolerance": o.tolerance, "pass": o.pass, "error": o.error, "seconds": o.seconds})
        );
    } else {
        let worst = if o.worst.is_finite() {
            format!("{:.3}", o.worst)
        } else {
            "inf".to_string()
        };
        say!(
            "{:<40} {:<28} {:<20} {:>9}  {:<44} {:>6.2}  {verdict}",
            o.kernel,
            o.case,
            adapter,
            worst,
            o.tolerance,
            o.seconds
        );
        if let Some(e) = &o.error {
            say!("    {e}");
        }
    }
}

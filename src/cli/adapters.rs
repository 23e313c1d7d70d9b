//! `makemore adapters`: the adapters wgpu finds, best first.

use serde_json::json;

use super::say;
use makemore::gpu::list_adapters;

pub const EXAMPLE: &str =
    "Example:\n  makemore adapters\n  WGPU_BACKEND=gl makemore adapters --json";

#[derive(clap::Args)]
pub struct Args {
    /// One JSON object per adapter.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    // Every backend is searched here, GL too; the drivers' own stderr lines stay out of ours.
    let (adapters, driver_text) = makemore::driver_output::captured(list_adapters);
    makemore::driver_output::show_if_debugging(&driver_text);
    let adapters = adapters?;
    if adapters.is_empty() && !args.json {
        say!("no adapters found (WGPU_BACKEND limits the search to some backends)");
    }
    for (i, a) in adapters.iter().enumerate() {
        let (name, backend, kind, driver) = (&a.name, &a.backend, &a.device_type, &a.driver);
        match args.json {
            true => say!(
                "{}",
                json!({"index": i, "name": name, "backend": backend, "type": kind, "driver": driver})
            ),
            false => say!("{i}: {name} ({backend}, {kind}) {driver}"),
        }
    }
    Ok(())
}

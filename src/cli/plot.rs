//! `makemore plot counts` and `makemore plot loss`: the pictures of a saved run, as PNG or SVG
//! (by the file name's extension).

use std::path::PathBuf;

use serde_json::json;

use super::say;
use makemore::checkpoint::{load_log, write_atomically, Checkpoint};
use makemore::tools::plot::{CountsFigure, Format, LossFigure};

pub const EXAMPLE: &str = "Examples:
  makemore train                                  # saves the run in out/
  makemore plot counts                            # out/counts.png and out/counts.svg
  makemore plot counts --output docs/counts.png
  makemore plot loss --output loss.svg";

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    picture: Picture,
}

#[derive(clap::Subcommand)]
enum Picture {
    /// The count matrix: a blue grid, each cell labelled with its pair and count.
    #[command(after_help = EXAMPLE)]
    Counts(Target),
    /// The loss log: loss and data loss against step.
    #[command(after_help = EXAMPLE)]
    Loss(Target),
}

#[derive(clap::Args)]
struct Target {
    /// Directory of the run, as given to `train`.
    #[arg(long, value_name = "DIR", default_value = "out")]
    work_dir: PathBuf,
    /// Picture file, .png or .svg (repeat for both) [default: WORK_DIR/NAME.png and .svg]
    #[arg(long, short, value_name = "FILE")]
    output: Vec<PathBuf>,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let (target, name) = match &args.picture {
        Picture::Counts(target) => (target, "counts"),
        Picture::Loss(target) => (target, "loss"),
    };
    // The files to write, each with its format, checked before anything is drawn.
    let outputs = match target.output.is_empty() {
        true => ["png", "svg"]
            .map(|e| target.work_dir.join(format!("{name}.{e}")))
            .to_vec(),
        false => target.output.clone(),
    };
    let files = (outputs.into_iter())
        .map(|path| Ok((Format::of_path(&path)?, path)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Each picture is drawn before any file is written.
    let draw = |render: &dyn Fn(Format) -> anyhow::Result<Vec<u8>>| -> anyhow::Result<Vec<_>> {
        files.iter().map(|(f, _)| render(*f)).collect()
    };
    let (pictures, note) = match &args.picture {
        Picture::Counts(_) => {
            let checkpoint = Checkpoint::load(&target.work_dir)?;
            let settings = &checkpoint.settings;
            let source = match &settings.input {
                Some(path) => (path.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .unwrap_or_else(|| path.display().to_string()),
                None => "the built-in names".to_string(),
            };
            let figure = CountsFigure {
                counts: &checkpoint.counts,
                vocab: &settings.vocab,
                context_len: settings.context_len,
                source: &source,
            };
            (draw(&|format| figure.render(format))?, figure.layout().2)
        }
        Picture::Loss(_) => {
            let entries = load_log(&target.work_dir)?;
            let figure = LossFigure { entries: &entries };
            (draw(&|format| figure.render(format))?, None)
        }
    };
    for ((_, path), bytes) in files.iter().zip(pictures) {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        write_atomically(path, &bytes)?;
        log::debug!("wrote {} ({} bytes)", path.display(), bytes.len());
    }
    let names: Vec<String> = files.iter().map(|(_, p)| p.display().to_string()).collect();
    if target.json {
        let line = json!({"event": "plot", "picture": name, "files": names, "note": note});
        say!("{line}");
    } else {
        names.iter().for_each(|name| say!("wrote {name}"));
        note.iter().for_each(|note| say!("note: {note}"));
    }
    Ok(())
}

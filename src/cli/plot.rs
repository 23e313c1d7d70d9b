//! `makemore plot counts` and `makemore plot loss`: the pictures of a saved run, as PNG or SVG
//! (by the file name's extension).

use std::path::{Path, PathBuf};

use serde_json::json;

use super::say;
use makemore::checkpoint::{load_log, write_atomically, Checkpoint};
use makemore::plot::{CountsFigure, Format, LossFigure};

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

impl Target {
    /// The files to write, each with its format (checked before anything is drawn).
    fn files(&self, name: &str) -> anyhow::Result<Vec<(PathBuf, Format)>> {
        let outputs = if self.output.is_empty() {
            vec![
                self.work_dir.join(format!("{name}.png")),
                self.work_dir.join(format!("{name}.svg")),
            ]
        } else {
            self.output.clone()
        };
        outputs
            .into_iter()
            .map(|path| {
                let format = Format::of_path(&path)?;
                Ok((path, format))
            })
            .collect()
    }
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    match &args.picture {
        Picture::Counts(target) => {
            let files = target.files("counts")?;
            let checkpoint = Checkpoint::load(&target.work_dir)?;
            let settings = &checkpoint.settings;
            let source = match &settings.input {
                Some(path) => path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| path.display().to_string()),
                None => "the built-in names".to_string(),
            };
            let figure = CountsFigure {
                counts: &checkpoint.counts,
                vocab: &settings.vocab,
                context_len: settings.context_len,
                source: &source,
            };
            figure.check_size()?;
            let layout = figure.layout();
            for (path, format) in &files {
                write_picture(path, &figure.render(*format)?)?;
            }
            report(target, "counts", &files, layout.note.as_deref());
        }
        Picture::Loss(target) => {
            let files = target.files("loss")?;
            let entries = load_log(&target.work_dir)?;
            let figure = LossFigure { entries: &entries };
            for (path, format) in &files {
                write_picture(path, &figure.render(*format)?)?;
            }
            report(target, "loss", &files, None);
        }
    }
    Ok(())
}

fn write_picture(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    write_atomically(path, bytes)?;
    log::debug!("wrote {} ({} bytes)", path.display(), bytes.len());
    Ok(())
}

fn report(target: &Target, picture: &str, files: &[(PathBuf, Format)], note: Option<&str>) {
    let names: Vec<String> = files.iter().map(|(p, _)| p.display().to_string()).collect();
    if target.json {
        say!(
            "{}",
            json!({"event": "plot", "picture": picture, "files": names, "note": note})
        );
    } else {
        for name in &names {
            say!("wrote {name}");
        }
        if let Some(note) = note {
            say!("note: {note}");
        }
    }
}

//! The commands, one file each, and what they share: printing and flag parsers.

pub mod adapters;
pub mod bench;
pub mod check;
pub mod eval;
pub mod lecture;
pub mod plot;
pub mod progress;
pub mod sample;
pub mod sweep;
pub mod train;

use std::path::Path;

use anyhow::Context as _;

use makemore::checkpoint::Checkpoint;
use makemore::data::{builtin_words, read_words};

/// `print!` that exits quietly when stdout is closed (`makemore train | head`).
macro_rules! put {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = write!(std::io::stdout(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}
pub(crate) use put;

/// [`put!`] with a newline.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::put!("{}\n", format_args!($($arg)*))
    };
}
pub(crate) use say;

/// A flag that must be a finite number >= 0.
pub fn non_negative(s: &str) -> Result<f32, String> {
    let x = s.parse::<f32>().ok().filter(|x| x.is_finite() && *x >= 0.0);
    x.ok_or(format!("{s:?} is not a finite number >= 0"))
}

/// A flag that must be a finite number > 0.
pub fn positive(s: &str) -> Result<f32, String> {
    let x = s.parse::<f32>().ok().filter(|x| x.is_finite() && *x > 0.0);
    x.ok_or(format!("{s:?} is not a finite number > 0"))
}

/// A flag's value as the command line spells it.
pub fn flag_name(value: impl clap::ValueEnum) -> String {
    let value = value.to_possible_value().expect("every value has a name");
    value.get_name().to_string()
}

/// 228146 -> "228,146".
pub fn thousands(n: usize) -> String {
    let digits = n.to_string().into_bytes();
    let chunks = digits.rchunks(3).rev();
    let groups: Vec<_> = chunks.map(String::from_utf8_lossy).collect();
    groups.join(",")
}

/// A loss with six decimals, or `inf`.
pub fn format_loss(x: f64) -> String {
    let shown = x.is_finite().then(|| format!("{x:.6}"));
    shown.unwrap_or("inf".to_string())
}

/// The `--model` flag of the commands that read a checkpoint.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelFlag {
    /// The normalized counts P.
    Count,
    /// softmax(W), the trained neural net.
    Neural,
}

impl ModelFlag {
    /// The probability table of this model in a checkpoint.
    pub fn probs(self, checkpoint: &Checkpoint) -> &[f32] {
        match self {
            ModelFlag::Count => &checkpoint.probs,
            ModelFlag::Neural => &checkpoint.neural_probs,
        }
    }
}

/// The words of a file that the command holds whole, with its examples: refused first, in one
/// line saying what to do `instead`, when they would not fit in the memory available.
pub fn read_words_held(path: &Path, instead: &'static str) -> anyhow::Result<Vec<String>> {
    makemore::limits::check_file_fits(path, instead)?;
    Ok(read_words(path)?)
}

/// The words a checkpoint was trained on: `--input` when given, else the file recorded in the
/// checkpoint, else the built-in names. Returns the words and where they came from.
pub fn training_words(
    input: Option<&Path>,
    checkpoint: &Checkpoint,
) -> anyhow::Result<(Vec<String>, String)> {
    let source = |p: &Path| p.display().to_string();
    Ok(match (input, &checkpoint.settings.input) {
        (Some(path), _) => (read_words(path)?, source(path)),
        (None, Some(path)) => {
            let why = "the checkpoint's training words cannot be read; pass --input FILE";
            (read_words(path).context(why)?, source(path))
        }
        (None, None) => (builtin_words(), "the built-in names".to_string()),
    })
}

/// One line about a loaded checkpoint.
pub fn describe_checkpoint(path: &Path, checkpoint: &Checkpoint) -> String {
    let s = &checkpoint.settings;
    let (path, v, k) = (path.display(), s.vocab.len(), s.context_len);
    format!(
        "{path}: {v} symbols, context {k}, smoothing {}, {} steps",
        s.smoothing, s.steps
    )
}

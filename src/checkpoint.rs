//! The work directory: a trained run saved so that other commands (and Python) can use it.
//!
//! `WORK_DIR/model.safetensors` holds four tensors, each `[V^K, V]` (rows are contexts, columns
//! the next character), and the run's settings as string metadata:
//!
//! | tensor | dtype | what |
//! |---|---|---|
//! | `counts` | I32 | N, the pair counts (the lecture's `torch.int32` matrix) |
//! | `probs` | F32 | P = (N + s) / row sums: the count model |
//! | `weights` | F32 | W, the neural model's weights (logits = W[context]) |
//! | `neural_probs` | F32 | softmax(W) row by row, as the GPU computed it |
//!
//! `WORK_DIR/log.jsonl` has one JSON object per step: `{"step", "loss", "data_loss"}`, and
//! `"dev_loss"` on the steps where a run with a split measured it (the dev loss of the weights
//! before that step).
//!
//! Every file is written to a temporary name in the same directory and renamed over the old one,
//! so an interrupted run leaves the previous files whole.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::backend::StepLoss;
use crate::data::Vocab;
use crate::split::Split;

/// The file name of the models inside the work directory.
pub const MODEL_FILE: &str = "model.safetensors";
/// The file name of the loss log inside the work directory.
pub const LOG_FILE: &str = "log.jsonl";
/// The `format` metadata entry: names this layout so that a later one can be told apart.
pub const FORMAT: &str = "makemore-wgpu/1";

/// Why a checkpoint could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("no checkpoint in {dir}: run `makemore train --work-dir {dir}` first")]
    Missing { dir: String },
    #[error("cannot read {path}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a safetensors file ({reason}); it may be truncated or corrupt")]
    NotSafetensors { path: String, reason: String },
    #[error("{path} is not a makemore checkpoint: {reason}")]
    NotACheckpoint { path: String, reason: String },
    #[error("{path}: {reason}")]
    BadLog { path: String, reason: String },
    #[error("the counts do not fit the checkpoint's I32 tensor (largest {largest})")]
    CountTooLarge { largest: u32 },
}

/// Settings of the run that produced a checkpoint (its metadata).
#[derive(Clone, Debug, PartialEq)]
pub struct RunSettings {
    pub vocab: Vocab,
    pub context_len: usize,
    pub smoothing: f32,
    pub seed: u64,
    /// Gradient-descent steps taken so far, across resumed runs.
    pub steps: usize,
    pub lr: f32,
    pub reg: f32,
    /// The word file (absolute path), or empty for the built-in names.
    pub input: Option<PathBuf>,
    /// The train/dev/test split the run learned from train of (with `seed`), if any.
    pub split: Option<Split>,
    /// The lines of `log.jsonl` that belong to these weights (set when the run is saved).
    pub log: Option<LogLink>,
}

/// Which loss log a checkpoint belongs with: its first `lines` lines, whose bytes (newlines
/// included) hash to `digest` (64-bit FNV-1a). The log is written before the model, so a run
/// stopped between the two leaves a log that runs past the model (its extra lines are left
/// out when it is read) or one of another run (refused), never a silent gap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogLink {
    pub lines: usize,
    pub digest: u64,
}

impl LogLink {
    /// The link to a whole log, as [`log_to_string`] writes it.
    pub fn of(text: &str) -> LogLink {
        LogLink {
            lines: text.lines().count(),
            digest: fnv1a(text.as_bytes()),
        }
    }
}

/// 64-bit FNV-1a: a checksum, not a cryptographic hash.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Both trained models and the settings that produced them.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    pub settings: RunSettings,
    pub counts: Vec<u32>,
    pub probs: Vec<f32>,
    pub weights: Vec<f32>,
    pub neural_probs: Vec<f32>,
}

/// One line of the loss log.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogEntry {
    pub step: usize,
    pub loss: StepLoss,
    /// The neural model's loss on dev at this step, where it was measured.
    pub dev_loss: Option<f64>,
}

/// The same safetensors file with the keys of its JSON header in sorted order, so that the
/// same run writes the same bytes: the metadata is a hash map, whose order varies from run to
/// run. The header is `u64 length (little endian)` then that many bytes of JSON padded with
/// spaces; reordering the keys of compact JSON keeps its length, and the tensor offsets are
/// relative to the end of the header, so nothing else moves.
fn with_sorted_header(mut bytes: Vec<u8>) -> Vec<u8> {
    let Some(length) = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    else {
        return bytes;
    };
    let end = 8 + length as usize;
    let Some(Ok(header)) = bytes
        .get(8..end)
        .map(serde_json::from_slice::<serde_json::Value>)
    else {
        return bytes;
    };
    // serde_json's map is ordered by key; compact output, padded as safetensors pads it.
    let mut sorted = header.to_string().into_bytes();
    if sorted.len() > end - 8 {
        return bytes;
    }
    sorted.resize(end - 8, b' ');
    bytes[8..end].copy_from_slice(&sorted);
    bytes
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let write_error = |source| CheckpointError::Write {
        path: path.display().to_string(),
        source,
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let temp = path.with_file_name(format!(
        ".{}.{}.tmp",
        name.unwrap_or_default(),
        std::process::id()
    ));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        pause_before_rename();
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.map_err(write_error)
}

/// For the tests that stop a run in the middle of saving it: with
/// `MAKEMORE_TEST_PAUSE_BEFORE_RENAME_MS=N`, every file waits N ms (at most a minute) between
/// being written under its temporary name and being renamed into place.
fn pause_before_rename() {
    if let Some(ms) = std::env::var("MAKEMORE_TEST_PAUSE_BEFORE_RENAME_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms.min(60_000)));
    }
}

fn to_bytes_f32(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl Checkpoint {
    /// Rows of every table: V^K (a checkpoint's tables exist, so it fits).
    pub fn num_rows(&self) -> usize {
        let s = &self.settings;
        crate::limits::table_rows(s.vocab.len(), s.context_len).unwrap_or(usize::MAX)
    }

    /// The safetensors bytes of this checkpoint.
    pub fn to_bytes(&self) -> Result<Vec<u8>, CheckpointError> {
        let s = &self.settings;
        let largest = self.counts.iter().copied().max().unwrap_or(0);
        if largest > i32::MAX as u32 {
            return Err(CheckpointError::CountTooLarge { largest });
        }
        let counts: Vec<u8> = self
            .counts
            .iter()
            .flat_map(|&n| (n as i32).to_le_bytes())
            .collect();
        let probs = to_bytes_f32(&self.probs);
        let weights = to_bytes_f32(&self.weights);
        let neural_probs = to_bytes_f32(&self.neural_probs);
        let shape = vec![self.num_rows(), s.vocab.len()];
        let view = |dtype, data| {
            TensorView::new(dtype, shape.clone(), data).map_err(|e| CheckpointError::Write {
                path: MODEL_FILE.to_string(),
                source: std::io::Error::other(format!(
                    "a table does not have {shape:?} entries: {e}"
                )),
            })
        };
        let tensors = [
            ("counts", view(Dtype::I32, &counts[..])?),
            ("probs", view(Dtype::F32, &probs[..])?),
            ("weights", view(Dtype::F32, &weights[..])?),
            ("neural_probs", view(Dtype::F32, &neural_probs[..])?),
        ];
        let metadata: HashMap<String, String> = [
            ("format", FORMAT.to_string()),
            ("vocab", s.vocab.to_string()),
            ("context_len", s.context_len.to_string()),
            ("smoothing", s.smoothing.to_string()),
            ("seed", s.seed.to_string()),
            ("steps", s.steps.to_string()),
            ("lr", s.lr.to_string()),
            ("reg", s.reg.to_string()),
            (
                "input",
                s.input
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
            (
                "split",
                s.split.map(|split| split.to_string()).unwrap_or_default(),
            ),
        ]
        .into_iter()
        .chain(s.log.iter().flat_map(|link| {
            [
                ("log_lines", link.lines.to_string()),
                ("log_digest", format!("{:016x}", link.digest)),
            ]
        }))
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let bytes = safetensors::serialize(tensors, Some(metadata)).map_err(|e| {
            CheckpointError::Write {
                path: MODEL_FILE.to_string(),
                source: std::io::Error::other(e.to_string()),
            }
        })?;
        Ok(with_sorted_header(bytes))
    }

    /// Reads a checkpoint from safetensors bytes; `path` names it in errors.
    pub fn from_bytes(bytes: &[u8], path: &str) -> Result<Checkpoint, CheckpointError> {
        let not_safetensors = |reason: String| CheckpointError::NotSafetensors {
            path: path.to_string(),
            reason,
        };
        let (_, header) =
            SafeTensors::read_metadata(bytes).map_err(|e| not_safetensors(e.to_string()))?;
        let tensors =
            SafeTensors::deserialize(bytes).map_err(|e| not_safetensors(e.to_string()))?;
        let reader = CheckpointReader {
            meta: header.metadata().clone().unwrap_or_default(),
            path,
        };
        let (settings, num_rows) = reader.settings()?;
        reader.tables(&tensors, settings, num_rows)
    }

    /// Saves to `dir/model.safetensors`, creating `dir` if needed.
    pub fn save(&self, dir: &Path) -> Result<PathBuf, CheckpointError> {
        create_dir(dir)?;
        let path = dir.join(MODEL_FILE);
        write_atomically(&path, &self.to_bytes()?)?;
        Ok(path)
    }

    /// Loads `dir/model.safetensors`.
    pub fn load(dir: &Path) -> Result<Checkpoint, CheckpointError> {
        let path = dir.join(MODEL_FILE);
        let name = path.display().to_string();
        if !path.exists() {
            return Err(CheckpointError::Missing {
                dir: dir.display().to_string(),
            });
        }
        let bytes = std::fs::read(&path).map_err(|source| CheckpointError::Read {
            path: name.clone(),
            source,
        })?;
        Checkpoint::from_bytes(&bytes, &name)
    }
}

/// A safetensors file being read as a checkpoint: its string metadata, checked entry by entry,
/// then its tensors, checked against the settings. Every error names the file and says what
/// in it is wrong.
struct CheckpointReader<'a> {
    meta: HashMap<String, String>,
    path: &'a str,
}

impl CheckpointReader<'_> {
    fn bad(&self, reason: String) -> CheckpointError {
        CheckpointError::NotACheckpoint {
            path: self.path.to_string(),
            reason,
        }
    }

    /// A metadata entry that every checkpoint has.
    fn field(&self, key: &str) -> Result<String, CheckpointError> {
        self.meta
            .get(key)
            .cloned()
            .ok_or_else(|| self.bad(format!("no {key:?} in its metadata")))
    }

    /// A metadata entry that holds a number.
    fn number(&self, key: &str) -> Result<f64, CheckpointError> {
        let text = self.field(key)?;
        text.parse::<f64>()
            .map_err(|_| self.bad(format!("its {key:?} is {text:?}, not a number")))
    }

    /// The run's settings, and V^K, the rows of its tables.
    fn settings(&self) -> Result<(RunSettings, usize), CheckpointError> {
        let (vocab, context_len, num_rows) = self.table_shape()?;
        let log = self.log_link()?;
        let input = self.field("input")?;
        let split = self.split()?;
        let settings = RunSettings {
            split,
            context_len,
            smoothing: self.number("smoothing")? as f32,
            seed: self
                .field("seed")?
                .parse()
                .map_err(|_| self.bad("its seed is not a whole number".to_string()))?,
            steps: self.number("steps")? as usize,
            lr: self.number("lr")? as f32,
            reg: self.number("reg")? as f32,
            input: (!input.is_empty()).then(|| PathBuf::from(input)),
            vocab,
            log,
        };
        Ok((settings, num_rows))
    }

    /// The format, the vocabulary (V symbols) and the context length K, and V^K, the rows of
    /// the tables: each checked before the next is read.
    fn table_shape(&self) -> Result<(Vocab, usize, usize), CheckpointError> {
        if self.field("format")? != FORMAT {
            return Err(self.bad(format!(
                "its format is {:?}, this program reads {FORMAT:?}",
                self.field("format")?
            )));
        }
        let vocab = Vocab::from_chars(self.field("vocab")?.chars().collect())
            .map_err(|reason| self.bad(format!("its vocabulary is not valid: {reason}")))?;
        crate::limits::check_vocab(vocab.len()).map_err(|e| self.bad(e.to_string()))?;
        let context_len = self.number("context_len")? as usize;
        if !(1..=8).contains(&context_len) {
            return Err(self.bad(format!("its context length {context_len} is not 1 to 8")));
        }
        let Some(num_rows) = crate::limits::table_rows(vocab.len(), context_len) else {
            return Err(self.bad(format!(
                "a vocabulary of {} symbols and context {context_len} make a table larger than this machine can address",
                vocab.len()
            )));
        };
        Ok((vocab, context_len, num_rows))
    }

    /// The link to the loss log: both of its entries, or neither in a checkpoint written
    /// before the log was linked to the model.
    fn log_link(&self) -> Result<Option<LogLink>, CheckpointError> {
        match (self.meta.get("log_lines"), self.meta.get("log_digest")) {
            (None, None) => Ok(None),
            (Some(lines), Some(digest)) => Ok(Some(LogLink {
                lines: lines
                    .parse()
                    .map_err(|_| self.bad(format!("its log_lines {lines:?} is not a count")))?,
                digest: u64::from_str_radix(digest, 16).map_err(|_| {
                    self.bad(format!("its log_digest {digest:?} is not hexadecimal"))
                })?,
            })),
            _ => {
                Err(self
                    .bad("it has one of log_lines and log_digest without the other".to_string()))
            }
        }
    }

    /// The train/dev/test split. Optional: checkpoints of runs without a split may not have it.
    fn split(&self) -> Result<Option<Split>, CheckpointError> {
        match self.meta.get("split").map(String::as_str) {
            None | Some("") => Ok(None),
            Some(text) => text
                .parse::<Split>()
                .map(Some)
                .map_err(|e| self.bad(format!("its split {text:?} is not valid: {e}"))),
        }
    }

    /// The four tables, each `[V^K, V]` of its dtype; the counts must not be negative.
    fn tables(
        &self,
        tensors: &SafeTensors,
        settings: RunSettings,
        num_rows: usize,
    ) -> Result<Checkpoint, CheckpointError> {
        let shape = [num_rows, settings.vocab.len()];
        let tensor = |name: &str, dtype: Dtype| -> Result<&[u8], CheckpointError> {
            let view = tensors
                .tensor(name)
                .map_err(|_| self.bad(format!("it has no tensor {name:?}")))?;
            if view.dtype() != dtype || view.shape() != shape {
                return Err(self.bad(format!(
                    "tensor {name:?} is {:?} {:?}, expected {dtype:?} {shape:?} for a vocabulary of {} and context {}",
                    view.dtype(),
                    view.shape(),
                    settings.vocab.len(),
                    settings.context_len
                )));
            }
            Ok(view.data())
        };
        let floats = |data: &[u8]| -> Vec<f32> {
            data.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        };
        let counts = tensor("counts", Dtype::I32)?
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .map(|n| u32::try_from(n).map_err(|_| self.bad(format!("it has a negative count {n}"))))
            .collect::<Result<Vec<u32>, _>>()?;
        Ok(Checkpoint {
            counts,
            probs: floats(tensor("probs", Dtype::F32)?),
            weights: floats(tensor("weights", Dtype::F32)?),
            neural_probs: floats(tensor("neural_probs", Dtype::F32)?),
            settings,
        })
    }
}

fn create_dir(dir: &Path) -> Result<(), CheckpointError> {
    std::fs::create_dir_all(dir).map_err(|source| CheckpointError::Write {
        path: dir.display().to_string(),
        source,
    })
}

/// The loss log as JSON lines.
pub fn log_to_string(entries: &[LogEntry]) -> String {
    entries
        .iter()
        .map(|e| {
            let mut line =
                serde_json::json!({"step": e.step, "loss": e.loss.total, "data_loss": e.loss.data});
            if let Some(dev) = e.dev_loss {
                line["dev_loss"] = serde_json::json!(dev);
            }
            line.to_string() + "\n"
        })
        .collect()
}

/// Parses the loss log; `path` names it in errors.
pub fn log_from_str(text: &str, path: &str) -> Result<Vec<LogEntry>, CheckpointError> {
    let bad = |line: usize, reason: &str| CheckpointError::BadLog {
        path: path.to_string(),
        reason: format!("line {line}: {reason}"),
    };
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|_| bad(index + 1, "not a JSON object"))?;
        let number = |key: &str| value.get(key).and_then(|v| v.as_f64());
        let (Some(step), Some(total), Some(data)) =
            (number("step"), number("loss"), number("data_loss"))
        else {
            return Err(bad(index + 1, "needs \"step\", \"loss\" and \"data_loss\""));
        };
        entries.push(LogEntry {
            step: step as usize,
            loss: StepLoss { total, data },
            dev_loss: number("dev_loss"),
        });
    }
    Ok(entries)
}

/// Writes `dir/log.jsonl` (atomically), on its own: see [`save_run`] for a log with its model.
pub fn save_log(dir: &Path, entries: &[LogEntry]) -> Result<PathBuf, CheckpointError> {
    create_dir(dir)?;
    let path = dir.join(LOG_FILE);
    write_atomically(&path, log_to_string(entries).as_bytes())?;
    Ok(path)
}

/// Saves a run: `dir/log.jsonl` first, then `dir/model.safetensors`, which records the lines of
/// the log that belong to it ([`LogLink`]). Each file is written atomically; a run stopped
/// between the two leaves the previous model with a log that [`load_log`] trims or refuses.
/// Returns the paths of the model and the log.
pub fn save_run(
    dir: &Path,
    checkpoint: &mut Checkpoint,
    entries: &[LogEntry],
) -> Result<(PathBuf, PathBuf), CheckpointError> {
    create_dir(dir)?;
    let text = log_to_string(entries);
    checkpoint.settings.log = Some(LogLink::of(&text));
    // Serialized before either file is touched: a model that cannot be written leaves both.
    let model_bytes = checkpoint.to_bytes()?;
    let log_path = dir.join(LOG_FILE);
    write_atomically(&log_path, text.as_bytes())?;
    let model_path = dir.join(MODEL_FILE);
    write_atomically(&model_path, &model_bytes)?;
    Ok((model_path, log_path))
}

/// The most bytes of a safetensors header this program reads (a vocabulary of 65,536 symbols
/// takes 256 KiB of it); a larger length is a corrupt file, not a reason to allocate.
const MAX_HEADER_BYTES: u64 = 64 << 20;

/// The string metadata of `dir/model.safetensors`, read from its header alone (not its
/// tables), or `None` when there is no model.
fn model_metadata(dir: &Path) -> Result<Option<HashMap<String, String>>, CheckpointError> {
    use std::io::Read as _;
    let path = dir.join(MODEL_FILE);
    let name = path.display().to_string();
    let mut file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(CheckpointError::Read { path: name, source }),
    };
    let not_safetensors = |reason: &str| CheckpointError::NotSafetensors {
        path: name.clone(),
        reason: reason.to_string(),
    };
    let mut length = [0u8; 8];
    file.read_exact(&mut length)
        .map_err(|_| not_safetensors("shorter than its header"))?;
    let length = u64::from_le_bytes(length);
    if length > MAX_HEADER_BYTES {
        return Err(not_safetensors("its header length is implausible"));
    }
    let mut header = vec![0u8; length as usize];
    file.read_exact(&mut header)
        .map_err(|_| not_safetensors("shorter than its header"))?;
    let header: serde_json::Value =
        serde_json::from_slice(&header).map_err(|_| not_safetensors("its header is not JSON"))?;
    let metadata = header
        .get("__metadata__")
        .and_then(|m| m.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(metadata))
}

/// Reads `dir/log.jsonl`: the lines that belong to `dir/model.safetensors` when the model
/// names them (extra lines, written by a run stopped before it saved its model, are left
/// out), else every line. A log that does not hold the model's lines is refused.
pub fn load_log(dir: &Path) -> Result<Vec<LogEntry>, CheckpointError> {
    let path = dir.join(LOG_FILE);
    let name = path.display().to_string();
    let text = std::fs::read_to_string(&path).map_err(|source| CheckpointError::Read {
        path: name.clone(),
        source,
    })?;
    let link = match model_metadata(dir)? {
        Some(meta) => match (meta.get("log_lines"), meta.get("log_digest")) {
            (Some(lines), Some(digest)) => lines
                .parse()
                .ok()
                .zip(u64::from_str_radix(digest, 16).ok())
                .map(|(lines, digest)| LogLink { lines, digest }),
            _ => None,
        },
        None => None,
    };
    let Some(link) = link else {
        return log_from_str(&text, &name);
    };
    let kept = linked_prefix(&text, link).ok_or_else(|| CheckpointError::BadLog {
        path: name.clone(),
        reason: format!(
            "it does not hold the {} lines that {} was saved with (a run stopped between writing the two?); train again without --resume, or remove {LOG_FILE}",
            link.lines,
            dir.join(MODEL_FILE).display()
        ),
    })?;
    let extra = text.lines().count() - link.lines;
    if extra > 0 {
        log::debug!("{name}: {extra} lines past those of the model left out");
    }
    log_from_str(kept, &name)
}

/// The first `link.lines` lines of `text` (newlines included), if they hash to `link.digest`.
fn linked_prefix(text: &str, link: LogLink) -> Option<&str> {
    let end = if link.lines == 0 {
        0
    } else {
        text.match_indices('\n')
            .nth(link.lines - 1)
            .map(|(i, _)| i + 1)?
    };
    let prefix = &text[..end];
    (fnv1a(prefix.as_bytes()) == link.digest).then_some(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Checkpoint {
        let vocab = Vocab::from_words(&["ab"]);
        Checkpoint {
            settings: RunSettings {
                vocab,
                context_len: 1,
                smoothing: 1.0,
                seed: 7,
                steps: 3,
                lr: 50.0,
                reg: 0.01,
                input: None,
                split: None,
                log: Some(LogLink {
                    lines: 3,
                    digest: 0x0123_4567_89ab_cdef,
                }),
            },
            counts: (0..9).collect(),
            probs: (0..9).map(|i| i as f32 / 9.0).collect(),
            weights: (0..9).map(|i| -(i as f32)).collect(),
            neural_probs: vec![0.5; 9],
        }
    }

    #[test]
    fn a_checkpoint_reads_back_as_written() {
        let c = tiny();
        let bytes = c.to_bytes().unwrap();
        assert_eq!(Checkpoint::from_bytes(&bytes, "t").unwrap(), c);
    }

    #[test]
    fn truncated_and_foreign_bytes_are_refused() {
        let bytes = tiny().to_bytes().unwrap();
        for cut in [0, 4, 9, bytes.len() / 2, bytes.len() - 1] {
            let err = Checkpoint::from_bytes(&bytes[..cut], "t").unwrap_err();
            assert!(
                matches!(err, CheckpointError::NotSafetensors { .. }),
                "{cut}: {err}"
            );
        }
        let foreign = safetensors::serialize(
            [(
                "x",
                TensorView::new(Dtype::F32, vec![1], &[0u8; 4][..]).unwrap(),
            )],
            None,
        )
        .unwrap();
        let err = Checkpoint::from_bytes(&foreign, "t").unwrap_err();
        assert!(
            matches!(err, CheckpointError::NotACheckpoint { .. }),
            "{err}"
        );
    }

    fn entries(steps: std::ops::Range<usize>, loss: f64) -> Vec<LogEntry> {
        steps
            .map(|step| LogEntry {
                step,
                loss: StepLoss {
                    total: loss - step as f64 * 0.125,
                    data: loss,
                },
                dev_loss: None,
            })
            .collect()
    }

    #[test]
    fn the_model_names_the_lines_of_the_log_that_belong_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut checkpoint = tiny();
        save_run(dir.path(), &mut checkpoint, &entries(0..3, 3.0)).unwrap();
        assert_eq!(load_log(dir.path()).unwrap(), entries(0..3, 3.0));
        let saved = Checkpoint::load(dir.path()).unwrap();
        assert_eq!(saved.settings.log.map(|l| l.lines), Some(3));

        // A resumed run stopped after writing its log, before its model: the old model's
        // three lines are read, the two past them left out.
        save_log(dir.path(), &entries(0..5, 3.0)).unwrap();
        assert_eq!(load_log(dir.path()).unwrap(), entries(0..3, 3.0));

        // A new run stopped at the same point: its log is not the model's, and says so.
        save_log(dir.path(), &entries(0..5, 2.0)).unwrap();
        let err = load_log(dir.path()).unwrap_err().to_string();
        assert!(err.contains("does not hold the 3 lines"), "{err}");
        save_log(dir.path(), &entries(0..2, 3.0)).unwrap();
        assert!(
            load_log(dir.path()).is_err(),
            "a log shorter than the model's"
        );

        // A model saved without a link (an older version) takes the whole log.
        let mut unlinked = tiny();
        unlinked.settings.log = None;
        unlinked.save(dir.path()).unwrap();
        assert_eq!(load_log(dir.path()).unwrap(), entries(0..2, 3.0));
    }

    #[test]
    fn a_vocabulary_out_of_order_or_twice_is_refused() {
        let mut c = tiny();
        for chars in [".ba", ".aa"] {
            c.settings.vocab = Vocab::from_chars(".ab".chars().collect()).unwrap();
            let bytes = c.to_bytes().unwrap();
            // The same length, so the header stays valid: ".ab" becomes the bad one.
            let mut bytes = bytes;
            let at = bytes
                .windows(5)
                .position(|w| w == b"\".ab\"")
                .expect("the vocabulary in the header");
            bytes[at + 1..at + 4].copy_from_slice(chars.as_bytes());
            let err = Checkpoint::from_bytes(&bytes, "t").unwrap_err().to_string();
            assert!(err.contains("vocabulary is not valid"), "{chars}: {err}");
        }
    }

    #[test]
    fn the_log_reads_back_as_written() {
        let entries: Vec<LogEntry> = (0..3)
            .map(|step| LogEntry {
                step,
                loss: StepLoss {
                    total: 3.0 - step as f64 * 0.25,
                    data: 2.5,
                },
                dev_loss: (step == 2).then_some(2.75),
            })
            .collect();
        let text = log_to_string(&entries);
        assert_eq!(log_from_str(&text, "t").unwrap(), entries);
        assert!(log_from_str("{\"step\": 1}\n", "t").is_err());
    }
}

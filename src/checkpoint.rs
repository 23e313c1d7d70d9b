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
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.map_err(write_error)
}

fn to_bytes_f32(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl Checkpoint {
    /// Rows of every table: V^K.
    pub fn num_rows(&self) -> usize {
        self.settings
            .vocab
            .len()
            .pow(self.settings.context_len as u32)
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
            TensorView::new(dtype, shape.clone(), data).expect("tensor sizes follow the shape")
        };
        let tensors = [
            ("counts", view(Dtype::I32, &counts[..])),
            ("probs", view(Dtype::F32, &probs[..])),
            ("weights", view(Dtype::F32, &weights[..])),
            ("neural_probs", view(Dtype::F32, &neural_probs[..])),
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
        let bad = |reason: String| CheckpointError::NotACheckpoint {
            path: path.to_string(),
            reason,
        };
        let (_, header) =
            SafeTensors::read_metadata(bytes).map_err(|e| not_safetensors(e.to_string()))?;
        let tensors =
            SafeTensors::deserialize(bytes).map_err(|e| not_safetensors(e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let field = |key: &str| {
            meta.get(key)
                .cloned()
                .ok_or_else(|| bad(format!("no {key:?} in its metadata")))
        };
        let number = |key: &str| -> Result<f64, CheckpointError> {
            let text = field(key)?;
            text.parse::<f64>()
                .map_err(|_| bad(format!("its {key:?} is {text:?}, not a number")))
        };
        if field("format")? != FORMAT {
            return Err(bad(format!(
                "its format is {:?}, this program reads {FORMAT:?}",
                field("format")?
            )));
        }
        let vocab = Vocab::from_chars(field("vocab")?.chars().collect())
            .ok_or_else(|| bad("its vocabulary does not start with '.'".to_string()))?;
        let context_len = number("context_len")? as usize;
        if !(1..=8).contains(&context_len) {
            return Err(bad(format!(
                "its context length {context_len} is not 1 to 8"
            )));
        }
        let input = field("input")?;
        // Optional: checkpoints of runs without a split may not have it.
        let split = match meta.get("split").map(String::as_str) {
            None | Some("") => None,
            Some(text) => Some(
                text.parse::<Split>()
                    .map_err(|e| bad(format!("its split {text:?} is not valid: {e}")))?,
            ),
        };
        let settings = RunSettings {
            split,
            context_len,
            smoothing: number("smoothing")? as f32,
            seed: field("seed")?
                .parse()
                .map_err(|_| bad("its seed is not a whole number".to_string()))?,
            steps: number("steps")? as usize,
            lr: number("lr")? as f32,
            reg: number("reg")? as f32,
            input: (!input.is_empty()).then(|| PathBuf::from(input)),
            vocab,
        };
        let shape = [
            settings.vocab.len().pow(context_len as u32),
            settings.vocab.len(),
        ];
        let tensor = |name: &str, dtype: Dtype| -> Result<&[u8], CheckpointError> {
            let view = tensors
                .tensor(name)
                .map_err(|_| bad(format!("it has no tensor {name:?}")))?;
            if view.dtype() != dtype || view.shape() != shape {
                return Err(bad(format!(
                    "tensor {name:?} is {:?} {:?}, expected {dtype:?} {shape:?} for a vocabulary of {} and context {context_len}",
                    view.dtype(),
                    view.shape(),
                    settings.vocab.len()
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
            .map(|n| u32::try_from(n).map_err(|_| bad(format!("it has a negative count {n}"))))
            .collect::<Result<Vec<u32>, _>>()?;
        Ok(Checkpoint {
            counts,
            probs: floats(tensor("probs", Dtype::F32)?),
            weights: floats(tensor("weights", Dtype::F32)?),
            neural_probs: floats(tensor("neural_probs", Dtype::F32)?),
            settings,
        })
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

/// Writes `dir/log.jsonl` (atomically).
pub fn save_log(dir: &Path, entries: &[LogEntry]) -> Result<PathBuf, CheckpointError> {
    create_dir(dir)?;
    let path = dir.join(LOG_FILE);
    write_atomically(&path, log_to_string(entries).as_bytes())?;
    Ok(path)
}

/// Reads `dir/log.jsonl`.
pub fn load_log(dir: &Path) -> Result<Vec<LogEntry>, CheckpointError> {
    let path = dir.join(LOG_FILE);
    let name = path.display().to_string();
    let text = std::fs::read_to_string(&path).map_err(|source| CheckpointError::Read {
        path: name.clone(),
        source,
    })?;
    log_from_str(&text, &name)
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

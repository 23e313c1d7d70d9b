//! The work directory (docs/work-dir.md): `model.safetensors`, four `[V^K, V]` tables (rows:
//! contexts, columns: the next character) with the run's settings as string metadata, and
//! `log.jsonl`, one loss line per step. Each file is written under a temporary name and renamed
//! over the old one, so a stopped run leaves the previous files whole. Errors name the file first.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::backend::StepLoss;
use crate::data::Vocab;
use crate::split::Split;

pub const MODEL_FILE: &str = "model.safetensors";
pub const LOG_FILE: &str = "log.jsonl";
/// The `format` metadata entry, so that a later layout can be told apart.
pub const FORMAT: &str = "makemore-wgpu/1";

/// The settings of the run that produced a checkpoint (its metadata).
#[derive(Clone, Debug, PartialEq)]
pub struct RunSettings {
    pub vocab: Vocab,
    pub context_len: usize,
    pub smoothing: f32,
    pub seed: u64,
    /// Steps taken so far, across resumed runs.
    pub steps: usize,
    pub lr: f32,
    pub reg: f32,
    /// The word file (absolute path); None for the built-in names.
    pub input: Option<PathBuf>,
    pub split: Option<Split>,
    /// The first N lines of `log.jsonl` (newlines included), those of these weights, and their
    /// FNV-1a 64 digest; set when the run is saved, checked by [`load_log`].
    pub log: Option<(usize, u64)>,
}

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

/// One line of the loss log; `dev_loss` where the run measured it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogEntry {
    pub step: usize,
    pub loss: StepLoss,
    pub dev_loss: Option<f64>,
}

/// Writes `bytes` to `path` through `.NAME.PID.tmp` in the same directory and a rename.
/// `MAKEMORE_TEST_PAUSE_BEFORE_RENAME_MS=N` waits N ms (at most a minute) before the rename,
/// for the tests that stop a run while it saves.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        let pause = std::env::var("MAKEMORE_TEST_PAUSE_BEFORE_RENAME_MS");
        if let Some(ms) = pause.ok().and_then(|v| v.parse::<u64>().ok()) {
            std::thread::sleep(std::time::Duration::from_millis(ms.min(60_000)));
        }
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

impl Checkpoint {
    /// Rows of every table: V^K (a checkpoint's tables exist, so it fits).
    pub fn num_rows(&self) -> usize {
        let s = &self.settings;
        crate::limits::table_rows(s.vocab.len(), s.context_len).unwrap_or(usize::MAX)
    }

    /// The safetensors bytes of this checkpoint, the header's keys sorted so that a run writes
    /// the same bytes each time (the metadata is a hash map).
    pub fn to_bytes(&self) -> anyhow::Result<Vec<u8>> {
        let s = &self.settings;
        let largest = self.counts.iter().copied().max().unwrap_or(0);
        anyhow::ensure!(
            largest <= i32::MAX as u32,
            "the counts do not fit the checkpoint's I32 tensor (largest {largest})"
        );
        let floats = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect();
        let ints = self.counts.iter().flat_map(|n| n.to_le_bytes()).collect();
        let data: [(&str, Dtype, Vec<u8>); 4] = [
            ("counts", Dtype::I32, ints),
            ("probs", Dtype::F32, floats(&self.probs)),
            ("weights", Dtype::F32, floats(&self.weights)),
            ("neural_probs", Dtype::F32, floats(&self.neural_probs)),
        ];
        let shape = vec![self.num_rows(), s.vocab.len()];
        let tensors = data.iter().map(|(name, dtype, data)| {
            let view = TensorView::new(*dtype, shape.clone(), data).map_err(|e| {
                anyhow!("cannot write {MODEL_FILE}: a table does not have {shape:?} entries: {e}")
            });
            Ok((*name, view?))
        });
        let tensors = tensors.collect::<anyhow::Result<Vec<_>>>()?;
        let input = (s.input.as_ref()).map_or(String::new(), |p| p.display().to_string());
        let mut metadata: HashMap<String, String> = [
            ("format", FORMAT.to_string()),
            ("vocab", s.vocab.to_string()),
            ("context_len", s.context_len.to_string()),
            ("smoothing", s.smoothing.to_string()),
            ("seed", s.seed.to_string()),
            ("steps", s.steps.to_string()),
            ("lr", s.lr.to_string()),
            ("reg", s.reg.to_string()),
            ("input", input),
            ("split", s.split.map(|x| x.to_string()).unwrap_or_default()),
        ]
        .map(|(k, v)| (k.to_string(), v))
        .into();
        if let Some((lines, digest)) = s.log {
            metadata.insert("log_lines".into(), lines.to_string());
            metadata.insert("log_digest".into(), format!("{digest:016x}"));
        }
        let mut bytes = safetensors::serialize(tensors, Some(metadata))
            .map_err(|e| anyhow!("cannot write {MODEL_FILE}: {e}"))?;
        // Sorting compact JSON keeps its length (serde_json's map is sorted), and tensor
        // offsets count from the header's end, so nothing else moves.
        let end = 8 + u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..end])?;
        let mut sorted = header.to_string().into_bytes();
        sorted.resize(end - 8, b' ');
        bytes[8..end].copy_from_slice(&sorted);
        Ok(bytes)
    }

    /// Reads a checkpoint from safetensors bytes; `path` names it in errors, each of which says
    /// what in the file is wrong.
    pub fn from_bytes(bytes: &[u8], path: &str) -> anyhow::Result<Checkpoint> {
        let not_safetensors = |e: safetensors::SafeTensorError| {
            anyhow!("{path} is not a safetensors file ({e}); it may be truncated or corrupt")
        };
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(not_safetensors)?;
        let tensors = SafeTensors::deserialize(bytes).map_err(not_safetensors)?;
        let bad = |reason| anyhow!("{path} is not a makemore checkpoint: {reason}");
        let (settings, num_rows) =
            read_settings(&header.metadata().clone().unwrap_or_default(), &bad)?;
        let shape = [num_rows, settings.vocab.len()];
        let tensor = |name: &str, dtype: Dtype| {
            let view =
                (tensors.tensor(name)).map_err(|_| bad(format!("it has no tensor {name:?}")))?;
            if view.dtype() != dtype || view.shape() != shape {
                let (v, k) = (settings.vocab.len(), settings.context_len);
                let got = format!("{:?} {:?}", view.dtype(), view.shape());
                return Err(bad(format!("tensor {name:?} is {got}, expected {dtype:?} {shape:?} for a vocabulary of {v} and context {k}")));
            }
            let words = view.data().chunks_exact(4);
            Ok(words.map(|b| [b[0], b[1], b[2], b[3]]).collect::<Vec<_>>())
        };
        let floats = |words: Vec<[u8; 4]>| words.into_iter().map(f32::from_le_bytes).collect();
        let counts = (tensor("counts", Dtype::I32)?.into_iter())
            .map(i32::from_le_bytes)
            .map(|n| u32::try_from(n).map_err(|_| bad(format!("it has a negative count {n}"))))
            .collect::<anyhow::Result<Vec<u32>>>()?;
        Ok(Checkpoint {
            counts,
            probs: floats(tensor("probs", Dtype::F32)?),
            weights: floats(tensor("weights", Dtype::F32)?),
            neural_probs: floats(tensor("neural_probs", Dtype::F32)?),
            settings,
        })
    }

    /// Loads `dir/model.safetensors`.
    pub fn load(dir: &Path) -> anyhow::Result<Checkpoint> {
        let path = dir.join(MODEL_FILE);
        anyhow::ensure!(
            path.exists(),
            "no checkpoint in {0}: run `makemore train --work-dir {0}` first",
            dir.display()
        );
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        Checkpoint::from_bytes(&bytes, &path.display().to_string())
    }
}

/// The run's settings from the metadata, each entry checked in turn, and V^K.
fn read_settings(
    meta: &HashMap<String, String>,
    bad: &dyn Fn(String) -> anyhow::Error,
) -> anyhow::Result<(RunSettings, usize)> {
    let missing = |key: &str| bad(format!("no {key:?} in its metadata"));
    let field = |key: &str| meta.get(key).ok_or_else(|| missing(key));
    let number = |key: &str| {
        let text = field(key)?;
        (text.parse::<f64>()).map_err(|_| bad(format!("its {key:?} is {text:?}, not a number")))
    };
    let format = field("format")?;
    let reads = format!("its format is {format:?}, this program reads {FORMAT:?}");
    anyhow::ensure!(format == FORMAT, bad(reads));
    let vocab = Vocab::from_chars(field("vocab")?.chars().collect())
        .map_err(|reason| bad(format!("its vocabulary is not valid: {reason}")))?;
    crate::limits::check_vocab(vocab.len()).map_err(|e| bad(e.to_string()))?;
    let context_len = number("context_len")? as usize;
    let outside = format!("its context length {context_len} is not 1 to 8");
    anyhow::ensure!((1..=8).contains(&context_len), bad(outside));
    let num_rows = crate::limits::table_rows(vocab.len(), context_len).ok_or_else(|| bad(format!(
        "a vocabulary of {} symbols and context {context_len} make a table larger than this machine can address",
        vocab.len()
    )))?;
    // Both entries of the log link, or neither (a model saved before logs were linked).
    let one = "it has one of log_lines and log_digest without the other";
    let log = match (meta.get("log_lines"), meta.get("log_digest")) {
        (None, None) => None,
        (Some(lines), Some(digest)) => Some((
            (lines.parse()).map_err(|_| bad(format!("its log_lines {lines:?} is not a count")))?,
            u64::from_str_radix(digest, 16)
                .map_err(|_| bad(format!("its log_digest {digest:?} is not hexadecimal")))?,
        )),
        _ => return Err(bad(one.into())),
    };
    let input = field("input")?;
    let split = (meta.get("split").filter(|text| !text.is_empty())).map(|text| {
        let split = text.parse::<Split>();
        split.map_err(|e| bad(format!("its split {text:?} is not valid: {e}")))
    });
    let settings = RunSettings {
        input: (!input.is_empty()).then(|| PathBuf::from(input)),
        split: split.transpose()?,
        smoothing: number("smoothing")? as f32,
        seed: (field("seed")?.parse()).map_err(|_| bad("its seed is not a whole number".into()))?,
        steps: number("steps")? as usize,
        lr: number("lr")? as f32,
        reg: number("reg")? as f32,
        vocab,
        context_len,
        log,
    };
    Ok((settings, num_rows))
}

/// The loss log as JSON lines.
pub fn log_to_string(entries: &[LogEntry]) -> String {
    let line = |e: &LogEntry| {
        let mut line =
            serde_json::json!({"step": e.step, "loss": e.loss.total, "data_loss": e.loss.data});
        if let Some(dev) = e.dev_loss {
            line["dev_loss"] = serde_json::json!(dev);
        }
        line.to_string() + "\n"
    };
    entries.iter().map(line).collect()
}

/// Parses the loss log (blank lines skipped); `path` names it in errors.
pub fn log_from_str(text: &str, path: &str) -> anyhow::Result<Vec<LogEntry>> {
    let lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    lines
        .map(|(index, line)| {
            let bad = |reason: &str| anyhow!("{path}: line {}: {reason}", index + 1);
            let value: serde_json::Value =
                serde_json::from_str(line).map_err(|_| bad("not a JSON object"))?;
            let number = |key: &str| value.get(key).and_then(|v| v.as_f64());
            match (number("step"), number("loss"), number("data_loss")) {
                (Some(step), Some(total), Some(data)) => Ok(LogEntry {
                    step: step as usize,
                    loss: StepLoss { total, data },
                    dev_loss: number("dev_loss"),
                }),
                _ => Err(bad("needs \"step\", \"loss\" and \"data_loss\"")),
            }
        })
        .collect()
}

/// Saves a run: `dir/log.jsonl` first, then `dir/model.safetensors`, linked to the log's lines
/// (serialized before either file is touched, so a model that cannot be written leaves both);
/// returns their paths.
pub fn save_run(
    dir: &Path,
    checkpoint: &mut Checkpoint,
    entries: &[LogEntry],
) -> anyhow::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot write {}", dir.display()))?;
    let text = log_to_string(entries);
    checkpoint.settings.log = Some((text.lines().count(), fnv1a(text.as_bytes())));
    let model_bytes = checkpoint.to_bytes()?;
    let (model, log) = (dir.join(MODEL_FILE), dir.join(LOG_FILE));
    write_atomically(&log, text.as_bytes())?;
    write_atomically(&model, &model_bytes)?;
    Ok((model, log))
}

/// Reads `dir/log.jsonl`: the lines that `dir/model.safetensors` names (a stopped run's extra
/// lines are left out; a log without them is refused), else every line. The link is read from
/// the model's header alone; one over 64 MiB is corrupt, not a reason to allocate (65,536
/// symbols take 256 KiB).
pub fn load_log(dir: &Path) -> anyhow::Result<Vec<LogEntry>> {
    let (path, model) = (dir.join(LOG_FILE), dir.join(MODEL_FILE));
    let name = path.display().to_string();
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {name}"))?;
    let mut file = match std::fs::File::open(&model) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return log_from_str(&text, &name),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", model.display())),
    };
    let not_safetensors = |reason: &str| {
        let model = model.display();
        anyhow!("{model} is not a safetensors file ({reason}); it may be truncated or corrupt")
    };
    let short = |_| not_safetensors("shorter than its header");
    let mut length = [0u8; 8];
    file.read_exact(&mut length).map_err(short)?;
    let length = u64::from_le_bytes(length);
    if length > 64 << 20 {
        return Err(not_safetensors("its header length is implausible"));
    }
    let mut header = vec![0u8; length as usize];
    file.read_exact(&mut header).map_err(short)?;
    let header: serde_json::Value =
        serde_json::from_slice(&header).map_err(|_| not_safetensors("its header is not JSON"))?;
    let entry = |key: &str| header.get("__metadata__")?.get(key)?.as_str();
    let lines = entry("log_lines").and_then(|l| l.parse::<usize>().ok());
    let digest = entry("log_digest").and_then(|d| u64::from_str_radix(d, 16).ok());
    let Some((lines, digest)) = lines.zip(digest) else {
        return log_from_str(&text, &name);
    };
    // The first `lines` lines, newlines included, if they hash to the digest.
    let end = match lines {
        0 => Some(0),
        n => text.match_indices('\n').nth(n - 1).map(|(i, _)| i + 1),
    };
    let kept = end.map(|end| &text[..end]);
    let kept = kept.filter(|k| fnv1a(k.as_bytes()) == digest);
    let kept = kept.ok_or_else(|| anyhow!(
        "{name}: it does not hold the {lines} lines that {} was saved with (a run stopped between writing the two?); train again without --resume, or remove {LOG_FILE}",
        model.display()
    ))?;
    let extra = text.lines().count() - lines;
    if extra > 0 {
        log::debug!("{name}: {extra} lines past those of the model left out");
    }
    log_from_str(kept, &name)
}

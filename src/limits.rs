//! What a run may ask for, checked before anything of that size is allocated: each model is a
//! V^K x V table of 4-byte entries, under the device's largest binding and host memory.

/// The bytes one table may take, and the limit's name as the user would look it up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableLimit {
    pub max_bytes: u64,
    pub name: String,
}

impl TableLimit {
    /// The CPU reference's bound: 1 GiB a table (it also keeps an f64 gradient, twice this).
    pub fn host() -> TableLimit {
        TableLimit {
            max_bytes: 1 << 30,
            name: "the host-memory bound for one table".to_string(),
        }
    }

    /// The tightest of several limits (the first one on ties).
    pub fn tightest(limits: impl IntoIterator<Item = TableLimit>) -> TableLimit {
        let tightest = limits.into_iter().min_by_key(|limit| limit.max_bytes);
        tightest.unwrap_or_else(TableLimit::host)
    }
}

/// A context too long for the device.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "context {context_len} needs a {vocab_size}^{context_len} x {vocab_size} table ({}), over {} of {}; {}",
    describe_bytes(*.asked_bytes),
    .limit.name,
    describe_bytes(.limit.max_bytes.into()),
    match .largest {
        Some(k) => format!("the largest context that fits is {k}"),
        None => "not even a context of 1 fits".to_string(),
    }
)]
pub struct ContextTooLong {
    pub context_len: usize,
    pub vocab_size: usize,
    /// Bytes the table would take (saturating), and the largest K whose table fits, if any.
    pub asked_bytes: u128,
    pub limit: TableLimit,
    pub largest: Option<usize>,
}

/// Bytes as the exact number and in binary units: "1549681956 bytes = 1.44 GiB".
fn describe_bytes(bytes: u128) -> String {
    let (mut value, mut unit) = (bytes as f64, 0);
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    while value >= 1024.0 && unit + 1 < units.len() {
        (value, unit) = (value / 1024.0, unit + 1);
    }
    match unit {
        0 => format!("{bytes} bytes"),
        _ => format!("{bytes} bytes = {value:.2} {}", units[unit]),
    }
}

/// The most symbols, the boundary included: kernels and the sampler hold a column index in
/// 16 bits or more, and such a table takes 16 GiB at context 1 already.
pub const MAX_VOCAB: usize = 65_536;

/// The most steps of one run: every step's loss is kept (in memory, `log.jsonl` and the JSON
/// output, about 100 bytes a step); `--resume` goes on from there.
pub const MAX_STEPS: usize = 1_000_000;

/// The most names `train` draws from each model: they are held until printed.
pub const MAX_TRAIN_SAMPLES: usize = 100_000;

/// Checks a training run's steps, names to sample and minibatch (0: the full batch) before any
/// work; the message names the flag.
pub fn check_run_counts(
    steps: usize,
    samples: usize,
    batch_size: usize,
    train_pairs: usize,
) -> Result<(), String> {
    Err(if steps > MAX_STEPS {
        format!("--steps {steps} is over the {MAX_STEPS} steps of one run (each step's loss is kept); train in several runs with --resume")
    } else if samples > MAX_TRAIN_SAMPLES {
        format!("--samples {samples} is over the {MAX_TRAIN_SAMPLES} names train prints; draw more with `makemore sample --num N`")
    } else if batch_size > train_pairs {
        format!("--batch-size {batch_size} is larger than the {train_pairs} training examples; use at most that, or 0 for the full batch")
    } else {
        return Ok(());
    })
}

/// A vocabulary larger than [`MAX_VOCAB`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the words have {vocab_size} distinct symbols (the boundary '.' included), over the limit of {MAX_VOCAB}")]
pub struct VocabTooLarge {
    pub vocab_size: usize,
}

pub fn check_vocab(vocab_size: usize) -> Result<(), VocabTooLarge> {
    (vocab_size <= MAX_VOCAB)
        .then_some(())
        .ok_or(VocabTooLarge { vocab_size })
}

/// V^K, the rows of a table, or `None` when it does not fit in a usize.
pub fn table_rows(vocab_size: usize, context_len: usize) -> Option<usize> {
    vocab_size.checked_pow(u32::try_from(context_len).ok()?)
}

/// Bytes of the V^K x V table of 4-byte entries (saturating).
pub fn table_bytes(vocab_size: usize, context_len: usize) -> u128 {
    let v = vocab_size as u128;
    let rows = v.checked_pow(context_len as u32).unwrap_or(u128::MAX);
    rows.saturating_mul(v).saturating_mul(4)
}

/// Why a model's table cannot be made: too many symbols, or too long a context for them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TableTooLarge {
    #[error(transparent)]
    Vocab(#[from] VocabTooLarge),
    #[error(transparent)]
    Context(#[from] ContextTooLong),
}

impl TableTooLarge {
    /// With too long a context: the largest K whose table fits, if any.
    pub fn largest(&self) -> Option<usize> {
        match self {
            TableTooLarge::Vocab(_) => None,
            TableTooLarge::Context(e) => e.largest,
        }
    }
}

/// Checks the vocabulary against [`MAX_VOCAB`] and that the V^K x V table fits under `limit`.
pub fn check_context(
    vocab_size: usize,
    context_len: usize,
    limit: &TableLimit,
) -> Result<(), TableTooLarge> {
    check_vocab(vocab_size)?;
    // Rows and entry indices are u32 on the device: at most 2^32 - 1 bytes either way.
    let max_bytes = limit.max_bytes.min(u32::MAX as u64) as u128;
    let fits = |k: usize| table_bytes(vocab_size, k) <= max_bytes;
    if fits(context_len) {
        return Ok(());
    }
    // Tables grow with K (V >= 2 whenever a context can be too long), so count up from 1.
    let largest = (1..context_len).take_while(|&k| fits(k)).last();
    Err(TableTooLarge::Context(ContextTooLong {
        context_len,
        vocab_size,
        asked_bytes: table_bytes(vocab_size, context_len),
        limit: limit.clone(),
        largest,
    }))
}

/// Peak host memory per byte of a text file held whole (the text, the words as `String`s, the
/// pairs as two u32 arrays and the backend's copy): the peak RSS of `train --input FILE` on
/// 8-21 MB files was 27.5 a byte on the CPU, 34 with `--split`, 35 on lavapipe.
pub const HELD_TEXT_BYTES_PER_BYTE: u64 = 36;

/// Refuses a file of `file_bytes` whose words and pairs would not fit in `available` bytes.
pub fn check_text_fits(
    path: &str,
    file_bytes: u64,
    available: Option<u64>,
    instead: &str,
) -> anyhow::Result<()> {
    let needed = file_bytes as u128 * HELD_TEXT_BYTES_PER_BYTE as u128;
    match available {
        Some(available) if needed > available as u128 => anyhow::bail!(
            "{path} ({}) held in memory with its examples takes about {}, more than the {} available; {instead}",
            describe_bytes(file_bytes.into()),
            describe_bytes(needed),
            describe_bytes(available.into())
        ),
        _ => Ok(()),
    }
}

/// [`check_text_fits`] for the file at `path`, against `MAKEMORE_MEMORY_LIMIT` if set, else
/// `MemAvailable` in /proc/meminfo. A file that cannot be read is left to the reader.
pub fn check_file_fits(path: &std::path::Path, instead: &str) -> anyhow::Result<()> {
    let Some(meta) = std::fs::metadata(path).ok().filter(|meta| meta.is_file()) else {
        return Ok(());
    };
    let available = match std::env::var("MAKEMORE_MEMORY_LIMIT") {
        Ok(limit) => Some(limit.trim().parse().map_err(|_| {
            anyhow::anyhow!("MAKEMORE_MEMORY_LIMIT={limit:?} is not a number of bytes")
        })?),
        Err(_) => {
            let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
            let line = info.lines().find_map(|l| l.strip_prefix("MemAvailable:"));
            let kib = line.and_then(|l| l.split_whitespace().next()?.parse::<u64>().ok());
            kib.map(|kib| kib.saturating_mul(1024))
        }
    };
    check_text_fits(&path.display().to_string(), meta.len(), available, instead)
}

//! The `train` pipeline on a file streamed in blocks: the default path (the count model, then
//! full-batch SGD computed from the count matrix) needs nothing but the V^K x V count table, so
//! the words and the examples are never held, and a file larger than memory trains.
//!
//! ```text
//! scan           first pass (corpus.rs): UTF-8, words, vocabulary, word stats
//! count          second pass: each block's pairs counted into one table on the device
//! count model    normalize_rows; its NLL from the table (count_nll)
//! training       count_descent on the table, as the in-memory counts path does
//! ```
//!
//! Every event and figure is the in-memory pipeline's ([`crate::train::run`]): the counts are
//! the same integers, so the training losses are the same numbers, and the count NLL is the
//! same sum taken cell by cell instead of example by example.

use std::path::Path;

use crate::backend::{Backend, Nll};
use crate::corpus::{check_countable, CountTable, PairEncoder, Scan};
use crate::data::Vocab;
use crate::limits::check_context;
use crate::model::CountModel;
use crate::train::{
    neural_stage, sample_stage, Event, GradientPath, Source, StageClock, TrainConfig, TrainSummary,
};

/// Whether `train` streams its input: the counts path on all the words (no split), which
/// needs only the count table. Every other configuration holds the examples in memory.
pub fn streams(config: &TrainConfig) -> bool {
    config.split.is_none() && config.effective_gradient() == GradientPath::Counts
}

/// Runs the counts path on the file at `path`, whose first pass gave `scan`, read again in
/// blocks of about `chunk_bytes`, reporting each stage to `report` as [`crate::train::run`]
/// does.
#[allow(clippy::too_many_arguments)]
pub fn run_streamed<B: Backend>(
    backend: &mut B,
    path: &Path,
    scan: &Scan,
    chunk_bytes: usize,
    source: &str,
    config: &TrainConfig,
    report: &mut dyn FnMut(Event),
) -> anyhow::Result<TrainSummary> {
    anyhow::ensure!(
        streams(config),
        "only the counts path without --split trains on a streamed file"
    );
    let vocab = scan.vocab.clone();
    let (v, k) = (vocab.len(), config.context_len);
    check_context(v, k, &backend.table_limit())?;
    check_countable(scan.examples, source)?;
    report(Event::Data {
        source: source.to_string(),
        stats: scan.stats.clone(),
        vocab: vocab.clone(),
        examples: scan.examples as usize,
        context_len: k,
    });
    let mut clock = StageClock::start();
    let mut pairs = PairEncoder::open(path, scan, k, chunk_bytes)?;
    let num_rows = pairs.num_rows();
    let counts = backend.count_pair_batches(num_rows, v, &mut pairs)?;
    let table = CountTable::new(counts, v);
    anyhow::ensure!(
        table.examples as u64 == scan.examples,
        "{source} changed while it was read: {} pairs in the first pass, {} counted",
        scan.examples,
        table.examples
    );
    clock.lap("count table (blocks read, encoded, count_pairs)");
    let (count_model, nll) = count_stage(backend, &table, &vocab, config, &mut clock, report)?;
    // The neural model from the table alone: each step's gradient
    // `(c_x softmax(W[x]) - N[x]) / n + 2 reg W / size(W)` (c_x: row x of N summed).
    let trained = neural_stage(
        backend,
        (Source::Table(&table), None),
        (&vocab, (num_rows, v)),
        config,
        nll,
        &mut clock,
        report,
    )?;
    let neural_probs = sample_stage(
        backend,
        &count_model,
        &trained.model,
        config,
        &mut clock,
        report,
    )?;
    Ok(TrainSummary {
        count_nll: nll.mean(),
        losses: trained.losses,
        first_step: trained.first_step,
        final_loss: trained.final_loss,
        dev_losses: Vec::new(),
        kept_step: None,
        neural_probs,
        count_model,
        neural_model: trained.model,
    })
}

/// The count model from the table: `P = (N + smoothing) / row sum`, scored by the mean NLL
/// `-sum(N * log P) / sum(N)` taken cell by cell. Reports [`Event::CountModel`].
fn count_stage<B: Backend>(
    backend: &mut B,
    table: &CountTable,
    vocab: &Vocab,
    config: &TrainConfig,
    clock: &mut StageClock,
    report: &mut dyn FnMut(Event),
) -> anyhow::Result<(CountModel, Nll)> {
    let probs = backend.normalize_rows(&table.counts, vocab.len(), config.smoothing)?;
    let count_model = CountModel {
        vocab: vocab.clone(),
        context_len: config.context_len,
        smoothing: config.smoothing,
        counts: table.counts.clone(),
        probs,
    };
    clock.lap("count model (normalize_rows)");
    let nll = backend.count_table_nll(&count_model.probs, table)?;
    clock.lap("count model NLL (count_nll)");
    report(Event::CountModel {
        smoothing: config.smoothing,
        nll,
        distinct_pairs: count_model.distinct_pairs(),
        most_frequent: count_model.most_frequent(config.top_pairs),
    });
    Ok((count_model, nll))
}

//! The binary as a user runs it, one module per command or concern, and `examples/bigram.rs`
//! against what `train` prints.

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod cli_bench;
mod cli_check;
mod cli_eval_every;
mod cli_exercises;
mod cli_fresh_machine;
mod cli_fuzz;
mod cli_large_vocab;
mod cli_plot;
mod cli_sample_eval;
mod cli_workdir;
mod example_bigram;
mod robustness;

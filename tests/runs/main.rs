//! Whole training runs through the library, GPU against CPU: long runs, context 4, the
//! lecture's exercises, and the file read in blocks or the examples cut into chunks against
//! the same data held whole.

#[path = "../common/mod.rs"]
mod common;

mod context_4;
mod exercises;
mod long_runs;
mod streamed_examples;
mod streaming;

//! Every kernel on the GPU against its CPU twin: one by one on fixed and random data, as
//! properties over generated inputs, and the loop budget every kernel keeps to.

#[path = "../common/mod.rs"]
mod common;

mod counts_path;
mod gpu_vs_cpu;
mod loop_budget;
mod properties;

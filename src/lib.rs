//! makemore-wgpu: the character-level language models of Karpathy's "building makemore"
//! (part 1), with every piece of arithmetic in WGSL compute shaders run through wgpu.
//!
//! The data path, one module per stage:
//! [`data`] (text, vocabulary, examples) -> [`backend`] (the operations, on [`gpu`] or on the
//! [`cpu`] reference) -> [`model`] (count model, neural model) -> [`sample`] (names).
//! [`train`] runs the whole path as the `train` command does, or the counts path on a file
//! read in blocks by [`corpus`], holding only the count table.
//! [`tools`] are built on that core: bench, kernel times, check, lecture, sweep, plot.

pub mod adamw;
pub mod backend;
pub mod checkpoint;
pub mod corpus;
pub mod cpu;
pub mod data;
pub mod driver_output;
pub mod gpu;
pub mod limits;
pub mod model;
pub mod optim;
pub mod rng;
pub mod sample;
pub mod split;
pub mod tools;
pub mod torch_rng;
pub mod train;

pub use backend::{
    Backend, Chosen, DeviceChoice, LossForm, NetForm, Nll, StepLoss, TrainOptions, Transfers,
};
pub use cpu::CpuBackend;
pub use gpu::{Gpu, GpuBackend};
pub use rng::RngKind;

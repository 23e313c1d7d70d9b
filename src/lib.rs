//! makemore-wgpu: the character-level language models of Karpathy's "building makemore"
//! (part 1), every piece of arithmetic in WGSL compute shaders run through wgpu.
//!
//! [`data`] (or [`corpus`], a file read in blocks) -> [`backend`] (the kernels, on [`gpu`] or
//! [`cpu`]) -> [`model`] -> [`sample`]; [`train`] runs that path as the `train` command does.
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

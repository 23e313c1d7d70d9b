//! The lecture reproduced: its figures through the library and through `makemore lecture`,
//! and PyTorch's generator that draws them.

#[path = "../common/mod.rs"]
mod common;

mod lecture;
mod lecture_command;
mod torch_rng;

//! Unit tests of the library's public API, one module per area.

#[path = "../common/mod.rs"]
mod common;

mod core;
mod data;
mod tools;
mod workdir;

//! The library's public API, one module per area.

#[path = "../common/mod.rs"]
mod common;

mod tools;

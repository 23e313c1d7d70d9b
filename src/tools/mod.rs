//! The tools built on the core: `bench` and its kernel times, `check`, `lecture`, `sweep` and
//! the pictures of `plot`.

pub mod bench;
pub mod check;
pub mod kernel_times;
pub mod lecture;
pub mod plot;
pub mod sweep;

//! The tools built on the core: `bench`, its kernel times and the adapter's ceilings, `check`,
//! `lecture`, `sweep` and the pictures of `plot`.

pub mod bench;
pub mod ceilings;
pub mod check;
pub mod kernel_times;
pub mod lecture;
pub mod plot;
pub mod sweep;

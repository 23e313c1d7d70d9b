//! The commands, one file each, and what they share: printing and flag parsers.

pub mod adapters;
pub mod bench;
pub mod train;

use makemore::DeviceChoice;

/// `println!` that ends the program quietly when stdout is closed (`makemore train | head`)
/// instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}
pub(crate) use say;

/// The `--device` flag.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceFlag {
    /// The WGSL kernels on a wgpu adapter (falls back to cpu when there is no adapter at all).
    Gpu,
    /// The CPU reference implementation.
    Cpu,
}

impl From<DeviceFlag> for DeviceChoice {
    fn from(flag: DeviceFlag) -> DeviceChoice {
        match flag {
            DeviceFlag::Gpu => DeviceChoice::Gpu,
            DeviceFlag::Cpu => DeviceChoice::Cpu,
        }
    }
}

/// A flag that must be a finite number >= 0.
pub fn non_negative(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!("{s:?} is not a finite number >= 0")),
    }
}

/// A flag that must be a finite number > 0.
pub fn positive(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!("{s:?} is not a finite number > 0")),
    }
}

/// 228146 -> "228,146".
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A loss with six decimals, or `inf`.
pub fn format_loss(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.6}")
    } else {
        "inf".to_string()
    }
}

/// JSON has no infinity: an infinite loss is written as null.
pub fn finite_or_null(x: f64) -> serde_json::Value {
    if x.is_finite() {
        serde_json::json!(x)
    } else {
        serde_json::Value::Null
    }
}

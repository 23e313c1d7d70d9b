//! Where the arithmetic runs: a wgpu adapter or the CPU reference, chosen at run time.
//!
//! [`AnyBackend`] lets a command hold either backend without being generic over it.

use crate::adamw::{AdamState, AdamW};
use crate::backend::{Backend, NetForm, Nll, StepLoss, TrainOptions};
use crate::corpus::{CountTable, PairBatches};
use crate::cpu::CpuBackend;
use crate::data::Examples;
use crate::gpu::{Gpu, GpuBackend, GpuError, GpuExamples};
use crate::limits::TableLimit;

/// What the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    /// A wgpu adapter; the CPU reference only when no adapter exists at all.
    Gpu,
    /// The CPU reference.
    Cpu,
}

/// Either backend.
pub enum AnyBackend {
    Cpu(CpuBackend),
    Gpu(Box<GpuBackend>),
}

/// Examples loaded by either backend.
pub enum AnyExamples {
    Cpu(Examples),
    Gpu(GpuExamples),
}

impl AnyBackend {
    /// Opens the chosen device. With `Gpu` and no adapter at all, falls back to the CPU and
    /// returns the notice to show; any other GPU failure is an error.
    pub fn open(choice: DeviceChoice) -> Result<(AnyBackend, Option<String>), GpuError> {
        match choice {
            DeviceChoice::Cpu => Ok((AnyBackend::Cpu(CpuBackend), None)),
            DeviceChoice::Gpu => match open_gpu() {
                Ok(gpu) => Ok((AnyBackend::Gpu(Box::new(GpuBackend::new(gpu))), None)),
                Err(GpuError::NoAdapter { backends }) => Ok((
                    AnyBackend::Cpu(CpuBackend),
                    Some(format!(
                        "no GPU adapter found (backends {backends}); running on the CPU reference"
                    )),
                )),
                Err(other) => Err(other),
            },
        }
    }
}

/// Opens the best adapter, as [`Gpu::new`] does, with two differences for a first run on a
/// machine without a GPU:
///
/// - Without `WGPU_BACKEND` or `WGPU_ADAPTER_NAME`, the native APIs (Vulkan, Metal, DX12) are
///   searched first, and GL (EGL on Linux) is initialized only when none of them has an
///   adapter. `WGPU_BACKEND=gl` reaches a GL adapter beside a native one.
/// - What the drivers print on stderr meanwhile is kept out of the tool's output (shown under
///   `RUST_LOG=debug`), so that the only `error:` lines a user sees are the tool's.
pub fn open_gpu() -> Result<Gpu, GpuError> {
    let chosen_by_user = std::env::var_os("WGPU_BACKEND").is_some()
        || std::env::var_os("WGPU_ADAPTER_NAME").is_some();
    let (result, driver_text) = crate::driver_output::captured(|| {
        if chosen_by_user {
            return Gpu::new();
        }
        match Gpu::on_backends(wgpu::Backends::PRIMARY) {
            Err(GpuError::NoAdapter { .. }) => {
                Gpu::on_backends(wgpu::Backends::SECONDARY).map_err(|error| match error {
                    GpuError::NoAdapter { .. } => GpuError::NoAdapter {
                        backends: format!("{:?}", wgpu::Backends::all()),
                    },
                    other => other,
                })
            }
            other => other,
        }
    });
    crate::driver_output::show_if_debugging(&driver_text);
    result
}

fn mismatch() -> anyhow::Error {
    anyhow::anyhow!("examples were loaded by another backend")
}

/// Runs the same expression on whichever backend and examples are present.
macro_rules! both {
    ($self:ident, $ex:ident, |$b:ident, $e:ident| $body:expr) => {
        match ($self, $ex) {
            (AnyBackend::Cpu($b), AnyExamples::Cpu($e)) => $body,
            (AnyBackend::Gpu($b), AnyExamples::Gpu($e)) => $body,
            _ => Err(mismatch()),
        }
    };
}

/// Runs the same expression on whichever backend is present.
macro_rules! either {
    ($self:ident, |$b:ident| $body:expr) => {
        match $self {
            AnyBackend::Cpu($b) => $body,
            AnyBackend::Gpu($b) => $body,
        }
    };
}

impl Backend for AnyBackend {
    type Examples = AnyExamples;

    fn describe(&self) -> String {
        either!(self, |b| b.describe())
    }

    fn load(&mut self, examples: &Examples) -> anyhow::Result<AnyExamples> {
        Ok(match self {
            AnyBackend::Cpu(b) => AnyExamples::Cpu(b.load(examples)?),
            AnyBackend::Gpu(b) => AnyExamples::Gpu(b.load(examples)?),
        })
    }

    fn count_pairs(&mut self, ex: &AnyExamples) -> anyhow::Result<Vec<u32>> {
        both!(self, ex, |b, e| b.count_pairs(e))
    }

    fn normalize_rows(
        &mut self,
        counts: &[u32],
        num_cols: usize,
        smoothing: f32,
    ) -> anyhow::Result<Vec<f32>> {
        either!(self, |b| b.normalize_rows(counts, num_cols, smoothing))
    }

    fn mean_nll(&mut self, probs: &[f32], ex: &AnyExamples) -> anyhow::Result<Nll> {
        both!(self, ex, |b, e| b.mean_nll(probs, e))
    }

    fn loss_and_gradient(
        &mut self,
        weights: &[f32],
        ex: &AnyExamples,
        reg: f32,
        form: NetForm,
    ) -> anyhow::Result<(StepLoss, Vec<f32>)> {
        both!(self, ex, |b, e| b.loss_and_gradient(weights, e, reg, form))
    }

    fn train(
        &mut self,
        weights: &mut [f32],
        ex: &AnyExamples,
        options: &TrainOptions,
        steps: usize,
        form: NetForm,
    ) -> anyhow::Result<Vec<StepLoss>> {
        both!(self, ex, |b, e| b.train(weights, e, options, steps, form))
    }

    fn softmax_rows(&mut self, weights: &[f32], num_cols: usize) -> anyhow::Result<Vec<f32>> {
        either!(self, |b| b.softmax_rows(weights, num_cols))
    }

    fn table_limit(&self) -> TableLimit {
        either!(self, |b| b.table_limit())
    }

    fn forward_loss(
        &mut self,
        weights: &[f32],
        ex: &AnyExamples,
        form: NetForm,
    ) -> anyhow::Result<f64> {
        both!(self, ex, |b, e| b.forward_loss(weights, e, form))
    }

    fn adamw_step(
        &mut self,
        weights: &mut [f32],
        grads: &[f32],
        state: &mut AdamState,
        lr: f32,
        adamw: &AdamW,
    ) -> anyhow::Result<()> {
        either!(self, |b| b.adamw_step(weights, grads, state, lr, adamw))
    }

    fn count_loss_and_gradient(
        &mut self,
        weights: &[f32],
        ex: &AnyExamples,
        reg: f32,
    ) -> anyhow::Result<(StepLoss, Vec<f32>)> {
        both!(self, ex, |b, e| b.count_loss_and_gradient(weights, e, reg))
    }

    fn train_counts(
        &mut self,
        weights: &mut [f32],
        ex: &AnyExamples,
        options: &TrainOptions,
        steps: usize,
    ) -> anyhow::Result<Vec<StepLoss>> {
        both!(self, ex, |b, e| b.train_counts(weights, e, options, steps))
    }

    fn count_pair_batches(
        &mut self,
        num_rows: usize,
        num_cols: usize,
        batches: &mut dyn PairBatches,
    ) -> anyhow::Result<Vec<u32>> {
        either!(self, |b| b.count_pair_batches(num_rows, num_cols, batches))
    }

    fn count_table_nll(&mut self, probs: &[f32], table: &CountTable) -> anyhow::Result<Nll> {
        either!(self, |b| b.count_table_nll(probs, table))
    }

    fn train_on_counts(
        &mut self,
        weights: &mut [f32],
        table: &CountTable,
        options: &TrainOptions,
        steps: usize,
    ) -> anyhow::Result<Vec<StepLoss>> {
        either!(self, |b| b.train_on_counts(weights, table, options, steps))
    }

    fn count_table_loss_and_gradient(
        &mut self,
        weights: &[f32],
        table: &CountTable,
        reg: f32,
    ) -> anyhow::Result<(StepLoss, Vec<f32>)> {
        either!(self, |b| b
            .count_table_loss_and_gradient(weights, table, reg))
    }
}

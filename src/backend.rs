//! The operations of both models, once on the CPU reference (`cpu.rs`), once on the GPU.

use crate::adamw::AdamW;
use crate::corpus::{CountTable, PairBatches};
use crate::cpu::CpuBackend;
use crate::data::Examples;
use crate::gpu::{open_gpu, GpuBackend, GpuError};
use crate::limits::TableLimit;

/// `--device`: a wgpu adapter (the CPU reference only when no adapter exists), or the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceChoice {
    /// The WGSL kernels on a wgpu adapter (falls back to cpu when there is no adapter at all).
    Gpu,
    /// The CPU reference implementation.
    Cpu,
}

/// The backend a command runs on: [`on_backend!`] hands it to generic code.
#[allow(clippy::large_enum_variant)]
pub enum Chosen {
    Cpu(CpuBackend),
    Gpu(GpuBackend),
}

impl Chosen {
    /// Opens the device; with `Gpu` and no adapter at all, the CPU and the notice to show.
    pub fn open(choice: DeviceChoice) -> Result<(Chosen, Option<String>), GpuError> {
        let gpu = match choice {
            DeviceChoice::Cpu => return Ok((Chosen::Cpu(CpuBackend), None)),
            DeviceChoice::Gpu => open_gpu(),
        };
        let Err(GpuError::NoAdapter { backends }) = gpu else {
            return Ok((Chosen::Gpu(GpuBackend::new(gpu?)), None));
        };
        let notice =
            format!("no GPU adapter found (backends {backends}); running on the CPU reference");
        Ok((Chosen::Cpu(CpuBackend), Some(notice)))
    }
}

/// Runs `body` with `b` bound to the backend inside a [`Chosen`] (or a reference to one).
#[macro_export]
macro_rules! on_backend {
    ($chosen:expr, |$b:ident| $body:expr) => {
        match $chosen {
            $crate::backend::Chosen::Cpu($b) => $body,
            $crate::backend::Chosen::Gpu($b) => $body,
        }
    };
}

/// Host<->device traffic: every buffer written from the host and every readback.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transfers {
    pub uploads: u64,
    pub upload_bytes: u64,
    pub readbacks: u64,
    pub readback_bytes: u64,
}

/// The losses of one step, before its update: `data` the mean NLL, `total` plus the penalty.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepLoss {
    pub total: f64,
    pub data: f64,
}

/// The mean of -log p over the examples with p > 0, and how many of them have p = 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Nll {
    pub finite_mean: f64,
    pub impossible: u64,
    pub examples: usize,
}

impl Nll {
    /// The mean NLL over all examples: infinite when any example is impossible.
    pub fn mean(&self) -> f64 {
        [self.finite_mean, f64::INFINITY][(self.impossible > 0) as usize]
    }
}

/// Full-batch gradient descent: `W -= lr * grad` with the penalty `reg * mean(W^2)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainOptions {
    pub lr: f32,
    pub reg: f32,
}

/// `--loss`: which kernel computes the neural model's cross-entropy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LossForm {
    /// cross_entropy_forward: log-softmax with the row maximum subtracted, one pass.
    #[default]
    Fused,
    /// cross_entropy_explicit: exp, divide by the sum, the target's probability, log.
    Explicit,
}

/// The neural model's loss, and its logits: onehot(context) @ W, or the row select W[context].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetForm {
    pub loss: LossForm,
    pub one_hot: bool,
}

/// The operations of both models, implemented once per device.
pub trait Backend {
    /// On the device: examples (uploaded once), a vector of f32, a loss history (each step
    /// appends its (total, data)), and a V^K x V count table.
    type Examples;
    type Buffer;
    type Losses;
    type Counts;
    /// "gpu" or "cpu".
    const KIND: &'static str;

    /// `data` copied to the device.
    fn upload(&mut self, data: &[f32]) -> anyhow::Result<Self::Buffer>;
    /// `len` zeros on the device (no traffic).
    fn zeros(&mut self, len: usize) -> anyhow::Result<Self::Buffer>;
    /// The buffer copied back to the host, once all that was recorded before has run.
    fn read(&mut self, buffer: &Self::Buffer) -> anyhow::Result<Vec<f32>>;
    /// An empty loss history with room for `steps` steps.
    fn losses(&mut self, steps: usize) -> anyhow::Result<Self::Losses>;
    /// The loss history copied back to the host.
    fn read_losses(&mut self, losses: &Self::Losses) -> anyhow::Result<Vec<StepLoss>>;

    /// The step's kernels up to `grads`, the gradient at `weights`; its loss onto `losses`.
    fn gradient(
        &mut self,
        weights: &Self::Buffer,
        examples: &Self::Examples,
        reg: f32,
        form: NetForm,
        grads: &mut Self::Buffer,
        losses: &mut Self::Losses,
    ) -> anyhow::Result<()>;

    /// `count_pairs` of the examples, left on the device.
    fn count_table(&mut self, examples: &Self::Examples) -> anyhow::Result<Self::Counts>;
    /// A count table copied to the device.
    fn upload_counts(&mut self, table: &CountTable) -> anyhow::Result<Self::Counts>;

    /// `count_descent`: `steps` steps from a count table; `grads` ends with the last gradient.
    fn count_descent(
        &mut self,
        weights: &mut Self::Buffer,
        grads: &mut Self::Buffer,
        counts: &Self::Counts,
        options: &TrainOptions,
        steps: usize,
        losses: &mut Self::Losses,
    ) -> anyhow::Result<()>;

    /// `sgd_step`: `weights -= lr * grads`.
    fn sgd_update(&mut self, w: &mut Self::Buffer, g: &Self::Buffer, lr: f32)
        -> anyhow::Result<()>;

    /// `adamw_step` number `t` (from 1) with the moments `m` and `v`.
    fn adamw_update(
        &mut self,
        weights: &mut Self::Buffer,
        grads: &Self::Buffer,
        moments: (&mut Self::Buffer, &mut Self::Buffer),
        t: u32,
        lr: f32,
        adamw: &AdamW,
    ) -> anyhow::Result<()>;

    /// Prepares examples for the other operations (on a GPU: encodes and uploads them).
    fn load(&mut self, examples: &Examples) -> anyhow::Result<Self::Examples>;

    /// `count_pairs`: the V^K x V matrix of how often each target follows each context.
    fn count_pairs(&mut self, examples: &Self::Examples) -> anyhow::Result<Vec<u32>>;

    /// `normalize_rows`: probabilities `(N + s) / (row sum + s V)`, row by row.
    fn normalize_rows(&mut self, counts: &[u32], cols: usize, s: f32) -> anyhow::Result<Vec<f32>>;

    /// `nll_gather`: the mean negative log likelihood of the examples under a probability table.
    fn mean_nll(&mut self, probs: &[f32], examples: &Self::Examples) -> anyhow::Result<Nll>;

    /// `softmax_rows`: each row of `weights` turned into a probability distribution.
    fn softmax_rows(&mut self, weights: &[f32], num_cols: usize) -> anyhow::Result<Vec<f32>>;

    /// The largest V^K x V table this device holds in one buffer (checked before allocating).
    fn table_limit(&self) -> TableLimit {
        TableLimit::host()
    }

    /// A one-line description of the device.
    fn describe(&self) -> String;

    /// Waits until the device has finished what was submitted.
    fn synchronize(&self) -> anyhow::Result<()> {
        Ok(())
    }

    /// The host<->device traffic so far (none on the CPU).
    fn transfers(&self) -> Transfers {
        Transfers::default()
    }

    /// The mean NLL of `x` under softmax(W[context]), forward only (no gradient, no penalty).
    fn forward_loss(&mut self, w: &[f32], x: &Self::Examples, f: NetForm) -> anyhow::Result<f64>;

    /// The loss at `weights` and its gradient (no update).
    fn loss_and_gradient(
        &mut self,
        weights: &[f32],
        examples: &Self::Examples,
        reg: f32,
        form: NetForm,
    ) -> anyhow::Result<(StepLoss, Vec<f32>)> {
        let (w, mut grads) = (self.upload(weights)?, self.zeros(weights.len())?);
        let mut losses = self.losses(1)?;
        self.gradient(&w, examples, reg, form, &mut grads, &mut losses)?;
        let grads = self.read(&grads)?;
        Ok((self.read_losses(&losses)?[0], grads))
    }

    /// `steps` full-batch gradient-descent steps on `weights` in place; the loss before each.
    fn train(
        &mut self,
        weights: &mut [f32],
        examples: &Self::Examples,
        options: &TrainOptions,
        steps: usize,
        form: NetForm,
    ) -> anyhow::Result<Vec<StepLoss>> {
        let (mut w, mut grads) = (self.upload(weights)?, self.zeros(weights.len())?);
        let mut losses = self.losses(steps)?;
        for _ in 0..steps {
            self.gradient(&w, examples, options.reg, form, &mut grads, &mut losses)?;
            self.sgd_update(&mut w, &grads, options.lr)?;
        }
        weights.copy_from_slice(&self.read(&w)?);
        self.read_losses(&losses)
    }

    /// `count_descent` with lr 0 and one step: [`Backend::loss_and_gradient`] from the counts.
    fn count_loss_and_gradient(
        &mut self,
        weights: &[f32],
        examples: &Self::Examples,
        reg: f32,
    ) -> anyhow::Result<(StepLoss, Vec<f32>)> {
        let counts = self.count_table(examples)?;
        let (mut w, mut grads) = (self.upload(weights)?, self.zeros(weights.len())?);
        let mut losses = self.losses(1)?;
        let options = TrainOptions { lr: 0.0, reg };
        self.count_descent(&mut w, &mut grads, &counts, &options, 1, &mut losses)?;
        let grads = self.read(&grads)?;
        Ok((self.read_losses(&losses)?[0], grads))
    }

    /// `count_pairs` then `count_descent`: [`Backend::train`] at O(V^K * V) per step.
    fn train_counts(
        &mut self,
        weights: &mut [f32],
        examples: &Self::Examples,
        options: &TrainOptions,
        steps: usize,
    ) -> anyhow::Result<Vec<StepLoss>> {
        let counts = self.count_table(examples)?;
        let (mut w, mut grads) = (self.upload(weights)?, self.zeros(weights.len())?);
        let mut losses = self.losses(steps)?;
        self.count_descent(&mut w, &mut grads, &counts, options, steps, &mut losses)?;
        weights.copy_from_slice(&self.read(&w)?);
        self.read_losses(&losses)
    }

    /// `count_pairs` over pairs that arrive in batches, into one table (no u32 count wraps).
    fn count_pair_batches(
        &mut self,
        num_rows: usize,
        num_cols: usize,
        batches: &mut dyn PairBatches,
    ) -> anyhow::Result<Vec<u32>>;

    /// `count_nll`: `-sum_j N_j log P_j / sum_j N_j`, [`Backend::mean_nll`] from the counts.
    fn count_table_nll(&mut self, probs: &[f32], table: &CountTable) -> anyhow::Result<Nll>;
}

//! The GPU: adapter choice, the device, one pipeline per shader, dispatch and readback.
//!
//! - `mod.rs` (this file): finding adapters and opening a device, as wgpu's own tools do
//!   (`WGPU_BACKEND` limits the backends, `WGPU_ADAPTER_NAME` picks an adapter by name).
//! - `kernels.rs`: what the kernels share: pipelines compiled on first use, bindings, grids,
//!   the loop budget, and the one path by which dispatches are recorded and submitted.
//! - `dispatches.rs`: one function per kernel, its parameters, buffers, grid and loop bound.
//! - `buffers.rs`: uploads and readbacks.
//! - `backend.rs`: the [`crate::Backend`] operations as sequences of kernel dispatches.
//! - `examples.rs`: the examples on the device, in chunks and segments.
//! - `step.rs`: one training step on the examples (row select or one-hot), many per submission.
//! - `count_descent.rs`: the counts path's training steps, parallel over the rows.
//! - `stream_counts.rs`: a corpus's pairs counted batch by batch into one table, its NLL
//!   and its training steps from the table alone.
//! - `loss.rs`: fixed-order sums of partial losses into the mean loss of a step.
//! - `profile.rs`: per-kernel GPU times from timestamp queries (`bench --kernels`).

mod backend;
mod buffers;
mod dispatches;
mod examples;
mod kernels;
mod loss;
mod profile;
mod step;

pub use backend::GpuBackend;
pub use examples::{check_fits, GpuExamples};
pub use kernels::LOOP_BUDGET;
pub use profile::{KernelTime, Profile};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Why no GPU device could be opened.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("no GPU adapter found (backends searched: {backends})")]
    NoAdapter { backends: String },
    #[error("WGPU_ADAPTER_NAME={wanted:?} matches none of the adapters: {available}")]
    NoMatchingAdapter { wanted: String, available: String },
    #[error("the adapter {adapter} refused to open a device: {reason}")]
    RequestDevice { adapter: String, reason: String },
    #[error("the GPU reported an error: {0}")]
    Device(String),
}

/// What `adapters` prints about one adapter.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
}

impl From<&wgpu::AdapterInfo> for AdapterSummary {
    fn from(info: &wgpu::AdapterInfo) -> Self {
        AdapterSummary {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: [info.driver.as_str(), info.driver_info.as_str()]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

/// The backends that `WGPU_BACKEND` allows (all of them when it is not set).
fn backends_from_env() -> wgpu::Backends {
    wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all())
}

fn instance(backends: wgpu::Backends) -> wgpu::Instance {
    // wgpu's other environment settings (WGPU_DEBUG, WGPU_VALIDATION, ...) still apply.
    let descriptor = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends,
        ..descriptor
    })
}

/// Every adapter wgpu finds on the given backends, best first.
fn ranked_adapters(instance: &wgpu::Instance, backends: wgpu::Backends) -> Vec<wgpu::Adapter> {
    let mut adapters = pollster::block_on(instance.enumerate_adapters(backends));
    // Real GPUs before software ones; among equals, the native APIs before GL.
    let type_rank = |t: wgpu::DeviceType| match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    let backend_rank = |b: wgpu::Backend| match b {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    };
    adapters.sort_by_key(|a| {
        let info = a.get_info();
        (type_rank(info.device_type), backend_rank(info.backend))
    });
    adapters
}

/// The adapters wgpu finds, in the order the tool prefers them.
pub fn list_adapters() -> Vec<AdapterSummary> {
    let backends = backends_from_env();
    ranked_adapters(&instance(backends), backends)
        .iter()
        .map(|a| AdapterSummary::from(&a.get_info()))
        .collect()
}

/// Opens every adapter of the backends `WGPU_BACKEND` allows, best first (only those whose
/// name contains `WGPU_ADAPTER_NAME`, when it is set), each with its description.
pub fn open_each() -> Vec<(AdapterSummary, Result<Gpu, GpuError>)> {
    let backends = backends_from_env();
    let wanted = std::env::var("WGPU_ADAPTER_NAME")
        .ok()
        .map(|w| w.to_lowercase());
    ranked_adapters(&instance(backends), backends)
        .into_iter()
        .filter(|a| match &wanted {
            Some(needle) => a.get_info().name.to_lowercase().contains(needle),
            None => true,
        })
        .map(|a| (AdapterSummary::from(&a.get_info()), Gpu::open(a)))
        .collect()
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

/// An open device with its queue and the compiled kernels.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    kernels: kernels::Kernels,
    /// Errors the device reported outside any error scope, turned into `Err` by [`Gpu::check`].
    errors: Arc<Mutex<Vec<String>>>,
    /// Uploads, upload bytes, readbacks, readback bytes so far.
    traffic: [AtomicU64; 4],
    /// Kernels recorded but not yet submitted, and how many passes: `read` submits them.
    pending: Mutex<Option<(wgpu::CommandEncoder, usize)>>,
}

impl Gpu {
    /// Opens the best adapter of the backends `WGPU_BACKEND` allows (or the one
    /// `WGPU_ADAPTER_NAME` names) with all of its limits.
    pub fn new() -> Result<Gpu, GpuError> {
        Self::on_backends(backends_from_env())
    }

    /// Opens the best adapter of the given backends (or the one `WGPU_ADAPTER_NAME` names).
    pub fn on_backends(backends: wgpu::Backends) -> Result<Gpu, GpuError> {
        let adapters = ranked_adapters(&instance(backends), backends);
        if adapters.is_empty() {
            return Err(GpuError::NoAdapter {
                backends: format!("{backends:?}"),
            });
        }
        let adapter = match std::env::var("WGPU_ADAPTER_NAME") {
            Ok(wanted) => {
                let needle = wanted.to_lowercase();
                let found = adapters
                    .iter()
                    .position(|a| a.get_info().name.to_lowercase().contains(&needle));
                match found {
                    Some(i) => adapters.into_iter().nth(i).expect("index from position"),
                    None => {
                        let available = adapters
                            .iter()
                            .map(|a| a.get_info().name)
                            .collect::<Vec<_>>()
                            .join(", ");
                        return Err(GpuError::NoMatchingAdapter { wanted, available });
                    }
                }
            }
            Err(_) => adapters.into_iter().next().expect("not empty"),
        };
        Self::open(adapter)
    }

    fn open(adapter: wgpu::Adapter) -> Result<Gpu, GpuError> {
        let info = adapter.get_info();
        // Ask for everything the adapter can do: large datasets need its largest buffers.
        let limits = adapter.limits();
        // Timestamps inside compute passes, where the adapter has them: `bench --kernels`.
        let features = adapter.features() & profile::timestamp_features();
        let descriptor = wgpu::DeviceDescriptor {
            label: Some("makemore"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) =
            pollster::block_on(adapter.request_device(&descriptor)).map_err(|e| {
                GpuError::RequestDevice {
                    adapter: info.name.clone(),
                    reason: e.to_string(),
                }
            })?;
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        // wgpu's default handler panics; record the error and report it at the next check.
        device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
            let message = match &error {
                wgpu::Error::OutOfMemory { .. } => {
                    "the GPU ran out of memory (try fewer words, a shorter --context, or --device cpu)"
                        .to_string()
                }
                other => other.to_string(),
            };
            if let Ok(mut list) = sink.lock() {
                list.push(message);
            }
        }));
        let lost = errors.clone();
        device.set_device_lost_callback(move |reason, message| {
            if reason != wgpu::DeviceLostReason::Destroyed {
                if let Ok(mut list) = lost.lock() {
                    list.push(format!("the GPU device was lost: {message}"));
                }
            }
        });
        let kernels = kernels::Kernels::new(&device);
        log::debug!(
            "opened {} ({:?}) with limits {:?}",
            info.name,
            info.backend,
            limits
        );
        Ok(Gpu {
            device,
            queue,
            info,
            limits,
            kernels,
            errors,
            traffic: Default::default(),
            pending: Mutex::new(None),
        })
    }

    /// A one-line description: adapter, backend and type.
    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {:?})",
            self.info.name, self.info.backend, self.info.device_type
        )
    }

    /// The host<->device traffic so far.
    pub fn transfers(&self) -> crate::backend::Transfers {
        let [uploads, upload_bytes, readbacks, readback_bytes] =
            self.traffic.each_ref().map(|c| c.load(Ordering::Relaxed));
        crate::backend::Transfers {
            uploads,
            upload_bytes,
            readbacks,
            readback_bytes,
        }
    }

    /// Counts one upload (`read` false) or readback of `bytes`.
    fn count_transfer(&self, read: bool, bytes: u64) {
        let first = if read { 2 } else { 0 };
        self.traffic[first].fetch_add(1, Ordering::Relaxed);
        self.traffic[first + 1].fetch_add(bytes, Ordering::Relaxed);
    }

    /// The first error the device reported since the last check, if any.
    pub fn check(&self) -> Result<(), GpuError> {
        let mut list = self
            .errors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let first = list.drain(..).next();
        match first {
            Some(message) => Err(GpuError::Device(message)),
            None => Ok(()),
        }
    }
}

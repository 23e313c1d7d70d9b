//! The GPU: adapter choice (`WGPU_BACKEND` limits the backends, `WGPU_ADAPTER_NAME` picks an
//! adapter by name, as wgpu's own tools do), the device, uploads and readbacks. kernels.rs
//! compiles and records the kernels, dispatches.rs has one function per kernel, backend.rs and
//! step.rs implement [`crate::Backend`] with them.

mod backend;
mod dispatches;
mod kernels;
mod profile;
mod step;

pub use backend::GpuBackend;
pub use kernels::LOOP_BUDGET;
pub use profile::KernelTime;
pub use step::{check_fits, GpuExamples};

use bytemuck::Pod;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use wgpu::util::DeviceExt;

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

/// Opens the best adapter. Unless `WGPU_BACKEND` or `WGPU_ADAPTER_NAME` chose, the native
/// APIs first, GL (EGL) only when none has an adapter. What the drivers print meanwhile is
/// kept out of the output (shown under `RUST_LOG=debug`): the only `error:` lines are ours.
pub fn open_gpu() -> Result<Gpu, GpuError> {
    let chosen_by_user = std::env::var_os("WGPU_BACKEND").is_some()
        || std::env::var_os("WGPU_ADAPTER_NAME").is_some();
    let (result, driver_text) = crate::driver_output::captured(|| {
        if chosen_by_user {
            return Gpu::on_backends(backends_from_env());
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
    /// Opens the best adapter of the given backends (or the one `WGPU_ADAPTER_NAME` names).
    pub fn on_backends(backends: wgpu::Backends) -> Result<Gpu, GpuError> {
        let adapters = ranked_adapters(&instance(backends), backends);
        if adapters.is_empty() {
            return Err(GpuError::NoAdapter {
                backends: format!("{backends:?}"),
            });
        }
        let wanted = std::env::var("WGPU_ADAPTER_NAME").ok();
        let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
        let found = match &wanted {
            Some(w) => names
                .iter()
                .position(|n| n.to_lowercase().contains(&w.to_lowercase())),
            None => Some(0),
        };
        let Some(adapter) = found.and_then(|i| adapters.into_iter().nth(i)) else {
            let available = names.join(", ");
            let wanted = wanted.unwrap_or_default();
            return Err(GpuError::NoMatchingAdapter { wanted, available });
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
        let mut list = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        let first = list.drain(..).next();
        first.map_or(Ok(()), |m| Err(GpuError::Device(m)))
    }
}

const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// Logs a buffer's size at debug level, once per label and size (training allocates the same
/// buffers for every chunk of steps).
fn log_buffer(label: &str, bytes: u64) {
    static SEEN: std::sync::Mutex<std::collections::BTreeSet<(String, u64)>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    if log::log_enabled!(log::Level::Debug) {
        let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
        if seen.insert((label.to_string(), bytes)) {
            log::debug!("buffer {label:?}: {bytes} bytes");
        }
    }
}

impl Gpu {
    /// A storage buffer holding `data` (4-byte elements).
    pub fn upload<T: Pod>(&self, label: &str, data: &[T]) -> wgpu::Buffer {
        if data.is_empty() {
            return self.zeroed(label, 0);
        }
        log_buffer(label, std::mem::size_of_val(data) as u64);
        self.count_transfer(false, std::mem::size_of_val(data) as u64);
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(data),
                usage: STORAGE,
            })
    }

    /// A storage buffer of `len` 4-byte elements, all zero.
    pub fn zeroed(&self, label: &str, len: usize) -> wgpu::Buffer {
        // At least one element: a binding may not be empty. wgpu zero-initializes new buffers.
        let size = 4 * len.max(1) as u64;
        log_buffer(label, size);
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: STORAGE,
            mapped_at_creation: false,
        })
    }

    /// A uniform buffer holding a kernel's parameters (the struct beside its dispatch function).
    pub fn params<P: Pod>(&self, params: P) -> wgpu::Buffer {
        self.count_transfer(false, std::mem::size_of::<P>() as u64);
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: bytemuck::bytes_of(&params),
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }

    /// Copies the first `len` 4-byte elements of `buffer` back to the host, waiting for all
    /// work submitted before.
    pub fn read<T: Pod>(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<T>, GpuError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let size = 4 * len as u64;
        self.count_transfer(true, size);
        self.flush();
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
        self.queue.submit([encoder.finish()]);

        let (sender, receiver) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |result| {
            let _ = sender.send(result);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Device(e.to_string()))?;
        self.check()?;
        match receiver.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(GpuError::Device(e.to_string())),
            Err(_) => return Err(GpuError::Device("the readback never completed".into())),
        }
        let view = staging
            .get_mapped_range(..)
            .map_err(|e| GpuError::Device(e.to_string()))?;
        let data = bytemuck::cast_slice::<u8, T>(&view).to_vec();
        drop(view);
        staging.unmap();
        Ok(data)
    }
}

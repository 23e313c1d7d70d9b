//! The GPU: adapter choice (`WGPU_BACKEND` limits the backends, `WGPU_ADAPTER_NAME` picks an
//! adapter by name, as wgpu's own tools do), the device, uploads and readbacks.

mod backend;
pub mod kernels;
mod profile;
mod step;

pub use backend::GpuBackend;
pub use kernels::LOOP_BUDGET;
pub use profile::KernelTime;
pub use step::{check_fits, GpuExamples};

use crate::backend::Transfers;
use bytemuck::Pod;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use wgpu::util::DeviceExt;

/// Why no GPU device could be opened.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("no GPU adapter found (backends searched: {backends})")]
    NoAdapter { backends: String },
    #[error("WGPU_BACKEND names {0:?}, not a backend (vulkan, metal, dx12, gl)")]
    UnknownBackend(String),
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

impl From<&wgpu::Adapter> for AdapterSummary {
    fn from(adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        let driver = format!("{} {}", info.driver, info.driver_info);
        AdapterSummary {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: driver.trim().into(),
        }
    }
}

/// `WGPU_BACKEND` unless unset or blank.
fn backend_list() -> Option<String> {
    let list = std::env::var("WGPU_BACKEND").ok()?;
    (!list.trim().is_empty()).then_some(list)
}

/// The backends that `WGPU_BACKEND` allows (all of them when it is unset or blank). A name
/// wgpu does not know is an error: searching no backend would quietly end on the CPU.
fn backends_from_env() -> Result<wgpu::Backends, GpuError> {
    const KNOWN: [&str; 9] = [
        "vulkan", "vk", "metal", "mtl", "dx12", "d3d12", "gl", "gles", "opengl",
    ];
    let Some(list) = backend_list() else {
        return Ok(wgpu::Backends::all());
    };
    let mut names = list.split(',').map(|name| name.trim().to_lowercase());
    match names.find(|name| !name.is_empty() && !KNOWN.contains(&name.as_str())) {
        Some(name) => Err(GpuError::UnknownBackend(name)),
        None => Ok(wgpu::Backends::from_comma_list(&list)),
    }
}

/// The adapters of `backends`, real GPUs before software ones, native APIs before GL.
fn ranked_adapters(backends: wgpu::Backends) -> Vec<wgpu::Adapter> {
    use wgpu::{Backend, DeviceType};
    // wgpu's other environment settings (WGPU_DEBUG, WGPU_VALIDATION, ...) still apply.
    let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    descriptor.backends = backends;
    let types = [
        DeviceType::DiscreteGpu,
        DeviceType::IntegratedGpu,
        DeviceType::VirtualGpu,
        DeviceType::Cpu,
    ];
    let instance = wgpu::Instance::new(descriptor);
    let mut adapters = pollster::block_on(instance.enumerate_adapters(backends));
    adapters.sort_by_key(|a| {
        let info = a.get_info();
        let native = [Backend::Vulkan, Backend::Metal, Backend::Dx12].contains(&info.backend);
        let rank = types.iter().position(|&t| t == info.device_type);
        (rank.unwrap_or(types.len()), !native)
    });
    adapters
}

/// The adapters wgpu finds, in the order the tool prefers them.
pub fn list_adapters() -> Result<Vec<AdapterSummary>, GpuError> {
    let adapters = ranked_adapters(backends_from_env()?);
    Ok(adapters.iter().map(AdapterSummary::from).collect())
}

/// The adapters of `backends`, best first, whose name contains `WGPU_ADAPTER_NAME` (when set),
/// and the names of all of them.
fn wanted_adapters(backends: wgpu::Backends) -> (Vec<wgpu::Adapter>, Vec<String>) {
    let wanted = std::env::var("WGPU_ADAPTER_NAME").map(|w| w.to_lowercase());
    let adapters = ranked_adapters(backends);
    let names = adapters.iter().map(|a| a.get_info().name).collect();
    let wanted = |a: &wgpu::Adapter| match &wanted {
        Ok(needle) => a.get_info().name.to_lowercase().contains(needle),
        Err(_) => true,
    };
    (adapters.into_iter().filter(wanted).collect(), names)
}

/// An adapter and the device opened on it, or why none opened.
pub type Opened = (AdapterSummary, Result<Gpu, GpuError>);

/// Opens every adapter [`wanted_adapters`] finds.
pub fn open_each() -> Result<Vec<Opened>, GpuError> {
    let adapters = wanted_adapters(backends_from_env()?).0.into_iter();
    Ok(adapters
        .map(|a| (AdapterSummary::from(&a), Gpu::open(a)))
        .collect())
}

/// Opens the best adapter. Unless `WGPU_BACKEND` or `WGPU_ADAPTER_NAME` chose, the native
/// APIs first, GL (EGL) only when none has an adapter. What the drivers print meanwhile is
/// kept out of the output (shown under `RUST_LOG=debug`): the only `error:` lines are ours.
pub fn open_gpu() -> Result<Gpu, GpuError> {
    let chosen = backend_list().is_some() || std::env::var_os("WGPU_ADAPTER_NAME").is_some();
    let (result, driver_text) = crate::driver_output::captured(|| {
        let primary = match chosen {
            true => return Gpu::on_backends(backends_from_env()?),
            false => Gpu::on_backends(wgpu::Backends::PRIMARY),
        };
        let Err(GpuError::NoAdapter { .. }) = primary else {
            return primary;
        };
        let backends = format!("{:?}", wgpu::Backends::all());
        match Gpu::on_backends(wgpu::Backends::SECONDARY) {
            Err(GpuError::NoAdapter { .. }) => Err(GpuError::NoAdapter { backends }),
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
    /// The kernels compiled so far, and their timestamps while a profile is open (profile.rs).
    compiled: Mutex<HashMap<&'static str, kernels::Kernel>>,
    profiler: Arc<profile::Profiler>,
    /// Errors the device reported outside any error scope, for [`Gpu::check`].
    errors: Arc<Mutex<Vec<String>>>,
    traffic: Mutex<Transfers>,
    /// Kernels recorded but not yet submitted, and how many passes.
    pending: Mutex<Option<(wgpu::CommandEncoder, usize)>>,
}

impl Gpu {
    /// Opens the best adapter of the given backends (or the one `WGPU_ADAPTER_NAME` names).
    pub fn on_backends(backends: wgpu::Backends) -> Result<Gpu, GpuError> {
        let (adapters, names) = wanted_adapters(backends);
        match adapters.into_iter().next() {
            Some(adapter) => Self::open(adapter),
            None if names.is_empty() => Err(GpuError::NoAdapter {
                backends: format!("{backends:?}"),
            }),
            None => Err(GpuError::NoMatchingAdapter {
                wanted: std::env::var("WGPU_ADAPTER_NAME").unwrap_or_default(),
                available: names.join(", "),
            }),
        }
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
            ..Default::default() // no experimental features, no trace, performance first
        };
        let (device, queue) =
            pollster::block_on(adapter.request_device(&descriptor)).map_err(|e| {
                GpuError::RequestDevice {
                    adapter: info.name.clone(),
                    reason: e.to_string(),
                }
            })?;
        // wgpu's default handler panics; record the error and report it at the next check.
        let errors = Arc::new(Mutex::new(Vec::new()));
        let (sink, lost) = (errors.clone(), errors.clone());
        device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
            let message = match &error {
                wgpu::Error::OutOfMemory { .. } => {
                    "the GPU ran out of memory (try fewer words, a shorter --context, or --device cpu)"
                        .to_string()
                }
                other => other.to_string(),
            };
            sink.lock().map(|mut list| list.push(message)).ok();
        }));
        device.set_device_lost_callback(move |reason, message| {
            if reason != wgpu::DeviceLostReason::Destroyed {
                let message = format!("the GPU device was lost: {message}");
                lost.lock().map(|mut list| list.push(message)).ok();
            }
        });
        let profiler = Arc::new(profile::Profiler::new(&device, device.features()));
        let (name, backend) = (&info.name, info.backend);
        log::debug!("opened {name} ({backend:?}) with limits {limits:?}");
        Ok(Gpu {
            device,
            queue,
            info,
            limits,
            compiled: Default::default(),
            profiler,
            errors,
            traffic: Default::default(),
            pending: Mutex::new(None),
        })
    }

    /// A one-line description: adapter, backend and type.
    pub fn describe(&self) -> String {
        let info = &self.info;
        format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type)
    }

    /// The host<->device traffic so far.
    pub fn transfers(&self) -> Transfers {
        *self.traffic.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one upload (`read` false) or readback of `bytes`.
    fn count_transfer(&self, read: bool, bytes: u64) {
        let mut t = self.traffic.lock().unwrap_or_else(|e| e.into_inner());
        match read {
            true => (t.readbacks, t.readback_bytes) = (t.readbacks + 1, t.readback_bytes + bytes),
            false => (t.uploads, t.upload_bytes) = (t.uploads + 1, t.upload_bytes + bytes),
        }
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

/// Logs a buffer's size at debug level, once per label and size (steps make the same ones).
fn log_buffer(label: &str, bytes: u64) {
    static SEEN: Mutex<BTreeSet<(String, u64)>> = Mutex::new(BTreeSet::new());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if log::log_enabled!(log::Level::Debug) && seen.insert((label.to_string(), bytes)) {
        log::debug!("buffer {label:?}: {bytes} bytes");
    }
}

impl Gpu {
    /// A storage buffer holding `data` (4-byte elements).
    pub fn upload<T: Pod>(&self, label: &str, data: &[T]) -> wgpu::Buffer {
        if data.is_empty() {
            return self.zeroed(label, 0);
        }
        log_buffer(label, std::mem::size_of_val(data) as u64);
        self.init(label, bytemuck::cast_slice(data), STORAGE)
    }

    /// A buffer holding `contents`: one upload.
    fn init(&self, label: &str, contents: &[u8], usage: wgpu::BufferUsages) -> wgpu::Buffer {
        self.count_transfer(false, contents.len() as u64);
        let descriptor = wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents,
            usage,
        };
        self.device.create_buffer_init(&descriptor)
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

    /// A uniform buffer holding a kernel's parameters.
    pub fn params<P: Pod>(&self, params: P) -> wgpu::Buffer {
        let usage = wgpu::BufferUsages::UNIFORM;
        self.init("params", bytemuck::bytes_of(&params), usage)
    }

    /// The first `len` 4-byte elements of `buffer`, after all work submitted before.
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
        let device_error = |e: &dyn std::fmt::Display| GpuError::Device(e.to_string());
        let polled = self.device.poll(wgpu::PollType::wait_indefinitely());
        polled.map_err(|e| device_error(&e))?;
        self.check()?;
        let never = |_| device_error(&"the readback never completed");
        let mapped = receiver.recv().map_err(never)?;
        mapped.map_err(|e| device_error(&e))?;
        let view = staging.get_mapped_range(..).map_err(|e| device_error(&e))?;
        Ok(bytemuck::cast_slice::<u8, T>(&view).to_vec())
    }
}

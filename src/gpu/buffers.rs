//! Buffers: uploads from the host and readbacks to it.

use bytemuck::Pod;
use wgpu::util::DeviceExt;

use super::{Gpu, GpuError};

/// Bytes of a storage buffer for `len` elements of 4 bytes (at least one, since a binding
/// may not be empty).
fn storage_size(len: usize) -> u64 {
    4 * len.max(1) as u64
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
        log_buffer(label, storage_size(len));
        // New buffers are zero-initialized by wgpu.
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: storage_size(len),
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

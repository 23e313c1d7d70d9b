//! Per-kernel GPU times from timestamp queries (`bench --kernels`): while a profile is open,
//! each dispatch notes its kernel and workgroups and writes a timestamp just before and after
//! it in its compute pass; seconds = (end - begin) ticks * the queue's timestamp period (ns per
//! tick) / 1e9. Without TIMESTAMP_QUERY_INSIDE_PASSES the kernels are listed untimed (NaN).

use std::sync::{Mutex, MutexGuard};

use super::{Gpu, GpuError};

/// Dispatches a profile times, two queries each in wgpu's largest query set; the rest left out.
const MAX_TIMED_DISPATCHES: u32 = wgpu::QUERY_SET_MAX_QUERIES / 2;

/// The timestamps of dispatches, when the adapter can write them inside compute passes.
pub struct Profiler {
    query_set: Option<wgpu::QuerySet>,
    /// (kernel, workgroups) of each dispatch while a profile is open; dispatch i owns queries
    /// 2i and 2i + 1.
    open: Mutex<Option<Vec<(&'static str, u32)>>>,
}

/// One dispatch of a profile.
#[derive(Clone, Debug)]
pub struct KernelTime {
    pub kernel: &'static str,
    pub workgroups: u32,
    pub seconds: f64,
}

/// The features timestamps inside compute passes need.
pub fn timestamp_features() -> wgpu::Features {
    wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES
}

impl Profiler {
    /// A profiler for `device`, which can write timestamps when `features` has them.
    pub fn new(device: &wgpu::Device, features: wgpu::Features) -> Profiler {
        let query_set = features.contains(timestamp_features()).then(|| {
            device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("kernel timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2 * MAX_TIMED_DISPATCHES,
            })
        });
        Profiler {
            query_set,
            open: Mutex::new(None),
        }
    }

    fn open(&self) -> MutexGuard<'_, Option<Vec<(&'static str, u32)>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a dispatch while a profile is open and writes the timestamp before it: the
    /// dispatch's slot, when timed.
    pub fn before(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        kernel: &'static str,
        workgroups: u32,
    ) -> Option<u32> {
        let mut open = self.open();
        let dispatches = open.as_mut()?;
        let slot = dispatches.len() as u32;
        if slot >= MAX_TIMED_DISPATCHES {
            return None;
        }
        dispatches.push((kernel, workgroups));
        let query_set = self.query_set.as_ref()?;
        pass.write_timestamp(query_set, 2 * slot);
        Some(slot)
    }

    /// Writes the timestamp after the dispatch of `slot`.
    pub fn after(&self, pass: &mut wgpu::ComputePass<'_>, slot: Option<u32>) {
        if let (Some(slot), Some(query_set)) = (slot, &self.query_set) {
            pass.write_timestamp(query_set, 2 * slot + 1);
        }
    }
}

impl Gpu {
    /// Whether this device times kernels with timestamps inside compute passes.
    pub fn has_timestamps(&self) -> bool {
        self.profiler.query_set.is_some()
    }

    /// Starts noting every dispatch (forgetting any earlier profile).
    pub fn start_profile(&self) {
        *self.profiler.open() = Some(Vec::new());
    }

    /// Stops, waits for the device and reads back the times of the dispatches noted since
    /// [`Gpu::start_profile`].
    pub fn finish_profile(&self) -> Result<Vec<KernelTime>, GpuError> {
        let profiler = &self.profiler;
        let noted = profiler.open().take().unwrap_or_default();
        let queries = 2 * noted.len() as u32;
        let mut ticks: Vec<u64> = Vec::new();
        if let Some(query_set) = profiler.query_set.as_ref().filter(|_| queries > 0) {
            let resolved = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("resolved timestamps"),
                size: 8 * queries as u64,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let mut encoder = self.device.create_command_encoder(&Default::default());
            encoder.resolve_query_set(query_set, 0..queries, &resolved, 0);
            self.queue.submit([encoder.finish()]);
            // `read` counts 4-byte words: two per 8-byte timestamp.
            ticks = self.read(&resolved, 2 * queries as usize)?;
        }
        let period_ns = self.queue.get_timestamp_period() as f64;
        let time = |i: usize| match ticks.get(2 * i..2 * i + 2) {
            Some(&[begin, end]) => end.saturating_sub(begin) as f64 * period_ns * 1e-9,
            _ => f64::NAN,
        };
        let dispatches = noted.into_iter().enumerate();
        let kernel_time = |(i, (kernel, workgroups))| KernelTime {
            kernel,
            workgroups,
            seconds: time(i),
        };
        Ok(dispatches.map(kernel_time).collect())
    }
}

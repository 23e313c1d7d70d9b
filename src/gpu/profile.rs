//! Per-kernel GPU times from timestamp queries.
//!
//! While a profile is open ([`Gpu::start_profile`]), every [`super::kernels::dispatch`] writes
//! a timestamp into the compute pass just before and just after its dispatch, and remembers
//! the kernel's name and workgroups. [`Gpu::finish_profile`] resolves the timestamps and
//! returns one [`KernelTime`] per dispatch, in the order they were recorded:
//!
//! ```text
//! seconds = (end - begin) ticks * queue.get_timestamp_period() ns per tick / 1e9
//! ```
//!
//! Timestamps inside compute passes need the adapter's TIMESTAMP_QUERY and
//! TIMESTAMP_QUERY_INSIDE_PASSES features ([`Gpu::has_timestamps`]); without them a profile
//! records nothing and the caller times whole operations on the host instead.

use std::sync::Mutex;

use super::{Gpu, GpuError};

/// Dispatches one profile can time: two timestamps each, in one query set of wgpu's largest
/// size (4,096 queries). Dispatches past it run untimed, and [`Profile::dropped`] counts them.
const MAX_TIMED_DISPATCHES: u32 = wgpu::QUERY_SET_MAX_QUERIES / 2;

/// The timestamps of dispatches, when the adapter can write them inside compute passes.
pub struct Profiler {
    query_set: Option<wgpu::QuerySet>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    open: bool,
    /// (kernel, workgroups) of each timed dispatch; dispatch i owns queries 2i and 2i + 1.
    dispatches: Vec<(&'static str, u32)>,
    dropped: usize,
}

/// One timed dispatch.
#[derive(Clone, Debug)]
pub struct KernelTime {
    pub kernel: &'static str,
    pub workgroups: u32,
    pub seconds: f64,
}

/// What a profile measured.
#[derive(Clone, Debug, Default)]
pub struct Profile {
    pub dispatches: Vec<KernelTime>,
    /// Dispatches recorded after the query set was full, not timed.
    pub dropped: usize,
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
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a dispatch while a profile is open, and writes the timestamp before it when the
    /// device can: the dispatch's slot.
    pub fn before(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        kernel: &'static str,
        workgroups: u32,
    ) -> Option<u32> {
        let mut state = self.state();
        if !state.open {
            return None;
        }
        let slot = state.dispatches.len() as u32;
        let Some(query_set) = &self.query_set else {
            // No timestamps: the kernel's name alone, for the caller's list.
            state.dispatches.push((kernel, workgroups));
            return None;
        };
        if slot >= MAX_TIMED_DISPATCHES {
            state.dropped += 1;
            return None;
        }
        state.dispatches.push((kernel, workgroups));
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
        self.kernels.profiler.query_set.is_some()
    }

    /// Starts timing every dispatch (forgetting any earlier profile).
    pub fn start_profile(&self) {
        let mut state = self.kernels.profiler.state();
        *state = State {
            open: true,
            ..State::default()
        };
    }

    /// Stops timing, waits for the device and reads back the times of the dispatches
    /// recorded since [`Gpu::start_profile`].
    pub fn finish_profile(&self) -> Result<Profile, GpuError> {
        let profiler = &self.kernels.profiler;
        let (dispatches, dropped) = {
            let mut state = profiler.state();
            state.open = false;
            (std::mem::take(&mut state.dispatches), state.dropped)
        };
        let Some(query_set) = &profiler.query_set else {
            // No timestamps: which kernels ran, untimed.
            let dispatches = dispatches
                .into_iter()
                .map(|(kernel, workgroups)| KernelTime {
                    kernel,
                    workgroups,
                    seconds: f64::NAN,
                })
                .collect();
            return Ok(Profile {
                dispatches,
                dropped,
            });
        };
        if dispatches.is_empty() {
            return Ok(Profile {
                dispatches: Vec::new(),
                dropped,
            });
        }
        let queries = 2 * dispatches.len() as u32;
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
        let ticks: Vec<u64> = self.read(&resolved, 2 * queries as usize)?;
        let period_ns = self.queue.get_timestamp_period() as f64;
        let dispatches = dispatches
            .iter()
            .zip(ticks.chunks(2))
            .map(|(&(kernel, workgroups), pair)| KernelTime {
                kernel,
                workgroups,
                seconds: pair[1].saturating_sub(pair[0]) as f64 * period_ns * 1e-9,
            })
            .collect();
        Ok(Profile {
            dispatches,
            dropped,
        })
    }
}

//! The GPU context: adapter selection, device creation with checked limits,
//! creation counters, a pipeline cache, error scopes and bounded waits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{Error, Result};

#[cfg(test)]
pub(crate) mod layout_check;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Hands out process-unique ids for devices, parameter sets and optimizers.
pub(crate) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Workgroup size of the optimizer kernels (`optim/prelude.wgsl`, `@workgroup_size(256)`).
pub const WORKGROUP_SIZE: u32 = 256;

/// The limits the engine's kernels need, each with the reason.
///
/// Checked against the adapter (or a caller's device) before anything is built.
type LimitCheck = (&'static str, u64, fn(&wgpu::Limits) -> u64);

pub(crate) fn required_limits_table() -> [LimitCheck; 4] {
    [
        // blocks, the gradient pipeline's control block, params, grads, and up to three
        // optimizer states (AMSGrad, centered RMSprop), or two states and the trust
        // passes' two buffers (LAMB): 8, WebGPU's default.
        ("max_storage_buffers_per_shader_stage", 8, |l| {
            l.max_storage_buffers_per_shader_stage as u64
        }),
        (
            "max_compute_invocations_per_workgroup",
            WORKGROUP_SIZE as u64,
            |l| l.max_compute_invocations_per_workgroup as u64,
        ),
        ("max_compute_workgroup_size_x", WORKGROUP_SIZE as u64, |l| {
            l.max_compute_workgroup_size_x as u64
        }),
        // The per-group hyperparameter table: 256 rows of at most 64 bytes.
        ("max_uniform_buffer_binding_size", 256 * 64, |l| {
            l.max_uniform_buffer_binding_size
        }),
    ]
}

fn check_limits(limits: &wgpu::Limits, who: &str) -> Result<()> {
    for (name, needed, get) in required_limits_table() {
        let available = get(limits);
        if available < needed {
            return Err(Error::LimitExceeded {
                limit: name.to_string(),
                needed,
                available,
                hint: format!("; {who} cannot run wgpu-optim's kernels"),
            });
        }
    }
    Ok(())
}

/// How many objects the engine has created on a [`Gpu`]; tests use it to prove
/// that `step()` creates nothing after the first call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CreationCounts {
    /// Buffers created.
    pub buffers: u64,
    /// Bind groups created.
    pub bind_groups: u64,
    /// Compute pipelines created (cache misses).
    pub pipelines: u64,
    /// Shader modules created.
    pub shader_modules: u64,
}

#[derive(Default)]
struct Counters {
    buffers: AtomicU64,
    bind_groups: AtomicU64,
    pipelines: AtomicU64,
    shader_modules: AtomicU64,
}

/// A compiled kernel: pipeline plus its bind group layout.
pub(crate) struct Kernel {
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
}

/// One kind of binding in a kernel's bind group 0, in binding order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Uniform,
    StorageRead,
    StorageReadWrite,
}

struct Shared {
    counters: Counters,
    kernels: Mutex<HashMap<String, Arc<Kernel>>>,
    lost: Arc<Mutex<Option<String>>>,
    uncaptured: Arc<Mutex<Option<String>>>,
    healthy: AtomicBool,
}

/// A device and queue with the limits the engine needs, plus bookkeeping.
///
/// Cheap to clone: clones share the device, the pipeline cache and counters.
#[derive(Clone)]
pub struct Gpu {
    id: u64,
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    wait_timeout: Duration,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("id", &self.id)
            .field("adapter", &self.info.name)
            .field("backend", &self.info.backend)
            .finish()
    }
}

/// A new wgpu instance that honours `WGPU_BACKEND` (e.g. `vulkan`, `gl`).
pub fn instance_from_env() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

/// A new wgpu instance restricted to `backends`.
pub fn instance_for(backends: wgpu::Backends) -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    })
}

/// Every adapter on every backend that `instance` sees.
pub fn enumerate_adapters(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
}

impl Gpu {
    /// Opens the default adapter.
    ///
    /// Honours `WGPU_BACKEND` (which backends to try), `WGPU_ADAPTER_NAME` (a
    /// case-insensitive substring of the adapter's name) and
    /// `WGPU_POWER_PREF`.
    ///
    /// # Errors
    /// [`Error::NoAdapter`] when nothing matches, [`Error::LimitExceeded`] when
    /// the adapter lacks a limit the kernels need.
    pub fn new_default() -> Result<Gpu> {
        let instance = instance_from_env();
        if let Ok(wanted) = std::env::var("WGPU_ADAPTER_NAME") {
            let wanted_lc = wanted.to_lowercase();
            let adapters = enumerate_adapters(&instance);
            let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
            let adapter = adapters
                .into_iter()
                .find(|a| a.get_info().name.to_lowercase().contains(&wanted_lc))
                .ok_or_else(|| Error::NoAdapter {
                    reason: format!(
                        "WGPU_ADAPTER_NAME={wanted:?} matches none of the adapters {names:?}"
                    ),
                })?;
            return Gpu::from_adapter(&adapter);
        }
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::from_env().unwrap_or_default(),
            ..Default::default()
        }))
        .map_err(|e| Error::NoAdapter {
            reason: format!(
                "request_adapter failed: {e}; WGPU_BACKEND={:?}",
                std::env::var("WGPU_BACKEND").unwrap_or_default()
            ),
        })?;
        Gpu::from_adapter(&adapter)
    }

    /// Opens one device for every adapter on every backend (`backends`).
    /// Adapters whose device cannot be opened come back as errors.
    pub fn all(backends: wgpu::Backends) -> Vec<Result<Gpu>> {
        let instance = instance_for(backends);
        pollster::block_on(instance.enumerate_adapters(backends))
            .iter()
            .map(Gpu::from_adapter)
            .collect()
    }

    /// Opens a device on `adapter`, requesting every limit the adapter
    /// offers, after checking those the kernels need. No optional feature
    /// is requested; see [`from_adapter_with_features`](Self::from_adapter_with_features).
    pub fn from_adapter(adapter: &wgpu::Adapter) -> Result<Gpu> {
        Gpu::from_adapter_with_features(adapter, wgpu::Features::empty())
    }

    /// Like [`from_adapter`](Self::from_adapter), also requesting the
    /// optional `features` (e.g. `Features::TIMESTAMP_QUERY` for the
    /// benchmark harness). The engine itself needs none.
    ///
    /// # Errors
    /// [`Error::Gpu`] naming the missing features when the adapter lacks
    /// some of `features` (check `adapter.features()` first to degrade
    /// gracefully), plus the errors of `from_adapter`.
    pub fn from_adapter_with_features(
        adapter: &wgpu::Adapter,
        features: wgpu::Features,
    ) -> Result<Gpu> {
        let info = adapter.get_info();
        let limits = adapter.limits();
        check_limits(&limits, &format!("adapter {:?}", info.name))?;
        let missing = features - adapter.features();
        if !missing.is_empty() {
            return Err(Error::Gpu {
                context: format!("request_device on {:?}", info.name),
                message: format!("the adapter does not offer the features {missing:?}"),
            });
        }
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("wgpu-optim"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::Gpu {
            context: format!("request_device on {:?}", info.name),
            message: e.to_string(),
        })?;
        let gpu = Gpu::wrap(device, queue, info, limits);
        // Our own device: route errors that escape an error scope into a
        // flag that the next call reports, instead of wgpu's default panic.
        let uncaptured = gpu.shared.uncaptured.clone();
        gpu.device
            .on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                let mut slot = uncaptured.lock().unwrap_or_else(|p| p.into_inner());
                slot.get_or_insert_with(|| e.to_string());
            }));
        let lost = gpu.shared.lost.clone();
        gpu.device.set_device_lost_callback(move |reason, msg| {
            let mut slot = lost.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| format!("{reason:?}: {msg}"));
        });
        Ok(gpu)
    }

    /// Wraps an application's own device and queue. The device must have
    /// been created with the limits listed in the crate docs; they are checked
    /// here. wgpu-optim installs no error handler on a borrowed device.
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue) -> Result<Gpu> {
        let limits = device.limits();
        check_limits(&limits, "the device passed to Gpu::from_device")?;
        let info = device.adapter_info();
        Ok(Gpu::wrap(device, queue, info, limits))
    }

    fn wrap(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
        limits: wgpu::Limits,
    ) -> Gpu {
        Gpu {
            id: next_id(),
            device,
            queue,
            info,
            limits,
            wait_timeout: Duration::from_secs(120),
            shared: Arc::new(Shared {
                counters: Counters::default(),
                kernels: Mutex::new(HashMap::new()),
                lost: Arc::new(Mutex::new(None)),
                uncaptured: Arc::new(Mutex::new(None)),
                healthy: AtomicBool::new(true),
            }),
        }
    }

    /// A process-unique id of this device; objects remember it to catch
    /// cross-device misuse.
    pub fn id(&self) -> u64 {
        self.id
    }
    /// The wgpu device.
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }
    /// The wgpu queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }
    /// The adapter's description (name, backend, device type).
    pub fn info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }
    /// The device's limits.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }
    /// The bound on every wait for the GPU.
    pub fn wait_timeout(&self) -> Duration {
        self.wait_timeout
    }
    /// The optional features the device was created with.
    pub fn features(&self) -> wgpu::Features {
        self.device.features()
    }
    /// The bound on every wait for the GPU (default 120 s).
    pub fn set_wait_timeout(&mut self, timeout: Duration) {
        self.wait_timeout = timeout;
    }

    /// How many buffers, bind groups and pipelines the engine created here.
    pub fn creation_counts(&self) -> CreationCounts {
        let c = &self.shared.counters;
        CreationCounts {
            buffers: c.buffers.load(Ordering::Relaxed),
            bind_groups: c.bind_groups.load(Ordering::Relaxed),
            pipelines: c.pipelines.load(Ordering::Relaxed),
            shader_modules: c.shader_modules.load(Ordering::Relaxed),
        }
    }

    /// The largest number of f32 elements one storage binding may hold,
    /// rounded down to the 256-byte offset alignment.
    pub fn max_binding_elems(&self) -> u64 {
        let bytes = self
            .limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size);
        (bytes / 256) * 64
    }

    /// Fails if `other_id` is not this device.
    pub(crate) fn check_same(&self, what: &str, other_id: u64) -> Result<()> {
        if other_id != self.id {
            return Err(Error::WrongDevice {
                what: what.to_string(),
                found: other_id,
                expected: self.id,
            });
        }
        Ok(())
    }

    /// Fails with the first error that escaped an error scope, or if the
    /// device was lost. A non-blocking poll first lets wgpu run a pending
    /// device-lost callback (after `Device::destroy`, say).
    pub(crate) fn check_health(&self) -> Result<()> {
        let _ = self.device.poll(wgpu::PollType::Poll);
        if let Some(reason) = self
            .shared
            .lost
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            self.shared.healthy.store(false, Ordering::Relaxed);
            return Err(Error::DeviceLost { reason });
        }
        if let Some(message) = self
            .shared
            .uncaptured
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            return Err(Error::Gpu {
                context: "an earlier operation (uncaptured)".into(),
                message,
            });
        }
        Ok(())
    }

    /// Runs `f` inside validation and out-of-memory error scopes and turns a
    /// captured error into [`Error::Gpu`].
    pub(crate) fn scoped<T>(&self, context: &str, f: impl FnOnce() -> T) -> Result<T> {
        self.check_health()?;
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let val = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let v = pollster::block_on(val.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = v.or(o) {
            return Err(Error::Gpu {
                context: context.to_string(),
                message: e.to_string(),
            });
        }
        Ok(out)
    }

    /// Creates a buffer (counted).
    pub(crate) fn create_buffer(
        &self,
        label: &str,
        size: u64,
        usage: wgpu::BufferUsages,
    ) -> wgpu::Buffer {
        self.shared.counters.buffers.fetch_add(1, Ordering::Relaxed);
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: size.max(4).next_multiple_of(4),
            usage,
            mapped_at_creation: false,
        })
    }

    /// Creates a buffer filled with `contents` (counted).
    pub(crate) fn create_buffer_init(
        &self,
        label: &str,
        contents: &[u8],
        usage: wgpu::BufferUsages,
    ) -> wgpu::Buffer {
        let size = (contents.len() as u64).max(4).next_multiple_of(4);
        let buf = self.create_buffer(label, size, usage | wgpu::BufferUsages::COPY_DST);
        if !contents.is_empty() {
            self.queue.write_buffer(&buf, 0, contents);
        }
        buf
    }

    /// Creates a bind group (counted).
    pub(crate) fn create_bind_group(
        &self,
        label: &str,
        layout: &wgpu::BindGroupLayout,
        buffers: &[wgpu::BindingResource<'_>],
    ) -> wgpu::BindGroup {
        self.shared
            .counters
            .bind_groups
            .fetch_add(1, Ordering::Relaxed);
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, r)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: r.clone(),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout,
            entries: &entries,
        })
    }

    /// The kernel `entry` of `source` with `constants`, built once and cached
    /// under `key` (kernel name plus variant).
    pub(crate) fn kernel(
        &self,
        key: &str,
        source: &str,
        slots: &[Slot],
        constants: &[(&str, f64)],
    ) -> Result<Arc<Kernel>> {
        let mut cache = self
            .shared
            .kernels
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(k) = cache.get(key) {
            return Ok(k.clone());
        }
        let kernel = self.scoped(key, || {
            self.shared
                .counters
                .shader_modules
                .fetch_add(1, Ordering::Relaxed);
            let module = self
                .device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(key),
                    source: wgpu::ShaderSource::Wgsl(source.into()),
                });
            let entries: Vec<wgpu::BindGroupLayoutEntry> = slots
                .iter()
                .enumerate()
                .map(|(i, s)| wgpu::BindGroupLayoutEntry {
                    binding: i as u32,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: match s {
                            Slot::Uniform => wgpu::BufferBindingType::Uniform,
                            Slot::StorageRead => {
                                wgpu::BufferBindingType::Storage { read_only: true }
                            }
                            Slot::StorageReadWrite => {
                                wgpu::BufferBindingType::Storage { read_only: false }
                            }
                        },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                })
                .collect();
            let layout = self
                .device
                .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some(key),
                    entries: &entries,
                });
            let pl = self
                .device
                .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                    label: Some(key),
                    bind_group_layouts: &[Some(&layout)],
                    immediate_size: 0,
                });
            self.shared
                .counters
                .pipelines
                .fetch_add(1, Ordering::Relaxed);
            let pipeline = self
                .device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(key),
                    layout: Some(&pl),
                    module: &module,
                    entry_point: Some("main"),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants,
                        zero_initialize_workgroup_memory: false,
                    },
                    cache: None,
                });
            Kernel { pipeline, layout }
        })?;
        let kernel = Arc::new(kernel);
        cache.insert(key.to_string(), kernel.clone());
        Ok(kernel)
    }

    /// Waits (bounded) for `submission` to finish.
    pub(crate) fn wait(&self, context: &str, submission: wgpu::SubmissionIndex) -> Result<()> {
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(submission),
                timeout: Some(self.wait_timeout),
            })
            .map_err(|e| match e {
                wgpu::PollError::Timeout => Error::Timeout {
                    context: context.to_string(),
                    seconds: self.wait_timeout.as_secs_f64(),
                },
                other => match self.check_health() {
                    // A lost device makes waits fail with wgpu's submission
                    // message: say what happened instead.
                    Err(lost @ Error::DeviceLost { .. }) => lost,
                    _ => Error::Gpu {
                        context: context.to_string(),
                        message: other.to_string(),
                    },
                },
            })?;
        self.check_health()
    }

    /// Waits (bounded) until all work submitted so far has finished.
    pub fn synchronize(&self) -> Result<()> {
        let idx = self.queue.submit([]);
        self.wait("synchronize", idx)
    }

    /// Copies the byte ranges `(buffer, offset, len)` into host memory, in
    /// order, through one staging buffer and one submit. Lengths and offsets
    /// must be multiples of 4.
    pub(crate) fn read_ranges(
        &self,
        context: &str,
        ranges: &[(&wgpu::Buffer, u64, u64)],
    ) -> Result<Vec<u8>> {
        let total: u64 = ranges.iter().map(|r| r.2).sum();
        if total == 0 {
            return Ok(Vec::new());
        }
        let staging = self.create_buffer(
            "wgpu-optim/readback",
            total,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        );
        let submission = self.scoped(context, || {
            let mut enc = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some(context),
                });
            let mut at = 0;
            for &(buf, off, len) in ranges {
                if len > 0 {
                    enc.copy_buffer_to_buffer(buf, off, &staging, at, len);
                }
                at += len;
            }
            self.queue.submit([enc.finish()])
        })?;
        let (tx, rx) = std::sync::mpsc::channel();
        staging
            .slice(..total)
            .map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send(r);
            });
        self.wait(context, submission)?;
        match rx.recv_timeout(self.wait_timeout) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(Error::Gpu {
                    context: context.to_string(),
                    message: format!("map_async failed: {e}"),
                });
            }
            Err(_) => {
                return Err(Error::Timeout {
                    context: context.to_string(),
                    seconds: self.wait_timeout.as_secs_f64(),
                });
            }
        }
        let bytes = {
            let view = staging
                .slice(..total)
                .get_mapped_range()
                .map_err(|e| Error::Gpu {
                    context: context.to_string(),
                    message: format!("get_mapped_range failed: {e}"),
                })?;
            view.to_vec()
        };
        staging.unmap();
        Ok(bytes)
    }
}

/// A 2-D dispatch grid covering `n` workgroups with at most `max_dim` per
/// dimension: `(x, y)` with `x * y >= n`. Kernels compute the linear index
/// `wid.x + wid.y * num_workgroups.x` and return when it is `>= n`.
pub(crate) fn grid(n: u32, max_dim: u32) -> (u32, u32) {
    if n <= max_dim {
        return (n, 1);
    }
    let y = n.div_ceil(max_dim);
    let x = n.div_ceil(y);
    (x, y)
}

#[cfg(test)]
mod tests {
    use super::grid;

    #[test]
    fn grid_covers_and_stays_under_limit() {
        for &(n, max) in &[
            (1, 65535),
            (65535, 65535),
            (65536, 65535),
            (1_000_000, 65535),
            (7, 3),
        ] {
            let (x, y) = grid(n, max);
            assert!(x <= max && y <= max, "{n} {max} -> {x} {y}");
            assert!(x as u64 * y as u64 >= n as u64);
            assert!((x as u64) * (y as u64 - 1) < n as u64, "no empty row");
        }
    }
}

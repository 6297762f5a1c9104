//! The pipelined, host-staged bucket engine shared by the communicators.
//!
//! Per all-reduce, for the devices of this process:
//! 1. for every device and every bucket: one encoder that copies the
//!    bucket's gradient ranges into the bucket's MAP_READ staging buffer, a
//!    submit, and a `map_async` (all issued up front, bucket 0 first);
//! 2. for bucket b = 0, 1, ...: a bounded wait until every device has it
//!    mapped, then `combine` (the fixed-order host sum, or an MPI
//!    collective) into one host buffer, then on every device: copy into the
//!    bucket's mapped MAP_WRITE staging buffer (the devices' copies on
//!    parallel host threads, 16-bit gradients encoded once for all), unmap,
//!    submit its copy into the gradients, and re-map it for the next step in
//!    the background.
//!    Later buckets keep copying and mapping while bucket b is reduced.
//!
//! Staging buffers are created once (two per device and bucket) and
//! reused. After a failure every buffer is brought back to a known state
//! (pending maps aborted, mapped reads unmapped) so the next call works.

use std::sync::mpsc::{Receiver, TryRecvError, channel};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::precision::ParamDtype;

use super::{CollectiveConfig, Participant};

type MapResult = std::result::Result<(), wgpu::BufferAsyncError>;

/// A contiguous range of one gradient chunk inside a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    pub(crate) chunk: usize,
    /// Byte offset inside the chunk's buffer.
    pub(crate) offset: u64,
    /// Bytes.
    pub(crate) len: u64,
    /// Byte offset inside the bucket.
    pub(crate) at: u64,
}

/// A bucket: consecutive bytes of the flat gradient space (padding included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bucket {
    pub(crate) segments: Vec<Segment>,
    pub(crate) bytes: u64,
}

/// Cuts the chunks (lengths in elements of `elem_bytes` bytes) into buckets
/// of at most `bucket_bytes` (a multiple of 256) bytes.
pub(crate) fn plan_buckets(chunk_lens: &[u64], elem_bytes: u64, bucket_bytes: u64) -> Vec<Bucket> {
    let cap = (bucket_bytes / 256).max(1) * 256;
    let mut out = Vec::new();
    let mut cur = Bucket {
        segments: Vec::new(),
        bytes: 0,
    };
    for (chunk, &elems) in chunk_lens.iter().enumerate() {
        let total = elems * elem_bytes;
        let mut off = 0;
        while off < total {
            let len = (total - off).min(cap - cur.bytes);
            cur.segments.push(Segment {
                chunk,
                offset: off,
                len,
                at: cur.bytes,
            });
            cur.bytes += len;
            off += len;
            if cur.bytes == cap {
                out.push(std::mem::replace(
                    &mut cur,
                    Bucket {
                        segments: Vec::new(),
                        bytes: 0,
                    },
                ));
            }
        }
    }
    if cur.bytes > 0 {
        out.push(cur);
    }
    out
}

#[derive(Debug)]
enum MapState {
    Idle,
    Pending(Receiver<MapResult>),
    Mapped,
}

#[derive(Debug)]
struct Staged {
    buffer: wgpu::Buffer,
    state: MapState,
    /// The submission that last used the buffer (to wait on its map).
    last: Option<wgpu::SubmissionIndex>,
}

impl Staged {
    fn map(&mut self, mode: wgpu::MapMode) {
        let (tx, rx) = channel();
        self.buffer.map_async(mode, .., move |r| {
            let _ = tx.send(r);
        });
        self.state = MapState::Pending(rx);
    }

    /// Waits (bounded) until a requested map resolves.
    fn wait_mapped(&mut self, gpu: &Gpu, context: &str) -> Result<()> {
        let rx = match &self.state {
            MapState::Mapped => return Ok(()),
            MapState::Idle => {
                return Err(Error::Gpu {
                    context: context.into(),
                    message: "staging buffer is not being mapped".into(),
                });
            }
            MapState::Pending(rx) => rx,
        };
        let mut res = match rx.try_recv() {
            Ok(r) => Some(r),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(Err(wgpu::BufferAsyncError)),
        };
        if res.is_none() {
            match self.last.clone() {
                Some(s) => gpu.wait(context, s)?,
                None => gpu.synchronize()?,
            }
            // The poll above fires the callbacks of finished work; a map
            // still unresolved now is bounded by the wait timeout too.
            res = Some(
                rx.recv_timeout(gpu.wait_timeout())
                    .map_err(|_| Error::Timeout {
                        context: context.into(),
                        seconds: gpu.wait_timeout().as_secs_f64(),
                    })?,
            );
        }
        match res {
            Some(Ok(())) => {
                self.state = MapState::Mapped;
                Ok(())
            }
            _ => {
                self.state = MapState::Idle;
                Err(Error::Gpu {
                    context: context.into(),
                    message: "map_async failed (aborted or device lost)".into(),
                })
            }
        }
    }

    /// Back to `Idle` from any state, without waiting.
    fn reset(&mut self) {
        match &self.state {
            MapState::Idle => {}
            MapState::Mapped => self.buffer.unmap(),
            MapState::Pending(rx) => match rx.try_recv() {
                // Mapped, not yet consumed.
                Ok(Ok(())) => self.buffer.unmap(),
                // Failed: nothing to undo.
                Ok(Err(_)) | Err(TryRecvError::Disconnected) => {}
                // Still pending: unmapping aborts it (callbacks only run in
                // this thread's polls, so it cannot resolve meanwhile).
                Err(TryRecvError::Empty) => self.buffer.unmap(),
            },
        }
        self.state = MapState::Idle;
    }

    /// Test hook: make this buffer's pending map fail.
    fn fail_map(&mut self) {
        // Undo the map whether it is still pending (wgpu then reports it
        // aborted) or already resolved, and report it failed to the waiter.
        self.reset();
        let (tx, rx) = channel();
        let _ = tx.send(Err(wgpu::BufferAsyncError));
        self.state = MapState::Pending(rx);
    }
}

#[derive(Debug)]
struct DeviceStaging {
    gpu_id: u64,
    down: Vec<Staged>,
    up: Vec<Staged>,
}

/// A planned fault, for tests: the map of `bucket` on local device `device`
/// is aborted during the next all-reduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[doc(hidden)]
pub struct Fault {
    /// Local device index.
    pub device: usize,
    /// Bucket index.
    pub bucket: usize,
}

/// What `combine` gets for one bucket: the mapped gradients of every local
/// device, or the first local error.
pub(crate) type Inputs<'a, 'b> = std::result::Result<&'a [&'b [f32]], Error>;

/// Staging buffers for the local devices and the pipelined loop.
#[derive(Debug)]
pub(crate) struct Engine {
    fingerprint: u64,
    pub(crate) buckets: Vec<Bucket>,
    devices: Vec<DeviceStaging>,
    host: Vec<f32>,
    /// The gradients' storage: buckets move it; the host sums in f32.
    dtype: ParamDtype,
    /// 16-bit gradients widened to f32, one buffer per device.
    widened: Vec<Vec<f32>>,
    pub(crate) fault: Option<Fault>,
    /// Host threads for the copies into the devices' write staging.
    threads: usize,
}

impl Engine {
    /// Staging for `local`, whose layouts must agree (checked by the caller).
    pub(crate) fn new(config: CollectiveConfig, local: &[Participant<'_>]) -> Result<Engine> {
        config.validate()?;
        let first = local.first().ok_or_else(|| {
            Error::invalid(
                "participants",
                0,
                "at least one",
                "a collective needs at least one device",
            )
        })?;
        let dtype = first.1.grad_dtype();
        let buckets = plan_buckets(
            first.1.placement().chunk_lens(),
            dtype.bytes(),
            config.bucket_bytes,
        );
        let max = buckets.iter().map(|b| b.bytes).max().unwrap_or(0);
        let mut devices = Vec::with_capacity(local.len());
        for (d, &(gpu, _)) in local.iter().enumerate() {
            let mk = |dir: &str, b: usize, bytes: u64, usage| {
                gpu.create_buffer(&format!("collective/{dir}/dev{d}/bucket{b}"), bytes, usage)
            };
            let (down, up) = gpu.scoped("collective/staging", || {
                let down: Vec<Staged> = buckets
                    .iter()
                    .enumerate()
                    .map(|(b, k)| Staged {
                        buffer: mk(
                            "down",
                            b,
                            k.bytes,
                            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                        ),
                        state: MapState::Idle,
                        last: None,
                    })
                    .collect();
                let mut up: Vec<Staged> = buckets
                    .iter()
                    .enumerate()
                    .map(|(b, k)| Staged {
                        buffer: mk(
                            "up",
                            b,
                            k.bytes,
                            wgpu::BufferUsages::MAP_WRITE | wgpu::BufferUsages::COPY_SRC,
                        ),
                        state: MapState::Idle,
                        last: None,
                    })
                    .collect();
                for s in &mut up {
                    s.map(wgpu::MapMode::Write);
                }
                (down, up)
            })?;
            devices.push(DeviceStaging {
                gpu_id: gpu.id(),
                down,
                up,
            });
        }
        Ok(Engine {
            fingerprint: super::layout_fingerprint(first.1),
            buckets,
            widened: vec![Vec::new(); local.len()],
            devices,
            host: vec![0.0; (max / dtype.bytes()) as usize],
            dtype,
            fault: None,
            threads: config.threads(),
        })
    }

    /// True when this engine was built for exactly these devices and layout.
    pub(crate) fn fits(&self, local: &[Participant<'_>]) -> bool {
        local.len() == self.devices.len()
            && local.iter().zip(&self.devices).all(|(&(g, p), d)| {
                g.id() == d.gpu_id && super::layout_fingerprint(p) == self.fingerprint
            })
    }

    /// The pipelined all-reduce. `combine(b, inputs, out)` must fill `out`
    /// with the world's sum of bucket `b` or fail; it is called for every
    /// bucket up to the first failure, also when the local inputs failed (so
    /// an MPI peer can learn of it).
    pub(crate) fn run(
        &mut self,
        local: &[Participant<'_>],
        mut combine: impl FnMut(usize, Inputs<'_, '_>, &mut [f32]) -> Result<()>,
    ) -> Result<()> {
        let fault = self.fault.take();
        // 1. Issue every copy + map, bucket by bucket, on every device.
        let mut local_err: Option<Error> = self.issue_downloads(local).err();
        if let Some(f) = fault
            && let Some(s) = self
                .devices
                .get_mut(f.device)
                .and_then(|st| st.down.get_mut(f.bucket))
            && matches!(s.state, MapState::Pending(_))
        {
            s.fail_map();
        }

        // 2. Reduce bucket by bucket as soon as every device has it mapped.
        let mut result = Ok(());
        for b in 0..self.buckets.len() {
            let len = (self.buckets[b].bytes / self.dtype.bytes()) as usize;
            if local_err.is_none() {
                for (d, &(gpu, _)) in local.iter().enumerate() {
                    if let Err(e) = self.devices[d].down[b].wait_mapped(gpu, "collective/download")
                    {
                        local_err = Some(participant_error(d, e));
                        break;
                    }
                }
            }
            let out = &mut self.host[..len];
            let combined = match &local_err {
                Some(e) => combine(b, Err(e.clone()), out),
                None => {
                    let views: Result<Vec<wgpu::BufferView>> = self
                        .devices
                        .iter()
                        .enumerate()
                        .map(|(d, st)| {
                            st.down[b].buffer.slice(..).get_mapped_range().map_err(|e| {
                                participant_error(
                                    d,
                                    Error::Gpu {
                                        context: "collective/download".into(),
                                        message: e.to_string(),
                                    },
                                )
                            })
                        })
                        .collect();
                    match views {
                        Ok(views) => {
                            let slices = widen(self.dtype, &views, &mut self.widened);
                            match slices {
                                Some(s) => combine(b, Ok(&s), out),
                                None => {
                                    let e = Error::Gpu {
                                        context: "collective/download".into(),
                                        message: "mapped range is not 4-byte aligned".into(),
                                    };
                                    combine(b, Err(e), out)
                                }
                            }
                        }
                        Err(e) => combine(b, Err(e), out),
                    }
                }
            };
            for st in &mut self.devices {
                if matches!(st.down[b].state, MapState::Mapped) {
                    st.down[b].reset();
                }
            }
            if let Err(e) = combined {
                result = Err(e);
                break;
            }
            // 3. Upload the sum to every device (no wait).
            if let Err(e) = self.upload_all(local, b, len) {
                local_err.get_or_insert(e);
            }
        }
        // 4. Back to a known state: no read map left pending or mapped.
        for st in &mut self.devices {
            for s in &mut st.down {
                s.reset();
            }
        }
        result?;
        match local_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The parts of one all-reduce, each timed alone (`Engine::time_parts`).
#[derive(Debug, Clone, Copy, PartialEq)]
#[doc(hidden)]
pub struct PartTimes {
    /// Every device's copies into its read staging and their maps, until
    /// all of them are mapped.
    pub download: std::time::Duration,
    /// The fixed-order host sum of every bucket, over the mapped memory.
    pub sum: std::time::Duration,
    /// The sum written into every device's write staging and copied into
    /// its gradients, until every device has finished.
    pub upload: std::time::Duration,
}

impl Engine {
    /// Issues every bucket's copy into the read staging and its map, on
    /// every device (bucket 0 first); the first device error, after trying
    /// every device.
    fn issue_downloads(&mut self, local: &[Participant<'_>]) -> Result<()> {
        let mut first: Option<Error> = None;
        for (d, &(gpu, params)) in local.iter().enumerate() {
            let st = &mut self.devices[d];
            let issued = gpu.scoped("collective/download", || {
                for (b, bucket) in self.buckets.iter().enumerate() {
                    let mut enc =
                        gpu.device()
                            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                                label: Some("collective/download"),
                            });
                    for s in &bucket.segments {
                        enc.copy_buffer_to_buffer(
                            &params.grads.buffers[s.chunk],
                            s.offset,
                            &st.down[b].buffer,
                            s.at,
                            s.len,
                        );
                    }
                    st.down[b].last = Some(gpu.queue().submit([enc.finish()]));
                    st.down[b].map(wgpu::MapMode::Read);
                }
            });
            if let Err(e) = issued {
                first.get_or_insert(participant_error(d, e));
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Runs the all-reduce's parts one after the other, each to completion
    /// before the next starts, and times each: the downloads of every
    /// bucket on every device, the host sums (`sum_in_order` with `threads`
    /// over the mapped buffers), the uploads. The gradients end as the
    /// all-reduce leaves them. For benchmarks: the all-reduce's pipelining
    /// is judged against its parts alone.
    pub(crate) fn time_parts(
        &mut self,
        local: &[Participant<'_>],
        threads: usize,
    ) -> Result<PartTimes> {
        use std::time::Instant;
        let t0 = Instant::now();
        let issued = self.issue_downloads(local);
        let waited = issued.and_then(|()| {
            for (d, &(gpu, _)) in local.iter().enumerate() {
                for s in &mut self.devices[d].down {
                    s.wait_mapped(gpu, "collective/download")?;
                }
            }
            Ok(())
        });
        let download = t0.elapsed();
        let mut sum = std::time::Duration::ZERO;
        let sums = waited.and_then(|()| {
            let mut sums: Vec<Vec<f32>> = Vec::with_capacity(self.buckets.len());
            for b in 0..self.buckets.len() {
                let views: Vec<wgpu::BufferView> = self
                    .devices
                    .iter()
                    .map(|st| st.down[b].buffer.slice(..).get_mapped_range())
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|e| Error::Gpu {
                        context: "collective/download".into(),
                        message: e.to_string(),
                    })?;
                let mut out = vec![0.0f32; (self.buckets[b].bytes / self.dtype.bytes()) as usize];
                let t = Instant::now();
                let slices =
                    widen(self.dtype, &views, &mut self.widened).ok_or_else(|| Error::Gpu {
                        context: "collective/download".into(),
                        message: "mapped range is not 4-byte aligned".into(),
                    })?;
                super::sum_in_order(&mut out, &slices, threads);
                sum += t.elapsed();
                sums.push(out);
            }
            Ok(sums)
        });
        // Back to a known state whatever failed: no read map left.
        for st in &mut self.devices {
            for s in &mut st.down {
                s.reset();
            }
        }
        let sums = sums?;
        let mut upload = std::time::Duration::ZERO;
        for (b, out) in sums.iter().enumerate() {
            // The all-reduce's sum writes into `host`: not part of the
            // upload.
            self.host[..out.len()].copy_from_slice(out);
            let t = Instant::now();
            self.upload_all(local, b, out.len())?;
            upload += t.elapsed();
        }
        let t = Instant::now();
        for &(gpu, _) in local {
            gpu.synchronize()?;
        }
        upload += t.elapsed();
        Ok(PartTimes {
            download,
            sum,
            upload,
        })
    }
}

/// Every device's mapped bucket as f32: the mapped memory itself for f32
/// gradients (`None` if it is not 4-byte aligned), else widened exactly
/// into `widened` (one buffer per device, reused).
fn widen<'a>(
    dtype: ParamDtype,
    views: &'a [wgpu::BufferView],
    widened: &'a mut [Vec<f32>],
) -> Option<Vec<&'a [f32]>> {
    if dtype == ParamDtype::F32 {
        return views
            .iter()
            .map(|v| bytemuck::try_cast_slice::<u8, f32>(v).ok())
            .collect();
    }
    for (v, w) in views.iter().zip(widened.iter_mut()) {
        w.clear();
        w.extend(dtype.decode(v));
    }
    Some(widened.iter().map(|w| &w[..]).collect())
}

impl Engine {
    /// Writes the f32 sum of bucket `b` (the first `len` values of `host`)
    /// into every device's write staging (rounded once into the gradients'
    /// dtype, encoded once for all devices) and copies it into the
    /// gradients: every staging buffer mapped first, then the host copies
    /// into them on up to `threads` threads at once (one device each; on a
    /// host with the cores, the devices' copies do not queue behind each
    /// other), then each device's copy submitted and its buffer re-mapped
    /// for the next step. The first device error, after trying every
    /// device.
    fn upload_all(&mut self, local: &[Participant<'_>], b: usize, len: usize) -> Result<()> {
        let data = &self.host[..len];
        let encoded;
        let bytes: &[u8] = match self.dtype {
            ParamDtype::F32 => bytemuck::cast_slice(data),
            d => {
                encoded = d.encode(data);
                &encoded
            }
        };
        let mut first: Option<Error> = None;
        let mut views = Vec::with_capacity(local.len());
        for (d, &(gpu, _)) in local.iter().enumerate() {
            let up = &mut self.devices[d].up[b];
            let mapped = (|| {
                if !matches!(up.state, MapState::Mapped) {
                    if matches!(up.state, MapState::Idle) {
                        up.map(wgpu::MapMode::Write);
                    }
                    up.wait_mapped(gpu, "collective/upload")?;
                }
                up.buffer
                    .slice(..)
                    .get_mapped_range_mut()
                    .map_err(|e| Error::Gpu {
                        context: "collective/upload".into(),
                        message: e.to_string(),
                    })
            })();
            match mapped {
                Ok(v) => views.push((d, v)),
                Err(e) => {
                    first.get_or_insert(participant_error(d, e));
                }
            }
        }
        // Threads only where a copy outweighs starting one (64 KiB).
        let threads = if bytes.len() >= 1 << 16 {
            self.threads
        } else {
            1
        };
        let per = views.len().div_ceil(threads.max(1)).max(1);
        if per >= views.len() {
            for (_, v) in &mut views {
                v.copy_from_slice(bytes);
            }
        } else {
            std::thread::scope(|s| {
                for group in views.chunks_mut(per) {
                    s.spawn(move || {
                        for (_, v) in group {
                            v.copy_from_slice(bytes);
                        }
                    });
                }
            });
        }
        for (d, view) in views {
            // The view goes before the unmap.
            drop(view);
            let (gpu, params) = local[d];
            let up = &mut self.devices[d].up[b];
            let bucket = &self.buckets[b];
            let submitted = gpu.scoped("collective/upload", || {
                up.buffer.unmap();
                up.state = MapState::Idle;
                let mut enc =
                    gpu.device()
                        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                            label: Some("collective/upload"),
                        });
                for s in &bucket.segments {
                    enc.copy_buffer_to_buffer(
                        &up.buffer,
                        s.at,
                        &params.grads.buffers[s.chunk],
                        s.offset,
                        s.len,
                    );
                }
                up.last = Some(gpu.queue().submit([enc.finish()]));
                // Re-map for the next step; resolves once the copy has run.
                up.map(wgpu::MapMode::Write);
            });
            if let Err(e) = submitted {
                first.get_or_insert(participant_error(d, e));
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Wraps a device's error as a collective failure of that device.
pub(crate) fn participant_error(device: usize, e: Error) -> Error {
    match e {
        Error::Collective { .. } => e,
        other => Error::Collective {
            operation: "all-reduce".into(),
            participant: format!("device {device}"),
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::plan_buckets;

    #[test]
    fn buckets_cover_every_chunk_once_in_order() {
        let chunks = [1000u64, 64, 512];
        for cap in [256u64, 1024, 4096, 1 << 20] {
            let b = plan_buckets(&chunks, 4, cap);
            let mut seen = vec![0u64; chunks.len()];
            for k in &b {
                assert!(k.bytes <= cap && k.bytes > 0);
                let mut at = 0;
                for s in &k.segments {
                    assert_eq!(s.at, at);
                    assert_eq!(s.offset, seen[s.chunk], "in order");
                    seen[s.chunk] += s.len;
                    at += s.len;
                }
                assert_eq!(at, k.bytes);
            }
            let want: Vec<u64> = chunks.iter().map(|c| c * 4).collect();
            assert_eq!(seen, want);
        }
        assert!(plan_buckets(&[], 4, 256).is_empty());
    }
}

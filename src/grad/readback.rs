//! The asynchronous readback of the gradient pipeline's control block:
//! statistics (norms, skipped steps, loss scale) and the reporting of
//! skipped steps in [`NonFinite::Error`] mode, without a sync inside `step()`.
//!
//! A small state machine per optimizer: `Idle` → (a copy of the control
//! block into a MAP_READ staging buffer is submitted and `map_async`
//! started) `Pending` → (the map callback ran) `Mapped` or `Failed` → (the
//! bytes were taken) `Idle`.

use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::grad::device::GradPipeline;
use crate::grad::{ControlHeader, GradientState, GroupOut, NonFinite, StepStats};

const CONTEXT: &str = "grad/control/readback";

/// Where an asynchronous read of the control block stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadState {
    Idle,
    Pending { host_step: u64 },
    Mapped { host_step: u64 },
    Failed,
}

/// The staging buffer and the state of its read.
pub(crate) struct Readback {
    staging: wgpu::Buffer,
    state: Arc<Mutex<ReadState>>,
    pending_submission: Option<wgpu::SubmissionIndex>,
    seen_skipped: u64,
}

impl Readback {
    pub(crate) fn new(gpu: &Gpu, size: u64) -> Readback {
        Readback {
            staging: gpu.create_buffer(
                CONTEXT,
                size,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            ),
            state: Arc::new(Mutex::new(ReadState::Idle)),
            pending_submission: None,
            seen_skipped: 0,
        }
    }
    fn get(&self) -> ReadState {
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn put(&self, s: ReadState) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = s;
    }
}

impl GradPipeline {
    /// True when no read is in flight (a step may then add the copy).
    pub(crate) fn read_idle(&self) -> bool {
        self.readback.get() == ReadState::Idle
    }

    /// Records the copy of the control block into the staging buffer.
    pub(crate) fn record_copy(&self, enc: &mut wgpu::CommandEncoder) {
        enc.copy_buffer_to_buffer(
            &self.control,
            0,
            &self.readback.staging,
            0,
            self.control.size(),
        );
    }

    /// Starts `map_async` on the staging copy submitted with `submission`.
    pub(crate) fn map_staging(&mut self, submission: wgpu::SubmissionIndex, host_step: u64) {
        let rb = &mut self.readback;
        rb.put(ReadState::Pending { host_step });
        rb.pending_submission = Some(submission);
        let state = rb.state.clone();
        rb.staging
            .slice(..)
            .map_async(wgpu::MapMode::Read, move |r| {
                *state.lock().unwrap_or_else(|p| p.into_inner()) = match r {
                    Ok(()) => ReadState::Mapped { host_step },
                    Err(_) => ReadState::Failed,
                };
            });
    }

    /// Reads and unmaps a completed staging copy, if there is one.
    pub(crate) fn take_mapped(&mut self, n_groups: usize) -> Result<Option<StepStats>> {
        let rb = &mut self.readback;
        match rb.get() {
            ReadState::Mapped { host_step } => {
                let bytes = {
                    let view = rb
                        .staging
                        .slice(..)
                        .get_mapped_range()
                        .map_err(|e| Error::Gpu {
                            context: CONTEXT.into(),
                            message: e.to_string(),
                        })?;
                    view.to_vec()
                };
                rb.staging.unmap();
                rb.put(ReadState::Idle);
                rb.pending_submission = None;
                let header: ControlHeader = bytemuck::pod_read_unaligned(&bytes[..16]);
                let groups: Vec<GroupOut> = (0..n_groups)
                    .map(|g| bytemuck::pod_read_unaligned(&bytes[16 + 16 * g..32 + 16 * g]))
                    .collect();
                Ok(Some(StepStats {
                    host_step,
                    skipped_steps: header.skipped as u64,
                    found_inf: header.found_inf != 0,
                    loss_scale: header.scale,
                    growth_tracker: header.growth_tracker,
                    norms: groups.iter().map(|g| g.norm).collect(),
                    clip_coefs: groups.iter().map(|g| g.coef).collect(),
                }))
            }
            ReadState::Failed => {
                rb.put(ReadState::Idle);
                rb.pending_submission = None;
                Err(Error::Gpu {
                    context: CONTEXT.into(),
                    message: "map_async failed".into(),
                })
            }
            _ => Ok(None),
        }
    }

    /// In [`NonFinite::Error`] mode, turns newly seen skipped steps into an error.
    pub(crate) fn observe(&mut self, stats: &StepStats) -> Result<()> {
        let rb = &mut self.readback;
        let newly = stats.skipped_steps.saturating_sub(rb.seen_skipped);
        rb.seen_skipped = rb.seen_skipped.max(stats.skipped_steps);
        if self.config.nonfinite == NonFinite::Error && newly > 0 {
            return Err(Error::NonFinite {
                skipped: newly,
                host_step: stats.host_step,
            });
        }
        Ok(())
    }

    /// Takes a completed read, if any, and reports new skips (non-blocking).
    pub(crate) fn poll_observe(&mut self, gpu: &Gpu, n_groups: usize) -> Result<Option<StepStats>> {
        let _ = gpu.device().poll(wgpu::PollType::Poll);
        match self.take_mapped(n_groups)? {
            Some(s) => {
                self.observe(&s)?;
                Ok(Some(s))
            }
            None => Ok(None),
        }
    }

    /// Starts a read of the control block unless one is in flight.
    pub(crate) fn request(&mut self, gpu: &Gpu, host_step: u64) -> Result<()> {
        if !self.read_idle() {
            return Ok(());
        }
        let submission = gpu.scoped(CONTEXT, || {
            let mut enc = gpu
                .device()
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some(CONTEXT),
                });
            self.record_copy(&mut enc);
            gpu.queue().submit([enc.finish()])
        })?;
        self.map_staging(submission, host_step);
        Ok(())
    }

    /// The statistics if a read has completed, without waiting; starts a
    /// read when none is in flight.
    pub(crate) fn try_stats(
        &mut self,
        gpu: &Gpu,
        n_groups: usize,
        host_step: u64,
    ) -> Result<Option<StepStats>> {
        match self.poll_observe(gpu, n_groups)? {
            Some(s) => Ok(Some(s)),
            None => {
                self.request(gpu, host_step)?;
                Ok(None)
            }
        }
    }

    /// The statistics as of `host_step`: a stale read is taken first, then a
    /// fresh one is started and waited for (bounded).
    pub(crate) fn stats(
        &mut self,
        gpu: &Gpu,
        n_groups: usize,
        host_step: u64,
    ) -> Result<StepStats> {
        self.poll_observe(gpu, n_groups)?;
        if matches!(self.readback.get(), ReadState::Pending { host_step: h } if h != host_step) {
            self.wait_read(gpu)?;
            if let Some(s) = self.take_mapped(n_groups)? {
                self.observe(&s)?;
            }
        }
        self.request(gpu, host_step)?;
        self.wait_read(gpu)?;
        let s = self.take_mapped(n_groups)?.ok_or_else(|| Error::Gpu {
            context: CONTEXT.into(),
            message: "the read did not complete".into(),
        })?;
        self.observe(&s)?;
        Ok(s)
    }

    fn wait_read(&mut self, gpu: &Gpu) -> Result<()> {
        if let Some(sub) = self.readback.pending_submission.clone() {
            gpu.wait(CONTEXT, sub)?;
        }
        // The map callback may be run by another thread's poll of the same
        // device just after our wait returns: wait (bounded) until it has.
        let start = std::time::Instant::now();
        while matches!(self.readback.get(), ReadState::Pending { .. }) {
            if start.elapsed() > gpu.wait_timeout() {
                return Err(Error::Timeout {
                    context: CONTEXT.into(),
                    seconds: gpu.wait_timeout().as_secs_f64(),
                });
            }
            let _ = gpu.device().poll(wgpu::PollType::Poll);
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
        Ok(())
    }

    /// Discards a read in flight or completed: its numbers describe the
    /// device before a restore. Waits (bounded) for a pending map, unmaps,
    /// and leaves the read `Idle`; nothing else changes if the wait fails.
    pub(crate) fn discard_read(&mut self, gpu: &Gpu) -> Result<()> {
        self.wait_read(gpu)?;
        if matches!(self.readback.get(), ReadState::Mapped { .. }) {
            self.readback.staging.unmap();
        }
        self.readback.put(ReadState::Idle);
        self.readback.pending_submission = None;
        Ok(())
    }

    /// Restores the device state from a checkpoint. A read from before the
    /// restore is discarded first and the skips seen are the restored
    /// count, so the next reads report exactly the skips after it.
    pub(crate) fn set_state(&mut self, gpu: &Gpu, state: &GradientState) -> Result<()> {
        if !(state.scale > 0.0 && state.scale.is_finite()) {
            return Err(Error::invalid(
                "scale",
                state.scale,
                "a finite number > 0",
                "Invalid loss scale",
            ));
        }
        // The device counter is u32 and must be able to count one more skip.
        if state.skipped >= u32::MAX as u64 {
            return Err(Error::invalid(
                "skipped",
                state.skipped,
                "fewer than 2^32 - 1 skipped steps (the device counts them in u32)",
                "Invalid skipped-step count",
            ));
        }
        self.discard_read(gpu)?;
        let header = ControlHeader {
            found_inf: 0,
            skipped: state.skipped as u32,
            scale: state.scale,
            growth_tracker: state.growth_tracker,
        };
        gpu.queue()
            .write_buffer(&self.control, 0, bytemuck::bytes_of(&header));
        self.readback.seen_skipped = state.skipped;
        Ok(())
    }
}

//! The gradient pipeline's statistics and state on the [`Optimizer`]: thin
//! entry points; the logic is in `crate::grad::readback`.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::grad::device::GradPipeline;
use crate::grad::{GradientState, StepStats};
use crate::optim::Optimizer;

// The gradient pipeline's statistics (logic in `crate::grad::readback`).
impl Optimizer {
    fn pipeline(&mut self, gpu: &Gpu) -> Result<&mut GradPipeline> {
        gpu.check_same("this Optimizer", self.gpu_id)?;
        self.grad.as_mut().ok_or_else(|| {
            Error::invalid(
                "gradients",
                "none",
                "clipping, a non-finite guard or a dynamic loss scale in the spec",
                "this optimizer has no gradient pipeline, so there are no statistics",
            )
        })
    }

    /// Starts an asynchronous read of the gradient statistics (norms, skipped
    /// steps, loss scale) as of the steps submitted so far. Does not wait;
    /// does nothing if a read is already in flight.
    ///
    /// # Errors
    /// No gradient pipeline is configured, or a wgpu error.
    pub fn request_stats(&mut self, gpu: &Gpu) -> Result<()> {
        let host_step = self.step;
        self.pipeline(gpu)?.request(gpu, host_step)
    }

    /// The statistics if a read has completed, without waiting; starts a
    /// read when none is in flight.
    pub fn try_stats(&mut self, gpu: &Gpu) -> Result<Option<StepStats>> {
        let (n, host_step) = (self.groups.len(), self.step);
        self.pipeline(gpu)?.try_stats(gpu, n, host_step)
    }

    /// The statistics as of the steps submitted so far: starts a read if
    /// none is in flight and waits for it (bounded). Call it every k steps,
    /// not inside a hot loop.
    ///
    /// # Errors
    /// As [`try_stats`](Self::try_stats), [`Error::Timeout`], and
    /// [`Error::NonFinite`] in [`NonFinite::Error`](crate::grad::NonFinite::Error) mode.
    pub fn stats(&mut self, gpu: &Gpu) -> Result<StepStats> {
        let (n, host_step) = (self.groups.len(), self.step);
        self.pipeline(gpu)?.stats(gpu, n, host_step)
    }

    /// The gradient pipeline's state for a checkpoint (waits for the GPU).
    pub fn gradient_state(&mut self, gpu: &Gpu) -> Result<Option<GradientState>> {
        if self.grad.is_none() {
            return Ok(None);
        }
        let s = self.stats(gpu)?;
        Ok(Some(GradientState {
            skipped: s.skipped_steps,
            scale: s.loss_scale,
            growth_tracker: s.growth_tracker,
        }))
    }

    /// Restores the gradient pipeline's state from a checkpoint.
    pub fn set_gradient_state(&mut self, gpu: &Gpu, state: &GradientState) -> Result<()> {
        gpu.check_same("this Optimizer", self.gpu_id)?;
        let gp = self.grad.as_mut().ok_or_else(|| {
            Error::invalid(
                "gradients",
                "none",
                "an optimizer with a gradient pipeline",
                "this optimizer has no gradient pipeline to restore",
            )
        })?;
        gp.set_state(gpu, state)
    }

    /// The device control block, for user kernels that multiply their loss
    /// by the current scale without a readback: a 16-byte header
    /// (`found_inf: u32`, `skipped: u32`, `scale: f32` at byte offset 8,
    /// `growth_tracker: u32`) followed by 16 bytes per param group.
    pub fn control_buffer(&self) -> Option<&wgpu::Buffer> {
        self.grad.as_ref().map(|g| &g.control)
    }
}

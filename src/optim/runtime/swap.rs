//! Schedule-Free's train / eval modes of an [`Optimizer`]: the swap of the
//! params between `y` and the average `x` on the device (the pipelines are
//! built with the optimizer; `schedule_free/swap.wgsl`), and the mode flag
//! that `step()` and checkpoints respect.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::optim::Optimizer;
use crate::params::ParamSet;

impl Optimizer {
    /// Schedule-Free: switches the params from `y` (where gradients are
    /// taken) to the averaged weights `x` to evaluate or save, on the device
    /// (one dispatch per chunk, `p = lerp(p, z, 1 - 1/beta)`), as
    /// `schedulefree`'s `optimizer.eval()`. Already in eval mode, or before
    /// the first step (no `z` yet), nothing moves; the mode is set either way.
    ///
    /// # Errors
    /// An optimizer without an eval mode (every one but Schedule-Free),
    /// another device or ParamSet, or a wgpu error; nothing changes then.
    pub fn eval(&mut self, gpu: &Gpu, params: &mut ParamSet) -> Result<()> {
        self.swap_to(gpu, params, true)
    }

    /// Schedule-Free: switches the params back from `x` to `y` before the
    /// next step (`p = lerp(p, z, 1 - beta)`), as `schedulefree`'s
    /// `optimizer.train()`. Already in train mode, nothing moves.
    ///
    /// # Errors
    /// As [`eval`](Self::eval).
    pub fn train(&mut self, gpu: &Gpu, params: &mut ParamSet) -> Result<()> {
        self.swap_to(gpu, params, false)
    }

    /// Whether this optimizer has an eval mode (Schedule-Free AdamW and SGD):
    /// [`eval`](Self::eval) before evaluating, [`train`](Self::train) before
    /// stepping.
    pub fn has_eval_mode(&self) -> bool {
        self.swap_kernels().is_some()
    }

    /// Schedule-Free's swap pipelines: it runs alone (`OptimizerSpec::resolve`),
    /// so they are the one part's.
    fn swap_kernels(
        &self,
    ) -> Option<&(
        std::sync::Arc<crate::gpu::Kernel>,
        std::sync::Arc<crate::gpu::Kernel>,
    )> {
        self.parts.iter().find_map(|p| p.swap.as_ref())
    }

    /// Whether the params hold the evaluation weights (after
    /// [`eval`](Self::eval)); always false for optimizers without an eval mode.
    pub fn is_eval_mode(&self) -> bool {
        self.eval_mode
    }

    /// Sets the mode flag without moving the params (a checkpoint restores
    /// params saved in that mode).
    pub(crate) fn set_eval_mode(&mut self, eval: bool) -> Result<()> {
        if eval && self.swap_kernels().is_none() {
            return Err(self.no_eval_mode());
        }
        self.eval_mode = eval;
        Ok(())
    }

    fn no_eval_mode(&self) -> Error {
        Error::invalid(
            "mode",
            "eval",
            "an optimizer with an eval mode (Schedule-Free AdamW or SGD)",
            format!("{} has no eval mode", self.algorithm_name()),
        )
    }

    fn swap_to(&mut self, gpu: &Gpu, params: &mut ParamSet, to_eval: bool) -> Result<()> {
        self.check_params(gpu, params)?;
        let Some((to_x, to_y)) = self.swap_kernels() else {
            return Err(self.no_eval_mode());
        };
        if self.eval_mode == to_eval || self.step == 0 {
            self.eval_mode = to_eval;
            return Ok(());
        }
        let bytes = self.uniform_bytes(self.step, &self.groups);
        let kernel = if to_eval { to_x } else { to_y };
        gpu.scoped("optim/swap", || {
            gpu.queue().write_buffer(&self.uniform, 0, &bytes);
            let mut enc = gpu
                .device()
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("optim/swap"),
                });
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("optim/swap"),
                    timestamp_writes: None,
                });
                pass.set_pipeline(&kernel.pipeline);
                for d in self.parts.iter().flat_map(|p| &p.dispatches) {
                    if let Some((e, t)) = &d.swap_bind_groups {
                        pass.set_bind_group(0, if to_eval { e } else { t }, &[]);
                        pass.dispatch_workgroups(d.grid.0, d.grid.1, 1);
                    }
                }
            }
            gpu.queue().submit([enc.finish()]);
        })?;
        self.eval_mode = to_eval;
        Ok(())
    }
}

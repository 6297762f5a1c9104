//! On-device gradient accumulation: k micro-batches, one optimizer step.
//!
//! Two ways, both with no host round trip:
//! - **Add in your own kernel** (the `+=` contract): the grads buffer is
//!   yours between steps. Call [`ParamSet::zero_grads`] at the start of a
//!   window, let each backward pass *add* into the grads, then step once.
//!   Nothing of this module is needed.
//! - **Fresh gradients**: each backward pass *writes* its micro-batch's
//!   gradient (as the digits example's kernels do); after each, call
//!   [`GradAccumulator::add`], which folds it into an accumulation buffer on
//!   the device in a fixed order (`((g1 + g2) + g3) + ... + gk`) and, after
//!   the k-th, writes the sum back into the grads and returns `true`: step
//!   then. One dispatch per chunk per micro-batch (a read of both buffers
//!   and a write of one); with k = 1 it does nothing and returns `true`.
//!
//! Either way the step sees the *sum* of the micro-gradients. If each
//! micro-gradient is a mean over its micro-batch, fold `1 / k` into the
//! step with [`Optimizer::set_grad_scale`](crate::Optimizer::set_grad_scale)
//! (no extra pass); if it is already divided by the whole batch (the
//! example's `divisor`), nothing is needed. Clipping, the non-finite guard
//! and loss scaling then see the accumulated gradient, as PyTorch's
//! `clip_grad_norm_` after k backward passes does. With data parallelism,
//! accumulate on every replica and call `DataParallel::step` after the k-th
//! micro-batch only: micro-batches 1..k-1 do no all-reduce (`no_sync`),
//! the k-th reduces once.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Kernel, Slot, grid};
use crate::params::{ParamSet, Role};

/// Folds k fresh micro-batch gradients into one, on the device (module docs).
pub struct GradAccumulator {
    params_id: u64,
    gpu_id: u64,
    k: u32,
    /// Micro-batches folded in since the last completed window.
    done: u32,
    /// `FIRST`, middle and `FINAL` pipelines.
    kernels: [Arc<Kernel>; 3],
    /// Per chunk: one bind group per pipeline, and the grid.
    chunks: Vec<([wgpu::BindGroup; 3], (u32, u32))>,
    _accum: Role,
}

impl std::fmt::Debug for GradAccumulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GradAccumulator")
            .field("k", &self.k)
            .field("done", &self.done)
            .finish()
    }
}

impl GradAccumulator {
    /// An accumulator of `k` micro-batches over the grads of `params` (one
    /// more gradient-sized buffer on the device when `k > 1`).
    ///
    /// # Errors
    /// `k = 0` ([`Error::InvalidConfig`] naming `accumulation_steps`), or a
    /// wgpu error.
    pub fn new(gpu: &Gpu, params: &ParamSet, k: u32) -> Result<GradAccumulator> {
        gpu.check_same("the ParamSet", params.gpu_id())?;
        if k == 0 {
            return Err(Error::invalid(
                "accumulation_steps",
                k,
                "at least 1 micro-batch per step",
                "accumulation_steps must be at least 1",
            ));
        }
        let source = include_str!("accumulate.wgsl");
        let slots = [Slot::StorageReadWrite, Slot::StorageReadWrite];
        let kernel = |key: &str, c: &[(&str, f64)]| gpu.kernel(key, source, &slots, c);
        let kernels = [
            kernel("grad/accumulate/first", &[("FIRST", 1.0)])?,
            kernel("grad/accumulate/add", &[])?,
            kernel("grad/accumulate/final", &[("FINAL", 1.0)])?,
        ];
        let placement = params.placement();
        let (accum, chunks) = gpu.scoped("grad/accumulate/new", || {
            // k = 1 needs no buffer: a 1-element stand-in per chunk is never dispatched.
            let accum = if k > 1 {
                Role::new(gpu, "grad/accumulate", placement, 0.0)
            } else {
                Role {
                    buffers: Vec::new(),
                }
            };
            let max_dim = gpu.limits().max_compute_workgroups_per_dimension;
            let chunks = accum
                .buffers
                .iter()
                .zip(&params.grads.buffers)
                .enumerate()
                .map(|(c, (a, g))| {
                    let res = [a.as_entire_binding(), g.as_entire_binding()];
                    let label = format!("grad/accumulate/chunk{c}");
                    let bgs = kernels
                        .each_ref()
                        .map(|k| gpu.create_bind_group(&label, &k.layout, &res));
                    let vec4s = (g.size() / 16) as u32;
                    (bgs, grid(vec4s.div_ceil(256), max_dim))
                })
                .collect();
            (accum, chunks)
        })?;
        Ok(GradAccumulator {
            params_id: params.id(),
            gpu_id: gpu.id(),
            k,
            done: 0,
            kernels,
            chunks,
            _accum: accum,
        })
    }

    /// Micro-batches per optimizer step.
    pub fn steps(&self) -> u32 {
        self.k
    }

    /// Micro-batches folded in since the last completed window (0..k).
    pub fn pending(&self) -> u32 {
        self.done
    }

    /// Folds the micro-batch gradient now in the grads of `params` into the
    /// window (one submit, no wait). Returns `true` after the k-th: the
    /// grads then hold the sum of the window's k gradients, and the next
    /// window starts with the next call.
    ///
    /// # Errors
    /// Another device or ParamSet than the accumulator's, or a wgpu error;
    /// nothing is folded then.
    pub fn add(&mut self, gpu: &Gpu, params: &mut ParamSet) -> Result<bool> {
        gpu.check_same("this GradAccumulator", self.gpu_id)?;
        if params.id() != self.params_id {
            return Err(Error::mismatch(format!(
                "this accumulator was built for ParamSet #{}, not #{}",
                self.params_id,
                params.id()
            )));
        }
        if self.k == 1 {
            return Ok(true);
        }
        let which = match self.done {
            0 => 0,
            d if d + 1 == self.k => 2,
            _ => 1,
        };
        gpu.scoped("grad/accumulate", || {
            let mut enc = gpu
                .device()
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("grad/accumulate"),
                });
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("grad/accumulate"),
                    timestamp_writes: None,
                });
                pass.set_pipeline(&self.kernels[which].pipeline);
                for (bgs, (x, y)) in &self.chunks {
                    pass.set_bind_group(0, &bgs[which], &[]);
                    pass.dispatch_workgroups(*x, *y, 1);
                }
            }
            gpu.queue().submit([enc.finish()]);
        })?;
        self.done = (self.done + 1) % self.k;
        Ok(self.done == 0)
    }

    /// Drops a partly folded window (the next [`add`](Self::add) starts a
    /// new one); the grads are left as they are.
    pub fn reset(&mut self) {
        self.done = 0;
    }
}

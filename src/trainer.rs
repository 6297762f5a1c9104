//! [`Trainer`]: the simple path — one handle that owns the device, the
//! parameters, the optimizer, an optional learning-rate schedule and (inside
//! the optimizer) the gradient pipeline, so a training loop does not thread
//! `&gpu` and `&mut params` through every call. Everything it does is the
//! low-level API underneath ([`Optimizer::step`], [`LrScheduler::advance`],
//! [`checkpoint::save`]), which stays available through the accessors.
//!
//! ```no_run
//! use wgpu_optim::{Gpu, ParamLayout, Trainer};
//! use wgpu_optim::optim::{AdamWConfig, OptimizerSpec};
//! use wgpu_optim::schedule::Schedule;
//!
//! # fn main() -> wgpu_optim::Result<()> {
//! let layout = ParamLayout::new(&[("w", &[256, 64][..]), ("b", &[64][..])])?;
//! let spec = OptimizerSpec::adamw(AdamWConfig { lr: 3e-4, ..Default::default() })
//!     .clip_by_global_norm(1.0);
//! let mut trainer = Trainer::new(Gpu::new_default()?, &layout, &spec)?
//!     .with_schedule(Schedule::warmup_cosine(3e-4, 100, 1000, 3e-5)?)?;
//! trainer.write("w", &vec![0.1; 256 * 64])?;
//! for _ in 0..10 {
//!     // ... your backward pass writes trainer.params().grad_buffers() ...
//!     trainer.step()?;                 // clip, AdamW, schedule: one submit, no readback
//! }
//! let w = trainer.read("w")?;
//! # Ok(()) }
//! ```

use std::path::Path;

use crate::checkpoint::{self, TrainingState};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::grad::StepStats;
use crate::layout::ParamLayout;
use crate::optim::{Optimizer, OptimizerSpec};
use crate::params::ParamSet;
use crate::schedule::{LrScheduler, Schedule};

/// A device, its parameters, an optimizer over them and an optional
/// schedule, stepped together.
#[derive(Debug)]
pub struct Trainer {
    gpu: Gpu,
    params: ParamSet,
    opt: Optimizer,
    schedule: Option<LrScheduler>,
}

impl Trainer {
    /// Allocates `layout`'s params and grads on `gpu` and builds the
    /// optimizer of `spec` over them.
    ///
    /// # Errors
    /// As [`ParamSet::new`] and [`Optimizer::new`].
    pub fn new(gpu: Gpu, layout: &ParamLayout, spec: &OptimizerSpec) -> Result<Trainer> {
        let params = ParamSet::new(&gpu, layout)?;
        let opt = Optimizer::new(&gpu, spec, &params)?;
        Ok(Trainer {
            gpu,
            params,
            opt,
            schedule: None,
        })
    }

    /// Drives every param group's learning rate with `schedule` (groups keep
    /// their ratio to the base group), applied from the first step on.
    ///
    /// # Errors
    /// As [`LrScheduler::new`].
    pub fn with_schedule(mut self, schedule: Schedule) -> Result<Trainer> {
        self.schedule = Some(LrScheduler::new(&mut self.opt, schedule)?);
        Ok(self)
    }

    /// One optimizer step (gradient pipeline and fused update: one submit,
    /// no readback), then the schedule's next learning rate.
    ///
    /// # Errors
    /// As [`Optimizer::step`] and [`LrScheduler::advance`].
    pub fn step(&mut self) -> Result<()> {
        self.opt.step(&self.gpu, &mut self.params)?;
        if let Some(s) = &mut self.schedule {
            s.advance(&mut self.opt)?;
        }
        Ok(())
    }

    /// Schedule-Free's eval mode: the params become the averaged weights
    /// (see [`Optimizer::eval`]).
    ///
    /// # Errors
    /// As [`Optimizer::eval`].
    pub fn eval(&mut self) -> Result<()> {
        self.opt.eval(&self.gpu, &mut self.params)
    }
    /// Schedule-Free's train mode, before the next step (see
    /// [`Optimizer::train`]).
    ///
    /// # Errors
    /// As [`Optimizer::train`].
    pub fn train(&mut self) -> Result<()> {
        self.opt.train(&self.gpu, &mut self.params)
    }

    /// Uploads the values of tensor `name`.
    pub fn write(&mut self, name: &str, data: &[f32]) -> Result<()> {
        self.params.write(&self.gpu, name, data)
    }
    /// Uploads the gradient of tensor `name`.
    pub fn write_grad(&mut self, name: &str, data: &[f32]) -> Result<()> {
        self.params.write_grad(&self.gpu, name, data)
    }
    /// Downloads the values of tensor `name` (waits for the GPU).
    pub fn read(&self, name: &str) -> Result<Vec<f32>> {
        self.params.read(&self.gpu, name)
    }
    /// Sets every gradient to zero on the device.
    pub fn zero_grads(&mut self) -> Result<()> {
        self.params.zero_grads(&self.gpu)
    }
    /// The gradient statistics (norms, skipped steps, loss scale); waits
    /// for the GPU, so call it every k steps.
    pub fn stats(&mut self) -> Result<StepStats> {
        self.opt.stats(&self.gpu)
    }
    /// Writes a checkpoint of params, optimizer state and schedule.
    pub fn save(&mut self, path: &Path) -> Result<()> {
        let training = TrainingState {
            scheduler: self.schedule.clone(),
            ..Default::default()
        };
        checkpoint::save(path, &self.gpu, &self.params, &mut self.opt, &training)
    }
    /// Loads a checkpoint written by [`save`](Self::save) (validated before
    /// anything changes) and restores the schedule it holds.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let training = checkpoint::load(path, &self.gpu, &mut self.params, &mut self.opt)?;
        if training.scheduler.is_some() {
            self.schedule = training.scheduler;
        }
        Ok(())
    }

    /// The device.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }
    /// The parameters (their buffers are where a backward pass writes grads).
    pub fn params(&self) -> &ParamSet {
        &self.params
    }
    /// The parameters, mutably.
    pub fn params_mut(&mut self) -> &mut ParamSet {
        &mut self.params
    }
    /// The optimizer.
    pub fn optimizer(&self) -> &Optimizer {
        &self.opt
    }
    /// The optimizer, mutably (learning rates, grad scale, state).
    pub fn optimizer_mut(&mut self) -> &mut Optimizer {
        &mut self.opt
    }
    /// The schedule, if any.
    pub fn schedule(&self) -> Option<&LrScheduler> {
        self.schedule.as_ref()
    }
}

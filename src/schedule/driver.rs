//! [`LrScheduler`]: applies [`Schedule`]s to an [`Optimizer`]'s param groups.
//!
//! A schedule is a pure function of the step, so applying it costs one host
//! evaluation per group and step and the optimizer's next uniform write: no
//! pipeline rebuild, no readback. Resuming at step `k` is `set_step(k)`.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::optim::Optimizer;
use crate::schedule::Schedule;

/// Drives the learning rate (and, for cycling schedules, momentum / beta1)
/// of an optimizer.
///
/// With one schedule for all groups, group `g`'s lr is
/// `schedule.lr(step) * initial_lr[g] / initial_lr[0]`: groups keep their
/// ratio to the base group, as PyTorch's schedulers keep each group's own
/// `base_lr`. With one schedule per group, each group's lr is its schedule's
/// value.
///
/// ```no_run
/// # use wgpu_optim::{Gpu, Optimizer, ParamLayout, ParamSet};
/// # use wgpu_optim::optim::{AdamWConfig, OptimizerSpec};
/// # use wgpu_optim::schedule::Schedule;
/// # use wgpu_optim::scheduler::LrScheduler;
/// # fn main() -> wgpu_optim::Result<()> {
/// # let gpu = Gpu::new_default()?;
/// # let mut params = ParamSet::new(&gpu, &ParamLayout::new(&[("w", &[4][..])])?)?;
/// let mut opt = Optimizer::new(&gpu, &OptimizerSpec::adamw(AdamWConfig::default()), &params)?;
/// let mut sched = LrScheduler::new(&opt, Schedule::warmup_cosine(1e-3, 100, 1000, 1e-5)?)?;
/// for _ in 0..1000 {
///     opt.step(&gpu, &mut params)?;
///     sched.advance(&mut opt)?;   // lr for the next step
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LrScheduler {
    schedules: Vec<Schedule>,
    ratios: Vec<f64>,
    step: u64,
}

impl LrScheduler {
    /// One schedule for every group; sets the lrs of step 0 now.
    ///
    /// # Errors
    /// A base group with lr 0 while other groups have a non-zero lr (no
    /// ratio exists), or an lr the optimizer refuses.
    pub fn new(opt: &Optimizer, schedule: Schedule) -> Result<LrScheduler> {
        let base = opt.group_hp(0)?.lr;
        let mut ratios = Vec::with_capacity(opt.num_groups());
        for g in 0..opt.num_groups() {
            let lr = opt.group_hp(g)?.lr;
            ratios.push(if lr == base {
                1.0
            } else if base != 0.0 {
                lr / base
            } else {
                return Err(Error::invalid(
                    "lr",
                    0,
                    "a non-zero base-group lr when groups have their own lr",
                    "cannot scale group lrs relative to a base lr of 0; use LrScheduler::per_group",
                ));
            });
        }
        Ok(LrScheduler {
            schedules: vec![schedule],
            ratios,
            step: 0,
        })
    }

    /// One schedule per param group (absolute values).
    ///
    /// # Errors
    /// When the number of schedules differs from the number of groups.
    pub fn per_group(opt: &Optimizer, schedules: Vec<Schedule>) -> Result<LrScheduler> {
        if schedules.len() != opt.num_groups() {
            return Err(Error::mismatch(format!(
                "{} schedules for {} param groups",
                schedules.len(),
                opt.num_groups()
            )));
        }
        Ok(LrScheduler {
            ratios: vec![1.0; schedules.len()],
            schedules,
            step: 0,
        })
    }

    /// The number of `advance` calls so far (PyTorch's `last_epoch`).
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// Jumps to `step` (resuming from a checkpoint); call [`apply`](Self::apply) after.
    pub fn set_step(&mut self, step: u64) {
        self.step = step;
    }

    /// The lr of group `g` at the current step.
    pub fn lr(&self, g: usize) -> f64 {
        match self.schedules.len() {
            1 => self.schedules[0].lr(self.step) * self.ratios[g],
            _ => self.schedules[g].lr(self.step),
        }
    }

    /// Writes the current step's lrs (and momentum / beta1 of cycling
    /// schedules) into the optimizer.
    pub fn apply(&self, opt: &mut Optimizer) -> Result<()> {
        for g in 0..opt.num_groups().min(self.ratios.len()) {
            opt.set_lr(g, self.lr(g))?;
        }
        if let Some(m) = self.schedules[0].momentum(self.step) {
            opt.set_momentum(m)?;
        }
        Ok(())
    }

    /// Moves to the next step and applies it (PyTorch's `scheduler.step()`).
    pub fn advance(&mut self, opt: &mut Optimizer) -> Result<()> {
        self.step += 1;
        self.apply(opt)
    }
}

//! [`LrScheduler`]: applies [`Schedule`]s to an [`Optimizer`]'s param
//! groups, or to every replica of a [`DataParallel`].
//!
//! A schedule is a pure function of the step, so applying it costs one host
//! evaluation per group and step and the optimizer's next uniform write: no
//! pipeline rebuild, no readback. Resuming at step `k` is `set_step(k)`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Schedule, check_scheduled_lr};
use crate::error::{Error, Result};
use crate::optim::Optimizer;
use crate::pool::DataParallel;

/// Drives the learning rate (and, for cycling schedules, momentum / beta1)
/// of an optimizer.
///
/// With one schedule for all groups, group `g`'s lr is
/// `schedule.lr(step) * initial_lr[g] / initial_lr[0]`: groups keep their
/// ratio to the base group, as PyTorch's schedulers keep each group's own
/// `base_lr`. With one schedule per group, each group's lr is its schedule's
/// value.
///
/// As constructing a PyTorch scheduler does, [`new`](Self::new) and
/// [`per_group`](Self::per_group) write the step-0 values into the
/// optimizer, so the first optimizer step runs at the step-0 rate (0 for a
/// warmup from 0). Every write is all or nothing: when a value is refused
/// (an lr the device cannot hold, a momentum the optimizer does not have,
/// another number of param groups than the scheduler was built for),
/// neither the optimizer nor the scheduler changes.
///
/// ```no_run
/// # use wgpu_optim::{Gpu, Optimizer, ParamLayout, ParamSet};
/// # use wgpu_optim::optim::{AdamWConfig, OptimizerSpec};
/// use wgpu_optim::schedule::{LrScheduler, Schedule};
/// # fn main() -> wgpu_optim::Result<()> {
/// # let gpu = Gpu::new_default()?;
/// # let mut params = ParamSet::new(&gpu, &ParamLayout::new(&[("w", &[4][..])])?)?;
/// let mut opt = Optimizer::new(&gpu, &OptimizerSpec::adamw(AdamWConfig::default()), &params)?;
/// // Sets the step-0 lr (0: the warmup starts there).
/// let mut sched = LrScheduler::new(&mut opt, Schedule::warmup_cosine(1e-3, 100, 1000, 1e-5)?)?;
/// for _ in 0..1000 {
///     opt.step(&gpu, &mut params)?;
///     sched.advance(&mut opt)?;   // lr for the next step
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct LrScheduler {
    schedules: Vec<Schedule>,
    ratios: Vec<f64>,
    step: u64,
}

impl Serialize for LrScheduler {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        LrScheduler::serialize(self, s)
    }
}

impl<'de> Deserialize<'de> for LrScheduler {
    /// Deserializes and checks the structure (the schedules validate
    /// themselves).
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = LrScheduler::deserialize(d)?;
        s.check_structure().map_err(serde::de::Error::custom)?;
        Ok(s)
    }
}

/// Compares the serialized forms (a [`Schedule::from_fn`] closure is never
/// equal).
impl PartialEq for LrScheduler {
    fn eq(&self, other: &Self) -> bool {
        match (serde_json::to_string(self), serde_json::to_string(other)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }
}

/// The values of one step, checked, ready to be written.
struct Values {
    lrs: Vec<f64>,
    momentum: Option<f64>,
}

impl LrScheduler {
    /// One schedule for every group; writes the step-0 lrs (and momentum)
    /// into `opt` now, as PyTorch's scheduler constructors do.
    ///
    /// # Errors
    /// A base group with lr 0 while other groups have a non-zero lr (no
    /// ratio exists), or a step-0 value refused as by [`apply`](Self::apply);
    /// `opt` is unchanged then.
    pub fn new(opt: &mut Optimizer, schedule: Schedule) -> Result<LrScheduler> {
        let s = LrScheduler {
            schedules: vec![schedule],
            ratios: ratios(&opt.lrs())?,
            step: 0,
        };
        s.apply(opt)?;
        Ok(s)
    }

    /// One schedule per param group (absolute values); writes the step-0
    /// values into `opt` now.
    ///
    /// # Errors
    /// [`Error::LayoutMismatch`] when the number of schedules differs from
    /// the number of groups, or a step-0 value refused as by
    /// [`apply`](Self::apply); `opt` is unchanged then.
    pub fn per_group(opt: &mut Optimizer, schedules: Vec<Schedule>) -> Result<LrScheduler> {
        if schedules.len() != opt.num_groups() {
            return Err(Error::mismatch(format!(
                "{} schedules for {} param groups",
                schedules.len(),
                opt.num_groups()
            )));
        }
        let s = LrScheduler {
            ratios: vec![1.0; schedules.len()],
            schedules,
            step: 0,
        };
        s.apply(opt)?;
        Ok(s)
    }

    /// One schedule for every group of every replica: the group ratios are
    /// replica 0's, and the step-0 values are written into every replica.
    ///
    /// # Errors
    /// As [`new`](Self::new), for any replica; no replica changes then.
    pub fn new_data_parallel(dp: &mut DataParallel, schedule: Schedule) -> Result<LrScheduler> {
        let s = LrScheduler {
            schedules: vec![schedule],
            ratios: ratios(&dp.replica(0).opt.lrs())?,
            step: 0,
        };
        s.apply_data_parallel(dp)?;
        Ok(s)
    }

    /// The number of `advance` calls so far (PyTorch's `last_epoch`).
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// Jumps to `step` (resuming from a checkpoint); call
    /// [`apply`](Self::apply) after.
    pub fn set_step(&mut self, step: u64) {
        self.step = step;
    }

    /// The number of param groups this scheduler drives.
    pub fn num_groups(&self) -> usize {
        self.ratios.len()
    }

    /// The schedules: one for all groups, or one per group.
    pub fn schedules(&self) -> &[Schedule] {
        &self.schedules
    }

    /// The lr of group `g` at the current step.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a group `g >= num_groups()`, or for a
    /// value that is not a learning rate (NaN, negative, above `f32::MAX`),
    /// naming the schedule and the step.
    pub fn lr(&self, g: usize) -> Result<f64> {
        if g >= self.ratios.len() {
            return Err(Error::invalid(
                "group",
                g,
                format!("0..{}", self.ratios.len()),
                format!(
                    "no param group {g}: the scheduler drives {} group(s)",
                    self.ratios.len()
                ),
            ));
        }
        self.group_lr(g, self.step)
    }

    /// Writes the current step's lrs (and momentum / beta1 of cycling
    /// schedules) into the optimizer.
    ///
    /// # Errors
    /// [`Error::LayoutMismatch`] when `opt` has another number of param
    /// groups than the scheduler was built for; [`Error::InvalidConfig`] for
    /// a scheduled value that is not a learning rate (naming the schedule and
    /// the step) or a momentum the optimizer refuses. Nothing changes then.
    pub fn apply(&self, opt: &mut Optimizer) -> Result<()> {
        self.check_groups(opt, "")?;
        write(opt, &self.values(self.step)?)
    }

    /// Moves to the next step and applies it (PyTorch's `scheduler.step()`).
    ///
    /// # Errors
    /// As [`apply`](Self::apply), and [`Error::InvalidConfig`] when the step
    /// count is `u64::MAX`. On error neither the step nor the optimizer
    /// changes.
    pub fn advance(&mut self, opt: &mut Optimizer) -> Result<()> {
        let next = self.next_step()?;
        self.check_groups(opt, "")?;
        write(opt, &self.values(next)?)?;
        self.step = next;
        Ok(())
    }

    /// [`apply`](Self::apply) on every replica of `dp`: all get the same
    /// values.
    ///
    /// # Errors
    /// As [`apply`](Self::apply) for any replica (the message names it); no
    /// replica changes then.
    pub fn apply_data_parallel(&self, dp: &mut DataParallel) -> Result<()> {
        self.write_data_parallel(dp, self.step)
    }

    /// [`advance`](Self::advance) for every replica of `dp`: one step
    /// forward, the same values on every replica.
    ///
    /// # Errors
    /// As [`advance`](Self::advance) for any replica; neither the step nor
    /// any replica changes then.
    pub fn advance_data_parallel(&mut self, dp: &mut DataParallel) -> Result<()> {
        let next = self.next_step()?;
        self.write_data_parallel(dp, next)?;
        self.step = next;
        Ok(())
    }

    fn next_step(&self) -> Result<u64> {
        self.step.checked_add(1).ok_or_else(|| {
            Error::invalid(
                "step",
                self.step,
                "a step count below u64::MAX",
                "the scheduler is at step u64::MAX and cannot advance",
            )
        })
    }

    /// The schedule of group `g`.
    fn schedule_of(&self, g: usize) -> &Schedule {
        match self.schedules.len() {
            1 => &self.schedules[0],
            _ => &self.schedules[g],
        }
    }

    /// Group `g`'s lr at `step`, checked (`g` in range).
    fn group_lr(&self, g: usize, step: u64) -> Result<f64> {
        let s = self.schedule_of(g);
        let v = match self.schedules.len() {
            1 => s.lr(step) * self.ratios[g],
            _ => s.lr(step),
        };
        check_scheduled_lr(s.kind(), step, v, &format!(" for param group {g}"))?;
        Ok(v)
    }

    fn values(&self, step: u64) -> Result<Values> {
        let lrs = (0..self.ratios.len())
            .map(|g| self.group_lr(g, step))
            .collect::<Result<Vec<_>>>()?;
        let momentum = self.schedules[0].try_momentum(step)?;
        Ok(Values { lrs, momentum })
    }

    fn check_groups(&self, opt: &Optimizer, whose: &str) -> Result<()> {
        if opt.num_groups() == self.ratios.len() {
            Ok(())
        } else {
            Err(Error::mismatch(format!(
                "the scheduler was built for {} param group(s) but {whose}the optimizer has {}",
                self.ratios.len(),
                opt.num_groups()
            )))
        }
    }

    fn write_data_parallel(&self, dp: &mut DataParallel, step: u64) -> Result<()> {
        for (i, r) in dp.replicas().iter().enumerate() {
            self.check_groups(&r.opt, &format!("replica {i}: "))?;
        }
        let values = self.values(step)?;
        let replicas = dp.replicas_mut();
        let mut before: Vec<(Vec<f64>, Vec<Option<f64>>)> = Vec::with_capacity(replicas.len());
        for i in 0..replicas.len() {
            let old = (replicas[i].opt.lrs(), momenta(&replicas[i].opt));
            if let Err(e) = write(&mut replicas[i].opt, &values) {
                // Put back what the replicas before this one had.
                for (r, (lrs, m)) in replicas.iter_mut().zip(before) {
                    restore(&mut r.opt, &lrs, &m);
                }
                return Err(prefix_replica(e, i));
            }
            before.push(old);
        }
        Ok(())
    }

    /// The invariants serde cannot express.
    fn check_structure(&self) -> Result<()> {
        let (n, groups) = (self.schedules.len(), self.ratios.len());
        if n == 0 || groups == 0 || (n != 1 && n != groups) {
            return Err(Error::mismatch(format!(
                "an LrScheduler needs one schedule, or one per param group; this one has {n} \
                 schedule(s) for {groups} group(s)"
            )));
        }
        if let Some(r) = self.ratios.iter().find(|r| !(r.is_finite() && **r >= 0.0)) {
            return Err(Error::invalid(
                "ratios",
                r,
                "finite numbers >= 0",
                "a group's lr ratio to the base group must be a finite number >= 0",
            ));
        }
        Ok(())
    }
}

/// Each group's lr over the base group's.
fn ratios(lrs: &[f64]) -> Result<Vec<f64>> {
    let base = lrs.first().copied().unwrap_or(0.0);
    lrs.iter()
        .map(|&lr| {
            if lr == base {
                Ok(1.0)
            } else if base != 0.0 {
                Ok(lr / base)
            } else {
                Err(Error::invalid(
                    "lr",
                    0,
                    "a non-zero base-group lr when groups have their own lr",
                    "cannot scale group lrs relative to a base lr of 0; use LrScheduler::per_group",
                ))
            }
        })
        .collect()
}

/// Writes checked values into `opt`, all or nothing.
fn write(opt: &mut Optimizer, v: &Values) -> Result<()> {
    let old = opt.lrs();
    opt.set_lrs(&v.lrs)?;
    if let Some(m) = v.momentum
        && let Err(e) = opt.set_momentum(m)
    {
        restore(opt, &old, &[]);
        return Err(e);
    }
    Ok(())
}

/// Each group's momentum (its algorithm's own: `momentum`, `beta1`), if it
/// keeps one.
fn momenta(opt: &Optimizer) -> Vec<Option<f64>> {
    (0..opt.num_groups())
        .map(|g| {
            let c = opt.group_config(g).ok()?;
            c.get(c.algo().momentum_name()?)
        })
        .collect()
}

/// Puts back lrs (and each group's momentum, from [`momenta`]) that `opt`
/// had: values it accepted before, so it accepts them again.
fn restore(opt: &mut Optimizer, lrs: &[f64], momenta: &[Option<f64>]) {
    // Cannot fail: the optimizer held these values a moment ago.
    let _ = opt.set_lrs(lrs);
    for (g, m) in momenta.iter().enumerate() {
        let name = opt
            .group_config(g)
            .ok()
            .and_then(|c| c.algo().momentum_name());
        if let (Some(m), Some(name)) = (m, name) {
            let _ = opt.set_hyperparameter(g, name, *m);
        }
    }
}

/// Names the replica in an error from writing into its optimizer.
fn prefix_replica(e: Error, i: usize) -> Error {
    match e {
        Error::InvalidConfig {
            field,
            value,
            allowed,
            message,
        } => Error::InvalidConfig {
            field,
            value,
            allowed,
            message: format!("replica {i}: {message}"),
        },
        Error::LayoutMismatch { reason } => Error::mismatch(format!("replica {i}: {reason}")),
        other => other,
    }
}

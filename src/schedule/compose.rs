//! Schedules made of schedules: PyTorch's `SequentialLR` ([`Sequential`],
//! one member per interval of steps) and `ChainedScheduler` ([`Chained`],
//! multiplicative members whose factors multiply).

use serde::{Deserialize, Serialize};

use super::{Family, Schedule, check_increasing};
use crate::error::{Error, Result};

/// PyTorch `SequentialLR`; built by
/// [`Schedule::sequential`](super::Schedule::sequential).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Sequential {
    pub(super) schedules: Vec<Schedule>,
    pub(super) milestones: Vec<u64>,
}

impl Sequential {
    /// The schedules, one per interval.
    pub fn schedules(&self) -> &[Schedule] {
        &self.schedules
    }
    /// The steps at which the next schedule takes over (restarting at its
    /// own step 0).
    pub fn milestones(&self) -> &[u64] {
        &self.milestones
    }
    /// `(index of the active schedule, its local step)` at step `e`.
    fn position(&self, e: u64) -> (usize, u64) {
        let i = self.milestones.partition_point(|&m| m <= e);
        let start = if i == 0 { 0 } else { self.milestones[i - 1] };
        (i, e - start)
    }
}

impl Family for Sequential {
    fn kind(&self) -> &'static str {
        "sequential"
    }
    fn validate(&self) -> Result<()> {
        let (schedules, milestones) = (&self.schedules, &self.milestones);
        if schedules.is_empty() {
            return Err(Error::invalid(
                "schedulers",
                0,
                "at least one schedule",
                "SequentialLR expects at least one scheduler, but got no scheduler.",
            ));
        }
        if milestones.len() + 1 != schedules.len() {
            return Err(Error::invalid(
                "milestones",
                format!("{milestones:?}"),
                format!(
                    "{} milestones (one fewer than schedules)",
                    schedules.len() - 1
                ),
                format!(
                    "Sequential Schedulers expects number of schedulers provided to be one \
                     more than the number of milestone points, but got number of \
                     schedulers {} and the number of milestones to be equal to {}",
                    schedules.len(),
                    milestones.len()
                ),
            ));
        }
        check_increasing("milestones", milestones, 1)?;
        schedules.iter().try_for_each(Schedule::validate)
    }
    fn base_lr(&self) -> f64 {
        self.schedules[0].base_lr()
    }
    fn lr(&self, e: u64) -> f64 {
        let (i, local) = self.position(e);
        self.schedules[i].lr(local)
    }
    fn momentum(&self, e: u64) -> Option<f64> {
        let (i, local) = self.position(e);
        self.schedules[i].momentum(local)
    }
}

/// PyTorch `ChainedScheduler` over multiplicative schedules; built by
/// [`Schedule::chained`](super::Schedule::chained).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Chained {
    pub(super) schedules: Vec<Schedule>,
}

impl Chained {
    /// The schedules whose factors multiply.
    pub fn schedules(&self) -> &[Schedule] {
        &self.schedules
    }
}

impl Family for Chained {
    fn kind(&self) -> &'static str {
        "chained"
    }
    fn validate(&self) -> Result<()> {
        let schedules = &self.schedules;
        if schedules.is_empty() {
            return Err(Error::invalid(
                "schedulers",
                0,
                "at least one schedule",
                "ChainedScheduler expects at least one scheduler to be chained, but got \
                 no scheduler.",
            ));
        }
        let base = schedules[0].base_lr();
        for (i, s) in schedules.iter().enumerate() {
            s.validate()?;
            if !s.family().chainable() {
                return Err(Error::invalid(
                    "schedulers",
                    format!("[{i}] = {}", s.kind()),
                    "constant, constant_lr, linear, step, multi_step, exponential, \
                     polynomial, cosine_annealing with eta_min = 0, chained",
                    format!(
                        "ChainedScheduler member {i} ({}) is not a multiplicative schedule",
                        s.kind()
                    ),
                ));
            }
            if s.base_lr() != base {
                return Err(Error::invalid(
                    "schedulers",
                    format!("[{i}] base lr = {}", s.base_lr()),
                    format!("the same base lr as member 0 ({base})"),
                    "ChainedScheduler members must share the optimizer's initial lr",
                ));
            }
        }
        Ok(())
    }
    fn base_lr(&self) -> f64 {
        self.schedules[0].base_lr()
    }
    fn lr(&self, e: u64) -> f64 {
        let mut lr = self.schedules[0].base_lr();
        for s in &self.schedules {
            lr *= s.factor(e);
        }
        lr
    }
    fn chainable(&self) -> bool {
        true
    }
}

validated_serde!(Sequential, Chained);

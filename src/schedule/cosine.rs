//! The cosine schedules: PyTorch's `CosineAnnealingLR` ([`CosineAnnealing`],
//! in its recursive form) and `CosineAnnealingWarmRestarts`
//! ([`CosineWarmRestarts`]), and the Hugging Face style warmups
//! [`WarmupCosine`] and [`WarmupConstant`] (a linear ramp from 0).

use std::f64::consts::PI;

use serde::{Deserialize, Serialize};

use super::{Family, check_lr, check_positive_steps, check_range};
use crate::error::{Error, Result};

/// PyTorch `CosineAnnealingLR`; built by
/// [`Schedule::cosine_annealing`](super::Schedule::cosine_annealing).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct CosineAnnealing {
    pub(super) base: f64,
    pub(super) t_max: u64,
    pub(super) eta_min: f64,
}

impl CosineAnnealing {
    /// The optimizer's initial learning rate.
    pub fn base(&self) -> f64 {
        self.base
    }
    /// The half period.
    pub fn t_max(&self) -> u64 {
        self.t_max
    }
    /// The minimum learning rate.
    pub fn eta_min(&self) -> f64 {
        self.eta_min
    }
}

impl Family for CosineAnnealing {
    fn kind(&self) -> &'static str {
        "cosine_annealing"
    }
    fn validate(&self) -> Result<()> {
        check_lr("lr", self.base)?;
        check_positive_steps("T_max", self.t_max)?;
        check_range("eta_min", self.eta_min, self.eta_min >= 0.0, "eta_min >= 0")
    }
    fn base_lr(&self) -> f64 {
        self.base
    }
    fn lr(&self, e: u64) -> f64 {
        cosine_annealing_lr(self.base, self.t_max, self.eta_min, e)
    }
    /// Only with `eta_min == 0` is PyTorch's chained form a pure factor.
    fn chainable(&self) -> bool {
        self.eta_min == 0.0
    }
}

/// PyTorch `CosineAnnealingWarmRestarts`, stepped with integer steps; built
/// by [`Schedule::cosine_warm_restarts`](super::Schedule::cosine_warm_restarts).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct CosineWarmRestarts {
    pub(super) base: f64,
    pub(super) t_0: u64,
    pub(super) t_mult: u64,
    pub(super) eta_min: f64,
}

impl CosineWarmRestarts {
    /// The optimizer's initial learning rate.
    pub fn base(&self) -> f64 {
        self.base
    }
    /// The length of the first cycle.
    pub fn t_0(&self) -> u64 {
        self.t_0
    }
    /// The growth factor of the cycle length.
    pub fn t_mult(&self) -> u64 {
        self.t_mult
    }
    /// The minimum learning rate.
    pub fn eta_min(&self) -> f64 {
        self.eta_min
    }
}

impl Family for CosineWarmRestarts {
    fn kind(&self) -> &'static str {
        "cosine_warm_restarts"
    }
    fn validate(&self) -> Result<()> {
        check_lr("lr", self.base)?;
        check_positive_steps("T_0", self.t_0)?;
        check_positive_steps("T_mult", self.t_mult)?;
        check_range("eta_min", self.eta_min, self.eta_min >= 0.0, "eta_min >= 0")
    }
    fn base_lr(&self) -> f64 {
        self.base
    }
    fn lr(&self, e: u64) -> f64 {
        let (t_cur, t_i) = warm_restart_position(self.t_0, self.t_mult, e);
        self.eta_min
            + (self.base - self.eta_min) * (1.0 + (PI * t_cur as f64 / t_i as f64).cos()) / 2.0
    }
}

/// Linear warmup from 0 to `peak_lr`, then cosine decay to `final_lr`; built
/// by [`Schedule::warmup_cosine`](super::Schedule::warmup_cosine).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct WarmupCosine {
    pub(super) peak_lr: f64,
    pub(super) warmup_steps: u64,
    pub(super) total_steps: u64,
    pub(super) final_lr: f64,
}

impl WarmupCosine {
    /// The rate at the end of the warmup.
    pub fn peak_lr(&self) -> f64 {
        self.peak_lr
    }
    /// The length of the warmup.
    pub fn warmup_steps(&self) -> u64 {
        self.warmup_steps
    }
    /// The step at which the rate reaches `final_lr`.
    pub fn total_steps(&self) -> u64 {
        self.total_steps
    }
    /// The rate from `total_steps` on.
    pub fn final_lr(&self) -> f64 {
        self.final_lr
    }
}

impl Family for WarmupCosine {
    fn kind(&self) -> &'static str {
        "warmup_cosine"
    }
    fn validate(&self) -> Result<()> {
        check_lr("peak_lr", self.peak_lr)?;
        check_lr("final_lr", self.final_lr)?;
        if self.final_lr > self.peak_lr {
            return Err(Error::invalid(
                "final_lr",
                self.final_lr,
                format!("final_lr <= peak_lr ({})", self.peak_lr),
                "final_lr must not exceed peak_lr",
            ));
        }
        if self.total_steps <= self.warmup_steps {
            return Err(Error::invalid(
                "total_steps",
                self.total_steps,
                format!("total_steps > warmup_steps ({})", self.warmup_steps),
                "total_steps must exceed warmup_steps",
            ));
        }
        Ok(())
    }
    fn base_lr(&self) -> f64 {
        self.peak_lr
    }
    fn lr(&self, e: u64) -> f64 {
        let (peak_lr, final_lr) = (self.peak_lr, self.final_lr);
        if e < self.warmup_steps {
            peak_lr * (e as f64 / self.warmup_steps as f64)
        } else if e >= self.total_steps {
            final_lr
        } else {
            let p = (e - self.warmup_steps) as f64 / (self.total_steps - self.warmup_steps) as f64;
            final_lr + (peak_lr - final_lr) * ((1.0 + (PI * p).cos()) / 2.0)
        }
    }
}

/// Linear warmup from 0 to `lr`, then constant; built by
/// [`Schedule::warmup_constant`](super::Schedule::warmup_constant).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct WarmupConstant {
    pub(super) lr: f64,
    pub(super) warmup_steps: u64,
}

impl WarmupConstant {
    /// The rate after the warmup.
    pub fn lr(&self) -> f64 {
        self.lr
    }
    /// The length of the warmup.
    pub fn warmup_steps(&self) -> u64 {
        self.warmup_steps
    }
}

impl Family for WarmupConstant {
    fn kind(&self) -> &'static str {
        "warmup_constant"
    }
    fn validate(&self) -> Result<()> {
        check_lr("lr", self.lr)
    }
    fn base_lr(&self) -> f64 {
        self.lr
    }
    fn lr(&self, e: u64) -> f64 {
        if e < self.warmup_steps {
            self.lr * (e as f64 / self.warmup_steps as f64)
        } else {
            self.lr
        }
    }
}

validated_serde!(
    CosineAnnealing,
    CosineWarmRestarts,
    WarmupCosine,
    WarmupConstant
);

/// `(T_cur, T_i)` of `CosineAnnealingWarmRestarts` after `e` integer steps.
fn warm_restart_position(t_0: u64, t_mult: u64, e: u64) -> (u64, u64) {
    if t_mult == 1 {
        return (e % t_0, t_0);
    }
    let (mut t_cur, mut t_i) = (e, t_0);
    while t_cur >= t_i {
        t_cur -= t_i;
        t_i = t_i.saturating_mul(t_mult);
    }
    (t_cur, t_i)
}

/// `CosineAnnealingLR` as produced by PyTorch's recursive `get_lr`.
///
/// Up to `t_max` the recursion telescopes to the closed form. At each step
/// `s = t_max + 1 + 2 k t_max` PyTorch adds
/// `(base - eta_min) * (1 - cos(pi / t_max)) / 2` to the previous value,
/// which is exactly `eta_min` (the `1 + cos` term is 0 at odd multiples of
/// `t_max`); between restarts it multiplies `lr - eta_min` by
/// `(1 + cos(pi e / T)) / (1 + cos(pi (e - 1) / T))`, which telescopes to the
/// ratio against step `s`.
fn cosine_annealing_lr(base: f64, t_max: u64, eta_min: f64, e: u64) -> f64 {
    let t = t_max as f64;
    let num = |k: u64| 1.0 + (PI * k as f64 / t).cos();
    if e <= t_max {
        return eta_min + (base - eta_min) * num(e) / 2.0;
    }
    let period = t_max.saturating_mul(2);
    let s = t_max + 1 + period * ((e - t_max - 1) / period);
    let lr_s = eta_min + (base - eta_min) * (1.0 - (PI / t).cos()) / 2.0;
    let num_s = num(s);
    if e == s {
        lr_s
    } else if num_s == 0.0 {
        // Only for t_max beyond 2^53, where `s` and `t_max` round to the same
        // f64 (PyTorch raises ZeroDivisionError there): use the closed form.
        eta_min + (base - eta_min) * num(e) / 2.0
    } else {
        eta_min + (lr_s - eta_min) * (num(e) / num_s)
    }
}

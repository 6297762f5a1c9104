//! The flat schedules: [`Constant`] (one rate), and PyTorch's `ConstantLR`
//! ([`ConstantLr`]) and `LinearLR` ([`Linear`]), which scale the optimizer's
//! initial rate by a factor until `total_iters`.

use serde::{Deserialize, Serialize};

use super::{Family, check_lr, check_positive_steps, check_range};
use crate::error::Result;

/// A constant learning rate; built by [`Schedule::constant`](super::Schedule::constant).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Constant {
    pub(super) lr: f64,
}

impl Constant {
    /// The learning rate.
    pub fn lr(&self) -> f64 {
        self.lr
    }
}

impl Family for Constant {
    fn kind(&self) -> &'static str {
        "constant"
    }
    fn validate(&self) -> Result<()> {
        check_lr("lr", self.lr)
    }
    fn base_lr(&self) -> f64 {
        self.lr
    }
    fn lr(&self, _step: u64) -> f64 {
        self.lr
    }
    fn chainable(&self) -> bool {
        true
    }
}

/// PyTorch `ConstantLR`: `base * factor` until `total_iters`, then `base`;
/// built by [`Schedule::constant_lr`](super::Schedule::constant_lr).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct ConstantLr {
    pub(super) base: f64,
    pub(super) factor: f64,
    pub(super) total_iters: u64,
}

impl ConstantLr {
    /// The optimizer's initial learning rate.
    pub fn base(&self) -> f64 {
        self.base
    }
    /// The factor applied before `total_iters`.
    pub fn factor(&self) -> f64 {
        self.factor
    }
    /// The step at which the factor is lifted.
    pub fn total_iters(&self) -> u64 {
        self.total_iters
    }
}

impl Family for ConstantLr {
    fn kind(&self) -> &'static str {
        "constant_lr"
    }
    fn validate(&self) -> Result<()> {
        check_lr("lr", self.base)?;
        check_range(
            "factor",
            self.factor,
            (0.0..=1.0).contains(&self.factor),
            "0 <= factor <= 1",
        )?;
        check_positive_steps("total_iters", self.total_iters)
    }
    fn base_lr(&self) -> f64 {
        self.base
    }
    fn lr(&self, e: u64) -> f64 {
        // Recursive form: base*factor at step 0, then (at total_iters)
        // lr * (1 / factor).
        if e < self.total_iters {
            self.base * self.factor
        } else if self.factor == 0.0 {
            self.base
        } else {
            self.base * self.factor * (1.0 / self.factor)
        }
    }
    fn chainable(&self) -> bool {
        true
    }
}

/// PyTorch `LinearLR`; built by [`Schedule::linear`](super::Schedule::linear).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Linear {
    pub(super) base: f64,
    pub(super) start_factor: f64,
    pub(super) end_factor: f64,
    pub(super) total_iters: u64,
}

impl Linear {
    /// The optimizer's initial learning rate.
    pub fn base(&self) -> f64 {
        self.base
    }
    /// The factor at step 0.
    pub fn start_factor(&self) -> f64 {
        self.start_factor
    }
    /// The factor from `total_iters` on.
    pub fn end_factor(&self) -> f64 {
        self.end_factor
    }
    /// The number of steps of the ramp.
    pub fn total_iters(&self) -> u64 {
        self.total_iters
    }
}

impl Family for Linear {
    fn kind(&self) -> &'static str {
        "linear"
    }
    fn validate(&self) -> Result<()> {
        check_lr("lr", self.base)?;
        check_range(
            "start_factor",
            self.start_factor,
            self.start_factor > 0.0 && self.start_factor <= 1.0,
            "0 < start_factor <= 1",
        )?;
        check_range(
            "end_factor",
            self.end_factor,
            (0.0..=1.0).contains(&self.end_factor),
            "0 <= end_factor <= 1",
        )?;
        check_positive_steps("total_iters", self.total_iters)
    }
    fn base_lr(&self) -> f64 {
        self.base
    }
    fn lr(&self, e: u64) -> f64 {
        let t = self.total_iters as f64;
        self.base
            * (self.start_factor
                + (self.end_factor - self.start_factor) * (e.min(self.total_iters) as f64) / t)
    }
    fn chainable(&self) -> bool {
        true
    }
}

validated_serde!(Constant, ConstantLr, Linear);

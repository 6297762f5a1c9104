//! The decaying schedules of PyTorch: `StepLR` ([`Step`]), `MultiStepLR`
//! ([`MultiStep`]), `ExponentialLR` ([`Exponential`]) and `PolynomialLR`
//! ([`Polynomial`]), all multiples of the optimizer's initial rate.

use serde::{Deserialize, Serialize};

use super::{Family, check_increasing, check_lr, check_positive_steps, check_range};
use crate::error::Result;

/// PyTorch `StepLR`; built by [`Schedule::step`](super::Schedule::step).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Step {
    pub(super) base: f64,
    pub(super) step_size: u64,
    pub(super) gamma: f64,
}

impl Step {
    /// The optimizer's initial learning rate.
    pub fn base(&self) -> f64 {
        self.base
    }
    /// The period of the decay.
    pub fn step_size(&self) -> u64 {
        self.step_size
    }
    /// The decay factor.
    pub fn gamma(&self) -> f64 {
        self.gamma
    }
}

impl Family for Step {
    fn kind(&self) -> &'static str {
        "step"
    }
    fn validate(&self) -> Result<()> {
        check_lr("lr", self.base)?;
        check_positive_steps("step_size", self.step_size)?;
        check_range("gamma", self.gamma, self.gamma > 0.0, "gamma > 0")
    }
    fn base_lr(&self) -> f64 {
        self.base
    }
    fn lr(&self, e: u64) -> f64 {
        self.base * self.gamma.powf((e / self.step_size) as f64)
    }
    fn chainable(&self) -> bool {
        true
    }
}

/// PyTorch `MultiStepLR`; built by
/// [`Schedule::multi_step`](super::Schedule::multi_step).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct MultiStep {
    pub(super) base: f64,
    pub(super) milestones: Vec<u64>,
    pub(super) gamma: f64,
}

impl MultiStep {
    /// The optimizer's initial learning rate.
    pub fn base(&self) -> f64 {
        self.base
    }
    /// The steps at which the rate is multiplied by `gamma`.
    pub fn milestones(&self) -> &[u64] {
        &self.milestones
    }
    /// The decay factor.
    pub fn gamma(&self) -> f64 {
        self.gamma
    }
}

impl Family for MultiStep {
    fn kind(&self) -> &'static str {
        "multi_step"
    }
    fn validate(&self) -> Result<()> {
        check_lr("lr", self.base)?;
        check_increasing("milestones", &self.milestones, 0)?;
        check_range("gamma", self.gamma, self.gamma > 0.0, "gamma > 0")
    }
    fn base_lr(&self) -> f64 {
        self.base
    }
    fn lr(&self, e: u64) -> f64 {
        let n = self.milestones.partition_point(|&m| m <= e);
        self.base * self.gamma.powf(n as f64)
    }
    fn chainable(&self) -> bool {
        true
    }
}

/// PyTorch `ExponentialLR`; built by
/// [`Schedule::exponential`](super::Schedule::exponential).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Exponential {
    pub(super) base: f64,
    pub(super) gamma: f64,
}

impl Exponential {
    /// The optimizer's initial learning rate.
    pub fn base(&self) -> f64 {
        self.base
    }
    /// The per-step factor.
    pub fn gamma(&self) -> f64 {
        self.gamma
    }
}

impl Family for Exponential {
    fn kind(&self) -> &'static str {
        "exponential"
    }
    fn validate(&self) -> Result<()> {
        check_lr("lr", self.base)?;
        check_range("gamma", self.gamma, self.gamma > 0.0, "gamma > 0")
    }
    fn base_lr(&self) -> f64 {
        self.base
    }
    fn lr(&self, e: u64) -> f64 {
        self.base * self.gamma.powf(e as f64)
    }
    fn chainable(&self) -> bool {
        true
    }
}

/// PyTorch `PolynomialLR`; built by
/// [`Schedule::polynomial`](super::Schedule::polynomial).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Polynomial {
    pub(super) base: f64,
    pub(super) total_iters: u64,
    pub(super) power: f64,
}

impl Polynomial {
    /// The optimizer's initial learning rate.
    pub fn base(&self) -> f64 {
        self.base
    }
    /// The step at which the rate reaches 0.
    pub fn total_iters(&self) -> u64 {
        self.total_iters
    }
    /// The power of the polynomial.
    pub fn power(&self) -> f64 {
        self.power
    }
}

impl Family for Polynomial {
    fn kind(&self) -> &'static str {
        "polynomial"
    }
    fn validate(&self) -> Result<()> {
        check_lr("lr", self.base)?;
        check_positive_steps("total_iters", self.total_iters)?;
        check_range("power", self.power, self.power >= 0.0, "power >= 0")
    }
    fn base_lr(&self) -> f64 {
        self.base
    }
    fn lr(&self, e: u64) -> f64 {
        let t = self.total_iters as f64;
        self.base * (1.0 - (e.min(self.total_iters) as f64) / t).powf(self.power)
    }
    fn chainable(&self) -> bool {
        true
    }
}

validated_serde!(Step, MultiStep, Exponential, Polynomial);

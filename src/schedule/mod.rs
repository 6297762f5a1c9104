//! Learning-rate schedules, evaluated on the host in `f64`, and the driver
//! that applies them to an optimizer.
//!
//! A [`Schedule`] is a pure function of the step: [`Schedule::lr`] gives the
//! learning rate after `step` calls of PyTorch's `scheduler.step()` (step 0 is
//! the value right after the scheduler is built), so resuming at step `k`
//! needs no replay. Cycling schedules also give a momentum (SGD `momentum`
//! or Adam `beta1`) through [`Schedule::momentum`].
//!
//! The values follow `torch.optim.lr_scheduler` — not only its closed forms
//! but the values its recursive (`get_lr`) form produces when `step()` is
//! called repeatedly. Where the two differ structurally (for example
//! `CosineAnnealingLR` past `T_max`, or `ConstantLR` at `total_iters`) this
//! module reproduces the recursive form in closed form. What remains is
//! rounding: the recursive form multiplies a factor per step, so it drifts
//! from the closed form by a few ulps per step; the golden tests
//! (`tests/golden/schedules.json`) hold every schedule within `1e-12`
//! relative of PyTorch's step-by-step values.
//!
//! [`Schedule::lr`] is an *absolute* learning rate. An engine that applies one
//! schedule to several parameter groups with different learning rates can use
//! [`Schedule::factor`] (`lr(step) / base_lr()`) as a multiplier instead.
//! [`LrScheduler`] does that for an [`Optimizer`](crate::Optimizer) (or every
//! replica of a [`DataParallel`](crate::pool::DataParallel)).
//!
//! [`ReduceLrOnPlateau`] is the metric-driven scheduler; it is a state
//! machine, not a function of the step.
//!
//! # Layout
//! Each schedule family lives in its own file with its own struct
//! ([`Step`], [`OneCycle`], ...); [`Schedule`] is a closed enum with one
//! variant per struct, so it stays serde-serializable (the serialized form
//! is unchanged from the single-enum layout this crate had before:
//! `{"step": {"base": 0.1, "step_size": 3, "gamma": 0.5}}`).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Implements `Serialize` and a validating `Deserialize` for family structs
/// declared with `#[serde(remote = "Self")]`.
macro_rules! validated_serde {
    ($($t:ident),* $(,)?) => {$(
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                $t::serialize(self, s)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                let v = $t::deserialize(d)?;
                super::Family::validate(&v).map_err(serde::de::Error::custom)?;
                Ok(v)
            }
        }
    )*};
}

mod compose;
mod constant;
mod cosine;
mod cyclic;
mod driver;
mod lambda;
pub(crate) mod nonfinite;
mod one_cycle;
mod plateau;
mod step;

pub use compose::{Chained, Sequential};
pub use constant::{Constant, ConstantLr, Linear};
pub use cosine::{CosineAnnealing, CosineWarmRestarts, WarmupConstant, WarmupCosine};
pub use cyclic::{Cyclic, CyclicConfig, CyclicMode};
pub use driver::LrScheduler;
pub use lambda::{FromFn, LrFn};
pub use one_cycle::{Anneal, OneCycle, OneCycleConfig};
pub use plateau::{Mode, PlateauConfig, ReduceLrOnPlateau, ThresholdMode};
pub use step::{Exponential, MultiStep, Polynomial, Step};

// ------------------------------------------------------------------ helpers

/// The largest learning rate the device can hold: the kernels read the lr
/// as an `f32`.
pub(crate) const LR_MAX: f64 = f32::MAX as f64;

/// Whether `v` is a learning rate the device can use: `>= 0` and finite in
/// `f32` (NaN is not).
fn is_lr(v: f64) -> bool {
    (0.0..=LR_MAX).contains(&v)
}

/// `lr`-like values: `>= 0` and finite in `f32`, the precision of the
/// device (PyTorch: "Invalid learning rate").
fn check_lr(field: &str, v: f64) -> Result<()> {
    if is_lr(v) {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            v,
            "a number >= 0 and finite in f32 (<= 3.4028235e38)",
            format!("Invalid learning rate: {v}"),
        ))
    }
}

fn check_range(field: &str, v: f64, ok: bool, allowed: &str) -> Result<()> {
    if v.is_finite() && ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            v,
            allowed,
            format!("Invalid {field}: {v} (expected {allowed})"),
        ))
    }
}

fn check_positive_steps(field: &str, v: u64) -> Result<()> {
    if v > 0 {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            v,
            "an integer >= 1",
            format!("Expected positive integer {field}, but got {v}"),
        ))
    }
}

fn check_increasing(field: &str, ms: &[u64], min_first: u64) -> Result<()> {
    if let Some(&first) = ms.first()
        && first < min_first
    {
        return Err(Error::invalid(
            field,
            format!("{ms:?}"),
            format!("strictly increasing step numbers >= {min_first}"),
            format!("{field} must start at {min_first} or later, but got {first}"),
        ));
    }
    if let Some(w) = ms.windows(2).find(|w| w[0] >= w[1]) {
        return Err(Error::invalid(
            field,
            format!("{ms:?}"),
            "strictly increasing step numbers",
            format!(
                "{field} must be strictly increasing, but {} is followed by {}",
                w[0], w[1]
            ),
        ));
    }
    Ok(())
}

fn check_momentum(m: Option<(f64, f64)>) -> Result<()> {
    if let Some((base, max)) = m {
        check_range(
            "base_momentum",
            base,
            (0.0..1.0).contains(&base),
            "0 <= base_momentum < 1",
        )?;
        check_range(
            "max_momentum",
            max,
            (0.0..1.0).contains(&max),
            "0 <= max_momentum < 1",
        )?;
        if base > max {
            return Err(Error::invalid(
                "base_momentum",
                base,
                format!("base_momentum <= max_momentum ({max})"),
                "base_momentum must not exceed max_momentum",
            ));
        }
    }
    Ok(())
}

/// What every schedule family implements; [`Schedule`] dispatches to it.
trait Family {
    /// The constructor's name (`"step"`, `"one_cycle"`, ...).
    fn kind(&self) -> &'static str;
    /// Checks every parameter; the [`Error::InvalidConfig`] names the first
    /// bad field.
    fn validate(&self) -> Result<()>;
    /// The reference rate of [`Schedule::factor`].
    fn base_lr(&self) -> f64;
    /// The learning rate after `step` scheduler steps.
    fn lr(&self, step: u64) -> f64;
    /// `lr(step) / base_lr()`, 0 when `base_lr()` is 0.
    fn factor(&self, step: u64) -> f64 {
        let base = self.base_lr();
        if base == 0.0 {
            0.0
        } else {
            self.lr(step) / base
        }
    }
    /// The cycled momentum, `None` for schedules that leave it alone.
    fn momentum(&self, _step: u64) -> Option<f64> {
        None
    }
    /// Whether the family may be a member of [`Schedule::chained`].
    fn chainable(&self) -> bool {
        false
    }
}

// ----------------------------------------------------------------- Schedule

/// A learning-rate schedule: a pure function from the step to the learning
/// rate (see the [module docs](self)).
///
/// Build one with the constructor functions ([`Schedule::cosine_annealing`],
/// ...), which validate their arguments. Each variant holds its family's
/// struct, whose getters give the parameters; those structs can only be made
/// by the constructors and by serde, so every `Schedule` is valid. A
/// `Schedule` serializes with serde (deserializing validates again), except
/// [`Schedule::FromFn`], whose serialization fails with an error.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Schedule {
    /// A constant learning rate.
    Constant(Constant),
    /// PyTorch `ConstantLR`.
    ConstantLr(ConstantLr),
    /// PyTorch `LinearLR`.
    Linear(Linear),
    /// PyTorch `StepLR`.
    Step(Step),
    /// PyTorch `MultiStepLR`.
    MultiStep(MultiStep),
    /// PyTorch `ExponentialLR`.
    Exponential(Exponential),
    /// PyTorch `PolynomialLR`.
    Polynomial(Polynomial),
    /// PyTorch `CosineAnnealingLR`.
    CosineAnnealing(CosineAnnealing),
    /// PyTorch `CosineAnnealingWarmRestarts`, stepped with integer steps.
    CosineWarmRestarts(CosineWarmRestarts),
    /// PyTorch `CyclicLR`.
    Cyclic(Cyclic),
    /// PyTorch `OneCycleLR`.
    OneCycle(OneCycle),
    /// PyTorch `SequentialLR`.
    Sequential(Sequential),
    /// PyTorch `ChainedScheduler` over multiplicative schedules.
    Chained(Chained),
    /// Linear warmup from 0 to `peak_lr`, then cosine decay to `final_lr`.
    WarmupCosine(WarmupCosine),
    /// Linear warmup from 0 to `lr`, then constant.
    WarmupConstant(WarmupConstant),
    /// A user function of the step (not serializable).
    #[serde(skip)]
    FromFn(FromFn),
}

/// Validates `f` and wraps it in its variant.
fn checked<F: Family>(f: F, variant: fn(F) -> Schedule) -> Result<Schedule> {
    f.validate()?;
    Ok(variant(f))
}

impl Schedule {
    /// A constant learning rate `lr`.
    pub fn constant(lr: f64) -> Result<Schedule> {
        checked(Constant { lr }, Schedule::Constant)
    }

    /// PyTorch `ConstantLR(factor, total_iters)` over the initial rate
    /// `base`: `base * factor` for steps `< total_iters`, then `base`.
    ///
    /// `0 <= factor <= 1` (as PyTorch) and `total_iters >= 1`. PyTorch's
    /// recursive form divides by `factor` at `total_iters`; that value is
    /// reproduced, and for `factor == 0` (where PyTorch raises
    /// `ZeroDivisionError`) the closed form `base` is returned.
    pub fn constant_lr(base: f64, factor: f64, total_iters: u64) -> Result<Schedule> {
        let f = ConstantLr {
            base,
            factor,
            total_iters,
        };
        checked(f, Schedule::ConstantLr)
    }

    /// PyTorch `LinearLR`: the factor goes linearly from `start_factor` at
    /// step 0 to `end_factor` at `total_iters`, then stays.
    ///
    /// `0 < start_factor <= 1`, `0 <= end_factor <= 1` (as PyTorch),
    /// `total_iters >= 1`.
    pub fn linear(
        base: f64,
        start_factor: f64,
        end_factor: f64,
        total_iters: u64,
    ) -> Result<Schedule> {
        let f = Linear {
            base,
            start_factor,
            end_factor,
            total_iters,
        };
        checked(f, Schedule::Linear)
    }

    /// PyTorch `StepLR`: `base * gamma^(step / step_size)`.
    ///
    /// `step_size >= 1`, `gamma > 0`.
    pub fn step(base: f64, step_size: u64, gamma: f64) -> Result<Schedule> {
        let f = Step {
            base,
            step_size,
            gamma,
        };
        checked(f, Schedule::Step)
    }

    /// PyTorch `MultiStepLR`: `base * gamma^(number of milestones <= step)`.
    ///
    /// `milestones` must be strictly increasing (PyTorch counts repeated
    /// milestones twice; here they are an error); `gamma > 0`.
    pub fn multi_step(base: f64, milestones: Vec<u64>, gamma: f64) -> Result<Schedule> {
        let f = MultiStep {
            base,
            milestones,
            gamma,
        };
        checked(f, Schedule::MultiStep)
    }

    /// PyTorch `ExponentialLR`: `base * gamma^step`; `gamma > 0`.
    pub fn exponential(base: f64, gamma: f64) -> Result<Schedule> {
        checked(Exponential { base, gamma }, Schedule::Exponential)
    }

    /// PyTorch `PolynomialLR`:
    /// `base * (1 - min(step, total_iters) / total_iters)^power`.
    ///
    /// `total_iters >= 1`, `power >= 0`.
    pub fn polynomial(base: f64, total_iters: u64, power: f64) -> Result<Schedule> {
        let f = Polynomial {
            base,
            total_iters,
            power,
        };
        checked(f, Schedule::Polynomial)
    }

    /// PyTorch `CosineAnnealingLR`.
    ///
    /// Up to `t_max` this is
    /// `eta_min + (base - eta_min) * (1 + cos(pi * step / t_max)) / 2`. Past
    /// `t_max` PyTorch's recursive form is followed: it does not stay at
    /// `eta_min` but climbs back, restarting each rise at step
    /// `t_max + 1 + 2 k t_max` from
    /// `eta_min + (base - eta_min) * (1 - cos(pi / t_max)) / 2` and scaling
    /// `lr - eta_min` by the ratio of consecutive `1 + cos` terms (a cosine of
    /// period `2 t_max`, up to rounding). `t_max >= 1`, `eta_min >= 0`.
    pub fn cosine_annealing(base: f64, t_max: u64, eta_min: f64) -> Result<Schedule> {
        let f = CosineAnnealing {
            base,
            t_max,
            eta_min,
        };
        checked(f, Schedule::CosineAnnealing)
    }

    /// PyTorch `CosineAnnealingWarmRestarts` stepped with `step()` (integer
    /// steps): cosine from `base` to `eta_min` over `t_0` steps, restarting at
    /// `base`, each cycle `t_mult` times longer than the one before.
    ///
    /// `t_0 >= 1`, `t_mult >= 1`, `eta_min >= 0`.
    pub fn cosine_warm_restarts(
        base: f64,
        t_0: u64,
        t_mult: u64,
        eta_min: f64,
    ) -> Result<Schedule> {
        let f = CosineWarmRestarts {
            base,
            t_0,
            t_mult,
            eta_min,
        };
        checked(f, Schedule::CosineWarmRestarts)
    }

    /// PyTorch `CyclicLR` (see [`CyclicConfig`] for the arguments and
    /// PyTorch's defaults). Step 0 is `base_lr` (PyTorch overwrites the
    /// optimizer's lr with `base_lr` at construction); with
    /// `cycle_momentum = Some((base_momentum, max_momentum))`,
    /// [`Schedule::momentum`] cycles inversely between them.
    ///
    /// `0 <= base_lr <= max_lr`, `step_size_up >= 1`, `step_size_down >= 1`
    /// when given, `0 < gamma <= 1` for [`CyclicMode::ExpRange`],
    /// `0 <= base_momentum <= max_momentum < 1`. PyTorch's custom `scale_fn`
    /// is not offered (use [`Schedule::from_fn`]).
    pub fn cyclic(config: CyclicConfig) -> Result<Schedule> {
        checked(Cyclic(config), Schedule::Cyclic)
    }

    /// PyTorch `OneCycleLR` with `total_steps` given directly (see
    /// [`OneCycleConfig`] for the arguments and PyTorch's defaults).
    ///
    /// PyTorch accepts `step()` calls up to `total_steps` (that is, steps
    /// `0..=total_steps`, the last one extrapolating the final phase) and
    /// raises `ValueError` after. Here steps past `total_steps` return the
    /// value at `total_steps`, for the rate and the momentum alike. At
    /// `total_steps` the extrapolation is PyTorch's, held at the end value of
    /// the final phase: a cosine turns back up and is kept as PyTorch has it,
    /// a line would overshoot its end (below the final rate, to a negative lr
    /// in PyTorch) and stops at it.
    ///
    /// `max_lr >= 0`, `total_steps >= 1`, `0 < pct_start < 1`,
    /// `div_factor > 0`, `final_div_factor > 0` with both end rates finite in
    /// `f32`, `0 <= base_momentum <= max_momentum < 1`;
    /// `pct_start * total_steps` must not make a phase of zero length
    /// (PyTorch divides by zero there).
    pub fn one_cycle(config: OneCycleConfig) -> Result<Schedule> {
        checked(OneCycle(config), Schedule::OneCycle)
    }

    /// PyTorch `SequentialLR`: `schedules[i]` runs from `milestones[i - 1]`
    /// (or 0) on, evaluated at its own step `step - milestones[i - 1]`.
    ///
    /// Each sub-schedule carries its own base rate; to mirror PyTorch (where
    /// all share the optimizer's initial lr) give them the same one.
    /// `schedules` must not be empty, `milestones` must have one entry fewer,
    /// be strictly increasing and start at 1 or later.
    pub fn sequential(schedules: Vec<Schedule>, milestones: Vec<u64>) -> Result<Schedule> {
        let f = Sequential {
            schedules,
            milestones,
        };
        checked(f, Schedule::Sequential)
    }

    /// PyTorch `ChainedScheduler` over multiplicative schedules:
    /// `lr = base * prod_i factor_i(step)`.
    ///
    /// Supported members (PyTorch's "chainable" forms that only multiply the
    /// current lr): [`constant`](Schedule::constant),
    /// [`constant_lr`](Schedule::constant_lr), [`linear`](Schedule::linear),
    /// [`step`](Schedule::step), [`multi_step`](Schedule::multi_step),
    /// [`exponential`](Schedule::exponential),
    /// [`polynomial`](Schedule::polynomial),
    /// [`cosine_annealing`](Schedule::cosine_annealing) with `eta_min == 0`,
    /// and nested `chained`. All members must have the same base rate.
    ///
    /// Not matched: a chained `CosineAnnealingLR` *past its `t_max`* — there
    /// PyTorch's restart step adds `base * (1 - cos(pi / t_max)) / 2` to the
    /// chained lr, which is not a factor; this function keeps multiplying the
    /// member's own factor instead. Within `t_max` the values agree.
    pub fn chained(schedules: Vec<Schedule>) -> Result<Schedule> {
        checked(Chained { schedules }, Schedule::Chained)
    }

    /// Linear warmup from 0 at step 0 to `peak_lr` at `warmup_steps`, then a
    /// half-cosine to `final_lr` at `total_steps`, then `final_lr`.
    ///
    /// This is Hugging Face's `get_cosine_schedule_with_warmup` (which starts
    /// at 0, not at a start factor) with a floor `final_lr`. For a warmup from
    /// a start factor use
    /// `sequential([linear(..), cosine_annealing(..)], [warmup_steps])`.
    /// `0 <= final_lr <= peak_lr`, `total_steps > warmup_steps`
    /// (`warmup_steps = 0` is plain cosine decay).
    pub fn warmup_cosine(
        peak_lr: f64,
        warmup_steps: u64,
        total_steps: u64,
        final_lr: f64,
    ) -> Result<Schedule> {
        let f = WarmupCosine {
            peak_lr,
            warmup_steps,
            total_steps,
            final_lr,
        };
        checked(f, Schedule::WarmupCosine)
    }

    /// Linear warmup from 0 at step 0 to `lr` at `warmup_steps`, then `lr`
    /// (Hugging Face's `get_constant_schedule_with_warmup`).
    pub fn warmup_constant(lr: f64, warmup_steps: u64) -> Result<Schedule> {
        checked(
            WarmupConstant { lr, warmup_steps },
            Schedule::WarmupConstant,
        )
    }

    /// A schedule given by a function of the step (PyTorch `LambdaLR` with the
    /// base folded in: `f` returns the absolute learning rate).
    ///
    /// Nothing is validated here; [`Schedule::base_lr`] is `f(0)`, and
    /// [`Schedule::try_lr`] (which [`LrScheduler`] uses) refuses the values
    /// that are not learning rates. Such a schedule cannot be serialized:
    /// serializing it (or a sequence containing it) returns a serde error.
    pub fn from_fn(f: Arc<dyn Fn(u64) -> f64 + Send + Sync>) -> Schedule {
        Schedule::FromFn(FromFn { f: LrFn(f) })
    }

    /// The family's implementation: the one `match` every method goes
    /// through.
    fn family(&self) -> &dyn Family {
        match self {
            Schedule::Constant(f) => f,
            Schedule::ConstantLr(f) => f,
            Schedule::Linear(f) => f,
            Schedule::Step(f) => f,
            Schedule::MultiStep(f) => f,
            Schedule::Exponential(f) => f,
            Schedule::Polynomial(f) => f,
            Schedule::CosineAnnealing(f) => f,
            Schedule::CosineWarmRestarts(f) => f,
            Schedule::Cyclic(f) => f,
            Schedule::OneCycle(f) => f,
            Schedule::Sequential(f) => f,
            Schedule::Chained(f) => f,
            Schedule::WarmupCosine(f) => f,
            Schedule::WarmupConstant(f) => f,
            Schedule::FromFn(f) => f,
        }
    }

    /// The constructor's name: `"constant"`, `"step"`, `"one_cycle"`,
    /// `"from_fn"`, ... (also the serde tag).
    pub fn kind(&self) -> &'static str {
        self.family().kind()
    }

    /// Checks every parameter, as the constructors do; returns the
    /// [`Error::InvalidConfig`] naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        self.family().validate()
    }

    /// The reference rate that [`Schedule::factor`] divides by: the
    /// optimizer's initial lr (`base`) for PyTorch-style schedules, `lr` for
    /// [`constant`](Schedule::constant) and
    /// [`warmup_constant`](Schedule::warmup_constant), `base_lr` for
    /// [`cyclic`](Schedule::cyclic), `max_lr` for
    /// [`one_cycle`](Schedule::one_cycle), `peak_lr` for
    /// [`warmup_cosine`](Schedule::warmup_cosine), the first member's for
    /// `sequential` and `chained`, and `f(0)` for
    /// [`from_fn`](Schedule::from_fn).
    pub fn base_lr(&self) -> f64 {
        self.family().base_lr()
    }

    /// `lr(step) / base_lr()`: the schedule as a multiplier, for applying one
    /// schedule to parameter groups with different learning rates. Returns
    /// 0 when `base_lr()` is 0.
    pub fn factor(&self, step: u64) -> f64 {
        self.family().factor(step)
    }

    /// The learning rate after `step` calls of `scheduler.step()` (step 0 is
    /// the rate right after construction).
    pub fn lr(&self, step: u64) -> f64 {
        self.family().lr(step)
    }

    /// The momentum (SGD `momentum` / Adam `beta1`) at `step` for
    /// [`cyclic`](Schedule::cyclic) and [`one_cycle`](Schedule::one_cycle)
    /// built with `cycle_momentum`, and for a `sequential` schedule whose
    /// active member is one; `None` otherwise (leave the momentum alone).
    pub fn momentum(&self, step: u64) -> Option<f64> {
        self.family().momentum(step)
    }

    /// [`lr`](Self::lr), checked: a value that is not a learning rate the
    /// device can use (NaN, negative, or not finite in `f32`, i.e. above
    /// `f32::MAX`) is an [`Error::InvalidConfig`] naming the schedule and the
    /// step. The constructors keep most schedules in range; what remains are
    /// [`from_fn`](Schedule::from_fn) closures and growing schedules
    /// (`exponential` with `gamma > 1`) after many steps.
    pub fn try_lr(&self, step: u64) -> Result<f64> {
        let v = self.lr(step);
        check_scheduled_lr(self.kind(), step, v, "")?;
        Ok(v)
    }

    /// [`momentum`](Self::momentum), checked: a value outside `[0, 1)` is an
    /// [`Error::InvalidConfig`] naming the schedule and the step.
    pub fn try_momentum(&self, step: u64) -> Result<Option<f64>> {
        match self.momentum(step) {
            Some(m) if !(0.0..1.0).contains(&m) => Err(Error::invalid(
                "momentum",
                m,
                "0 <= momentum < 1",
                format!(
                    "the {} schedule produced the invalid momentum {m} at step {step}",
                    self.kind()
                ),
            )),
            m => Ok(m),
        }
    }
}

/// Refuses a scheduled learning rate `v` that the device cannot use, naming
/// the schedule `kind`, the `step` and, in `whose`, what gets it.
fn check_scheduled_lr(kind: &str, step: u64, v: f64, whose: &str) -> Result<()> {
    if is_lr(v) {
        Ok(())
    } else {
        Err(Error::invalid(
            "lr",
            v,
            "a number >= 0 and finite in f32 (<= 3.4028235e38)",
            format!(
                "the {kind} schedule produced the invalid learning rate {v}{whose} at step {step}"
            ),
        ))
    }
}

//! Learning-rate schedules, evaluated on the host in `f64`.
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
//!
//! [`ReduceLrOnPlateau`] is the metric-driven scheduler; it is a state
//! machine, not a function of the step.

use std::f64::consts::PI;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

// ------------------------------------------------------------------ helpers

/// Serde helpers for `f64` values that may be infinite or NaN (JSON has no
/// literal for them): finite values are written as numbers, the others as
/// the strings `"inf"`, `"-inf"` and `"nan"`.
pub(crate) mod nonfinite {
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Num(f64),
        Str(String),
    }

    fn parse<E: serde::de::Error>(r: Repr) -> Result<f64, E> {
        match r {
            Repr::Num(v) => Ok(v),
            Repr::Str(s) => match s.as_str() {
                "inf" => Ok(f64::INFINITY),
                "-inf" => Ok(f64::NEG_INFINITY),
                "nan" => Ok(f64::NAN),
                other => Err(E::custom(format!(
                    "expected a number, \"inf\", \"-inf\" or \"nan\", got \"{other}\""
                ))),
            },
        }
    }

    /// Serializes an `f64`, writing non-finite values as strings.
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else if v.is_nan() {
            s.serialize_str("nan")
        } else if *v > 0.0 {
            s.serialize_str("inf")
        } else {
            s.serialize_str("-inf")
        }
    }

    /// Deserializes what [`serialize`] wrote.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        parse(Repr::deserialize(d)?)
    }

    /// The same for `Option<f64>`.
    pub mod option {
        use super::*;

        /// Serializes an `Option<f64>`, writing non-finite values as strings.
        pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                None => s.serialize_none(),
                Some(x) => {
                    struct W(f64);
                    impl serde::Serialize for W {
                        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                            super::serialize(&self.0, s)
                        }
                    }
                    s.serialize_some(&W(*x))
                }
            }
        }

        /// Deserializes what [`serialize`] wrote.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
            match Option::<Repr>::deserialize(d)? {
                None => Ok(None),
                Some(r) => parse(r).map(Some),
            }
        }
    }
}

/// `lr`-like values: finite and `>= 0` (PyTorch: "Invalid learning rate").
fn check_lr(field: &str, v: f64) -> Result<()> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            v,
            "a finite number >= 0",
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

// -------------------------------------------------------------- public types

/// The amplitude policy of [`Schedule::cyclic`] (PyTorch `CyclicLR`'s `mode`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CyclicMode {
    /// Constant amplitude (`"triangular"`).
    Triangular,
    /// The amplitude halves every cycle (`"triangular2"`).
    Triangular2,
    /// The amplitude is scaled by `gamma^step` (`"exp_range"`).
    ExpRange {
        /// The per-step scale, `0 < gamma <= 1`.
        gamma: f64,
    },
}

/// The annealing curve of [`Schedule::one_cycle`] (PyTorch `OneCycleLR`'s
/// `anneal_strategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anneal {
    /// Half-cosine between the two ends (`"cos"`).
    Cos,
    /// Straight line between the two ends (`"linear"`).
    Linear,
}

/// A user-supplied learning-rate function of the step, for
/// [`Schedule::from_fn`].
#[derive(Clone)]
pub struct LrFn(pub Arc<dyn Fn(u64) -> f64 + Send + Sync>);

impl fmt::Debug for LrFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LrFn(<closure>)")
    }
}

/// A learning-rate schedule: a pure function from the step to the learning
/// rate (see the [module docs](self)).
///
/// Build one with the constructor functions ([`Schedule::cosine_annealing`],
/// ...), which validate their arguments. Variants can be matched to inspect
/// their parameters but not built directly. A `Schedule` serializes with serde
/// (deserializing validates again), except [`Schedule::FromFn`], whose
/// serialization fails with an error.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Schedule {
    /// A constant learning rate.
    #[non_exhaustive]
    Constant {
        /// The learning rate.
        lr: f64,
    },
    /// PyTorch `ConstantLR`: `base * factor` until `total_iters`, then `base`.
    #[non_exhaustive]
    ConstantLr {
        /// The optimizer's initial learning rate.
        base: f64,
        /// The factor applied before `total_iters`.
        factor: f64,
        /// The step at which the factor is lifted.
        total_iters: u64,
    },
    /// PyTorch `LinearLR`.
    #[non_exhaustive]
    Linear {
        /// The optimizer's initial learning rate.
        base: f64,
        /// The factor at step 0.
        start_factor: f64,
        /// The factor from `total_iters` on.
        end_factor: f64,
        /// The number of steps of the ramp.
        total_iters: u64,
    },
    /// PyTorch `StepLR`.
    #[non_exhaustive]
    Step {
        /// The optimizer's initial learning rate.
        base: f64,
        /// The period of the decay.
        step_size: u64,
        /// The decay factor.
        gamma: f64,
    },
    /// PyTorch `MultiStepLR`.
    #[non_exhaustive]
    MultiStep {
        /// The optimizer's initial learning rate.
        base: f64,
        /// The steps at which the rate is multiplied by `gamma`.
        milestones: Vec<u64>,
        /// The decay factor.
        gamma: f64,
    },
    /// PyTorch `ExponentialLR`.
    #[non_exhaustive]
    Exponential {
        /// The optimizer's initial learning rate.
        base: f64,
        /// The per-step factor.
        gamma: f64,
    },
    /// PyTorch `PolynomialLR`.
    #[non_exhaustive]
    Polynomial {
        /// The optimizer's initial learning rate.
        base: f64,
        /// The step at which the rate reaches 0.
        total_iters: u64,
        /// The power of the polynomial.
        power: f64,
    },
    /// PyTorch `CosineAnnealingLR`.
    #[non_exhaustive]
    CosineAnnealing {
        /// The optimizer's initial learning rate.
        base: f64,
        /// The half period.
        t_max: u64,
        /// The minimum learning rate.
        eta_min: f64,
    },
    /// PyTorch `CosineAnnealingWarmRestarts`, stepped with integer steps.
    #[non_exhaustive]
    CosineWarmRestarts {
        /// The optimizer's initial learning rate.
        base: f64,
        /// The length of the first cycle.
        t_0: u64,
        /// The growth factor of the cycle length.
        t_mult: u64,
        /// The minimum learning rate.
        eta_min: f64,
    },
    /// PyTorch `CyclicLR`.
    #[non_exhaustive]
    Cyclic {
        /// The lower bound (PyTorch writes it into the optimizer at
        /// construction).
        base_lr: f64,
        /// The upper bound of the cycle.
        max_lr: f64,
        /// Steps in the rising half.
        step_size_up: u64,
        /// Steps in the falling half (`None`: same as `step_size_up`).
        step_size_down: Option<u64>,
        /// The amplitude policy.
        mode: CyclicMode,
        /// `(base_momentum, max_momentum)` when momentum cycles inversely.
        cycle_momentum: Option<(f64, f64)>,
    },
    /// PyTorch `OneCycleLR`.
    #[non_exhaustive]
    OneCycle {
        /// The peak learning rate.
        max_lr: f64,
        /// The number of steps in the cycle.
        total_steps: u64,
        /// The fraction of the cycle spent rising.
        pct_start: f64,
        /// The annealing curve.
        anneal: Anneal,
        /// The initial rate is `max_lr / div_factor`.
        div_factor: f64,
        /// The final rate is `initial / final_div_factor`.
        final_div_factor: f64,
        /// Use the three-phase variant.
        three_phase: bool,
        /// `(base_momentum, max_momentum)` when momentum cycles inversely.
        cycle_momentum: Option<(f64, f64)>,
    },
    /// PyTorch `SequentialLR`.
    #[non_exhaustive]
    Sequential {
        /// The schedules, one per interval.
        schedules: Vec<Schedule>,
        /// The steps at which the next schedule takes over (restarting at its
        /// own step 0).
        milestones: Vec<u64>,
    },
    /// PyTorch `ChainedScheduler` over multiplicative schedules.
    #[non_exhaustive]
    Chained {
        /// The schedules whose factors multiply.
        schedules: Vec<Schedule>,
    },
    /// Linear warmup from 0 to `peak_lr`, then cosine decay to `final_lr`.
    #[non_exhaustive]
    WarmupCosine {
        /// The rate at the end of the warmup.
        peak_lr: f64,
        /// The length of the warmup.
        warmup_steps: u64,
        /// The step at which the rate reaches `final_lr`.
        total_steps: u64,
        /// The rate from `total_steps` on.
        final_lr: f64,
    },
    /// Linear warmup from 0 to `lr`, then constant.
    #[non_exhaustive]
    WarmupConstant {
        /// The rate after the warmup.
        lr: f64,
        /// The length of the warmup.
        warmup_steps: u64,
    },
    /// A user function of the step (not serializable).
    #[serde(skip)]
    #[non_exhaustive]
    FromFn {
        /// The function.
        f: LrFn,
    },
}

impl Serialize for Schedule {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        Schedule::serialize(self, s)
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = Schedule::deserialize(d)?;
        s.validate().map_err(serde::de::Error::custom)?;
        Ok(s)
    }
}

impl Schedule {
    /// A constant learning rate `lr`.
    pub fn constant(lr: f64) -> Result<Schedule> {
        Schedule::Constant { lr }.checked()
    }

    /// PyTorch `ConstantLR(factor, total_iters)` over the initial rate
    /// `base`: `base * factor` for steps `< total_iters`, then `base`.
    ///
    /// `0 <= factor <= 1` (as PyTorch) and `total_iters >= 1`. PyTorch's
    /// recursive form divides by `factor` at `total_iters`; that value is
    /// reproduced, and for `factor == 0` (where PyTorch raises
    /// `ZeroDivisionError`) the closed form `base` is returned.
    pub fn constant_lr(base: f64, factor: f64, total_iters: u64) -> Result<Schedule> {
        Schedule::ConstantLr {
            base,
            factor,
            total_iters,
        }
        .checked()
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
        Schedule::Linear {
            base,
            start_factor,
            end_factor,
            total_iters,
        }
        .checked()
    }

    /// PyTorch `StepLR`: `base * gamma^(step / step_size)`.
    ///
    /// `step_size >= 1`, `gamma > 0`.
    pub fn step(base: f64, step_size: u64, gamma: f64) -> Result<Schedule> {
        Schedule::Step {
            base,
            step_size,
            gamma,
        }
        .checked()
    }

    /// PyTorch `MultiStepLR`: `base * gamma^(number of milestones <= step)`.
    ///
    /// `milestones` must be strictly increasing (PyTorch counts repeated
    /// milestones twice; here they are an error); `gamma > 0`.
    pub fn multi_step(base: f64, milestones: Vec<u64>, gamma: f64) -> Result<Schedule> {
        Schedule::MultiStep {
            base,
            milestones,
            gamma,
        }
        .checked()
    }

    /// PyTorch `ExponentialLR`: `base * gamma^step`; `gamma > 0`.
    pub fn exponential(base: f64, gamma: f64) -> Result<Schedule> {
        Schedule::Exponential { base, gamma }.checked()
    }

    /// PyTorch `PolynomialLR`:
    /// `base * (1 - min(step, total_iters) / total_iters)^power`.
    ///
    /// `total_iters >= 1`, `power >= 0`.
    pub fn polynomial(base: f64, total_iters: u64, power: f64) -> Result<Schedule> {
        Schedule::Polynomial {
            base,
            total_iters,
            power,
        }
        .checked()
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
        Schedule::CosineAnnealing {
            base,
            t_max,
            eta_min,
        }
        .checked()
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
        Schedule::CosineWarmRestarts {
            base,
            t_0,
            t_mult,
            eta_min,
        }
        .checked()
    }

    /// PyTorch `CyclicLR`. Step 0 is `base_lr` (PyTorch overwrites the
    /// optimizer's lr with `base_lr` at construction); with
    /// `cycle_momentum = Some((base_momentum, max_momentum))`,
    /// [`Schedule::momentum`] cycles inversely between them.
    ///
    /// `0 <= base_lr <= max_lr`, `step_size_up >= 1`, `step_size_down >= 1`
    /// when given, `0 < gamma <= 1` for [`CyclicMode::ExpRange`],
    /// `0 <= base_momentum <= max_momentum < 1`. PyTorch's custom `scale_fn`
    /// is not offered (use [`Schedule::from_fn`]).
    pub fn cyclic(
        base_lr: f64,
        max_lr: f64,
        step_size_up: u64,
        step_size_down: Option<u64>,
        mode: CyclicMode,
        cycle_momentum: Option<(f64, f64)>,
    ) -> Result<Schedule> {
        Schedule::Cyclic {
            base_lr,
            max_lr,
            step_size_up,
            step_size_down,
            mode,
            cycle_momentum,
        }
        .checked()
    }

    /// PyTorch `OneCycleLR` (with `total_steps` given directly).
    ///
    /// PyTorch accepts `step()` calls up to `total_steps` (that is, steps
    /// `0..=total_steps`, the last one extrapolating the final phase) and
    /// raises `ValueError` after. Here steps past `total_steps` return the
    /// value at `total_steps` (the last one PyTorch produces), for the rate and
    /// the momentum alike.
    ///
    /// `max_lr >= 0`, `total_steps >= 1`, `0 < pct_start < 1`,
    /// `div_factor > 0`, `final_div_factor > 0`,
    /// `0 <= base_momentum <= max_momentum < 1`; `pct_start * total_steps`
    /// must not make a phase of zero length (PyTorch divides by zero there).
    #[allow(clippy::too_many_arguments)]
    pub fn one_cycle(
        max_lr: f64,
        total_steps: u64,
        pct_start: f64,
        anneal: Anneal,
        div_factor: f64,
        final_div_factor: f64,
        three_phase: bool,
        cycle_momentum: Option<(f64, f64)>,
    ) -> Result<Schedule> {
        Schedule::OneCycle {
            max_lr,
            total_steps,
            pct_start,
            anneal,
            div_factor,
            final_div_factor,
            three_phase,
            cycle_momentum,
        }
        .checked()
    }

    /// PyTorch `SequentialLR`: `schedules[i]` runs from `milestones[i - 1]`
    /// (or 0) on, evaluated at its own step `step - milestones[i - 1]`.
    ///
    /// Each sub-schedule carries its own base rate; to mirror PyTorch (where
    /// all share the optimizer's initial lr) give them the same one.
    /// `schedules` must not be empty, `milestones` must have one entry fewer,
    /// be strictly increasing and start at 1 or later.
    pub fn sequential(schedules: Vec<Schedule>, milestones: Vec<u64>) -> Result<Schedule> {
        Schedule::Sequential {
            schedules,
            milestones,
        }
        .checked()
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
        Schedule::Chained { schedules }.checked()
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
        Schedule::WarmupCosine {
            peak_lr,
            warmup_steps,
            total_steps,
            final_lr,
        }
        .checked()
    }

    /// Linear warmup from 0 at step 0 to `lr` at `warmup_steps`, then `lr`
    /// (Hugging Face's `get_constant_schedule_with_warmup`).
    pub fn warmup_constant(lr: f64, warmup_steps: u64) -> Result<Schedule> {
        Schedule::WarmupConstant { lr, warmup_steps }.checked()
    }

    /// A schedule given by a function of the step (PyTorch `LambdaLR` with the
    /// base folded in: `f` returns the absolute learning rate).
    ///
    /// Nothing is validated; [`Schedule::base_lr`] is `f(0)`. Such a schedule
    /// cannot be serialized: serializing it (or a sequence containing it)
    /// returns a serde error.
    pub fn from_fn(f: Arc<dyn Fn(u64) -> f64 + Send + Sync>) -> Schedule {
        Schedule::FromFn { f: LrFn(f) }
    }

    fn checked(self) -> Result<Schedule> {
        self.validate()?;
        Ok(self)
    }

    /// Checks every parameter, as the constructors do; returns the
    /// [`Error::InvalidConfig`] naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        match self {
            Schedule::Constant { lr } => check_lr("lr", *lr),
            Schedule::ConstantLr {
                base,
                factor,
                total_iters,
            } => {
                check_lr("lr", *base)?;
                check_range(
                    "factor",
                    *factor,
                    (0.0..=1.0).contains(factor),
                    "0 <= factor <= 1",
                )?;
                check_positive_steps("total_iters", *total_iters)
            }
            Schedule::Linear {
                base,
                start_factor,
                end_factor,
                total_iters,
            } => {
                check_lr("lr", *base)?;
                check_range(
                    "start_factor",
                    *start_factor,
                    *start_factor > 0.0 && *start_factor <= 1.0,
                    "0 < start_factor <= 1",
                )?;
                check_range(
                    "end_factor",
                    *end_factor,
                    (0.0..=1.0).contains(end_factor),
                    "0 <= end_factor <= 1",
                )?;
                check_positive_steps("total_iters", *total_iters)
            }
            Schedule::Step {
                base,
                step_size,
                gamma,
            } => {
                check_lr("lr", *base)?;
                check_positive_steps("step_size", *step_size)?;
                check_range("gamma", *gamma, *gamma > 0.0, "gamma > 0")
            }
            Schedule::MultiStep {
                base,
                milestones,
                gamma,
            } => {
                check_lr("lr", *base)?;
                check_increasing("milestones", milestones, 0)?;
                check_range("gamma", *gamma, *gamma > 0.0, "gamma > 0")
            }
            Schedule::Exponential { base, gamma } => {
                check_lr("lr", *base)?;
                check_range("gamma", *gamma, *gamma > 0.0, "gamma > 0")
            }
            Schedule::Polynomial {
                base,
                total_iters,
                power,
            } => {
                check_lr("lr", *base)?;
                check_positive_steps("total_iters", *total_iters)?;
                check_range("power", *power, *power >= 0.0, "power >= 0")
            }
            Schedule::CosineAnnealing {
                base,
                t_max,
                eta_min,
            } => {
                check_lr("lr", *base)?;
                check_positive_steps("T_max", *t_max)?;
                check_range("eta_min", *eta_min, *eta_min >= 0.0, "eta_min >= 0")
            }
            Schedule::CosineWarmRestarts {
                base,
                t_0,
                t_mult,
                eta_min,
            } => {
                check_lr("lr", *base)?;
                check_positive_steps("T_0", *t_0)?;
                check_positive_steps("T_mult", *t_mult)?;
                check_range("eta_min", *eta_min, *eta_min >= 0.0, "eta_min >= 0")
            }
            Schedule::Cyclic {
                base_lr,
                max_lr,
                step_size_up,
                step_size_down,
                mode,
                cycle_momentum,
            } => {
                check_lr("base_lr", *base_lr)?;
                check_lr("max_lr", *max_lr)?;
                if max_lr < base_lr {
                    return Err(Error::invalid(
                        "max_lr",
                        max_lr,
                        format!("max_lr >= base_lr ({base_lr})"),
                        "max_lr must not be below base_lr",
                    ));
                }
                check_positive_steps("step_size_up", *step_size_up)?;
                if let Some(d) = step_size_down {
                    check_positive_steps("step_size_down", *d)?;
                }
                if let CyclicMode::ExpRange { gamma } = mode {
                    check_range(
                        "gamma",
                        *gamma,
                        *gamma > 0.0 && *gamma <= 1.0,
                        "0 < gamma <= 1",
                    )?;
                }
                check_momentum(*cycle_momentum)
            }
            Schedule::OneCycle {
                max_lr,
                total_steps,
                pct_start,
                div_factor,
                final_div_factor,
                three_phase,
                cycle_momentum,
                ..
            } => {
                check_lr("max_lr", *max_lr)?;
                check_positive_steps("total_steps", *total_steps)?;
                check_range(
                    "pct_start",
                    *pct_start,
                    *pct_start > 0.0 && *pct_start < 1.0,
                    "0 < pct_start < 1",
                )?;
                check_range(
                    "div_factor",
                    *div_factor,
                    *div_factor > 0.0,
                    "div_factor > 0",
                )?;
                check_range(
                    "final_div_factor",
                    *final_div_factor,
                    *final_div_factor > 0.0,
                    "final_div_factor > 0",
                )?;
                check_momentum(*cycle_momentum)?;
                let ends = one_cycle_ends(*total_steps, *pct_start, *three_phase);
                let mut start = 0.0;
                for end in ends.iter().take(if *three_phase { 3 } else { 2 }) {
                    if *end - start == 0.0 {
                        return Err(Error::invalid(
                            "pct_start",
                            pct_start,
                            "a pct_start for which no phase has zero length",
                            format!(
                                "pct_start = {pct_start} with total_steps = {total_steps} gives a \
                                 phase of zero length (PyTorch raises ZeroDivisionError)"
                            ),
                        ));
                    }
                    start = *end;
                }
                Ok(())
            }
            Schedule::Sequential {
                schedules,
                milestones,
            } => {
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
            Schedule::Chained { schedules } => {
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
                    let ok = match s {
                        Schedule::Constant { .. }
                        | Schedule::ConstantLr { .. }
                        | Schedule::Linear { .. }
                        | Schedule::Step { .. }
                        | Schedule::MultiStep { .. }
                        | Schedule::Exponential { .. }
                        | Schedule::Polynomial { .. }
                        | Schedule::Chained { .. } => true,
                        Schedule::CosineAnnealing { eta_min, .. } => *eta_min == 0.0,
                        _ => false,
                    };
                    if !ok {
                        return Err(Error::invalid(
                            "schedulers",
                            format!("[{i}] = {}", s.kind_name()),
                            "constant, constant_lr, linear, step, multi_step, exponential, \
                             polynomial, cosine_annealing with eta_min = 0, chained",
                            format!(
                                "ChainedScheduler member {i} ({}) is not a multiplicative schedule",
                                s.kind_name()
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
            Schedule::WarmupCosine {
                peak_lr,
                warmup_steps,
                total_steps,
                final_lr,
            } => {
                check_lr("peak_lr", *peak_lr)?;
                check_lr("final_lr", *final_lr)?;
                if final_lr > peak_lr {
                    return Err(Error::invalid(
                        "final_lr",
                        final_lr,
                        format!("final_lr <= peak_lr ({peak_lr})"),
                        "final_lr must not exceed peak_lr",
                    ));
                }
                if total_steps <= warmup_steps {
                    return Err(Error::invalid(
                        "total_steps",
                        total_steps,
                        format!("total_steps > warmup_steps ({warmup_steps})"),
                        "total_steps must exceed warmup_steps",
                    ));
                }
                Ok(())
            }
            Schedule::WarmupConstant { lr, .. } => check_lr("lr", *lr),
            Schedule::FromFn { .. } => Ok(()),
        }
    }

    fn kind_name(&self) -> &'static str {
        match self {
            Schedule::Constant { .. } => "constant",
            Schedule::ConstantLr { .. } => "constant_lr",
            Schedule::Linear { .. } => "linear",
            Schedule::Step { .. } => "step",
            Schedule::MultiStep { .. } => "multi_step",
            Schedule::Exponential { .. } => "exponential",
            Schedule::Polynomial { .. } => "polynomial",
            Schedule::CosineAnnealing { .. } => "cosine_annealing",
            Schedule::CosineWarmRestarts { .. } => "cosine_warm_restarts",
            Schedule::Cyclic { .. } => "cyclic",
            Schedule::OneCycle { .. } => "one_cycle",
            Schedule::Sequential { .. } => "sequential",
            Schedule::Chained { .. } => "chained",
            Schedule::WarmupCosine { .. } => "warmup_cosine",
            Schedule::WarmupConstant { .. } => "warmup_constant",
            Schedule::FromFn { .. } => "from_fn",
        }
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
        match self {
            Schedule::Constant { lr } | Schedule::WarmupConstant { lr, .. } => *lr,
            Schedule::ConstantLr { base, .. }
            | Schedule::Linear { base, .. }
            | Schedule::Step { base, .. }
            | Schedule::MultiStep { base, .. }
            | Schedule::Exponential { base, .. }
            | Schedule::Polynomial { base, .. }
            | Schedule::CosineAnnealing { base, .. }
            | Schedule::CosineWarmRestarts { base, .. } => *base,
            Schedule::Cyclic { base_lr, .. } => *base_lr,
            Schedule::OneCycle { max_lr, .. } => *max_lr,
            Schedule::Sequential { schedules, .. } | Schedule::Chained { schedules } => {
                schedules[0].base_lr()
            }
            Schedule::WarmupCosine { peak_lr, .. } => *peak_lr,
            Schedule::FromFn { f } => (f.0)(0),
        }
    }

    /// `lr(step) / base_lr()`: the schedule as a multiplier, for applying one
    /// schedule to parameter groups with different learning rates. Returns
    /// 0 when `base_lr()` is 0.
    pub fn factor(&self, step: u64) -> f64 {
        let base = self.base_lr();
        if base == 0.0 {
            0.0
        } else {
            self.lr(step) / base
        }
    }

    /// The learning rate after `step` calls of `scheduler.step()` (step 0 is
    /// the rate right after construction).
    pub fn lr(&self, step: u64) -> f64 {
        let e = step;
        match self {
            Schedule::Constant { lr } => *lr,
            Schedule::ConstantLr {
                base,
                factor,
                total_iters,
            } => {
                // Recursive form: base*factor at step 0, then (at total_iters)
                // lr * (1 / factor).
                if e < *total_iters {
                    base * factor
                } else if *factor == 0.0 {
                    *base
                } else {
                    base * factor * (1.0 / factor)
                }
            }
            Schedule::Linear {
                base,
                start_factor,
                end_factor,
                total_iters,
            } => {
                let t = *total_iters as f64;
                base * (start_factor
                    + (end_factor - start_factor) * (e.min(*total_iters) as f64) / t)
            }
            Schedule::Step {
                base,
                step_size,
                gamma,
            } => base * gamma.powf((e / step_size) as f64),
            Schedule::MultiStep {
                base,
                milestones,
                gamma,
            } => {
                let n = milestones.partition_point(|&m| m <= e);
                base * gamma.powf(n as f64)
            }
            Schedule::Exponential { base, gamma } => base * gamma.powf(e as f64),
            Schedule::Polynomial {
                base,
                total_iters,
                power,
            } => {
                let t = *total_iters as f64;
                base * (1.0 - (e.min(*total_iters) as f64) / t).powf(*power)
            }
            Schedule::CosineAnnealing {
                base,
                t_max,
                eta_min,
            } => cosine_annealing_lr(*base, *t_max, *eta_min, e),
            Schedule::CosineWarmRestarts {
                base,
                t_0,
                t_mult,
                eta_min,
            } => {
                let (t_cur, t_i) = warm_restart_position(*t_0, *t_mult, e);
                eta_min + (base - eta_min) * (1.0 + (PI * t_cur as f64 / t_i as f64).cos()) / 2.0
            }
            Schedule::Cyclic {
                base_lr,
                max_lr,
                step_size_up,
                step_size_down,
                mode,
                ..
            } => {
                let (sf, scale) = cyclic_position(*step_size_up, *step_size_down, *mode, e);
                let base_height = (max_lr - base_lr) * sf;
                base_lr + base_height * scale
            }
            Schedule::OneCycle { .. } => self.one_cycle_at(e).0,
            Schedule::Sequential {
                schedules,
                milestones,
            } => {
                let (i, local) = sequential_position(milestones, e);
                schedules[i].lr(local)
            }
            Schedule::Chained { schedules } => {
                let base = schedules[0].base_lr();
                let mut lr = base;
                for s in schedules {
                    lr *= s.factor(e);
                }
                lr
            }
            Schedule::WarmupCosine {
                peak_lr,
                warmup_steps,
                total_steps,
                final_lr,
            } => {
                if e < *warmup_steps {
                    peak_lr * (e as f64 / *warmup_steps as f64)
                } else if e >= *total_steps {
                    *final_lr
                } else {
                    let p = (e - warmup_steps) as f64 / (total_steps - warmup_steps) as f64;
                    final_lr + (peak_lr - final_lr) * ((1.0 + (PI * p).cos()) / 2.0)
                }
            }
            Schedule::WarmupConstant { lr, warmup_steps } => {
                if e < *warmup_steps {
                    lr * (e as f64 / *warmup_steps as f64)
                } else {
                    *lr
                }
            }
            Schedule::FromFn { f } => (f.0)(e),
        }
    }

    /// The momentum (SGD `momentum` / Adam `beta1`) at `step` for
    /// [`cyclic`](Schedule::cyclic) and [`one_cycle`](Schedule::one_cycle)
    /// built with `cycle_momentum`, and for a `sequential` schedule whose
    /// active member is one; `None` otherwise (leave the momentum alone).
    pub fn momentum(&self, step: u64) -> Option<f64> {
        match self {
            Schedule::Cyclic {
                step_size_up,
                step_size_down,
                mode,
                cycle_momentum: Some((base_m, max_m)),
                ..
            } => {
                let (sf, scale) = cyclic_position(*step_size_up, *step_size_down, *mode, step);
                let base_height = (max_m - base_m) * sf;
                Some(max_m - base_height * scale)
            }
            Schedule::OneCycle {
                cycle_momentum: Some(_),
                ..
            } => self.one_cycle_at(step).1,
            Schedule::Sequential {
                schedules,
                milestones,
            } => {
                let (i, local) = sequential_position(milestones, step);
                schedules[i].momentum(local)
            }
            _ => None,
        }
    }

    /// `(lr, momentum)` of a `OneCycle` variant at step `e`, mirroring
    /// `OneCycleLR.get_lr` (steps past `total_steps` are clamped).
    fn one_cycle_at(&self, e: u64) -> (f64, Option<f64>) {
        let Schedule::OneCycle {
            max_lr,
            total_steps,
            pct_start,
            anneal,
            div_factor,
            final_div_factor,
            three_phase,
            cycle_momentum,
        } = self
        else {
            unreachable!("one_cycle_at on another schedule")
        };
        let initial = max_lr / div_factor;
        let min_lr = initial / final_div_factor;
        let (base_m, max_m) = cycle_momentum.unwrap_or((0.0, 0.0));
        let ends = one_cycle_ends(*total_steps, *pct_start, *three_phase);
        // (end_step, start_lr, end_lr, start_momentum, end_momentum)
        let phases: Vec<(f64, f64, f64, f64, f64)> = if *three_phase {
            vec![
                (ends[0], initial, *max_lr, max_m, base_m),
                (ends[1], *max_lr, initial, base_m, max_m),
                (ends[2], initial, min_lr, max_m, max_m),
            ]
        } else {
            vec![
                (ends[0], initial, *max_lr, max_m, base_m),
                (ends[1], *max_lr, min_lr, base_m, max_m),
            ]
        };
        let step = e.min(*total_steps) as f64;
        let anneal_fn = |start: f64, end: f64, pct: f64| match anneal {
            Anneal::Cos => {
                let cos_out = (PI * pct).cos() + 1.0;
                end + (start - end) / 2.0 * cos_out
            }
            Anneal::Linear => (end - start) * pct + start,
        };
        let mut start_step = 0.0;
        let last = phases.len() - 1;
        for (i, &(end_step, s_lr, e_lr, s_m, e_m)) in phases.iter().enumerate() {
            if step <= end_step || i == last {
                let pct = (step - start_step) / (end_step - start_step);
                let lr = anneal_fn(s_lr, e_lr, pct);
                let m = cycle_momentum.map(|_| anneal_fn(s_m, e_m, pct));
                return (lr, m);
            }
            start_step = end_step;
        }
        unreachable!("the last phase always matches")
    }
}

/// PyTorch's phase end steps for `OneCycleLR` (`[end1, end2, end3]`; `end3`
/// unused for two phases).
fn one_cycle_ends(total_steps: u64, pct_start: f64, three_phase: bool) -> [f64; 3] {
    let t = total_steps as f64;
    if three_phase {
        [pct_start * t - 1.0, 2.0 * pct_start * t - 2.0, t - 1.0]
    } else {
        [pct_start * t - 1.0, t - 1.0, t - 1.0]
    }
}

/// `(scale_factor, scale_fn value)` of `CyclicLR.get_lr` at step `e`.
fn cyclic_position(up: u64, down: Option<u64>, mode: CyclicMode, e: u64) -> (f64, f64) {
    let up = up as f64;
    let down = down.map_or(up, |d| d as f64);
    let total_size = up + down;
    let step_ratio = up / total_size;
    let le = e as f64;
    let cycle = (1.0 + le / total_size).floor();
    let x = 1.0 + le / total_size - cycle;
    let scale_factor = if x <= step_ratio {
        x / step_ratio
    } else {
        (x - 1.0) / (step_ratio - 1.0)
    };
    let scale = match mode {
        CyclicMode::Triangular => 1.0,
        CyclicMode::Triangular2 => 1.0 / 2f64.powf(cycle - 1.0),
        CyclicMode::ExpRange { gamma } => gamma.powf(le),
    };
    (scale_factor, scale)
}

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

/// `(index of the active schedule, its local step)` of `SequentialLR`.
fn sequential_position(milestones: &[u64], e: u64) -> (usize, u64) {
    let i = milestones.partition_point(|&m| m <= e);
    let start = if i == 0 { 0 } else { milestones[i - 1] };
    (i, e - start)
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

// ------------------------------------------------------ ReduceLROnPlateau

/// Whether a monitored quantity should go down or up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Lower is better (a loss).
    Min,
    /// Higher is better (an accuracy).
    Max,
}

/// How [`ReduceLrOnPlateau`] measures a significant improvement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdMode {
    /// Relative: better than `best * (1 ∓ threshold)`.
    Rel,
    /// Absolute: better than `best ∓ threshold`.
    Abs,
}

/// The settings of [`ReduceLrOnPlateau`]; `Default` gives PyTorch's defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlateauConfig {
    /// Minimize (`Min`) or maximize (`Max`) the metric. Default `Min`.
    pub mode: Mode,
    /// The factor applied on a plateau, `0 <= factor < 1`. Default 0.1.
    pub factor: f64,
    /// Bad epochs tolerated before a reduction. Default 10.
    pub patience: u64,
    /// The significance threshold, `>= 0` (and `< 1` in `Rel` mode).
    /// Default 1e-4.
    pub threshold: f64,
    /// Relative or absolute threshold. Default `Rel`.
    pub threshold_mode: ThresholdMode,
    /// Epochs to wait after a reduction before counting bad epochs again.
    /// Default 0.
    pub cooldown: u64,
    /// Lower bounds, one per parameter group, or a single one for all.
    /// Default `[0.0]`.
    pub min_lr: Vec<f64>,
    /// Reductions smaller than this are skipped, `>= 0`. Default 1e-8.
    pub eps: f64,
}

impl Default for PlateauConfig {
    fn default() -> Self {
        PlateauConfig {
            mode: Mode::Min,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown: 0,
            min_lr: vec![0.0],
            eps: 1e-8,
        }
    }
}

impl PlateauConfig {
    /// Checks every field; returns the [`Error::InvalidConfig`] naming the
    /// first bad one.
    pub fn validate(&self) -> Result<()> {
        if self.factor.is_nan() || self.factor >= 1.0 {
            return Err(Error::invalid(
                "factor",
                self.factor,
                "0 <= factor < 1",
                "Factor should be < 1.0.",
            ));
        }
        check_range("factor", self.factor, self.factor >= 0.0, "0 <= factor < 1")?;
        let (ok, allowed) = match self.threshold_mode {
            ThresholdMode::Rel => (
                self.threshold >= 0.0 && self.threshold < 1.0,
                "0 <= threshold < 1 (threshold_mode rel)",
            ),
            ThresholdMode::Abs => (self.threshold >= 0.0, "threshold >= 0"),
        };
        check_range("threshold", self.threshold, ok, allowed)?;
        if self.min_lr.is_empty() {
            return Err(Error::invalid(
                "min_lr",
                "[]",
                "one value, or one per parameter group",
                "min_lr must not be empty",
            ));
        }
        for &m in &self.min_lr {
            check_range("min_lr", m, m >= 0.0, "min_lr >= 0")?;
        }
        check_range("eps", self.eps, self.eps >= 0.0, "eps >= 0")
    }
}

/// PyTorch `ReduceLROnPlateau`: reduces the learning rates by `factor` when a
/// metric stops improving.
///
/// Semantics follow PyTorch exactly: the first metric is always an
/// improvement over the initial `best` (`+inf` for `Min`, `-inf` for `Max`);
/// a metric is better if `< best * (1 - threshold)` (`Min`, `Rel`),
/// `< best - threshold` (`Min`, `Abs`), `> best * (1 + threshold)` (`Max`,
/// `Rel`) or `> best + threshold` (`Max`, `Abs`); otherwise it is a bad
/// epoch. During cooldown bad epochs are not counted. When the count exceeds
/// `patience`, each lr becomes `max(lr * factor, min_lr)` unless that lowers
/// it by `eps` or less, and cooldown starts.
///
/// A NaN metric is never an improvement: every comparison with NaN is false,
/// so, as in PyTorch, it counts as a bad epoch (and can trigger a reduction).
/// `+inf` (`Min`) or `-inf` (`Max`) never improve either, since they do not
/// beat the initial `best`.
///
/// The whole state is serde-serializable (non-finite `best` values are
/// written as strings, so JSON checkpoints work); deserializing validates the
/// config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct ReduceLrOnPlateau {
    config: PlateauConfig,
    #[serde(with = "nonfinite")]
    best: f64,
    num_bad_epochs: u64,
    cooldown_counter: u64,
    last_epoch: u64,
}

impl Serialize for ReduceLrOnPlateau {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        ReduceLrOnPlateau::serialize(self, s)
    }
}

impl<'de> Deserialize<'de> for ReduceLrOnPlateau {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = ReduceLrOnPlateau::deserialize(d)?;
        s.config.validate().map_err(serde::de::Error::custom)?;
        Ok(s)
    }
}

impl ReduceLrOnPlateau {
    /// A new scheduler; fails with [`Error::InvalidConfig`] on a bad setting.
    pub fn new(config: PlateauConfig) -> Result<Self> {
        config.validate()?;
        let best = Self::mode_worse(config.mode);
        Ok(ReduceLrOnPlateau {
            config,
            best,
            num_bad_epochs: 0,
            cooldown_counter: 0,
            last_epoch: 0,
        })
    }

    fn mode_worse(mode: Mode) -> f64 {
        match mode {
            Mode::Min => f64::INFINITY,
            Mode::Max => f64::NEG_INFINITY,
        }
    }

    /// The settings.
    pub fn config(&self) -> &PlateauConfig {
        &self.config
    }

    /// The best metric so far (`+inf` / `-inf` before the first improvement).
    pub fn best(&self) -> f64 {
        self.best
    }

    /// Consecutive bad epochs counted so far.
    pub fn num_bad_epochs(&self) -> u64 {
        self.num_bad_epochs
    }

    /// Epochs of cooldown left.
    pub fn cooldown_counter(&self) -> u64 {
        self.cooldown_counter
    }

    /// Whether the scheduler is in cooldown.
    pub fn in_cooldown(&self) -> bool {
        self.cooldown_counter > 0
    }

    /// The number of [`step`](Self::step) calls so far (PyTorch's
    /// `last_epoch`).
    pub fn last_epoch(&self) -> u64 {
        self.last_epoch
    }

    /// Resets `best`, the bad-epoch count and the cooldown (PyTorch's
    /// `_reset`).
    pub fn reset(&mut self) {
        self.best = Self::mode_worse(self.config.mode);
        self.num_bad_epochs = 0;
        self.cooldown_counter = 0;
    }

    fn is_better(&self, a: f64, best: f64) -> bool {
        let t = self.config.threshold;
        match (self.config.mode, self.config.threshold_mode) {
            (Mode::Min, ThresholdMode::Rel) => a < best * (1.0 - t),
            (Mode::Min, ThresholdMode::Abs) => a < best - t,
            (Mode::Max, ThresholdMode::Rel) => a > best * (t + 1.0),
            (Mode::Max, ThresholdMode::Abs) => a > best + t,
        }
    }

    /// Feeds one epoch's metric and lowers `lrs` (one per parameter group) in
    /// place when the plateau rule fires. Returns whether a reduction
    /// happened (some lr may still be unchanged because of `min_lr`/`eps`).
    ///
    /// Fails with [`Error::LayoutMismatch`] (before changing anything) when
    /// `min_lr` has several entries and `lrs` has another length.
    pub fn step(&mut self, metric: f64, lrs: &mut [f64]) -> Result<bool> {
        let n = self.config.min_lr.len();
        if n != 1 && n != lrs.len() {
            return Err(Error::mismatch(format!(
                "ReduceLrOnPlateau has {n} min_lrs but {} learning rates were passed",
                lrs.len()
            )));
        }
        self.last_epoch += 1;
        if self.is_better(metric, self.best) {
            self.best = metric;
            self.num_bad_epochs = 0;
        } else {
            self.num_bad_epochs += 1;
        }
        if self.in_cooldown() {
            self.cooldown_counter -= 1;
            self.num_bad_epochs = 0;
        }
        if self.num_bad_epochs > self.config.patience {
            for (i, lr) in lrs.iter_mut().enumerate() {
                let min_lr = self.config.min_lr[if n == 1 { 0 } else { i }];
                let old = *lr;
                let new = (old * self.config.factor).max(min_lr);
                if old - new > self.config.eps {
                    *lr = new;
                }
            }
            self.cooldown_counter = self.config.cooldown;
            self.num_bad_epochs = 0;
            return Ok(true);
        }
        Ok(false)
    }
}

//! PyTorch `OneCycleLR`: [`OneCycleConfig`] (its arguments, with PyTorch's
//! defaults), the annealing curve [`Anneal`] and the validated schedule
//! [`OneCycle`].

use std::f64::consts::PI;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Family, LR_MAX, check_lr, check_momentum, check_positive_steps, check_range, is_lr};
use crate::error::{Error, Result};

/// The annealing curve of [`Schedule::one_cycle`](super::Schedule::one_cycle)
/// (PyTorch `OneCycleLR`'s `anneal_strategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anneal {
    /// Half-cosine between the two ends (`"cos"`).
    Cos,
    /// Straight line between the two ends (`"linear"`).
    Linear,
}

/// The arguments of [`Schedule::one_cycle`](super::Schedule::one_cycle),
/// PyTorch `OneCycleLR`'s (with `total_steps` given directly).
///
/// `Default` gives PyTorch's defaults (`pct_start = 0.3`,
/// `anneal_strategy = "cos"`, `cycle_momentum = True` with
/// `base_momentum = 0.85`, `max_momentum = 0.95`, `div_factor = 25`,
/// `final_div_factor = 1e4`, `three_phase = False`). `max_lr` has no default
/// in PyTorch and `total_steps` none here (PyTorch can derive it from
/// `epochs * steps_per_epoch`): `Default` sets them to NaN and 0, which
/// [`Schedule::one_cycle`](super::Schedule::one_cycle) refuses naming the
/// field, so they must be given ([`OneCycleConfig::new`] takes them).
///
/// ```
/// use wgpu_optim::schedule::{Anneal, OneCycleConfig, Schedule};
/// let s = Schedule::one_cycle(OneCycleConfig {
///     anneal: Anneal::Linear,
///     ..OneCycleConfig::new(0.1, 100)
/// })?;
/// assert_eq!(s.lr(0), 0.1 / 25.0);
/// assert_eq!(s.momentum(0), Some(0.95));
/// # Ok::<(), wgpu_optim::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OneCycleConfig {
    /// The peak learning rate, `>= 0`. Required.
    pub max_lr: f64,
    /// The number of steps in the cycle, `>= 1`. Required.
    pub total_steps: u64,
    /// The fraction of the cycle spent rising, `0 < pct_start < 1`.
    /// Default 0.3.
    pub pct_start: f64,
    /// The annealing curve (PyTorch's `anneal_strategy`). Default
    /// [`Anneal::Cos`].
    pub anneal: Anneal,
    /// The initial rate is `max_lr / div_factor`, `> 0`. Default 25.
    pub div_factor: f64,
    /// The final rate is `initial / final_div_factor`, `> 0`. Default 1e4.
    pub final_div_factor: f64,
    /// Use the three-phase variant. Default `false`.
    pub three_phase: bool,
    /// `(base_momentum, max_momentum)` when momentum cycles inversely
    /// (PyTorch's `cycle_momentum = True`), `None` to leave the momentum
    /// alone. `0 <= base_momentum <= max_momentum < 1`. Default
    /// `Some((0.85, 0.95))`.
    pub cycle_momentum: Option<(f64, f64)>,
}

impl Default for OneCycleConfig {
    fn default() -> Self {
        OneCycleConfig {
            max_lr: f64::NAN,
            total_steps: 0,
            pct_start: 0.3,
            anneal: Anneal::Cos,
            div_factor: 25.0,
            final_div_factor: 1e4,
            three_phase: false,
            cycle_momentum: Some((0.85, 0.95)),
        }
    }
}

impl OneCycleConfig {
    /// PyTorch's defaults with the two required arguments.
    pub fn new(max_lr: f64, total_steps: u64) -> OneCycleConfig {
        OneCycleConfig {
            max_lr,
            total_steps,
            ..OneCycleConfig::default()
        }
    }

    /// Checks every field; returns the [`Error::InvalidConfig`] naming the
    /// first bad one.
    pub fn validate(&self) -> Result<()> {
        let (pct_start, total_steps) = (self.pct_start, self.total_steps);
        check_lr("max_lr", self.max_lr)?;
        check_positive_steps("total_steps", total_steps)?;
        check_range(
            "pct_start",
            pct_start,
            pct_start > 0.0 && pct_start < 1.0,
            "0 < pct_start < 1",
        )?;
        check_range(
            "div_factor",
            self.div_factor,
            self.div_factor > 0.0,
            "div_factor > 0",
        )?;
        check_range(
            "final_div_factor",
            self.final_div_factor,
            self.final_div_factor > 0.0,
            "final_div_factor > 0",
        )?;
        // Extreme divisors make the end rates overflow (and the annealing
        // NaN): refuse them by name.
        let initial = self.max_lr / self.div_factor;
        if !is_lr(initial) {
            return Err(Error::invalid(
                "div_factor",
                self.div_factor,
                format!("div_factor >= max_lr / f32::MAX ({})", self.max_lr / LR_MAX),
                format!(
                    "the initial lr max_lr / div_factor = {initial} is not a learning rate \
                     the device can hold (f32)"
                ),
            ));
        }
        let min_lr = initial / self.final_div_factor;
        if !is_lr(min_lr) {
            return Err(Error::invalid(
                "final_div_factor",
                self.final_div_factor,
                format!(
                    "final_div_factor >= initial lr / f32::MAX ({})",
                    initial / LR_MAX
                ),
                format!(
                    "the final lr max_lr / div_factor / final_div_factor = {min_lr} is not a \
                     learning rate the device can hold (f32)"
                ),
            ));
        }
        check_momentum(self.cycle_momentum)?;
        let ends = ends(total_steps, pct_start, self.three_phase);
        let mut start = 0.0;
        for end in ends.iter().take(if self.three_phase { 3 } else { 2 }) {
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
}

/// PyTorch `OneCycleLR`: a validated [`OneCycleConfig`]; built by
/// [`Schedule::one_cycle`](super::Schedule::one_cycle). Serializes as its
/// config.
#[derive(Clone, Debug, PartialEq)]
pub struct OneCycle(pub(super) OneCycleConfig);

impl OneCycle {
    /// The arguments.
    pub fn config(&self) -> &OneCycleConfig {
        &self.0
    }

    /// `(lr, momentum)` at step `e`, mirroring `OneCycleLR.get_lr`, with
    /// steps past `total_steps` clamped to `total_steps`, and the one-step
    /// extrapolation PyTorch makes at `total_steps` clamped at the end value
    /// of the last phase.
    fn at(&self, e: u64) -> (f64, Option<f64>) {
        let c = &self.0;
        let max_lr = c.max_lr;
        let initial = max_lr / c.div_factor;
        let min_lr = initial / c.final_div_factor;
        let (base_m, max_m) = c.cycle_momentum.unwrap_or((0.0, 0.0));
        let ends = ends(c.total_steps, c.pct_start, c.three_phase);
        // (end_step, start_lr, end_lr, start_momentum, end_momentum)
        let phases: Vec<(f64, f64, f64, f64, f64)> = if c.three_phase {
            vec![
                (ends[0], initial, max_lr, max_m, base_m),
                (ends[1], max_lr, initial, base_m, max_m),
                (ends[2], initial, min_lr, max_m, max_m),
            ]
        } else {
            vec![
                (ends[0], initial, max_lr, max_m, base_m),
                (ends[1], max_lr, min_lr, base_m, max_m),
            ]
        };
        let step = e.min(c.total_steps) as f64;
        let anneal = |start: f64, end: f64, pct: f64| {
            let v = match c.anneal {
                Anneal::Cos => {
                    let cos_out = (PI * pct).cos() + 1.0;
                    end + (start - end) / 2.0 * cos_out
                }
                Anneal::Linear => (end - start) * pct + start,
            };
            // Past the end of the last phase (step total_steps) PyTorch
            // extrapolates: a line overshoots its end value (to a negative
            // lr, or a momentum above max_momentum); a cosine turns back and
            // stays within its ends. Hold the end value instead.
            if pct > 1.0 && (v - end) * (start - end) < 0.0 {
                end
            } else {
                v
            }
        };
        let mut start_step = 0.0;
        let last = phases.len() - 1;
        for (i, &(end_step, s_lr, e_lr, s_m, e_m)) in phases.iter().enumerate() {
            if step <= end_step || i == last {
                let pct = (step - start_step) / (end_step - start_step);
                let lr = anneal(s_lr, e_lr, pct);
                let m = c.cycle_momentum.map(|_| anneal(s_m, e_m, pct));
                return (lr, m);
            }
            start_step = end_step;
        }
        (f64::NAN, None) // not reached: the last phase always matches
    }
}

/// PyTorch's phase end steps for `OneCycleLR` (`[end1, end2, end3]`; `end3`
/// unused for two phases).
fn ends(total_steps: u64, pct_start: f64, three_phase: bool) -> [f64; 3] {
    let t = total_steps as f64;
    if three_phase {
        [pct_start * t - 1.0, 2.0 * pct_start * t - 2.0, t - 1.0]
    } else {
        [pct_start * t - 1.0, t - 1.0, t - 1.0]
    }
}

impl Family for OneCycle {
    fn kind(&self) -> &'static str {
        "one_cycle"
    }
    fn validate(&self) -> Result<()> {
        self.0.validate()
    }
    fn base_lr(&self) -> f64 {
        self.0.max_lr
    }
    fn lr(&self, e: u64) -> f64 {
        self.at(e).0
    }
    fn momentum(&self, e: u64) -> Option<f64> {
        self.at(e).1
    }
}

impl Serialize for OneCycle {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for OneCycle {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let c = OneCycleConfig::deserialize(d)?;
        c.validate().map_err(serde::de::Error::custom)?;
        Ok(OneCycle(c))
    }
}

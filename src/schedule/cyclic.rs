//! PyTorch `CyclicLR`: [`CyclicConfig`] (its arguments, with PyTorch's
//! defaults), the amplitude policy [`CyclicMode`] and the validated
//! schedule [`Cyclic`].

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Family, check_lr, check_momentum, check_positive_steps, check_range};
use crate::error::{Error, Result};

/// The amplitude policy of [`Schedule::cyclic`](super::Schedule::cyclic)
/// (PyTorch `CyclicLR`'s `mode`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CyclicMode {
    /// Constant amplitude (`"triangular"`).
    Triangular,
    /// The amplitude halves every cycle (`"triangular2"`).
    Triangular2,
    /// The amplitude is scaled by `gamma^step` (`"exp_range"`).
    ExpRange {
        /// The per-step scale, `0 < gamma <= 1` (PyTorch's default is 1).
        gamma: f64,
    },
}

/// The arguments of [`Schedule::cyclic`](super::Schedule::cyclic), PyTorch
/// `CyclicLR`'s.
///
/// `Default` gives PyTorch's defaults (`step_size_up = 2000`,
/// `step_size_down = None`, `mode = triangular`, `cycle_momentum = True` with
/// `base_momentum = 0.8`, `max_momentum = 0.9`). `base_lr` and `max_lr` have
/// no default in PyTorch: `Default` sets them to NaN, which
/// [`Schedule::cyclic`](super::Schedule::cyclic) refuses naming the field,
/// so they must be given ([`CyclicConfig::new`] takes them).
///
/// ```
/// use wgpu_optim::schedule::{CyclicConfig, CyclicMode, Schedule};
/// let s = Schedule::cyclic(CyclicConfig {
///     step_size_up: 5,
///     mode: CyclicMode::Triangular2,
///     cycle_momentum: None,
///     ..CyclicConfig::new(0.001, 0.01)
/// })?;
/// assert!((s.lr(5) - 0.01).abs() < 1e-15); // the peak
/// assert_eq!(s.momentum(0), None);
/// # Ok::<(), wgpu_optim::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CyclicConfig {
    /// The lower bound, `>= 0` (PyTorch writes it into the optimizer at
    /// construction). Required.
    pub base_lr: f64,
    /// The upper bound of the cycle, `>= base_lr`. Required.
    pub max_lr: f64,
    /// Steps in the rising half, `>= 1`. Default 2000.
    pub step_size_up: u64,
    /// Steps in the falling half, `>= 1` (`None`: same as `step_size_up`).
    /// Default `None`.
    pub step_size_down: Option<u64>,
    /// The amplitude policy. Default [`CyclicMode::Triangular`].
    pub mode: CyclicMode,
    /// `(base_momentum, max_momentum)` when momentum cycles inversely
    /// (PyTorch's `cycle_momentum = True`), `None` to leave the momentum
    /// alone. `0 <= base_momentum <= max_momentum < 1`. Default
    /// `Some((0.8, 0.9))`.
    pub cycle_momentum: Option<(f64, f64)>,
}

impl Default for CyclicConfig {
    fn default() -> Self {
        CyclicConfig {
            base_lr: f64::NAN,
            max_lr: f64::NAN,
            step_size_up: 2000,
            step_size_down: None,
            mode: CyclicMode::Triangular,
            cycle_momentum: Some((0.8, 0.9)),
        }
    }
}

impl CyclicConfig {
    /// PyTorch's defaults with the two required rates.
    pub fn new(base_lr: f64, max_lr: f64) -> CyclicConfig {
        CyclicConfig {
            base_lr,
            max_lr,
            ..CyclicConfig::default()
        }
    }

    /// Checks every field; returns the [`Error::InvalidConfig`] naming the
    /// first bad one.
    pub fn validate(&self) -> Result<()> {
        check_lr("base_lr", self.base_lr)?;
        check_lr("max_lr", self.max_lr)?;
        if self.max_lr < self.base_lr {
            return Err(Error::invalid(
                "max_lr",
                self.max_lr,
                format!("max_lr >= base_lr ({})", self.base_lr),
                "max_lr must not be below base_lr",
            ));
        }
        check_positive_steps("step_size_up", self.step_size_up)?;
        if let Some(d) = self.step_size_down {
            check_positive_steps("step_size_down", d)?;
        }
        if let CyclicMode::ExpRange { gamma } = self.mode {
            check_range(
                "gamma",
                gamma,
                gamma > 0.0 && gamma <= 1.0,
                "0 < gamma <= 1",
            )?;
        }
        check_momentum(self.cycle_momentum)
    }
}

/// PyTorch `CyclicLR`: a validated [`CyclicConfig`]; built by
/// [`Schedule::cyclic`](super::Schedule::cyclic). Serializes as its config.
#[derive(Clone, Debug, PartialEq)]
pub struct Cyclic(pub(super) CyclicConfig);

impl Cyclic {
    /// The arguments.
    pub fn config(&self) -> &CyclicConfig {
        &self.0
    }

    /// `(scale_factor, scale_fn value)` of `CyclicLR.get_lr` at step `e`.
    fn position(&self, e: u64) -> (f64, f64) {
        let c = &self.0;
        let up = c.step_size_up as f64;
        let down = c.step_size_down.map_or(up, |d| d as f64);
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
        let scale = match c.mode {
            CyclicMode::Triangular => 1.0,
            CyclicMode::Triangular2 => 1.0 / 2f64.powf(cycle - 1.0),
            CyclicMode::ExpRange { gamma } => gamma.powf(le),
        };
        (scale_factor, scale)
    }
}

impl Family for Cyclic {
    fn kind(&self) -> &'static str {
        "cyclic"
    }
    fn validate(&self) -> Result<()> {
        self.0.validate()
    }
    fn base_lr(&self) -> f64 {
        self.0.base_lr
    }
    fn lr(&self, e: u64) -> f64 {
        let (sf, scale) = self.position(e);
        let base_height = (self.0.max_lr - self.0.base_lr) * sf;
        self.0.base_lr + base_height * scale
    }
    fn momentum(&self, e: u64) -> Option<f64> {
        let (base_m, max_m) = self.0.cycle_momentum?;
        let (sf, scale) = self.position(e);
        let base_height = (max_m - base_m) * sf;
        Some(max_m - base_height * scale)
    }
}

impl Serialize for Cyclic {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Cyclic {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let c = CyclicConfig::deserialize(d)?;
        c.validate().map_err(serde::de::Error::custom)?;
        Ok(Cyclic(c))
    }
}

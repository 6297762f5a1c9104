//! [`ReduceLrOnPlateau`], PyTorch's metric-driven scheduler (a state
//! machine, not a function of the step), its settings [`PlateauConfig`] and
//! the enums [`Mode`] and [`ThresholdMode`].

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{check_range, nonfinite};
use crate::error::{Error, Result};

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

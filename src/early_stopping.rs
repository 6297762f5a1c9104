//! Early stopping with Keras `EarlyStopping` semantics, as a pure state
//! machine.
//!
//! Feed one monitored value per epoch to [`EarlyStopping::update`]; the
//! returned [`Decision`] says whether to snapshot the weights, whether to stop
//! and whether to restore the snapshot. The logic is that of Keras 3
//! (`keras/src/callbacks/early_stopping.py`, `EarlyStopping.on_epoch_end`, and
//! `keras/src/callbacks/monitor_callback.py`, `_is_improvement`):
//!
//! * epochs before `start_from_epoch` are ignored entirely;
//! * with `restore_best_weights`, the first monitored epoch is snapshotted
//!   even if it is not an improvement ("if best weights were never set, then
//!   the current weights are the best");
//! * `wait` is incremented on every monitored epoch and reset to 0 on an
//!   improvement over the best value *that also beats `baseline`* (when one is
//!   set); an improvement that does not beat the baseline still becomes the
//!   best value (and is snapshotted) but does not reset `wait`;
//! * the first monitored value is always an improvement (Keras 3 starts with
//!   `best = None`; the baseline is not the initial best);
//! * `value` is an improvement if `value + min_delta < best` (`Min`) or
//!   `value - min_delta > best` (`Max`), with `min_delta` taken as an absolute
//!   value;
//! * training stops when, after a non-improving epoch, `wait >= patience` and
//!   `epoch > 0`;
//! * with `restore_best_weights`, Keras restores the snapshot at the end of
//!   training, whether it stopped early or not: [`Decision::restore_best`] is
//!   set on the stopping epoch, and [`EarlyStopping::on_train_end`] tells
//!   whether to restore when training ends for another reason.
//!
//! One deliberate difference: a NaN value is never an improvement. Keras
//! treats a NaN as an improvement when it is the *first* monitored value
//! (there is no best yet), after which nothing can improve on it; here a NaN
//! first value is a non-improving epoch and leaves `best` unset. Later NaNs
//! behave as in Keras (never an improvement). Keras compares in the backend's
//! float type (`float32` by default); this module compares in `f64`, so
//! values that differ by less than `float32` resolution can decide
//! differently.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
pub use crate::schedule::Mode;
use crate::schedule::nonfinite;

/// The direction Keras' `mode="auto"` would pick for a monitored name:
/// `Min` for `loss`/`val_loss`, `Max` for names containing `acc` (Keras 2's
/// rule; Keras 3 asks the compiled metric, which this crate cannot see).
/// Anything else is an [`Error::InvalidConfig`] asking for an explicit mode.
pub fn mode_from_monitor(monitor: &str) -> Result<Mode> {
    let name = monitor.strip_prefix("val_").unwrap_or(monitor);
    if name == "loss" {
        Ok(Mode::Min)
    } else if name.contains("acc") {
        Ok(Mode::Max)
    } else {
        Err(Error::invalid(
            "mode",
            format!("auto (monitor = {monitor:?})"),
            "Mode::Min or Mode::Max",
            format!(
                "EarlyStopping callback received monitor={monitor}, but the direction cannot be \
                 determined automatically. Pass Mode::Max in order to monitor based on the \
                 highest metric value, or Mode::Min in order to use the lowest value."
            ),
        ))
    }
}

/// The settings of [`EarlyStopping`]; `Default` gives Keras' defaults
/// (`monitor = "val_loss"`, `mode = Min`, everything else off).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EarlyStoppingConfig {
    /// The name of the monitored quantity (informational).
    pub monitor: String,
    /// Whether lower (`Min`) or higher (`Max`) is better.
    pub mode: Mode,
    /// The smallest change that counts as an improvement; its absolute value
    /// is used, as in Keras. Finite.
    pub min_delta: f64,
    /// Non-improving epochs tolerated before stopping.
    pub patience: u64,
    /// A value the metric must beat for `wait` to be reset. Finite.
    #[serde(with = "nonfinite::option")]
    pub baseline: Option<f64>,
    /// Epochs before this one are not monitored.
    pub start_from_epoch: u64,
    /// Whether the caller keeps a snapshot of the best weights and restores
    /// it at the end of training.
    pub restore_best_weights: bool,
}

impl Default for EarlyStoppingConfig {
    fn default() -> Self {
        EarlyStoppingConfig {
            monitor: "val_loss".to_string(),
            mode: Mode::Min,
            min_delta: 0.0,
            patience: 0,
            baseline: None,
            start_from_epoch: 0,
            restore_best_weights: false,
        }
    }
}

impl EarlyStoppingConfig {
    /// Checks every field; returns the [`Error::InvalidConfig`] naming the
    /// first bad one.
    pub fn validate(&self) -> Result<()> {
        if !self.min_delta.is_finite() {
            return Err(Error::invalid(
                "min_delta",
                self.min_delta,
                "a finite number (its absolute value is used)",
                format!("Invalid min_delta: {}", self.min_delta),
            ));
        }
        if let Some(b) = self.baseline
            && !b.is_finite()
        {
            return Err(Error::invalid(
                "baseline",
                b,
                "a finite number, or None",
                format!("Invalid baseline: {b}"),
            ));
        }
        Ok(())
    }
}

/// What the caller should do after an epoch; see [`EarlyStopping::update`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Decision {
    /// The value improved on the best so far and is now the best; the caller
    /// should snapshot the weights now (when restoring best weights).
    pub improved: bool,
    /// With `restore_best_weights`: snapshot the weights now. True on every
    /// improvement and on the first monitored epoch (which Keras snapshots
    /// even if it is not an improvement, e.g. a NaN here).
    pub snapshot: bool,
    /// Stop training now.
    pub stop: bool,
    /// With `restore_best_weights`, on the stopping epoch: restore the last
    /// snapshot now.
    pub restore_best: bool,
}

/// Why [`EarlyStopping`] stopped training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StopReason {
    /// No improvement for `patience` epochs.
    PatienceExhausted {
        /// The epoch at which training stopped.
        epoch: u64,
        /// The patience.
        patience: u64,
        /// The best epoch, if any value was ever an improvement.
        best_epoch: Option<u64>,
        /// The best value, if any.
        #[serde(with = "nonfinite::option")]
        best_value: Option<f64>,
    },
    /// No value beat the baseline within `patience` epochs.
    BaselineNotBeaten {
        /// The epoch at which training stopped.
        epoch: u64,
        /// The patience.
        patience: u64,
        /// The baseline.
        baseline: f64,
        /// The best value seen, if any.
        #[serde(with = "nonfinite::option")]
        best_value: Option<f64>,
    },
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::PatienceExhausted {
                epoch,
                patience,
                best_epoch,
                best_value,
            } => {
                write!(
                    f,
                    "early stopping at epoch {epoch}: no improvement for {patience} epoch(s)"
                )?;
                if let (Some(e), Some(v)) = (best_epoch, best_value) {
                    write!(f, "; best value {v} at epoch {e}")?;
                }
                Ok(())
            }
            StopReason::BaselineNotBeaten {
                epoch,
                patience,
                baseline,
                best_value,
            } => {
                write!(
                    f,
                    "early stopping at epoch {epoch}: no value beat the baseline {baseline} \
                     within {patience} epoch(s)"
                )?;
                if let Some(v) = best_value {
                    write!(f, "; best value {v}")?;
                }
                Ok(())
            }
        }
    }
}

/// Keras `EarlyStopping` as a state machine (see the [module docs](self)).
///
/// Serializable with serde, so it can be checkpointed with the model;
/// deserializing validates the config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct EarlyStopping {
    config: EarlyStoppingConfig,
    wait: u64,
    stopped_epoch: Option<u64>,
    #[serde(with = "nonfinite::option")]
    best: Option<f64>,
    best_epoch: Option<u64>,
    has_snapshot: bool,
    reason: Option<StopReason>,
}

impl Serialize for EarlyStopping {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        EarlyStopping::serialize(self, s)
    }
}

impl<'de> Deserialize<'de> for EarlyStopping {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = EarlyStopping::deserialize(d)?;
        s.config.validate().map_err(serde::de::Error::custom)?;
        Ok(s)
    }
}

impl EarlyStopping {
    /// A new state machine; fails with [`Error::InvalidConfig`] on a bad
    /// setting.
    pub fn new(config: EarlyStoppingConfig) -> Result<Self> {
        config.validate()?;
        Ok(EarlyStopping {
            config,
            wait: 0,
            stopped_epoch: None,
            best: None,
            best_epoch: None,
            has_snapshot: false,
            reason: None,
        })
    }

    /// Forgets everything seen (Keras' `on_train_begin`), keeping the config.
    pub fn reset(&mut self) {
        *self = EarlyStopping {
            config: self.config.clone(),
            wait: 0,
            stopped_epoch: None,
            best: None,
            best_epoch: None,
            has_snapshot: false,
            reason: None,
        };
    }

    /// The settings.
    pub fn config(&self) -> &EarlyStoppingConfig {
        &self.config
    }

    fn is_improvement(&self, value: f64, reference: Option<f64>) -> bool {
        // Keras: monitor_op(value - min_delta, reference), with min_delta
        // negated for `less` (monitor_callback.py, `_set_monitor_op` and
        // `_is_improvement`). A NaN value is never an improvement here.
        if value.is_nan() {
            return false;
        }
        let Some(reference) = reference else {
            return true;
        };
        let d = self.config.min_delta.abs();
        match self.config.mode {
            Mode::Min => value + d < reference,
            Mode::Max => value - d > reference,
        }
    }

    /// Feeds the monitored `value` at the end of `epoch` (0-based, as Keras'
    /// `on_epoch_end`) and says what to do.
    ///
    /// Calls after a stop keep applying the same rule (Keras' `fit` would
    /// have returned; its callback has no guard either).
    pub fn update(&mut self, epoch: u64, value: f64) -> Decision {
        let mut d = Decision::default();
        if epoch < self.config.start_from_epoch {
            return d;
        }
        let restore = self.config.restore_best_weights;
        if restore && !self.has_snapshot {
            self.has_snapshot = true;
            self.best_epoch = Some(epoch);
            d.snapshot = true;
        }
        self.wait += 1;
        if self.is_improvement(value, self.best) {
            self.best = Some(value);
            self.best_epoch = Some(epoch);
            d.improved = true;
            d.snapshot = restore;
            if self.config.baseline.is_none() || self.is_improvement(value, self.config.baseline) {
                self.wait = 0;
            }
            return d;
        }
        if self.wait >= self.config.patience && epoch > 0 {
            self.stopped_epoch = Some(epoch);
            d.stop = true;
            d.restore_best = restore && self.has_snapshot;
            let beat_baseline = match (self.config.baseline, self.best) {
                (None, _) => true,
                (Some(b), best) => best.is_some_and(|v| self.is_improvement(v, Some(b))),
            };
            self.reason = Some(if beat_baseline {
                StopReason::PatienceExhausted {
                    epoch,
                    patience: self.config.patience,
                    best_epoch: self.best.and(self.best_epoch),
                    best_value: self.best,
                }
            } else {
                StopReason::BaselineNotBeaten {
                    epoch,
                    patience: self.config.patience,
                    baseline: self.config.baseline.unwrap_or(f64::NAN),
                    best_value: self.best,
                }
            });
        }
        d
    }

    /// Keras' `on_train_end`: whether the caller should restore the snapshot
    /// now (`restore_best_weights` and a snapshot was requested), whether
    /// training stopped early or ran out of epochs.
    pub fn on_train_end(&self) -> bool {
        self.config.restore_best_weights && self.has_snapshot
    }

    /// Whether training has been told to stop.
    pub fn should_stop(&self) -> bool {
        self.stopped_epoch.is_some()
    }

    /// The epoch at which training was told to stop (the last one, if
    /// [`update`](Self::update) was called after a stop).
    pub fn stopped_epoch(&self) -> Option<u64> {
        self.stopped_epoch
    }

    /// The epoch whose weights the snapshot holds: the last improvement, or
    /// with `restore_best_weights` the first monitored epoch until then.
    pub fn best_epoch(&self) -> Option<u64> {
        self.best_epoch
    }

    /// The best value so far (`None` before the first improvement).
    pub fn best_value(&self) -> Option<f64> {
        self.best
    }

    /// Keras' `wait` counter: monitored epochs since the counter was last
    /// reset.
    pub fn wait(&self) -> u64 {
        self.wait
    }

    /// Why training stopped, once it has.
    pub fn reason(&self) -> Option<StopReason> {
        self.reason.clone()
    }
}

/// Keeps the best weights of an [`EarlyStopping`] run on the device: acts on
/// each [`Decision`] with buffer copies (no trip through the host).
///
/// ```no_run
/// # use wgpu_optim::{Gpu, ParamLayout, ParamSet};
/// # use wgpu_optim::early_stopping::{BestWeights, EarlyStopping, EarlyStoppingConfig};
/// # fn main() -> wgpu_optim::Result<()> {
/// # let gpu = Gpu::new_default()?;
/// # let mut params = ParamSet::new(&gpu, &ParamLayout::new(&[("w", &[4][..])])?)?;
/// let mut stop = EarlyStopping::new(EarlyStoppingConfig { patience: 3, restore_best_weights: true, ..Default::default() })?;
/// let mut best = BestWeights::new(&gpu, &params)?;
/// for epoch in 0..100 {
///     // ... train one epoch, then evaluate ...
///     let val_loss = 1.0 / (epoch as f64 + 1.0);
///     let decision = stop.update(epoch, val_loss);
///     best.apply(&gpu, &mut params, &decision)?;
///     if decision.stop { break; }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct BestWeights {
    snapshot: crate::params::ParamSnapshot,
    saved: bool,
}

impl BestWeights {
    /// Allocates the snapshot buffers (a copy of `params` as they are now).
    pub fn new(gpu: &crate::Gpu, params: &crate::ParamSet) -> Result<BestWeights> {
        Ok(BestWeights {
            snapshot: params.snapshot(gpu)?,
            saved: false,
        })
    }

    /// Snapshots on `decision.snapshot`, restores on `decision.restore_best`.
    pub fn apply(
        &mut self,
        gpu: &crate::Gpu,
        params: &mut crate::ParamSet,
        decision: &Decision,
    ) -> Result<()> {
        if decision.snapshot {
            params.save_to(gpu, &self.snapshot)?;
            self.saved = true;
        }
        if decision.restore_best && self.saved {
            params.restore_from(gpu, &self.snapshot)?;
        }
        Ok(())
    }

    /// Whether a snapshot has been taken (or marked, see [`mark_saved`](Self::mark_saved)).
    pub fn has_snapshot(&self) -> bool {
        self.saved
    }

    /// The device snapshot (e.g. to export it with
    /// [`checkpoint::export_snapshot`](crate::checkpoint::export_snapshot)).
    pub fn snapshot(&self) -> &crate::params::ParamSnapshot {
        &self.snapshot
    }

    /// Declares the snapshot taken: used when resuming, after
    /// [`new`](Self::new) captured best weights loaded from a file.
    pub fn mark_saved(&mut self) {
        self.saved = true;
    }

    /// Restores the snapshot (Keras' `on_train_end` when training ran out of
    /// epochs without stopping early). Does nothing if none was taken.
    pub fn restore(&self, gpu: &crate::Gpu, params: &mut crate::ParamSet) -> Result<()> {
        if self.saved {
            params.restore_from(gpu, &self.snapshot)?;
        }
        Ok(())
    }
}

//! Schedule-Free AdamW and SGD (Defazio et al., 2024, "The Road Less
//! Scheduled"), mirroring the authors' `schedulefree` package: what the two
//! share (the averaging weights, warmup, the train / eval swap) lives here,
//! each optimizer in its own folder.
//!
//! Three sequences per tensor: `z` (the base iterate, a state), `x` (the
//! weighted average of the `z`s, the weights to evaluate) and `y = (1 -
//! beta) z + beta x` (where gradients are taken). As in `schedulefree`, the
//! params hold `y` in train mode and `x` in eval mode, `x` itself is not
//! stored, and [`Optimizer::eval`](crate::Optimizer::eval) /
//! [`Optimizer::train`](crate::Optimizer::train) switch between them on the
//! device (`p = lerp(p, z, 1 - 1/beta)` and `p = lerp(p, z, 1 - beta)`, one
//! dispatch per chunk, no readback).
//!
//! The averaging weight of step `t` (`k = t - 1`) is computed on the host
//! in f64, from running state that `schedulefree` keeps in each param
//! group and so do these configs (`lr_max`, `weight_sum`, saved in
//! checkpoints with the group):
//!
//! ```text
//! sched = (k + 1) / warmup_steps if k < warmup_steps else 1
//! lr_t = lr * sched
//! lr_max = max(lr_max, lr_t)
//! weight = (k + 1)^r * lr_max^weight_lr_power
//! weight_sum = weight_sum + weight
//! c = weight / weight_sum        (0 when weight_sum is 0)
//! ```
//!
//! Because that state advances on the host with every `step()`, a step the
//! non-finite guard skips on the device would leave it ahead of the
//! params: these optimizers refuse `NonFinite::Skip` and `NonFinite::Error`
//! (and with them a dynamic loss scale's skipping) with an error naming
//! `gradients.nonfinite`. Clipping, a static loss scale and the rest of the
//! gradient pipeline work as for every optimizer.

pub mod adamw;
pub mod sgd;

/// The scheduled learning rate of step `t` (linear warmup over
/// `warmup_steps`).
fn scheduled_lr(h: &Averaging, t: u64) -> f64 {
    let k = t.saturating_sub(1) as f64;
    if k < h.warmup_steps {
        h.lr * (k + 1.0) / h.warmup_steps
    } else {
        h.lr
    }
}

/// The averaging weight of step `t` from the running state as advanced
/// through step `t`.
fn weight(h: &Averaging, t: u64, lr_max: f64) -> f64 {
    (t.max(1) as f64).powf(h.r) * lr_max.powf(h.weight_lr_power)
}

/// Advances one param group's running state through step `t` (what
/// `schedulefree` does to `group['lr_max']` and `group['weight_sum']`).
pub(crate) fn advance(h: &Averaging, t: u64, lr_max: &mut f64, weight_sum: &mut f64) {
    *lr_max = lr_max.max(scheduled_lr(h, t));
    *weight_sum += weight(h, t, *lr_max);
}

/// The scalars of step `t`, `(lr_t, c)`, from the running state as
/// advanced through step `t`; `c` is 0 while `weight_sum` is 0 (an `lr = 0`
/// group), as `schedulefree`'s `ZeroDivisionError` branch.
pub(crate) fn scalars(h: &Averaging, t: u64, lr_max: f64, weight_sum: f64) -> (f64, f64) {
    let c = if weight_sum == 0.0 {
        0.0
    } else {
        weight(h, t, lr_max) / weight_sum
    };
    (scheduled_lr(h, t), c)
}

/// The hyperparameters of the averaging (both optimizers have them).
pub(crate) struct Averaging {
    pub(crate) lr: f64,
    pub(crate) warmup_steps: f64,
    pub(crate) r: f64,
    pub(crate) weight_lr_power: f64,
}

/// The checks of the averaging's fields and running state.
pub(crate) fn check_averaging(h: &Averaging, lr_max: f64, weight_sum: f64) -> crate::Result<()> {
    use crate::Error;
    super::check_lr("lr", h.lr)?;
    let w = h.warmup_steps;
    if !(w >= 0.0 && w.fract() == 0.0 && w <= u32::MAX as f64) {
        return Err(Error::invalid(
            "warmup_steps",
            w,
            "a whole number of steps >= 0",
            format!("Invalid warmup_steps value: {w}"),
        ));
    }
    super::check_min("r", h.r, "r")?;
    super::check_min("weight_lr_power", h.weight_lr_power, "weight_lr_power")?;
    super::check_min("lr_max", lr_max, "lr_max")?;
    if !(weight_sum >= 0.0 && weight_sum.is_finite()) {
        return Err(Error::invalid(
            "weight_sum",
            weight_sum,
            "a finite number >= 0",
            format!("Invalid weight_sum value: {weight_sum}"),
        ));
    }
    Ok(())
}

/// The names of the running state in each config (restored from
/// checkpoints, never compared).
pub(crate) const RUNNING: &[&str] = &["lr_max", "weight_sum"];

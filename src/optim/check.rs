//! Validation helpers shared by the optimizer configs: PyTorch's wording, the
//! field, the value and what is allowed; every value must also be finite in
//! the f32 the device computes with.

use crate::error::{Error, Result};

/// A learning rate: finite (in f32) and >= 0.
pub(crate) fn check_lr(field: &str, v: f64) -> Result<()> {
    if !(v >= 0.0 && v <= f32::MAX as f64) {
        return Err(Error::invalid(
            field,
            v,
            "a number >= 0, finite in f32",
            format!("Invalid learning rate: {v}"),
        ));
    }
    Ok(())
}

/// `v` must be >= 0 and finite (in f32); PyTorch's message "Invalid {what} value: {v}".
pub(crate) fn check_min(field: &str, v: f64, what: &str) -> Result<()> {
    if !(v >= 0.0 && v <= f32::MAX as f64) {
        return Err(Error::invalid(
            field,
            v,
            "a number >= 0, finite in f32",
            format!("Invalid {what} value: {v}"),
        ));
    }
    Ok(())
}

/// `0 <= v < 1` (or `<= 1` when `inclusive`), with the given message.
pub(crate) fn check_unit(field: &str, v: f64, inclusive: bool, message: String) -> Result<()> {
    let ok = v >= 0.0 && if inclusive { v <= 1.0 } else { v < 1.0 };
    if !ok {
        let allowed = if inclusive {
            "0 <= x <= 1"
        } else {
            "0 <= x < 1"
        };
        return Err(Error::invalid(
            field,
            v,
            allowed.replace('x', field),
            message,
        ));
    }
    Ok(())
}

/// `eps`: >= 0 and finite in f32 ("Invalid epsilon value").
pub(crate) fn check_eps(field: &str, v: f64) -> Result<()> {
    if !(v >= 0.0 && v <= f32::MAX as f64) {
        return Err(Error::invalid(
            field,
            v,
            "a number >= 0, finite in f32",
            format!("Invalid epsilon value: {v}"),
        ));
    }
    Ok(())
}

/// Adam-style `beta1`, `beta2` in `[0, 1)`, with PyTorch's messages.
pub(crate) fn check_betas(beta1: f64, beta2: f64) -> Result<()> {
    check_unit(
        "beta1",
        beta1,
        false,
        format!("Invalid beta parameter at index 0: {beta1}"),
    )?;
    check_unit(
        "beta2",
        beta2,
        false,
        format!("Invalid beta parameter at index 1: {beta2}"),
    )
}

/// The hyperparameters the Adam family shares: `lr`, `eps`, `beta1` and
/// `beta2` in `[0, 1)`, `weight_decay`, `l1`.
pub(crate) fn check_adam_like(
    lr: f64,
    eps: f64,
    beta1: f64,
    beta2: f64,
    weight_decay: f64,
    l1: f64,
) -> Result<()> {
    check_lr("lr", lr)?;
    check_eps("eps", eps)?;
    check_betas(beta1, beta2)?;
    check_min("weight_decay", weight_decay, "weight_decay")?;
    check_min("l1", l1, "l1")
}

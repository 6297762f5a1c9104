//! Adagrad.

use super::{Algo, GroupHp, KernelDesc, check_lr, check_min};
use crate::error::{Error, Result};

/// Adagrad (Duchi et al., 2011), mirroring `torch.optim.Adagrad`.
///
/// ```text
/// input: lr, lr_decay, weight_decay, l1, initial_accumulator_value, eps, maximize
/// sum_0 = initial_accumulator_value
/// for t = 1, 2, ...
///     g = grad * grad_scale;  if maximize { g = -g }
///     g = g + weight_decay * p + l1 * sign(p)
///     clr = lr / (1 + (t - 1) * lr_decay)
///     sum = sum + g^2
///     p = p - clr * g / (sqrt(sum) + eps)
/// ```
///
/// State: `sum`.
///
/// # Example
/// ```
/// use wgpu_optim::optim::{AdagradConfig, OptimizerSpec};
/// let spec = OptimizerSpec::adagrad(AdagradConfig { lr_decay: 1e-4, ..Default::default() });
/// assert!(spec.algorithm().validate().is_ok());
/// ```
///
/// # Errors
/// `lr < 0`, `lr_decay < 0`, `weight_decay < 0`, `l1 < 0`,
/// `initial_accumulator_value < 0`, `eps < 0`, NaN or infinite values.
///
/// # Differences from PyTorch
/// `l1` is an extension. `eps` is added outside the square root, as in PyTorch
/// (Keras adds it elsewhere).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdagradConfig {
    /// Learning rate (default 1e-2).
    pub lr: f64,
    /// Learning-rate decay (default 0).
    pub lr_decay: f64,
    /// L2 penalty (default 0).
    pub weight_decay: f64,
    /// L1 penalty (default 0; not in PyTorch).
    pub l1: f64,
    /// Initial value of `sum` (default 0).
    pub initial_accumulator_value: f64,
    /// Added to the denominator (default 1e-10).
    pub eps: f64,
    /// Maximize the objective (default false).
    pub maximize: bool,
}

impl Default for AdagradConfig {
    fn default() -> Self {
        AdagradConfig {
            lr: 1e-2,
            lr_decay: 0.0,
            weight_decay: 0.0,
            l1: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
            maximize: false,
        }
    }
}

/// One param group's row of `adagrad.wgsl`'s uniform table (32 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AdagradGroup {
    /// lr / (1 + (t - 1) * lr_decay), from f64.
    pub clr: f32,
    /// L2 penalty.
    pub weight_decay: f32,
    /// L1 penalty.
    pub l1: f32,
    /// eps.
    pub eps: f32,
    /// Gradient multiplier.
    pub grad_scale: f32,
    /// Learning rate (for the device-side recomputation after skipped steps).
    pub lr: f32,
    /// lr_decay.
    pub lr_decay: f32,
    /// Host step count t (1-based).
    pub t: u32,
}

impl Algo for AdagradConfig {
    fn validate(&self) -> Result<()> {
        check_lr("lr", self.lr)?;
        check_min("lr_decay", self.lr_decay, "lr_decay")?;
        check_min("weight_decay", self.weight_decay, "weight_decay")?;
        check_min("l1", self.l1, "l1")?;
        check_min(
            "initial_accumulator_value",
            self.initial_accumulator_value,
            "initial_accumulator_value",
        )?;
        if !(self.eps >= 0.0 && self.eps.is_finite()) {
            return Err(Error::invalid(
                "eps",
                self.eps,
                "a finite number >= 0",
                format!("Invalid epsilon value: {}", self.eps),
            ));
        }
        Ok(())
    }
    fn hp(&self) -> GroupHp {
        GroupHp {
            lr: self.lr,
            weight_decay: self.weight_decay,
            l1: self.l1,
        }
    }
    fn kernel(&self) -> KernelDesc {
        KernelDesc {
            name: "adagrad",
            source: include_str!("../../shaders/adagrad.wgsl"),
            slots: &["sum"],
            active: vec![("sum", self.initial_accumulator_value as f32)],
            constants: vec![("MAXIMIZE", self.maximize as u8 as f64)],
        }
    }
    fn row(&self, hp: &GroupHp, t: u64, grad_scale: f64) -> Vec<u8> {
        let g = AdagradGroup {
            clr: (hp.lr / (1.0 + (t as f64 - 1.0) * self.lr_decay)) as f32,
            weight_decay: hp.weight_decay as f32,
            l1: hp.l1 as f32,
            eps: self.eps as f32,
            grad_scale: grad_scale as f32,
            lr: hp.lr as f32,
            lr_decay: self.lr_decay as f32,
            t: t as u32,
        };
        bytemuck::bytes_of(&g).to_vec()
    }
}

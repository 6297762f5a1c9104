//! RMSprop.

use super::{Algo, GroupHp, KernelDesc, check_lr, check_min};
use crate::error::{Error, Result};

/// RMSprop (Hinton, 2012), mirroring `torch.optim.RMSprop`.
///
/// ```text
/// input: lr, alpha, eps, weight_decay, l1, momentum, centered, maximize
/// square_avg_0 = 0, grad_avg_0 = 0, b_0 = 0
/// for t = 1, 2, ...
///     g = grad * grad_scale;  if maximize { g = -g }
///     g = g + weight_decay * p + l1 * sign(p)
///     square_avg = alpha * square_avg + (1 - alpha) * g^2
///     if centered { grad_avg = lerp(grad_avg, g, 1 - alpha); avg = sqrt(square_avg - grad_avg^2) }
///     else        { avg = sqrt(square_avg) }
///     avg = avg + eps
///     if momentum > 0 { b = momentum * b + g / avg; p = p - lr * b }
///     else            { p = p - lr * g / avg }
/// ```
///
/// State: `square_avg`, `momentum_buffer` when `momentum > 0`, `grad_avg`
/// when `centered`.
///
/// # Example
/// ```
/// use wgpu_optim::optim::{OptimizerSpec, RmsPropConfig};
/// let spec = OptimizerSpec::rmsprop(RmsPropConfig { centered: true, momentum: 0.9, ..Default::default() });
/// assert!(spec.algorithm().validate().is_ok());
/// ```
///
/// # Errors
/// `lr < 0`, `alpha < 0`, `eps < 0`, `momentum < 0`, `weight_decay < 0`,
/// `l1 < 0`, NaN or infinite values.
///
/// # Differences from PyTorch
/// `l1` is an extension. As in PyTorch, centered RMSprop can take the square
/// root of a slightly negative number when rounding makes
/// `square_avg < grad_avg^2`; both then produce NaN.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RmsPropConfig {
    /// Learning rate (default 1e-2).
    pub lr: f64,
    /// Smoothing constant (default 0.99).
    pub alpha: f64,
    /// Added to the denominator (default 1e-8).
    pub eps: f64,
    /// L2 penalty (default 0).
    pub weight_decay: f64,
    /// L1 penalty (default 0; not in PyTorch).
    pub l1: f64,
    /// Momentum factor (default 0).
    pub momentum: f64,
    /// Normalize by the estimated variance of the gradient (default false).
    pub centered: bool,
    /// Maximize the objective (default false).
    pub maximize: bool,
}

impl Default for RmsPropConfig {
    fn default() -> Self {
        RmsPropConfig {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            l1: 0.0,
            momentum: 0.0,
            centered: false,
            maximize: false,
        }
    }
}

/// One param group's row of `rmsprop.wgsl`'s uniform table (32 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct RmsPropGroup {
    /// Learning rate.
    pub lr: f32,
    /// alpha.
    pub alpha: f32,
    /// 1 - alpha, from f64.
    pub one_minus_alpha: f32,
    /// eps.
    pub eps: f32,
    /// L2 penalty.
    pub weight_decay: f32,
    /// L1 penalty.
    pub l1: f32,
    /// Momentum.
    pub momentum: f32,
    /// Gradient multiplier.
    pub grad_scale: f32,
}

impl Algo for RmsPropConfig {
    fn validate(&self) -> Result<()> {
        check_lr("lr", self.lr)?;
        if !(self.eps >= 0.0 && self.eps.is_finite()) {
            return Err(Error::invalid(
                "eps",
                self.eps,
                "a finite number >= 0",
                format!("Invalid epsilon value: {}", self.eps),
            ));
        }
        check_min("momentum", self.momentum, "momentum")?;
        check_min("weight_decay", self.weight_decay, "weight_decay")?;
        check_min("alpha", self.alpha, "alpha")?;
        check_min("l1", self.l1, "l1")
    }
    fn hp(&self) -> GroupHp {
        GroupHp {
            lr: self.lr,
            weight_decay: self.weight_decay,
            l1: self.l1,
        }
    }
    fn kernel(&self) -> KernelDesc {
        let mut active = vec![("square_avg", 0.0)];
        if self.momentum > 0.0 {
            active.push(("momentum_buffer", 0.0));
        }
        if self.centered {
            active.push(("grad_avg", 0.0));
        }
        KernelDesc {
            name: "rmsprop",
            source: include_str!("../../shaders/rmsprop.wgsl"),
            slots: &["square_avg", "momentum_buffer", "grad_avg"],
            active,
            constants: vec![
                ("MAXIMIZE", self.maximize as u8 as f64),
                ("CENTERED", self.centered as u8 as f64),
                ("MOMENTUM", (self.momentum > 0.0) as u8 as f64),
            ],
        }
    }
    fn row(&self, hp: &GroupHp, _t: u64, grad_scale: f64) -> Vec<u8> {
        let g = RmsPropGroup {
            lr: hp.lr as f32,
            alpha: self.alpha as f32,
            one_minus_alpha: (1.0 - self.alpha) as f32,
            eps: self.eps as f32,
            weight_decay: hp.weight_decay as f32,
            l1: hp.l1 as f32,
            momentum: self.momentum as f32,
            grad_scale: grad_scale as f32,
        };
        bytemuck::bytes_of(&g).to_vec()
    }
}

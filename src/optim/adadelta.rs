//! Adadelta.

use super::{Algo, GroupHp, KernelDesc, check_lr, check_min, check_unit};
use crate::error::{Error, Result};

/// Adadelta (Zeiler, 2012), mirroring `torch.optim.Adadelta`.
///
/// ```text
/// input: lr, rho, eps, weight_decay, l1, maximize
/// square_avg_0 = 0, acc_delta_0 = 0
/// for t = 1, 2, ...
///     g = grad * grad_scale;  if maximize { g = -g }
///     g = g + weight_decay * p + l1 * sign(p)
///     square_avg = rho * square_avg + (1 - rho) * g^2
///     delta = sqrt(acc_delta + eps) / sqrt(square_avg + eps) * g
///     acc_delta = rho * acc_delta + (1 - rho) * delta^2
///     p = p - lr * delta
/// ```
///
/// State: `square_avg`, `acc_delta`.
///
/// # Example
/// ```
/// use wgpu_optim::optim::{AdadeltaConfig, OptimizerSpec};
/// let spec = OptimizerSpec::adadelta(AdadeltaConfig::default());
/// assert!(spec.algorithm().validate().is_ok());
/// ```
///
/// # Errors
/// `lr < 0`, `rho` outside `[0, 1]`, `eps < 0`, `weight_decay < 0`, `l1 < 0`,
/// NaN or infinite values.
///
/// # Differences from PyTorch
/// `l1` is an extension. `eps` sits inside both square roots, as in PyTorch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdadeltaConfig {
    /// Scale of the update (default 1.0).
    pub lr: f64,
    /// Coefficient of the running averages (default 0.9).
    pub rho: f64,
    /// Added inside both square roots (default 1e-6).
    pub eps: f64,
    /// L2 penalty (default 0).
    pub weight_decay: f64,
    /// L1 penalty (default 0; not in PyTorch).
    pub l1: f64,
    /// Maximize the objective (default false).
    pub maximize: bool,
}

impl Default for AdadeltaConfig {
    fn default() -> Self {
        AdadeltaConfig {
            lr: 1.0,
            rho: 0.9,
            eps: 1e-6,
            weight_decay: 0.0,
            l1: 0.0,
            maximize: false,
        }
    }
}

/// One param group's row of `adadelta.wgsl`'s uniform table (32 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AdadeltaGroup {
    /// Learning rate.
    pub lr: f32,
    /// rho.
    pub rho: f32,
    /// 1 - rho, from f64.
    pub one_minus_rho: f32,
    /// eps.
    pub eps: f32,
    /// L2 penalty.
    pub weight_decay: f32,
    /// L1 penalty.
    pub l1: f32,
    /// Gradient multiplier.
    pub grad_scale: f32,
    /// Padding.
    pub _pad: f32,
}

impl Algo for AdadeltaConfig {
    fn validate(&self) -> Result<()> {
        check_lr("lr", self.lr)?;
        check_unit(
            "rho",
            self.rho,
            true,
            format!("Invalid rho value: {}", self.rho),
        )?;
        if !(self.eps >= 0.0 && self.eps.is_finite()) {
            return Err(Error::invalid(
                "eps",
                self.eps,
                "a finite number >= 0",
                format!("Invalid epsilon value: {}", self.eps),
            ));
        }
        check_min("weight_decay", self.weight_decay, "weight_decay")?;
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
        KernelDesc {
            name: "adadelta",
            source: include_str!("../../shaders/adadelta.wgsl"),
            slots: &["square_avg", "acc_delta"],
            active: vec![("square_avg", 0.0), ("acc_delta", 0.0)],
            constants: vec![("MAXIMIZE", self.maximize as u8 as f64)],
        }
    }
    fn row(&self, hp: &GroupHp, _t: u64, grad_scale: f64) -> Vec<u8> {
        let g = AdadeltaGroup {
            lr: hp.lr as f32,
            rho: self.rho as f32,
            one_minus_rho: (1.0 - self.rho) as f32,
            eps: self.eps as f32,
            weight_decay: hp.weight_decay as f32,
            l1: hp.l1 as f32,
            grad_scale: grad_scale as f32,
            _pad: 0.0,
        };
        bytemuck::bytes_of(&g).to_vec()
    }
}

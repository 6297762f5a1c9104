//! Stochastic gradient descent with momentum, dampening and Nesterov.

use super::{Algo, GroupHp, KernelDesc, check_lr, check_min};
use crate::error::{Error, Result};

/// SGD, mirroring `torch.optim.SGD`.
///
/// ```text
/// input: lr, momentum, dampening, weight_decay, l1, nesterov, maximize
/// for t = 1, 2, ...
///     g = grad * grad_scale;  if maximize { g = -g }
///     g = g + weight_decay * p + l1 * sign(p)
///     if momentum != 0
///         if t == 1 { b = g } else { b = momentum * b + (1 - dampening) * g }
///         if nesterov { g = g + momentum * b } else { g = b }
///     p = p - lr * g
/// ```
///
/// State: `momentum_buffer` when `momentum != 0`.
///
/// # Example
/// ```
/// use wgpu_optim::optim::{OptimizerSpec, SgdConfig};
/// let spec = OptimizerSpec::sgd(SgdConfig { lr: 0.1, momentum: 0.9, nesterov: true, ..Default::default() });
/// assert!(spec.algorithm().validate().is_ok());
/// ```
///
/// # Errors
/// `lr < 0`, `momentum < 0`, `dampening < 0`, `weight_decay < 0`, `l1 < 0`,
/// NaN or infinite values, and `nesterov` without `momentum > 0` and
/// `dampening == 0` ("Nesterov momentum requires a momentum and zero dampening").
///
/// # Differences from PyTorch
/// - `l1` is an extension (not in PyTorch).
/// - The first step (buffer = gradient) is the optimizer's first step; PyTorch
///   decides per tensor by whether a buffer exists. They agree unless tensors
///   are added to a running PyTorch optimizer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdConfig {
    /// Learning rate (default 1e-3).
    pub lr: f64,
    /// Momentum factor (default 0).
    pub momentum: f64,
    /// Dampening of the momentum (default 0).
    pub dampening: f64,
    /// L2 penalty (default 0).
    pub weight_decay: f64,
    /// L1 penalty (default 0; not in PyTorch).
    pub l1: f64,
    /// Nesterov momentum (default false).
    pub nesterov: bool,
    /// Maximize the objective (default false).
    pub maximize: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            l1: 0.0,
            nesterov: false,
            maximize: false,
        }
    }
}

/// One param group's row of `sgd.wgsl`'s uniform table (32 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SgdGroup {
    /// Learning rate.
    pub lr: f32,
    /// Momentum.
    pub momentum: f32,
    /// 1 - dampening, from f64.
    pub one_minus_dampening: f32,
    /// L2 penalty.
    pub weight_decay: f32,
    /// L1 penalty.
    pub l1: f32,
    /// Gradient multiplier.
    pub grad_scale: f32,
    /// 1 on the first step (buffer = gradient), else 0.
    pub first_step: u32,
    /// Host step count t (1-based).
    pub t: u32,
}

impl Algo for SgdConfig {
    fn validate(&self) -> Result<()> {
        check_lr("lr", self.lr)?;
        check_min("momentum", self.momentum, "momentum")?;
        check_min("dampening", self.dampening, "dampening")?;
        check_min("weight_decay", self.weight_decay, "weight_decay")?;
        check_min("l1", self.l1, "l1")?;
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(Error::invalid(
                "nesterov",
                format!(
                    "true (momentum = {}, dampening = {})",
                    self.momentum, self.dampening
                ),
                "nesterov only with momentum > 0 and dampening == 0",
                "Nesterov momentum requires a momentum and zero dampening",
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
        let has_momentum = self.momentum != 0.0;
        KernelDesc {
            name: "sgd",
            source: include_str!("../../shaders/sgd.wgsl"),
            slots: &["momentum_buffer"],
            active: if has_momentum {
                vec![("momentum_buffer", 0.0)]
            } else {
                vec![]
            },
            constants: vec![
                ("MAXIMIZE", self.maximize as u8 as f64),
                ("MOMENTUM", has_momentum as u8 as f64),
                ("NESTEROV", self.nesterov as u8 as f64),
            ],
        }
    }
    fn row(&self, hp: &GroupHp, t: u64, grad_scale: f64) -> Vec<u8> {
        let g = SgdGroup {
            lr: hp.lr as f32,
            momentum: self.momentum as f32,
            one_minus_dampening: (1.0 - self.dampening) as f32,
            weight_decay: hp.weight_decay as f32,
            l1: hp.l1 as f32,
            grad_scale: grad_scale as f32,
            first_step: (t == 1) as u32,
            t: t as u32,
        };
        bytemuck::bytes_of(&g).to_vec()
    }
}

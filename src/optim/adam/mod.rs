//! Adam, AdamW and AMSGrad: configs, the uniform row with its host-side f64
//! scalars, the kernel (`update.wgsl`) and the f64 reference (`reference.rs`).

mod reference;

use super::{Algo, KernelDesc, check_adam_like, decay_terms, hyperparameters};
use crate::error::Result;
use crate::optim::state::{QMap, StateFormats};

/// Adam (Kingma & Ba, 2015) with L2 weight decay, mirroring `torch.optim.Adam`.
///
/// ```text
/// input: lr, beta1, beta2, eps, weight_decay, l1, amsgrad, maximize
/// m_0 = 0, v_0 = 0, v_max_0 = 0
/// for t = 1, 2, ...
///     g = grad * grad_scale;  if maximize { g = -g }
///     g = g + weight_decay * p + l1 * sign(p)
///     m = lerp(m, g, 1 - beta1)
///     v = beta2 * v + (1 - beta2) * g^2
///     if amsgrad { v_max = max(v_max, v); v_use = v_max } else { v_use = v }
///     p = p - lr / (1 - beta1^t) * m / (sqrt(v_use) / sqrt(1 - beta2^t) + eps)
/// ```
///
/// State: `exp_avg`, `exp_avg_sq`, and `max_exp_avg_sq` when `amsgrad`.
///
/// Per param group: every numeric field (`lr`, `beta1`, `beta2`, `eps`,
/// `weight_decay`, `l1`); `amsgrad` and `maximize` are per optimizer.
///
/// # Example
/// ```
/// use wgpu_optim::optim::{AdamConfig, OptimizerSpec};
/// let spec = OptimizerSpec::adam(AdamConfig { lr: 3e-4, amsgrad: true, ..Default::default() });
/// assert!(spec.algorithm().validate().is_ok());
/// ```
///
/// # Errors
/// `lr < 0`, `eps < 0`, `beta1` or `beta2` outside `[0, 1)`, `weight_decay < 0`,
/// `l1 < 0`, or any NaN value or one not finite in f32.
///
/// # Differences from PyTorch
/// - `l1` is an extension (not in PyTorch): `l1 * sign(p)` is added to the
///   gradient next to the L2 term.
/// - Arithmetic is f32 on the device; the scalars that depend on `t`
///   (`lr / (1 - beta1^t)`, `sqrt(1 - beta2^t)`) are computed on the host in
///   f64, as PyTorch's non-capturable path does.
/// - No `capturable`, `differentiable`, `foreach`/`fused` switches: the step is
///   always fused. Complex tensors are not supported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Learning rate (default 1e-3).
    pub lr: f64,
    /// Coefficient of the running average of the gradient (default 0.9).
    pub beta1: f64,
    /// Coefficient of the running average of its square (default 0.999).
    pub beta2: f64,
    /// Added to the denominator (default 1e-8).
    pub eps: f64,
    /// L2 penalty added to the gradient (default 0).
    pub weight_decay: f64,
    /// L1 penalty (default 0; not in PyTorch).
    pub l1: f64,
    /// Use the AMSGrad variant (default false).
    pub amsgrad: bool,
    /// Maximize the objective (default false).
    pub maximize: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            l1: 0.0,
            amsgrad: false,
            maximize: false,
        }
    }
}

/// AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay,
/// mirroring `torch.optim.AdamW`.
///
/// ```text
/// as Adam, except that weight decay is not added to the gradient:
///     p = p * (1 - lr * weight_decay)      before the Adam update
/// ```
///
/// # Example
/// ```
/// use wgpu_optim::optim::{AdamWConfig, OptimizerSpec};
/// let spec = OptimizerSpec::adamw(AdamWConfig { lr: 3e-4, weight_decay: 0.1, ..Default::default() });
/// assert!(spec.algorithm().validate().is_ok());
/// ```
///
/// # Errors
/// As [`AdamConfig`].
///
/// # Differences from PyTorch
/// As [`AdamConfig`]; `l1` stays coupled (added to the gradient) in AdamW too.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    /// Learning rate (default 1e-3).
    pub lr: f64,
    /// Coefficient of the running average of the gradient (default 0.9).
    pub beta1: f64,
    /// Coefficient of the running average of its square (default 0.999).
    pub beta2: f64,
    /// Added to the denominator (default 1e-8).
    pub eps: f64,
    /// Decoupled weight decay (default 0.01).
    pub weight_decay: f64,
    /// L1 penalty (default 0; not in PyTorch).
    pub l1: f64,
    /// Use the AMSGrad variant (default false).
    pub amsgrad: bool,
    /// Maximize the objective (default false).
    pub maximize: bool,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        let a = AdamConfig::default();
        AdamWConfig {
            lr: a.lr,
            beta1: a.beta1,
            beta2: a.beta2,
            eps: a.eps,
            weight_decay: 1e-2,
            l1: 0.0,
            amsgrad: false,
            maximize: false,
        }
    }
}

impl From<AdamWConfig> for AdamConfig {
    fn from(c: AdamWConfig) -> Self {
        AdamConfig {
            lr: c.lr,
            beta1: c.beta1,
            beta2: c.beta2,
            eps: c.eps,
            weight_decay: c.weight_decay,
            l1: c.l1,
            amsgrad: c.amsgrad,
            maximize: c.maximize,
        }
    }
}

hyperparameters!(AdamConfig {
    lr,
    beta1,
    beta2,
    eps,
    weight_decay,
    l1
});
hyperparameters!(AdamWConfig {
    lr,
    beta1,
    beta2,
    eps,
    weight_decay,
    l1
});

/// One param group's row of `update.wgsl`'s uniform table (64 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct AdamRow {
    beta1: f32,
    /// 1 - beta1 (the lerp weight), rounded from f64.
    one_minus_beta1: f32,
    beta2: f32,
    /// 1 - beta2, rounded from f64.
    one_minus_beta2: f32,
    eps: f32,
    /// L2 weight decay (Adam only; 0 for AdamW).
    weight_decay: f32,
    l1: f32,
    /// lr / (1 - beta1^t), from f64.
    step_size: f32,
    /// sqrt(1 - beta2^t), from f64.
    bias_correction2_sqrt: f32,
    /// 1 - lr * weight_decay (AdamW) or 1.
    decay_factor: f32,
    /// Learning rate (for the device-side recomputation after skipped steps).
    lr: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
    _pad4: u32,
}

fn validate(c: &AdamConfig) -> Result<()> {
    check_adam_like(c.lr, c.eps, c.beta1, c.beta2, c.weight_decay, c.l1)
}

const SOURCE: &str = concat!(
    include_str!("../../gpu/common.wgsl"),
    include_str!("../prelude.wgsl"),
    include_str!("update.wgsl")
);

fn kernel(c: &AdamConfig, decoupled: bool) -> KernelDesc {
    let mut active = vec![("exp_avg", 0.0), ("exp_avg_sq", 0.0)];
    if c.amsgrad {
        active.push(("max_exp_avg_sq", 0.0));
    }
    KernelDesc {
        name: if decoupled { "adamw" } else { "adam" },
        source: SOURCE,
        slots: &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"],
        formats: StateFormats::All(&[QMap::Signed, QMap::Unsigned, QMap::Unsigned]),
        active,
        constants: vec![
            ("MAXIMIZE", c.maximize as u8 as f64),
            ("DECOUPLED", decoupled as u8 as f64),
            ("AMSGRAD", c.amsgrad as u8 as f64),
        ],
    }
}

fn row(c: &AdamConfig, t: u64, decoupled: bool) -> Vec<u8> {
    let tf = t as f64;
    let bias_correction1 = 1.0 - c.beta1.powf(tf);
    let bias_correction2 = 1.0 - c.beta2.powf(tf);
    let (weight_decay, decay_factor) = decay_terms(c.lr, c.weight_decay, decoupled);
    let r = AdamRow {
        beta1: c.beta1 as f32,
        one_minus_beta1: (1.0 - c.beta1) as f32,
        beta2: c.beta2 as f32,
        one_minus_beta2: (1.0 - c.beta2) as f32,
        eps: c.eps as f32,
        weight_decay,
        l1: c.l1 as f32,
        step_size: (c.lr / bias_correction1) as f32,
        bias_correction2_sqrt: bias_correction2.sqrt() as f32,
        decay_factor,
        lr: c.lr as f32,
        _pad0: 0,
        _pad1: 0,
        _pad2: 0,
        _pad3: 0,
        _pad4: 0,
    };
    bytemuck::bytes_of(&r).to_vec()
}

impl Algo for AdamConfig {
    fn validate(&self) -> Result<()> {
        validate(self)
    }
    fn kernel(&self) -> KernelDesc {
        kernel(self, false)
    }
    fn row(&self, t: u64) -> Vec<u8> {
        row(self, t, false)
    }
    fn momentum_name(&self) -> Option<&'static str> {
        Some("beta1")
    }
    fn reference(&self, t: f64, p: &mut f64, g: f64, st: &mut [f64]) {
        reference::element(self, false, t, p, g, st)
    }
}

impl Algo for AdamWConfig {
    fn validate(&self) -> Result<()> {
        validate(&(*self).into())
    }
    fn kernel(&self) -> KernelDesc {
        kernel(&(*self).into(), true)
    }
    fn row(&self, t: u64) -> Vec<u8> {
        row(&(*self).into(), t, true)
    }
    fn momentum_name(&self) -> Option<&'static str> {
        Some("beta1")
    }
    fn reference(&self, t: f64, p: &mut f64, g: f64, st: &mut [f64]) {
        reference::element(&(*self).into(), true, t, p, g, st)
    }
}

#[cfg(test)]
mod tests {
    use crate::gpu::layout_check::{assert_row_matches, rust_struct};

    #[test]
    fn adam_row_matches_its_wgsl_struct() {
        assert_row_matches(
            &crate::gpu::layout_check::kernel_source(&super::AdamConfig::default()),
            rust_struct!(super::AdamRow {
                beta1,
                one_minus_beta1,
                beta2,
                one_minus_beta2,
                eps,
                weight_decay,
                l1,
                step_size,
                bias_correction2_sqrt,
                decay_factor,
                lr,
                _pad0,
                _pad1,
                _pad2,
                _pad3,
                _pad4
            }),
        );
    }
}

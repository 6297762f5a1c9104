//! Adamax: config, uniform row, kernel (`update.wgsl`) and f64 reference
//! (`reference.rs`).

mod reference;

use super::{Algo, KernelDesc, check_adam_like, hyperparameters};
use crate::error::Result;
use crate::optim::state::{QMap, StateFormats};

/// Adamax (Kingma & Ba, 2015, section 7.1): Adam with the infinity norm,
/// mirroring `torch.optim.Adamax`.
///
/// ```text
/// input: lr, beta1, beta2, eps, weight_decay, l1, maximize
/// m_0 = 0, u_0 = 0
/// for t = 1, 2, ...
///     g = grad * grad_scale;  if maximize { g = -g }
///     g = g + weight_decay * p + l1 * sign(p)
///     m = lerp(m, g, 1 - beta1)
///     u = max(beta2 * u, |g| + eps)
///     p = p - lr / (1 - beta1^t) * m / u
/// ```
///
/// State: `exp_avg`, `exp_inf` (PyTorch's names).
///
/// Per param group: every numeric field (`lr`, `beta1`, `beta2`, `eps`,
/// `weight_decay`, `l1`); `maximize` is per optimizer.
///
/// # Example
/// ```
/// use wgpu_optim::optim::{AdamaxConfig, OptimizerSpec};
/// let spec = OptimizerSpec::adamax(AdamaxConfig { lr: 2e-3, ..Default::default() });
/// assert!(spec.algorithm().validate().is_ok());
/// ```
///
/// # Errors
/// `lr < 0`, `eps < 0`, `beta1` or `beta2` outside `[0, 1)`,
/// `weight_decay < 0`, `l1 < 0`, or any NaN value or one not finite in f32.
///
/// # Differences from PyTorch
/// - `l1` is an extension (not in PyTorch).
/// - `lr / (1 - beta1^t)` is computed on the host in f64 (PyTorch's
///   non-capturable path); the device computes in f32.
/// - No `foreach`/`capturable`/`differentiable` switches; complex tensors are
///   not supported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamaxConfig {
    /// Learning rate (default 2e-3).
    pub lr: f64,
    /// Coefficient of the running average of the gradient (default 0.9).
    pub beta1: f64,
    /// Decay of the infinity norm (default 0.999).
    pub beta2: f64,
    /// Added to |g| (default 1e-8).
    pub eps: f64,
    /// L2 penalty (default 0).
    pub weight_decay: f64,
    /// L1 penalty (default 0; not in PyTorch).
    pub l1: f64,
    /// Maximize the objective (default false).
    pub maximize: bool,
}

impl Default for AdamaxConfig {
    fn default() -> Self {
        AdamaxConfig {
            lr: 2e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            l1: 0.0,
            maximize: false,
        }
    }
}

hyperparameters!(AdamaxConfig {
    lr,
    beta1,
    beta2,
    eps,
    weight_decay,
    l1
});

/// One param group's row of `update.wgsl`'s uniform table (32 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct AdamaxRow {
    /// 1 - beta1 (the lerp weight), from f64.
    one_minus_beta1: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    l1: f32,
    /// lr / (1 - beta1^t), from f64.
    clr: f32,
    /// Learning rate (for the device-side recomputation after skipped steps).
    lr: f32,
}

const SOURCE: &str = concat!(
    include_str!("../../gpu/common.wgsl"),
    include_str!("../prelude.wgsl"),
    include_str!("update.wgsl")
);

impl Algo for AdamaxConfig {
    fn validate(&self) -> Result<()> {
        check_adam_like(
            self.lr,
            self.eps,
            self.beta1,
            self.beta2,
            self.weight_decay,
            self.l1,
        )
    }
    fn kernel(&self) -> KernelDesc {
        KernelDesc {
            name: "adamax",
            source: SOURCE,
            slots: &["exp_avg", "exp_inf"],
            formats: StateFormats::All(&[QMap::Signed, QMap::Unsigned]),
            active: vec![("exp_avg", 0.0), ("exp_inf", 0.0)],
            constants: vec![("MAXIMIZE", self.maximize as u8 as f64)],
        }
    }
    fn row(&self, t: u64) -> Vec<u8> {
        let r = AdamaxRow {
            one_minus_beta1: (1.0 - self.beta1) as f32,
            beta1: self.beta1 as f32,
            beta2: self.beta2 as f32,
            eps: self.eps as f32,
            weight_decay: self.weight_decay as f32,
            l1: self.l1 as f32,
            clr: (self.lr / (1.0 - self.beta1.powf(t as f64))) as f32,
            lr: self.lr as f32,
        };
        bytemuck::bytes_of(&r).to_vec()
    }
    fn momentum_name(&self) -> Option<&'static str> {
        Some("beta1")
    }
    fn reference(&self, t: f64, p: &mut f64, g: f64, st: &mut [f64]) {
        reference::element(self, t, p, g, st)
    }
}

#[cfg(test)]
mod tests {
    use crate::gpu::layout_check::{assert_row_matches, rust_struct};

    #[test]
    fn adamax_row_matches_its_wgsl_struct() {
        assert_row_matches(
            &crate::gpu::layout_check::kernel_source(&super::AdamaxConfig::default()),
            rust_struct!(super::AdamaxRow {
                one_minus_beta1,
                beta1,
                beta2,
                eps,
                weight_decay,
                l1,
                clr,
                lr
            }),
        );
    }
}

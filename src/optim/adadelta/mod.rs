//! Adadelta: config, uniform row, kernel (`update.wgsl`) and f64 reference
//! (`reference.rs`).

mod reference;

use super::{Algo, KernelDesc, check_eps, check_lr, check_min, check_unit, hyperparameters};
use crate::error::Result;
use crate::optim::state::{QMap, StateFormats};

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
/// Per param group: every numeric field (`lr`, `rho`, `eps`,
/// `weight_decay`, `l1`); `maximize` is per optimizer.
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

hyperparameters!(AdadeltaConfig {
    lr,
    rho,
    eps,
    weight_decay,
    l1
});

/// One param group's row of `update.wgsl`'s uniform table (32 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct AdadeltaRow {
    lr: f32,
    rho: f32,
    /// 1 - rho, from f64.
    one_minus_rho: f32,
    eps: f32,
    weight_decay: f32,
    l1: f32,
    _pad0: u32,
    _pad1: u32,
}

const SOURCE: &str = concat!(
    include_str!("../../gpu/common.wgsl"),
    include_str!("../prelude.wgsl"),
    include_str!("update.wgsl")
);

impl Algo for AdadeltaConfig {
    fn validate(&self) -> Result<()> {
        check_lr("lr", self.lr)?;
        check_unit(
            "rho",
            self.rho,
            true,
            format!("Invalid rho value: {}", self.rho),
        )?;
        check_eps("eps", self.eps)?;
        check_min("weight_decay", self.weight_decay, "weight_decay")?;
        check_min("l1", self.l1, "l1")
    }
    fn kernel(&self) -> KernelDesc {
        KernelDesc {
            name: "adadelta",
            source: SOURCE,
            slots: &["square_avg", "acc_delta"],
            formats: StateFormats::All(&[QMap::Unsigned, QMap::Unsigned]),
            active: vec![("square_avg", 0.0), ("acc_delta", 0.0)],
            constants: vec![("MAXIMIZE", self.maximize as u8 as f64)],
        }
    }
    fn row(&self, _t: u64) -> Vec<u8> {
        let r = AdadeltaRow {
            lr: self.lr as f32,
            rho: self.rho as f32,
            one_minus_rho: (1.0 - self.rho) as f32,
            eps: self.eps as f32,
            weight_decay: self.weight_decay as f32,
            l1: self.l1 as f32,
            _pad0: 0,
            _pad1: 0,
        };
        bytemuck::bytes_of(&r).to_vec()
    }
    fn reference(&self, t: f64, p: &mut f64, g: f64, st: &mut [f64]) {
        reference::element(self, t, p, g, st)
    }
}

#[cfg(test)]
mod tests {
    use crate::gpu::layout_check::{assert_row_matches, rust_struct};

    #[test]
    fn adadelta_row_matches_its_wgsl_struct() {
        assert_row_matches(
            &crate::gpu::layout_check::kernel_source(&super::AdadeltaConfig::default()),
            rust_struct!(super::AdadeltaRow {
                lr,
                rho,
                one_minus_rho,
                eps,
                weight_decay,
                l1,
                _pad0,
                _pad1
            }),
        );
    }
}

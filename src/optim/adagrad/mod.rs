//! Adagrad: config, uniform row, kernel (`update.wgsl`) and f64 reference
//! (`reference.rs`).

mod reference;

use super::{Algo, KernelDesc, check_eps, check_lr, check_min, hyperparameters};
use crate::error::Result;
use crate::optim::state::{QMap, StateFormats};

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
/// Per param group: every numeric field (`lr`, `lr_decay`, `weight_decay`,
/// `l1`, `initial_accumulator_value`, `eps`); `maximize` is per optimizer.
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

hyperparameters!(AdagradConfig {
    lr,
    lr_decay,
    weight_decay,
    l1,
    initial_accumulator_value,
    eps
});

/// One param group's row of `update.wgsl`'s uniform table (32 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct AdagradRow {
    /// lr / (1 + (t - 1) * lr_decay), from f64.
    clr: f32,
    weight_decay: f32,
    l1: f32,
    eps: f32,
    /// Learning rate (for the device-side recomputation after skipped steps).
    lr: f32,
    lr_decay: f32,
    _pad0: u32,
    _pad1: u32,
}

const SOURCE: &str = concat!(
    include_str!("../../gpu/common.wgsl"),
    include_str!("../prelude.wgsl"),
    include_str!("update.wgsl")
);

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
        check_eps("eps", self.eps)
    }
    fn kernel(&self) -> KernelDesc {
        KernelDesc {
            name: "adagrad",
            source: SOURCE,
            slots: &["sum"],
            formats: StateFormats::All(&[QMap::Signed]),
            active: vec![("sum", self.initial_accumulator_value)],
            constants: vec![("MAXIMIZE", self.maximize as u8 as f64)],
        }
    }
    fn row(&self, t: u64) -> Vec<u8> {
        let r = AdagradRow {
            clr: (self.lr / (1.0 + (t as f64 - 1.0) * self.lr_decay)) as f32,
            weight_decay: self.weight_decay as f32,
            l1: self.l1 as f32,
            eps: self.eps as f32,
            lr: self.lr as f32,
            lr_decay: self.lr_decay as f32,
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
    fn adagrad_row_matches_its_wgsl_struct() {
        assert_row_matches(
            &crate::gpu::layout_check::kernel_source(&super::AdagradConfig::default()),
            rust_struct!(super::AdagradRow {
                clr,
                weight_decay,
                l1,
                eps,
                lr,
                lr_decay,
                _pad0,
                _pad1
            }),
        );
    }
}

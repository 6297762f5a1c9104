//! Lion: config, uniform row, kernel (`update.wgsl`) and f64 reference
//! (`reference.rs`).

mod reference;

use super::{Algo, KernelDesc, check_lr, check_min, check_unit, hyperparameters};
use crate::error::Result;
use crate::optim::state::{QMap, StateFormats};

/// Lion (Chen et al., 2023, "Symbolic Discovery of Optimization
/// Algorithms": the sign of an interpolated momentum), mirroring the
/// `lion-pytorch` package (`lion_pytorch.Lion`) and optax's `lion`.
///
/// ```text
/// input: lr, beta1, beta2, weight_decay, l1, maximize
/// m_0 = 0
/// for t = 1, 2, ...
///     g = grad * grad_scale;  if maximize { g = -g }
///     p = p * (1 - lr * weight_decay)
///     g = g + l1 * sign(p)
///     p = p - lr * sign(beta1 * m + (1 - beta1) * g)
///     m = beta2 * m + (1 - beta2) * g
/// ```
///
/// Every element moves by exactly `lr` (or 0), so Lion wants an lr 3-10x
/// smaller than AdamW's and a weight decay 3-10x larger (the paper's advice).
/// It keeps one state, half of Adam's memory.
///
/// State: `exp_avg` (lion-pytorch's name).
///
/// Per param group: every numeric field (`lr`, `beta1`, `beta2`,
/// `weight_decay`, `l1`); `maximize` is per optimizer.
///
/// # Example
/// ```
/// use wgpu_optim::optim::{LionConfig, OptimizerSpec};
/// let spec = OptimizerSpec::lion(LionConfig { lr: 3e-4, weight_decay: 0.1, ..Default::default() });
/// assert!(spec.algorithm().validate().is_ok());
/// ```
///
/// # Errors
/// `lr < 0`, `beta1` or `beta2` outside `[0, 1]`, `weight_decay < 0`,
/// `l1 < 0`, or any NaN value or one not finite in f32.
///
/// # Differences from lion-pytorch
/// - `l1` and `maximize` are extensions.
/// - lion-pytorch's `decoupled_weight_decay` switch (dividing
///   `weight_decay` by the initial lr) is not offered: pass the divided value.
/// - `lr = 0` is allowed (a frozen param group); lion-pytorch asserts `lr > 0`.
/// - The sign of the interpolation is taken in f32 on the device: where it
///   is within f32 rounding of 0 it may differ from an f64 run, moving that
///   element by `2 lr` the other way.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LionConfig {
    /// Learning rate (default 1e-4).
    pub lr: f64,
    /// Interpolation of the update's sign (default 0.9).
    pub beta1: f64,
    /// Decay of the momentum (default 0.99).
    pub beta2: f64,
    /// Decoupled weight decay (default 0).
    pub weight_decay: f64,
    /// L1 penalty (default 0; not in lion-pytorch).
    pub l1: f64,
    /// Maximize the objective (default false).
    pub maximize: bool,
}

impl Default for LionConfig {
    fn default() -> Self {
        LionConfig {
            lr: 1e-4,
            beta1: 0.9,
            beta2: 0.99,
            weight_decay: 0.0,
            l1: 0.0,
            maximize: false,
        }
    }
}

hyperparameters!(LionConfig {
    lr,
    beta1,
    beta2,
    weight_decay,
    l1
});

/// One param group's row of `update.wgsl`'s uniform table (32 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct LionRow {
    beta1: f32,
    /// 1 - beta1, from f64.
    one_minus_beta1: f32,
    beta2: f32,
    /// 1 - beta2, from f64.
    one_minus_beta2: f32,
    lr: f32,
    /// 1 - lr * weight_decay, from f64.
    decay_factor: f32,
    l1: f32,
    _pad0: u32,
}

const SOURCE: &str = concat!(
    include_str!("../../gpu/common.wgsl"),
    include_str!("../prelude.wgsl"),
    include_str!("update.wgsl")
);

impl Algo for LionConfig {
    fn validate(&self) -> Result<()> {
        check_lr("lr", self.lr)?;
        for (field, v) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            check_unit(field, v, true, format!("Invalid {field} value: {v}"))?;
        }
        check_min("weight_decay", self.weight_decay, "weight_decay")?;
        check_min("l1", self.l1, "l1")
    }
    fn kernel(&self) -> KernelDesc {
        KernelDesc {
            name: "lion",
            source: SOURCE,
            slots: &["exp_avg"],
            formats: StateFormats::All(&[QMap::Signed]),
            active: vec![("exp_avg", 0.0)],
            constants: vec![("MAXIMIZE", self.maximize as u8 as f64), ("DECOUPLED", 1.0)],
        }
    }
    fn row(&self, _t: u64) -> Vec<u8> {
        let r = LionRow {
            beta1: self.beta1 as f32,
            one_minus_beta1: (1.0 - self.beta1) as f32,
            beta2: self.beta2 as f32,
            one_minus_beta2: (1.0 - self.beta2) as f32,
            lr: self.lr as f32,
            decay_factor: (1.0 - self.lr * self.weight_decay) as f32,
            l1: self.l1 as f32,
            _pad0: 0,
        };
        bytemuck::bytes_of(&r).to_vec()
    }
    fn momentum_name(&self) -> Option<&'static str> {
        Some("beta1")
    }
    fn reference(&self, _t: f64, p: &mut f64, g: f64, st: &mut [f64]) {
        reference::element(self, p, g, st)
    }
}

#[cfg(test)]
mod tests {
    use crate::gpu::layout_check::{assert_row_matches, rust_struct};

    #[test]
    fn lion_row_matches_its_wgsl_struct() {
        assert_row_matches(
            &crate::gpu::layout_check::kernel_source(&super::LionConfig::default()),
            rust_struct!(super::LionRow {
                beta1,
                one_minus_beta1,
                beta2,
                one_minus_beta2,
                lr,
                decay_factor,
                l1,
                _pad0
            }),
        );
    }
}

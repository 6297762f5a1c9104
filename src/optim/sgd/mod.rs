//! Stochastic gradient descent with momentum, dampening and Nesterov: config,
//! uniform row, kernel (`update.wgsl`) and f64 reference (`reference.rs`).

mod reference;

use super::{Algo, KernelDesc, check_lr, check_min, hyperparameters};
use crate::error::{Error, Result};
use crate::optim::state::{QMap, StateFormats};

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
/// Per param group: `lr`, `momentum`, `dampening`, `weight_decay`, `l1`
/// (a group may not turn the momentum buffer on or off); `nesterov` and
/// `maximize` are per optimizer.
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

hyperparameters!(SgdConfig {
    lr,
    momentum,
    dampening,
    weight_decay,
    l1
});

/// One param group's row of `update.wgsl`'s uniform table (32 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct SgdRow {
    lr: f32,
    momentum: f32,
    /// 1 - dampening, from f64.
    one_minus_dampening: f32,
    weight_decay: f32,
    l1: f32,
    /// 1 on the first step (buffer = gradient), else 0.
    first_step: u32,
    _pad0: u32,
    _pad1: u32,
}

const SOURCE: &str = concat!(
    include_str!("../../gpu/common.wgsl"),
    include_str!("../prelude.wgsl"),
    include_str!("update.wgsl")
);

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
    fn kernel(&self) -> KernelDesc {
        let has_momentum = self.momentum != 0.0;
        KernelDesc {
            name: "sgd",
            source: SOURCE,
            slots: &["momentum_buffer"],
            formats: StateFormats::All(&[QMap::Signed]),
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
    fn row(&self, t: u64) -> Vec<u8> {
        let r = SgdRow {
            lr: self.lr as f32,
            momentum: self.momentum as f32,
            one_minus_dampening: (1.0 - self.dampening) as f32,
            weight_decay: self.weight_decay as f32,
            l1: self.l1 as f32,
            first_step: (t == 1) as u32,
            _pad0: 0,
            _pad1: 0,
        };
        bytemuck::bytes_of(&r).to_vec()
    }
    fn momentum_name(&self) -> Option<&'static str> {
        (self.momentum != 0.0).then_some("momentum")
    }
    fn reference(&self, t: f64, p: &mut f64, g: f64, st: &mut [f64]) {
        reference::element(self, t, p, g, st)
    }
}

#[cfg(test)]
mod tests {
    use crate::gpu::layout_check::{assert_row_matches, rust_struct};

    #[test]
    fn sgd_row_matches_its_wgsl_struct() {
        assert_row_matches(
            &crate::gpu::layout_check::kernel_source(&super::SgdConfig::default()),
            rust_struct!(super::SgdRow {
                lr,
                momentum,
                one_minus_dampening,
                weight_decay,
                l1,
                first_step,
                _pad0,
                _pad1
            }),
        );
    }
}

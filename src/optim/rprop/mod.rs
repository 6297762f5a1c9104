//! Rprop: config, uniform row, kernel (`update.wgsl`) and f64 reference
//! (`reference.rs`).

mod reference;

use super::{Algo, KernelDesc, check_lr, check_min, hyperparameters};
use crate::error::{Error, Result};
use crate::optim::state::StateFormats;

/// Rprop (Riedmiller & Braun, 1993: resilient backpropagation, the sign of
/// the gradient with a per-element step size), mirroring `torch.optim.Rprop`.
///
/// ```text
/// input: lr, etaminus, etaplus, step_size_min, step_size_max, weight_decay, l1, maximize
/// prev_0 = 0, step_size_0 = lr
/// for t = 1, 2, ...
///     g = grad * grad_scale;  if maximize { g = -g }
///     g = g + weight_decay * p + l1 * sign(p)
///     s = sign(g * prev)
///     step_size = clamp(step_size * (etaplus if s > 0, etaminus if s < 0, 1 if s == 0),
///                       step_size_min, step_size_max)
///     if s < 0 { g = 0 }
///     p = p - sign(g) * step_size
///     prev = g
/// ```
///
/// Rprop is meant for full-batch training: the sign of a noisy minibatch
/// gradient flips often and shrinks the steps.
///
/// State: `prev`, `step_size` (PyTorch's names; `step_size` starts at each
/// group's `lr`).
///
/// Per param group: every numeric field (`lr`, `etaminus`, `etaplus`,
/// `step_size_min`, `step_size_max`, `weight_decay`, `l1`); `maximize` is
/// per optimizer.
///
/// # Example
/// ```
/// use wgpu_optim::optim::{OptimizerSpec, RpropConfig};
/// let spec = OptimizerSpec::rprop(RpropConfig { etaminus: 0.4, ..Default::default() });
/// assert!(spec.algorithm().validate().is_ok());
/// ```
///
/// # Errors
/// `lr < 0`; not `0 < etaminus < 1 < etaplus` (torch's "Invalid eta
/// values"); `step_size_min < 0` or `step_size_max < step_size_min`;
/// `weight_decay < 0`, `l1 < 0`; or any NaN value or one not finite in f32.
///
/// # Differences from PyTorch
/// - `weight_decay` and `l1` are extensions (torch's Rprop has neither).
/// - The kernel takes `sign(g * prev)` as `sign(g) * sign(prev)`, which is
///   the same except where the f32 product would underflow to 0 (then torch
///   in f32 sees no sign change, the kernel does).
/// - torch does not check `step_sizes`; a negative minimum or a maximum
///   below the minimum is refused here.
/// - No `foreach`/`capturable`/`differentiable` switches; complex tensors are
///   not supported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RpropConfig {
    /// Learning rate: the initial step size (default 1e-2).
    pub lr: f64,
    /// Factor of the step size where the gradient changed sign (default 0.5).
    pub etaminus: f64,
    /// Factor of the step size where it kept its sign (default 1.2).
    pub etaplus: f64,
    /// Smallest step size (default 1e-6).
    pub step_size_min: f64,
    /// Largest step size (default 50).
    pub step_size_max: f64,
    /// L2 penalty (default 0; not in PyTorch).
    pub weight_decay: f64,
    /// L1 penalty (default 0; not in PyTorch).
    pub l1: f64,
    /// Maximize the objective (default false).
    pub maximize: bool,
}

impl Default for RpropConfig {
    fn default() -> Self {
        RpropConfig {
            lr: 1e-2,
            etaminus: 0.5,
            etaplus: 1.2,
            step_size_min: 1e-6,
            step_size_max: 50.0,
            weight_decay: 0.0,
            l1: 0.0,
            maximize: false,
        }
    }
}

hyperparameters!(RpropConfig {
    lr,
    etaminus,
    etaplus,
    step_size_min,
    step_size_max,
    weight_decay,
    l1
});

/// One param group's row of `update.wgsl`'s uniform table (32 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct RpropRow {
    etaminus: f32,
    etaplus: f32,
    step_size_min: f32,
    step_size_max: f32,
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

impl Algo for RpropConfig {
    fn validate(&self) -> Result<()> {
        check_lr("lr", self.lr)?;
        let message = format!("Invalid eta values: {}, {}", self.etaminus, self.etaplus);
        if !(self.etaminus > 0.0 && self.etaminus < 1.0) {
            return Err(Error::invalid(
                "etaminus",
                self.etaminus,
                "0 < etaminus < 1",
                message,
            ));
        }
        if !(self.etaplus > 1.0 && self.etaplus <= f32::MAX as f64) {
            return Err(Error::invalid(
                "etaplus",
                self.etaplus,
                "a number > 1, finite in f32",
                message,
            ));
        }
        check_min("step_size_min", self.step_size_min, "step_size_min")?;
        check_min("step_size_max", self.step_size_max, "step_size_max")?;
        if self.step_size_max < self.step_size_min {
            return Err(Error::invalid(
                "step_size_max",
                self.step_size_max,
                format!("a number >= step_size_min ({})", self.step_size_min),
                format!(
                    "Invalid step_sizes: {}, {}",
                    self.step_size_min, self.step_size_max
                ),
            ));
        }
        check_min("weight_decay", self.weight_decay, "weight_decay")?;
        check_min("l1", self.l1, "l1")
    }
    fn kernel(&self) -> KernelDesc {
        KernelDesc {
            name: "rprop",
            source: SOURCE,
            slots: &["prev", "step_size"],
            formats: StateFormats::Bf16,
            active: vec![("prev", 0.0), ("step_size", self.lr)],
            constants: vec![("MAXIMIZE", self.maximize as u8 as f64)],
        }
    }
    fn row(&self, _t: u64) -> Vec<u8> {
        let r = RpropRow {
            etaminus: self.etaminus as f32,
            etaplus: self.etaplus as f32,
            step_size_min: self.step_size_min as f32,
            step_size_max: self.step_size_max as f32,
            weight_decay: self.weight_decay as f32,
            l1: self.l1 as f32,
            _pad0: 0,
            _pad1: 0,
        };
        bytemuck::bytes_of(&r).to_vec()
    }
    fn reference(&self, _t: f64, p: &mut f64, g: f64, st: &mut [f64]) {
        reference::element(self, p, g, st)
    }
}

#[cfg(test)]
mod tests {
    use crate::gpu::layout_check::{assert_row_matches, rust_struct};

    #[test]
    fn rprop_row_matches_its_wgsl_struct() {
        assert_row_matches(
            &crate::gpu::layout_check::kernel_source(&super::RpropConfig::default()),
            rust_struct!(super::RpropRow {
                etaminus,
                etaplus,
                step_size_min,
                step_size_max,
                weight_decay,
                l1,
                _pad0,
                _pad1
            }),
        );
    }
}

//! LARS: config, uniform row, the element functions of the trust-ratio
//! passes (`update.wgsl`) and the f64 reference (`reference.rs`).

mod reference;

use super::trust::Trust;
use super::{Algo, KernelDesc, check_eps, check_lr, check_min, hyperparameters};
use crate::error::{Error, Result};
use crate::optim::state::StateFormats;

/// LARS (You et al., 2017, "Large Batch Training of Convolutional
/// Networks"): momentum SGD whose update is scaled per tensor by a trust
/// ratio, mirroring optax's `lars`.
///
/// ```text
/// input: lr, weight_decay, trust_coefficient, eps, momentum, trust_ratio_mask, l1,
///        nesterov, maximize
/// trace_0 = 0
/// for t = 1, 2, ...
///     g = grad * grad_scale;  if maximize { g = -g }
///     u = g + weight_decay * p + l1 * sign(p)
///     r = trust_coefficient * |p| / (|u| + eps)   per tensor, L2 norms; 1 if |p| or |u|
///                                                 is 0, or where trust_ratio_mask = 0
///     u = -lr * r * u
///     trace = u + momentum * trace
///     p = p + trace                     (nesterov: p = p + u + momentum * trace)
/// ```
///
/// optax's masks are per param group here: the usual exclusion of biases
/// and norms is a group with `weight_decay(0.0)` and
/// `set("trust_ratio_mask", 0.0)`. The norms are reduced on the device
/// inside the step (`trust/`): two dispatches per chunk and one more,
/// whatever the number of tensors, no readback.
///
/// State: `trace` (optax's name: the momentum of the lr-scaled updates,
/// negative of a descent direction).
///
/// Per param group: every numeric field (`lr`, `weight_decay`,
/// `trust_coefficient`, `eps`, `momentum`, `trust_ratio_mask`, `l1`);
/// `nesterov` and `maximize` are per optimizer.
///
/// # Example
/// ```
/// use wgpu_optim::optim::{LarsConfig, OptimizerSpec, ParamGroup};
/// let spec = OptimizerSpec::lars(LarsConfig { lr: 2.0, weight_decay: 1e-4, ..Default::default() })
///     .group(
///         ParamGroup::matching("*.bias")
///             .weight_decay(0.0)
///             .set("trust_ratio_mask", 0.0),
///     );
/// assert!(spec.algorithm().validate().is_ok());
/// ```
///
/// # Errors
/// `lr < 0`, `weight_decay < 0`, `trust_coefficient < 0`, `eps < 0`,
/// `momentum < 0`, `l1 < 0`, `trust_ratio_mask` other than 0 or 1, or any
/// NaN value or one not finite in f32.
///
/// # Differences from optax
/// - optax's `learning_rate` has no default; here it is 1 (with the
///   default `trust_coefficient` of 1e-3, a step moves each tensor by about
///   1e-3 of its norm).
/// - `l1` and `maximize` are extensions; masks are per param group, not a
///   pytree of booleans; `weight_decay_mask` is a group's `weight_decay(0.0)`.
/// - The norms are f32 sums on the device (overflow-safe scaled pairs, in a
///   fixed tree order).
/// - A NaN or infinite param or update anywhere in a tensor (of a group the
///   ratio applies to) makes its ratio NaN, so the whole tensor's update is
///   NaN; optax gives NaN for a NaN, and for an infinity a ratio of 0 or NaN.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LarsConfig {
    /// Learning rate (default 1; optax requires one).
    pub lr: f64,
    /// Weight decay added to the update before the ratio (default 0).
    pub weight_decay: f64,
    /// Multiplier of the trust ratio (default 1e-3).
    pub trust_coefficient: f64,
    /// Added to the update norm in the ratio's denominator (default 0).
    pub eps: f64,
    /// Decay of the trace (default 0.9).
    pub momentum: f64,
    /// 1 applies the trust ratio, 0 leaves the group's updates unscaled
    /// (optax's `trust_ratio_mask`, per group; default 1).
    pub trust_ratio_mask: f64,
    /// L1 penalty (default 0; not in optax).
    pub l1: f64,
    /// Nesterov momentum (default false).
    pub nesterov: bool,
    /// Maximize the objective (default false).
    pub maximize: bool,
}

impl Default for LarsConfig {
    fn default() -> Self {
        LarsConfig {
            lr: 1.0,
            weight_decay: 0.0,
            trust_coefficient: 1e-3,
            eps: 0.0,
            momentum: 0.9,
            trust_ratio_mask: 1.0,
            l1: 0.0,
            nesterov: false,
            maximize: false,
        }
    }
}

hyperparameters!(LarsConfig {
    lr,
    weight_decay,
    trust_coefficient,
    eps,
    momentum,
    trust_ratio_mask,
    l1
});

/// One param group's row of `update.wgsl`'s uniform table (32 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct LarsRow {
    lr: f32,
    weight_decay: f32,
    l1: f32,
    trust_coefficient: f32,
    eps: f32,
    momentum: f32,
    trust_ratio_mask: f32,
    _pad0: u32,
}

const SOURCE: &str = concat!(
    include_str!("../../gpu/common.wgsl"),
    include_str!("../../grad/norm.wgsl"),
    include_str!("../prelude.wgsl"),
    include_str!("update.wgsl")
);

impl Algo for LarsConfig {
    fn validate(&self) -> Result<()> {
        check_lr("lr", self.lr)?;
        check_min("weight_decay", self.weight_decay, "weight_decay")?;
        check_min(
            "trust_coefficient",
            self.trust_coefficient,
            "trust_coefficient",
        )?;
        check_eps("eps", self.eps)?;
        check_min("momentum", self.momentum, "momentum")?;
        check_min("l1", self.l1, "l1")?;
        let m = self.trust_ratio_mask;
        if m != 0.0 && m != 1.0 {
            return Err(Error::invalid(
                "trust_ratio_mask",
                m,
                "0 (no trust ratio) or 1 (trust ratio)",
                format!("Invalid trust_ratio_mask value: {m}"),
            ));
        }
        Ok(())
    }
    fn kernel(&self) -> KernelDesc {
        KernelDesc {
            name: "lars",
            source: SOURCE,
            slots: &["trace"],
            formats: StateFormats::Bf16,
            active: vec![("trace", 0.0)],
            constants: vec![
                ("MAXIMIZE", self.maximize as u8 as f64),
                ("NESTEROV", self.nesterov as u8 as f64),
            ],
        }
    }
    fn row(&self, _t: u64) -> Vec<u8> {
        let r = LarsRow {
            lr: self.lr as f32,
            weight_decay: self.weight_decay as f32,
            l1: self.l1 as f32,
            trust_coefficient: self.trust_coefficient as f32,
            eps: self.eps as f32,
            momentum: self.momentum as f32,
            trust_ratio_mask: self.trust_ratio_mask as f32,
            _pad0: 0,
        };
        bytemuck::bytes_of(&r).to_vec()
    }
    fn momentum_name(&self) -> Option<&'static str> {
        Some("momentum")
    }
    fn trust(&self) -> Option<&dyn Trust> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use crate::gpu::layout_check::{assert_row_matches, rust_struct};

    #[test]
    fn lars_row_matches_its_wgsl_struct() {
        assert_row_matches(
            &crate::gpu::layout_check::kernel_source(&super::LarsConfig::default()),
            rust_struct!(super::LarsRow {
                lr,
                weight_decay,
                l1,
                trust_coefficient,
                eps,
                momentum,
                trust_ratio_mask,
                _pad0
            }),
        );
    }
}

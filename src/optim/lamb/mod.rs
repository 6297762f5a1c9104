//! LAMB: config, uniform row, the element functions of the trust-ratio
//! passes (`update.wgsl`) and the f64 reference (`reference.rs`).

mod reference;

use super::trust::Trust;
use super::{Algo, KernelDesc, check_adam_like, check_min, hyperparameters};
use crate::error::Result;
use crate::optim::state::StateFormats;

/// LAMB (You et al., 2019, "Large Batch Optimization for Deep Learning:
/// Training BERT in 76 minutes"): Adam's direction scaled per tensor by a
/// trust ratio, mirroring torch-optimizer's `Lamb` (the paper's v3: no bias
/// correction unless `debias`).
///
/// ```text
/// input: lr, beta1, beta2, eps, weight_decay, clamp_value, l1, adam, debias, maximize
/// m_0 = 0, v_0 = 0
/// for t = 1, 2, ...
///     g = grad * grad_scale;  if maximize { g = -g }
///     g = g + l1 * sign(p)
///     m = beta1 * m + (1 - beta1) * g
///     v = beta2 * v + (1 - beta2) * g^2
///     u = m / (sqrt(v) + eps) + weight_decay * p
///     r = min(|p|, clamp_value) / |u|     per tensor, L2 norms; 1 if either is 0 or `adam`
///     s = lr, or lr * sqrt(1 - beta2^t) / (1 - beta1^t) with `debias`
///     p = p - s * r * u
/// ```
///
/// The norms are reduced on the device inside the step (`trust/`): a step
/// is two dispatches per chunk and one more, whatever the number of
/// tensors, with a fixed reduction order and no readback.
///
/// State: `exp_avg`, `exp_avg_sq` (torch-optimizer's names).
///
/// Per param group: every numeric field (`lr`, `beta1`, `beta2`, `eps`,
/// `weight_decay`, `clamp_value`, `l1`); `adam`, `debias` and `maximize`
/// are per optimizer.
///
/// # Example
/// ```
/// use wgpu_optim::optim::{LambConfig, OptimizerSpec, ParamGroup};
/// let spec = OptimizerSpec::lamb(LambConfig { lr: 2e-3, weight_decay: 0.01, ..Default::default() })
///     .group(ParamGroup::matching("*.bias").weight_decay(0.0));
/// assert!(spec.algorithm().validate().is_ok());
/// ```
///
/// # Errors
/// `lr < 0`, `eps < 0`, `beta1` or `beta2` outside `[0, 1)`,
/// `weight_decay < 0`, `clamp_value < 0`, `l1 < 0`, or any NaN value or one
/// not finite in f32.
///
/// # Differences from torch-optimizer
/// - `l1` and `maximize` are extensions; `lr = 0` is allowed (a frozen
///   group; torch-optimizer refuses `lr <= 0`).
/// - The norms are f32 sums on the device (overflow-safe scaled pairs, in a
///   fixed tree order), torch's are sums in the tensor's dtype.
/// - `clamp_value` may differ per param group (torch-optimizer has one per
///   optimizer).
/// - A NaN or infinite param or direction anywhere in a tensor makes its
///   trust ratio NaN, so the whole tensor's update is NaN. torch-optimizer
///   does the same for a NaN; for an infinity its clamp and norms can give
///   a finite ratio instead.
/// - torch-optimizer keeps `weight_norm`, `adam_norm` and `trust_ratio` in
///   the state of each tensor for inspection; here they live only on the
///   device during the step and are not kept.
/// - optax's `lamb` and Apex's `FusedLAMB` differ: they bias-correct the
///   moments inside the direction (so the ratio sees the corrected
///   direction) and do not clamp `|p|`; Apex also clips the global gradient
///   norm (here: `clip_by_global_norm`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LambConfig {
    /// Learning rate (default 1e-3).
    pub lr: f64,
    /// Coefficient of the running average of the gradient (default 0.9).
    pub beta1: f64,
    /// Coefficient of the running average of its square (default 0.999).
    pub beta2: f64,
    /// Added to the denominator (default 1e-6).
    pub eps: f64,
    /// Weight decay added to the direction, inside the trust ratio (default 0).
    pub weight_decay: f64,
    /// Upper clamp of the param norm in the ratio (default 10).
    pub clamp_value: f64,
    /// L1 penalty (default 0; not in torch-optimizer).
    pub l1: f64,
    /// Trust ratio 1 everywhere, for comparisons: an Adam whose `eps` is
    /// outside the bias correction (none at all unless `debias`) (default false).
    pub adam: bool,
    /// Bias-correct the step size (default false, the paper's v3).
    pub debias: bool,
    /// Maximize the objective (default false).
    pub maximize: bool,
}

impl Default for LambConfig {
    fn default() -> Self {
        LambConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-6,
            weight_decay: 0.0,
            clamp_value: 10.0,
            l1: 0.0,
            adam: false,
            debias: false,
            maximize: false,
        }
    }
}

hyperparameters!(LambConfig {
    lr,
    beta1,
    beta2,
    eps,
    weight_decay,
    clamp_value,
    l1
});

/// One param group's row of `update.wgsl`'s uniform table (48 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct LambRow {
    beta1: f32,
    /// 1 - beta1, from f64.
    one_minus_beta1: f32,
    beta2: f32,
    /// 1 - beta2, from f64.
    one_minus_beta2: f32,
    eps: f32,
    weight_decay: f32,
    l1: f32,
    /// lr, or lr * sqrt(1 - beta2^t) / (1 - beta1^t) with `debias`, from f64.
    step_size: f32,
    clamp_value: f32,
    lr: f32,
    /// 1 with `debias`, else 0.
    debias: f32,
    /// 1 in `adam` mode, else 0.
    adam: f32,
}

pub(crate) const SOURCE: &str = concat!(
    include_str!("../../gpu/common.wgsl"),
    include_str!("../../grad/norm.wgsl"),
    include_str!("../prelude.wgsl"),
    include_str!("update.wgsl")
);

impl LambConfig {
    /// The step size of step `t`, in f64.
    fn step_size(&self, t: f64) -> f64 {
        if self.debias {
            self.lr * (1.0 - self.beta2.powf(t)).sqrt() / (1.0 - self.beta1.powf(t))
        } else {
            self.lr
        }
    }
}

impl Algo for LambConfig {
    fn validate(&self) -> Result<()> {
        check_adam_like(
            self.lr,
            self.eps,
            self.beta1,
            self.beta2,
            self.weight_decay,
            self.l1,
        )?;
        check_min("clamp_value", self.clamp_value, "clamp")
    }
    fn kernel(&self) -> KernelDesc {
        KernelDesc {
            name: "lamb",
            source: SOURCE,
            slots: &["exp_avg", "exp_avg_sq"],
            formats: StateFormats::Bf16,
            active: vec![("exp_avg", 0.0), ("exp_avg_sq", 0.0)],
            constants: vec![("MAXIMIZE", self.maximize as u8 as f64)],
        }
    }
    fn row(&self, t: u64) -> Vec<u8> {
        let r = LambRow {
            beta1: self.beta1 as f32,
            one_minus_beta1: (1.0 - self.beta1) as f32,
            beta2: self.beta2 as f32,
            one_minus_beta2: (1.0 - self.beta2) as f32,
            eps: self.eps as f32,
            weight_decay: self.weight_decay as f32,
            l1: self.l1 as f32,
            step_size: self.step_size(t as f64) as f32,
            clamp_value: self.clamp_value as f32,
            lr: self.lr as f32,
            debias: self.debias as u8 as f32,
            adam: self.adam as u8 as f32,
        };
        bytemuck::bytes_of(&r).to_vec()
    }
    fn momentum_name(&self) -> Option<&'static str> {
        Some("beta1")
    }
    fn trust(&self) -> Option<&dyn Trust> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use crate::gpu::layout_check::{assert_row_matches, rust_struct};

    #[test]
    fn lamb_row_matches_its_wgsl_struct() {
        assert_row_matches(
            &crate::gpu::layout_check::kernel_source(&super::LambConfig::default()),
            rust_struct!(super::LambRow {
                beta1,
                one_minus_beta1,
                beta2,
                one_minus_beta2,
                eps,
                weight_decay,
                l1,
                step_size,
                clamp_value,
                lr,
                debias,
                adam
            }),
        );
    }
}

//! ADOPT: config, uniform row, kernel (`update.wgsl`) and f64 reference
//! (`reference.rs`).

mod reference;

use super::{Algo, KernelDesc, check_adam_like, decay_terms, hyperparameters};
use crate::error::Result;
use crate::optim::state::{QMap, StateFormats};

/// ADOPT (Taniguchi et al., 2024, "ADOPT: Modified Adam Can Converge with
/// Any beta2 with the Optimal Rate"): the gradient is normalized by the
/// *previous* second moment before it enters the momentum, mirroring
/// `optax.contrib.adopt` (and the authors' PyTorch `ADOPT`).
///
/// ```text
/// input: lr, beta1, beta2, eps, weight_decay, l1, decoupled_weight_decay,
///        nesterov, clip, maximize
/// m_0 = 0, v_0 = 0
/// for t = 1, 2, ...
///     g = grad * grad_scale;  if maximize { g = -g }
///     if decoupled_weight_decay { p = p * (1 - lr * weight_decay) }
///     else                      { g = g + weight_decay * p }
///     g = g + l1 * sign(p)
///     if t == 1 { v = g^2; continue }              (the first step only fills v)
///     n = g / max(sqrt(v), eps)
///     if clip { n = clamp(n, -(t - 1)^0.25, (t - 1)^0.25) }
///     m = beta1 * m + (1 - beta1) * n
///     p = p - lr * (if nesterov { beta1 * m + (1 - beta1) * n } else { m })
///     v = beta2 * v + (1 - beta2) * g^2
/// ```
///
/// State: `exp_avg`, `exp_avg_sq` (the authors' PyTorch names; optax's `mu`,
/// `nu`).
///
/// Per param group: every numeric field (`lr`, `beta1`, `beta2`, `eps`,
/// `weight_decay`, `l1`); `decoupled_weight_decay`, `nesterov`, `clip` and
/// `maximize` are per optimizer.
///
/// # Example
/// ```
/// use wgpu_optim::optim::{AdoptConfig, OptimizerSpec};
/// let spec = OptimizerSpec::adopt(AdoptConfig { decoupled_weight_decay: true,
///     weight_decay: 0.01, ..Default::default() });
/// assert!(spec.algorithm().validate().is_ok());
/// ```
///
/// # Errors
/// `lr < 0`, `eps < 0`, `beta1` or `beta2` outside `[0, 1)`,
/// `weight_decay < 0`, `l1 < 0`, or any NaN value or one not finite in f32.
///
/// # Differences from optax
/// - `weight_decay` (L2, or decoupled) and `l1` are in the optimizer; with
///   optax one chains `add_decayed_weights`, which the decoupled decay
///   equals, also at the first step (the authors' PyTorch version skips the
///   decay there: its first step only fills `exp_avg_sq`).
/// - The clipping schedule is the default `(t - 1)^0.25` (optax's
///   `clip_value_fn` of its count); other functions are not offered.
/// - The step's scalars are computed on the host in f64; after steps
///   skipped on the device they are recomputed in f32 from the device's step
///   count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdoptConfig {
    /// Learning rate (default 1e-3).
    pub lr: f64,
    /// Coefficient of the momentum (default 0.9).
    pub beta1: f64,
    /// Coefficient of the running average of the squared gradient
    /// (default 0.9999).
    pub beta2: f64,
    /// Smallest denominator (default 1e-6).
    pub eps: f64,
    /// L2 penalty, or decoupled decay with `decoupled_weight_decay`
    /// (default 0).
    pub weight_decay: f64,
    /// L1 penalty (default 0; not in ADOPT).
    pub l1: f64,
    /// Decay the params (AdamW style) instead of adding `weight_decay * p`
    /// to the gradient (default false).
    pub decoupled_weight_decay: bool,
    /// Nesterov momentum (default false).
    pub nesterov: bool,
    /// Clip the normalized gradient to `(t - 1)^0.25` (default true, the
    /// authors' recommendation).
    pub clip: bool,
    /// Maximize the objective (default false).
    pub maximize: bool,
}

impl Default for AdoptConfig {
    fn default() -> Self {
        AdoptConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.9999,
            eps: 1e-6,
            weight_decay: 0.0,
            l1: 0.0,
            decoupled_weight_decay: false,
            nesterov: false,
            clip: true,
            maximize: false,
        }
    }
}

hyperparameters!(AdoptConfig {
    lr,
    beta1,
    beta2,
    eps,
    weight_decay,
    l1
});

/// One param group's row of `update.wgsl`'s uniform table (48 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct AdoptRow {
    beta1: f32,
    /// 1 - beta1, from f64.
    one_minus_beta1: f32,
    beta2: f32,
    /// 1 - beta2, from f64.
    one_minus_beta2: f32,
    eps: f32,
    /// L2 weight decay (0 with `decoupled_weight_decay`).
    weight_decay: f32,
    l1: f32,
    /// 1 - lr * weight_decay with `decoupled_weight_decay`, else 1.
    decay_factor: f32,
    lr: f32,
    /// (t - 1)^0.25, from f64.
    clip_value: f32,
    /// 1 at the first step (it only fills exp_avg_sq), else 0.
    first: u32,
    _pad0: u32,
}

const SOURCE: &str = concat!(
    include_str!("../../gpu/common.wgsl"),
    include_str!("../prelude.wgsl"),
    include_str!("update.wgsl")
);

impl Algo for AdoptConfig {
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
            name: "adopt",
            source: SOURCE,
            slots: &["exp_avg", "exp_avg_sq"],
            formats: StateFormats::All(&[QMap::Signed, QMap::Unsigned]),
            active: vec![("exp_avg", 0.0), ("exp_avg_sq", 0.0)],
            constants: vec![
                ("MAXIMIZE", self.maximize as u8 as f64),
                ("DECOUPLED", self.decoupled_weight_decay as u8 as f64),
                ("NESTEROV", self.nesterov as u8 as f64),
                ("CLIP", self.clip as u8 as f64),
            ],
        }
    }
    fn row(&self, t: u64) -> Vec<u8> {
        let decoupled = self.decoupled_weight_decay;
        let (weight_decay, decay_factor) = decay_terms(self.lr, self.weight_decay, decoupled);
        let r = AdoptRow {
            beta1: self.beta1 as f32,
            one_minus_beta1: (1.0 - self.beta1) as f32,
            beta2: self.beta2 as f32,
            one_minus_beta2: (1.0 - self.beta2) as f32,
            eps: self.eps as f32,
            weight_decay,
            l1: self.l1 as f32,
            decay_factor,
            lr: self.lr as f32,
            clip_value: clip_value(t) as f32,
            first: (t == 1) as u32,
            _pad0: 0,
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

/// The clipping bound of step `t`: `(t - 1)^0.25`.
pub(crate) fn clip_value(t: u64) -> f64 {
    (t.saturating_sub(1) as f64).powf(0.25)
}

#[cfg(test)]
mod tests {
    use crate::gpu::layout_check::{assert_row_matches, rust_struct};

    #[test]
    fn adopt_row_matches_its_wgsl_struct() {
        assert_row_matches(
            &crate::gpu::layout_check::kernel_source(&super::AdoptConfig::default()),
            rust_struct!(super::AdoptRow {
                beta1,
                one_minus_beta1,
                beta2,
                one_minus_beta2,
                eps,
                weight_decay,
                l1,
                decay_factor,
                lr,
                clip_value,
                first,
                _pad0
            }),
        );
    }
}

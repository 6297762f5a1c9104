//! RAdam: config, uniform row, kernel (`update.wgsl`) and f64 reference
//! (`reference.rs`).

mod reference;

use super::{Algo, KernelDesc, check_adam_like, decay_terms, hyperparameters};
use crate::error::Result;
use crate::optim::state::{QMap, StateFormats};

/// RAdam (Liu et al., 2020: Adam with a rectified adaptive learning rate),
/// mirroring `torch.optim.RAdam`.
///
/// ```text
/// input: lr, beta1, beta2, eps, weight_decay, l1, decoupled_weight_decay, maximize
/// m_0 = 0, v_0 = 0, rho_inf = 2 / (1 - beta2) - 1
/// for t = 1, 2, ...
///     g = grad * grad_scale;  if maximize { g = -g }
///     if decoupled_weight_decay { p = p * (1 - lr * weight_decay) }
///     else                      { g = g + weight_decay * p }
///     g = g + l1 * sign(p)
///     m = lerp(m, g, 1 - beta1)
///     v = beta2 * v + (1 - beta2) * g^2
///     rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)
///     if rho_t > 5 {
///         r = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
///         p = p - m / (1 - beta1^t) * lr * sqrt(1 - beta2^t) / (sqrt(v) + eps) * r
///     } else {
///         p = p - m / (1 - beta1^t) * lr
///     }
/// ```
///
/// With the default `beta2 = 0.999` the rectified branch starts at step 6.
/// The branch is chosen per param group on the host (it depends only on the
/// step and `beta2`), so the kernel has no per-element branch.
///
/// State: `exp_avg`, `exp_avg_sq` (PyTorch's names).
///
/// Per param group: every numeric field (`lr`, `beta1`, `beta2`, `eps`,
/// `weight_decay`, `l1`); `decoupled_weight_decay` and `maximize` are per
/// optimizer.
///
/// # Example
/// ```
/// use wgpu_optim::optim::{OptimizerSpec, RAdamConfig};
/// let spec = OptimizerSpec::radam(RAdamConfig { lr: 1e-3, ..Default::default() });
/// assert!(spec.algorithm().validate().is_ok());
/// ```
///
/// # Errors
/// `lr < 0`, `eps < 0`, `beta1` or `beta2` outside `[0, 1)`,
/// `weight_decay < 0`, `l1 < 0`, or any NaN value or one not finite in f32.
///
/// # Differences from PyTorch
/// - `l1` is an extension (not in PyTorch).
/// - The step's scalars (`rho_t`, the rectification, the bias corrections)
///   are computed on the host in f64 (PyTorch's non-capturable path); after
///   steps skipped on the device they are recomputed in f32 from the
///   device's step count (the regime from the first rectified step, which
///   the host finds in f64, so it is decided exactly).
/// - No `foreach`/`capturable`/`differentiable` switches; complex tensors are
///   not supported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RAdamConfig {
    /// Learning rate (default 1e-3).
    pub lr: f64,
    /// Coefficient of the running average of the gradient (default 0.9).
    pub beta1: f64,
    /// Coefficient of the running average of its square (default 0.999).
    pub beta2: f64,
    /// Added to the denominator (default 1e-8).
    pub eps: f64,
    /// L2 penalty, or decoupled decay with `decoupled_weight_decay`
    /// (default 0).
    pub weight_decay: f64,
    /// L1 penalty (default 0; not in PyTorch).
    pub l1: f64,
    /// Decay the params (AdamW style) instead of adding `weight_decay * p`
    /// to the gradient (default false).
    pub decoupled_weight_decay: bool,
    /// Maximize the objective (default false).
    pub maximize: bool,
}

impl Default for RAdamConfig {
    fn default() -> Self {
        RAdamConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            l1: 0.0,
            decoupled_weight_decay: false,
            maximize: false,
        }
    }
}

hyperparameters!(RAdamConfig {
    lr,
    beta1,
    beta2,
    eps,
    weight_decay,
    l1
});

/// The first step with `rho_t > 5` (`rho_t` grows with `t`), or `u32::MAX`
/// when there is none: the rectified regime is `t >= rectify_from`.
pub(crate) fn rectify_from(beta2: f64) -> u32 {
    let rho_inf = 2.0 / (1.0 - beta2) - 1.0;
    if rho_inf <= 5.0 {
        return u32::MAX;
    }
    (1..u32::MAX)
        .find(|&t| rho(beta2, t as f64) > 5.0 || beta2.powf(t as f64) == 0.0)
        .unwrap_or(u32::MAX)
}

/// `rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)`.
fn rho(beta2: f64, t: f64) -> f64 {
    let rho_inf = 2.0 / (1.0 - beta2) - 1.0;
    rho_inf - 2.0 * t * beta2.powf(t) / (1.0 - beta2.powf(t))
}

/// The step's scalars in f64: `step_size = lr / (1 - beta1^t)`, in the
/// rectified regime (`t >= rectify_from`, i.e. `rho_t > 5`)
/// `Some(sqrt(1 - beta2^t) * r)`, and the first rectified step.
pub(crate) fn step_scalars(c: &RAdamConfig, t: u64) -> (f64, Option<f64>, u32) {
    let tf = t as f64;
    let bias_correction1 = 1.0 - c.beta1.powf(tf);
    let bias_correction2 = 1.0 - c.beta2.powf(tf);
    let rho_inf = 2.0 / (1.0 - c.beta2) - 1.0;
    let rho_t = rho(c.beta2, tf);
    let step_size = c.lr / bias_correction1;
    let from = rectify_from(c.beta2);
    if from != u32::MAX && t >= from as u64 {
        let rect = ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf
            / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
            .sqrt();
        (step_size, Some(bias_correction2.sqrt() * rect), from)
    } else {
        (step_size, None, from)
    }
}

/// One param group's row of `update.wgsl`'s uniform table (64 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct RAdamRow {
    beta1: f32,
    /// 1 - beta1 (the lerp weight), from f64.
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
    /// lr / (1 - beta1^t), from f64.
    step_size: f32,
    /// sqrt(1 - beta2^t) * r, from f64 (0 when not rectified).
    adaptive: f32,
    /// 1 when rho_t > 5 (the rectified update), else 0.
    rectified: u32,
    /// For the device-side recomputation after skipped steps: lr and the
    /// first rectified step.
    lr: f32,
    rectify_from: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const SOURCE: &str = concat!(
    include_str!("../../gpu/common.wgsl"),
    include_str!("../prelude.wgsl"),
    include_str!("update.wgsl")
);

impl Algo for RAdamConfig {
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
            name: "radam",
            source: SOURCE,
            slots: &["exp_avg", "exp_avg_sq"],
            formats: StateFormats::All(&[QMap::Signed, QMap::Unsigned]),
            active: vec![("exp_avg", 0.0), ("exp_avg_sq", 0.0)],
            constants: vec![
                ("MAXIMIZE", self.maximize as u8 as f64),
                ("DECOUPLED", self.decoupled_weight_decay as u8 as f64),
            ],
        }
    }
    fn row(&self, t: u64) -> Vec<u8> {
        let (step_size, adaptive, rectify_from) = step_scalars(self, t);
        let decoupled = self.decoupled_weight_decay;
        let (weight_decay, decay_factor) = decay_terms(self.lr, self.weight_decay, decoupled);
        let r = RAdamRow {
            beta1: self.beta1 as f32,
            one_minus_beta1: (1.0 - self.beta1) as f32,
            beta2: self.beta2 as f32,
            one_minus_beta2: (1.0 - self.beta2) as f32,
            eps: self.eps as f32,
            weight_decay,
            l1: self.l1 as f32,
            decay_factor,
            step_size: step_size as f32,
            adaptive: adaptive.unwrap_or(0.0) as f32,
            rectified: adaptive.is_some() as u32,
            lr: self.lr as f32,
            rectify_from,
            _pad0: 0,
            _pad1: 0,
            _pad2: 0,
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
    fn radam_row_matches_its_wgsl_struct() {
        assert_row_matches(
            &crate::gpu::layout_check::kernel_source(&super::RAdamConfig::default()),
            rust_struct!(super::RAdamRow {
                beta1,
                one_minus_beta1,
                beta2,
                one_minus_beta2,
                eps,
                weight_decay,
                l1,
                decay_factor,
                step_size,
                adaptive,
                rectified,
                lr,
                rectify_from,
                _pad0,
                _pad1,
                _pad2
            }),
        );
    }

    #[test]
    fn the_rectified_update_starts_at_step_6_with_the_default_beta2() {
        assert_eq!(super::rectify_from(0.999), 6);
        // The first rectified step is torch's test `rho_t > 5` at every step
        // (rho_t grows with t).
        for beta2 in [0.5, 0.7, 0.9, 0.999, 0.99999] {
            let from = super::rectify_from(beta2);
            for t in 1..200u64 {
                let torch = super::rho(beta2, t as f64) > 5.0;
                assert_eq!(torch, t >= from as u64, "beta2 {beta2} t {t}");
                let c = super::RAdamConfig {
                    beta2,
                    ..Default::default()
                };
                assert_eq!(super::step_scalars(&c, t).1.is_some(), torch);
            }
        }
        assert_eq!(
            super::rectify_from(0.5),
            u32::MAX,
            "rho_inf = 3 never exceeds 5"
        );
    }
}

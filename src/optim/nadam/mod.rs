//! NAdam: config, uniform row, kernel (`update.wgsl`) and f64 reference
//! (`reference.rs`).

mod reference;

use super::{Algo, KernelDesc, check_adam_like, check_min, decay_terms, hyperparameters};
use crate::error::Result;
use crate::optim::state::{QMap, StateFormats};

/// NAdam (Dozat, 2016: Adam with Nesterov momentum and a momentum schedule),
/// mirroring `torch.optim.NAdam`.
///
/// ```text
/// input: lr, beta1, beta2, eps, weight_decay, momentum_decay, l1,
///        decoupled_weight_decay, maximize
/// m_0 = 0, v_0 = 0
/// for t = 1, 2, ...
///     g = grad * grad_scale;  if maximize { g = -g }
///     if decoupled_weight_decay { p = p * (1 - lr * weight_decay) }
///     else                      { g = g + weight_decay * p }
///     g = g + l1 * sign(p)
///     mu_t     = beta1 * (1 - 0.5 * 0.96^(t * momentum_decay))
///     mu_{t+1} = beta1 * (1 - 0.5 * 0.96^((t + 1) * momentum_decay))
///     P_t = mu_1 * ... * mu_t                          (torch's `mu_product`)
///     m = lerp(m, g, 1 - beta1)
///     v = beta2 * v + (1 - beta2) * g^2
///     denom = sqrt(v / (1 - beta2^t)) + eps
///     p = p - lr * (1 - mu_t) / (1 - P_t) * g / denom
///     p = p - lr * mu_{t+1} / (1 - P_t * mu_{t+1}) * m / denom
/// ```
///
/// State: `exp_avg`, `exp_avg_sq` (PyTorch's names; torch's per-tensor
/// scalar `mu_product` is a function of the step here, computed on the host).
///
/// Per param group: every numeric field (`lr`, `beta1`, `beta2`, `eps`,
/// `weight_decay`, `momentum_decay`, `l1`); `decoupled_weight_decay` and
/// `maximize` are per optimizer.
///
/// # Example
/// ```
/// use wgpu_optim::optim::{NAdamConfig, OptimizerSpec};
/// let spec = OptimizerSpec::nadam(NAdamConfig { decoupled_weight_decay: true,
///     weight_decay: 0.01, ..Default::default() });
/// assert!(spec.algorithm().validate().is_ok());
/// ```
///
/// # Errors
/// `lr < 0`, `eps < 0`, `beta1` or `beta2` outside `[0, 1)`,
/// `weight_decay < 0`, `momentum_decay < 0`, `l1 < 0`, or any NaN value or
/// one not finite in f32.
///
/// # Differences from PyTorch
/// - `l1` is an extension (not in PyTorch).
/// - `mu_product` is not a running state: `P_t = mu_1 ... mu_t` is computed
///   in closed form from the group's current `beta1` and `momentum_decay`
///   (below), on the host in f64. Changing `beta1` or `momentum_decay`
///   during a run therefore gives the product of the new values over every
///   step, where torch keeps the product of the values each step saw; so
///   NAdam offers no momentum for momentum-cycling schedules.
/// - After steps skipped on the device (non-finite gradients) the kernel
///   recomputes `P_t` in f32 from the device's step count with the same
///   closed form (24 terms, whatever the step).
///
/// The closed form: with `r = 0.96^momentum_decay`,
/// `ln P_t = t ln(beta1) + sum_s ln(1 - r^s / 2)
///         = t ln(beta1) - sum_k (1/2)^k / k * r^k (1 - r^(k t)) / (1 - r^k)`,
/// whose terms shrink like `2^-k` (55 of them in f64, 24 in f32), and
/// `(1 - r^(k t)) / (1 - r^k)` is `t` when `momentum_decay = 0`.
/// - No `foreach`/`capturable`/`differentiable` switches; complex tensors are
///   not supported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NAdamConfig {
    /// Learning rate (default 2e-3).
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
    /// The momentum schedule's decay, psi in the paper (default 4e-3).
    pub momentum_decay: f64,
    /// L1 penalty (default 0; not in PyTorch).
    pub l1: f64,
    /// Decay the params (AdamW style, NAdamW) instead of adding
    /// `weight_decay * p` to the gradient (default false).
    pub decoupled_weight_decay: bool,
    /// Maximize the objective (default false).
    pub maximize: bool,
}

impl Default for NAdamConfig {
    fn default() -> Self {
        NAdamConfig {
            lr: 2e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum_decay: 4e-3,
            l1: 0.0,
            decoupled_weight_decay: false,
            maximize: false,
        }
    }
}

hyperparameters!(NAdamConfig {
    lr,
    beta1,
    beta2,
    eps,
    weight_decay,
    momentum_decay,
    l1
});

/// `mu_t = beta1 * (1 - 0.5 * 0.96^(t * momentum_decay))`.
pub(crate) fn mu(beta1: f64, momentum_decay: f64, t: f64) -> f64 {
    beta1 * (1.0 - 0.5 * 0.96f64.powf(t * momentum_decay))
}

/// `P_t = mu_1 * ... * mu_t` in f64, in closed form (see [`NAdamConfig`]):
/// O(1) in `t`.
pub(crate) fn mu_product(beta1: f64, momentum_decay: f64, t: u64) -> f64 {
    if t == 0 {
        return 1.0;
    }
    if beta1 == 0.0 {
        return 0.0;
    }
    let tf = t as f64;
    let ln_r = momentum_decay * 0.96f64.ln();
    let mut sum = 0.0;
    for k in 1..=55 {
        let kf = k as f64;
        let ratio = if ln_r == 0.0 {
            tf
        } else {
            (kf * tf * ln_r).exp_m1() / (kf * ln_r).exp_m1()
        };
        sum -= 0.5f64.powi(k) / kf * (kf * ln_r).exp() * ratio;
    }
    (tf * beta1.ln() + sum).exp()
}

/// The step's scalars: `(lr * (1 - mu_t) / (1 - P_t),
/// lr * mu_{t+1} / (1 - P_t * mu_{t+1}), 1 - beta2^t)`.
pub(crate) fn step_scalars(c: &NAdamConfig, t: u64) -> (f64, f64, f64) {
    let tf = t as f64;
    let mu_t = mu(c.beta1, c.momentum_decay, tf);
    let mu_next = mu(c.beta1, c.momentum_decay, tf + 1.0);
    let product = mu_product(c.beta1, c.momentum_decay, t);
    (
        c.lr * (1.0 - mu_t) / (1.0 - product),
        c.lr * mu_next / (1.0 - product * mu_next),
        1.0 - c.beta2.powf(tf),
    )
}

/// One param group's row of `update.wgsl`'s uniform table (64 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct NAdamRow {
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
    /// lr * (1 - mu_t) / (1 - P_t), from f64.
    grad_coef: f32,
    /// lr * mu_{t+1} / (1 - P_t * mu_{t+1}), from f64.
    avg_coef: f32,
    /// 1 - beta2^t, from f64.
    bias_correction2: f32,
    /// For the device-side recomputation after skipped steps.
    lr: f32,
    /// ln(beta1) (at least -1e4), from f64.
    ln_beta1: f32,
    /// ln(0.96) * momentum_decay, from f64.
    ln_r: f32,
    _pad0: u32,
    _pad1: u32,
}

const SOURCE: &str = concat!(
    include_str!("../../gpu/common.wgsl"),
    include_str!("../prelude.wgsl"),
    include_str!("update.wgsl")
);

impl Algo for NAdamConfig {
    fn validate(&self) -> Result<()> {
        check_adam_like(
            self.lr,
            self.eps,
            self.beta1,
            self.beta2,
            self.weight_decay,
            self.l1,
        )?;
        check_min("momentum_decay", self.momentum_decay, "momentum_decay")
    }
    fn kernel(&self) -> KernelDesc {
        KernelDesc {
            name: "nadam",
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
        let (grad_coef, avg_coef, bias_correction2) = step_scalars(self, t);
        let decoupled = self.decoupled_weight_decay;
        let (weight_decay, decay_factor) = decay_terms(self.lr, self.weight_decay, decoupled);
        let r = NAdamRow {
            beta1: self.beta1 as f32,
            one_minus_beta1: (1.0 - self.beta1) as f32,
            beta2: self.beta2 as f32,
            one_minus_beta2: (1.0 - self.beta2) as f32,
            eps: self.eps as f32,
            weight_decay,
            l1: self.l1 as f32,
            decay_factor,
            grad_coef: grad_coef as f32,
            avg_coef: avg_coef as f32,
            bias_correction2: bias_correction2 as f32,
            lr: self.lr as f32,
            ln_beta1: self.beta1.ln().max(-1e4) as f32,
            ln_r: (self.momentum_decay * 0.96f64.ln()) as f32,
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
    fn nadam_row_matches_its_wgsl_struct() {
        assert_row_matches(
            &crate::gpu::layout_check::kernel_source(&super::NAdamConfig::default()),
            rust_struct!(super::NAdamRow {
                beta1,
                one_minus_beta1,
                beta2,
                one_minus_beta2,
                eps,
                weight_decay,
                l1,
                decay_factor,
                grad_coef,
                avg_coef,
                bias_correction2,
                lr,
                ln_beta1,
                ln_r,
                _pad0,
                _pad1
            }),
        );
    }

    #[test]
    fn the_closed_form_mu_product_is_the_running_product() {
        for (b1, md) in [(0.9, 4e-3), (0.5, 0.05), (0.99, 0.0), (0.999_999_99, 1.0)] {
            let mut running = 1.0f64;
            for t in 1..=3000u64 {
                running *= super::mu(b1, md, t as f64);
                let p = super::mu_product(b1, md, t);
                // Both in f64: the running product's t roundings against the
                // closed form's few dozen (and its exp of a sum near ln P).
                let tol = 1e-13 * t as f64 * running + 1e-300;
                assert!(
                    (p - running).abs() <= tol,
                    "b1 {b1} md {md} t {t}: {p} vs {running}"
                );
            }
        }
        assert_eq!(super::mu_product(0.0, 4e-3, 3), 0.0);
        assert_eq!(super::mu_product(0.9, 4e-3, 0), 1.0);
    }
}

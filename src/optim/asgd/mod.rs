//! ASGD: config, uniform row, kernel (`update.wgsl`) and f64 reference
//! (`reference.rs`).

mod reference;

use super::{Algo, KernelDesc, check_lr, check_min, hyperparameters};
use crate::error::Result;
use crate::optim::state::StateFormats;

/// Averaged SGD (Polyak & Juditsky, 1992; the step size of Xu, 2011),
/// mirroring `torch.optim.ASGD`.
///
/// ```text
/// input: lr, lambd, alpha, t0, weight_decay, l1, maximize
/// ax_0 = 0
/// for t = 1, 2, ...
///     eta = lr / (1 + lambd * lr * (t - 1))^alpha    (torch's `eta` after step t - 1)
///     mu  = 1 / max(1, t - 1 - t0)                   (torch's `mu` after step t - 1)
///     g = grad * grad_scale;  if maximize { g = -g }
///     g = g + weight_decay * p + l1 * sign(p)
///     p = p * (1 - lambd * eta) - eta * g
///     ax = if mu == 1 { p } else { ax + mu * (p - ax) }
/// ```
///
/// The averaged params are the state `ax`: evaluate with them by reading it
/// ([`Optimizer::read_state`](crate::Optimizer::read_state)). Averaging
/// starts after step `t0` (default 1e6: before it `ax` follows `p`).
///
/// State: `ax` (PyTorch's name; torch's per-tensor scalars `eta` and `mu`
/// are functions of the step here, computed on the host).
///
/// Per param group: every numeric field (`lr`, `lambd`, `alpha`, `t0`,
/// `weight_decay`, `l1`); `maximize` is per optimizer.
///
/// # Example
/// ```
/// use wgpu_optim::optim::{AsgdConfig, OptimizerSpec};
/// let spec = OptimizerSpec::asgd(AsgdConfig { t0: 100.0, ..Default::default() });
/// assert!(spec.algorithm().validate().is_ok());
/// ```
///
/// # Errors
/// `lr < 0`, `lambd < 0`, `alpha < 0`, `t0 < 0`, `weight_decay < 0`,
/// `l1 < 0`, or any NaN value or one not finite in f32.
///
/// # Differences from PyTorch
/// - `l1` is an extension (not in PyTorch).
/// - `eta` and `mu` are computed from the step count and the group's
///   current `lr`; torch stores them at the end of each step, so with an lr
///   schedule torch's `eta` uses the previous step's `lr` and ours the
///   current one (identical with a constant lr).
/// - `t0 < 0` is refused (torch accepts it; its first step would then use a
///   `mu` of 1 that no later step's formula gives).
/// - No `foreach`/`capturable`/`differentiable` switches; complex tensors are
///   not supported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AsgdConfig {
    /// Learning rate (default 1e-2).
    pub lr: f64,
    /// Decay term (default 1e-4).
    pub lambd: f64,
    /// Power of the eta update (default 0.75).
    pub alpha: f64,
    /// The step after which averaging starts (default 1e6).
    pub t0: f64,
    /// L2 penalty (default 0).
    pub weight_decay: f64,
    /// L1 penalty (default 0; not in PyTorch).
    pub l1: f64,
    /// Maximize the objective (default false).
    pub maximize: bool,
}

impl Default for AsgdConfig {
    fn default() -> Self {
        AsgdConfig {
            lr: 1e-2,
            lambd: 1e-4,
            alpha: 0.75,
            t0: 1e6,
            weight_decay: 0.0,
            l1: 0.0,
            maximize: false,
        }
    }
}

hyperparameters!(AsgdConfig {
    lr,
    lambd,
    alpha,
    t0,
    weight_decay,
    l1
});

/// `(eta, mu)` used at step `t` (torch's state after step `t - 1`), in f64.
pub(crate) fn eta_mu(c: &AsgdConfig, t: u64) -> (f64, f64) {
    let done = t.saturating_sub(1) as f64;
    let eta = c.lr / (1.0 + c.lambd * c.lr * done).powf(c.alpha);
    let mu = 1.0 / (done - c.t0).max(1.0);
    (eta, mu)
}

/// One param group's row of `update.wgsl`'s uniform table (48 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct AsgdRow {
    weight_decay: f32,
    l1: f32,
    /// eta, from f64.
    eta: f32,
    /// 1 - lambd * eta, from f64.
    decay: f32,
    /// mu, from f64.
    mu: f32,
    /// 1 when mu == 1 (ax copies p), else 0.
    copy: u32,
    /// For the device-side recomputation after skipped steps.
    lr: f32,
    lambd: f32,
    alpha: f32,
    t0: f32,
    _pad0: u32,
    _pad1: u32,
}

const SOURCE: &str = concat!(
    include_str!("../../gpu/common.wgsl"),
    include_str!("../prelude.wgsl"),
    include_str!("update.wgsl")
);

impl Algo for AsgdConfig {
    fn validate(&self) -> Result<()> {
        check_lr("lr", self.lr)?;
        check_min("lambd", self.lambd, "lambd")?;
        check_min("alpha", self.alpha, "alpha")?;
        check_min("t0", self.t0, "t0")?;
        check_min("weight_decay", self.weight_decay, "weight_decay")?;
        check_min("l1", self.l1, "l1")
    }
    fn kernel(&self) -> KernelDesc {
        KernelDesc {
            name: "asgd",
            source: SOURCE,
            slots: &["ax"],
            formats: StateFormats::Bf16,
            active: vec![("ax", 0.0)],
            constants: vec![("MAXIMIZE", self.maximize as u8 as f64)],
        }
    }
    fn row(&self, t: u64) -> Vec<u8> {
        let (eta, mu) = eta_mu(self, t);
        let r = AsgdRow {
            weight_decay: self.weight_decay as f32,
            l1: self.l1 as f32,
            eta: eta as f32,
            decay: (1.0 - self.lambd * eta) as f32,
            mu: mu as f32,
            copy: (mu == 1.0) as u32,
            lr: self.lr as f32,
            lambd: self.lambd as f32,
            alpha: self.alpha as f32,
            t0: self.t0 as f32,
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
    fn asgd_row_matches_its_wgsl_struct() {
        assert_row_matches(
            &crate::gpu::layout_check::kernel_source(&super::AsgdConfig::default()),
            rust_struct!(super::AsgdRow {
                weight_decay,
                l1,
                eta,
                decay,
                mu,
                copy,
                lr,
                lambd,
                alpha,
                t0,
                _pad0,
                _pad1
            }),
        );
    }

    #[test]
    fn the_first_step_uses_torchs_initial_eta_and_mu() {
        let c = super::AsgdConfig {
            t0: 2.0,
            ..Default::default()
        };
        assert_eq!(super::eta_mu(&c, 1), (c.lr, 1.0));
        assert_eq!(super::eta_mu(&c, 4).1, 1.0);
        assert_eq!(super::eta_mu(&c, 6).1, 1.0 / 3.0);
    }
}

//! RMSprop: config, uniform row, kernel (`update.wgsl`) and f64 reference
//! (`reference.rs`).

mod reference;

use super::{Algo, KernelDesc, check_eps, check_lr, check_min, hyperparameters};
use crate::error::Result;
use crate::optim::state::{QMap, StateFormats};

/// RMSprop (Hinton, 2012), mirroring `torch.optim.RMSprop`.
///
/// ```text
/// input: lr, alpha, eps, weight_decay, l1, momentum, centered, maximize
/// square_avg_0 = 0, grad_avg_0 = 0, b_0 = 0
/// for t = 1, 2, ...
///     g = grad * grad_scale;  if maximize { g = -g }
///     g = g + weight_decay * p + l1 * sign(p)
///     square_avg = alpha * square_avg + (1 - alpha) * g^2
///     if centered { grad_avg = lerp(grad_avg, g, 1 - alpha); avg = sqrt(square_avg - grad_avg^2) }
///     else        { avg = sqrt(square_avg) }
///     avg = avg + eps
///     if momentum > 0 { b = momentum * b + g / avg; p = p - lr * b }
///     else            { p = p - lr * g / avg }
/// ```
///
/// State: `square_avg`, `momentum_buffer` when `momentum > 0`, `grad_avg`
/// when `centered`.
///
/// Per param group: `lr`, `alpha`, `eps`, `weight_decay`, `l1`, `momentum`
/// (a group may not turn the momentum buffer on or off); `centered` and
/// `maximize` are per optimizer.
///
/// # Example
/// ```
/// use wgpu_optim::optim::{OptimizerSpec, RmsPropConfig};
/// let spec = OptimizerSpec::rmsprop(RmsPropConfig { centered: true, momentum: 0.9, ..Default::default() });
/// assert!(spec.algorithm().validate().is_ok());
/// ```
///
/// # Errors
/// `lr < 0`, `alpha < 0`, `eps < 0`, `momentum < 0`, `weight_decay < 0`,
/// `l1 < 0`, NaN or infinite values.
///
/// # Differences from PyTorch
/// `l1` is an extension. As in PyTorch, centered RMSprop can take the square
/// root of a slightly negative number when rounding makes
/// `square_avg < grad_avg^2`; both then produce NaN.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RmsPropConfig {
    /// Learning rate (default 1e-2).
    pub lr: f64,
    /// Smoothing constant (default 0.99).
    pub alpha: f64,
    /// Added to the denominator (default 1e-8).
    pub eps: f64,
    /// L2 penalty (default 0).
    pub weight_decay: f64,
    /// L1 penalty (default 0; not in PyTorch).
    pub l1: f64,
    /// Momentum factor (default 0).
    pub momentum: f64,
    /// Normalize by the estimated variance of the gradient (default false).
    pub centered: bool,
    /// Maximize the objective (default false).
    pub maximize: bool,
}

impl Default for RmsPropConfig {
    fn default() -> Self {
        RmsPropConfig {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            l1: 0.0,
            momentum: 0.0,
            centered: false,
            maximize: false,
        }
    }
}

hyperparameters!(RmsPropConfig {
    lr,
    alpha,
    eps,
    weight_decay,
    l1,
    momentum
});

/// One param group's row of `update.wgsl`'s uniform table (32 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct RmsPropRow {
    lr: f32,
    alpha: f32,
    /// 1 - alpha, from f64.
    one_minus_alpha: f32,
    eps: f32,
    weight_decay: f32,
    l1: f32,
    momentum: f32,
    _pad0: u32,
}

const SOURCE: &str = concat!(
    include_str!("../../gpu/common.wgsl"),
    include_str!("../prelude.wgsl"),
    include_str!("update.wgsl")
);

impl Algo for RmsPropConfig {
    fn validate(&self) -> Result<()> {
        check_lr("lr", self.lr)?;
        check_eps("eps", self.eps)?;
        check_min("momentum", self.momentum, "momentum")?;
        check_min("weight_decay", self.weight_decay, "weight_decay")?;
        check_min("alpha", self.alpha, "alpha")?;
        check_min("l1", self.l1, "l1")
    }
    fn kernel(&self) -> KernelDesc {
        let mut active = vec![("square_avg", 0.0)];
        if self.momentum > 0.0 {
            active.push(("momentum_buffer", 0.0));
        }
        if self.centered {
            active.push(("grad_avg", 0.0));
        }
        KernelDesc {
            name: "rmsprop",
            source: SOURCE,
            slots: &["square_avg", "momentum_buffer", "grad_avg"],
            // Centered RMSprop takes sqrt(square_avg - grad_avg^2): with the
            // two rounded apart the difference turns negative (NaN params),
            // so it keeps f32 states, as bitsandbytes refuses it in 8 bits.
            formats: if self.centered {
                StateFormats::F32
            } else {
                StateFormats::All(&[QMap::Signed, QMap::Signed, QMap::Signed])
            },
            active,
            constants: vec![
                ("MAXIMIZE", self.maximize as u8 as f64),
                ("CENTERED", self.centered as u8 as f64),
                ("MOMENTUM", (self.momentum > 0.0) as u8 as f64),
            ],
        }
    }
    fn row(&self, _t: u64) -> Vec<u8> {
        let r = RmsPropRow {
            lr: self.lr as f32,
            alpha: self.alpha as f32,
            one_minus_alpha: (1.0 - self.alpha) as f32,
            eps: self.eps as f32,
            weight_decay: self.weight_decay as f32,
            l1: self.l1 as f32,
            momentum: self.momentum as f32,
            _pad0: 0,
        };
        bytemuck::bytes_of(&r).to_vec()
    }
    fn momentum_name(&self) -> Option<&'static str> {
        (self.momentum > 0.0).then_some("momentum")
    }
    fn reference(&self, t: f64, p: &mut f64, g: f64, st: &mut [f64]) {
        reference::element(self, t, p, g, st)
    }
}

#[cfg(test)]
mod tests {
    use crate::gpu::layout_check::{assert_row_matches, rust_struct};

    #[test]
    fn rmsprop_row_matches_its_wgsl_struct() {
        assert_row_matches(
            &crate::gpu::layout_check::kernel_source(&super::RmsPropConfig::default()),
            rust_struct!(super::RmsPropRow {
                lr,
                alpha,
                one_minus_alpha,
                eps,
                weight_decay,
                l1,
                momentum,
                _pad0
            }),
        );
    }
}

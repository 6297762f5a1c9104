//! The f64 reference of NAdam, line by line after PyTorch's
//! `_single_tensor_nadam` (torch/optim/nadam.py).

use super::step_scalars;
use crate::optim::NAdamConfig;
use crate::optim::reference::penalized;

/// One element; `st` = [exp_avg, exp_avg_sq].
pub(super) fn element(c: &NAdamConfig, t: f64, p: &mut f64, g: f64, st: &mut [f64]) {
    let g = penalized(
        p,
        g,
        c.maximize,
        c.weight_decay,
        c.decoupled_weight_decay.then_some(c.lr),
        c.l1,
    );
    let (grad_coef, avg_coef, bias_correction2) = step_scalars(c, t as u64);
    st[0] += (1.0 - c.beta1) * (g - st[0]);
    st[1] = st[1] * c.beta2 + (1.0 - c.beta2) * g * g;
    let denom = (st[1] / bias_correction2).sqrt() + c.eps;
    *p -= grad_coef * g / denom;
    *p -= avg_coef * st[0] / denom;
}

//! The f64 reference of RAdam, line by line after PyTorch's
//! `_single_tensor_radam` (torch/optim/radam.py).

use super::step_scalars;
use crate::optim::RAdamConfig;
use crate::optim::reference::penalized;

/// One element; `st` = [exp_avg, exp_avg_sq].
pub(super) fn element(c: &RAdamConfig, t: f64, p: &mut f64, g: f64, st: &mut [f64]) {
    let g = penalized(
        p,
        g,
        c.maximize,
        c.weight_decay,
        c.decoupled_weight_decay.then_some(c.lr),
        c.l1,
    );
    st[0] += (1.0 - c.beta1) * (g - st[0]);
    st[1] = st[1] * c.beta2 + (1.0 - c.beta2) * g * g;
    match step_scalars(c, t as u64) {
        (step_size, Some(adaptive), _) => {
            *p -= step_size * st[0] * adaptive / (st[1].sqrt() + c.eps)
        }
        (step_size, None, _) => *p -= step_size * st[0],
    }
}

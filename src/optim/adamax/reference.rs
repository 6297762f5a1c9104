//! The f64 reference of Adamax, line by line after PyTorch's
//! `_single_tensor_adamax` (torch/optim/adamax.py).

use crate::optim::AdamaxConfig;
use crate::optim::reference::penalized;

/// One element; `st` = [exp_avg, exp_inf].
pub(super) fn element(c: &AdamaxConfig, t: f64, p: &mut f64, g: f64, st: &mut [f64]) {
    let g = penalized(p, g, c.maximize, c.weight_decay, None, c.l1);
    st[0] += (1.0 - c.beta1) * (g - st[0]);
    st[1] = (st[1] * c.beta2).max(g.abs() + c.eps);
    let clr = c.lr / (1.0 - c.beta1.powf(t));
    *p -= clr * st[0] / st[1];
}

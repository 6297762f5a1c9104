//! The f64 reference of Adagrad, line by line after PyTorch's
//! `_single_tensor_adagrad` (torch/optim/adagrad.py).

use crate::optim::AdagradConfig;
use crate::optim::reference::penalized;

/// One element; `st` = [sum].
pub(super) fn element(c: &AdagradConfig, t: f64, p: &mut f64, g: f64, st: &mut [f64]) {
    let g = penalized(p, g, c.maximize, c.weight_decay, None, c.l1);
    let clr = c.lr / (1.0 + (t - 1.0) * c.lr_decay);
    st[0] += g * g;
    *p -= clr * g / (st[0].sqrt() + c.eps);
}

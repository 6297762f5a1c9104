//! The f64 reference of Adadelta, line by line after PyTorch's
//! `_single_tensor_adadelta` (torch/optim/adadelta.py).

use crate::optim::AdadeltaConfig;
use crate::optim::reference::penalized;

/// One element; `st` = [square_avg, acc_delta].
pub(super) fn element(c: &AdadeltaConfig, _t: f64, p: &mut f64, g: f64, st: &mut [f64]) {
    let g = penalized(p, g, c.maximize, c.weight_decay, None, c.l1);
    st[0] = st[0] * c.rho + (1.0 - c.rho) * g * g;
    let std = (st[0] + c.eps).sqrt();
    let delta = (st[1] + c.eps).sqrt() / std * g;
    st[1] = st[1] * c.rho + (1.0 - c.rho) * delta * delta;
    *p -= c.lr * delta;
}

//! The f64 reference of ASGD, line by line after PyTorch's
//! `_single_tensor_asgd` (torch/optim/asgd.py).

use super::eta_mu;
use crate::optim::AsgdConfig;
use crate::optim::reference::penalized;

/// One element; `st` = [ax].
pub(super) fn element(c: &AsgdConfig, t: f64, p: &mut f64, g: f64, st: &mut [f64]) {
    let g = penalized(p, g, c.maximize, c.weight_decay, None, c.l1);
    let (eta, mu) = eta_mu(c, t as u64);
    *p *= 1.0 - c.lambd * eta;
    *p -= eta * g;
    if mu == 1.0 {
        st[0] = *p;
    } else {
        st[0] += (*p - st[0]) * mu;
    }
}

//! The f64 reference of ASGD, line by line after PyTorch's
//! `_single_tensor_asgd` (torch/optim/asgd.py).

use super::eta_mu;
use crate::optim::AsgdConfig;
use crate::optim::reference::sign;

/// One element; `st` = [ax].
pub(super) fn element(c: &AsgdConfig, t: f64, p: &mut f64, g: f64, st: &mut [f64]) {
    let mut g = g;
    if c.maximize {
        g = -g;
    }
    g += c.weight_decay * *p;
    g += c.l1 * sign(*p);
    let (eta, mu) = eta_mu(c, t as u64);
    *p *= 1.0 - c.lambd * eta;
    *p -= eta * g;
    if mu == 1.0 {
        st[0] = *p;
    } else {
        st[0] += (*p - st[0]) * mu;
    }
}

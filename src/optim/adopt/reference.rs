//! The f64 reference of ADOPT, line by line after optax's `scale_by_adopt`
//! (optax/contrib/_adopt.py), with the weight decay of the authors' PyTorch
//! version.

use super::clip_value;
use crate::optim::AdoptConfig;
use crate::optim::reference::penalized;

/// One element; `st` = [exp_avg, exp_avg_sq].
pub(super) fn element(c: &AdoptConfig, t: f64, p: &mut f64, g: f64, st: &mut [f64]) {
    let g = penalized(
        p,
        g,
        c.maximize,
        c.weight_decay,
        c.decoupled_weight_decay.then_some(c.lr),
        c.l1,
    );
    if t == 1.0 {
        st[1] = g * g;
        return;
    }
    let mut n = g / st[1].sqrt().max(c.eps);
    if c.clip {
        let b = clip_value(t as u64);
        n = n.clamp(-b, b);
    }
    st[0] = st[0] * c.beta1 + (1.0 - c.beta1) * n;
    let u = if c.nesterov {
        st[0] * c.beta1 + (1.0 - c.beta1) * n
    } else {
        st[0]
    };
    *p -= c.lr * u;
    st[1] = st[1] * c.beta2 + (1.0 - c.beta2) * g * g;
}

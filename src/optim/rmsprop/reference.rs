//! The f64 reference of RMSprop, line by line after PyTorch's
//! `_single_tensor_rmsprop` (torch/optim/rmsprop.py).

use crate::optim::RmsPropConfig;
use crate::optim::reference::penalized;

/// One element; `st` = [square_avg, (momentum_buffer), (grad_avg)], in the
/// order of the kernel's active states.
pub(super) fn element(c: &RmsPropConfig, _t: f64, p: &mut f64, g: f64, st: &mut [f64]) {
    let g = penalized(p, g, c.maximize, c.weight_decay, None, c.l1);
    let has_momentum = c.momentum > 0.0;
    let buf = 1;
    let ga = if has_momentum { 2 } else { 1 };
    st[0] = st[0] * c.alpha + (1.0 - c.alpha) * g * g;
    let mut avg = if c.centered {
        st[ga] += (1.0 - c.alpha) * (g - st[ga]);
        (st[0] - st[ga] * st[ga]).sqrt()
    } else {
        st[0].sqrt()
    };
    avg += c.eps;
    if has_momentum {
        st[buf] = st[buf] * c.momentum + g / avg;
        *p -= c.lr * st[buf];
    } else {
        *p -= c.lr * g / avg;
    }
}

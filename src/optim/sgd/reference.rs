//! The f64 reference of SGD, line by line after PyTorch's `_single_tensor_sgd`
//! (torch/optim/sgd.py).

use crate::optim::SgdConfig;
use crate::optim::reference::penalized;

/// One element; `st` = [(momentum_buffer)].
pub(super) fn element(c: &SgdConfig, t: f64, p: &mut f64, g: f64, st: &mut [f64]) {
    let mut g = penalized(p, g, c.maximize, c.weight_decay, None, c.l1);
    if c.momentum != 0.0 {
        if t == 1.0 {
            st[0] = g;
        } else {
            st[0] = st[0] * c.momentum + (1.0 - c.dampening) * g;
        }
        g = if c.nesterov {
            g + c.momentum * st[0]
        } else {
            st[0]
        };
    }
    *p -= c.lr * g;
}

//! The f64 reference of Rprop, line by line after PyTorch's
//! `_single_tensor_rprop` (torch/optim/rprop.py).

use crate::optim::RpropConfig;
use crate::optim::reference::{penalized, sign};

/// One element; `st` = [prev, step_size].
pub(super) fn element(c: &RpropConfig, p: &mut f64, g: f64, st: &mut [f64]) {
    let mut g = penalized(p, g, c.maximize, c.weight_decay, None, c.l1);
    let s = sign(g * st[0]);
    let factor = if s > 0.0 {
        c.etaplus
    } else if s < 0.0 {
        c.etaminus
    } else {
        1.0
    };
    st[1] = (st[1] * factor).clamp(c.step_size_min, c.step_size_max);
    if s < 0.0 {
        g = 0.0;
    }
    *p -= sign(g) * st[1];
    st[0] = g;
}

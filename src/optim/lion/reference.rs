//! The f64 reference of Lion, line by line after lion-pytorch's `update_fn`
//! (lion_pytorch/lion_pytorch.py).

use crate::optim::LionConfig;
use crate::optim::reference::{penalized, sign};

/// One element; `st` = [exp_avg].
pub(super) fn element(c: &LionConfig, p: &mut f64, g: f64, st: &mut [f64]) {
    let g = penalized(p, g, c.maximize, c.weight_decay, Some(c.lr), c.l1);
    *p -= c.lr * sign(st[0] * c.beta1 + g * (1.0 - c.beta1));
    st[0] = st[0] * c.beta2 + g * (1.0 - c.beta2);
}

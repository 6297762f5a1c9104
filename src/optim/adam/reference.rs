//! The f64 reference of Adam / AdamW / AMSGrad, line by line after PyTorch's
//! `_single_tensor_adam` (torch/optim/adam.py).

use crate::optim::AdamConfig;
use crate::optim::reference::penalized;

/// One element; `st` = [exp_avg, exp_avg_sq, (max_exp_avg_sq)].
pub(super) fn element(
    c: &AdamConfig,
    decoupled: bool,
    t: f64,
    p: &mut f64,
    g: f64,
    st: &mut [f64],
) {
    let g = penalized(
        p,
        g,
        c.maximize,
        c.weight_decay,
        decoupled.then_some(c.lr),
        c.l1,
    );
    st[0] += (1.0 - c.beta1) * (g - st[0]);
    st[1] = st[1] * c.beta2 + (1.0 - c.beta2) * g * g;
    let bias_correction1 = 1.0 - c.beta1.powf(t);
    let bias_correction2 = 1.0 - c.beta2.powf(t);
    let step_size = c.lr / bias_correction1;
    let v = if c.amsgrad {
        st[2] = st[2].max(st[1]);
        st[2]
    } else {
        st[1]
    };
    let denom = v.sqrt() / bias_correction2.sqrt() + c.eps;
    *p -= step_size * st[0] / denom;
}

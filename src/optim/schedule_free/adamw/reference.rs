//! The f64 reference of Schedule-Free AdamW, line by line after
//! schedulefree's `AdamWScheduleFree.step` (single-tensor branch).

use crate::optim::reference::penalized;
use crate::optim::schedule_free::adamw::ScheduleFreeAdamWConfig;

/// One element at step `t` with the step's `(lr_t, c)`; `st` = [z, exp_avg_sq].
pub(super) fn element(
    cfg: &ScheduleFreeAdamWConfig,
    t: f64,
    (lr, c): (f64, f64),
    y: &mut f64,
    g: f64,
    st: &mut [f64],
) {
    let g = penalized(y, g, cfg.maximize, 0.0, None, cfg.l1);
    if t == 1.0 {
        st[0] = *y;
    }
    st[1] = st[1] * cfg.beta2 + (1.0 - cfg.beta2) * g * g;
    let bias_correction2 = 1.0 - cfg.beta2.powf(t);
    let gn = g / ((st[1] / bias_correction2).sqrt() + cfg.eps) + cfg.weight_decay * *y;
    *y += c * (st[0] - *y);
    *y += gn * (lr * (cfg.beta1 * (1.0 - c) - 1.0));
    st[0] -= lr * gn;
}

//! The f64 reference of Schedule-Free SGD, line by line after
//! schedulefree's `SGDScheduleFree.step` (single-tensor branch).

use crate::optim::reference::penalized;
use crate::optim::schedule_free::sgd::ScheduleFreeSgdConfig;

/// One element at step `t` with the step's `(lr_t, c)`; `st` = [z].
pub(super) fn element(
    cfg: &ScheduleFreeSgdConfig,
    t: f64,
    (lr, c): (f64, f64),
    y: &mut f64,
    g: f64,
    st: &mut [f64],
) {
    let g = penalized(y, g, cfg.maximize, cfg.weight_decay, None, cfg.l1);
    if t == 1.0 {
        st[0] = *y;
    }
    *y += c * (st[0] - *y);
    *y += g * (lr * (cfg.momentum * (1.0 - c) - 1.0));
    st[0] -= lr * g;
}

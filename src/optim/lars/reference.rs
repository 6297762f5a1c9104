//! The f64 reference of LARS, line by line after optax's `lars` chain
//! (optax/_src/alias.py, transform.scale_by_trust_ratio and trace).

use crate::optim::LarsConfig;
use crate::optim::reference::penalized;
use crate::optim::trust::Trust;

/// `st` = [trace].
impl Trust for LarsConfig {
    fn direction(&self, _t: f64, p: f64, g: f64, _st: &mut [f64]) -> (f64, f64) {
        let mut q = p;
        let u = penalized(&mut q, g, self.maximize, self.weight_decay, None, self.l1);
        (q, u)
    }
    fn ratio(&self, p_norm: f64, u_norm: f64) -> f64 {
        if self.trust_ratio_mask == 0.0 {
            1.0
        } else if !p_norm.is_finite() || !u_norm.is_finite() {
            f64::NAN
        } else if p_norm == 0.0 || u_norm == 0.0 {
            1.0
        } else {
            self.trust_coefficient * p_norm / (u_norm + self.eps)
        }
    }
    fn apply(&self, t: f64, p: &mut f64, g: f64, st: &mut [f64], ratio: f64) {
        let (q, u) = self.direction(t, *p, g, st);
        let u = (u * ratio) * -self.lr;
        st[0] = u + self.momentum * st[0];
        *p = q + if self.nesterov {
            u + self.momentum * st[0]
        } else {
            st[0]
        };
    }
    fn accesses_per_param(&self) -> u64 {
        // measure: read p, g; apply: read p, g, trace, write trace and p.
        7
    }
}

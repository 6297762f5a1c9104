//! The f64 reference of LAMB, line by line after torch-optimizer's
//! `Lamb.step` (torch_optimizer/lamb.py).

use crate::optim::LambConfig;
use crate::optim::reference::penalized;
use crate::optim::trust::Trust;

fn adam_step(c: &LambConfig, p: f64, st: &[f64]) -> f64 {
    st[0] / (st[1].sqrt() + c.eps) + c.weight_decay * p
}

/// `st` = [exp_avg, exp_avg_sq].
impl Trust for LambConfig {
    fn direction(&self, _t: f64, p: f64, g: f64, st: &mut [f64]) -> (f64, f64) {
        let mut q = p;
        let g = penalized(&mut q, g, self.maximize, 0.0, None, self.l1);
        st[0] = st[0] * self.beta1 + g * (1.0 - self.beta1);
        st[1] = st[1] * self.beta2 + (1.0 - self.beta2) * g * g;
        (q, adam_step(self, q, st))
    }
    fn ratio(&self, p_norm: f64, u_norm: f64) -> f64 {
        let w = p_norm.min(self.clamp_value);
        if self.adam {
            1.0
        } else if !p_norm.is_finite() || !u_norm.is_finite() {
            f64::NAN
        } else if w == 0.0 || u_norm == 0.0 {
            1.0
        } else {
            w / u_norm
        }
    }
    fn apply(&self, t: f64, p: &mut f64, _g: f64, st: &mut [f64], ratio: f64) {
        *p -= self.step_size(t) * ratio * adam_step(self, *p, st);
    }
    fn accesses_per_param(&self) -> u64 {
        // measure: read p, g, exp_avg, exp_avg_sq, write both moments;
        // apply: read p and both moments, write p.
        10
    }
}

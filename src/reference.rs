//! A pure f64 CPU reference of every optimizer, written line by line after
//! PyTorch's `_single_tensor_*` functions. Used by tests and benches as the
//! oracle for the GPU kernels; slow and simple on purpose.

use std::collections::BTreeMap;

use crate::clip::{ClipScope, GradientConfig, LossScale, NonFinite, NormType};
use crate::error::Result;
use crate::layout::ParamLayout;
use crate::optim::{Algorithm, GroupHp, OptimizerSpec};

/// An optimizer's state on the host, in f64.
#[derive(Debug, Clone)]
pub struct Reference {
    algorithm: Algorithm,
    hps: Vec<GroupHp>,
    assignment: Vec<usize>,
    /// Steps taken (PyTorch's `state["step"]`: skipped steps do not count).
    pub step: u64,
    /// Calls of [`step`](Self::step), skipped or not.
    pub host_step: u64,
    /// Gradient multiplier (as `Optimizer::set_grad_scale`).
    pub grad_scale: f64,
    /// The gradient pipeline's configuration.
    pub gradients: GradientConfig,
    /// The dynamic loss scale (1 without one).
    pub scale: f64,
    /// GradScaler's growth tracker.
    pub growth_tracker: u32,
    /// Steps skipped for non-finite gradients.
    pub skipped: u64,
    /// Whether the last step saw a non-finite gradient.
    pub found_inf: bool,
    /// The norm of each group's clipping scope at the last step.
    pub norms: Vec<f64>,
    /// State per name (PyTorch's keys), per tensor.
    pub state: BTreeMap<&'static str, Vec<Vec<f64>>>,
}

fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

impl Reference {
    /// The reference of `spec` over `layout`, with PyTorch's initial state.
    pub fn new(spec: &OptimizerSpec, layout: &ParamLayout) -> Result<Reference> {
        let (hps, assignment) = spec.resolve(layout)?;
        let algorithm = spec.algorithm().clone();
        let init = match &algorithm {
            Algorithm::Adagrad(c) => c.initial_accumulator_value,
            _ => 0.0,
        };
        let state = algorithm
            .state_names()
            .into_iter()
            .map(|n| {
                let v = layout
                    .tensors()
                    .iter()
                    .map(|t| vec![init; t.numel as usize])
                    .collect();
                (n, v)
            })
            .collect();
        let gradients = *spec.gradients();
        let scale = match gradients.loss_scale {
            Some(LossScale::Dynamic(c)) => c.init_scale,
            _ => 1.0,
        };
        Ok(Reference {
            norms: vec![0.0; hps.len()],
            algorithm,
            hps,
            assignment,
            step: 0,
            host_step: 0,
            grad_scale: 1.0,
            gradients,
            scale,
            growth_tracker: 0,
            skipped: 0,
            found_inf: false,
            state,
        })
    }

    /// Sets the learning rate of `group`.
    pub fn set_lr(&mut self, group: usize, lr: f64) {
        self.hps[group].lr = lr;
    }

    /// The gradients after unscaling and clipping by value, the norm of each
    /// group's scope, and whether any was not finite (PyTorch's
    /// `GradScaler.unscale_`, `clip_grad_value_` and `clip_grad_norm_`).
    fn preprocess(&self, grads: &[Vec<f64>]) -> (Vec<Vec<f64>>, Vec<f64>, bool) {
        let g = &self.gradients;
        let pre = self.grad_scale * g.static_factor() / self.scale;
        let mut found = false;
        let u: Vec<Vec<f64>> = grads
            .iter()
            .map(|t| {
                t.iter()
                    .map(|&x| {
                        let mut v = x * pre;
                        if let Some(c) = g.clip_value {
                            v = v.clamp(-c, c);
                        }
                        if !v.is_finite() {
                            found = true;
                        }
                        v
                    })
                    .collect()
            })
            .collect();
        let n_groups = self.hps.len();
        let norm_type = g.clip_norm.map(|c| c.1).unwrap_or_default();
        let norm_of = |sel: &dyn Fn(usize) -> bool| -> f64 {
            let vals = u
                .iter()
                .enumerate()
                .filter(|(k, _)| sel(*k))
                .flat_map(|(_, t)| t.iter());
            match norm_type {
                NormType::L1 => vals.map(|x| x.abs()).sum(),
                NormType::L2 => vals.map(|x| x * x).sum::<f64>().sqrt(),
                NormType::Inf => vals.fold(0.0, |m, x| m.max(x.abs())),
            }
        };
        let norms = match g.clip_scope {
            ClipScope::Global => vec![norm_of(&|_| true); n_groups],
            ClipScope::PerGroup => (0..n_groups)
                .map(|grp| norm_of(&|k| self.assignment[k] == grp))
                .collect(),
        };
        (u, norms, found)
    }

    /// One step over all tensors, with the gradient pipeline of the spec.
    pub fn step(&mut self, params: &mut [Vec<f64>], grads: &[Vec<f64>]) {
        self.host_step += 1;
        let (u, norms, found) = self.preprocess(grads);
        self.found_inf = found;
        self.norms = norms
            .iter()
            .map(|&n| if found { f64::INFINITY } else { n })
            .collect();
        let skip = found && self.gradients.nonfinite != NonFinite::Propagate;
        if let Some(LossScale::Dynamic(c)) = self.gradients.loss_scale {
            if found {
                self.scale *= c.backoff_factor;
                self.growth_tracker = 0;
            } else if self.growth_tracker + 1 == c.growth_interval {
                self.scale *= c.growth_factor;
                self.growth_tracker = 0;
            } else {
                self.growth_tracker += 1;
            }
        }
        if skip {
            self.skipped += 1;
            return;
        }
        let coefs: Vec<f64> = norms
            .iter()
            .map(|&n| match self.gradients.clip_norm {
                Some((max_norm, _)) => (max_norm / (n + 1e-6)).min(1.0),
                None => 1.0,
            })
            .collect();
        self.step += 1;
        let t = self.step as f64;
        for k in 0..params.len() {
            let grp = self.assignment[k];
            let hp = self.hps[grp];
            for i in 0..params[k].len() {
                let mut st: Vec<f64> = self.state.values().map(|s| s[k][i]).collect();
                let p = &mut params[k][i];
                self.element(&hp, t, p, u[k][i] * coefs[grp], &mut st);
                for (s, v) in self.state.values_mut().zip(st) {
                    s[k][i] = v;
                }
            }
        }
    }

    /// The state of one element; `st` is in the order of `self.state`'s keys
    /// (alphabetical).
    fn element(&self, hp: &GroupHp, t: f64, p: &mut f64, grad: f64, st: &mut [f64]) {
        let names: Vec<&str> = self.state.keys().copied().collect();
        let idx = |n: &str| names.iter().position(|x| *x == n);
        let mut g = grad;
        let (lr, wd, l1) = (hp.lr, hp.weight_decay, hp.l1);
        match &self.algorithm {
            Algorithm::Sgd(c) => {
                if c.maximize {
                    g = -g;
                }
                g += wd * *p;
                g += l1 * sign(*p);
                if let Some(b) = idx("momentum_buffer") {
                    if t == 1.0 {
                        st[b] = g;
                    } else {
                        st[b] = st[b] * c.momentum + (1.0 - c.dampening) * g;
                    }
                    g = if c.nesterov {
                        g + c.momentum * st[b]
                    } else {
                        st[b]
                    };
                }
                *p -= lr * g;
            }
            Algorithm::Adam(_) | Algorithm::AdamW(_) => {
                let (c, decoupled) = match &self.algorithm {
                    Algorithm::Adam(c) => (*c, false),
                    Algorithm::AdamW(c) => ((*c).into(), true),
                    _ => unreachable!("matched above"),
                };
                if c.maximize {
                    g = -g;
                }
                if decoupled {
                    *p *= 1.0 - lr * wd;
                } else {
                    g += wd * *p;
                }
                g += l1 * sign(*p);
                let (m, v) = (idx("exp_avg").unwrap(), idx("exp_avg_sq").unwrap());
                st[m] += (1.0 - c.beta1) * (g - st[m]);
                st[v] = st[v] * c.beta2 + (1.0 - c.beta2) * g * g;
                let bc1 = 1.0 - c.beta1.powf(t);
                let bc2 = 1.0 - c.beta2.powf(t);
                let step_size = lr / bc1;
                let vv = match idx("max_exp_avg_sq") {
                    Some(x) => {
                        st[x] = st[x].max(st[v]);
                        st[x]
                    }
                    None => st[v],
                };
                let denom = vv.sqrt() / bc2.sqrt() + c.eps;
                *p -= step_size * st[m] / denom;
            }
            Algorithm::Adagrad(c) => {
                if c.maximize {
                    g = -g;
                }
                g += wd * *p;
                g += l1 * sign(*p);
                let clr = lr / (1.0 + (t - 1.0) * c.lr_decay);
                let s = idx("sum").unwrap();
                st[s] += g * g;
                *p -= clr * g / (st[s].sqrt() + c.eps);
            }
            Algorithm::Adadelta(c) => {
                if c.maximize {
                    g = -g;
                }
                g += wd * *p;
                g += l1 * sign(*p);
                let (sa, ad) = (idx("square_avg").unwrap(), idx("acc_delta").unwrap());
                st[sa] = st[sa] * c.rho + (1.0 - c.rho) * g * g;
                let std = (st[sa] + c.eps).sqrt();
                let delta = (st[ad] + c.eps).sqrt() / std * g;
                st[ad] = st[ad] * c.rho + (1.0 - c.rho) * delta * delta;
                *p -= lr * delta;
            }
            Algorithm::RmsProp(c) => {
                if c.maximize {
                    g = -g;
                }
                g += wd * *p;
                g += l1 * sign(*p);
                let sa = idx("square_avg").unwrap();
                st[sa] = st[sa] * c.alpha + (1.0 - c.alpha) * g * g;
                let mut avg = match idx("grad_avg") {
                    Some(ga) => {
                        st[ga] += (1.0 - c.alpha) * (g - st[ga]);
                        (st[sa] - st[ga] * st[ga]).sqrt()
                    }
                    None => st[sa].sqrt(),
                };
                avg += c.eps;
                match idx("momentum_buffer") {
                    Some(b) => {
                        st[b] = st[b] * c.momentum + g / avg;
                        *p -= lr * st[b];
                    }
                    None => *p -= lr * g / avg,
                }
            }
        }
    }
}

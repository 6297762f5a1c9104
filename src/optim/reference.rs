//! A pure f64 CPU reference of the whole step, the oracle of the tests and
//! benches (slow and simple on purpose; not part of the public API): the
//! gradient pipeline's f64 twin (`crate::grad::reference`), then each
//! optimizer's own element function (`src/optim/<name>/reference.rs`),
//! written line by line after PyTorch's `_single_tensor_*` functions.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::grad::reference::{Preprocessed, preprocess, update_scale};
use crate::grad::{GradientConfig, LossScale, NonFinite};
use crate::layout::ParamLayout;
use crate::optim::state::StateDtype;
use crate::optim::{Algorithm, OptimizerSpec};
use crate::precision::{self, QUANT_BLOCK};

/// `torch.sign` in f64.
pub(crate) fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// The gradient an optimizer's element update starts from, the f64 twin of
/// `penalize` in `prelude.wgsl`: `maximize` negates it, then weight decay
/// (decoupled with `Some(lr)`: `p *= 1 - lr * weight_decay`; else L2:
/// `g + weight_decay * p`), then wgpu-optim's `g + l1 * sign(p)`.
pub(crate) fn penalized(
    p: &mut f64,
    g: f64,
    maximize: bool,
    weight_decay: f64,
    decoupled_lr: Option<f64>,
    l1: f64,
) -> f64 {
    let mut g = if maximize { -g } else { g };
    match decoupled_lr {
        Some(lr) => *p *= 1.0 - lr * weight_decay,
        None => g += weight_decay * *p,
    }
    g + l1 * sign(*p)
}

/// An optimizer's state on the host, in f64.
#[derive(Debug, Clone)]
pub struct Reference {
    groups: Vec<Algorithm>,
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
    /// Each tensor's state format (`min_8bit_size` applied) and each
    /// state's dynamic map (signed?): after every step the states are
    /// rounded as the device stores them.
    pub state_dtypes: Vec<StateDtype>,
    signed: BTreeMap<&'static str, bool>,
    /// Each tensor's piece lengths (8-bit blocks restart at each piece):
    /// one piece per tensor unless [`set_chunk_elems`](Self::set_chunk_elems).
    pieces: Vec<Vec<usize>>,
    /// Each tensor's shape (Muon's matrices).
    shapes: Vec<Vec<usize>>,
}

impl Reference {
    /// The reference of `spec` over `layout`, with PyTorch's initial state
    /// (each group's own initial value, e.g. Adagrad's
    /// `initial_accumulator_value`).
    pub fn new(spec: &OptimizerSpec, layout: &ParamLayout) -> Result<Reference> {
        let resolved = spec.resolve(layout)?;
        // Every state name of every group's algorithm, with one entry per
        // tensor: empty for the tensors whose algorithm does not keep it.
        let mut state: BTreeMap<&'static str, Vec<Vec<f64>>> = BTreeMap::new();
        for (k, t) in layout.tensors().iter().enumerate() {
            let a = &resolved.groups[resolved.assignment[k]];
            for (name, init, n) in tensor_states(a, &t.shape) {
                let v = state
                    .entry(name)
                    .or_insert_with(|| vec![Vec::new(); layout.len()]);
                v[k] = vec![init; n];
            }
        }
        let state_dtypes = layout
            .tensors()
            .iter()
            .enumerate()
            .map(
                |(k, t)| match resolved.state_dtypes[resolved.assignment[k]] {
                    StateDtype::Blockwise8 if t.numel < spec.min_8bit_size => StateDtype::F32,
                    d => d,
                },
            )
            .collect();
        let mut signed = BTreeMap::new();
        for g in resolved.groups.iter().rev() {
            for (n, m) in g.algo().kernel().active_maps() {
                signed.insert(n, m == crate::optim::state::QMap::Signed);
            }
        }
        let gradients = *spec.gradients();
        let scale = match gradients.loss_scale {
            Some(LossScale::Dynamic(c)) => c.init_scale,
            _ => 1.0,
        };
        let mut r = Reference {
            norms: vec![0.0; resolved.groups.len()],
            groups: resolved.groups,
            assignment: resolved.assignment,
            step: 0,
            host_step: 0,
            grad_scale: 1.0,
            gradients,
            scale,
            growth_tracker: 0,
            skipped: 0,
            found_inf: false,
            state,
            state_dtypes,
            signed,
            pieces: layout
                .tensors()
                .iter()
                .map(|t| vec![t.numel as usize])
                .collect(),
            shapes: layout.tensors().iter().map(|t| t.shape.clone()).collect(),
        };
        // The initial states as the device stores them (Adagrad's
        // `initial_accumulator_value` rounded to bf16, say).
        for k in 0..layout.len() {
            round_states(
                &mut r.state,
                k,
                (r.state_dtypes[k], &r.signed, &r.pieces[k]),
            );
        }
        Ok(r)
    }

    /// Cuts the tensors into the pieces of a `ParamSet` with chunks of
    /// `chunk_elems` elements, where the device's 8-bit blocks restart.
    pub fn set_chunk_elems(&mut self, layout: &ParamLayout, chunk_elems: u64) -> Result<()> {
        let placement = crate::layout::Placement::new(layout, chunk_elems)?;
        self.pieces = (0..layout.len())
            .map(|k| placement.pieces(k).iter().map(|p| p.len as usize).collect())
            .collect();
        Ok(())
    }

    /// Schedule-Free's eval (`to_eval`) or train swap of `params`:
    /// `p = p + w * (z - p)` with each group's weight; nothing before the
    /// first step (no `z` yet), as `schedulefree`.
    pub fn swap(&mut self, params: &mut [Vec<f64>], to_eval: bool) {
        if self.step == 0 {
            return;
        }
        for (k, p) in params.iter_mut().enumerate() {
            let algo = self.groups[self.assignment[k]].algo();
            let (e, t) = algo.swap_weights().expect("an optimizer with an eval mode");
            let w = if to_eval { e } else { t };
            for (p, z) in p.iter_mut().zip(&self.state["z"][k]) {
                *p += w * (z - *p);
            }
        }
    }

    /// The config of param group `g`, with its running state.
    pub fn group(&self, g: usize) -> &Algorithm {
        &self.groups[g]
    }

    /// Sets the learning rate of `group`.
    pub fn set_lr(&mut self, group: usize, lr: f64) {
        self.set_hyperparameter(group, "lr", lr);
    }

    /// Sets hyperparameter `name` of `group` (it must exist).
    pub fn set_hyperparameter(&mut self, group: usize, name: &str, value: f64) {
        assert!(self.groups[group].algo_mut().set(name, value), "{name}");
    }

    /// One step over all tensors, with the gradient pipeline of the spec.
    pub fn step(&mut self, params: &mut [Vec<f64>], grads: &[Vec<f64>]) {
        self.host_step += 1;
        let pre = self.grad_scale * self.gradients.static_factor() / self.scale;
        let Preprocessed {
            grads: u,
            norms,
            found,
        } = preprocess(
            &self.gradients,
            pre,
            grads,
            &self.assignment,
            self.groups.len(),
        );
        self.found_inf = found;
        self.norms = norms
            .iter()
            .map(|&n| if found { f64::INFINITY } else { n })
            .collect();
        if let Some(LossScale::Dynamic(c)) = self.gradients.loss_scale {
            update_scale(&c, found, &mut self.scale, &mut self.growth_tracker);
        }
        if found && self.gradients.nonfinite != NonFinite::Propagate {
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
        for g in &mut self.groups {
            g.algo_mut().advance(self.step);
        }
        let t = self.step as f64;
        for k in 0..params.len() {
            let grp = self.assignment[k];
            let algo = self.groups[grp].algo();
            let names: Vec<&str> = tensor_states(&self.groups[grp], &self.shapes[k])
                .iter()
                .map(|a| a.0)
                .collect();
            let g = |i: usize| u[k][i] * coefs[grp];
            let p = &mut params[k];
            let rounding = (self.state_dtypes[k], &self.signed, &self.pieces[k]);
            let state = &mut self.state;
            let each = |state: &mut BTreeMap<&'static str, Vec<Vec<f64>>>,
                        p: &mut Vec<f64>,
                        f: &mut dyn FnMut(usize, &mut f64, &mut [f64])| {
                for (i, p) in p.iter_mut().enumerate() {
                    let mut st: Vec<f64> = names.iter().map(|n| state[n][k][i]).collect();
                    f(i, p, &mut st);
                    for (n, v) in names.iter().zip(st) {
                        state.get_mut(n).expect("kept")[k][i] = v;
                    }
                }
            };
            if let Some(whole) = algo.tensor_reference() {
                // Muon, Adafactor: the whole tensor at once.
                let g: Vec<f64> = (0..p.len()).map(g).collect();
                let mut st: Vec<Vec<f64>> = names.iter().map(|n| state[n][k].clone()).collect();
                whole.step_tensor(t, &self.shapes[k], p, &g, &mut st);
                for (n, v) in names.iter().zip(st) {
                    state.get_mut(n).expect("kept")[k] = v;
                }
                round_states(state, k, rounding);
                continue;
            }
            match algo.trust() {
                None => each(state, p, &mut |i, p, st| algo.reference(t, p, g(i), st)),
                Some(tr) => {
                    // LAMB, LARS: the direction and the norms over the
                    // tensor first, then the update with its ratio. The
                    // device stores the direction's states (LAMB's moments)
                    // in the measure pass and reads them back in the apply
                    // pass, so they are rounded in between.
                    let (mut p2, mut u2) = (0.0, 0.0);
                    each(state, p, &mut |i, p, st| {
                        let (q, d) = tr.direction(t, *p, g(i), st);
                        p2 += q * q;
                        u2 += d * d;
                    });
                    round_states(state, k, rounding);
                    let ratio = tr.ratio(p2.sqrt(), u2.sqrt());
                    each(state, p, &mut |i, p, st| tr.apply(t, p, g(i), st, ratio));
                }
            }
            round_states(state, k, rounding);
        }
    }
}

/// The states a tensor of algorithm `a` keeps: (name, initial value,
/// elements).
fn tensor_states(a: &Algorithm, shape: &[usize]) -> Vec<(&'static str, f64, usize)> {
    let numel = shape.iter().product::<usize>();
    match a.algo().tensor_states(shape) {
        Some(v) => v.into_iter().map(|(n, len)| (n, 0.0, len)).collect(),
        None => a
            .algo()
            .kernel()
            .active
            .into_iter()
            .map(|(n, init)| (n, init, numel))
            .collect(),
    }
}

/// Rounds the states of tensor `k` as the device stores them, given its
/// format, each state's map (signed?) and its piece lengths: the f32
/// result to bf16 (nearest even), or quantized per block of 256 elements of
/// each piece.
fn round_states(
    state: &mut BTreeMap<&'static str, Vec<Vec<f64>>>,
    k: usize,
    (d, signed, pieces): (StateDtype, &BTreeMap<&'static str, bool>, &Vec<usize>),
) {
    for (name, v) in state.iter_mut() {
        let v = &mut v[k];
        if v.is_empty() {
            // Not a state of this tensor's algorithm (or no elements).
            continue;
        }
        match d {
            StateDtype::F32 => {}
            StateDtype::Bf16 => {
                for x in v.iter_mut() {
                    *x = precision::bf16_value(precision::bf16_bits(*x as f32)) as f64;
                }
            }
            StateDtype::Blockwise8 => {
                let map = precision::dynamic_map(signed[name]);
                let mut rest = &mut v[..];
                let mut blocks = Vec::new();
                for &len in pieces {
                    let (piece, tail) = rest.split_at_mut(len);
                    blocks.extend(piece.chunks_mut(QUANT_BLOCK));
                    rest = tail;
                }
                for block in blocks {
                    let f: Vec<f32> = block.iter().map(|&x| x as f32).collect();
                    let (codes, absmax) = precision::quantize_block(&f, &map);
                    for (x, c) in block.iter_mut().zip(codes) {
                        *x = precision::dequantize(c, absmax, &map) as f64;
                    }
                }
            }
        }
    }
}

//! The f64 twin of the gradient pipeline (PyTorch's `GradScaler.unscale_`,
//! `clip_grad_value_`, `clip_grad_norm_` and `_amp_update_scale_`), used by
//! the optimizer reference (`crate::optim::reference`).

use crate::grad::{ClipScope, GradScalerConfig, GradientConfig, NormType};

/// The gradients after unscaling and clipping by value, the norm of each
/// group's scope, and whether any gradient was not finite.
pub(crate) struct Preprocessed {
    pub(crate) grads: Vec<Vec<f64>>,
    pub(crate) norms: Vec<f64>,
    pub(crate) found: bool,
}

/// Unscales by `pre` (host factor / loss scale), clips by value and takes
/// the norm of each group's scope.
pub(crate) fn preprocess(
    g: &GradientConfig,
    pre: f64,
    grads: &[Vec<f64>],
    assignment: &[usize],
    n_groups: usize,
) -> Preprocessed {
    let mut found = false;
    let u: Vec<Vec<f64>> = grads
        .iter()
        .map(|t| {
            t.iter()
                .map(|&x| {
                    let mut v = x * pre;
                    // Finiteness before any clamp (GradScaler's order).
                    if !v.is_finite() {
                        found = true;
                    }
                    if let Some(c) = g.clip_value {
                        v = v.clamp(-c, c);
                    }
                    v
                })
                .collect()
        })
        .collect();
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
            .map(|grp| norm_of(&|k| assignment[k] == grp))
            .collect(),
    };
    Preprocessed {
        grads: u,
        norms,
        found,
    }
}

/// GradScaler's update of a dynamic loss scale after a step.
pub(crate) fn update_scale(c: &GradScalerConfig, found: bool, scale: &mut f64, tracker: &mut u32) {
    if found {
        *scale *= c.backoff_factor;
        *tracker = 0;
    } else if *tracker + 1 == c.growth_interval {
        *scale *= c.growth_factor;
        *tracker = 0;
    } else {
        *tracker += 1;
    }
}

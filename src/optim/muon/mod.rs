//! Muon: config, uniform row, the element functions of its passes
//! (`update.wgsl`), their entry point (`passes.wgsl`), the batched
//! Newton-Schulz iteration on the device (`ns.rs`, `ns.wgsl`) and the f64
//! reference (`reference.rs`).

mod ns;
mod reference;

pub(crate) use ns::{MATRIX_SLOT, Orthogonalize, matrices};

use super::{Algo, KernelDesc, Passes, check_eps, check_min, hyperparameters};
use crate::error::{Error, Result};
use crate::optim::state::StateFormats;

/// How Muon scales the learning rate of an `A x B` matrix (torch's
/// `adjust_lr_fn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AdjustLr {
    /// `lr * sqrt(max(1, A / B))`, Keller Jordan's (torch's `"original"`,
    /// the default).
    #[default]
    Original,
    /// `lr * 0.2 * sqrt(max(A, B))`, Moonshot's, so that Muon reuses
    /// AdamW's lr and weight decay (torch's `"match_rms_adamw"`).
    MatchRmsAdamW,
    /// `lr * sqrt(A / B)`, Bernstein's (torch's `"spectral_unclamped"`).
    SpectralUnclamped,
}

impl AdjustLr {
    /// torch's name of the function.
    pub fn as_str(self) -> &'static str {
        match self {
            AdjustLr::Original => "original",
            AdjustLr::MatchRmsAdamW => "match_rms_adamw",
            AdjustLr::SpectralUnclamped => "spectral_unclamped",
        }
    }

    /// The factor of `lr` for a matrix of `rows x cols` (torch's
    /// `_adjust_lr`: `A, B = param.shape[:2]`), in f64.
    pub fn ratio(self, rows: u64, cols: u64) -> f64 {
        let (a, b) = (rows as f64, cols as f64);
        match self {
            AdjustLr::Original => (a / b).max(1.0).sqrt(),
            AdjustLr::MatchRmsAdamW => 0.2 * a.max(b).sqrt(),
            AdjustLr::SpectralUnclamped => (a / b).sqrt(),
        }
    }
}

/// Muon (Keller Jordan et al., 2024, "Muon: An optimizer for hidden layers
/// in neural networks"): momentum whose update matrix is orthogonalized by
/// a Newton-Schulz iteration, mirroring `torch.optim.Muon` (PyTorch 2.15).
///
/// ```text
/// input: lr, weight_decay, momentum, nesterov, (a, b, c) = ns_coefficients, eps,
///        ns_steps, adjust_lr_fn, l1, maximize
/// B_0 = 0
/// for t = 1, 2, ...
///     g = grad * grad_scale;  if maximize { g = -g };  g = g + l1 * sign(p)
///     B = lerp(B, g, 1 - momentum)
///     U = nesterov ? lerp(g, B, momentum) : B
///     X = U (transposed when rows > cols, so X is m x n with m <= n)
///     X = X / max(|X|_F, eps)
///     repeat ns_steps times:
///         G = X X^T;  H = b G + c G G;  X = a X + H X
///     p = p * (1 - lr * weight_decay)
///     p = p - lr * adjust_lr_fn(rows, cols) * X (transposed back)
/// ```
///
/// Every tensor of Muon's param groups must be 2-D, as in torch (an error
/// names the first one that is not): give biases, norms and embeddings a
/// param group that runs AdamW (`ParamGroup::algorithm`, in the same step),
/// as Muon's users do and torch's documentation advises.
///
/// **On the device.** A step is four kinds of pass in the one compute pass
/// and submit, whatever the number of matrices: per chunk, the momentum
/// and `U` (written into a scratch matrix, transposed where needed) with
/// each block's overflow-safe norm pair; one dispatch that reduces each
/// matrix's Frobenius norm; `3 x ns_steps` batched matrix products, each
/// one dispatch for all matrices together (64 x 64 output tiles in
/// workgroup memory); per chunk, the update. The norm is folded into the
/// first iteration's loads. Newton-Schulz runs in **f32**, where torch
/// runs it in bf16 (its `_zeropower_via_newtonschulz` casts to
/// `torch.bfloat16`): the result is closer to the exact iteration (the
/// f64 reference agrees to about 5e-6 of the update's largest entry on
/// lavapipe) and differs from torch's by bf16's rounding: 2-4% of the
/// largest entry of the first update in the golden cases
/// (`tests/golden/gen_optim.py` prints it). The scratch holds two
/// copies of every matrix and two `m x m` Gram matrices (8 + 8 m / n
/// bytes per param), each in one buffer of at most
/// `max_storage_buffer_binding_size`.
///
/// State: `momentum_buffer` (torch's name), f32 or bf16
/// (`OptimizerSpec::state_dtype`; one format for all of Muon's groups, as
/// its norms are reduced over one block numbering).
///
/// Per param group: `lr`, `weight_decay`, `momentum`, `eps`, `l1`;
/// `nesterov`, `ns_coefficients`, `ns_steps`, `adjust_lr_fn` and `maximize`
/// are per optimizer.
///
/// # Example
/// ```
/// use wgpu_optim::optim::{MuonConfig, OptimizerSpec};
/// let spec = OptimizerSpec::muon(MuonConfig { lr: 0.02, ..Default::default() });
/// assert!(spec.algorithm().validate().is_ok());
/// ```
///
/// # Errors
/// `lr < 0`, `momentum < 0`, `weight_decay < 0`, `eps < 0`, `l1 < 0`,
/// `ns_steps >= 100`, a coefficient not finite in f32, any NaN value or one
/// not finite in f32; a tensor that is not 2-D; matrices whose scratch
/// exceeds the device's binding size.
///
/// # Differences from PyTorch
/// - Newton-Schulz in f32, not bf16 (above).
/// - `lr * adjust_lr_fn(..)` is `f32(lr) * f32(ratio)` on the device; torch
///   rounds the f64 product once (at most one ulp of the step size apart).
/// - `l1` and `maximize` are extensions (torch's Muon has neither).
/// - A non-finite gradient anywhere in a matrix makes its whole update NaN
///   (its norm is NaN), as in torch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MuonConfig {
    /// Learning rate (default 1e-3).
    pub lr: f64,
    /// Decoupled weight decay (default 0.1).
    pub weight_decay: f64,
    /// Momentum factor (default 0.95).
    pub momentum: f64,
    /// Nesterov momentum (default true).
    pub nesterov: bool,
    /// The Newton-Schulz polynomial's `(a, b, c)` (default
    /// `(3.4445, -4.7750, 2.0315)`).
    pub ns_coefficients: (f64, f64, f64),
    /// Floor of the Frobenius norm the update is divided by (default 1e-7).
    pub eps: f64,
    /// Newton-Schulz iterations (default 5; fewer than 100).
    pub ns_steps: u32,
    /// The learning-rate adjustment per matrix shape (default
    /// [`AdjustLr::Original`]).
    pub adjust_lr_fn: AdjustLr,
    /// L1 penalty (default 0; not in torch).
    pub l1: f64,
    /// Maximize the objective (default false; not in torch).
    pub maximize: bool,
}

impl Default for MuonConfig {
    fn default() -> Self {
        MuonConfig {
            lr: 1e-3,
            weight_decay: 0.1,
            momentum: 0.95,
            nesterov: true,
            ns_coefficients: (3.4445, -4.7750, 2.0315),
            eps: 1e-7,
            ns_steps: 5,
            adjust_lr_fn: AdjustLr::Original,
            l1: 0.0,
            maximize: false,
        }
    }
}

hyperparameters!(MuonConfig {
    lr,
    weight_decay,
    momentum,
    eps,
    l1
});

/// One param group's row of `update.wgsl`'s uniform table (32 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct MuonRow {
    momentum: f32,
    /// 1 - momentum, from f64.
    one_minus_momentum: f32,
    lr: f32,
    /// 1 - lr * weight_decay, from f64.
    decay_factor: f32,
    l1: f32,
    eps: f32,
    _pad0: u32,
    _pad1: u32,
}

const SOURCE: &str = concat!(
    include_str!("../../gpu/common.wgsl"),
    include_str!("../../grad/norm.wgsl"),
    include_str!("../prelude.wgsl"),
    include_str!("update.wgsl")
);

/// The entry point of Muon's kernel (after trust/reduce.wgsl's helpers).
pub(crate) const PASSES_WGSL: &str = concat!(
    include_str!("../trust/reduce.wgsl"),
    include_str!("matrix.wgsl"),
    include_str!("passes.wgsl")
);

impl Algo for MuonConfig {
    fn validate(&self) -> Result<()> {
        let lr = self.lr;
        if !(lr >= 0.0 && lr <= f32::MAX as f64) {
            return Err(Error::invalid(
                "lr",
                lr,
                "a number >= 0, finite in f32",
                format!("Learning rate should be >= 0 but is: {lr}"),
            ));
        }
        let m = self.momentum;
        if !(m >= 0.0 && m <= f32::MAX as f64) {
            return Err(Error::invalid(
                "momentum",
                m,
                "a number >= 0, finite in f32",
                format!("momentum should be >= 0 but is: {m}"),
            ));
        }
        let wd = self.weight_decay;
        if !(wd >= 0.0 && wd <= f32::MAX as f64) {
            return Err(Error::invalid(
                "weight_decay",
                wd,
                "a number >= 0, finite in f32",
                format!("weight decay should be >= 0 but is: {wd}"),
            ));
        }
        check_eps("eps", self.eps)?;
        check_min("l1", self.l1, "l1")?;
        if self.ns_steps >= 100 {
            return Err(Error::invalid(
                "ns_steps",
                self.ns_steps,
                "fewer than 100",
                "Number of steps must be less than 100 for computational efficiency",
            ));
        }
        let (a, b, c) = self.ns_coefficients;
        for (i, v) in [a, b, c].into_iter().enumerate() {
            if !(v.is_finite() && v.abs() <= f32::MAX as f64) {
                return Err(Error::invalid(
                    format!("ns_coefficients[{i}]"),
                    v,
                    "a number finite in f32",
                    format!("Invalid Newton-Schulz coefficient at index {i}: {v}"),
                ));
            }
        }
        Ok(())
    }
    fn kernel(&self) -> KernelDesc {
        KernelDesc {
            name: "muon",
            source: SOURCE,
            slots: &["momentum_buffer"],
            formats: StateFormats::Bf16,
            active: vec![("momentum_buffer", 0.0)],
            constants: vec![
                ("MAXIMIZE", self.maximize as u8 as f64),
                ("DECOUPLED", 1.0),
                ("NESTEROV", self.nesterov as u8 as f64),
                ("NS_STEPS", self.ns_steps as f64),
            ],
        }
    }
    fn row(&self, _t: u64) -> Vec<u8> {
        let r = MuonRow {
            momentum: self.momentum as f32,
            one_minus_momentum: (1.0 - self.momentum) as f32,
            lr: self.lr as f32,
            decay_factor: (1.0 - self.lr * self.weight_decay) as f32,
            l1: self.l1 as f32,
            eps: self.eps as f32,
            _pad0: 0,
            _pad1: 0,
        };
        bytemuck::bytes_of(&r).to_vec()
    }
    fn momentum_name(&self) -> Option<&'static str> {
        Some("momentum")
    }
    fn passes(&self) -> Passes {
        Passes::Muon
    }
    fn tensor_reference(&self) -> Option<&dyn super::TensorReference> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::layout_check::{assert_row_matches, rust_struct};

    #[test]
    fn muon_row_matches_its_wgsl_struct() {
        assert_row_matches(
            &crate::gpu::layout_check::kernel_source(&MuonConfig::default()),
            rust_struct!(MuonRow {
                momentum,
                one_minus_momentum,
                lr,
                decay_factor,
                l1,
                eps,
                _pad0,
                _pad1
            }),
        );
    }

    #[test]
    fn adjusted_lr_ratios_are_torchs() {
        // torch.optim._muon._adjust_lr for shapes (A, B).
        assert_eq!(AdjustLr::Original.ratio(8, 2), 2.0);
        assert_eq!(AdjustLr::Original.ratio(2, 8), 1.0);
        assert_eq!(AdjustLr::MatchRmsAdamW.ratio(4, 9), 0.2 * 3.0);
        assert_eq!(AdjustLr::SpectralUnclamped.ratio(2, 8), 0.5);
    }
}

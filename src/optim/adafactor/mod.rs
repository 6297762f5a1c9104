//! Adafactor: config, uniform row, the element functions of its passes
//! (`update.wgsl`), their entry point (`passes.wgsl`), the factored
//! second moments' placement and passes on the device (`factors.rs`) and
//! the f64 reference (`reference.rs`).

mod factors;
mod reference;

pub(crate) use factors::{FACTORS_SLOTS, FINISH, Factorize, Layout, ROWS_COLS, state_shape};

use super::{Algo, KernelDesc, Passes, check_min, hyperparameters};
use crate::error::{Error, Result};
use crate::optim::state::StateFormats;

/// Adafactor as `torch.optim.Adafactor` (PyTorch 2.15) has it (Shazeer and
/// Stern, 2018, "Adafactor: Adaptive Learning Rates with Sublinear Memory
/// Cost", in torch's variant: no first moment, the step-dependent `beta2`,
/// relative step sizes and update clipping by the RMS):
///
/// ```text
/// input: lr, beta2_decay, (eps1, eps2), d, weight_decay, l1, maximize
/// for t = 1, 2, ...
///     g = grad * grad_scale;  if maximize { g = -g };  g = g + l1 * sign(p)
///     w = t ^ beta2_decay;  rho = min(lr, 1 / sqrt(t))
///     alpha = max(eps2, |p|_2 / sqrt(numel)) * rho
///     p = p * (1 - lr * weight_decay)
///     if the tensor has 2 or more dims (each [.., R, C] slice factored):
///         row_var = lerp(row_var, mean_c(g^2), w)      (R per slice)
///         col_var = lerp(col_var, mean_r(g^2), w)      (C per slice)
///         v = row_var col_var / max(mean_r(row_var), eps1)
///     else:
///         variance = lerp(variance, g^2, w);  v = variance
///     u = g / sqrt(max(v, eps1^2))
///     p = p - alpha / max(1, |u|_2 / (sqrt(numel) d)) * u
/// ```
///
/// State: `row_var` and `col_var` (torch's names and shapes: the tensor's
/// shape with the last dimension 1, and with the next-to-last 1) for
/// tensors of two or more dimensions, `variance` for the others; f32. So a
/// `R x C` matrix keeps `R + C` values, not `R C`.
///
/// **On the device** a step is, whatever the number of tensors: per chunk,
/// one dispatch that sums each row's squared gradients (1024 / C rows a
/// workgroup when C is a multiple of 4 up to 1024, 256 / C rows for other
/// C below 128, across slices; else a row each) and
/// each column's over ranges of 256 rows (1024 columns a workgroup, or 64
/// when C is not a multiple of 4; for slices of at most 64 rows, such as
/// convolution kernels, a thread per column sums it whole); one dispatch
/// that adds the ranges into the column variances (a workgroup per 256
/// columns) and each slice's mean row variance (a thread per slice for
/// short slices); then the trust passes' shape: per chunk, `u` and each
/// block's norm pairs of `p` and `u` (vector tensors' `variance` stored
/// here); one per-tensor reduce to `alpha / denom`; per chunk, the update.
/// `3 x chunks + 2` dispatches, fixed-order sums (no float atomics), no
/// readback. Every tensor of two or more dimensions must lie in one chunk
/// of its `ParamSet` (an error names the one that does not; build the
/// `ParamSet` with larger chunks).
///
/// Per param group: `lr`, `beta2_decay`, `eps1`, `eps2`, `d`,
/// `weight_decay`, `l1`; `maximize` per optimizer.
///
/// # Example
/// ```
/// use wgpu_optim::optim::{AdafactorConfig, OptimizerSpec};
/// let spec = OptimizerSpec::adafactor(AdafactorConfig { lr: 1e-2, ..Default::default() });
/// assert!(spec.algorithm().validate().is_ok());
/// ```
///
/// # Errors
/// torch's: `lr < 0`, `beta2_decay > 0`, `eps1 < 0`, `eps2 < 0`, `d < 1`,
/// `weight_decay < 0`; and `l1 < 0`, a NaN or a value not finite in f32.
///
/// # Differences from PyTorch
/// - `eps1` is a number, float32's machine epsilon by default: torch's
///   `eps=(None, 1e-3)` means the param dtype's epsilon, which for f32
///   params is the same value.
/// - Sums of squares are f32 sums in a fixed order of their own (torch's
///   `vector_norm` also sums in f32 without rescaling, so both overflow
///   past about 1.8e19); the results differ from torch's by rounding.
/// - A zero-length tensor keeps its (empty or zero) states; torch's
///   `col_var` of a `0 x C` matrix becomes NaN (0 / 0).
/// - `l1` is an extension (torch's Adafactor has none).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdafactorConfig {
    /// Learning rate (default 1e-2): the relative step size is
    /// `min(lr, 1 / sqrt(t))`.
    pub lr: f64,
    /// The exponent of the second moments' step-dependent weight
    /// `t ^ beta2_decay` (default -0.8; at most 0).
    pub beta2_decay: f64,
    /// The floor of the second-moment estimate, squared (default float32's
    /// machine epsilon, torch's `eps[0] = None` for f32 params).
    pub eps1: f64,
    /// The floor of the params' RMS in the step size (default 1e-3, torch's
    /// `eps[1]`).
    pub eps2: f64,
    /// The update's RMS is clipped to `d` (default 1; at least 1).
    pub d: f64,
    /// Decoupled weight decay, `p *= 1 - lr * weight_decay` (default 0).
    pub weight_decay: f64,
    /// L1 penalty (default 0; not in torch).
    pub l1: f64,
    /// Maximize the objective (default false).
    pub maximize: bool,
}

impl Default for AdafactorConfig {
    fn default() -> Self {
        AdafactorConfig {
            lr: 1e-2,
            beta2_decay: -0.8,
            eps1: f32::EPSILON as f64,
            eps2: 1e-3,
            d: 1.0,
            weight_decay: 0.0,
            l1: 0.0,
            maximize: false,
        }
    }
}

hyperparameters!(AdafactorConfig {
    lr,
    beta2_decay,
    eps1,
    eps2,
    d,
    weight_decay,
    l1
});

/// One param group's row of `update.wgsl`'s uniform table (48 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct AdafactorRow {
    /// `t ^ beta2_decay` (torch's `one_minus_beta2_t`), from f64.
    w: f32,
    /// `min(lr, 1 / sqrt(t))`, from f64.
    rho: f32,
    lr: f32,
    beta2_decay: f32,
    /// 1 - lr * weight_decay, from f64.
    decay_factor: f32,
    eps1: f32,
    /// eps1 * eps1, from f64.
    eps1_sq: f32,
    eps2: f32,
    d: f32,
    l1: f32,
    _pad0: u32,
    _pad1: u32,
}

const SOURCE: &str = concat!(
    include_str!("../../gpu/common.wgsl"),
    include_str!("../../grad/norm.wgsl"),
    include_str!("../prelude.wgsl"),
    include_str!("update.wgsl")
);

/// The entry point of Adafactor's kernel (after trust/reduce.wgsl's helpers).
pub(crate) const PASSES_WGSL: &str = concat!(
    include_str!("../trust/reduce.wgsl"),
    include_str!("passes.wgsl")
);

impl AdafactorConfig {
    /// `t ^ beta2_decay` and `min(lr, 1 / sqrt(t))` at step `t`, in f64.
    fn step_scalars(&self, t: f64) -> (f64, f64) {
        (t.powf(self.beta2_decay), self.lr.min(1.0 / t.sqrt()))
    }
}

/// `ok`, or torch's message for `field`.
fn check(ok: bool, field: &str, v: f64, allowed: &str, message: String) -> Result<()> {
    if ok && v.is_finite() && v.abs() <= f32::MAX as f64 {
        return Ok(());
    }
    Err(Error::invalid(field, v, allowed, message))
}

impl Algo for AdafactorConfig {
    fn validate(&self) -> Result<()> {
        let finite = "finite in f32";
        let (lr, b, e1, e2, d, wd) = (
            self.lr,
            self.beta2_decay,
            self.eps1,
            self.eps2,
            self.d,
            self.weight_decay,
        );
        check(
            lr >= 0.0,
            "lr",
            lr,
            &format!("a number >= 0, {finite}"),
            format!("Learning rate should be >= 0 but is: {lr}"),
        )?;
        check(
            b <= 0.0,
            "beta2_decay",
            b,
            &format!("a number <= 0, {finite}"),
            format!("beta2_decay should be <= 0 but is: {b}"),
        )?;
        check(
            e1 >= 0.0,
            "eps1",
            e1,
            &format!("a number >= 0, {finite}"),
            format!("epsilon1 should be >= 0 but is: {e1}"),
        )?;
        check(
            e2 >= 0.0,
            "eps2",
            e2,
            &format!("a number >= 0, {finite}"),
            format!("epsilon2 should be >= 0 but is: {e2}"),
        )?;
        check(
            d >= 1.0,
            "d",
            d,
            &format!("a number >= 1, {finite}"),
            format!("Clipping threshold d should be >= 1 but is: {d}"),
        )?;
        check(
            wd >= 0.0,
            "weight_decay",
            wd,
            &format!("a number >= 0, {finite}"),
            format!("weight_decay should be >= 0 but is: {wd}"),
        )?;
        check_min("l1", self.l1, "l1")
    }
    fn kernel(&self) -> KernelDesc {
        KernelDesc {
            name: "adafactor",
            source: SOURCE,
            // Its states live in the factored buffer (`factors.rs`), not in
            // per-element state buffers.
            slots: &[],
            formats: StateFormats::F32,
            active: vec![],
            constants: vec![("MAXIMIZE", self.maximize as u8 as f64), ("DECOUPLED", 1.0)],
        }
    }
    fn row(&self, t: u64) -> Vec<u8> {
        let (w, rho) = self.step_scalars(t as f64);
        let r = AdafactorRow {
            w: w as f32,
            rho: rho as f32,
            lr: self.lr as f32,
            beta2_decay: self.beta2_decay as f32,
            decay_factor: (1.0 - self.lr * self.weight_decay) as f32,
            eps1: self.eps1 as f32,
            eps1_sq: (self.eps1 * self.eps1) as f32,
            eps2: self.eps2 as f32,
            d: self.d as f32,
            l1: self.l1 as f32,
            _pad0: 0,
            _pad1: 0,
        };
        bytemuck::bytes_of(&r).to_vec()
    }
    fn passes(&self) -> Passes {
        Passes::Adafactor
    }
    fn tensor_reference(&self) -> Option<&dyn super::TensorReference> {
        Some(self)
    }
    fn tensor_states(&self, shape: &[usize]) -> Option<Vec<(&'static str, usize)>> {
        Some(factors::states_of(shape))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::layout_check::{assert_row_matches, rust_struct};

    #[test]
    fn adafactor_row_matches_its_wgsl_struct() {
        assert_row_matches(
            &crate::gpu::layout_check::kernel_source(&AdafactorConfig::default()),
            rust_struct!(AdafactorRow {
                w,
                rho,
                lr,
                beta2_decay,
                decay_factor,
                eps1,
                eps1_sq,
                eps2,
                d,
                l1,
                _pad0,
                _pad1
            }),
        );
    }

    #[test]
    fn step_scalars_are_torchs() {
        let c = AdafactorConfig::default();
        assert_eq!(c.step_scalars(1.0), (1.0, 1e-2));
        let (w, rho) = c.step_scalars(10_000.0);
        assert_eq!(w, 10_000f64.powf(-0.8));
        assert_eq!(rho, 1e-2);
        let (_, rho) = c.step_scalars(1e6);
        assert_eq!(rho, 1e-3);
    }
}

//! The gradient pipeline that runs on the device before the fused update:
//! clipping by value and by norm, the non-finite guard and loss scaling,
//! with no host round trip.
//!
//! This folder holds its configuration (this file), its device passes
//! (`device.rs`, `stats.wgsl`, `finalize.wgsl`), the asynchronous readback of
//! its statistics (`readback.rs`) and its f64 twin (`reference.rs`).
//!
//! When any of these is configured, a step records three kinds of dispatch
//! in one compute pass: `stats.wgsl` (per-block partial norms and a
//! non-finite flag, one workgroup per block), `finalize.wgsl` (one
//! workgroup: the norms in a fixed order, the clip coefficient, the skip
//! decision and the loss-scale update), then the optimizer kernel, which
//! multiplies each gradient by `averaging factor / loss scale`, clamps it
//! (clip by value), multiplies by the clip coefficient, and skips the whole
//! update when a gradient was not finite. The norm pass reads the gradients
//! once more: 4 extra bytes per parameter.
//!
//! Gradient accumulation over micro-batches (`accumulate.rs`,
//! [`GradAccumulator`]) lives here too.

mod accumulate;
pub(crate) mod device;
pub(crate) mod readback;
pub(crate) mod reference;

pub use accumulate::GradAccumulator;

use crate::error::{Error, Result};

/// The norm of `clip_grad_norm_`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum NormType {
    /// Sum of absolute values (`norm_type=1`).
    L1,
    /// Euclidean norm (`norm_type=2`, PyTorch's default).
    #[default]
    L2,
    /// Largest absolute value (`norm_type=inf`).
    Inf,
}

impl NormType {
    /// PyTorch's `norm_type` number: 1, 2 or infinity.
    ///
    /// # Errors
    /// Any other value (PyTorch supports any p; this crate supports 1, 2, inf).
    pub fn from_p(p: f64) -> Result<NormType> {
        match p {
            1.0 => Ok(NormType::L1),
            2.0 => Ok(NormType::L2),
            x if x == f64::INFINITY => Ok(NormType::Inf),
            _ => Err(Error::invalid(
                "norm_type",
                p,
                "1, 2 or inf",
                format!("unsupported norm_type {p}"),
            )),
        }
    }
    pub(crate) fn code(self) -> u32 {
        match self {
            NormType::L1 => 1,
            NormType::L2 => 2,
            NormType::Inf => 0,
        }
    }
}

/// Which tensors one norm covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum ClipScope {
    /// One norm over every tensor (`clip_grad_norm_(model.parameters())`).
    #[default]
    Global,
    /// One norm per param group, each group clipped by its own norm.
    PerGroup,
}

/// What to do with a step whose gradients contain NaN or ±Inf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum NonFinite {
    /// Apply the step anyway (PyTorch's default without a GradScaler).
    #[default]
    Propagate,
    /// Skip the whole step on the device: params, state and the device step
    /// count stay as they were, and a skipped-step counter grows (PyTorch's
    /// fused kernels with `found_inf`).
    Skip,
    /// Skip as above, and report [`Error::NonFinite`] from a later call of
    /// `step()` or `stats()` once the host learns of it (PyTorch's
    /// `error_if_nonfinite`, without forcing a sync inside `step()`).
    Error,
}

/// PyTorch `GradScaler` settings (dynamic loss scaling).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GradScalerConfig {
    /// Initial scale (default 2^16).
    pub init_scale: f64,
    /// Multiplier after `growth_interval` finite steps in a row (default 2).
    pub growth_factor: f64,
    /// Multiplier on a non-finite step (default 0.5).
    pub backoff_factor: f64,
    /// Finite steps in a row before growing (default 2000).
    pub growth_interval: u32,
}

impl Default for GradScalerConfig {
    fn default() -> Self {
        GradScalerConfig {
            init_scale: 65536.0,
            growth_factor: 2.0,
            backoff_factor: 0.5,
            growth_interval: 2000,
        }
    }
}

/// Loss scaling for mixed-precision users: gradients arrive multiplied by the
/// scale and are divided by it inside the update.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum LossScale {
    /// A fixed scale (folded into the host-side gradient factor).
    Static(f64),
    /// A scale kept on the device with `GradScaler` semantics.
    Dynamic(GradScalerConfig),
}

/// Gradient processing before the update. The default does nothing and
/// costs nothing.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct GradientConfig {
    /// `clip_grad_value_`: clamp each (unscaled) gradient to `[-v, v]`.
    pub clip_value: Option<f64>,
    /// `clip_grad_norm_`: `(max_norm, norm_type)`.
    pub clip_norm: Option<(f64, NormType)>,
    /// One norm over everything, or one per param group.
    pub clip_scope: ClipScope,
    /// The non-finite guard.
    pub nonfinite: NonFinite,
    /// Loss scaling.
    pub loss_scale: Option<LossScale>,
}

impl GradientConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        if let Some(v) = self.clip_value
            && !(v > 0.0 && v <= f32::MAX as f64)
        {
            return Err(Error::invalid(
                "clip_value",
                v,
                "a finite number > 0",
                format!("Invalid clip_value: {v}"),
            ));
        }
        if let Some((m, _)) = self.clip_norm
            && !(m > 0.0 && m <= f32::MAX as f64)
        {
            return Err(Error::invalid(
                "max_norm",
                m,
                "a finite number > 0",
                format!("Invalid max_norm: {m}"),
            ));
        }
        match self.loss_scale {
            // Both the scale and its inverse (the factor the device applies)
            // must be finite and non-zero in f32.
            Some(LossScale::Static(s))
                if !(s > 0.0
                    && s <= f32::MAX as f64
                    && 1.0 / s <= f32::MAX as f64
                    && (1.0 / s) as f32 > 0.0) =>
            {
                return Err(Error::invalid(
                    "loss_scale",
                    s,
                    "a number > 0 whose inverse is finite and non-zero in f32 (about 3e-39 .. 3e38)",
                    format!("Invalid loss scale: {s}"),
                ));
            }
            Some(LossScale::Dynamic(c)) => {
                if !(c.init_scale > 0.0
                    && c.init_scale.is_finite()
                    && c.init_scale < f32::MAX as f64)
                {
                    return Err(Error::invalid(
                        "init_scale",
                        c.init_scale,
                        "a finite number > 0 that fits in f32",
                        format!("Invalid init_scale: {}", c.init_scale),
                    ));
                }
                if !(c.growth_factor > 1.0 && c.growth_factor.is_finite()) {
                    return Err(Error::invalid(
                        "growth_factor",
                        c.growth_factor,
                        "a finite number > 1",
                        "The growth factor must be > 1.0.",
                    ));
                }
                if !(c.backoff_factor > 0.0 && c.backoff_factor < 1.0) {
                    return Err(Error::invalid(
                        "backoff_factor",
                        c.backoff_factor,
                        "0 < backoff_factor < 1",
                        "The backoff factor must be < 1.0.",
                    ));
                }
                if c.growth_interval == 0 {
                    return Err(Error::invalid(
                        "growth_interval",
                        0,
                        "an integer >= 1",
                        "growth_interval must be a positive integer",
                    ));
                }
                if self.nonfinite == NonFinite::Propagate {
                    return Err(Error::invalid(
                        "nonfinite",
                        "Propagate",
                        "Skip or Error with a dynamic loss scale",
                        "a dynamic loss scale must skip non-finite steps (GradScaler semantics)",
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// True when the stats and finalize passes run.
    pub fn needs_device_pass(&self) -> bool {
        self.clip_value.is_some()
            || self.clip_norm.is_some()
            || self.nonfinite != NonFinite::Propagate
            || matches!(self.loss_scale, Some(LossScale::Dynamic(_)))
    }

    /// The host-side factor of a static loss scale (1 otherwise).
    pub(crate) fn static_factor(&self) -> f64 {
        match self.loss_scale {
            Some(LossScale::Static(s)) => 1.0 / s,
            _ => 1.0,
        }
    }
}

/// The uniform of `stats.wgsl` and `finalize.wgsl` (48 bytes), written once
/// when the optimizer is built (the host-side gradient factor comes with the
/// optimizer's per-step `StepInfo`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct StatsParams {
    /// Clip value (used when clipping by value).
    pub clip_value: f32,
    /// Max norm, or 0 for no norm clipping.
    pub max_norm: f32,
    /// 1 = L1, 2 = L2, 0 = inf.
    pub norm_type: u32,
    /// Number of blocks (partials) over all chunks.
    pub n_partials: u32,
    /// Number of param groups.
    pub n_groups: u32,
    /// 1 for a norm per group.
    pub per_group: u32,
    /// 1 for a dynamic loss scale.
    pub dynamic_scale: u32,
    /// GradScaler growth factor.
    pub growth_factor: f32,
    /// GradScaler backoff factor.
    pub backoff_factor: f32,
    /// GradScaler growth interval.
    pub growth_interval: u32,
    /// 1 when non-finite steps are skipped.
    pub skip_nonfinite: u32,
    /// Padding.
    pub _pad0: u32,
}

/// The device-side control block (`struct Control` in the kernels): its
/// 16-byte header, followed by one [`GroupOut`] per param group.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct ControlHeader {
    /// 1 when the last step saw a non-finite gradient.
    pub found_inf: u32,
    /// Steps skipped so far.
    pub skipped: u32,
    /// The loss scale (1 without a dynamic scale).
    pub scale: f32,
    /// Finite steps since the scale last changed.
    pub growth_tracker: u32,
}

/// Per-group output of the finalize pass (`struct GroupOut`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct GroupOut {
    /// Averaging factor / loss scale applied to the raw gradient.
    pub pre: f32,
    /// Norm-clip coefficient `min(1, max_norm / (norm + 1e-6))`.
    pub coef: f32,
    /// The norm of the group's scope (+inf when a gradient was not finite).
    pub norm: f32,
    /// The clip value.
    pub clip_value: f32,
}

/// What the gradient pipeline knows after the steps submitted so far, read
/// back asynchronously (see `Optimizer::stats`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepStats {
    /// Steps submitted by the host when this was captured.
    pub host_step: u64,
    /// Steps skipped on the device so far.
    pub skipped_steps: u64,
    /// Whether the last step saw a non-finite gradient.
    pub found_inf: bool,
    /// The loss scale for the next step.
    pub loss_scale: f32,
    /// Finite steps since the scale last changed.
    pub growth_tracker: u32,
    /// The norm of each param group's clipping scope at the last step (all
    /// equal with a global scope), after unscaling; +inf if not finite.
    pub norms: Vec<f32>,
    /// The clip coefficient applied to each group at the last step.
    pub clip_coefs: Vec<f32>,
}

/// The state of the gradient pipeline that a checkpoint keeps.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GradientState {
    /// Steps skipped so far.
    pub skipped: u64,
    /// The loss scale.
    pub scale: f32,
    /// GradScaler's growth tracker.
    pub growth_tracker: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::layout_check::{assert_common_struct, rust_struct, validate_every_variant};

    #[test]
    fn gradient_pipeline_structs_match_their_wgsl_twins() {
        assert_common_struct(
            "GroupOut",
            rust_struct!(GroupOut {
                pre,
                coef,
                norm,
                clip_value
            }),
        );
        let (mut header, _) = rust_struct!(ControlHeader {
            found_inf,
            skipped,
            scale,
            growth_tracker
        });
        // The runtime-sized array of GroupOut follows the 16-byte header.
        header.insert("groups".into(), std::mem::size_of::<ControlHeader>() as u32);
        let (module, _) =
            crate::gpu::layout_check::parse("common", crate::gpu::layout_check::COMMON);
        assert_eq!(
            crate::gpu::layout_check::wgsl_struct(&module, "Control").0,
            header
        );
        assert_common_struct(
            "StatsParams",
            rust_struct!(StatsParams {
                clip_value,
                max_norm,
                norm_type,
                n_partials,
                n_groups,
                per_group,
                dynamic_scale,
                growth_factor,
                backoff_factor,
                growth_interval,
                skip_nonfinite,
                _pad0
            }),
        );
    }

    #[test]
    fn gradient_pipeline_kernels_validate_in_every_variant() {
        use crate::grad::device::{FINALIZE_SOURCE as finalize, stats_source};
        use crate::precision::ParamDtype;
        assert!(include_str!("stats.wgsl").starts_with("// "));
        for d in [ParamDtype::F32, ParamDtype::Bf16, ParamDtype::F16] {
            let stats = stats_source(d);
            assert!(stats.starts_with("// "));
            assert_eq!(
                validate_every_variant(
                    &format!("grad/stats ({})", d.as_str()),
                    &stats,
                    &["CLIP_VALUE"]
                ),
                2
            );
        }
        assert_eq!(validate_every_variant("grad/finalize", finalize, &[]), 1);
    }
}

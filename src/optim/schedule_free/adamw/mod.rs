//! Schedule-Free AdamW: config, uniform row, kernel (`update.wgsl`) and
//! f64 reference (`reference.rs`); the averaging it shares with
//! Schedule-Free SGD is in `schedule_free/mod.rs`.

mod reference;

use super::{Averaging, RUNNING, advance, check_averaging, scalars};
use crate::error::Result;
use crate::optim::state::StateFormats;
use crate::optim::{Algo, KernelDesc, check_adam_like, hyperparameters};

/// Schedule-Free AdamW (Defazio et al., 2024), mirroring `schedulefree`'s
/// `AdamWScheduleFree`: no learning-rate schedule (a built-in linear
/// warmup), the params interpolated between the base iterate `z` and the
/// running average `x`.
///
/// ```text
/// input: lr, beta1, beta2, eps, weight_decay, warmup_steps, r, weight_lr_power, l1, maximize
/// z = p at the first step, v_0 = 0; the params hold y in train mode
/// for t = 1, 2, ...
///     (lr_t, c) from the averaging (schedule_free module docs)
///     g = grad * grad_scale;  if maximize { g = -g }
///     g = g + l1 * sign(y)
///     v = beta2 * v + (1 - beta2) * g^2
///     u = g / (sqrt(v / (1 - beta2^t)) + eps) + weight_decay * y
///     y = lerp(y, z, c) + lr_t * (beta1 * (1 - c) - 1) * u
///     z = z - lr_t * u
/// eval():  p = lerp(y, z, 1 - 1/beta1)   (x, the weights to evaluate and save)
/// train(): p = lerp(x, z, 1 - beta1)     (back to y)
/// ```
///
/// Call [`Optimizer::eval`](crate::Optimizer::eval) before evaluating (and
/// before saving weights for inference) and
/// [`Optimizer::train`](crate::Optimizer::train) before the next step; a
/// step in eval mode is an error. A new optimizer starts in train mode
/// (`schedulefree` starts in eval mode and needs `train()` first; before
/// the first step both swaps are no-ops there and here).
///
/// State: `z`, `exp_avg_sq` (schedulefree's names). Running state, kept
/// per group as `schedulefree` keeps it in `param_groups` and saved with
/// checkpoints: `lr_max` (starts at 0) and `weight_sum` (starts at 0).
///
/// Per param group: every numeric field (`lr`, `beta1`, `beta2`, `eps`,
/// `weight_decay`, `warmup_steps`, `r`, `weight_lr_power`, `l1`).
///
/// # Example
/// ```
/// use wgpu_optim::optim::{OptimizerSpec, ScheduleFreeAdamWConfig};
/// let spec = OptimizerSpec::schedule_free_adamw(ScheduleFreeAdamWConfig {
///     lr: 2.5e-3,
///     warmup_steps: 100.0,
///     ..Default::default()
/// });
/// assert!(spec.algorithm().validate().is_ok());
/// ```
///
/// # Errors
/// `lr < 0`, `eps < 0`, `beta1` outside `(0, 1)` (the eval swap divides by
/// it), `beta2` outside `[0, 1)`, `weight_decay < 0`, `warmup_steps` not a
/// whole number >= 0, `r < 0`, `weight_lr_power < 0`, `l1 < 0`, any
/// NaN or value not finite in f32; with the non-finite guard's skipping
/// (`NonFinite::Skip` / `Error`), `gradients.nonfinite` (module docs).
///
/// # Differences from schedulefree
/// - `l1` and `maximize` are extensions; `foreach` does not apply (always
///   fused).
/// - The params start in train mode (see above); `step()` in eval mode is
///   an error, as `schedulefree` raises.
/// - The scalars of each step (`lr_t`, `c`, `1 - beta2^t`) are f64 on the
///   host, rounded once to f32; the update is f32 on the device.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScheduleFreeAdamWConfig {
    /// Learning rate (default 0.0025).
    pub lr: f64,
    /// Interpolation between `z` and `x` (default 0.9).
    pub beta1: f64,
    /// Coefficient of the running average of the squared gradient (default 0.999).
    pub beta2: f64,
    /// Added to the denominator (default 1e-8).
    pub eps: f64,
    /// Weight decay, added to the normalized gradient at `y` (default 0).
    pub weight_decay: f64,
    /// Steps of linear warmup (default 0).
    pub warmup_steps: f64,
    /// Polynomial weighting of the average, `(k + 1)^r` (default 0).
    pub r: f64,
    /// The average's weights are `lr_max^weight_lr_power` (default 2).
    pub weight_lr_power: f64,
    /// L1 penalty (default 0; not in schedulefree).
    pub l1: f64,
    /// Running state: the largest scheduled lr so far (starts at 0;
    /// schedulefree's -1 acts the same, as every lr is >= 0).
    pub lr_max: f64,
    /// Running state: the sum of the averaging weights so far (starts at 0).
    pub weight_sum: f64,
    /// Maximize the objective (default false).
    pub maximize: bool,
}

impl Default for ScheduleFreeAdamWConfig {
    fn default() -> Self {
        ScheduleFreeAdamWConfig {
            lr: 0.0025,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            warmup_steps: 0.0,
            r: 0.0,
            weight_lr_power: 2.0,
            l1: 0.0,
            lr_max: 0.0,
            weight_sum: 0.0,
            maximize: false,
        }
    }
}

hyperparameters!(ScheduleFreeAdamWConfig {
    lr,
    beta1,
    beta2,
    eps,
    weight_decay,
    warmup_steps,
    r,
    weight_lr_power,
    l1,
    lr_max,
    weight_sum
});

/// One param group's row of `update.wgsl`'s uniform table (64 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct SfAdamWRow {
    beta2: f32,
    /// 1 - beta2, from f64.
    one_minus_beta2: f32,
    eps: f32,
    weight_decay: f32,
    l1: f32,
    /// The scheduled lr of the step.
    lr: f32,
    /// The averaging weight c of the step.
    ckp1: f32,
    /// lr_t * (beta1 * (1 - c) - 1), from f64.
    y_coef: f32,
    /// 1 - beta2^t, from f64.
    bias_correction2: f32,
    /// 1 at step 1.
    first: f32,
    /// 1 - 1 / beta1, from f64.
    to_eval: f32,
    /// 1 - beta1, from f64.
    to_train: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
}

const SOURCE: &str = concat!(
    include_str!("../../../gpu/common.wgsl"),
    include_str!("../../prelude.wgsl"),
    include_str!("../swap.wgsl"),
    include_str!("update.wgsl")
);

impl ScheduleFreeAdamWConfig {
    fn averaging(&self) -> Averaging {
        Averaging {
            lr: self.lr,
            warmup_steps: self.warmup_steps,
            r: self.r,
            weight_lr_power: self.weight_lr_power,
        }
    }
    fn scalars(&self, t: u64) -> (f64, f64) {
        scalars(&self.averaging(), t, self.lr_max, self.weight_sum)
    }
}

impl Algo for ScheduleFreeAdamWConfig {
    fn validate(&self) -> Result<()> {
        check_adam_like(
            self.lr,
            self.eps,
            self.beta1,
            self.beta2,
            self.weight_decay,
            self.l1,
        )?;
        if self.beta1 == 0.0 {
            return Err(crate::Error::invalid(
                "beta1",
                self.beta1,
                "0 < beta1 < 1",
                "Invalid beta parameter at index 0: 0 (Schedule-Free's eval swap divides by beta1)",
            ));
        }
        check_averaging(&self.averaging(), self.lr_max, self.weight_sum)
    }
    fn kernel(&self) -> KernelDesc {
        KernelDesc {
            name: "schedule_free_adamw",
            source: SOURCE,
            slots: &["z", "exp_avg_sq"],
            formats: StateFormats::F32,
            active: vec![("z", 0.0), ("exp_avg_sq", 0.0)],
            constants: vec![("MAXIMIZE", self.maximize as u8 as f64)],
        }
    }
    fn row(&self, t: u64) -> Vec<u8> {
        let (lr, c) = self.scalars(t);
        let r = SfAdamWRow {
            beta2: self.beta2 as f32,
            one_minus_beta2: (1.0 - self.beta2) as f32,
            eps: self.eps as f32,
            weight_decay: self.weight_decay as f32,
            l1: self.l1 as f32,
            lr: lr as f32,
            ckp1: c as f32,
            y_coef: (lr * (self.beta1 * (1.0 - c) - 1.0)) as f32,
            bias_correction2: (1.0 - self.beta2.powf(t.max(1) as f64)) as f32,
            first: (t == 1) as u8 as f32,
            to_eval: (1.0 - 1.0 / self.beta1) as f32,
            to_train: (1.0 - self.beta1) as f32,
            _pad0: 0,
            _pad1: 0,
            _pad2: 0,
            _pad3: 0,
        };
        bytemuck::bytes_of(&r).to_vec()
    }
    fn momentum_name(&self) -> Option<&'static str> {
        Some("beta1")
    }
    fn reference(&self, t: f64, p: &mut f64, g: f64, st: &mut [f64]) {
        reference::element(self, t, self.scalars(t as u64), p, g, st)
    }
    fn advance(&mut self, t: u64) {
        advance(&self.averaging(), t, &mut self.lr_max, &mut self.weight_sum)
    }
    fn running(&self) -> &'static [&'static str] {
        RUNNING
    }
    fn swap_weights(&self) -> Option<(f64, f64)> {
        Some((1.0 - 1.0 / self.beta1, 1.0 - self.beta1))
    }
}

#[cfg(test)]
mod tests {
    use crate::gpu::layout_check::{assert_row_matches, rust_struct};

    #[test]
    fn schedule_free_adamw_row_matches_its_wgsl_struct() {
        assert_row_matches(
            &crate::gpu::layout_check::kernel_source(&super::ScheduleFreeAdamWConfig::default()),
            rust_struct!(super::SfAdamWRow {
                beta2,
                one_minus_beta2,
                eps,
                weight_decay,
                l1,
                lr,
                ckp1,
                y_coef,
                bias_correction2,
                first,
                to_eval,
                to_train,
                _pad0,
                _pad1,
                _pad2,
                _pad3
            }),
        );
    }
}

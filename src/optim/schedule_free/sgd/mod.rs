//! Schedule-Free SGD: config, uniform row, kernel (`update.wgsl`) and f64
//! reference (`reference.rs`); the averaging it shares with Schedule-Free
//! AdamW is in `schedule_free/mod.rs`.

mod reference;

use super::{Averaging, RUNNING, advance, check_averaging, scalars};
use crate::error::{Error, Result};
use crate::optim::state::StateFormats;
use crate::optim::{Algo, KernelDesc, check_min, hyperparameters};

/// Schedule-Free SGD (Defazio et al., 2024), mirroring `schedulefree`'s
/// `SGDScheduleFree`.
///
/// ```text
/// input: lr, momentum, weight_decay, warmup_steps, r, weight_lr_power, l1, maximize
/// z = p at the first step; the params hold y in train mode
/// for t = 1, 2, ...
///     (lr_t, c) from the averaging (schedule_free module docs)
///     g = grad * grad_scale;  if maximize { g = -g }
///     g = g + weight_decay * y + l1 * sign(y)
///     y = lerp(y, z, c) + lr_t * (momentum * (1 - c) - 1) * g
///     z = z - lr_t * g
/// eval():  p = lerp(y, z, 1 - 1/momentum)
/// train(): p = lerp(x, z, 1 - momentum)
/// ```
///
/// Train and eval mode as
/// [`ScheduleFreeAdamWConfig`](super::adamw::ScheduleFreeAdamWConfig).
///
/// State: `z`. Running state per group, saved with checkpoints: `lr_max`
/// (starts at 0) and `weight_sum` (starts at 0).
///
/// Per param group: every numeric field (`lr`, `momentum`, `weight_decay`,
/// `warmup_steps`, `r`, `weight_lr_power`, `l1`).
///
/// # Example
/// ```
/// use wgpu_optim::optim::{OptimizerSpec, ScheduleFreeSgdConfig};
/// let spec = OptimizerSpec::schedule_free_sgd(ScheduleFreeSgdConfig::default());
/// assert!(spec.algorithm().validate().is_ok());
/// ```
///
/// # Errors
/// `lr < 0`, `momentum` outside `(0, 1)` ("Momentum must be between 0 and 1
/// exclusive"), `weight_decay < 0`, `warmup_steps` not a whole number >= 0,
/// `r < 0`, `weight_lr_power < 0`, `l1 < 0`, any NaN or value not
/// finite in f32; with the non-finite guard's skipping,
/// `gradients.nonfinite` (module docs).
///
/// # Differences from schedulefree
/// As [`ScheduleFreeAdamWConfig`](super::adamw::ScheduleFreeAdamWConfig).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScheduleFreeSgdConfig {
    /// Learning rate (default 1).
    pub lr: f64,
    /// Interpolation between `z` and `x` (default 0.9).
    pub momentum: f64,
    /// L2 penalty added to the gradient at `y` (default 0).
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

impl Default for ScheduleFreeSgdConfig {
    fn default() -> Self {
        ScheduleFreeSgdConfig {
            lr: 1.0,
            momentum: 0.9,
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

hyperparameters!(ScheduleFreeSgdConfig {
    lr,
    momentum,
    weight_decay,
    warmup_steps,
    r,
    weight_lr_power,
    l1,
    lr_max,
    weight_sum
});

/// One param group's row of `update.wgsl`'s uniform table (32 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct SfSgdRow {
    weight_decay: f32,
    l1: f32,
    /// The scheduled lr of the step.
    lr: f32,
    /// The averaging weight c of the step.
    ckp1: f32,
    /// lr_t * (momentum * (1 - c) - 1), from f64.
    y_coef: f32,
    /// 1 at step 1.
    first: f32,
    /// 1 - 1 / momentum, from f64.
    to_eval: f32,
    /// 1 - momentum, from f64.
    to_train: f32,
}

const SOURCE: &str = concat!(
    include_str!("../../../gpu/common.wgsl"),
    include_str!("../../prelude.wgsl"),
    include_str!("../swap.wgsl"),
    include_str!("update.wgsl")
);

impl ScheduleFreeSgdConfig {
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

impl Algo for ScheduleFreeSgdConfig {
    fn validate(&self) -> Result<()> {
        let m = self.momentum;
        if !(m > 0.0 && m < 1.0) {
            return Err(Error::invalid(
                "momentum",
                m,
                "0 < momentum < 1",
                format!("Momentum must be between 0 and 1 exclusive: {m}"),
            ));
        }
        check_min("weight_decay", self.weight_decay, "weight_decay")?;
        check_min("l1", self.l1, "l1")?;
        check_averaging(&self.averaging(), self.lr_max, self.weight_sum)
    }
    fn kernel(&self) -> KernelDesc {
        KernelDesc {
            name: "schedule_free_sgd",
            source: SOURCE,
            slots: &["z"],
            formats: StateFormats::F32,
            active: vec![("z", 0.0)],
            constants: vec![("MAXIMIZE", self.maximize as u8 as f64)],
        }
    }
    fn row(&self, t: u64) -> Vec<u8> {
        let (lr, c) = self.scalars(t);
        let r = SfSgdRow {
            weight_decay: self.weight_decay as f32,
            l1: self.l1 as f32,
            lr: lr as f32,
            ckp1: c as f32,
            y_coef: (lr * (self.momentum * (1.0 - c) - 1.0)) as f32,
            first: (t == 1) as u8 as f32,
            to_eval: (1.0 - 1.0 / self.momentum) as f32,
            to_train: (1.0 - self.momentum) as f32,
        };
        bytemuck::bytes_of(&r).to_vec()
    }
    fn momentum_name(&self) -> Option<&'static str> {
        Some("momentum")
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
        Some((1.0 - 1.0 / self.momentum, 1.0 - self.momentum))
    }
}

#[cfg(test)]
mod tests {
    use crate::gpu::layout_check::{assert_row_matches, rust_struct};

    #[test]
    fn schedule_free_sgd_row_matches_its_wgsl_struct() {
        assert_row_matches(
            &crate::gpu::layout_check::kernel_source(&super::ScheduleFreeSgdConfig::default()),
            rust_struct!(super::SfSgdRow {
                weight_decay,
                l1,
                lr,
                ckp1,
                y_coef,
                first,
                to_eval,
                to_train
            }),
        );
    }
}

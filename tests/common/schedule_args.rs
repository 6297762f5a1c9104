//! Positional wrappers over `Schedule::cyclic` and `Schedule::one_cycle`'s
//! config structs, shared by the schedule tests.

use wgpu_optim::Error;
use wgpu_optim::schedule::{Anneal, CyclicConfig, CyclicMode, OneCycleConfig, Schedule};

/// `Schedule::cyclic` with every field of its config given, in order.
pub fn cyclic(
    base_lr: f64,
    max_lr: f64,
    step_size_up: u64,
    step_size_down: Option<u64>,
    mode: CyclicMode,
    cycle_momentum: Option<(f64, f64)>,
) -> Result<Schedule, Error> {
    Schedule::cyclic(CyclicConfig {
        base_lr,
        max_lr,
        step_size_up,
        step_size_down,
        mode,
        cycle_momentum,
    })
}

/// `Schedule::one_cycle` with every field of its config given, in order.
#[allow(clippy::too_many_arguments)]
pub fn one_cycle(
    max_lr: f64,
    total_steps: u64,
    pct_start: f64,
    anneal: Anneal,
    div_factor: f64,
    final_div_factor: f64,
    three_phase: bool,
    cycle_momentum: Option<(f64, f64)>,
) -> Result<Schedule, Error> {
    Schedule::one_cycle(OneCycleConfig {
        max_lr,
        total_steps,
        pct_start,
        anneal,
        div_factor,
        final_div_factor,
        three_phase,
        cycle_momentum,
    })
}

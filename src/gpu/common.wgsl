// common.wgsl — the structs and bindings' shapes that every kernel of the step shares: the
// optimizer kernels (optim/prelude.wgsl + one update.wgsl) and the gradient pipeline
// (grad/stats.wgsl, grad/finalize.wgsl). Prepended to each of them at compile time
// (`concat!` of `include_str!`s); the Rust twins are checked against it by the layout tests.
//
// Block      (Rust: optim::blocks::Block, 28 bytes)     one work item: `len` (<= 1024)
//            elements from `start` of one chunk, all of param group `group`; `index` is the
//            block's slot in the gradient pipeline's partial-norm buffer; `state` is its first
//            element in the chunk's state buffers of its format (optim/state/mod.rs; equal to
//            `start` when every state is f32); `tensor` is its tensor's index in the layout and
//            `local` its first element's index inside that tensor (for the per-matrix work of
//            Muon, optim/muon/).
// StepInfo   (Rust: optim::runtime::StepInfo, 80 bytes) written by the host every step, the
//            first 80 bytes of the optimizer's uniform buffer: the host-side gradient factor
//            (averaging, data-parallel mean, static loss scale: the one route of the gradient
//            scale into every kernel), the host step count t (1-based, 64 bits as t | t_hi << 32),
//            and how each group's 16-bit params take the result (seed, modes).
// StatsParams (below) and GroupOut / Control (Rust: grad::GroupOut / grad::ControlHeader) the gradient pipeline's
//            device-side control block: skipped steps, loss scale, per group the factors the
//            update applies.

struct Block {
    start: u32,
    len: u32,
    group: u32,
    index: u32,
    state: u32,
    tensor: u32,
    local: u32,
}

struct StepInfo {
    grad_scale: f32,
    t: u32,
    t_hi: u32,
    // Stochastic rounding's seed (OptimizerSpec::rounding_seed).
    seed: u32,
    // Each param group's ParamUpdate code, 2 bits per group: group g at bits 2 (g % 16) of
    // word g / 16 (precision::ParamUpdate::code).
    modes: array<vec4<u32>, 4>,
}

// A step count of up to 64 bits, as (low, high) u32 halves.
struct DeviceStep {
    lo: u32,
    hi: u32,
}

// The device's step count: the host's t (64 bits) minus the steps skipped on the device.
fn device_step(info: StepInfo, skipped: u32) -> DeviceStep {
    let borrow = select(0u, 1u, info.t < skipped);
    return DeviceStep(info.t - skipped, info.t_hi - borrow);
}

// The step count in f32 (exact below 2^24, then rounded once, as f32(t) would be).
fn step_f32(s: DeviceStep) -> f32 {
    return f32(s.hi) * 4294967296.0 + f32(s.lo);
}

fn step_is_one(s: DeviceStep) -> bool {
    return s.hi == 0u && s.lo == 1u;
}

struct GroupOut {
    pre: f32,
    coef: f32,
    norm: f32,
    clip_value: f32,
}

struct Control {
    found_inf: u32,
    skipped: u32,
    scale: f32,
    growth_tracker: u32,
    groups: array<GroupOut>,
}

// The gradient pipeline's configuration (Rust: grad::StatsParams, 48 bytes), written once when
// the optimizer is built: clip value and max norm, norm type (1 = L1, 2 = L2, 0 = inf), the
// number of partials and groups, the scope, GradScaler's settings, whether to skip.
struct StatsParams {
    clip_value: f32,
    max_norm: f32,
    norm_type: u32,
    n_partials: u32,
    n_groups: u32,
    per_group: u32,
    dynamic_scale: u32,
    growth_factor: f32,
    backoff_factor: f32,
    growth_interval: u32,
    skip_nonfinite: u32,
    _pad0: u32,
}

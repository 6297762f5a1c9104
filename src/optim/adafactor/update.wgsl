// adafactor/update.wgsl — the element functions of Adafactor's passes
// (optim/adafactor/passes.wgsl); assembled after gpu/common.wgsl, grad/norm.wgsl and
// optim/prelude.wgsl.
//
// Mirrors torch.optim.Adafactor (torch/optim/_adafactor.py, _single_tensor_adafactor), g being
// the loaded gradient (maximize applied) plus wgpu-optim's l1 * sign(p):
//   row / column passes:  row_var = torch_lerp(row_var, |g_row|^2 / C, w)
//                         col_var = torch_lerp(col_var, |g_col|^2 / R, w)
//   measure pass:         (vectors) variance = torch_lerp(variance, g * g, w)
//                         v = factored ? row_var * col_var / max(mean(row_var), eps1) : variance
//                         u = g * inverseSqrt(max(v, eps1^2))
//   reduce pass:          scale = max(eps2, |p| / sqrt(n)) * rho / max(1, |u| / (sqrt(n) d))
//   apply pass:           p = p * (1 - lr * weight_decay)                  (when WEIGHT_DECAY)
//                         p = p - scale * u
// After skipped steps w = t^beta2_decay and rho = min(lr, 1 / sqrt(t)) are recomputed in f32
// from the device step.
//
// Row (Rust: optim::adafactor::AdafactorRow): 12 x 4-byte scalars = 48 bytes.
struct Row {
    w: f32,
    rho: f32,
    lr: f32,
    beta2_decay: f32,
    decay_factor: f32,
    eps1: f32,
    eps1_sq: f32,
    eps2: f32,
    d: f32,
    l1: f32,
    _pad0: u32,
    _pad1: u32,
}

fn after_skipped_steps(h: Row, t: DeviceStep) -> Row {
    var r = h;
    let tf = step_f32(t);
    r.w = pow(tf, h.beta2_decay);
    r.rho = min(h.lr, inverseSqrt(tf));
    return r;
}

// torch.lerp on CPU for one f32, without a branch as prelude.wgsl's torch_lerp for vec4s.
fn lerp1(a: f32, b: f32, w: f32) -> f32 {
    let low = w < 0.5;
    return select(b, a, low) + select(-(1.0 - w), w, low) * (b - a);
}

// The gradient of 4 elements with wgpu-optim's l1 (sign of the param before the decay).
fn adafactor_grad(g: V, p: V, h: Row) -> V {
    if L1 {
        return g + h.l1 * sign(p);
    }
    return g;
}

// max(x, floor) that keeps a NaN x, as torch's clamp_(min=floor) does (WGSL's max may return
// the other operand for a NaN): no silent finite value from a NaN estimate.
fn clamp_min(x: f32, floor: f32) -> f32 {
    let nan = (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
    return select(floor, x, x >= floor || nan);
}

// u of one element from its gradient and second-moment estimate.
fn direction1(g: f32, v: f32, h: Row) -> f32 {
    return g * inverseSqrt(clamp_min(v, h.eps1_sq));
}

// The update of 4 elements with their tensor's scale.
fn apply4(i: u32, u: V, h: Row, scale: f32) {
    var p = load_param(i);
    if WEIGHT_DECAY {
        p = p * h.decay_factor;
    }
    store_param(i, p - scale * u);
}

// radam/update.wgsl — the per-element update of RAdam; assembled after gpu/common.wgsl and
// optim/prelude.wgsl (the block table, the gradient load, the skip).
//
// Mirrors torch.optim.RAdam `_single_tensor_radam` (torch/optim/radam.py), g being the
// loaded gradient:
//   DECOUPLED: p = p * (1 - lr * weight_decay)        else: g = g + weight_decay * p
//   g = g + l1 * sign(p)                               (wgpu-optim's L1 option)
//   exp_avg = lerp(exp_avg, g, 1 - beta1)
//   exp_avg_sq = exp_avg_sq * beta2 + (1 - beta2) * g * g
//   rectified (rho_t > 5):  p = p - step_size * exp_avg * (adaptive / (sqrt(exp_avg_sq) + eps))
//   else:                   p = p - step_size * exp_avg
// step_size = lr / (1 - beta1^t), adaptive = sqrt(1 - beta2^t) * r_t, and the regime are one
// param group's: computed on the host in f64 (optim/radam/mod.rs), so the branch is uniform;
// after skipped steps they are recomputed here in f32 from the device step, the regime from the
// first rectified step (rectify_from) that the host found in f64.
//
// Row (Rust: optim::radam::RAdamRow): 16 x 4-byte scalars = 64 bytes.
// State bindings: 6 exp_avg, 7 exp_avg_sq.

struct Row {
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    eps: f32,
    weight_decay: f32,
    l1: f32,
    decay_factor: f32,
    step_size: f32,
    adaptive: f32,
    rectified: u32,
    lr: f32,
    rectify_from: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}


fn after_skipped_steps(h: Row, t: DeviceStep) -> Row {
    var r = h;
    let tf = step_f32(t);
    let c1 = bias_correction(h.one_minus_beta1, tf);
    let c2 = bias_correction(h.one_minus_beta2, tf);
    r.step_size = h.lr / c1.bc;
    // rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t). While 1 - beta2^t is small its two terms
    // are both near rho_inf and cancel, so there it is rewritten as
    // 2 t - 1 - 2 d / (x (1 - beta2^t)), d = t x - (1 - beta2^t); later (large t) that form
    // cancels instead and the direct one is accurate.
    let x = h.one_minus_beta2;
    let rho_inf = 2.0 / x - 1.0;
    var rho_t = rho_inf - 2.0 * tf * c2.q / c2.bc;
    if c2.bc < 0.375 {
        rho_t = 2.0 * tf - 1.0 - 2.0 * c2.d / (x * c2.bc);
    }
    // rho_t grows with t: the host found the first rectified step in f64.
    let rectified = h.rectify_from != 0xffffffffu && (t.hi != 0u || t.lo >= h.rectify_from);
    r.rectified = select(0u, 1u, rectified);
    let rect = sqrt((rho_t - 4.0) * (rho_t - 2.0) * rho_inf
        / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t));
    r.adaptive = select(0.0, sqrt(c2.bc) * rect, rectified);
    return r;
}

fn update(i: u32, grad_i: V, h: Row) {
    let pen = penalize(load_param(i), grad_i, h.weight_decay, h.decay_factor, h.l1);
    let p = pen.p;
    let g = pen.g;
    let m = torch_lerp(load_exp_avg(i), g, h.one_minus_beta1);
    let v = load_exp_avg_sq(i) * h.beta2 + h.one_minus_beta2 * g * g;
    store_exp_avg(i, m);
    store_exp_avg_sq(i, v);
    if h.rectified != 0u {
        store_param(i, p - h.step_size * m * (h.adaptive / (sqrt(v) + h.eps)));
    } else {
        store_param(i, p - h.step_size * m);
    }
}

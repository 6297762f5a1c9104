// lamb/update.wgsl — the element functions of LAMB for the three passes of
// optim/trust/passes.wgsl; assembled after gpu/common.wgsl, grad/norm.wgsl and optim/prelude.wgsl.
//
// Mirrors torch-optimizer's `Lamb.step` (torch_optimizer/lamb.py), g being the loaded gradient:
//   g = g + l1 * sign(p)                                     (wgpu-optim's L1 option)
//   exp_avg = exp_avg * beta1 + (1 - beta1) * g
//   exp_avg_sq = exp_avg_sq * beta2 + (1 - beta2) * g * g
//   adam_step = exp_avg / (sqrt(exp_avg_sq) + eps) + weight_decay * p
//   trust_ratio = min(|p|, clamp_value) / |adam_step|   (1 if either is 0, or in `adam` mode)
//   p = p - step_size * trust_ratio * adam_step           step_size = lr, or with `debias`
//                                                         lr * sqrt(1 - beta2^t) / (1 - beta1^t)
// `direction` (the measure pass) updates the moments and returns adam_step; `apply` recomputes
// adam_step from the new moments. With `debias`, step_size is recomputed here after skipped
// steps (prelude.wgsl's bias_correction).
//
// Row (Rust: optim::lamb::LambRow): 12 x 4-byte scalars = 48 bytes.
// State bindings: 8 exp_avg, 9 exp_avg_sq (6 and 7 are the trust passes' buffers).

struct Row {
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    eps: f32,
    weight_decay: f32,
    l1: f32,
    step_size: f32,
    clamp_value: f32,
    lr: f32,
    // 1.0 with `debias`, else 0.0.
    debias: f32,
    // 1.0 in `adam` mode (trust ratio 1), else 0.0.
    adam: f32,
}


fn after_skipped_steps(h: Row, t: DeviceStep) -> Row {
    var r = h;
    if h.debias != 0.0 {
        let tf = step_f32(t);
        let bc1 = bias_correction(h.one_minus_beta1, tf).bc;
        r.step_size = h.lr * sqrt(bias_correction(h.one_minus_beta2, tf).bc) / bc1;
    }
    return r;
}

fn adam_step(p: V, m: V, v: V, h: Row) -> V {
    return m / (sqrt(v) + h.eps) + h.weight_decay * p;
}

fn direction(i: u32, grad_i: V, h: Row) -> Direction {
    let pen = penalize(load_param(i), grad_i, 0.0, 1.0, h.l1);
    let g = pen.g;
    let m = load_exp_avg(i) * h.beta1 + g * h.one_minus_beta1;
    let v = load_exp_avg_sq(i) * h.beta2 + h.one_minus_beta2 * g * g;
    store_exp_avg(i, m);
    store_exp_avg_sq(i, v);
    return Direction(pen.p, adam_step(pen.p, m, v, h));
}

fn trust_ratio(p_norm: f32, u_norm: f32, h: Row) -> f32 {
    if h.adam != 0.0 {
        return 1.0;
    }
    // A NaN or infinite param or direction anywhere in the tensor: a NaN ratio, so the whole
    // tensor's update is NaN (never silently the ratio of its finite part).
    if !finite(p_norm) || !finite(u_norm) {
        return poison(p_norm + u_norm);
    }
    let w = min(p_norm, h.clamp_value);
    if w == 0.0 || u_norm == 0.0 {
        return 1.0;
    }
    return w / u_norm;
}

fn apply(i: u32, grad_i: V, h: Row, ratio: f32) {
    let p = load_param(i);
    store_param(i, p - (h.step_size * ratio) * adam_step(p, load_exp_avg(i), load_exp_avg_sq(i), h));
}

// adopt/update.wgsl — the per-element update of ADOPT; assembled after gpu/common.wgsl and
// optim/prelude.wgsl (the block table, the gradient load, the skip).
//
// Mirrors optax.contrib.scale_by_adopt (optax/contrib/_adopt.py), g being the loaded gradient:
//   DECOUPLED: p = p * (1 - lr * weight_decay)        else: g = g + weight_decay * p
//   g = g + l1 * sign(p)                               (wgpu-optim's L1 option)
//   first step: exp_avg_sq = g * g, nothing else (but the decoupled decay above, as optax)
//   n = g / max(sqrt(exp_avg_sq), eps)                 (the previous second moment)
//   CLIP: n = clamp(n, -clip_value, clip_value)        clip_value = (t - 1)^0.25
//   exp_avg = exp_avg * beta1 + (1 - beta1) * n
//   p = p - lr * (NESTEROV: exp_avg * beta1 + (1 - beta1) * n, else exp_avg)
//   exp_avg_sq = exp_avg_sq * beta2 + (1 - beta2) * g * g
// clip_value and the first-step flag are one param group's (a uniform branch): computed on the
// host (optim/adopt/mod.rs); after skipped steps they are recomputed here from the device step.
//
// Row (Rust: optim::adopt::AdoptRow): 12 x 4-byte scalars = 48 bytes.
// State bindings: 6 exp_avg, 7 exp_avg_sq.
override NESTEROV: bool = false;
override CLIP: bool = true;

struct Row {
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    eps: f32,
    weight_decay: f32,
    l1: f32,
    decay_factor: f32,
    lr: f32,
    clip_value: f32,
    first: u32,
    _pad0: u32,
}


fn after_skipped_steps(h: Row, t: DeviceStep) -> Row {
    var r = h;
    r.first = select(0u, 1u, step_is_one(t));
    r.clip_value = pow(step_f32(t) - 1.0, 0.25);
    return r;
}

fn update(i: u32, grad_i: V, h: Row) {
    let pen = penalize(load_param(i), grad_i, h.weight_decay, h.decay_factor, h.l1);
    let p = pen.p;
    let g = pen.g;
    let v = load_exp_avg_sq(i);
    if h.first != 0u {
        store_exp_avg_sq(i, g * g);
        store_param(i, p);
        return;
    }
    var n = g / max(sqrt(v), V(h.eps));
    if CLIP {
        n = clamp(n, V(-h.clip_value), V(h.clip_value));
    }
    let m = load_exp_avg(i) * h.beta1 + h.one_minus_beta1 * n;
    store_exp_avg(i, m);
    var u = m;
    if NESTEROV {
        u = m * h.beta1 + h.one_minus_beta1 * n;
    }
    store_param(i, p - h.lr * u);
    store_exp_avg_sq(i, v * h.beta2 + h.one_minus_beta2 * g * g);
}

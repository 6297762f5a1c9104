// lars/update.wgsl — the element functions of LARS for the three passes of
// optim/trust/passes.wgsl; assembled after gpu/common.wgsl, grad/norm.wgsl and optim/prelude.wgsl.
//
// Mirrors optax's `lars` (optax/_src/alias.py: add_decayed_weights, masked
// scale_by_trust_ratio, scale_by_learning_rate, trace), g being the loaded gradient:
//   u = g + weight_decay * p + l1 * sign(p)                 (l1: wgpu-optim's option)
//   r = trust_coefficient * |p| / (|u| + eps)                per tensor; 1 if |p| or |u| is 0,
//                                                            or where trust_ratio_mask is 0
//   u = (u * r) * -lr
//   trace = u + momentum * trace
//   p = p + trace                       NESTEROV: p = p + u + momentum * trace
// Nothing depends on the step count, so skipped steps need no recomputation.
//
// Row (Rust: optim::lars::LarsRow): 8 x 4-byte scalars = 32 bytes.
// State bindings: 8 trace (6 and 7 are the trust passes' buffers).
override NESTEROV: bool = false;

struct Row {
    lr: f32,
    weight_decay: f32,
    l1: f32,
    trust_coefficient: f32,
    eps: f32,
    momentum: f32,
    // 1.0 where the trust ratio applies, 0.0 where the group is masked out.
    trust_ratio_mask: f32,
    _pad0: u32,
}


fn after_skipped_steps(h: Row, t: DeviceStep) -> Row {
    return h;
}

fn direction(i: u32, grad_i: V, h: Row) -> Direction {
    let pen = penalize(load_param(i), grad_i, h.weight_decay, 1.0, h.l1);
    return Direction(pen.p, pen.g);
}

fn trust_ratio(p_norm: f32, u_norm: f32, h: Row) -> f32 {
    if h.trust_ratio_mask == 0.0 {
        return 1.0;
    }
    // A NaN or infinite param or update anywhere in the tensor: a NaN ratio (the whole
    // tensor's update NaN, never silently the ratio of its finite part).
    if !finite(p_norm) || !finite(u_norm) {
        return poison(p_norm + u_norm);
    }
    if p_norm == 0.0 || u_norm == 0.0 {
        return 1.0;
    }
    return h.trust_coefficient * p_norm / (u_norm + h.eps);
}

fn apply(i: u32, grad_i: V, h: Row, ratio: f32) {
    let pen = penalize(load_param(i), grad_i, h.weight_decay, 1.0, h.l1);
    let u = (pen.g * ratio) * -h.lr;
    let tr = u + h.momentum * load_trace(i);
    store_trace(i, tr);
    var out = tr;
    if NESTEROV {
        out = u + h.momentum * tr;
    }
    store_param(i, pen.p + out);
}

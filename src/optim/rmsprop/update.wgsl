// rmsprop/update.wgsl — the per-element update of RMSprop (centered, momentum); assembled after
// gpu/common.wgsl and optim/prelude.wgsl.
//
// Mirrors torch.optim.RMSprop `_single_tensor_rmsprop` (torch/optim/rmsprop.py), g being the
// loaded gradient:
//   g = g + weight_decay * p + l1 * sign(p)
//   square_avg = square_avg * alpha + (1 - alpha) * g * g
//   CENTERED: grad_avg = lerp(grad_avg, g, 1 - alpha); avg = sqrt(square_avg - grad_avg^2)
//   else:     avg = sqrt(square_avg)
//   avg = avg + eps
//   MOMENTUM: buf = buf * momentum + g / avg; p = p - lr * buf
//   else:     p = p - lr * g / avg
// Nothing depends on the step count.
//
// Row (Rust: optim::rmsprop::RmsPropRow): 8 x 4-byte scalars = 32 bytes.
// State bindings: 6 square_avg, 7 momentum_buffer (a 1-vec4 dummy unless MOMENTUM),
// 8 grad_avg (a 1-vec4 dummy unless CENTERED).
override CENTERED: bool = false;
override MOMENTUM: bool = false;

struct Row {
    lr: f32,
    alpha: f32,
    one_minus_alpha: f32,
    eps: f32,
    weight_decay: f32,
    l1: f32,
    momentum: f32,
    _pad0: u32,
}


fn after_skipped_steps(h: Row, t: DeviceStep) -> Row {
    return h;
}

fn update(i: u32, grad_i: V, h: Row) {
    let pen = penalize(load_param(i), grad_i, h.weight_decay, 1.0, h.l1);
    let p = pen.p;
    let g = pen.g;
    let sa = load_square_avg(i) * h.alpha + h.one_minus_alpha * g * g;
    store_square_avg(i, sa);
    var avg: V;
    if CENTERED {
        let ga = torch_lerp(load_grad_avg(i), g, h.one_minus_alpha);
        store_grad_avg(i, ga);
        avg = sqrt(sa - ga * ga);
    } else {
        avg = sqrt(sa);
    }
    avg = avg + h.eps;
    if MOMENTUM {
        let buf = load_momentum_buffer(i) * h.momentum + g / avg;
        store_momentum_buffer(i, buf);
        store_param(i, p - h.lr * buf);
    } else {
        store_param(i, p - h.lr * (g / avg));
    }
}

// sgd/update.wgsl — the per-element update of SGD (momentum, dampening, Nesterov); assembled
// after gpu/common.wgsl and optim/prelude.wgsl.
//
// Mirrors torch.optim.SGD `_single_tensor_sgd` (torch/optim/sgd.py), g being the loaded gradient:
//   g = g + weight_decay * p + l1 * sign(p)
//   MOMENTUM: buf = first_step ? g : buf * momentum + (1 - dampening) * g
//             g = NESTEROV ? g + momentum * buf : buf
//   p = p - lr * g
// On the first step PyTorch clones the gradient into the buffer (no dampening): the host sets
// `first_step` = 1 for the optimizer's first step; after skipped steps it is recomputed here
// from the device step.
//
// Row (Rust: optim::sgd::SgdRow): 8 x 4-byte scalars = 32 bytes.
// State bindings: 6 momentum_buffer (a 1-vec4 dummy unless MOMENTUM).
override MOMENTUM: bool = false;
override NESTEROV: bool = false;

struct Row {
    lr: f32,
    momentum: f32,
    one_minus_dampening: f32,
    weight_decay: f32,
    l1: f32,
    first_step: u32,
    _pad0: u32,
    _pad1: u32,
}


fn after_skipped_steps(h: Row, t: DeviceStep) -> Row {
    var r = h;
    r.first_step = select(0u, 1u, step_is_one(t));
    return r;
}

fn update(i: u32, grad_i: V, h: Row) {
    let pen = penalize(load_param(i), grad_i, h.weight_decay, 1.0, h.l1);
    let p = pen.p;
    var g = pen.g;
    if MOMENTUM {
        var buf = g;
        if h.first_step == 0u {
            buf = load_momentum_buffer(i) * h.momentum + h.one_minus_dampening * g;
        }
        store_momentum_buffer(i, buf);
        if NESTEROV {
            g = g + h.momentum * buf;
        } else {
            g = buf;
        }
    }
    store_param(i, p - h.lr * g);
}

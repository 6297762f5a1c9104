// lion/update.wgsl — the per-element update of Lion; assembled after gpu/common.wgsl and
// optim/prelude.wgsl (the block table, the gradient load, the skip).
//
// Mirrors lion-pytorch's `update_fn` (lion_pytorch/lion_pytorch.py), g being the loaded
// gradient:
//   p = p * (1 - lr * weight_decay)                    (always decoupled: DECOUPLED is set)
//   g = g + l1 * sign(p)                               (wgpu-optim's L1 option)
//   p = p - lr * sign(exp_avg * beta1 + g * (1 - beta1))
//   exp_avg = exp_avg * beta2 + g * (1 - beta2)
// Nothing depends on the step count, so skipped steps need no recomputation.
//
// Row (Rust: optim::lion::LionRow): 8 x 4-byte scalars = 32 bytes.
// State binding: 6 exp_avg.

struct Row {
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    lr: f32,
    decay_factor: f32,
    l1: f32,
    _pad0: u32,
}


fn after_skipped_steps(h: Row, t: DeviceStep) -> Row {
    return h;
}

fn update(i: u32, grad_i: V, h: Row) {
    let pen = penalize(load_param(i), grad_i, 0.0, h.decay_factor, h.l1);
    let p = pen.p;
    let g = pen.g;
    let m = load_exp_avg(i);
    store_param(i, p - h.lr * sign(m * h.beta1 + g * h.one_minus_beta1));
    store_exp_avg(i, m * h.beta2 + g * h.one_minus_beta2);
}

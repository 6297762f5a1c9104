// adagrad/update.wgsl — the per-element update of Adagrad; assembled after gpu/common.wgsl and
// optim/prelude.wgsl.
//
// Mirrors torch.optim.Adagrad `_single_tensor_adagrad` (torch/optim/adagrad.py), g being the
// loaded gradient:
//   g = g + weight_decay * p + l1 * sign(p)
//   clr = lr / (1 + (t - 1) * lr_decay)          (host, f64; here in f32 after skipped steps)
//   sum = sum + g * g
//   p = p - clr * g / (sqrt(sum) + eps)
// The accumulator `sum` starts at initial_accumulator_value (filled by the host).
//
// Row (Rust: optim::adagrad::AdagradRow): 8 x 4-byte scalars = 32 bytes.
// State bindings: 6 sum.

struct Row {
    clr: f32,
    weight_decay: f32,
    l1: f32,
    eps: f32,
    lr: f32,
    lr_decay: f32,
    _pad0: u32,
    _pad1: u32,
}


fn after_skipped_steps(h: Row, t: DeviceStep) -> Row {
    var r = h;
    r.clr = h.lr / (1.0 + (step_f32(t) - 1.0) * h.lr_decay);
    return r;
}

fn update(i: u32, grad_i: V, h: Row) {
    let pen = penalize(load_param(i), grad_i, h.weight_decay, 1.0, h.l1);
    let p = pen.p;
    let g = pen.g;
    let s = load_sum(i) + g * g;
    store_sum(i, s);
    let denom = sqrt(s) + h.eps;
    store_param(i, p - h.clr * (g / denom));
}

// adadelta/update.wgsl — the per-element update of Adadelta; assembled after gpu/common.wgsl
// and optim/prelude.wgsl.
//
// Mirrors torch.optim.Adadelta `_single_tensor_adadelta` (torch/optim/adadelta.py), g being
// the loaded gradient:
//   g = g + weight_decay * p + l1 * sign(p)
//   square_avg = square_avg * rho + (1 - rho) * g * g
//   delta = sqrt(acc_delta + eps) / sqrt(square_avg + eps) * g    (eps inside both square roots)
//   acc_delta = acc_delta * rho + (1 - rho) * delta * delta
//   p = p - lr * delta
// Nothing depends on the step count.
//
// Row (Rust: optim::adadelta::AdadeltaRow): 8 x 4-byte scalars = 32 bytes.
// State bindings: 6 square_avg, 7 acc_delta.

struct Row {
    lr: f32,
    rho: f32,
    one_minus_rho: f32,
    eps: f32,
    weight_decay: f32,
    l1: f32,
    _pad0: u32,
    _pad1: u32,
}


fn after_skipped_steps(h: Row, t: DeviceStep) -> Row {
    return h;
}

fn update(i: u32, grad_i: V, h: Row) {
    let pen = penalize(load_param(i), grad_i, h.weight_decay, 1.0, h.l1);
    let p = pen.p;
    let g = pen.g;
    let sa = load_square_avg(i) * h.rho + h.one_minus_rho * g * g;
    store_square_avg(i, sa);
    let denom = sqrt(sa + h.eps);
    let ad = load_acc_delta(i);
    let delta = sqrt(ad + h.eps) / denom * g;
    store_acc_delta(i, ad * h.rho + h.one_minus_rho * delta * delta);
    store_param(i, p - h.lr * delta);
}

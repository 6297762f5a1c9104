// adamax/update.wgsl — the per-element update of Adamax; assembled after gpu/common.wgsl and
// optim/prelude.wgsl (the block table, the gradient load, the skip).
//
// Mirrors torch.optim.Adamax `_single_tensor_adamax` (torch/optim/adamax.py), g being the
// loaded gradient:
//   g = g + weight_decay * p + l1 * sign(p)
//   exp_avg = lerp(exp_avg, g, 1 - beta1)
//   exp_inf = max(exp_inf * beta2, |g| + eps)
//   p = p - clr * exp_avg / exp_inf                  clr = lr / (1 - beta1^t)
// clr is computed on the host in f64; after skipped steps it is recomputed here in f32 from the
// device step.
//
// Row (Rust: optim::adamax::AdamaxRow): 8 x 4-byte scalars = 32 bytes.
// State bindings: 6 exp_avg, 7 exp_inf.

struct Row {
    one_minus_beta1: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    l1: f32,
    clr: f32,
    lr: f32,
}


fn after_skipped_steps(h: Row, t: DeviceStep) -> Row {
    var r = h;
    r.clr = h.lr / bias_correction(h.one_minus_beta1, step_f32(t)).bc;
    return r;
}

fn update(i: u32, grad_i: V, h: Row) {
    let pen = penalize(load_param(i), grad_i, h.weight_decay, 1.0, h.l1);
    let p = pen.p;
    let g = pen.g;
    let m = torch_lerp(load_exp_avg(i), g, h.one_minus_beta1);
    let u = max(load_exp_inf(i) * h.beta2, abs(g) + h.eps);
    store_exp_avg(i, m);
    store_exp_inf(i, u);
    store_param(i, p - h.clr * (m / u));
}

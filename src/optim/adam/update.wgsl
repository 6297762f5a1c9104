// adam/update.wgsl — the per-element update of Adam / AdamW / AMSGrad; assembled after
// gpu/common.wgsl and optim/prelude.wgsl (the block table, the gradient load, the skip).
//
// Mirrors torch.optim.Adam / AdamW `_single_tensor_adam` (torch/optim/adam.py), g being the
// loaded gradient (prelude.wgsl):
//   AdamW (DECOUPLED): p = p * (1 - lr * weight_decay)      else: g = g + weight_decay * p
//   g = g + l1 * sign(p)                                     (wgpu-optim's L1 option)
//   exp_avg = lerp(exp_avg, g, 1 - beta1)
//   exp_avg_sq = exp_avg_sq * beta2 + (1 - beta2) * g * g
//   AMSGRAD: max_exp_avg_sq = max(max_exp_avg_sq, exp_avg_sq); used below instead of exp_avg_sq
//   denom = sqrt(exp_avg_sq) / bias_correction2_sqrt + eps
//   p = p - step_size * exp_avg / denom                   step_size = lr / (1 - beta1^t)
// Step-dependent scalars (step_size, bias_correction2_sqrt, decay_factor) are computed on the
// host in f64 for each param group (optim/adam/mod.rs); after skipped steps step_size and
// bias_correction2_sqrt are recomputed here in f32 from the device step (prelude.wgsl's
// bias_correction: accurate where pow(beta, t) near 1 is not on GPUs).
//
// Row (Rust: optim::adam::AdamRow): 16 x 4-byte scalars = 64 bytes.
// State bindings: 6 exp_avg, 7 exp_avg_sq, 8 max_exp_avg_sq (a 1-vec4 dummy unless AMSGRAD).
override AMSGRAD: bool = false;

struct Row {
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    eps: f32,
    weight_decay: f32,
    l1: f32,
    step_size: f32,
    bias_correction2_sqrt: f32,
    decay_factor: f32,
    lr: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
    _pad4: u32,
}


fn after_skipped_steps(h: Row, t: DeviceStep) -> Row {
    var r = h;
    let tf = step_f32(t);
    r.step_size = h.lr / bias_correction(h.one_minus_beta1, tf).bc;
    r.bias_correction2_sqrt = sqrt(bias_correction(h.one_minus_beta2, tf).bc);
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
    var vhat = v;
    if AMSGRAD {
        vhat = max(load_max_exp_avg_sq(i), v);
        store_max_exp_avg_sq(i, vhat);
    }
    let denom = sqrt(vhat) / h.bias_correction2_sqrt + h.eps;
    store_param(i, p - h.step_size * (m / denom));
}

// nadam/update.wgsl — the per-element update of NAdam; assembled after gpu/common.wgsl and
// optim/prelude.wgsl (the block table, the gradient load, the skip).
//
// Mirrors torch.optim.NAdam `_single_tensor_nadam` (torch/optim/nadam.py), g being the
// loaded gradient:
//   DECOUPLED: p = p * (1 - lr * weight_decay)        else: g = g + weight_decay * p
//   g = g + l1 * sign(p)                               (wgpu-optim's L1 option)
//   exp_avg = lerp(exp_avg, g, 1 - beta1)
//   exp_avg_sq = exp_avg_sq * beta2 + (1 - beta2) * g * g
//   denom = sqrt(exp_avg_sq / (1 - beta2^t)) + eps
//   p = p - grad_coef * g / denom                      grad_coef = lr (1 - mu_t) / (1 - P_t)
//   p = p - avg_coef * exp_avg / denom                 avg_coef = lr mu_{t+1} / (1 - P_t mu_{t+1})
// with mu_t = beta1 (1 - 0.5 * 0.96^(t momentum_decay)) and P_t = mu_1 ... mu_t. The scalars
// are computed on the host in f64 (optim/nadam/mod.rs); after skipped steps they are recomputed
// here in f32 from the device step (1 - beta2^t by prelude.wgsl's bias_correction, P_t in closed
// form).
//
// Row (Rust: optim::nadam::NAdamRow): 16 x 4-byte scalars = 64 bytes.
// State bindings: 6 exp_avg, 7 exp_avg_sq.

struct Row {
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    eps: f32,
    weight_decay: f32,
    l1: f32,
    decay_factor: f32,
    grad_coef: f32,
    avg_coef: f32,
    bias_correction2: f32,
    lr: f32,
    ln_beta1: f32,
    ln_r: f32,
    _pad0: u32,
    _pad1: u32,
}


// mu_t = beta1 (1 - 0.5 * 0.96^(t momentum_decay)) = beta1 (1 - 0.5 r^t), ln r from the host.
fn nadam_mu(h: Row, t: f32) -> f32 {
    return h.beta1 * (1.0 - 0.5 * exp(t * h.ln_r));
}

// ln P_t in closed form (optim/nadam/mod.rs): t ln(beta1) - sum_k 2^-k / k r^k (1 - r^(k t)) /
// (1 - r^k), ln r = ln(0.96) momentum_decay; 24 terms leave 2^-24 of the sum.
fn nadam_log_mu_product(h: Row, t: f32) -> f32 {
    var sum = 0.0;
    var w = 1.0;
    for (var k = 1; k <= 24; k++) {
        let kf = f32(k);
        w = w * 0.5;
        let y = -kf * h.ln_r;
        var ratio = t;
        if y > 0.0 {
            ratio = one_minus_exp_neg(y * t) / one_minus_exp_neg(y);
        }
        sum = sum - w / kf * exp(-y) * ratio;
    }
    return max(t * h.ln_beta1 + sum, -200.0);
}

fn after_skipped_steps(h: Row, t: DeviceStep) -> Row {
    var r = h;
    let tf = step_f32(t);
    let product = exp(nadam_log_mu_product(h, tf));
    let mu_t = nadam_mu(h, tf);
    let mu_next = nadam_mu(h, tf + 1.0);
    r.grad_coef = h.lr * (1.0 - mu_t) / (1.0 - product);
    r.avg_coef = h.lr * mu_next / (1.0 - product * mu_next);
    r.bias_correction2 = bias_correction(h.one_minus_beta2, tf).bc;
    return r;
}

fn update(i: u32, grad_i: V, h: Row) {
    let pen = penalize(load_param(i), grad_i, h.weight_decay, h.decay_factor, h.l1);
    var p = pen.p;
    let g = pen.g;
    let m = torch_lerp(load_exp_avg(i), g, h.one_minus_beta1);
    let v = load_exp_avg_sq(i) * h.beta2 + h.one_minus_beta2 * g * g;
    store_exp_avg(i, m);
    store_exp_avg_sq(i, v);
    let denom = sqrt(v / h.bias_correction2) + h.eps;
    p = p - h.grad_coef * (g / denom);
    store_param(i, p - h.avg_coef * (m / denom));
}

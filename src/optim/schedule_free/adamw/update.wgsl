// schedule_free/adamw/update.wgsl — the per-element update of Schedule-Free AdamW; assembled
// after gpu/common.wgsl, optim/prelude.wgsl and schedule_free/swap.wgsl.
//
// Mirrors schedulefree's `AdamWScheduleFree.step` (schedulefree/adamw_schedulefree.py, the
// single-tensor branch), g being the loaded gradient and y the params (train mode):
//   z = y at the first step (schedulefree clones the params into z)
//   g = g + l1 * sign(y)                                    (wgpu-optim's L1 option)
//   exp_avg_sq = exp_avg_sq * beta2 + (1 - beta2) * g * g
//   gn = g / (sqrt(exp_avg_sq / (1 - beta2^t)) + eps) + weight_decay * y
//   y = lerp(y, z, c) + gn * lr_t * (beta1 * (1 - c) - 1)
//   z = z - lr_t * gn
// lr_t, c (the averaging weight), the y coefficient and 1 - beta2^t come from the host in f64
// (schedule_free/mod.rs); the non-finite guard's skips are refused for Schedule-Free, so
// after_skipped_steps has nothing to recompute. SWAP_TO_EVAL / SWAP_TO_TRAIN make this module
// the train / eval swap instead (swap.wgsl).
//
// Row (Rust: optim::schedule_free::adamw::SfAdamWRow): 16 x 4-byte scalars = 64 bytes.
// State bindings: 6 z, 7 exp_avg_sq.

struct Row {
    beta2: f32,
    one_minus_beta2: f32,
    eps: f32,
    weight_decay: f32,
    l1: f32,
    lr: f32,
    ckp1: f32,
    y_coef: f32,
    bias_correction2: f32,
    // 1 at step 1, else 0.
    first: f32,
    // 1 - 1 / beta1 and 1 - beta1: the lerp weights of eval() and train().
    to_eval: f32,
    to_train: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
}


fn after_skipped_steps(h: Row, t: DeviceStep) -> Row {
    return h;
}

fn update(i: u32, grad_i: V, h: Row) {
    if swap(i, load_z(i), h.to_eval, h.to_train) {
        return;
    }
    let pen = penalize(load_param(i), grad_i, 0.0, 1.0, h.l1);
    let y = pen.p;
    let g = pen.g;
    var zi = load_z(i);
    if h.first != 0.0 {
        zi = y;
    }
    let v = load_exp_avg_sq(i) * h.beta2 + h.one_minus_beta2 * g * g;
    store_exp_avg_sq(i, v);
    let gn = g / (sqrt(v / h.bias_correction2) + h.eps) + h.weight_decay * y;
    store_param(i, torch_lerp(y, zi, h.ckp1) + gn * h.y_coef);
    store_z(i, zi - h.lr * gn);
}

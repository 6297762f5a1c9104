// schedule_free/sgd/update.wgsl — the per-element update of Schedule-Free SGD; assembled after
// gpu/common.wgsl, optim/prelude.wgsl and schedule_free/swap.wgsl.
//
// Mirrors schedulefree's `SGDScheduleFree.step` (schedulefree/sgd_schedulefree.py, the
// single-tensor branch), g being the loaded gradient and y the params (train mode):
//   z = y at the first step (schedulefree clones the params into z)
//   g = g + weight_decay * y + l1 * sign(y)                 (l1: wgpu-optim's option)
//   y = lerp(y, z, c) + g * lr_t * (momentum * (1 - c) - 1)
//   z = z - lr_t * g
// lr_t, c and the y coefficient come from the host in f64 (schedule_free/mod.rs); skips are
// refused for Schedule-Free, so after_skipped_steps has nothing to recompute. SWAP_TO_EVAL /
// SWAP_TO_TRAIN make this module the train / eval swap instead (swap.wgsl).
//
// Row (Rust: optim::schedule_free::sgd::SfSgdRow): 8 x 4-byte scalars = 32 bytes.
// State binding: 6 z.

struct Row {
    weight_decay: f32,
    l1: f32,
    lr: f32,
    ckp1: f32,
    y_coef: f32,
    // 1 at step 1, else 0.
    first: f32,
    // 1 - 1 / momentum and 1 - momentum: the lerp weights of eval() and train().
    to_eval: f32,
    to_train: f32,
}


fn after_skipped_steps(h: Row, t: DeviceStep) -> Row {
    return h;
}

fn update(i: u32, grad_i: V, h: Row) {
    if swap(i, load_z(i), h.to_eval, h.to_train) {
        return;
    }
    let pen = penalize(load_param(i), grad_i, h.weight_decay, 1.0, h.l1);
    let y = pen.p;
    let g = pen.g;
    var zi = load_z(i);
    if h.first != 0.0 {
        zi = y;
    }
    store_param(i, torch_lerp(y, zi, h.ckp1) + g * h.y_coef);
    store_z(i, zi - h.lr * g);
}

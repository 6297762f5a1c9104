// asgd/update.wgsl — the per-element update of ASGD; assembled after gpu/common.wgsl and
// optim/prelude.wgsl (the block table, the gradient load, the skip).
//
// Mirrors torch.optim.ASGD `_single_tensor_asgd` (torch/optim/asgd.py), g being the loaded
// gradient:
//   g = g + weight_decay * p + l1 * sign(p)
//   p = p * (1 - lambd * eta) - eta * g
//   ax = p                          when mu == 1
//   ax = ax + (p - ax) * mu         else
// eta = lr / (1 + lambd lr (t - 1))^alpha and mu = 1 / max(1, t - 1 - t0) are one param group's:
// computed on the host in f64 (optim/asgd/mod.rs), so the branch on mu is uniform; after
// skipped steps they are recomputed here in f32 from the device step.
//
// Row (Rust: optim::asgd::AsgdRow): 12 x 4-byte scalars = 48 bytes.
// State binding: 6 ax.

struct Row {
    weight_decay: f32,
    l1: f32,
    eta: f32,
    decay: f32,
    mu: f32,
    copy: u32,
    lr: f32,
    lambd: f32,
    alpha: f32,
    t0: f32,
    _pad0: u32,
    _pad1: u32,
}


fn after_skipped_steps(h: Row, t: DeviceStep) -> Row {
    var r = h;
    let done = step_f32(t) - 1.0;
    r.eta = h.lr / pow(1.0 + h.lambd * h.lr * done, h.alpha);
    r.decay = 1.0 - h.lambd * r.eta;
    r.mu = 1.0 / max(done - h.t0, 1.0);
    r.copy = select(0u, 1u, r.mu == 1.0);
    return r;
}

fn update(i: u32, grad_i: V, h: Row) {
    let pen = penalize(load_param(i), grad_i, h.weight_decay, 1.0, h.l1);
    var p = pen.p;
    let g = pen.g;
    p = p * h.decay;
    p = p - h.eta * g;
    store_param(i, p);
    if h.copy != 0u {
        store_ax(i, p);
    } else {
        let a = load_ax(i);
        store_ax(i, a + (p - a) * h.mu);
    }
}

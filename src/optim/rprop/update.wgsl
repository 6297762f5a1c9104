// rprop/update.wgsl — the per-element update of Rprop; assembled after gpu/common.wgsl and
// optim/prelude.wgsl (the block table, the gradient load, the skip).
//
// Mirrors torch.optim.Rprop `_single_tensor_rprop` (torch/optim/rprop.py), g being the loaded
// gradient:
//   g = g + weight_decay * p + l1 * sign(p)            (wgpu-optim's extensions)
//   s = sign(g) * sign(prev)                           (torch: sign(g * prev))
//   step_size = clamp(step_size * (s > 0: etaplus, s < 0: etaminus, else 1), min, max)
//   g = 0 where s < 0
//   p = p - sign(g) * step_size
//   prev = g
// Nothing depends on the step count, so skipped steps need no recomputation.
//
// Row (Rust: optim::rprop::RpropRow): 8 x 4-byte scalars = 32 bytes.
// State bindings: 6 prev, 7 step_size.

struct Row {
    etaminus: f32,
    etaplus: f32,
    step_size_min: f32,
    step_size_max: f32,
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
    var g = pen.g;
    let s = sign(g) * sign(load_prev(i));
    let factor = select(select(V(1.0), V(h.etaminus), s < V(0.0)), V(h.etaplus), s > V(0.0));
    let size = clamp(load_step_size(i) * factor, V(h.step_size_min), V(h.step_size_max));
    g = select(g, V(0.0), s < V(0.0));
    store_step_size(i, size);
    store_prev(i, g);
    store_param(i, p - sign(g) * size);
}

// muon/update.wgsl — the element functions of Muon's passes (optim/muon/passes.wgsl);
// assembled after gpu/common.wgsl, grad/norm.wgsl and optim/prelude.wgsl.
//
// Mirrors torch.optim.Muon (torch/optim/_muon.py, _single_tensor_muon), g being the loaded
// gradient (maximize and wgpu-optim's l1 applied):
//   momentum pass:  buf = torch_lerp(buf, g, 1 - momentum)
//                   u = NESTEROV ? torch_lerp(g, buf, momentum) : buf
//   (the norm and the Newton-Schulz iterations of u: passes.wgsl, ns.wgsl)
//   apply pass:     p = p * (1 - lr * weight_decay)              (when WEIGHT_DECAY)
//                   p = p - (lr * ratio) * o                     o: the orthogonalized update,
//                                                                ratio: adjust_lr_fn's factor
// Nothing depends on the step count, so skipped steps need no recomputation.
//
// Row (Rust: optim::muon::MuonRow): 8 x 4-byte scalars = 32 bytes.
// State binding: 8 momentum_buffer (6 and 7 are the passes' buffers, 9 the scratch matrix).
override NESTEROV: bool = true;
// Newton-Schulz iterations; with none, the apply pass divides by the norm itself.
override NS_STEPS: u32 = 5u;

struct Row {
    momentum: f32,
    one_minus_momentum: f32,
    lr: f32,
    decay_factor: f32,
    l1: f32,
    eps: f32,
    _pad0: u32,
    _pad1: u32,
}

fn after_skipped_steps(h: Row, t: DeviceStep) -> Row {
    return h;
}

// The momentum and the update direction u of 4 elements.
fn direction(i: u32, grad_i: V, h: Row) -> V {
    let g = penalize(load_param(i), grad_i, 0.0, 1.0, h.l1).g;
    let buf = torch_lerp(load_momentum_buffer(i), g, h.one_minus_momentum);
    store_momentum_buffer(i, buf);
    if NESTEROV {
        return torch_lerp(g, buf, h.momentum);
    }
    return buf;
}

// The update of 4 elements from their orthogonalized update o and the matrix's lr factor.
fn apply(i: u32, o: V, h: Row, lr_ratio: f32) {
    var p = load_param(i);
    if WEIGHT_DECAY {
        p = p * h.decay_factor;
    }
    store_param(i, p - (h.lr * lr_ratio) * o);
}

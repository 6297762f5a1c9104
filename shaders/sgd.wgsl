// sgd.wgsl — fused SGD step (momentum, dampening, Nesterov) over many tensors in one dispatch.
//
// Mirrors torch.optim.SGD `_single_tensor_sgd` (torch/optim/sgd.py):
//   g = grad * grad_scale; if MAXIMIZE { g = -g }
//   g = g + weight_decay * p + l1 * sign(p)
//   MOMENTUM: buf = first_step ? g : buf * momentum + (1 - dampening) * g
//             g = NESTEROV ? g + momentum * buf : buf
//   p = p - lr * g
// On the first step PyTorch clones the gradient into the buffer (no dampening); the host sets
// `first_step` = 1 for the optimizer's first step.
//
// Bindings (group 0):
//   0 uniform              groups: array<SgdGroup, 256>
//   1 storage, read        blocks: array<Block>
//   2 storage, read_write  param
//   3 storage, read        grad
//   4 storage, read_write  momentum_buffer (a 1-element dummy unless MOMENTUM)
//   5 storage, read        control: Control (a dummy unless STATS)
// Uniform layout: SgdGroup is 8 x 4-byte scalars = 32 bytes (Rust: optim::sgd::SgdGroup).
// Dispatch and guard rule: as adam.wgsl (b >= arrayLength(&blocks) or j >= block.len returns).

// Gradient pipeline (clip.rs): when STATS, grad_stats.wgsl and grad_finalize.wgsl ran first in
// the same pass and `control` holds, per group, pre = averaging factor / loss scale and coef = the
// norm-clip coefficient:  g = clamp(grad * pre, -clip_value, clip_value) * coef  (clamp when
// CLIP_VALUE). When SKIP_NONFINITE and control.found_inf != 0 the whole step is skipped (no
// write); the device step is then t - control.skipped, and step-dependent scalars are recomputed
// in f32 from it (as PyTorch's fused kernels do) whenever control.skipped != 0.
override MAXIMIZE: bool = false;
override STATS: bool = false;
override SKIP_NONFINITE: bool = false;
override CLIP_VALUE: bool = false;
override MOMENTUM: bool = false;
override NESTEROV: bool = false;

const WG: u32 = 256u;
const PER_THREAD: u32 = 4u;

struct Block {
    start: u32,
    len: u32,
    group: u32,
    index: u32,
}

struct SgdGroup {
    lr: f32,
    momentum: f32,
    one_minus_dampening: f32,
    weight_decay: f32,
    l1: f32,
    grad_scale: f32,
    first_step: u32,
    t: u32,
}

struct GroupOut {
    pre: f32,
    coef: f32,
    norm: f32,
    clip_value: f32,
}

struct Control {
    found_inf: u32,
    skipped: u32,
    scale: f32,
    growth_tracker: u32,
    groups: array<GroupOut>,
}

@group(0) @binding(0) var<uniform> groups: array<SgdGroup, 256>;
@group(0) @binding(1) var<storage, read> blocks: array<Block>;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> momentum_buffer: array<f32>;
@group(0) @binding(5) var<storage, read> control: Control;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let b = wid.x + wid.y * nwg.x;
    if b >= arrayLength(&blocks) {
        return;
    }
    let blk = blocks[b];
    let h = groups[blk.group];
    if SKIP_NONFINITE && control.found_inf != 0u {
        return;
    }
    // The group's gradient factors, read once per workgroup.
    var o = GroupOut(1.0, 1.0, 0.0, 0.0);
    if STATS {
        o = control.groups[blk.group];
    }
    var first_step = h.first_step;
    if SKIP_NONFINITE && control.skipped != 0u {
        first_step = select(0u, 1u, h.t - control.skipped == 1u);
    }
    for (var k = 0u; k < PER_THREAD; k++) {
        let j = k * WG + lid;
        if j >= blk.len {
            return;
        }
        let i = blk.start + j;
        var g = grad[i] * h.grad_scale;
        if STATS {
            g = grad[i] * o.pre;
            if CLIP_VALUE {
                g = clamp(g, -o.clip_value, o.clip_value);
            }
            g = g * o.coef;
        }
        if MAXIMIZE {
            g = -g;
        }
        let p = param[i];
        g = g + h.weight_decay * p;
        g = g + h.l1 * sign(p);
        if MOMENTUM {
            var buf = g;
            if first_step == 0u {
                buf = momentum_buffer[i] * h.momentum + h.one_minus_dampening * g;
            }
            momentum_buffer[i] = buf;
            if NESTEROV {
                g = g + h.momentum * buf;
            } else {
                g = buf;
            }
        }
        param[i] = p - h.lr * g;
    }
}

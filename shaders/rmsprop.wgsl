// rmsprop.wgsl — fused RMSprop step (centered, momentum) over many tensors in one dispatch.
//
// Mirrors torch.optim.RMSprop `_single_tensor_rmsprop` (torch/optim/rmsprop.py):
//   g = grad * grad_scale; if MAXIMIZE { g = -g }
//   g = g + weight_decay * p + l1 * sign(p)
//   square_avg = square_avg * alpha + (1 - alpha) * g * g
//   CENTERED: grad_avg = lerp(grad_avg, g, 1 - alpha); avg = sqrt(square_avg - grad_avg^2)
//   else:     avg = sqrt(square_avg)
//   avg = avg + eps
//   MOMENTUM: buf = buf * momentum + g / avg; p = p - lr * buf
//   else:     p = p - lr * g / avg
//
// Bindings (group 0):
//   0 uniform              groups: array<RmsPropGroup, 256>
//   1 storage, read        blocks: array<Block>
//   2 storage, read_write  param
//   3 storage, read        grad
//   4 storage, read_write  square_avg
//   5 storage, read_write  momentum_buffer (a 1-element dummy unless MOMENTUM)
//   6 storage, read_write  grad_avg (a 1-element dummy unless CENTERED)
//   7 storage, read        control: Control (a dummy unless STATS)
// Uniform layout: RmsPropGroup is 8 x 4-byte scalars = 32 bytes (Rust: optim::rmsprop::RmsPropGroup).
// Dispatch and guard rule: as adam.wgsl.

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
override CENTERED: bool = false;
override MOMENTUM: bool = false;

const WG: u32 = 256u;
const PER_THREAD: u32 = 4u;

struct Block {
    start: u32,
    len: u32,
    group: u32,
    index: u32,
}

struct RmsPropGroup {
    lr: f32,
    alpha: f32,
    one_minus_alpha: f32,
    eps: f32,
    weight_decay: f32,
    l1: f32,
    momentum: f32,
    grad_scale: f32,
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

@group(0) @binding(0) var<uniform> groups: array<RmsPropGroup, 256>;
@group(0) @binding(1) var<storage, read> blocks: array<Block>;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> square_avg: array<f32>;
@group(0) @binding(5) var<storage, read_write> momentum_buffer: array<f32>;
@group(0) @binding(6) var<storage, read_write> grad_avg: array<f32>;
@group(0) @binding(7) var<storage, read> control: Control;

fn torch_lerp(a: f32, b: f32, w: f32) -> f32 {
    if w < 0.5 {
        return a + w * (b - a);
    }
    return b - (b - a) * (1.0 - w);
}

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
        let sa = square_avg[i] * h.alpha + h.one_minus_alpha * g * g;
        square_avg[i] = sa;
        var avg: f32;
        if CENTERED {
            let ga = torch_lerp(grad_avg[i], g, h.one_minus_alpha);
            grad_avg[i] = ga;
            avg = sqrt(sa - ga * ga);
        } else {
            avg = sqrt(sa);
        }
        avg = avg + h.eps;
        if MOMENTUM {
            let buf = momentum_buffer[i] * h.momentum + g / avg;
            momentum_buffer[i] = buf;
            param[i] = p - h.lr * buf;
        } else {
            param[i] = p - h.lr * (g / avg);
        }
    }
}

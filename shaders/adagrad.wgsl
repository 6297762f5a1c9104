// adagrad.wgsl — fused Adagrad step over many tensors in one dispatch.
//
// Mirrors torch.optim.Adagrad `_single_tensor_adagrad` (torch/optim/adagrad.py):
//   g = grad * grad_scale; if MAXIMIZE { g = -g }
//   g = g + weight_decay * p + l1 * sign(p)
//   clr = lr / (1 + (t - 1) * lr_decay)          (host, f64)
//   sum = sum + g * g
//   p = p - clr * g / (sqrt(sum) + eps)
// The accumulator `sum` starts at initial_accumulator_value (filled by the host).
//
// Bindings (group 0):
//   0 uniform              groups: array<AdagradGroup, 256>
//   1 storage, read        blocks: array<Block>
//   2 storage, read_write  param
//   3 storage, read        grad
//   4 storage, read_write  sum
//   5 storage, read        control: Control (a dummy unless STATS)
// Uniform layout: AdagradGroup is 8 x 4-byte scalars = 32 bytes (Rust: optim::adagrad::AdagradGroup).
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

const WG: u32 = 256u;
const PER_THREAD: u32 = 4u;

struct Block {
    start: u32,
    len: u32,
    group: u32,
    index: u32,
}

struct AdagradGroup {
    clr: f32,
    weight_decay: f32,
    l1: f32,
    eps: f32,
    grad_scale: f32,
    lr: f32,
    lr_decay: f32,
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

@group(0) @binding(0) var<uniform> groups: array<AdagradGroup, 256>;
@group(0) @binding(1) var<storage, read> blocks: array<Block>;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> sum: array<f32>;
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
    var clr = h.clr;
    if SKIP_NONFINITE && control.skipped != 0u {
        clr = h.lr / (1.0 + f32(h.t - control.skipped - 1u) * h.lr_decay);
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
        let s = sum[i] + g * g;
        sum[i] = s;
        let denom = sqrt(s) + h.eps;
        param[i] = p - clr * (g / denom);
    }
}

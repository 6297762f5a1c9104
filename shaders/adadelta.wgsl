// adadelta.wgsl — fused Adadelta step over many tensors in one dispatch.
//
// Mirrors torch.optim.Adadelta `_single_tensor_adadelta` (torch/optim/adadelta.py):
//   g = grad * grad_scale; if MAXIMIZE { g = -g }
//   g = g + weight_decay * p + l1 * sign(p)
//   square_avg = square_avg * rho + (1 - rho) * g * g
//   std = sqrt(square_avg + eps)
//   delta = sqrt(acc_delta + eps) / sqrt(square_avg + eps) * g    (eps inside both square roots)
//   acc_delta = acc_delta * rho + (1 - rho) * delta * delta
//   p = p - lr * delta
//
// Bindings (group 0):
//   0 uniform              groups: array<AdadeltaGroup, 256>
//   1 storage, read        blocks: array<Block>
//   2 storage, read_write  param
//   3 storage, read        grad
//   4 storage, read_write  square_avg
//   5 storage, read_write  acc_delta
//   6 storage, read        control: Control (a dummy unless STATS)
// Uniform layout: AdadeltaGroup is 8 x 4-byte scalars = 32 bytes (Rust: optim::adadelta::AdadeltaGroup).
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

struct AdadeltaGroup {
    lr: f32,
    rho: f32,
    one_minus_rho: f32,
    eps: f32,
    weight_decay: f32,
    l1: f32,
    grad_scale: f32,
    _pad: f32,
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

@group(0) @binding(0) var<uniform> groups: array<AdadeltaGroup, 256>;
@group(0) @binding(1) var<storage, read> blocks: array<Block>;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> square_avg: array<f32>;
@group(0) @binding(5) var<storage, read_write> acc_delta: array<f32>;
@group(0) @binding(6) var<storage, read> control: Control;

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
        let sa = square_avg[i] * h.rho + h.one_minus_rho * g * g;
        square_avg[i] = sa;
        let denom = sqrt(sa + h.eps);
        let ad = acc_delta[i];
        let delta = sqrt(ad + h.eps) / denom * g;
        acc_delta[i] = ad * h.rho + h.one_minus_rho * delta * delta;
        param[i] = p - h.lr * delta;
    }
}

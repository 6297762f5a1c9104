// adam.wgsl — fused Adam / AdamW / AMSGrad step over many tensors in one dispatch.
//
// Mirrors torch.optim.Adam / AdamW `_single_tensor_adam` (torch/optim/adam.py):
//   g = grad * grad_scale; if MAXIMIZE { g = -g }
//   AdamW (DECOUPLED): p = p * (1 - lr * weight_decay)      else: g = g + weight_decay * p
//   g = g + l1 * sign(p)                                     (wgpu-optim's L1 option)
//   exp_avg = lerp(exp_avg, g, 1 - beta1)
//   exp_avg_sq = exp_avg_sq * beta2 + (1 - beta2) * g * g
//   AMSGRAD: max_exp_avg_sq = max(max_exp_avg_sq, exp_avg_sq); use it below instead of exp_avg_sq
//   denom = sqrt(exp_avg_sq) / bias_correction2_sqrt + eps
//   p = p - step_size * exp_avg / denom                   step_size = lr / (1 - beta1^t)
// Step-dependent scalars (step_size, bias_correction2_sqrt, decay_factor) are computed on the
// host in f64 and written per param group each step.
//
// Bindings (group 0):
//   0 uniform              groups: array<AdamGroup, 256>   per-param-group hyperparameters
//   1 storage, read        blocks: array<Block>            work items of this chunk
//   2 storage, read_write  param
//   3 storage, read        grad
//   4 storage, read_write  exp_avg
//   5 storage, read_write  exp_avg_sq
//   6 storage, read_write  max_exp_avg_sq (a 1-element dummy unless AMSGRAD)
//   7 storage, read        control: Control (a dummy unless STATS)
// Uniform layout: AdamGroup is 16 x 4-byte scalars = 64 bytes (Rust: optim::adam::AdamGroup).
// Dispatch: one workgroup per block on a 2-D grid; block index b = wid.x + wid.y * nwg.x.
// Guard rule: every invocation returns when b >= arrayLength(&blocks) or j >= block.len.

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
override DECOUPLED: bool = false;
override AMSGRAD: bool = false;

const WG: u32 = 256u;
const PER_THREAD: u32 = 4u;

struct Block {
    start: u32,
    len: u32,
    group: u32,
    index: u32,
}

struct AdamGroup {
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    eps: f32,
    weight_decay: f32,
    l1: f32,
    step_size: f32,
    bias_correction2_sqrt: f32,
    decay_factor: f32,
    grad_scale: f32,
    lr: f32,
    t: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
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

@group(0) @binding(0) var<uniform> groups: array<AdamGroup, 256>;
@group(0) @binding(1) var<storage, read> blocks: array<Block>;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> exp_avg: array<f32>;
@group(0) @binding(5) var<storage, read_write> exp_avg_sq: array<f32>;
@group(0) @binding(6) var<storage, read_write> max_exp_avg_sq: array<f32>;
@group(0) @binding(7) var<storage, read> control: Control;

// torch.lerp on CPU: weight < 0.5 ? a + w * (b - a) : b - (b - a) * (1 - w)
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
    var step_size = h.step_size;
    var bias_correction2_sqrt = h.bias_correction2_sqrt;
    if SKIP_NONFINITE && control.skipped != 0u {
        let t = f32(h.t - control.skipped);
        step_size = h.lr / (1.0 - pow(h.beta1, t));
        bias_correction2_sqrt = sqrt(1.0 - pow(h.beta2, t));
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
        var p = param[i];
        if DECOUPLED {
            p = p * h.decay_factor;
        } else {
            g = g + h.weight_decay * p;
        }
        g = g + h.l1 * sign(p);
        let m = torch_lerp(exp_avg[i], g, h.one_minus_beta1);
        let v = exp_avg_sq[i] * h.beta2 + h.one_minus_beta2 * g * g;
        exp_avg[i] = m;
        exp_avg_sq[i] = v;
        var vhat = v;
        if AMSGRAD {
            vhat = max(max_exp_avg_sq[i], v);
            max_exp_avg_sq[i] = vhat;
        }
        let denom = sqrt(vhat) / bias_correction2_sqrt + h.eps;
        param[i] = p - step_size * (m / denom);
    }
}

// prelude.wgsl — the skeleton every fused optimizer kernel shares; each optimizer's
// update.wgsl (src/optim/<name>/update.wgsl) adds only its per-element update. The kernel is
// gpu/common.wgsl + this file + one update.wgsl, assembled at compile time.
//
// One dispatch per chunk covers every tensor and param group: workgroup b (b = wid.x +
// wid.y * nwg.x on a 2-D grid) takes block b of the chunk's block table, its param group's row
// of the uniform table, and updates up to 1024 elements (256 invocations x 4, coalesced:
// element start + k * 256 + lid).
//
// The gradient load (mirrors torch.amp.GradScaler.unscale_, clip_grad_value_, clip_grad_norm_
// and `maximize` of torch.optim):
//   without the gradient pipeline (STATS false):  g = grad * step.grad_scale
//   with it (grad/stats.wgsl and grad/finalize.wgsl ran first in the same pass):
//       g = grad * pre            pre = step.grad_scale / loss scale, from control.groups[group]
//       g = clamp(g, -clip_value, clip_value)                           when CLIP_VALUE
//       g = g * coef              coef = min(1, max_norm / (norm + 1e-6)) (1 without norm clip)
//   MAXIMIZE: g = -g
// The skip: when SKIP_NONFINITE and control.found_inf != 0 the whole step is skipped (no
// write). The device step is then t - control.skipped; whenever control.skipped != 0 each
// optimizer's `after_skipped_steps(row, t)` recomputes its step-dependent scalars in f32 from it
// (as PyTorch's fused kernels do); otherwise the host's f64 values are used unchanged.
//
// What an update.wgsl provides:
//   struct Row { ... }                          its param group row (a multiple of 16 bytes)
//   fn after_skipped_steps(h: Row, t: DeviceStep) -> Row   (t: gpu/common.wgsl, 64-bit)
//   fn update(i: u32, g: f32, h: Row)           reads / writes param[i] and its states[i]
//   its state bindings, from @binding(6) on, and its own override constants.
//
// Bindings (group 0):
//   0 uniform              step: StepInfo                  (offset 0 of the uniform buffer)
//   1 uniform              groups: array<Row, 256>         (offset 256 of the same buffer)
//   2 storage, read        blocks: array<Block>            this chunk's work items
//   3 storage, read        control: Control                (a dummy unless STATS)
//   4 storage, read_write  param
//   5 storage, read        grad
//   6.. storage, read_write  the optimizer's states (1-element dummies for absent ones)
// Guard rule: every invocation returns when b >= arrayLength(&blocks) or j >= block.len.
override MAXIMIZE: bool = false;
override STATS: bool = false;
override SKIP_NONFINITE: bool = false;
override CLIP_VALUE: bool = false;

const WG: u32 = 256u;
const PER_THREAD: u32 = 4u;

@group(0) @binding(0) var<uniform> step: StepInfo;
@group(0) @binding(1) var<uniform> groups: array<Row, 256>;
@group(0) @binding(2) var<storage, read> blocks: array<Block>;
@group(0) @binding(3) var<storage, read> control: Control;
@group(0) @binding(4) var<storage, read_write> param: array<f32>;
@group(0) @binding(5) var<storage, read> grad: array<f32>;

// The factors one param group's gradients get, read once per workgroup.
struct GradFactors {
    pre: f32,
    coef: f32,
    clip_value: f32,
}

fn grad_factors(group: u32) -> GradFactors {
    if STATS {
        let o = control.groups[group];
        return GradFactors(o.pre, o.coef, o.clip_value);
    }
    return GradFactors(step.grad_scale, 1.0, 0.0);
}

fn load_grad(i: u32, f: GradFactors) -> f32 {
    var g = grad[i] * f.pre;
    if CLIP_VALUE {
        g = clamp(g, -f.clip_value, f.clip_value);
    }
    if STATS {
        g = g * f.coef;
    }
    if MAXIMIZE {
        g = -g;
    }
    return g;
}

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
    if SKIP_NONFINITE && control.found_inf != 0u {
        return;
    }
    let blk = blocks[b];
    var h = groups[blk.group];
    if SKIP_NONFINITE && control.skipped != 0u {
        h = after_skipped_steps(h, device_step(step, control.skipped));
    }
    let f = grad_factors(blk.group);
    for (var k = 0u; k < PER_THREAD; k++) {
        let j = k * WG + lid;
        if j >= blk.len {
            return;
        }
        let i = blk.start + j;
        update(i, load_grad(i, f), h);
    }
}

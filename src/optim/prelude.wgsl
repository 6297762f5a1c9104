// prelude.wgsl — the skeleton every fused optimizer kernel shares; each optimizer's
// update.wgsl (src/optim/<name>/update.wgsl) adds only its per-element update. The kernel is
// gpu/common.wgsl + this file + one update.wgsl + the entry point (optim/single_pass.wgsl, or
// optim/trust/passes.wgsl for the trust-ratio optimizers), assembled at compile time.
//
// One dispatch per chunk covers every tensor and param group: workgroup b (b = wid.x +
// wid.y * nwg.x on a 2-D grid) takes block b of the chunk's block table, its param group's row
// of the uniform table, and updates up to 1024 elements: invocation lid loads and stores one
// vec4 (elements start + 4 lid .. + 3; coalesced 16-byte accesses). Blocks start on a multiple
// of 4 (tensors start on 64-element boundaries); a tensor's last vec4 may run into its padding
// (every tensor is padded to 64 elements inside its chunk), whose lanes hold zeros that no one
// reads: the update leaves them finite and nothing outside the tensor's padded range is touched.
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
//   fn update(i: u32, g: V, h: Row)             reads / writes the param and its states
//                                               through load_param(i) / store_param(i, v) and
//                                               load_<state>(i) / store_<state>(i, v), i a
//                                               vec4 index (V = vec4<f32>); 8-bit states are
//                                               decoded before it and stored after it
//                                               (q8_begin / q8_flush); with bf16 / f16
//                                               params store_param rounds (to nearest, or
//                                               stochastically) or writes the f32 master
//                                               (last binding) and the params from it,
//                                               as each group's ParamUpdate says
//   and its own override constants (DECOUPLED, the weight-decay switch of `penalize`, is
//   declared here for all of them). The param and state bindings and their accessors are
//   generated for the format of the states (optim/state/mod.rs, roles_wgsl), and the entry
//   point is appended last: optim/single_pass.wgsl, optim/single_pass_q8.wgsl (8-bit states)
//   or optim/trust/passes.wgsl.
//
// Bindings (group 0):
//   0 uniform              step: StepInfo                  (offset 0 of the uniform buffer)
//   1 uniform              groups: array<Row, 256>         (offset 256 of the same buffer)
//   2 storage, read        blocks: array<Block>            this chunk's work items
//   3 storage, read        control: Control                (a dummy unless STATS)
//   4 storage, read_write  param                           (generated, with load_param /
//                                                          store_param: array<V> for f32,
//                                                          array<vec2<u32>> for bf16 / f16)
//   5 storage, read        grad                            (generated, with grad_vec: the same)
//   6.. storage, read_write  the optimizer's states (generated: array<V> for f32,
//                          array<vec2<u32>> for bf16, array<u32> for 8 bits; 1-vec4 f32
//                          dummies for absent ones), then for 8 bits `absmax` and `qmaps`
// Guard rule: every invocation returns when b >= arrayLength(&blocks) or 4 lid >= block.len.
override MAXIMIZE: bool = false;
override STATS: bool = false;
override SKIP_NONFINITE: bool = false;
override CLIP_VALUE: bool = false;
// Decoupled weight decay (AdamW style), for the optimizers that offer it; else L2.
override DECOUPLED: bool = false;
// Whether any param group has a nonzero weight decay, or a nonzero l1: a term that is zero in
// every group is compiled out of `penalize` (not a multiply by zero per element; the host
// rebuilds the pipeline with it when a group's value becomes nonzero).
override WEIGHT_DECAY: bool = true;
override L1: bool = true;
// What the host knows of a one-pass kernel's table when it builds its pipeline (the defaults
// assume nothing): TABLE_GROUP < 256 when every block of the table is of that param group, so the
// row and the gradient factors are read at a constant index (a per-block index into the
// uniform array is a gathered load on some drivers: lavapipe's); STATE_AT_START when every
// block's state offset equals its start (states placed as the params, as f32 states of an
// unsharded single-algorithm optimizer are), which drops the offset from every state access.
override TABLE_GROUP: u32 = 65535u;
override STATE_AT_START: bool = false;

// A block's param group, the table's own when it has one.
fn table_group(g: u32) -> u32 {
    return select(g, TABLE_GROUP, TABLE_GROUP < 256u);
}

const WG: u32 = 256u;

alias V = vec4<f32>;

@group(0) @binding(0) var<uniform> step: StepInfo;
@group(0) @binding(1) var<uniform> groups: array<Row, 256>;
@group(0) @binding(2) var<storage, read> blocks: array<Block>;
@group(0) @binding(3) var<storage, read> control: Control;

// Whether this step is skipped whole (the guard saw a non-finite gradient).
fn skipped_step() -> bool {
    return SKIP_NONFINITE && control.found_inf != 0u;
}

// A param group's row, its step-dependent scalars recomputed in f32 from the device step
// when steps were skipped.
fn row_of(group: u32) -> Row {
    var h = groups[group];
    if SKIP_NONFINITE && control.skipped != 0u {
        h = after_skipped_steps(h, device_step(step, control.skipped));
    }
    return h;
}

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

fn load_grad(i: u32, f: GradFactors) -> V {
    var g = grad_vec(i) * f.pre;
    if CLIP_VALUE {
        g = clamp(g, V(-f.clip_value), V(f.clip_value));
    }
    if STATS {
        g = g * f.coef;
    }
    if MAXIMIZE {
        g = -g;
    }
    return g;
}

// The penalties every optimizer's update starts from (its own weight decay and wgpu-optim's
// l1), in PyTorch's order, each only when compiled in (WEIGHT_DECAY, L1):
//   DECOUPLED: p = p * decay_factor (1 - lr * weight_decay)     else: g = g + weight_decay * p
//   g = g + l1 * sign(p)
struct Penalized {
    p: V,
    g: V,
}

fn penalize(p: V, g: V, weight_decay: f32, decay_factor: f32, l1: f32) -> Penalized {
    var q = p;
    var d = g;
    if WEIGHT_DECAY {
        if DECOUPLED {
            q = p * decay_factor;
        } else {
            d = g + weight_decay * p;
        }
    }
    if L1 {
        d = d + l1 * sign(q);
    }
    return Penalized(q, d);
}

// torch.lerp on CPU: weight < 0.5 ? a + w * (b - a) : b - (b - a) * (1 - w), with no branch:
// both are base + k * (b - a), (base, k) = (a, w) or (b, -(1 - w)) chosen once from the
// group's w (a scalar select), then one vector select. Bitwise torch's either way:
// x * -y = -(x * y) and b + -z = b - z exactly in IEEE arithmetic (a fused multiply-add too).
fn torch_lerp(a: V, b: V, w: f32) -> V {
    let low = w < 0.5;
    let k = select(-(1.0 - w), w, low);
    return select(b, a, low) + k * (b - a);
}

// Bias corrections after skipped steps, accurate in f32 on every driver: 1 - (1 - x)^t and
// d = t x - (1 - (1 - x)^t), from x = 1 - beta (rounded once from the host's f64) and the
// device step t. pow / exp / log near 1 carry an absolute error of up to 2^-21 on GPUs (the
// WGSL and Vulkan precision rules), a large relative error in 1 - beta^t for small t (1e-4 for
// beta = 0.999, t = 5); the series below use only +, *, / where the result is small and
// exp / log only where it is not.
struct BiasCorrection {
    bc: f32,
    d: f32,
    // (1 - x)^t itself.
    q: f32,
}

// l - (1 - e^-l) = l^2/2! - l^3/3! + ..., for 0 <= l < 0.5.
fn expm1_excess(l: f32) -> f32 {
    var b = 0.0;
    var term = l;
    for (var k = 2; k <= 16; k++) {
        term = -term * l / f32(k);
        b = b - term;
    }
    return b;
}

// 1 - e^-l for l >= 0, accurate also for small l.
fn one_minus_exp_neg(l: f32) -> f32 {
    if l < 0.5 {
        return l - expm1_excess(l);
    }
    return 1.0 - exp(-l);
}

fn bias_correction(x: f32, t: f32) -> BiasCorrection {
    // lx = -ln(1 - x) = x + a, a = x^2/2 + x^3/3 + ...
    var a = 0.0;
    if x < 0.5 {
        var term = x;
        for (var k = 2; k <= 32; k++) {
            term = term * x;
            a = a + term / f32(k);
        }
    } else {
        a = -log(1.0 - x) - x;
    }
    let l = t * (x + a);
    if l < 0.5 {
        let b = expm1_excess(l);
        let bc = l - b;
        return BiasCorrection(bc, b - t * a, 1.0 - bc);
    }
    let q = exp(-l);
    let bc = 1.0 - q;
    return BiasCorrection(bc, t * x - bc, q);
}

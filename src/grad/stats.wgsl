// grad/stats.wgsl — pass 1 of the gradient pipeline: per-block partial norms and a non-finite
// flag, with no float atomics, so the reduction order is fixed.
//
// Mirrors the first half of torch.nn.utils.clip_grad_norm_ (and the found_inf check of
// torch.amp.GradScaler.unscale_): each element's gradient is first unscaled,
//   u = grad * step.grad_scale / control.scale       (host factor, dynamic loss scale)
//   nonfinite |= u is NaN or +-Inf                    (tested before any clamp)
//   u = clamp(u, -clip_value, clip_value)             when CLIP_VALUE (clip_grad_value_)
// then each workgroup reduces its block (<= 1024 elements) to
//   m = max |u| over finite u,   s = sum (|u| / m)^p  (p = 1 or 2; BLAS nrm2-style scaling,
//   so gradients of 1e20 give a finite norm), nonfinite = any u is NaN or +-Inf,
// and writes partials[block.index] = (m, s, nonfinite, bitcast<f32>(block.group)).
// Each of the 64 invocations first reduces its 16 elements in registers (its own max, then
// the scaled sum), then one fixed-order tree of 6 barrier rounds combines the (m, s) pairs,
// rescaling the smaller side: few barriers, which matters on CPU drivers such as lavapipe,
// and coalesced loads (element k * 64 + lid) on GPUs.
//
// Bindings (group 0):
//   0 uniform              params: StatsParams        (written once, when the optimizer is built)
//   1 uniform              step: StepInfo             (the optimizer's per-step uniform, offset 0)
//   2 storage, read        blocks: array<Block>       (the optimizer's block table of this chunk)
//   3 storage, read        grad
//   4 storage, read_write  partials: array<vec4<f32>> (one per block, all chunks)
//   5 storage, read        control: Control           (loss scale)
// Structs StatsParams, Block, StepInfo, Control: gpu/common.wgsl; nrm_power / nrm_combine: grad/norm.wgsl;
// both prepended at compile time.
// Uniform layout: StatsParams, 12 x 4-byte scalars = 48 bytes (Rust: grad::StatsParams).
// Dispatch: one workgroup (64 invocations) per block on a 2-D grid, b = wid.x + wid.y * nwg.x.
// Guard rule: the workgroup returns when b >= arrayLength(&blocks) (uniform, before any
// barrier); invocations with j >= block.len contribute zero.

override CLIP_VALUE: bool = false;

const WG: u32 = 64u;
const PER_THREAD: u32 = 16u;

@group(0) @binding(0) var<uniform> params: StatsParams;
@group(0) @binding(1) var<uniform> step: StepInfo;
@group(0) @binding(2) var<storage, read> blocks: array<Block>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> partials: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> control: Control;

var<workgroup> wm: array<f32, 64>;
var<workgroup> ws: array<f32, 64>;
var<workgroup> wbad: array<u32, 64>;

fn is_finite(x: f32) -> bool {
    // Exponent bits all ones means Inf or NaN; robust where `x != x` may be folded away.
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}


@compute @workgroup_size(64)
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
    let pre = step.grad_scale / control.scale;
    var u: array<f32, 16>;
    var m = 0.0;
    var nonfinite = 0u;
    for (var k = 0u; k < PER_THREAD; k++) {
        let j = k * WG + lid;
        var x = 0.0;
        if j < blk.len {
            x = grad[blk.start + j] * pre;
            // Finiteness of the unscaled gradient, before any clamp
            // (GradScaler's order): a clamp would turn +-Inf into +-clip_value.
            if !is_finite(x) {
                nonfinite = 1u;
                x = 0.0;
            }
            if CLIP_VALUE {
                x = clamp(x, -params.clip_value, params.clip_value);
            }
        }
        u[k] = abs(x);
        m = max(m, u[k]);
    }
    var s = 0.0;
    if m > 0.0 {
        let inv = 1.0 / m;
        for (var k = 0u; k < PER_THREAD; k++) {
            s = s + nrm_power(u[k] * inv, params.norm_type == 1u);
        }
    }
    wm[lid] = m;
    ws[lid] = s;
    wbad[lid] = nonfinite;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if lid < stride {
            let c = nrm_combine(
                vec2<f32>(wm[lid], ws[lid]),
                vec2<f32>(wm[lid + stride], ws[lid + stride]),
                params.norm_type == 1u,
            );
            wm[lid] = c.x;
            ws[lid] = c.y;
            wbad[lid] = max(wbad[lid], wbad[lid + stride]);
        }
        workgroupBarrier();
    }
    if lid == 0u {
        partials[blk.index] = vec4<f32>(wm[0], ws[0], f32(wbad[0]), bitcast<f32>(blk.group));
    }
}

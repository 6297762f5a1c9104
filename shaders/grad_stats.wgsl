// grad_stats.wgsl — pass 1 of the gradient pipeline: per-block partial norms and a non-finite
// flag, with no float atomics, so the reduction order is fixed.
//
// Mirrors the first half of torch.nn.utils.clip_grad_norm_ (and the found_inf check of
// torch.amp.GradScaler.unscale_): each element's gradient is first unscaled,
//   u = grad * host_scale / control.scale            (averaging factor, dynamic loss scale)
//   u = clamp(u, -clip_value, clip_value)             when CLIP_VALUE (clip_grad_value_)
// then each workgroup reduces its block (<= 1024 elements) to
//   m = max |u| over finite u,   s = sum (|u| / m)^p  (p = 1 or 2; BLAS nrm2-style scaling,
//   so gradients of 1e20 give a finite norm), nonfinite = any u is NaN or +-Inf,
// and writes partials[block.index] = (m, s, nonfinite, bitcast<f32>(block.group)).
//
// Bindings (group 0):
//   0 uniform              params: StatsParams
//   1 storage, read        blocks: array<Block>       (the optimizer's block table of this chunk)
//   2 storage, read        grad
//   3 storage, read_write  partials: array<vec4<f32>> (one per block, all chunks)
//   4 storage, read        control: Control           (loss scale)
// Uniform layout: StatsParams, 12 x 4-byte scalars = 48 bytes (Rust: clip::StatsParams).
// Dispatch: one workgroup per block on a 2-D grid, b = wid.x + wid.y * nwg.x.
// Guard rule: the workgroup returns when b >= arrayLength(&blocks) (uniform, before any
// barrier); invocations with j >= block.len contribute zero.

override CLIP_VALUE: bool = false;

const WG: u32 = 256u;
const PER_THREAD: u32 = 4u;

struct Block {
    start: u32,
    len: u32,
    group: u32,
    index: u32,
}

struct StatsParams {
    host_scale: f32,
    clip_value: f32,
    max_norm: f32,
    norm_type: u32,
    n_partials: u32,
    n_groups: u32,
    per_group: u32,
    dynamic_scale: u32,
    growth_factor: f32,
    backoff_factor: f32,
    growth_interval: u32,
    skip_nonfinite: u32,
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

@group(0) @binding(0) var<uniform> params: StatsParams;
@group(0) @binding(1) var<storage, read> blocks: array<Block>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> partials: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> control: Control;

var<workgroup> red: array<f32, 256>;
var<workgroup> bad: array<u32, 256>;

fn is_finite(x: f32) -> bool {
    // Exponent bits all ones means Inf or NaN; robust where `x != x` may be folded away.
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
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
    let pre = params.host_scale / control.scale;
    var u: array<f32, 4>;
    var m = 0.0;
    var nonfinite = 0u;
    for (var k = 0u; k < PER_THREAD; k++) {
        let j = k * WG + lid;
        var x = 0.0;
        if j < blk.len {
            x = grad[blk.start + j] * pre;
            if CLIP_VALUE {
                x = clamp(x, -params.clip_value, params.clip_value);
            }
            if !is_finite(x) {
                nonfinite = 1u;
                x = 0.0;
            }
        }
        u[k] = abs(x);
        m = max(m, u[k]);
    }
    // Workgroup max, fixed tree order.
    red[lid] = m;
    bad[lid] = nonfinite;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if lid < stride {
            red[lid] = max(red[lid], red[lid + stride]);
            bad[lid] = max(bad[lid], bad[lid + stride]);
        }
        workgroupBarrier();
    }
    let bmax = red[0];
    let bbad = bad[0];
    workgroupBarrier();
    var s = 0.0;
    if bmax > 0.0 {
        for (var k = 0u; k < PER_THREAD; k++) {
            let r = u[k] / bmax;
            if params.norm_type == 1u {
                s = s + r;
            } else {
                s = s + r * r;
            }
        }
    }
    red[lid] = s;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if lid < stride {
            red[lid] = red[lid] + red[lid + stride];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        partials[blk.index] = vec4<f32>(bmax, red[0], f32(bbad), bitcast<f32>(blk.group));
    }
}

// grad/finalize.wgsl — pass 2 of the gradient pipeline: one workgroup reduces the per-block
// partials in a fixed order into the norm of each scope (all tensors, or each param group),
// then decides the step:
//   norm  = m * sqrt(s) (L2), m * s (L1), m (inf)          — PyTorch clip_grad_norm_
//   coef  = min(1, max_norm / (norm + 1e-6))                — always multiplied, no host branch
//   found_inf = any gradient non-finite after unscaling     — GradScaler's found_inf
//   control.groups[g] = (pre = step.grad_scale / scale, coef, norm, clip_value) for the optimizer
//   skipped += found_inf (when skipping)
//   dynamic loss scale (torch._amp_update_scale_): on found_inf scale *= backoff_factor and
//   growth_tracker = 0; else growth_tracker += 1 and, when it reaches growth_interval,
//   scale *= growth_factor (if finite) and growth_tracker = 0.
// Partials combine as (m, s) pairs: the larger m wins and the other s is rescaled by
// (m_small / m_big)^p, so no intermediate overflows.
//
// Bindings (group 0):
//   0 uniform              params: StatsParams          (as grad/stats.wgsl)
//   1 uniform              step: StepInfo               (the optimizer's per-step uniform)
//   2 storage, read        partials: array<vec4<f32>>  (m, s, nonfinite, bitcast group)
//   3 storage, read_write  control: Control
// Structs StatsParams, StepInfo, GroupOut, Control: gpu/common.wgsl; nrm_power / nrm_combine: grad/norm.wgsl;
// both prepended at compile time.
// Uniform layout: StatsParams, 48 bytes (Rust: grad::StatsParams).
// Dispatch: exactly one workgroup. Guard rule: loops stop at params.n_partials; only
// invocation 0 writes control.

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: StatsParams;
@group(0) @binding(1) var<uniform> step: StepInfo;
@group(0) @binding(2) var<storage, read> partials: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> control: Control;

var<workgroup> wm: array<f32, 256>;
var<workgroup> ws: array<f32, 256>;
var<workgroup> wbad: array<u32, 256>;
var<workgroup> norms: array<f32, 256>;
var<workgroup> any_bad: u32;


@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
    if lid == 0u {
        any_bad = 0u;
    }
    let scopes = select(1u, params.n_groups, params.per_group != 0u);
    for (var g = 0u; g < scopes; g++) {
        var acc = vec2<f32>(0.0, 0.0);
        var bad = 0u;
        for (var i = lid; i < params.n_partials; i += WG) {
            let p = partials[i];
            if params.per_group == 0u || bitcast<u32>(p.w) == g {
                acc = nrm_combine(acc, p.xy, params.norm_type == 1u);
                bad = max(bad, u32(p.z));
            }
        }
        wm[lid] = acc.x;
        ws[lid] = acc.y;
        wbad[lid] = bad;
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
            var norm = wm[0];
            if params.norm_type == 1u {
                norm = wm[0] * ws[0];
            } else if params.norm_type == 2u {
                norm = wm[0] * sqrt(ws[0]);
            }
            if wbad[0] != 0u {
                norm = bitcast<f32>(0x7f800000u); // +inf
                any_bad = 1u;
            }
            norms[g] = norm;
        }
        workgroupBarrier();
    }
    if lid == 0u {
        let scale = control.scale;
        let pre = step.grad_scale / scale;
        for (var g = 0u; g < params.n_groups; g++) {
            var norm = norms[0];
            if params.per_group != 0u {
                norm = norms[g];
            }
            var coef = 1.0;
            if params.max_norm > 0.0 {
                coef = min(1.0, params.max_norm / (norm + 1e-6));
            }
            control.groups[g] = GroupOut(pre, coef, norm, params.clip_value);
        }
        let found = any_bad;
        control.found_inf = found;
        if params.skip_nonfinite != 0u {
            control.skipped = control.skipped + found;
        }
        if params.dynamic_scale != 0u {
            if found != 0u {
                control.scale = scale * params.backoff_factor;
                control.growth_tracker = 0u;
            } else {
                let successful = control.growth_tracker + 1u;
                if successful == params.growth_interval {
                    let grown = scale * params.growth_factor;
                    if (bitcast<u32>(grown) & 0x7f800000u) != 0x7f800000u {
                        control.scale = grown;
                    }
                    control.growth_tracker = 0u;
                } else {
                    control.growth_tracker = successful;
                }
            }
        }
    }
}

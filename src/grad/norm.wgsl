// grad/norm.wgsl — the overflow-safe (m, s) pairs that the gradient pipeline (grad/stats.wgsl,
// grad/finalize.wgsl) and the per-tensor norms of the trust-ratio optimizers
// (optim/trust/passes.wgsl) reduce: m = max |u|, s = sum (|u| / m)^p with p = 1 (L1) or 2 (L2)
// (BLAS nrm2-style scaling, so values of 1e20 give a finite norm). Pure functions; prepended
// after gpu/common.wgsl.

fn nrm_power(r: f32, l1: bool) -> f32 {
    if l1 {
        return r;
    }
    return r * r;
}

// (m, s) with (m2, s2) -> the pair of the union, rescaled to the larger m.
fn nrm_combine(a: vec2<f32>, b: vec2<f32>, l1: bool) -> vec2<f32> {
    if b.x > a.x {
        var s = b.y;
        if a.x > 0.0 {
            s = b.y + a.y * nrm_power(a.x / b.x, l1);
        }
        return vec2<f32>(b.x, s);
    }
    if b.x > 0.0 {
        return vec2<f32>(a.x, a.y + b.y * nrm_power(b.x / a.x, l1));
    }
    return a;
}

// grad/norm.wgsl — the overflow-safe (m, s) pairs both passes of the gradient pipeline reduce:
// m = max |u|, s = sum (|u| / m)^p with p = 1 (L1) or 2 (L2) (BLAS nrm2-style scaling).
// Prepended, after gpu/common.wgsl, to grad/stats.wgsl and grad/finalize.wgsl, which both bind
// `params: StatsParams` (norm_type: 1 = L1, 2 = L2, 0 = inf).

fn power(r: f32) -> f32 {
    if params.norm_type == 1u {
        return r;
    }
    return r * r;
}

// (m, s) with (m2, s2) -> the pair of the union, rescaled to the larger m.
fn combine(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    if b.x > a.x {
        var s = b.y;
        if a.x > 0.0 {
            s = b.y + a.y * power(a.x / b.x);
        }
        return vec2<f32>(b.x, s);
    }
    if b.x > 0.0 {
        return vec2<f32>(a.x, a.y + b.y * power(b.x / a.x));
    }
    return a;
}

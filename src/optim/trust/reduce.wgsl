// trust/reduce.wgsl — the per-tensor L2 norms inside the step, shared by the entry points
// that reduce over a tensor (trust/passes.wgsl for LAMB and LARS, muon/passes.wgsl for Muon,
// adafactor/passes.wgsl): the overflow-safe pairs of up to four lanes, one workgroup's
// fixed-order combination of 256 (p pair, u pair) entries, and a tensor's reduction over its
// blocks' entries of `work` (one vec4 per block, declared by each entry point at binding 6).
// Needs grad/norm.wgsl (nrm_combine) and WG (prelude.wgsl).

var<workgroup> wpairs: array<vec4<f32>, 256>;
var<workgroup> wsixteen: array<vec4<f32>, 16>;
var<workgroup> wresult: vec4<f32>;

fn finite(x: f32) -> bool {
    // Exponent bits all ones means Inf or NaN; robust where `x != x` may be folded away.
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

// A quiet NaN made from x (a value the compiler cannot fold away).
fn poison(x: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(x) | 0x7fc00000u);
}

// The L2 pair (max |x|, sum (|x| / max)^2) of the lanes of x below `lanes`, with one reciprocal.
// A NaN or infinite lane makes the pair's sum NaN, which every later nrm_combine keeps (both of
// its branches add the sums): the tensor's norm is then NaN, not the norm of its finite part.
fn lane_pair(x: V, lanes: u32) -> vec2<f32> {
    var v = abs(x);
    if lanes < 4u {
        v = select(v, V(0.0), vec4<u32>(0u, 1u, 2u, 3u) >= vec4<u32>(lanes));
    }
    if !(finite(v.x) && finite(v.y) && finite(v.z) && finite(v.w)) {
        return vec2<f32>(1.0, poison(v.x + v.y + v.z + v.w));
    }
    let m = max(max(v.x, v.y), max(v.z, v.w));
    if m == 0.0 {
        return vec2<f32>(0.0, 0.0);
    }
    let r = v * (1.0 / m);
    return vec2<f32>(m, dot(r, r));
}

fn combine_pairs(a: vec4<f32>, b: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(nrm_combine(a.xy, b.xy, false), nrm_combine(a.zw, b.zw, false));
}

// Combines every invocation's (p pair, u pair) in a fixed order, radix 16 (invocations 0..15
// each combine 16 entries, then invocation 0 the 16 results): three barriers instead of a
// binary tree's nine, which matters where barriers are dear (CPU drivers such as lavapipe)
// and costs nothing on GPUs. Every invocation returns the workgroup's result.
fn reduce_workgroup(lid: u32, mine: vec4<f32>) -> vec4<f32> {
    wpairs[lid] = mine;
    workgroupBarrier();
    if lid < 16u {
        var acc = wpairs[16u * lid];
        for (var k = 1u; k < 16u; k++) {
            acc = combine_pairs(acc, wpairs[16u * lid + k]);
        }
        wsixteen[lid] = acc;
    }
    workgroupBarrier();
    if lid == 0u {
        var acc = wsixteen[0];
        for (var k = 1u; k < 16u; k++) {
            acc = combine_pairs(acc, wsixteen[k]);
        }
        wresult = acc;
    }
    workgroupBarrier();
    return wresult;
}

// The (p pair, u pair) of a tensor's blocks work[first .. first + count], combined in a fixed
// order (no float atomics); every invocation returns it.
fn tensor_pairs(first: u32, count: u32, lid: u32) -> vec4<f32> {
    var acc = vec4<f32>(0.0);
    for (var j = lid; j < count; j += WG) {
        acc = combine_pairs(acc, work[first + j]);
    }
    return reduce_workgroup(lid, acc);
}

// Writes v into each of a tensor's entries of work: each invocation only the entries it read
// in tensor_pairs, so no entry is read after it is overwritten.
fn write_tensor(first: u32, count: u32, lid: u32, v: vec4<f32>) {
    for (var j = lid; j < count; j += WG) {
        work[first + j] = v;
    }
}

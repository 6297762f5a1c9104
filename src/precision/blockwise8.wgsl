// precision/blockwise8.wgsl — bitsandbytes' blockwise 8-bit dynamic quantization in WGSL
// (host twins: precision/mod.rs): four codes per u32, element 4k + j in byte j; each block of
// 256 elements (64 invocations of 4) shares one f32 absmax.
//
// Storing needs the workgroup: the 64 invocations of a quantization block find its absmax
// together. So the generated accessors (optim/state/mod.rs) defer: q8_begin decodes every
// 8-bit state of the invocation's vec4 into private variables, load_<state> / store_<state>
// read and write those, and q8_flush, called by the entry point (single_pass_q8.wgsl) from
// every invocation after the update, finds all the states' absmax in one reduction
// (q8_absmax4) and stores codes and absmax.

// Both dynamic maps, copied once per workgroup from the uniform `qmaps` (its declaration is
// generated with the kernel's bindings: 128 vec4<u32>, the signed map's f32 bits first).
var<workgroup> qmap: array<array<f32, 256>, 2>;
var<workgroup> qscratch: array<vec4<f32>, 256>;
// This invocation's index in the workgroup, and whether its vec4 is in the block (the others
// take part in the reductions with zeros and store nothing).
var<private> q_lane: u32;
var<private> q_active: bool;

fn q8_enter(lid: u32, in_block: bool) {
    q_lane = lid;
    q_active = in_block;
    // One entry of each map per invocation (256 of them).
    qmap[0][lid] = bitcast<f32>(qmaps[lid / 4u][lid % 4u]);
    qmap[1][lid] = bitcast<f32>(qmaps[64u + lid / 4u][lid % 4u]);
    workgroupBarrier();
}

fn q8_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

// The largest magnitude of one state's four values, NaN when one is not finite; 0 from an
// invocation past the block's end.
fn q8_lane_max(v: vec4<f32>) -> f32 {
    let a = abs(v);
    if !(q8_finite(a.x) && q8_finite(a.y) && q8_finite(a.z) && q8_finite(a.w)) {
        return bitcast<f32>(0x7fc00000u);
    }
    return select(0.0, max(max(a.x, a.y), max(a.z, a.w)), q_active);
}

// max, NaN winning (x + y is NaN when either is).
fn q8_max(x: vec4<f32>, y: vec4<f32>) -> vec4<f32> {
    var m = max(x, y);
    let nan = x + y;
    m.x = select(m.x, nan.x, !(q8_finite(x.x) && q8_finite(y.x)));
    m.y = select(m.y, nan.y, !(q8_finite(x.y) && q8_finite(y.y)));
    m.z = select(m.z, nan.z, !(q8_finite(x.z) && q8_finite(y.z)));
    m.w = select(m.w, nan.w, !(q8_finite(x.w) && q8_finite(y.w)));
    return m;
}

var<workgroup> qsixteen: array<vec4<f32>, 16>;

// The absmax of each of up to four states (the lanes of `m`, each invocation's q8_lane_max)
// over this invocation's quantization block of 64 invocations: 16 invocations per block
// combine 4 entries each, then every invocation combines its block's 4 partials. Two
// barriers after the storage barrier; every invocation of the workgroup calls it, once.
fn q8_absmax4(m: vec4<f32>) -> vec4<f32> {
    // Loads of the old absmax by every invocation come before any store of the new one.
    storageBarrier();
    qscratch[q_lane] = m;
    workgroupBarrier();
    if q_lane % 64u < 4u {
        let base = q_lane & ~63u;
        let k = q_lane % 64u;
        var acc = qscratch[base + 16u * k];
        for (var t = 1u; t < 16u; t++) {
            acc = q8_max(acc, qscratch[base + 16u * k + t]);
        }
        qsixteen[q_lane / 64u * 4u + k] = acc;
    }
    workgroupBarrier();
    let s = q_lane / 64u * 4u;
    return q8_max(q8_max(qsixteen[s], qsixteen[s + 1u]), q8_max(qsixteen[s + 2u], qsixteen[s + 3u]));
}

// Where x's code lies, about: the map's structure (precision::dynamic_map) read backwards.
// Exponent e = 0..6 covers magnitudes [10^(e-7), 10^(e-6)) with n = 2^e (signed) or 2^(e+1)
// (unsigned) means of equal intervals; the positive means of exponent e start at index
// 127 + 2^e (signed) or 2^(e+1) - 1 (unsigned), the signed map's negatives mirror them
// (entry 255 - k is -entry k), zero is index 127 (signed) or 0. Only a first guess
// (measured on the host over 10^5 log-uniform values: at most 1 entry off, 0.5 on average):
// q8_code walks from it.
fn q8_guess(x: f32, which: u32) -> u32 {
    let a = abs(x);
    let zero = select(0u, 127u, which == 0u);
    if !(a >= 1e-7) {
        return zero;
    }
    let e = u32(clamp(floor(log2(a) * 0.30103) + 7.0, 0.0, 6.0));
    let n = select(2u << e, 1u << e, which == 0u);
    let scaled = a * exp2((6.0 - f32(e)) * 3.3219281);
    let j = u32(clamp((scaled - 0.1) * f32(n) / 0.9, 0.0, f32(n - 1u)));
    if which == 1u {
        return (2u << e) - 1u + j;
    }
    // For x < 0 the last entry at or below x mirrors the first positive one above |x|.
    let k = 127u + (1u << e) + j;
    return select(k, 254u - k, x < 0.0);
}

// The index of the nearest entry of map `which` (0 signed, 1 unsigned) to x, ties to the
// lower entry (precision::quantize_value): the last entry at or below x, found by walking
// from q8_guess (a step or two: a few shared-memory reads instead of a search's eight), then
// the nearer of it and the next.
fn q8_code(x: f32, which: u32) -> u32 {
    var k = q8_guess(x, which);
    while k < 255u && qmap[which][k + 1u] <= x {
        k += 1u;
    }
    while k > 0u && qmap[which][k] > x {
        k -= 1u;
    }
    if k < 255u && abs(x - qmap[which][k + 1u]) < abs(x - qmap[which][k]) {
        k += 1u;
    }
    return k;
}

// Four values divided by the block's absmax and coded (codes of 0 when absmax is 0 or NaN).
fn q8x4_pack(v: vec4<f32>, absmax: f32, which: u32) -> u32 {
    var x = vec4<f32>(0.0);
    if absmax > 0.0 {
        x = v / absmax;
    }
    return q8_code(x.x, which) | (q8_code(x.y, which) << 8u) | (q8_code(x.z, which) << 16u)
        | (q8_code(x.w, which) << 24u);
}

fn q8x4_unpack(w: u32, absmax: f32, which: u32) -> vec4<f32> {
    return vec4<f32>(
        qmap[which][w & 0xffu],
        qmap[which][(w >> 8u) & 0xffu],
        qmap[which][(w >> 16u) & 0xffu],
        qmap[which][w >> 24u],
    ) * absmax;
}

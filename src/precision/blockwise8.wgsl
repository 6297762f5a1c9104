// precision/blockwise8.wgsl — bitsandbytes' blockwise 8-bit dynamic quantization in WGSL
// (host twins: precision/mod.rs): four codes per u32, element 4k + j in byte j; each block of
// 256 elements (64 invocations of 4) shares one f32 absmax.
//
// Storing needs the workgroup: the 64 invocations of a quantization block find its absmax
// together, so a kernel that stores 8-bit values calls q8_absmax (through the generated
// store_<state>) in uniform control flow from every invocation, after q8_enter.

// Both dynamic maps, copied once per workgroup from the uniform `qmaps` (its declaration is
// generated with the kernel's bindings: 128 vec4<u32>, the signed map's f32 bits first).
var<workgroup> qmap: array<array<f32, 256>, 2>;
var<workgroup> qscratch: array<f32, 256>;
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

// The largest magnitude over this invocation's quantization block (64 invocations), NaN when
// any of its values is not finite. Every invocation of the workgroup calls it.
fn q8_absmax(v: vec4<f32>) -> f32 {
    let a = abs(v);
    var m = max(max(a.x, a.y), max(a.z, a.w));
    if !(q8_finite(a.x) && q8_finite(a.y) && q8_finite(a.z) && q8_finite(a.w)) {
        m = bitcast<f32>(0x7fc00000u);
    }
    if !q_active {
        m = 0.0;
    }
    // Loads of the old absmax by every invocation come before any store of the new one.
    storageBarrier();
    qscratch[q_lane] = m;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s = s >> 1u) {
        if q_lane % 64u < s {
            let x = qscratch[q_lane];
            let y = qscratch[q_lane + s];
            // max, NaN winning (x + y is NaN when either is).
            qscratch[q_lane] = select(max(x, y), x + y, !(q8_finite(x) && q8_finite(y)));
        }
        workgroupBarrier();
    }
    let r = qscratch[q_lane & ~63u];
    workgroupBarrier();
    return r;
}

// The index of the nearest entry of map `which` (0 signed, 1 unsigned) to x, ties to the
// lower entry (precision::quantize_value).
fn q8_code(x: f32, which: u32) -> u32 {
    var k = 0u;
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if qmap[which][k + s] <= x {
            k += s;
        }
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

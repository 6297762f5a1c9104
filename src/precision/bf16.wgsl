// precision/bf16.wgsl — bf16 storage in WGSL (host twins: precision/mod.rs): two values per
// u32, element 2k in the low half (the host's byte order), widened by a shift, rounded to
// nearest even on store. Arithmetic stays f32.

fn bf16x4_unpack(w: vec2<u32>) -> vec4<f32> {
    return vec4<f32>(
        bitcast<f32>(w.x << 16u),
        bitcast<f32>(w.x & 0xffff0000u),
        bitcast<f32>(w.y << 16u),
        bitcast<f32>(w.y & 0xffff0000u),
    );
}

// Round to nearest, ties to even; a NaN stays a quiet NaN; overflow becomes infinity.
fn bf16_bits(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    if (b & 0x7fffffffu) > 0x7f800000u {
        return (b >> 16u) | 0x40u;
    }
    return (b + 0x7fffu + ((b >> 16u) & 1u)) >> 16u;
}

fn bf16x4_pack(v: vec4<f32>) -> vec2<u32> {
    return vec2<u32>(
        bf16_bits(v.x) | (bf16_bits(v.y) << 16u),
        bf16_bits(v.z) | (bf16_bits(v.w) << 16u),
    );
}

// precision/rounding.wgsl — f16 storage and the rounding of f32 results into bf16 / f16 params
// (host twins: precision/rounding.rs, checked bitwise). Needs bf16.wgsl (bf16_bits).
// f16 values are converted on their bits, not with pack2x16float / unpack2x16float, whose
// rounding and overflow WGSL leaves to the implementation: every adapter stores the same bits.
// Two values per u32, element 2k in the low half (the host's byte order).

// The f32 value of f16 bits `h` (exact).
fn f16_value(h: u32) -> f32 {
    let sign = (h & 0x8000u) << 16u;
    let e = (h >> 10u) & 0x1fu;
    let m = h & 0x3ffu;
    if e == 31u {
        return bitcast<f32>(sign | 0x7f800000u | (m << 13u));
    }
    if e == 0u {
        // Subnormal: m x 2^-24, exact in f32.
        return bitcast<f32>(sign | bitcast<u32>(f32(m) * 5.9604644775390625e-8));
    }
    return bitcast<f32>(sign | ((e + 112u) << 23u) | (m << 13u));
}

fn f16x4_unpack(w: vec2<u32>) -> vec4<f32> {
    return vec4<f32>(
        f16_value(w.x & 0xffffu),
        f16_value(w.x >> 16u),
        f16_value(w.y & 0xffffu),
        f16_value(w.y >> 16u),
    );
}

// x's f16 magnitude truncated (`base`), the dropped bits (`rem`, the whole significand when
// drop >= 32) and their number (`drop`).
struct F16Cut {
    sign: u32,
    base: u32,
    rem: u32,
    drop: u32,
}

fn f16_cut(x: f32) -> F16Cut {
    let b = bitcast<u32>(x);
    let sign = (b >> 16u) & 0x8000u;
    let a = b & 0x7fffffffu;
    let e = a >> 23u;
    if a > 0x7f800000u {
        return F16Cut(sign, 0x7e00u | ((a >> 13u) & 0x3ffu), 0u, 0u);
    }
    if a >= 0x47800000u {
        return F16Cut(sign, 0x7c00u, 0u, 0u);
    }
    if e >= 113u {
        return F16Cut(sign, ((e - 112u) << 10u) | ((a >> 13u) & 0x3ffu), a & 0x1fffu, 13u);
    }
    if e == 0u {
        return F16Cut(sign, 0u, 0u, 0u);
    }
    let m = (a & 0x7fffffu) | 0x800000u;
    let drop = 126u - e;
    if drop >= 32u {
        return F16Cut(sign, 0u, m, drop);
    }
    return F16Cut(sign, m >> drop, m & ((1u << drop) - 1u), drop);
}

// Round to nearest, ties to even; overflow to infinity; a NaN stays a quiet NaN.
fn f16_bits(x: f32) -> u32 {
    let c = f16_cut(x);
    var base = c.base;
    if c.drop > 0u && c.drop < 32u {
        let tie = 1u << (c.drop - 1u);
        if c.rem > tie || (c.rem == tie && (base & 1u) == 1u) {
            base += 1u;
        }
    }
    return c.sign | base;
}

// Rounded up in magnitude with probability equal to the dropped fraction, from random word r.
fn f16_bits_stochastic(x: f32, r: u32) -> u32 {
    let c = f16_cut(x);
    var up = false;
    if c.drop > 0u && c.drop < 32u {
        up = (r >> (32u - c.drop)) < c.rem;
    } else if c.drop == 32u {
        up = r < c.rem;
    } else if c.drop > 32u && c.drop < 64u {
        up = r < (c.rem >> (c.drop - 32u));
    }
    return c.sign | (c.base + select(0u, 1u, up));
}

fn f16x4_pack(v: vec4<f32>) -> vec2<u32> {
    return vec2<u32>(
        f16_bits(v.x) | (f16_bits(v.y) << 16u),
        f16_bits(v.z) | (f16_bits(v.w) << 16u),
    );
}

// torchao's bf16 stochastic rounding: add 16 random bits below the kept ones, truncate.
fn bf16_bits_stochastic(x: f32, r: u32) -> u32 {
    let b = bitcast<u32>(x);
    if (b & 0x7fffffffu) >= 0x7f800000u {
        return bf16_bits(x);
    }
    return (b + (r & 0xffffu)) >> 16u;
}

// The high and low 32 bits of a x b.
fn mul_hi_lo(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
    let hi = p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
    return vec2<u32>(hi, a * b);
}

// Philox4x32-10 (Random123's philox4x32_R(10, ctr, key)).
fn philox4x32_10(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = counter;
    var k = key;
    for (var round = 0u; round < 10u; round++) {
        if round > 0u {
            k = k + vec2<u32>(0x9e3779b9u, 0xbb67ae85u);
        }
        let p0 = mul_hi_lo(0xd2511f53u, c.x);
        let p1 = mul_hi_lo(0xcd9e8d57u, c.z);
        c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
    }
    return c;
}

// The random words of vec4 v of tensor `tensor` at step t (64 bits as lo, hi) under `seed`
// (Rust: precision::rounding::round_words).
fn round_words(seed: u32, tensor: u32, v: u32, t_lo: u32, t_hi: u32) -> vec4<u32> {
    return philox4x32_10(vec4<u32>(v, tensor, t_lo, t_hi), vec2<u32>(seed, 0x57524f55u));
}

//! Rounding f32 results into bf16 / f16 params on the device, and the host
//! twins the tests check the kernels against bitwise: round to nearest even
//! on the bits (`f16_bits`: WGSL leaves the rounding and overflow of its
//! `pack2x16float` to the implementation, so the kernels do not use it) and
//! stochastic rounding driven by Philox4x32-10 (Salmon et al. 2011,
//! "Parallel random numbers: as easy as 1, 2, 3"; the generator of
//! PyTorch's CUDA and JAX's `rbg` streams), counted by (element, tensor,
//! step) and keyed by a seed, so a run is reproducible and every replica
//! rounds alike. The WGSL twins are in `rounding.wgsl`.

/// Philox4x32 with 10 rounds of `counter` under `key` (Random123's
/// `philox4x32_R(10, ctr, key)`).
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    const M0: u64 = 0xD251_1F53;
    const M1: u64 = 0xCD9E_8D57;
    const W0: u32 = 0x9E37_79B9;
    const W1: u32 = 0xBB67_AE85;
    let (mut c, mut k) = (counter, key);
    for round in 0..10 {
        if round > 0 {
            k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
        }
        let p0 = M0 * c[0] as u64;
        let p1 = M1 * c[2] as u64;
        c = [
            (p1 >> 32) as u32 ^ c[1] ^ k[0],
            p1 as u32,
            (p0 >> 32) as u32 ^ c[3] ^ k[1],
            p0 as u32,
        ];
    }
    c
}

/// The four random words of vec4 `v` of tensor `tensor` (elements `4v ..
/// 4v + 3`, one word each) at host step `t` under `seed`: Philox4x32-10 of
/// counter `(v, tensor, t low, t high)` and key `(seed, 0x5752_4f55)`. The
/// WGSL twin is `round_words`.
pub fn round_words(seed: u32, tensor: u32, v: u32, t: u64) -> [u32; 4] {
    philox4x32_10([v, tensor, t as u32, (t >> 32) as u32], [seed, ROUND_KEY])
}

/// The second key word of the rounding stream (`"WROU"`), so that it never
/// coincides with another Philox stream of the same seed.
const ROUND_KEY: u32 = 0x5752_4f55;

/// bf16 bits of `x` rounded up in magnitude with probability equal to the
/// dropped fraction, drawn from the low 16 bits of `r` (torchao's
/// `bf16_stochastic_round`: add 16 random bits, truncate). A NaN stays a
/// quiet NaN and an infinity stays infinite; a value that carries past the
/// largest finite bf16 becomes infinity. The WGSL twin is
/// `bf16_bits_stochastic`.
pub fn bf16_bits_stochastic(x: f32, r: u32) -> u16 {
    let b = x.to_bits();
    if b & 0x7fff_ffff >= 0x7f80_0000 {
        return half::bf16::from_f32(x).to_bits();
    }
    ((b + (r & 0xffff)) >> 16) as u16
}

/// `x`'s f16 magnitude truncated (`base`, with the sign), the dropped bits
/// (`rem`) and how many were dropped (`drop`; `rem` holds the whole 24-bit
/// significand when `drop >= 32`).
fn f16_cut(x: f32) -> (u32, u32, u32, u32) {
    let b = x.to_bits();
    let sign = (b >> 16) & 0x8000;
    let a = b & 0x7fff_ffff;
    let e = a >> 23;
    if a > 0x7f80_0000 {
        return (sign, 0x7e00 | ((a >> 13) & 0x3ff), 0, 0);
    }
    if a >= 0x4780_0000 {
        // 2^16 and above (and infinity): infinity whatever the rounding.
        return (sign, 0x7c00, 0, 0);
    }
    if e >= 113 {
        return (
            sign,
            ((e - 112) << 10) | ((a >> 13) & 0x3ff),
            a & 0x1fff,
            13,
        );
    }
    if e == 0 {
        // Zero and f32 subnormals (below 2^-126): f16 zero.
        return (sign, 0, 0, 0);
    }
    let m = (a & 0x7f_ffff) | 0x80_0000;
    let drop = 126 - e;
    if drop >= 32 {
        return (sign, 0, m, drop);
    }
    (sign, m >> drop, m & ((1 << drop) - 1), drop)
}

/// f16 bits of `x` rounded to nearest, ties to even, overflow to infinity, a
/// NaN quiet (the same bits as `half::f16::from_f32`). The WGSL twin is
/// `f16_bits`.
pub fn f16_bits(x: f32) -> u16 {
    let (sign, mut base, rem, drop) = f16_cut(x);
    if drop > 0 && drop < 32 {
        let half = 1 << (drop - 1);
        if rem > half || (rem == half && base & 1 == 1) {
            base += 1;
        }
    }
    (sign | base) as u16
}

/// f16 bits of `x` rounded up in magnitude with probability equal to the
/// dropped fraction (exact for every dropped width up to 32 bits: values
/// down to 2^-32; below, the probability is rounded down to a multiple of
/// 2^-32 of the significand's top bits), drawn from `r`; a carry past 65504
/// gives infinity. The WGSL twin is `f16_bits_stochastic`.
pub fn f16_bits_stochastic(x: f32, r: u32) -> u16 {
    let (sign, mut base, rem, drop) = f16_cut(x);
    let up = match drop {
        0 => false,
        1..=31 => (r >> (32 - drop)) < rem,
        32 => r < rem,
        33..=63 => r < (rem >> (drop - 32)),
        _ => false,
    };
    if up {
        base += 1;
    }
    (sign | base) as u16
}

/// The WGSL of f16 storage and of rounding (`rounding.wgsl`).
pub(crate) const ROUNDING_WGSL: &str = include_str!("rounding.wgsl");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    #[test]
    fn philox_matches_random123s_known_answers() {
        // Random123's kat_vectors, the three philox4x32 10 lines.
        assert_eq!(
            philox4x32_10([0; 4], [0; 2]),
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0]
            ),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    #[test]
    fn f16_bits_are_the_half_crates() {
        let mut rng = SplitMix64(3);
        let check = |x: f32| {
            let want = half::f16::from_f32(x).to_bits();
            let got = f16_bits(x);
            if x.is_nan() {
                assert!(half::f16::from_bits(got).is_nan(), "{x}");
            } else {
                assert_eq!(got, want, "{x:e} ({:#x})", x.to_bits());
            }
        };
        for e in 0..255u32 {
            for m in [0, 1, 0xfff, 0x1000, 0x1001, 0x2000, 0x3000, 0x7f_ffff] {
                check(f32::from_bits((e << 23) | m));
                check(-f32::from_bits((e << 23) | m));
            }
        }
        for _ in 0..200_000 {
            check(f32::from_bits(rng.next_u64() as u32));
        }
        for x in [
            65504.0,
            65519.99,
            65520.0,
            5.960_464_5e-8,
            2.98e-8,
            2.9802322e-8,
        ] {
            check(x);
        }
    }

    #[test]
    fn stochastic_rounding_is_unbiased_and_stays_between_neighbours() {
        let mut rng = SplitMix64(5);
        for &x in &[1.0f32 + 1.0 / 1024.0, -3.3e-3, 0.1, 1e-6, 3e-8, 60000.3] {
            let n = 40_000;
            let (mut sb, mut sh) = (0f64, 0f64);
            for _ in 0..n {
                let r = rng.next_u64() as u32;
                let (bb, hb) = (bf16_bits_stochastic(x, r), f16_bits_stochastic(x, r));
                // Each result is x truncated, or the next value away from 0.
                let tb = (x.to_bits() >> 16) as u16;
                assert!(bb == tb || bb == tb + 1, "bf16 {x}: {bb:#x}");
                let (sign, th, _, _) = f16_cut(x);
                let th = (sign | th) as u16;
                assert!(hb == th || hb == th + 1, "f16 {x}: {hb:#x}");
                let b = half::bf16::from_bits(bb).to_f64();
                let h = half::f16::from_bits(hb).to_f64();
                sb += b;
                sh += h;
            }
            // The mean of n draws is within 5 standard deviations of x (a
            // draw is off x by at most one unit in the last place u, so
            // its standard deviation is at most u / 2).
            let ub = (x.abs() as f64) * 2f64.powi(-7);
            let uh = ((x.abs() as f64) * 2f64.powi(-10)).max(2f64.powi(-24));
            let tol = |u: f64| 5.0 * (u / 2.0) / (n as f64).sqrt();
            assert!((sb / n as f64 - x as f64).abs() <= tol(ub), "bf16 {x}");
            assert!((sh / n as f64 - x as f64).abs() <= tol(uh), "f16 {x}");
        }
        // Exactly representable values never move; non-finite ones stay.
        for r in [0u32, 1, 0xffff, u32::MAX] {
            assert_eq!(bf16_bits_stochastic(1.5, r), 0x3fc0);
            assert_eq!(f16_bits_stochastic(1.5, r), 0x3e00);
            assert_eq!(bf16_bits_stochastic(f32::INFINITY, r), 0x7f80);
            assert!(half::f16::from_bits(f16_bits_stochastic(f32::NAN, r)).is_nan());
        }
    }
}

//! Number formats of device storage, on the host and in WGSL: bf16 (the high
//! half of an f32, two per `u32`), f16 and the rounding of params into both
//! ([`ParamDtype`], [`ParamUpdate`], [`rounding`]), and the blockwise 8-bit dynamic
//! quantization of bitsandbytes (Dettmers et al. 2022, "8-bit Optimizers via
//! Block-wise Quantization"). Arithmetic is always f32; these are only how
//! values rest in memory. The WGSL twins are in `bf16.wgsl` and `blockwise8.wgsl`.
//!
//! **8-bit blocks.** 256 consecutive elements share one f32 `absmax` (the
//! largest magnitude of the block); each element is stored as the index of
//! the nearest value of a 256-entry *dynamic map* to `x / absmax`. The
//! signed map serves states of either sign (Adam's `exp_avg`), the unsigned
//! map non-negative second moments (`exp_avg_sq`), as bitsandbytes chooses
//! them.

mod param_dtype;
pub mod rounding;

pub use param_dtype::{ParamDtype, ParamUpdate};
pub(crate) use param_dtype::{ParamStorage, params_wgsl};

/// Elements that share one `absmax` in 8-bit storage (bitsandbytes' block
/// size of its 8-bit optimizers).
pub const QUANT_BLOCK: usize = 256;

/// `torch.linspace(start, end, steps)` in f32, as PyTorch's CPU kernel
/// computes it: the step in f32, then the first half from `start`, the
/// second from `end`, each `start + step * i` rounded once (a fused
/// multiply-add; the f32 product is exact in f64).
fn linspace_f32(start: f32, end: f32, steps: usize) -> Vec<f32> {
    let step = (end - start) / (steps - 1) as f32;
    let half = steps / 2;
    (0..steps)
        .map(|i| {
            if i < half {
                (start as f64 + step as f64 * i as f64) as f32
            } else {
                (end as f64 - step as f64 * (steps - i - 1) as f64) as f32
            }
        })
        .collect()
}

/// The dynamic quantization map of bitsandbytes' `create_dynamic_map(signed,
/// max_exponent_bits=7, total_bits=8)`, sorted ascending, computed in f32 as
/// PyTorch computes it: for exponent `e = 0..7` the midpoints of
/// `linspace(0.1, 1, n_e + 1)` scaled by `10^(e - 6)` (and their negatives
/// when signed), then `0` and `1`. The signed map has 2^e midpoints per
/// exponent, the unsigned 2^(e+1).
///
/// One change: the signed map's lowest entry is `-1.0` instead of
/// `-0.99297`, as bitsandbytes' CPU quantizer sets it (`code[0] = -1.0f`
/// in `csrc/cpu_ops.cpp`, on the map it then dequantizes with too): a
/// block's most negative value is then stored exactly, as its most
/// positive one is.
pub fn dynamic_map(signed: bool) -> [f32; 256] {
    let mut data: Vec<f32> = Vec::with_capacity(256);
    for e in 0..7i32 {
        let items = if signed {
            (1 << e) + 1
        } else {
            (1 << (e + 1)) + 1
        };
        let b = linspace_f32(0.1, 1.0, items);
        let scale = 10f64.powi(e - 6) as f32;
        for w in b.windows(2) {
            let mean = (w[0] + w[1]) / 2.0;
            data.push(scale * mean);
            if signed {
                data.push(-scale * mean);
            }
        }
    }
    data.push(0.0);
    data.push(1.0);
    data.sort_by(f32::total_cmp);
    let mut map = [0f32; 256];
    map.copy_from_slice(&data);
    if signed {
        map[0] = -1.0;
    }
    map
}

/// The code of `x` (a value divided by its block's absmax, in [-1, 1]):
/// the index of the nearest map entry, ties to the lower one, as
/// bitsandbytes' quantizer (a search for the last entry at or below `x`,
/// then the nearer of it and the next). The WGSL twin is `q8_code`.
pub fn quantize_value(x: f32, map: &[f32; 256]) -> u8 {
    let mut k = 0usize;
    let mut s = 128;
    while s > 0 {
        if map[k + s] <= x {
            k += s;
        }
        s /= 2;
    }
    if k < 255 && (x - map[k + 1]).abs() < (x - map[k]).abs() {
        k += 1;
    }
    k as u8
}

/// One block's absmax and codes: `absmax = max |v|` (NaN when a value is
/// not finite, so the whole block reads back NaN: a non-finite state is
/// never silently finite), each code `quantize_value(v / absmax)`, all
/// codes of the zero entry when absmax is 0. The WGSL twin is `q8_store`.
pub fn quantize_block(values: &[f32], map: &[f32; 256]) -> (Vec<u8>, f32) {
    let mut absmax = 0f32;
    for v in values {
        if !v.is_finite() {
            absmax = f32::NAN;
            break;
        }
        absmax = absmax.max(v.abs());
    }
    let codes = values
        .iter()
        .map(|&v| {
            let x = if absmax > 0.0 { v / absmax } else { 0.0 };
            quantize_value(x, map)
        })
        .collect();
    (codes, absmax)
}

/// The value of `code` in a block of `absmax`: `map[code] * absmax`.
pub fn dequantize(code: u8, absmax: f32, map: &[f32; 256]) -> f32 {
    map[code as usize] * absmax
}

/// `x` rounded to the nearest bf16, ties to even (a NaN stays a quiet NaN),
/// as its bits. The WGSL twin is `bf16_bits`.
pub fn bf16_bits(x: f32) -> u16 {
    half::bf16::from_f32(x).to_bits()
}

/// The f32 value of bf16 bits.
pub fn bf16_value(bits: u16) -> f32 {
    half::bf16::from_bits(bits).to_f32()
}

/// WGSL functions for a user's own kernels that read or write bf16 / f16
/// params and grads (two per `u32`, element `2k` in the low half): the
/// bitwise conversions the optimizer kernels use. `bf16_bits(x)` and
/// `f16_bits(x)` round an f32 to nearest even (overflow to infinity, a NaN
/// quiet) and return the 16 bits in the low half of a `u32`;
/// `f16_value(h)` widens f16 bits exactly (bf16: `bitcast<f32>(h << 16u)`);
/// `bf16x4_unpack` / `f16x4_unpack` and `bf16x4_pack` / `f16x4_pack` move
/// four values to and from a `vec2<u32>`. Paste it after your own code
/// (the example `train_digits` does).
pub const CONVERSIONS_WGSL: &str =
    concat!(include_str!("bf16.wgsl"), include_str!("rounding.wgsl"));

/// The WGSL of bf16 storage (`bf16.wgsl`).
pub(crate) const BF16_WGSL: &str = include_str!("bf16.wgsl");
/// The WGSL of 8-bit storage (`blockwise8.wgsl`).
pub(crate) const BLOCKWISE8_WGSL: &str = include_str!("blockwise8.wgsl");

/// Both dynamic maps as the bits of 512 f32s (signed first), the contents of
/// the uniform buffer the 8-bit kernels read them from.
pub(crate) fn map_bits() -> Vec<u32> {
    let mut v: Vec<u32> = dynamic_map(true).iter().map(|x| x.to_bits()).collect();
    v.extend(dynamic_map(false).iter().map(|x| x.to_bits()));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_are_sorted_and_hold_zero_and_one() {
        for signed in [true, false] {
            let m = dynamic_map(signed);
            assert!(m.windows(2).all(|w| w[0] < w[1]), "strictly ascending");
            assert!(m.contains(&0.0) && m[255] == 1.0);
        }
        assert_eq!(dynamic_map(true)[0], -1.0);
        assert_eq!(dynamic_map(false)[0], 0.0);
    }

    #[test]
    fn quantization_picks_the_nearest_entry_and_round_trips_codes() {
        let m = dynamic_map(true);
        for (k, &v) in m.iter().enumerate() {
            assert_eq!(quantize_value(v, &m) as usize, k);
        }
        let x = 0.5 * (m[200] + m[201]);
        assert_eq!(quantize_value(x, &m), 200, "a tie goes to the lower entry");
        let (codes, absmax) = quantize_block(&[-2.0, 1.0, 0.0, 2.0], &m);
        assert_eq!(absmax, 2.0);
        assert_eq!(dequantize(codes[0], absmax, &m), -2.0);
        assert_eq!(dequantize(codes[3], absmax, &m), 2.0);
        assert_eq!(dequantize(codes[2], absmax, &m), 0.0);
        let (codes, absmax) = quantize_block(&[0.0; 3], &m);
        assert_eq!(absmax, 0.0);
        assert!(codes.iter().all(|&c| dequantize(c, 0.0, &m) == 0.0));
        assert!(quantize_block(&[1.0, f32::INFINITY], &m).1.is_nan());
    }

    #[test]
    fn bf16_rounds_to_nearest_even() {
        assert_eq!(bf16_bits(1.0), 0x3f80);
        // 1 + 2^-8 is a tie between 1 and 1 + 2^-7: even (1).
        assert_eq!(bf16_bits(1.0 + 1.0 / 256.0), 0x3f80);
        assert_eq!(bf16_bits(1.0 + 3.0 / 256.0), 0x3f82);
        assert!(bf16_value(bf16_bits(f32::NAN)).is_nan());
        assert_eq!(bf16_value(bf16_bits(f32::MAX)), f32::INFINITY);
    }
}

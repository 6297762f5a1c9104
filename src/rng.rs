//! SplitMix64, the small seeded generator behind the tests' random tensors
//! and the digits example's initial weights and shuffles. Not part of the
//! API: it lives here so that the tests and the example share one copy and
//! neither needs `rand`. Its numbers must not change: the tests' tolerances
//! and the example's stated accuracy were set with exactly these sequences.

/// SplitMix64 (Steele, Lea and Flood 2014): the state is the public `u64`,
/// so `SplitMix64(seed)` starts a sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) in steps of 2^-24: the top 24 bits of
    /// [`next_u64`](Self::next_u64), exactly representable in f32.
    pub fn unit_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in [-1, 1) in steps of 2^-23, exactly representable in f32.
    pub fn f32(&mut self) -> f32 {
        self.unit_f32() * 2.0 - 1.0
    }

    /// Uniform in [lo, hi): `lo + (hi - lo) * u` for `u` of
    /// [`unit_f32`](Self::unit_f32).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit_f32()
    }

    /// `n` values of [`f32`](Self::f32) times `scale`.
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.f32() * scale).collect()
    }

    /// Fisher-Yates from the back: position `i` swaps with
    /// `next_u64() % (i + 1)`.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, (self.next_u64() % (i as u64 + 1)) as usize);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SplitMix64;

    fn bits(v: impl IntoIterator<Item = f32>) -> Vec<u32> {
        v.into_iter().map(f32::to_bits).collect()
    }

    // The values below were computed with the two generators this one
    // replaced (tests/common's `Rng` and examples/train_digits' `Rng`),
    // before the change: they pin the sequences bit for bit.

    #[test]
    fn next_u64_is_splitmix64() {
        let mut r = SplitMix64(1);
        let got: Vec<u64> = (0..4).map(|_| r.next_u64()).collect();
        assert_eq!(
            got,
            [
                0x910A_2DEC_8902_5CC1,
                0xBEEB_8DA1_658E_EC67,
                0xF893_A2EE_FB32_555E,
                0x71C1_8690_EE42_C90B,
            ]
        );
    }

    #[test]
    fn f32_and_vec_match_the_tests_generator() {
        let mut r = SplitMix64(7);
        assert_eq!(
            bits((0..4).map(|_| r.f32())),
            [0xBE61_A0F8, 0xBF77_6788, 0x3F4D_3080, 0x3E29_D758]
        );
        assert_eq!(
            bits(SplitMix64(3).vec(4, 0.5)),
            [0xBEC5_E9D8, 0x3E4D_19BC, 0x3DE7_5F40, 0xBEDA_B138]
        );
        assert_eq!(
            bits(SplitMix64(3).vec(4, 0.3)),
            [0xBE6D_7F04, 0x3DF6_1EE2, 0x3D8A_D2C0, 0xBE83_3722]
        );
    }

    #[test]
    fn uniform_and_shuffle_match_the_examples_generator() {
        // init_params' bounds: 1/sqrt(64) and 1/sqrt(32).
        for (k, want) in [
            (
                1.0 / 64f32.sqrt(),
                [0x3D77_5CC8, 0xBDAE_203A, 0xBD62_B664, 0xBD1F_8C7C],
            ),
            (
                1.0 / 32f32.sqrt(),
                [0x3DAE_E962, 0xBDF6_404E, 0xBDA0_4F57, 0xBD61_A2D2],
            ),
        ] {
            let mut r = SplitMix64(42);
            assert_eq!(bits((0..4).map(|_| r.uniform(-k, k))), want);
        }
        // split()'s shuffle for seed 42, and another seed.
        let mut v: Vec<u32> = (0..10).collect();
        SplitMix64(42 ^ 0x5EED).shuffle(&mut v);
        assert_eq!(v, [4, 3, 7, 0, 2, 8, 1, 5, 6, 9]);
        let mut v: Vec<u32> = (0..10).collect();
        SplitMix64(5).shuffle(&mut v);
        assert_eq!(v, [3, 6, 0, 4, 5, 1, 2, 9, 7, 8]);
        let mut one = [9];
        SplitMix64(5).shuffle(&mut one);
        assert_eq!(one, [9]);
        SplitMix64(5).shuffle::<u32>(&mut []);
    }
}

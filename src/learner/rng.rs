//! The core's seeded random generator: xoshiro128++ (32-bit state words, fast on
//! Cortex-M), seeded through SplitMix64. The same seed gives the same stream on every
//! target; nothing here depends on `std`.
//!
//! The generator is the one `rand_xoshiro`'s `Xoshiro128PlusPlus::seed_from_u64` gives,
//! word for word (a test draws both side by side), written out here because a checkpoint
//! must save and restore its state, which that crate keeps private unless its `serde`
//! feature is on, and that feature needs `std`.

/// SplitMix64's increment (the golden ratio).
const PHI: u64 = 0x9e37_79b9_7f4a_7c15;

/// A seeded generator with the few draws the learner and simulator need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng {
    s: [u32; 4],
}

impl Rng {
    /// A generator from a 64-bit seed: two SplitMix64 outputs, little-endian, are the
    /// state's four words (an all-zero state, which xoshiro cannot leave, never comes out
    /// of SplitMix64 in practice; it is replaced as `rand_xoshiro` does).
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(PHI);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let (a, b) = (next(), next());
        let s = [a as u32, (a >> 32) as u32, b as u32, (b >> 32) as u32];
        if s == [0; 4] {
            return Rng::new(0);
        }
        Rng { s }
    }

    /// The state, for a checkpoint.
    pub fn state(&self) -> [u32; 4] {
        self.s
    }

    /// A generator that continues from a saved [`Rng::state`]; `None` for the all-zero
    /// state, which no generator reaches.
    pub fn from_state(s: [u32; 4]) -> Option<Self> {
        (s != [0; 4]).then_some(Rng { s })
    }

    /// 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        let s = &mut self.s;
        let out = s[0].wrapping_add(s[3]).rotate_left(7).wrapping_add(s[0]);
        let t = s[1] << 9;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(11);
        out
    }

    /// Uniform in `[0, 1)` with 24 bits of resolution.
    pub fn uniform(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 * (1.0 / 16_777_216.0)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform_range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.uniform()
    }

    /// Uniform integer in `0..n` without modulo bias (Lemire's method); `n` must be > 0.
    pub fn below(&mut self, n: u32) -> u32 {
        debug_assert!(n > 0);
        let threshold = n.wrapping_neg() % n.max(1);
        loop {
            let m = u64::from(self.next_u32()) * u64::from(n);
            if (m as u32) >= threshold {
                return (m >> 32) as u32;
            }
        }
    }

    /// Uniform integer in `0..n` for 64-bit `n` (> 0): two 32-bit draws, high word first,
    /// reduced modulo `n` (the bias is below `n / 2^64`, nothing worth noting here).
    pub fn below_u64(&mut self, n: u64) -> u64 {
        ((u64::from(self.next_u32()) << 32) | u64::from(self.next_u32())) % n.max(1)
    }

    /// A standard normal draw (Marsaglia's polar method; the same bits on every target).
    pub fn normal(&mut self) -> f32 {
        loop {
            let u = self.uniform_range(-1.0, 1.0);
            let v = self.uniform_range(-1.0, 1.0);
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                return u * crate::learner::math::sqrt(-2.0 * crate::learner::math::ln(s) / s);
            }
        }
    }

    /// Shuffles a slice in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below((i + 1) as u32) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_is_rand_xoshiros_word_for_word() {
        use rand_core::{Rng as _, SeedableRng};
        for seed in [0u64, 1, 2, 3, 42, 0x5EED_0EB1_A7ED, u64::MAX] {
            let mut ours = Rng::new(seed);
            let mut theirs = rand_xoshiro::Xoshiro128PlusPlus::seed_from_u64(seed);
            for _ in 0..1000 {
                assert_eq!(ours.next_u32(), theirs.next_u32(), "seed {seed}");
            }
        }
    }

    #[test]
    fn a_saved_state_continues_the_stream() {
        let mut a = Rng::new(9);
        a.next_u32();
        let mut b = Rng::from_state(a.state()).unwrap();
        assert_eq!(a.next_u32(), b.next_u32());
        assert!(Rng::from_state([0; 4]).is_none());
    }

    #[test]
    fn same_seed_same_stream_other_seed_other_stream() {
        let (mut a, mut b, mut c) = (Rng::new(7), Rng::new(7), Rng::new(8));
        let xa: [u32; 4] = core::array::from_fn(|_| a.next_u32());
        let xb: [u32; 4] = core::array::from_fn(|_| b.next_u32());
        let xc: [u32; 4] = core::array::from_fn(|_| c.next_u32());
        assert_eq!(xa, xb);
        assert_ne!(xa, xc);
    }

    #[test]
    fn uniform_and_below_stay_in_range_and_cover_it() {
        let mut r = Rng::new(1);
        let mut seen = [0u32; 7];
        for _ in 0..7000 {
            let u = r.uniform();
            assert!((0.0..1.0).contains(&u));
            seen[r.below(7) as usize] += 1;
        }
        assert!(seen.iter().all(|&s| s > 800 && s < 1200), "{seen:?}");
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut r = Rng::new(3);
        let mut v: [u16; 50] = core::array::from_fn(|i| i as u16);
        r.shuffle(&mut v);
        let mut s = v;
        s.sort_unstable();
        assert!(s.iter().enumerate().all(|(i, &x)| x as usize == i));
        assert_ne!(v, s);
    }
}

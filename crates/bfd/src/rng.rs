//! The random source for transmit jitter (RFC 5880 §6.8.7). Seeded, so simulated runs
//! are deterministic. Not for secrets.

/// A source of random bits for jitter.
pub trait JitterRng {
    /// The next 64 random bits.
    fn next_u64(&mut self) -> u64;
}

/// SplitMix64: small, fast, seedable.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }
}

impl JitterRng for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl<R: JitterRng + ?Sized> JitterRng for &mut R {
    fn next_u64(&mut self) -> u64 {
        (**self).next_u64()
    }
}

//! Scalar functions with the same bits on every target.
//!
//! `exp` and `ln` come from `libm` everywhere, so the host and the firmware agree.
//! `sqrt` is correctly rounded by IEEE 754 on every target, so the hardware
//! instruction (std) and `libm` (no_std) give identical bits.

/// `e^x`.
#[inline]
pub fn exp(x: f32) -> f32 {
    libm::expf(x)
}

/// Natural logarithm.
#[inline]
pub fn ln(x: f32) -> f32 {
    libm::logf(x)
}

/// Square root (correctly rounded).
#[inline]
pub fn sqrt(x: f32) -> f32 {
    #[cfg(feature = "std")]
    {
        x.sqrt()
    }
    #[cfg(not(feature = "std"))]
    {
        libm::sqrtf(x)
    }
}

/// `x^n` by repeated multiplication (exact order, so the same bits everywhere).
#[inline]
pub fn powi(x: f32, n: u32) -> f32 {
    let (mut base, mut e, mut acc) = (x, n, 1.0f32);
    while e > 0 {
        if e & 1 == 1 {
            acc *= base;
        }
        base *= base;
        e >>= 1;
    }
    acc
}

/// FNV-1a, 32-bit: the one hash of the project (checkpoint config fingerprints, the head
/// hashes the device loop and `edgecl run` print). Feed bytes with [`Fnv1a::update`]; it
/// is also a postcard flavor, so a value's encoding is hashed without a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fnv1a(u32);

impl Fnv1a {
    /// The offset basis.
    pub const fn new() -> Self {
        Fnv1a(0x811c_9dc5)
    }

    /// Mixes in `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
    }

    /// The hash so far.
    pub const fn finish(self) -> u32 {
        self.0
    }
}

impl Default for Fnv1a {
    fn default() -> Self {
        Self::new()
    }
}

impl postcard::ser_flavors::Flavor for Fnv1a {
    type Output = u32;

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.update(&[data]);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<u32> {
        Ok(self.0)
    }
}

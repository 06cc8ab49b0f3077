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

//! Carves typed, zeroed slices out of one caller-given byte buffer.
//!
//! The arena never allocates: each carve splits the remaining buffer. Components start
//! on [`ALIGN`]-byte boundaries; the start of the buffer is aligned first, which costs
//! at most `ALIGN - 1` bytes (the plan's `alignment` line).

use crate::learner::Error;

/// Alignment of every component's start, in bytes.
pub const ALIGN: usize = 16;

/// Bytes of `n` f32 values rounded up to [`ALIGN`] (for counts a [`crate::learner::Plan`] has checked).
pub const fn f32_bytes(n: usize) -> usize {
    (n * 4).div_ceil(ALIGN) * ALIGN
}

/// `n` bytes rounded up to [`ALIGN`], or `None` when that overflows `usize`.
pub fn checked_padded(n: usize) -> Option<usize> {
    Some(n.checked_add(ALIGN - 1)? / ALIGN * ALIGN)
}

/// [`f32_bytes`], or `None` when it overflows `usize`.
pub fn checked_f32_bytes(n: usize) -> Option<usize> {
    Some(n.checked_mul(4)?.checked_add(ALIGN - 1)? / ALIGN * ALIGN)
}

/// A size that does not fit this target's `usize`.
pub(crate) const OVERFLOW: Error = Error::BadConfig("the plan's sizes overflow this target's address space");

/// `a * b`, or [`OVERFLOW`].
pub(crate) fn mul(a: usize, b: usize) -> Result<usize, Error> {
    a.checked_mul(b).ok_or(OVERFLOW)
}

/// Where a layout puts its components: carved from a buffer ([`Arena`]) or only counted
/// ([`crate::learner::Plan`]). The layout of a learner is one function generic over this
/// trait, so the plan's bytes and the carved slices cannot drift apart.
pub trait Space<'a> {
    /// `n` zeroed values of `T` for `component`, padded to [`ALIGN`] bytes: a carved
    /// slice, or (counting) an empty one once the bytes are recorded.
    fn take<T: bytemuck::Pod>(&mut self, component: &'static str, n: usize) -> Result<&'a mut [T], Error>;
}

impl<'a> Space<'a> for Arena<'a> {
    fn take<T: bytemuck::Pod>(&mut self, component: &'static str, n: usize) -> Result<&'a mut [T], Error> {
        self.carve_typed(component, n)
    }
}

/// The unused rest of the caller's buffer, and how much of it has been carved.
#[derive(Debug)]
pub struct Arena<'a> {
    rest: &'a mut [u8],
    used: usize,
    size: usize,
}

impl<'a> Arena<'a> {
    /// An arena over `buf`; its length is the budget.
    pub fn new(buf: &'a mut [u8]) -> Self {
        let size = buf.len();
        let pad = buf.as_ptr().align_offset(ALIGN).min(buf.len());
        let (_, rest) = buf.split_at_mut(pad);
        Arena { rest, used: pad, size }
    }

    /// Bytes carved so far, alignment included.
    pub fn used(&self) -> usize {
        self.used
    }

    /// The budget: the buffer's whole length.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Carves `n` zeroed `f32`s for `component`, padded to [`ALIGN`] bytes.
    pub fn carve_f32(&mut self, component: &'static str, n: usize) -> Result<&'a mut [f32], Error> {
        self.carve_typed(component, n)
    }

    /// Carves `n` zeroed bytes for `component`, padded to [`ALIGN`] bytes.
    pub fn carve_u8(&mut self, component: &'static str, n: usize) -> Result<&'a mut [u8], Error> {
        self.carve_typed(component, n)
    }

    /// Carves `n` zeroed `u16`s for `component`, padded to [`ALIGN`] bytes.
    pub fn carve_u16(&mut self, component: &'static str, n: usize) -> Result<&'a mut [u16], Error> {
        self.carve_typed(component, n)
    }

    /// Carves `n` zeroed `u32`s for `component`, padded to [`ALIGN`] bytes.
    pub fn carve_u32(&mut self, component: &'static str, n: usize) -> Result<&'a mut [u32], Error> {
        self.carve_typed(component, n)
    }

    /// Carves `n` zeroed values of a plain type, padded to [`ALIGN`] bytes (components
    /// start on [`ALIGN`]-byte boundaries, so any such type is aligned).
    fn carve_typed<T: bytemuck::Pod>(&mut self, component: &'static str, n: usize) -> Result<&'a mut [T], Error> {
        let size = core::mem::size_of::<T>();
        let len = n.checked_mul(size);
        let head = self.carve_bytes(component, len.unwrap_or(usize::MAX), len.and_then(checked_padded))?;
        let out: &'a mut [T] = bytemuck::try_cast_slice_mut(&mut head[..n * size])
            .map_err(|_| Error::Internal("arena slice is not aligned for its type"))?;
        out.fill(T::zeroed());
        Ok(out)
    }

    /// Splits `padded` bytes (at least `n`) off the front of the rest.
    fn carve_bytes(&mut self, component: &'static str, n: usize, padded: Option<usize>) -> Result<&'a mut [u8], Error> {
        let bytes = padded.unwrap_or(usize::MAX).max(n);
        if bytes > self.rest.len() {
            return Err(Error::OverBudget {
                component,
                requested: bytes,
                available: self.rest.len(),
                missing: bytes - self.rest.len(),
            });
        }
        let rest = core::mem::take(&mut self.rest);
        let (head, tail) = rest.split_at_mut(bytes);
        self.rest = tail;
        self.used += bytes;
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carves_aligned_disjoint_slices_until_full() {
        let mut buf = [0xAAu8; 256];
        let mut arena = Arena::new(&mut buf[3..]);
        let a = arena.carve_f32("a", 5).unwrap();
        let b = arena.carve_f32("b", 3).unwrap();
        assert_eq!(a.as_ptr() as usize % ALIGN, 0);
        assert_eq!(b.as_ptr() as usize % ALIGN, 0);
        assert!(a.iter().chain(b.iter()).all(|&x| x == 0.0));
        a[4] = 1.0;
        assert_eq!(b[0], 0.0);
        assert!(arena.used() <= 15 + 32 + 16);
        match arena.carve_f32("big", 1000) {
            Err(Error::OverBudget {
                component: "big",
                requested: 4000,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
    }
}

//! What a NOR flash must do for [`super::Slots`], checked on the flash itself: the rules
//! [`super::MockNor`] models (erase sets whole sectors to 0xFF and nothing else, programming
//! only clears bits, misaligned and out-of-range calls are refused with their error kinds,
//! what is written reads back). The host tests run it on `MockNor` and on a
//! [`super::FileNor`] over a file; the QEMU firmware runs it on its semihosting
//! `FileNor` (`tests/firmware.rs`); a board runs it on its own flash driver.
//!
//! It erases and writes the two sectors from `base`: run it on a region with nothing to
//! keep.

use embedded_storage::nor_flash::{NorFlash, NorFlashError, NorFlashErrorKind};

/// Bytes compared per read.
const CHUNK: usize = 256;

/// The first rule the flash broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Broken(pub &'static str);

impl core::fmt::Display for Broken {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "the flash breaks NOR's rules: {}", self.0)
    }
}

fn pattern(i: usize, salt: u8) -> u8 {
    (i as u8).wrapping_mul(31).wrapping_add(salt) ^ (i >> 8) as u8
}

/// Every byte of `[at, at + len)` is `want(i)` (i from `at`).
fn expect<F: NorFlash>(
    flash: &mut F,
    at: u32,
    len: usize,
    want: impl Fn(usize) -> u8,
    why: &'static str,
) -> Result<(), Broken> {
    let mut buf = [0u8; CHUNK];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(CHUNK);
        flash
            .read(at + done as u32, &mut buf[..n])
            .map_err(|_| Broken("a read inside the flash failed"))?;
        if buf[..n].iter().enumerate().any(|(k, &b)| b != want(done + k)) {
            return Err(Broken(why));
        }
        done += n;
    }
    Ok(())
}

fn write_pattern<F: NorFlash>(flash: &mut F, at: u32, len: usize, salt: u8) -> Result<(), Broken> {
    let mut buf = [0u8; CHUNK];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(CHUNK);
        for (k, b) in buf[..n].iter_mut().enumerate() {
            *b = pattern(done + k, salt);
        }
        flash
            .write(at + done as u32, &buf[..n])
            .map_err(|_| Broken("an aligned write inside the flash failed"))?;
        done += n;
    }
    Ok(())
}

fn refused<E: NorFlashError>(r: Result<(), E>, kind: NorFlashErrorKind, why: &'static str) -> Result<(), Broken> {
    match r {
        Err(e) if e.kind() == kind => Ok(()),
        _ => Err(Broken(why)),
    }
}

/// Checks the rules on the two erase sectors from `base` (which must be erase-aligned,
/// with two sectors inside the flash); `Ok` when the flash keeps every one.
pub fn check<F: NorFlash>(flash: &mut F, base: u32) -> Result<(), Broken> {
    let sector = F::ERASE_SIZE;
    let (w, r) = (F::WRITE_SIZE, F::READ_SIZE);
    if sector == 0 || !(base as usize).is_multiple_of(sector) || base as usize + 2 * sector > flash.capacity() {
        return Err(Broken("two erase sectors from the base do not fit the flash"));
    }
    if !CHUNK.is_multiple_of(w) || !CHUNK.is_multiple_of(r) {
        return Err(Broken("write and read sizes must divide 256"));
    }
    let (s0, s1) = (base, base + sector as u32);
    // Erase sets a whole sector to 0xFF.
    flash
        .erase(s0, s1 + sector as u32)
        .map_err(|_| Broken("erasing two aligned sectors failed"))?;
    expect(flash, s0, 2 * sector, |_| 0xFF, "an erased sector does not read 0xFF")?;
    // What is written reads back.
    let span = sector.min(4096);
    write_pattern(flash, s0, span, 0x5A)?;
    write_pattern(flash, s1, span, 0xA5)?;
    expect(flash, s0, span, |i| pattern(i, 0x5A), "written bytes do not read back")?;
    // Programming only clears bits: a second write over the first is their AND.
    write_pattern(flash, s0, span, 0x3C)?;
    expect(
        flash,
        s0,
        span,
        |i| pattern(i, 0x5A) & pattern(i, 0x3C),
        "a write over written bytes is not their AND (programming set a bit)",
    )?;
    // Erase touches its sector only.
    flash
        .erase(s0, s1)
        .map_err(|_| Broken("erasing one aligned sector failed"))?;
    expect(flash, s0, sector, |_| 0xFF, "an erased sector does not read 0xFF")?;
    expect(
        flash,
        s1,
        span,
        |i| pattern(i, 0xA5),
        "erasing a sector changed the next one",
    )?;
    // Misaligned and out-of-range calls are refused, and change nothing.
    if w > 1 {
        refused(
            flash.write(s0 + 1, &[0u8; 1]),
            NorFlashErrorKind::NotAligned,
            "a misaligned write was not refused as NotAligned",
        )?;
        expect(flash, s0, w, |_| 0xFF, "a refused write changed the flash")?;
    }
    if sector > 1 {
        refused(
            flash.erase(s0 + 1, s1),
            NorFlashErrorKind::NotAligned,
            "a misaligned erase was not refused as NotAligned",
        )?;
    }
    let end = flash.capacity() as u32;
    let mut past = [0u8; CHUNK];
    refused(
        flash.write(end, &past[..w]),
        NorFlashErrorKind::OutOfBounds,
        "a write past the end was not refused as OutOfBounds",
    )?;
    refused(
        flash.read(end, &mut past[..r]),
        NorFlashErrorKind::OutOfBounds,
        "a read past the end was not refused as OutOfBounds",
    )?;
    // Leave the region erased.
    flash
        .erase(s0, s1 + sector as u32)
        .map_err(|_| Broken("erasing two aligned sectors failed"))?;
    expect(flash, s0, 2 * sector, |_| 0xFF, "an erased sector does not read 0xFF")
}

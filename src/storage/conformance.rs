//! A conformance check for a NOR flash driver (`embedded-storage` 0.3 [`NorFlash`]): the
//! rules the checkpoint slots ([`super::Slots`]) rely on, which are the rules
//! [`super::MockNor`] enforces in the host tests. The host tests run it on `MockNor` and
//! on a [`super::FileNor`] over a file (`tests/device_checkpoints.rs`); the QEMU firmware
//! on its semihosting `FileNor` (feature `nor-check`, `tests/firmware.rs`); the
//! netduinoplus2 `hal` build on the chip's flash sectors (feature `selftest`).
//!
//! [`check`] takes the whole flash it is given (it erases all of it) and tests, in order:
//!
//! 1. geometry: the capacity is whole sectors, and the read and write sizes divide 256;
//! 2. an erase of the whole flash leaves every byte 0xFF;
//! 3. programming writes the bytes given (the first and the last 256 bytes of every
//!    sector), and leaves every other byte erased;
//! 4. programming over programmed bytes only clears bits: the flash holds the AND of the
//!    two writes;
//! 5. a write, read or erase that is not aligned to its size, or that reaches past the end,
//!    is refused with `NotAligned` or `OutOfBounds` and changes nothing;
//! 6. erasing one sector erases that sector and nothing else;
//! 7. a last erase of the whole flash, so it is left erased.
//!
//! After every step the whole flash is read back and compared with what the rules
//! predict, byte for byte. The check allocates nothing and holds 256 bytes of stack.
//!
//! Drivers check their arguments in the order of `embedded_storage::nor_flash::check_*`
//! (bounds, then alignment) or MockNor's (alignment, then bounds); the refusals here are
//! chosen so that both orders give the same kind.
use core::fmt;
use embedded_storage::nor_flash::{NorFlash, NorFlashError, NorFlashErrorKind};

/// Bytes moved per call, and bytes programmed at each end of a sector.
const CHUNK: usize = 256;

/// What the check found wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckError {
    /// The flash's sizes do not allow the check (the message says which).
    Geometry(&'static str),
    /// An operation the rules allow failed.
    Failed {
        /// The step.
        step: &'static str,
        /// How the driver failed.
        kind: NorFlashErrorKind,
    },
    /// An operation the rules forbid was not refused as they say.
    NotRefused {
        /// The step.
        step: &'static str,
        /// The kind the rules give.
        expected: NorFlashErrorKind,
        /// What the driver returned: `None` when it accepted the operation.
        got: Option<NorFlashErrorKind>,
    },
    /// A byte read back is not what the rules predict.
    Mismatch {
        /// The step after which the flash was read back.
        step: &'static str,
        /// The byte's offset.
        offset: u32,
        /// What the rules predict.
        expected: u8,
        /// What was read.
        found: u8,
    },
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CheckError::Geometry(why) => write!(f, "NOR check: {why}"),
            CheckError::Failed { step, kind } => write!(f, "NOR check, {step}: the flash failed ({kind:?})"),
            CheckError::NotRefused {
                step,
                expected,
                got: None,
            } => write!(f, "NOR check, {step}: accepted, should fail with {expected:?}"),
            CheckError::NotRefused {
                step,
                expected,
                got: Some(got),
            } => write!(
                f,
                "NOR check, {step}: failed with {got:?}, should fail with {expected:?}"
            ),
            CheckError::Mismatch {
                step,
                offset,
                expected,
                found,
            } => write!(
                f,
                "NOR check, after {step}: byte {offset:#x} reads {found:#04x}, NOR's rules give {expected:#04x}"
            ),
        }
    }
}

/// The flash that passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Sectors checked.
    pub sectors: usize,
    /// Bytes of a sector (`ERASE_SIZE`).
    pub erase_size: usize,
    /// Bytes of the smallest write (`WRITE_SIZE`).
    pub write_size: usize,
    /// Bytes of the smallest read (`READ_SIZE`).
    pub read_size: usize,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "NOR check passed: {} sectors of {} B, writes of {} B, reads of {} B",
            self.sectors, self.erase_size, self.write_size, self.read_size
        )
    }
}

/// The first pattern programmed at `offset`.
fn first(offset: usize) -> u8 {
    ((offset as u32).wrapping_mul(0x9E37_79B1) >> 24) as u8 ^ 0x5A
}

/// The second pattern, programmed over the first.
fn second(offset: usize) -> u8 {
    !first(offset).rotate_left(3) | (offset as u8 & 0x11)
}

/// What NOR's rules predict the flash holds after each step.
struct Model {
    erase: usize,
    /// The first pattern is in the first and the last [`CHUNK`] bytes of every sector.
    programmed: bool,
    /// The second pattern went over sector 0's first [`CHUNK`] bytes.
    overwritten: bool,
    /// Sector 1 was erased since.
    sector_one_erased: bool,
}

impl Model {
    fn erased(erase: usize) -> Self {
        Model {
            erase,
            programmed: false,
            overwritten: false,
            sector_one_erased: false,
        }
    }

    fn byte(&self, offset: usize) -> u8 {
        let (sector, at) = (offset / self.erase, offset % self.erase);
        let head = at < CHUNK;
        let tail = at >= self.erase - CHUNK;
        if !self.programmed || !(head || tail) || (sector == 1 && self.sector_one_erased) {
            return 0xFF;
        }
        if self.overwritten && sector == 0 && head {
            first(offset) & second(offset)
        } else {
            first(offset)
        }
    }
}

fn failed<E: NorFlashError>(step: &'static str) -> impl Fn(E) -> CheckError {
    move |e| CheckError::Failed { step, kind: e.kind() }
}

fn refused<E: NorFlashError>(
    step: &'static str,
    expected: NorFlashErrorKind,
    result: Result<(), E>,
) -> Result<(), CheckError> {
    match result {
        Err(e) if e.kind() == expected => Ok(()),
        Err(e) => Err(CheckError::NotRefused {
            step,
            expected,
            got: Some(e.kind()),
        }),
        Ok(()) => Err(CheckError::NotRefused {
            step,
            expected,
            got: None,
        }),
    }
}

/// Reads the whole flash back and compares it with `model`.
fn scan<F: NorFlash>(flash: &mut F, model: &Model, step: &'static str) -> Result<(), CheckError> {
    let mut buf = [0u8; CHUNK];
    for start in (0..flash.capacity()).step_by(CHUNK) {
        flash.read(start as u32, &mut buf).map_err(failed(step))?;
        for (i, &found) in buf.iter().enumerate() {
            let expected = model.byte(start + i);
            if found != expected {
                return Err(CheckError::Mismatch {
                    step,
                    offset: (start + i) as u32,
                    expected,
                    found,
                });
            }
        }
    }
    Ok(())
}

/// Programs `pattern` over `len` bytes from `offset`, [`CHUNK`] bytes per call.
fn program<F: NorFlash>(
    flash: &mut F,
    offset: usize,
    pattern: fn(usize) -> u8,
    step: &'static str,
) -> Result<(), CheckError> {
    let mut buf = [0u8; CHUNK];
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pattern(offset + i);
    }
    flash.write(offset as u32, &buf).map_err(failed(step))
}

/// Runs the check over all of `flash`, which it erases; see the [module docs](self) for
/// the steps. The flash is left erased when the check passes.
pub fn check<F: NorFlash>(flash: &mut F) -> Result<Report, CheckError> {
    let (cap, erase, write, read) = (flash.capacity(), F::ERASE_SIZE, F::WRITE_SIZE, F::READ_SIZE);
    if erase < 4 * CHUNK || !erase.is_multiple_of(CHUNK) {
        return Err(CheckError::Geometry(
            "the erase size must be a multiple of 256 B and at least 1 KiB",
        ));
    }
    if write == 0 || read == 0 || !CHUNK.is_multiple_of(write) || !CHUNK.is_multiple_of(read) {
        return Err(CheckError::Geometry("the write and read sizes must divide 256"));
    }
    if cap == 0 || !cap.is_multiple_of(erase) || u32::try_from(cap).is_err() {
        return Err(CheckError::Geometry("the capacity must be whole sectors, under 4 GiB"));
    }
    let mut model = Model::erased(erase);

    let step = "erasing the whole flash";
    flash.erase(0, cap as u32).map_err(failed(step))?;
    scan(flash, &model, step)?;

    let step = "programming both ends of every sector";
    for sector in (0..cap).step_by(erase) {
        program(flash, sector, first, step)?;
        program(flash, sector + erase - CHUNK, first, step)?;
    }
    model.programmed = true;
    scan(flash, &model, step)?;

    let step = "programming over programmed bytes";
    program(flash, 0, second, step)?;
    model.overwritten = true;
    scan(flash, &model, step)?;

    // Zeros, so that a refused write that programs anything shows in the scan. `mid` is
    // erased: it lies between sector 0's two programmed ends.
    let zeros = [0u8; 2 * CHUNK];
    let mid = erase / 2;
    let (end, e32) = (cap as u32, erase as u32);
    use NorFlashErrorKind::{NotAligned, OutOfBounds};
    if write > 1 {
        let r = flash.write(mid as u32 + 1, &zeros[..write]);
        refused("a write at an offset not a multiple of the write size", NotAligned, r)?;
        let r = flash.write(mid as u32, &zeros[..write + 1]);
        refused("a write of a length not a multiple of the write size", NotAligned, r)?;
    }
    let r = flash.write(end, &zeros[..write]);
    refused("a write at the end of the flash", OutOfBounds, r)?;
    let r = flash.write(end - write as u32, &zeros[..2 * write]);
    refused("a write across the end of the flash", OutOfBounds, r)?;
    let mut buf = [0u8; 2 * CHUNK];
    if read > 1 {
        let r = flash.read(mid as u32 + 1, &mut buf[..read]);
        refused("a read at an offset not a multiple of the read size", NotAligned, r)?;
    }
    let r = flash.read(end, &mut buf[..read]);
    refused("a read at the end of the flash", OutOfBounds, r)?;
    let r = flash.read(end - read as u32, &mut buf[..2 * read]);
    refused("a read across the end of the flash", OutOfBounds, r)?;
    let r = flash.erase(0, e32 / 2);
    refused("an erase ending inside a sector", NotAligned, r)?;
    let r = flash.erase(e32 / 2, e32);
    refused("an erase starting inside a sector", NotAligned, r)?;
    let r = flash.erase(e32, 0);
    refused("an erase that ends before it starts", OutOfBounds, r)?;
    if let Some(past) = end.checked_add(e32) {
        let r = flash.erase(end, past);
        refused("an erase past the end of the flash", OutOfBounds, r)?;
        let r = flash.erase(0, past);
        refused("an erase across the end of the flash", OutOfBounds, r)?;
    }
    scan(flash, &model, "the refused operations")?;

    if cap >= 2 * erase {
        let step = "erasing sector 1";
        flash.erase(e32, 2 * e32).map_err(failed(step))?;
        model.sector_one_erased = true;
        scan(flash, &model, step)?;
    }

    let step = "erasing the whole flash again";
    flash.erase(0, end).map_err(failed(step))?;
    scan(flash, &Model::erased(erase), step)?;
    Ok(Report {
        sectors: cap / erase,
        erase_size: erase,
        write_size: write,
        read_size: read,
    })
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::storage::{MockNor, MockNorError};
    use embedded_storage::nor_flash::{ErrorType, ReadNorFlash};

    /// What a broken driver gets wrong.
    #[derive(Clone, Copy, PartialEq)]
    enum Fault {
        /// Programming stores the bytes instead of clearing bits.
        Overwrites,
        /// An unaligned write programs the aligned words around it.
        NoAlignmentCheck,
        /// A write across the end programs the part inside.
        PartialWrite,
        /// A one-sector erase erases from 0.
        EraseFromStart,
        /// A read past the end returns 0xFF.
        ReadsPastEnd,
    }

    /// MockNor with one driver bug.
    struct Broken(MockNor, Fault);

    impl ErrorType for Broken {
        type Error = MockNorError;
    }

    impl ReadNorFlash for Broken {
        const READ_SIZE: usize = 1;
        fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), MockNorError> {
            if self.1 == Fault::ReadsPastEnd && offset as usize >= self.0.capacity() {
                bytes.fill(0xFF);
                return Ok(());
            }
            self.0.read(offset, bytes)
        }
        fn capacity(&self) -> usize {
            self.0.capacity()
        }
    }

    impl NorFlash for Broken {
        const WRITE_SIZE: usize = MockNor::WRITE_SIZE;
        const ERASE_SIZE: usize = MockNor::ERASE_SIZE;
        fn erase(&mut self, from: u32, to: u32) -> Result<(), MockNorError> {
            match self.1 {
                Fault::EraseFromStart if from > 0 && from < to && from.is_multiple_of(Self::ERASE_SIZE as u32) => {
                    self.0.erase(0, to)
                }
                _ => self.0.erase(from, to),
            }
        }
        fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), MockNorError> {
            let w = Self::WRITE_SIZE as u32;
            match self.1 {
                Fault::Overwrites if offset.is_multiple_of(w) => {
                    // Erase the sector's copy in RAM, then program: the bytes as given.
                    let sector = offset / Self::ERASE_SIZE as u32 * Self::ERASE_SIZE as u32;
                    let mut keep = vec![0u8; Self::ERASE_SIZE];
                    self.0.read(sector, &mut keep)?;
                    let at = (offset - sector) as usize;
                    keep[at..at + bytes.len()].copy_from_slice(bytes);
                    self.0.erase(sector, sector + Self::ERASE_SIZE as u32)?;
                    self.0.write(sector, &keep)
                }
                Fault::NoAlignmentCheck if !offset.is_multiple_of(w) || !bytes.len().is_multiple_of(w as usize) => {
                    let start = offset / w * w;
                    let padded = vec![0u8; (bytes.len() + (offset - start) as usize).next_multiple_of(w as usize)];
                    self.0.write(start, &padded)
                }
                Fault::PartialWrite if offset as usize + bytes.len() > self.0.capacity() => {
                    let inside = self.0.capacity().saturating_sub(offset as usize);
                    if inside > 0 {
                        self.0.write(offset, &bytes[..inside])?;
                    }
                    self.0.write(offset, bytes)
                }
                _ => self.0.write(offset, bytes),
            }
        }
    }

    #[test]
    fn mock_nor_passes_and_is_left_erased() {
        let mut flash = MockNor::new(4 * MockNor::ERASE_SIZE);
        let report = check(&mut flash).unwrap();
        assert_eq!(report.sectors, 4);
        assert_eq!((report.erase_size, report.write_size, report.read_size), (4096, 4, 1));
        assert!(flash.data().iter().all(|&b| b == 0xFF));
        assert!(flash.steps() > 0);
    }

    #[test]
    fn a_one_sector_flash_passes() {
        check(&mut MockNor::new(MockNor::ERASE_SIZE)).unwrap();
    }

    #[test]
    fn a_flash_cut_off_fails_the_first_erase() {
        let mut flash = MockNor::new(2 * MockNor::ERASE_SIZE);
        flash.cut_after(100);
        let e = check(&mut flash).unwrap_err();
        assert_eq!(
            e,
            CheckError::Failed {
                step: "erasing the whole flash",
                kind: NorFlashErrorKind::Other
            }
        );
    }

    #[test]
    fn each_broken_driver_is_caught_at_its_step() {
        let cases: [(Fault, &str); 5] = [
            (Fault::Overwrites, "programming over programmed bytes"),
            (
                Fault::NoAlignmentCheck,
                "a write at an offset not a multiple of the write size",
            ),
            // Refused with the right kind, but the scan after the refusals sees the bytes.
            (Fault::PartialWrite, "the refused operations"),
            (Fault::EraseFromStart, "erasing sector 1"),
            (Fault::ReadsPastEnd, "a read at the end of the flash"),
        ];
        for (fault, at) in cases {
            let mut flash = Broken(MockNor::new(3 * MockNor::ERASE_SIZE), fault);
            let e = check(&mut flash).unwrap_err();
            let step = match e {
                CheckError::Mismatch { step, .. } | CheckError::NotRefused { step, .. } => step,
                other => panic!("unexpected {other}"),
            };
            assert_eq!(step, at, "{e}");
            // The message names the step.
            assert!(e.to_string().contains(at));
        }
    }

    #[test]
    fn too_small_sectors_are_refused() {
        struct Tiny(MockNor);
        impl ErrorType for Tiny {
            type Error = MockNorError;
        }
        impl ReadNorFlash for Tiny {
            const READ_SIZE: usize = 1;
            fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), MockNorError> {
                self.0.read(offset, bytes)
            }
            fn capacity(&self) -> usize {
                self.0.capacity()
            }
        }
        impl NorFlash for Tiny {
            const WRITE_SIZE: usize = 4;
            const ERASE_SIZE: usize = 512;
            fn erase(&mut self, from: u32, to: u32) -> Result<(), MockNorError> {
                self.0.erase(from, to)
            }
            fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), MockNorError> {
                self.0.write(offset, bytes)
            }
        }
        let e = check(&mut Tiny(MockNor::new(4096))).unwrap_err();
        assert!(matches!(e, CheckError::Geometry(_)), "{e}");
    }
}

//! A NOR flash over a file: what the firmware checkpoints to under QEMU, whose STM32F405
//! model does not program its flash (a host file through semihosting), and what the
//! host tests run over `std::fs::File`. It keeps NOR's rules, as [`super::MockNor`] does:
//! erase sets whole sectors to 0xFF, programming only clears bits (what is written is
//! ANDed into what is there), writes are aligned to 4 bytes, nothing past the end.

use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash};

/// Bytes read and written per file call.
const CHUNK: usize = 256;

/// What an erase writes, a block per file call (in flash on a microcontroller: each file
/// call through semihosting is a trap to the host, so fewer and larger ones).
static ERASED: [u8; 4096] = [0xFF; 4096];

/// A file call that failed (or read short).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoError;

/// A file read and written by offset: the backing of a [`FileNor`].
pub trait FileIo {
    /// Reads `buf.len()` bytes from `offset`; fewer is an error.
    fn read_at(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), IoError>;
    /// Writes `bytes` at `offset`.
    fn write_at(&mut self, offset: u32, bytes: &[u8]) -> Result<(), IoError>;
}

/// What a [`FileNor`] refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileNorError {
    /// The file could not be read or written.
    Io,
    /// An offset or length not aligned to the operation's size.
    NotAligned,
    /// Past the end of the flash.
    OutOfBounds,
}

impl NorFlashError for FileNorError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            FileNorError::Io => NorFlashErrorKind::Other,
            FileNorError::NotAligned => NorFlashErrorKind::NotAligned,
            FileNorError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
        }
    }
}

/// `capacity` bytes of NOR flash in sectors of `ERASE` bytes, kept in a file.
#[derive(Debug)]
pub struct FileNor<F, const ERASE: usize = 4096> {
    file: F,
    capacity: u32,
}

impl<F: FileIo, const ERASE: usize> FileNor<F, ERASE> {
    /// A flash over a file that already holds `capacity` bytes (whole sectors).
    pub fn open(file: F, capacity: u32) -> Result<Self, FileNorError> {
        if ERASE == 0 || !(capacity as usize).is_multiple_of(ERASE) {
            return Err(FileNorError::NotAligned);
        }
        let mut nor = FileNor { file, capacity };
        // The last byte must be there: a file cut short is not a flash of this size.
        let mut last = [0u8; 1];
        if capacity > 0 {
            nor.file
                .read_at(capacity - 1, &mut last)
                .map_err(|IoError| FileNorError::Io)?;
        }
        Ok(nor)
    }

    /// A flash over a new (or any) file: every sector erased.
    pub fn format(file: F, capacity: u32) -> Result<Self, FileNorError> {
        if ERASE == 0 || !(capacity as usize).is_multiple_of(ERASE) {
            return Err(FileNorError::NotAligned);
        }
        let mut nor = FileNor { file, capacity };
        nor.erase(0, capacity)?;
        Ok(nor)
    }

    /// The file back.
    pub fn release(self) -> F {
        self.file
    }

    fn range(&self, offset: u32, len: usize, align: usize) -> Result<(), FileNorError> {
        if !(offset as usize).is_multiple_of(align) || !len.is_multiple_of(align) {
            return Err(FileNorError::NotAligned);
        }
        match (offset as usize).checked_add(len) {
            Some(end) if end <= self.capacity as usize => Ok(()),
            _ => Err(FileNorError::OutOfBounds),
        }
    }
}

impl<F, const ERASE: usize> ErrorType for FileNor<F, ERASE> {
    type Error = FileNorError;
}

impl<F: FileIo, const ERASE: usize> ReadNorFlash for FileNor<F, ERASE> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FileNorError> {
        self.range(offset, bytes.len(), 1)?;
        self.file.read_at(offset, bytes).map_err(|IoError| FileNorError::Io)
    }

    fn capacity(&self) -> usize {
        self.capacity as usize
    }
}

impl<F: FileIo, const ERASE: usize> NorFlash for FileNor<F, ERASE> {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = ERASE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), FileNorError> {
        let len = to.checked_sub(from).ok_or(FileNorError::OutOfBounds)? as usize;
        self.range(from, len, ERASE)?;
        let mut at = from;
        while at < to {
            let n = ((to - at) as usize).min(ERASED.len());
            self.file
                .write_at(at, &ERASED[..n])
                .map_err(|IoError| FileNorError::Io)?;
            at += n as u32;
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FileNorError> {
        self.range(offset, bytes.len(), Self::WRITE_SIZE)?;
        let mut chunk = [0u8; CHUNK];
        for (k, part) in bytes.chunks(CHUNK).enumerate() {
            let at = offset + (k * CHUNK) as u32;
            let now = &mut chunk[..part.len()];
            self.file.read_at(at, now).map_err(|IoError| FileNorError::Io)?;
            // NOR programming only clears bits.
            for (c, &b) in now.iter_mut().zip(part) {
                *c &= b;
            }
            self.file.write_at(at, now).map_err(|IoError| FileNorError::Io)?;
        }
        Ok(())
    }
}

#[cfg(feature = "std")]
impl FileIo for std::fs::File {
    fn read_at(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), IoError> {
        use std::io::{Read, Seek, SeekFrom};
        self.seek(SeekFrom::Start(u64::from(offset))).map_err(|_| IoError)?;
        self.read_exact(buf).map_err(|_| IoError)
    }

    fn write_at(&mut self, offset: u32, bytes: &[u8]) -> Result<(), IoError> {
        use std::io::{Seek, SeekFrom, Write};
        self.seek(SeekFrom::Start(u64::from(offset))).map_err(|_| IoError)?;
        self.write_all(bytes).map_err(|_| IoError)
    }
}

//! A NOR flash in RAM for tests: bits only go from 1 to 0 when programmed, erase sets a
//! whole sector to 0xFF, writes must be aligned, and power can be cut after any number of
//! bytes programmed or erased.

use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash};

/// What the mock refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MockNorError {
    /// Power was cut (during this operation or before it).
    PowerCut,
    /// An offset or length not aligned to the operation's size.
    NotAligned,
    /// Past the end of the flash.
    OutOfBounds,
}

impl NorFlashError for MockNorError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            MockNorError::PowerCut => NorFlashErrorKind::Other,
            MockNorError::NotAligned => NorFlashErrorKind::NotAligned,
            MockNorError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
        }
    }
}

/// A NOR flash of 4-byte writes and 4 KiB sectors that can lose power.
///
/// An erase proceeds byte by byte through its sectors and a write byte by byte, each
/// byte one step; [`MockNor::cut_after`] makes the `n + 1`-th step fail, leaving
/// everything before it done and everything after it untouched, and every later call
/// fail until [`MockNor::reboot`].
#[derive(Debug, Clone)]
pub struct MockNor {
    data: Vec<u8>,
    budget: Option<u64>,
    off: bool,
    steps: u64,
}

impl MockNor {
    /// `bytes` of erased flash (a multiple of the sector size).
    pub fn new(bytes: usize) -> Self {
        assert!(bytes.is_multiple_of(Self::ERASE_SIZE), "whole sectors");
        MockNor {
            data: vec![0xFF; bytes],
            budget: None,
            off: false,
            steps: 0,
        }
    }

    /// Power fails after `n` more bytes programmed or erased.
    pub fn cut_after(&mut self, n: u64) {
        self.budget = Some(n);
    }

    /// Power comes back (and no cut is pending).
    pub fn reboot(&mut self) {
        (self.budget, self.off) = (None, false);
    }

    /// Whether power was cut since the last reboot.
    pub fn was_cut(&self) -> bool {
        self.off
    }

    /// Bytes programmed or erased since the flash was made.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The raw contents.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    fn step(&mut self) -> Result<(), MockNorError> {
        if self.off {
            return Err(MockNorError::PowerCut);
        }
        if let Some(b) = &mut self.budget {
            if *b == 0 {
                self.off = true;
                return Err(MockNorError::PowerCut);
            }
            *b -= 1;
        }
        self.steps += 1;
        Ok(())
    }

    fn range(&self, offset: u32, len: usize, align: usize) -> Result<core::ops::Range<usize>, MockNorError> {
        let start = offset as usize;
        if !start.is_multiple_of(align) || !len.is_multiple_of(align) {
            return Err(MockNorError::NotAligned);
        }
        let end = start
            .checked_add(len)
            .filter(|&e| e <= self.data.len())
            .ok_or(MockNorError::OutOfBounds)?;
        Ok(start..end)
    }
}

impl ErrorType for MockNor {
    type Error = MockNorError;
}

impl ReadNorFlash for MockNor {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), MockNorError> {
        if self.off {
            return Err(MockNorError::PowerCut);
        }
        let r = self.range(offset, bytes.len(), 1)?;
        bytes.copy_from_slice(&self.data[r]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.data.len()
    }
}

impl NorFlash for MockNor {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = 4096;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), MockNorError> {
        let len = (to as usize)
            .checked_sub(from as usize)
            .ok_or(MockNorError::OutOfBounds)?;
        let r = self.range(from, len, Self::ERASE_SIZE)?;
        for i in r {
            self.step()?;
            self.data[i] = 0xFF;
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), MockNorError> {
        let r = self.range(offset, bytes.len(), Self::WRITE_SIZE)?;
        for (i, &b) in r.zip(bytes) {
            self.step()?;
            // NOR programming only clears bits.
            self.data[i] &= b;
        }
        Ok(())
    }
}

//! Checkpoints that survive power loss.
//!
//! - [`Slots`] (`no_std`): two slots on NOR flash through `embedded-storage`'s
//!   [`NorFlash`] traits. A save goes to the slot that does not hold the newest valid
//!   checkpoint: erase it, write the image, read it back and compare. At boot both slots
//!   are checked (magic, version, length, CRC-32) and the valid one with the higher
//!   sequence number wins (in serial-number order, so the counter may wrap), so a cut
//!   at any point of a save leaves either the old checkpoint or the new one.
//! - [`FileStore`] (feature `std`, Linux boards): the image goes to a temporary file,
//!   which is synced and renamed over the old one (and the folder synced), so the file is
//!   always one whole image.
//! - [`MockNor`] (feature `std`): a NOR flash in RAM that obeys NOR's rules and can lose
//!   power after any number of bytes programmed or erased, for the power-cut tests.

#[cfg(feature = "std")]
mod file;
#[cfg(feature = "std")]
mod mock;

#[cfg(feature = "std")]
pub use file::FileStore;
#[cfg(feature = "std")]
pub use mock::{MockNor, MockNorError};

use crate::learner::checkpoint::{self, CheckpointInfo};
use crate::learner::{Error, Learner};
use core::fmt;
use embedded_storage::nor_flash::{NorFlash, NorFlashError, NorFlashErrorKind};

/// Why a save or load failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageError {
    /// The flash refused an operation (or lost power).
    Flash(NorFlashErrorKind),
    /// The slots do not fit the flash's geometry (the message says how).
    Geometry(&'static str),
    /// The image is larger than a slot.
    TooBig {
        /// Bytes of the image.
        image: usize,
        /// Bytes of a slot.
        slot: usize,
    },
    /// The buffer given is smaller than a slot.
    Buffer {
        /// Bytes needed.
        needed: usize,
    },
    /// What was read back differs from what was written (or from what was read before).
    Verify,
    /// The image's sequence number is not newer than the stored newest one, so it would
    /// never be loaded.
    Stale {
        /// The image's sequence number.
        sequence: u32,
        /// The newest stored one.
        newest: u32,
    },
    /// The image to save is not a valid checkpoint, or the learner refused one.
    Checkpoint(Error),
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            StorageError::Flash(k) => write!(f, "flash: {k:?}"),
            StorageError::Geometry(why) => write!(f, "checkpoint slots: {why}"),
            StorageError::TooBig { image, slot } => write!(f, "checkpoint of {image} bytes, slots hold {slot}"),
            StorageError::Buffer { needed } => write!(f, "checkpoint buffer needs {needed} bytes"),
            StorageError::Verify => write!(f, "checkpoint read back differs from what was written"),
            StorageError::Stale { sequence, newest } => {
                write!(
                    f,
                    "checkpoint sequence {sequence} is not newer than the stored {newest}"
                )
            }
            StorageError::Checkpoint(e) => write!(f, "{e}"),
        }
    }
}

fn flash<E: NorFlashError>(e: E) -> StorageError {
    StorageError::Flash(e.kind())
}

/// Two checkpoint slots of `slot` bytes each from offset `base` of a NOR flash.
#[derive(Debug)]
pub struct Slots<F> {
    flash: F,
    base: u32,
    slot: u32,
}

/// Bytes moved per flash call when verifying and padding (a multiple of any usual
/// write size).
const CHUNK: usize = 256;

impl<F: NorFlash> Slots<F> {
    /// Slots at `base` and `base + slot`; both must be erase-aligned and inside the flash,
    /// and the write and read sizes must divide 256 (the bytes moved per call).
    pub fn new(flash: F, base: u32, slot: u32) -> Result<Self, StorageError> {
        let erase = F::ERASE_SIZE as u32;
        if slot == 0 || erase == 0 || !base.is_multiple_of(erase) || !slot.is_multiple_of(erase) {
            return Err(StorageError::Geometry(
                "base and slot size must be multiples of the erase size",
            ));
        }
        if !CHUNK.is_multiple_of(F::WRITE_SIZE) || !CHUNK.is_multiple_of(F::READ_SIZE) {
            return Err(StorageError::Geometry("write and read sizes must divide 256"));
        }
        let end = slot.checked_mul(2).and_then(|s| s.checked_add(base));
        if end.is_none_or(|e| e as usize > flash.capacity()) {
            return Err(StorageError::Geometry("two slots do not fit in the flash"));
        }
        Ok(Slots { flash, base, slot })
    }

    /// The flash back.
    pub fn release(self) -> F {
        self.flash
    }

    /// Bytes of one slot.
    pub fn slot_size(&self) -> usize {
        self.slot as usize
    }

    fn offset(&self, i: usize) -> u32 {
        self.base + i as u32 * self.slot
    }

    /// Reads slot `i` into `buf` and checks it.
    fn read_slot(&mut self, i: usize, buf: &mut [u8]) -> Result<Option<CheckpointInfo>, StorageError> {
        let n = self.slot as usize;
        let buf = buf.get_mut(..n).ok_or(StorageError::Buffer { needed: n })?;
        self.flash.read(self.offset(i), buf).map_err(flash)?;
        Ok(checkpoint::peek(buf).ok())
    }

    /// The newest valid checkpoint: its slot and what it says of itself; its bytes are
    /// left at the start of `buf` (a slot's size). `None` when neither slot holds one.
    pub fn load(&mut self, buf: &mut [u8]) -> Result<Option<(usize, CheckpointInfo)>, StorageError> {
        let a = self.read_slot(0, buf)?;
        let b = self.read_slot(1, buf)?;
        let newest = match (a, b) {
            // Serial-number order, so the sequence may wrap past u32::MAX.
            (Some(a), Some(b)) if (a.sequence.wrapping_sub(b.sequence) as i32) > 0 => Some((0, a)),
            (Some(_), Some(b)) => Some((1, b)),
            (Some(a), None) => Some((0, a)),
            (None, Some(b)) => Some((1, b)),
            (None, None) => None,
        };
        if let Some((0, info)) = newest {
            if self.read_slot(0, buf)? != Some(info) {
                return Err(StorageError::Verify);
            }
        }
        Ok(newest)
    }

    /// Saves a checkpoint image into the slot that does not hold the newest valid one:
    /// erase, write (the tail padded with 0xFF to the write size), read back and compare.
    /// An image whose sequence number is not newer than the newest stored one is refused
    /// (`Stale`) before anything is erased.
    /// `buf` (a slot's size) is scratch. Returns the slot written.
    pub fn save(&mut self, image: &[u8], buf: &mut [u8]) -> Result<usize, StorageError> {
        let info = checkpoint::peek(image).map_err(|e| StorageError::Checkpoint(e.into()))?;
        let image = &image[..info.len];
        if image.len() > self.slot as usize {
            return Err(StorageError::TooBig {
                image: image.len(),
                slot: self.slot as usize,
            });
        }
        let newest = self.load(buf)?.map(|(i, n)| (i, n.sequence));
        self.write_after(newest, info.sequence, image)
    }

    /// Writes `image`, numbered `sequence`, over the slot that does not hold `newest`
    /// (its slot and sequence, as [`Slots::load`] found them): erase, write, read back.
    fn write_after(
        &mut self,
        newest: Option<(usize, u32)>,
        sequence: u32,
        image: &[u8],
    ) -> Result<usize, StorageError> {
        let target = match newest {
            Some((_, newest)) if (sequence.wrapping_sub(newest) as i32) <= 0 => {
                return Err(StorageError::Stale { sequence, newest })
            }
            Some((i, _)) => 1 - i,
            None => 0,
        };
        let at = self.offset(target);
        self.flash.erase(at, at + self.slot).map_err(flash)?;
        let mut chunk = [0xFFu8; CHUNK];
        for (k, part) in image.chunks(CHUNK).enumerate() {
            let padded = part.len().next_multiple_of(F::WRITE_SIZE);
            chunk[..part.len()].copy_from_slice(part);
            chunk[part.len()..].fill(0xFF);
            self.flash
                .write(at + (k * CHUNK) as u32, &chunk[..padded])
                .map_err(flash)?;
        }
        for (k, part) in image.chunks(CHUNK).enumerate() {
            let padded = part.len().next_multiple_of(F::READ_SIZE);
            self.flash
                .read(at + (k * CHUNK) as u32, &mut chunk[..padded])
                .map_err(flash)?;
            if &chunk[..part.len()] != part {
                return Err(StorageError::Verify);
            }
        }
        Ok(target)
    }

    /// Checkpoints `learner` (with the caller's `task` counter) as the next sequence
    /// number after the newest stored one. `buf` must hold two slots: the image, then
    /// the load's scratch. Returns the sequence number.
    pub fn checkpoint(&mut self, learner: &mut Learner<'_>, task: u32, buf: &mut [u8]) -> Result<u32, StorageError> {
        let n = self.slot as usize;
        if buf.len() < 2 * n {
            return Err(StorageError::Buffer { needed: 2 * n });
        }
        let (image, scratch) = buf.split_at_mut(n);
        // One look at the slots: the next number, and the slot it goes over. The image
        // fits a slot (it is written into one).
        let newest = self.load(scratch)?.map(|(i, info)| (i, info.sequence));
        let sequence = newest.map_or(1, |(_, s)| s.wrapping_add(1));
        let len = learner
            .write_checkpoint(sequence, task, image)
            .map_err(StorageError::Checkpoint)?;
        self.write_after(newest, sequence, &image[..len])?;
        Ok(sequence)
    }

    /// Restores `learner` from the newest valid checkpoint; `Ok(None)` when there is
    /// none. Returns its sequence number and task counter. A checkpoint the learner
    /// refuses (another config) is an error and changes nothing.
    pub fn restore(&mut self, learner: &mut Learner<'_>, buf: &mut [u8]) -> Result<Option<(u32, u32)>, StorageError> {
        match self.load(buf)? {
            None => Ok(None),
            Some((_, info)) => {
                let (info, task) = learner
                    .read_checkpoint(&buf[..info.len])
                    .map_err(StorageError::Checkpoint)?;
                Ok(Some((info.sequence, task)))
            }
        }
    }
}

//! Checkpoints that survive power loss.
//!
//! - [`Slots`] (`no_std`): two slots on NOR flash through `embedded-storage`'s
//!   [`NorFlash`] traits. A save goes to the slot that does not hold the newest valid
//!   checkpoint: erase it, write the image, read it back and compare. At boot both slots
//!   are checked (magic, version, length, CRC-32) and the valid one with the higher
//!   sequence number wins (in serial-number order, so the counter may wrap), so a cut
//!   at any point of a save leaves either the old checkpoint or the new one. A learner is
//!   saved and restored as a stream of 256-byte chunks ([`Slots::checkpoint`],
//!   [`Slots::restore`]): no image-sized buffer in RAM.
//! - [`FileNor`] (`no_std`): a NOR flash over a file read and written by offset
//!   ([`FileIo`]), with NOR's rules: what the firmware saves to under QEMU (a host file
//!   through semihosting), and on the host over `std::fs::File`.
//! - [`conformance::check`] (`no_std`): what any `NorFlash` must do for the slots
//!   (MockNor's rules), run against every implementation.
//! - [`FileStore`] (feature `std`, Linux boards): the image goes to a temporary file,
//!   which is synced and renamed over the old one (and the folder synced), so the file is
//!   always one whole image.
//! - [`MockNor`] (feature `std`): a NOR flash in RAM that obeys NOR's rules and can lose
//!   power after any number of bytes programmed or erased, for the power-cut tests.

pub mod conformance;
#[cfg(feature = "std")]
mod file;
mod file_nor;
#[cfg(feature = "std")]
mod mock;

#[cfg(feature = "std")]
pub use file::FileStore;
pub use file_nor::{FileIo, FileNor, FileNorError, IoError};
#[cfg(feature = "std")]
pub use mock::{MockNor, MockNorError};

use crate::learner::checkpoint::{self, CheckpointError, CheckpointInfo, Loaded, Sink, Source, Streamed};
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

impl<E: NorFlashError> From<Streamed<E>> for StorageError {
    fn from(e: Streamed<E>) -> Self {
        match e {
            Streamed::Checkpoint(e) => StorageError::Checkpoint(e),
            Streamed::Io(e) => StorageError::Flash(e.kind()),
        }
    }
}

/// What a slot holds, as the boot check finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    /// Erased: its header is all 0xFF.
    Empty,
    /// Not a whole checkpoint (torn, corrupted, another format): why.
    Invalid(CheckpointError),
    /// A whole checkpoint.
    Valid(CheckpointInfo),
}

impl fmt::Display for SlotState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SlotState::Empty => f.write_str("empty"),
            SlotState::Invalid(e) => write!(f, "{e}"),
            SlotState::Valid(i) => write!(f, "checkpoint {} ({} B)", i.sequence, i.len),
        }
    }
}

/// What [`Slots::restore`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// Both slots as the boot check found them.
    pub slots: [SlotState; 2],
    /// The slot the learner was restored from, and what it loaded; `None`: nothing was
    /// loaded and the learner is as it was.
    pub loaded: Option<(usize, Loaded)>,
    /// Why a whole checkpoint was refused (another config, or refused by the caller),
    /// per slot.
    pub refused: [Option<Error>; 2],
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

/// Bytes moved per flash call (a multiple of any usual write and read size).
const CHUNK: usize = 256;

/// A slot's bytes as a checkpoint [`Source`], read through an aligned chunk.
struct SlotSource<'a, F> {
    flash: &'a mut F,
    at: u32,
    len: usize,
}

impl<F: NorFlash> Source for SlotSource<'_, F> {
    type Error = F::Error;
    fn size(&self) -> usize {
        self.len
    }
    fn get(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), F::Error> {
        if offset.saturating_add(buf.len()) > self.len {
            // Past the slot (callers check the size first): what an erased flash reads,
            // never another slot's bytes.
            buf.fill(0xFF);
            let inside = self.len.saturating_sub(offset).min(buf.len());
            return self.get(offset, &mut buf[..inside]);
        }
        let mut chunk = [0u8; CHUNK];
        let mut done = 0;
        while done < buf.len() {
            let pos = offset + done;
            let start = pos - pos % F::READ_SIZE;
            let end = (start + CHUNK).min(self.len.next_multiple_of(F::READ_SIZE));
            let n = (end - start).min(CHUNK);
            self.flash.read(self.at + start as u32, &mut chunk[..n])?;
            let take = (n - (pos - start)).min(buf.len() - done);
            buf[done..done + take].copy_from_slice(&chunk[pos - start..pos - start + take]);
            done += take;
        }
        Ok(())
    }
}

/// Writes a streamed checkpoint into an erased slot in aligned 256-byte chunks (the last
/// padded with 0xFF to the write size), or, with `verify`, compares the stream with what
/// the slot holds.
struct SlotSink<'a, F> {
    flash: &'a mut F,
    at: u32,
    chunk: [u8; CHUNK],
    fill: usize,
    verify: bool,
    differs: bool,
    limit: usize,
    written: usize,
}

impl<F: NorFlash> SlotSink<'_, F> {
    fn flush(&mut self) -> Result<(), F::Error> {
        if self.fill == 0 {
            return Ok(());
        }
        let n = if self.verify {
            self.fill.next_multiple_of(F::READ_SIZE)
        } else {
            self.fill.next_multiple_of(F::WRITE_SIZE)
        };
        if self.verify {
            let mut back = [0u8; CHUNK];
            self.flash.read(self.at, &mut back[..n])?;
            self.differs |= back[..self.fill] != self.chunk[..self.fill];
        } else {
            self.chunk[self.fill..n].fill(0xFF);
            self.flash.write(self.at, &self.chunk[..n])?;
        }
        self.at += self.fill as u32;
        self.fill = 0;
        Ok(())
    }
}

/// Why a slot sink stopped: the flash, or an image past the slot.
enum SinkError<E> {
    Flash(E),
    TooBig,
}

impl<F: NorFlash> Sink for SlotSink<'_, F> {
    type Error = SinkError<F::Error>;
    fn put(&mut self, mut bytes: &[u8]) -> Result<(), Self::Error> {
        self.written += bytes.len();
        if self.written > self.limit {
            return Err(SinkError::TooBig);
        }
        while !bytes.is_empty() {
            let n = (CHUNK - self.fill).min(bytes.len());
            self.chunk[self.fill..self.fill + n].copy_from_slice(&bytes[..n]);
            (self.fill, bytes) = (self.fill + n, &bytes[n..]);
            if self.fill == CHUNK {
                self.flush().map_err(SinkError::Flash)?;
            }
        }
        Ok(())
    }
}

/// The newer of two sequence numbers in serial-number order (so they may wrap).
fn newer(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

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

    /// The flash, to run something else on it (a test's cut).
    pub fn flash_mut(&mut self) -> &mut F {
        &mut self.flash
    }

    /// Bytes of one slot.
    pub fn slot_size(&self) -> usize {
        self.slot as usize
    }

    fn offset(&self, i: usize) -> u32 {
        self.base + i as u32 * self.slot
    }

    fn source(&mut self, i: usize) -> SlotSource<'_, F> {
        let at = self.offset(i);
        SlotSource {
            flash: &mut self.flash,
            at,
            len: self.slot as usize,
        }
    }

    /// Checks slot `i` (header and CRC, read in chunks).
    fn state(&mut self, i: usize) -> Result<SlotState, StorageError> {
        let mut src = self.source(i);
        match checkpoint::peek_from(&mut src) {
            Ok(info) => Ok(SlotState::Valid(info)),
            Err(Streamed::Io(e)) => Err(flash(e)),
            Err(Streamed::Checkpoint(Error::Checkpoint(CheckpointError::BadMagic))) => {
                let mut h = [0u8; checkpoint::HEADER];
                src.get(0, &mut h).map_err(flash)?;
                Ok(if h.iter().all(|&b| b == 0xFF) {
                    SlotState::Empty
                } else {
                    SlotState::Invalid(CheckpointError::BadMagic)
                })
            }
            Err(Streamed::Checkpoint(Error::Checkpoint(e))) => Ok(SlotState::Invalid(e)),
            Err(Streamed::Checkpoint(e)) => Err(StorageError::Checkpoint(e)),
        }
    }

    /// Both slots as they are now.
    pub fn inspect(&mut self) -> Result<[SlotState; 2], StorageError> {
        Ok([self.state(0)?, self.state(1)?])
    }

    /// The newest valid checkpoint's slot and what it says of itself, from `slots` (as
    /// [`Slots::inspect`] found them).
    fn newest_of(slots: &[SlotState; 2]) -> Option<(usize, CheckpointInfo)> {
        match *slots {
            [SlotState::Valid(a), SlotState::Valid(b)] if newer(a.sequence, b.sequence) => Some((0, a)),
            [_, SlotState::Valid(b)] => Some((1, b)),
            [SlotState::Valid(a), _] => Some((0, a)),
            _ => None,
        }
    }

    /// The newest valid checkpoint: its slot and what it says of itself.
    pub fn newest(&mut self) -> Result<Option<(usize, CheckpointInfo)>, StorageError> {
        Ok(Self::newest_of(&self.inspect()?))
    }

    /// The newest valid checkpoint with its bytes copied to the start of `buf` (a slot's
    /// size). `None` when neither slot holds one.
    pub fn load(&mut self, buf: &mut [u8]) -> Result<Option<(usize, CheckpointInfo)>, StorageError> {
        let n = self.slot as usize;
        let buf = buf.get_mut(..n).ok_or(StorageError::Buffer { needed: n })?;
        let Some((i, info)) = self.newest()? else {
            return Ok(None);
        };
        self.flash.read(self.offset(i), buf).map_err(flash)?;
        // What was read must be what was checked.
        if checkpoint::peek(buf) != Ok(info) {
            return Err(StorageError::Verify);
        }
        Ok(Some((i, info)))
    }

    /// Saves a checkpoint image into the slot that does not hold the newest valid one:
    /// erase, write (the tail padded with 0xFF to the write size), read back and compare.
    /// An image whose sequence number is not newer than the newest stored one is refused
    /// (`Stale`) before anything is erased. Returns the slot written.
    pub fn save(&mut self, image: &[u8]) -> Result<usize, StorageError> {
        let info = checkpoint::peek(image).map_err(|e| StorageError::Checkpoint(e.into()))?;
        let image = &image[..info.len];
        if image.len() > self.slot as usize {
            return Err(StorageError::TooBig {
                image: image.len(),
                slot: self.slot as usize,
            });
        }
        let newest = self.newest()?.map(|(i, n)| (i, n.sequence));
        let target = self.target(newest, info.sequence)?;
        self.erase(target)?;
        for verify in [false, true] {
            let mut sink = self.sink(target, verify);
            sink.put(image).map_err(|e| match e {
                SinkError::Flash(e) => flash(e),
                SinkError::TooBig => StorageError::Verify,
            })?;
            sink.flush().map_err(flash)?;
            if sink.differs {
                return Err(StorageError::Verify);
            }
        }
        Ok(target)
    }

    /// The slot a checkpoint numbered `sequence` goes to, after `newest`.
    fn target(&self, newest: Option<(usize, u32)>, sequence: u32) -> Result<usize, StorageError> {
        match newest {
            Some((_, newest)) if !newer(sequence, newest) => Err(StorageError::Stale { sequence, newest }),
            Some((i, _)) => Ok(1 - i),
            None => Ok(0),
        }
    }

    fn erase(&mut self, i: usize) -> Result<(), StorageError> {
        let at = self.offset(i);
        self.flash.erase(at, at + self.slot).map_err(flash)
    }

    fn sink(&mut self, i: usize, verify: bool) -> SlotSink<'_, F> {
        let at = self.offset(i);
        SlotSink {
            flash: &mut self.flash,
            at,
            chunk: [0xFF; CHUNK],
            fill: 0,
            verify,
            differs: false,
            limit: self.slot as usize,
            written: 0,
        }
    }

    /// Checkpoints `learner` with the caller's `task` counter and `record` as the next
    /// sequence number after the newest stored one, streamed into the other slot (erase,
    /// write, then the learner streamed again and compared with what the slot holds).
    /// Nothing but a 256-byte chunk is buffered. Returns the slot and the sequence number.
    pub fn checkpoint(
        &mut self,
        learner: &mut Learner<'_>,
        task: u32,
        record: &[u8],
    ) -> Result<(usize, u32), StorageError> {
        let needed = learner.checkpoint_capacity_with(record.len());
        let newest = self.newest()?.map(|(i, info)| (i, info.sequence));
        let sequence = newest.map_or(1, |(_, s)| s.wrapping_add(1));
        let target = self.target(newest, sequence)?;
        let slot = self.slot as usize;
        for verify in [false, true] {
            if !verify {
                self.erase(target)?;
            }
            let mut sink = self.sink(target, verify);
            let r = learner.write_checkpoint_to(sequence, task, record, &mut sink);
            match r {
                Ok(_) => {}
                Err(Streamed::Io(SinkError::TooBig)) => {
                    return Err(StorageError::TooBig { image: needed, slot });
                }
                Err(Streamed::Io(SinkError::Flash(e))) => return Err(flash(e)),
                Err(Streamed::Checkpoint(e)) => return Err(StorageError::Checkpoint(e)),
            }
            sink.flush().map_err(flash)?;
            if sink.differs {
                return Err(StorageError::Verify);
            }
        }
        Ok((target, sequence))
    }

    /// Restores `learner` from the newest whole checkpoint it accepts: the newest valid
    /// slot, or, when the learner (another config) or `accept` (the caller's check of
    /// its record, e.g. the device image it belongs to) refuses it, the other valid one.
    /// The caller's record is copied into `record`. Reports both slots, what loaded and
    /// what was refused; when nothing loads, the learner is as it was.
    pub fn restore(
        &mut self,
        learner: &mut Learner<'_>,
        record: &mut [u8],
        mut accept: impl FnMut(&[u8]) -> Result<(), CheckpointError>,
    ) -> Result<Restored, StorageError> {
        let slots = self.inspect()?;
        let mut order = [None, None];
        if let Some((i, _)) = Self::newest_of(&slots) {
            order[0] = Some(i);
            if matches!(slots[1 - i], SlotState::Valid(_)) {
                order[1] = Some(1 - i);
            }
        }
        let mut refused = [None, None];
        for i in order.into_iter().flatten() {
            let mut src = self.source(i);
            match learner.read_checkpoint_from(&mut src, record, &mut accept) {
                Ok(loaded) => {
                    return Ok(Restored {
                        slots,
                        loaded: Some((i, loaded)),
                        refused,
                    })
                }
                Err(Streamed::Io(e)) => return Err(flash(e)),
                Err(Streamed::Checkpoint(e)) => refused[i] = Some(e),
            }
        }
        Ok(Restored {
            slots,
            loaded: None,
            refused,
        })
    }
}

//! Checkpoints of the loop: [`DeviceStore`] and [`Checkpoints`], the loop's record (where it
//! is, the accuracy matrix so far) and the restore of the newest one the image accepts.

use super::io::DeviceIo;
use crate::device::{DeviceConfig, DeviceError};
use crate::learner::checkpoint::CheckpointError;
use crate::learner::Learner;
use crate::storage::{Restored, SlotState, Slots, StorageError};
use embedded_storage::nor_flash::NorFlash;

/// Where the device loop keeps its checkpoints: a learner and the loop's record, saved
/// and restored whole ([`Slots`] over any NOR flash is one).
pub trait DeviceStore {
    /// Saves `learner` with the loop's `record`; the slot and sequence number written.
    fn save(&mut self, learner: &mut Learner<'_>, task: u32, record: &[u8]) -> Result<(usize, u32), StorageError>;
    /// Restores the newest checkpoint the learner and `accept` take; see
    /// [`Slots::restore`].
    fn restore(
        &mut self,
        learner: &mut Learner<'_>,
        record: &mut [u8],
        accept: &mut dyn FnMut(&[u8]) -> Result<(), CheckpointError>,
    ) -> Result<Restored, StorageError>;
}

impl<F: NorFlash> DeviceStore for Slots<F> {
    fn save(&mut self, learner: &mut Learner<'_>, task: u32, record: &[u8]) -> Result<(usize, u32), StorageError> {
        self.checkpoint(learner, task, record)
    }

    fn restore(
        &mut self,
        learner: &mut Learner<'_>,
        record: &mut [u8],
        accept: &mut dyn FnMut(&[u8]) -> Result<(), CheckpointError>,
    ) -> Result<Restored, StorageError> {
        Slots::restore(self, learner, record, accept)
    }
}

/// Checkpoints for a run: where they go, and the device image they belong to (a
/// checkpoint of another image is refused at boot even when its learner has the same
/// shape).
pub struct Checkpoints<'s> {
    /// The slots.
    pub store: &'s mut dyn DeviceStore,
    /// An identity of the device image (the firmware uses the CRC-32 of its signed bytes).
    pub image: u32,
}

/// Words of the loop's record before the accuracy matrix.
pub(super) const RECORD_WORDS: usize = 17;

/// The record's first word, "ECDL".
const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"ECDL");

/// The record's layout version.
const RECORD_VERSION: u32 = 1;

/// Where the loop is: what its record keeps (after magic, version, image and tasks),
/// with the accuracy matrix after it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Place {
    /// The stream is over and the run's summary printed.
    pub(super) done: bool,
    /// Events (samples and task ends) consumed.
    pub(super) events: u64,
    pub(super) task: usize,
    pub(super) lo: usize,
    pub(super) hi: usize,
    /// Samples taken in the current task.
    pub(super) pending: usize,
    pub(super) samples: u64,
    pub(super) updates: u64,
    /// Updates after which the next periodic checkpoint is due.
    pub(super) next_save: u64,
}

fn split64(v: u64) -> [u32; 2] {
    [v as u32, (v >> 32) as u32]
}

impl Place {
    pub(super) fn write(&self, words: &mut [u32], image: u32, tasks: usize) {
        let [e0, e1] = split64(self.events);
        let [s0, s1] = split64(self.samples);
        let [u0, u1] = split64(self.updates);
        let [n0, n1] = split64(self.next_save);
        words[..RECORD_WORDS].copy_from_slice(&[
            RECORD_MAGIC,
            RECORD_VERSION,
            image,
            tasks as u32,
            u32::from(self.done),
            e0,
            e1,
            self.task as u32,
            self.lo as u32,
            self.hi as u32,
            self.pending as u32,
            s0,
            s1,
            u0,
            u1,
            n0,
            n1,
        ]);
    }

    /// The place a record holds, if it is this loop's: the same layout, image, tasks
    /// and classes.
    pub(super) fn read(record: &[u8], image: u32, tasks: usize, classes: usize) -> Result<Place, CheckpointError> {
        if record.len() != 4 * (RECORD_WORDS + tasks * tasks) {
            return Err(CheckpointError::Refused("its loop record is not this config's size"));
        }
        let w = |i: usize| u32::from_le_bytes([record[4 * i], record[4 * i + 1], record[4 * i + 2], record[4 * i + 3]]);
        let wide = |i: usize| u64::from(w(i)) | (u64::from(w(i + 1)) << 32);
        if w(0) != RECORD_MAGIC || w(1) != RECORD_VERSION {
            return Err(CheckpointError::Refused("not a device loop's record"));
        }
        if w(2) != image {
            return Err(CheckpointError::Refused("a checkpoint of another device image"));
        }
        let p = Place {
            done: w(4) == 1,
            events: wide(5),
            task: w(7) as usize,
            lo: w(8) as usize,
            hi: w(9) as usize,
            pending: w(10) as usize,
            samples: wide(11),
            updates: wide(13),
            next_save: wide(15),
        };
        if w(3) as usize != tasks || w(4) > 1 || p.task > tasks || p.lo > p.hi || p.hi > classes {
            return Err(CheckpointError::Refused("its loop record is out of range"));
        }
        Ok(p)
    }
}

/// At start: restores the newest checkpoint of this image, config and loop from `c`,
/// printing what each slot holds and what was restored (or why nothing was); the place
/// to resume from (the start when nothing was restored).
pub(super) fn restore(
    c: &mut Checkpoints<'_>,
    config: &DeviceConfig,
    learner: &mut Learner<'_>,
    record: &mut [u32],
    io: &mut impl DeviceIo,
    start: Place,
) -> Result<Place, DeviceError> {
    let (tasks, classes, image) = (config.tasks, config.classes, c.image);
    // A flash that cannot be read is an error of the run, not a reason to start over:
    // a read that fails while the state is copied leaves the learner half loaded.
    let r = c
        .store
        .restore(learner, bytemuck::cast_slice_mut(record), &mut |r| {
            Place::read(r, image, tasks, classes).map(|_| ())
        })
        .map_err(DeviceError::Storage)?;
    let [s0, s1] = r.slots;
    io.print(format_args!("checkpoints: slot 0 {s0}, slot 1 {s1}"));
    for (i, why) in r.refused.iter().enumerate() {
        if let Some(e) = why {
            io.print(format_args!("checkpoints: slot {i} refused: {e}"));
        }
    }
    let Some((slot, loaded)) = r.loaded else {
        let why = if r.slots.iter().any(|s| matches!(s, SlotState::Valid(_))) {
            "no checkpoint of this image and config"
        } else {
            "no whole checkpoint"
        };
        io.print(format_args!(
            "checkpoints: {why}; starting from the image's initial head"
        ));
        return Ok(start);
    };
    let bytes: &[u8] = bytemuck::cast_slice(&*record);
    let place = Place::read(&bytes[..loaded.caller], image, tasks, classes)
        .map_err(|_| DeviceError::Mismatch("a restored loop record changed after it was checked"))?;
    io.print(format_args!(
        "checkpoints: restored checkpoint {} from slot {slot}: task {}, {} samples, {} updates{}",
        loaded.info.sequence,
        place.task + usize::from(place.pending > 0),
        place.samples,
        place.updates,
        if place.done { ", the stream was over" } else { "" }
    ));
    Ok(place)
}

//! What the loop talks to: [`DeviceIo`], the source of [`Event`]s and the sink of lines and
//! [`Status`] (the embedded stream with semihosting, or a sensor, a button and a LED).

use crate::device::DeviceError;
use core::fmt;

/// What the sample source gives next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A labelled sample; its pixels are in the buffer given to [`DeviceIo::next`].
    Sample {
        /// Output class (below the config's classes).
        label: u16,
    },
    /// The current task is over: consolidate, evaluate, start the next.
    TaskEnd,
    /// No more samples.
    End,
}

/// A step of the loop a [`DeviceIo`] may time ([`DeviceIo::begin`], [`DeviceIo::end`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// One sample through the backbone.
    Features,
    /// The updates on one batch of real samples: `repeats` train steps, each with fresh
    /// replayed rows when replaying.
    Update,
    /// The head's predictions on a batch of held-out features.
    Predict,
    /// A checkpoint saved.
    Save,
    /// The boot check of the slots and the restore.
    Restore,
}

/// What the device is doing, for a status LED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Taking samples and updating the head.
    Learning,
    /// Measuring accuracy on the held-out set.
    Evaluating,
    /// Done.
    Idle,
}

/// The device's inputs and outputs, whatever they are: the embedded stream and
/// semihosting in QEMU ([`StreamIo`](crate::device::StreamIo)), a sensor, a label button and a LED on a board
/// ([`super::hal::HalIo`](crate::device::hal::HalIo), feature `hal`).
pub trait DeviceIo {
    /// The next event; a sample's `pixels` (the backbone's input width) are written.
    fn next(&mut self, pixels: &mut [u8]) -> Result<Event, DeviceError>;
    /// Tasks with a held-out set (0: no evaluation).
    fn holdout_tasks(&self) -> usize {
        0
    }
    /// Held-out samples of `task`.
    fn holdout_len(&self, _task: usize) -> usize {
        0
    }
    /// Held-out sample `i` of `task` into `pixels`; its label.
    fn holdout(&mut self, _task: usize, _i: usize, _pixels: &mut [u8]) -> Result<u16, DeviceError> {
        Err(DeviceError::Mismatch("this device has no held-out set"))
    }
    /// Moves to just after the first `events` events (samples and task ends) of the
    /// stream: where a restored checkpoint left off.
    fn seek(&mut self, _events: u64) -> Result<(), DeviceError> {
        Err(DeviceError::Mismatch(
            "this sample source cannot resume from a checkpoint",
        ))
    }
    /// Shows what the device is doing.
    fn status(&mut self, _status: Status) {}
    /// A step starts (for a cost meter; nothing by default).
    fn begin(&mut self, _step: Step) {}
    /// The step that began last ends.
    fn end(&mut self, _step: Step) {}
    /// Writes one line of output.
    fn print(&mut self, _args: fmt::Arguments<'_>) {}
}

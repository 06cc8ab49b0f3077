//! A labelled sample stream with a held-out test set per task, read in place from its byte
//! image (see the [module docs](super) for the layout), and [`StreamIo`], which plays it
//! to the device loop.

use super::image::{pad4, Reader};
use super::run::{DeviceIo, Event, Status};
use super::DeviceError;
use core::fmt;

const MAGIC: &[u8; 4] = b"ECST";
const VERSION: u16 = 1;
const HEADER: usize = 32;
const WHAT: &str = "stream";

/// A validated stream image.
#[derive(Debug, Clone, Copy)]
pub struct Stream<'a> {
    body: &'a [u8],
    tasks: usize,
    classes: usize,
    bits: u8,
    width: usize,
    train: usize,
    test: usize,
    records: usize,
}

impl<'a> Stream<'a> {
    /// Validates an image: magic, version, CRC, sizes, and every label below `classes`.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DeviceError> {
        let r = Reader { bytes, what: WHAT };
        let body = r.body(MAGIC, VERSION, 24, HEADER)?;
        let bad = |why| DeviceError::Malformed { what: WHAT, why };
        let (tasks, classes, bits) = (r.u16(6)? as usize, r.u16(8)? as usize, r.u16(10)?);
        let (width, train, test) = (r.u32(12)? as usize, r.u32(16)? as usize, r.u32(20)? as usize);
        if tasks == 0 || classes == 0 || classes > 256 || width == 0 || train == 0 {
            return Err(bad(
                "tasks, classes (1 to 256), width and train samples must be positive",
            ));
        }
        let packed = match bits {
            8 => width,
            4 => width.div_ceil(2),
            _ => return Err(bad("pixels must be 4 or 8 bits")),
        };
        let record = packed.checked_add(1).ok_or(bad("sizes overflow"))?;
        let total = (|| tasks.checked_mul(train.checked_add(test)?)?.checked_mul(record))()
            .and_then(|n| n.checked_add(pad4(classes)))
            .ok_or(bad("sizes overflow"))?;
        if total != body.len() {
            return Err(DeviceError::Truncated {
                what: WHAT,
                needed: HEADER + total,
                got: bytes.len(),
            });
        }
        let s = Stream {
            body,
            tasks,
            classes,
            bits: bits as u8,
            width,
            train,
            test,
            records: pad4(classes),
        };
        for t in 0..tasks {
            for i in 0..train + test {
                if s.label_at(t, i) as usize >= classes {
                    return Err(bad("a label is not below the number of classes"));
                }
            }
        }
        Ok(s)
    }

    /// Tasks.
    pub fn tasks(&self) -> usize {
        self.tasks
    }

    /// Output classes the labels index.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Pixels per sample.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Bits per stored pixel (4 or 8).
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// Training samples per task.
    pub fn train_per_task(&self) -> usize {
        self.train
    }

    /// Held-out test samples per task.
    pub fn test_per_task(&self) -> usize {
        self.test
    }

    /// The source label (e.g. the digit) of output `k`.
    pub fn source_label(&self, k: usize) -> Option<u8> {
        (k < self.classes).then(|| self.body[k])
    }

    fn record(&self) -> usize {
        1 + if self.bits == 8 {
            self.width
        } else {
            self.width.div_ceil(2)
        }
    }

    /// Record `i` of task `t`: its train samples first, then its test samples.
    fn at(&self, t: usize, i: usize) -> usize {
        self.records + (t * (self.train + self.test) + i) * self.record()
    }

    fn label_at(&self, t: usize, i: usize) -> u8 {
        self.body[self.at(t, i)]
    }

    fn sample(&self, t: usize, i: usize, pixels: &mut [u8]) -> Result<u16, DeviceError> {
        if t >= self.tasks || i >= self.train + self.test {
            return Err(DeviceError::Mismatch("stream: no such sample"));
        }
        if pixels.len() != self.width {
            return Err(DeviceError::Mismatch("stream: pixel buffer is not the stream's width"));
        }
        let at = self.at(t, i);
        let data = &self.body[at + 1..at + self.record()];
        if self.bits == 8 {
            pixels.copy_from_slice(data);
        } else {
            for (k, p) in pixels.iter_mut().enumerate() {
                let b = data[k / 2];
                *p = if k % 2 == 0 { b >> 4 } else { b & 15 } * 17;
            }
        }
        Ok(u16::from(self.body[at]))
    }

    /// Training sample `i` of task `t` into `pixels`; its label.
    pub fn train_sample(&self, t: usize, i: usize, pixels: &mut [u8]) -> Result<u16, DeviceError> {
        if i >= self.train {
            return Err(DeviceError::Mismatch("stream: no such training sample"));
        }
        self.sample(t, i, pixels)
    }

    /// Test sample `i` of task `t` into `pixels`; its label.
    pub fn test_sample(&self, t: usize, i: usize, pixels: &mut [u8]) -> Result<u16, DeviceError> {
        if i >= self.test {
            return Err(DeviceError::Mismatch("stream: no such test sample"));
        }
        self.sample(t, self.train + i, pixels)
    }
}

/// Plays a [`Stream`] to the device loop: each task's training samples in order, then a
/// task boundary; its test samples are the held-out set. Lines go to `out` (semihosting
/// on the firmware, stdout or a string on the host).
pub struct StreamIo<'a, W> {
    stream: Stream<'a>,
    task: usize,
    next: usize,
    out: W,
}

impl<'a, W: fmt::Write> StreamIo<'a, W> {
    /// From the stream's start.
    pub fn new(stream: Stream<'a>, out: W) -> Self {
        StreamIo {
            stream,
            task: 0,
            next: 0,
            out,
        }
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: fmt::Write> DeviceIo for StreamIo<'_, W> {
    fn next(&mut self, pixels: &mut [u8]) -> Result<Event, DeviceError> {
        if self.task >= self.stream.tasks {
            return Ok(Event::End);
        }
        if self.next == self.stream.train {
            (self.task, self.next) = (self.task + 1, 0);
            return Ok(Event::TaskEnd);
        }
        let label = self.stream.train_sample(self.task, self.next, pixels)?;
        self.next += 1;
        Ok(Event::Sample { label })
    }

    fn seek(&mut self, events: u64) -> Result<(), DeviceError> {
        // Each task is its training samples, then its end.
        let per_task = self.stream.train as u64 + 1;
        let task = events / per_task;
        if task > self.stream.tasks as u64 {
            return Err(DeviceError::Mismatch("a checkpoint's place is past the stream's end"));
        }
        (self.task, self.next) = (task as usize, (events % per_task) as usize);
        Ok(())
    }

    fn holdout_tasks(&self) -> usize {
        self.stream.tasks
    }

    fn holdout_len(&self, task: usize) -> usize {
        if task < self.stream.tasks {
            self.stream.test
        } else {
            0
        }
    }

    fn holdout(&mut self, task: usize, i: usize, pixels: &mut [u8]) -> Result<u16, DeviceError> {
        self.stream.test_sample(task, i, pixels)
    }

    fn status(&mut self, _status: Status) {}

    fn print(&mut self, args: fmt::Arguments<'_>) {
        // A failed write loses a line of output, never the learner's state.
        let _ = self.out.write_fmt(args);
        let _ = self.out.write_char('\n');
    }
}

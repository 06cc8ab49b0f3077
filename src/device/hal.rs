//! The device loop's I/O on a real board, through embedded-hal 1.0 traits (feature
//! `hal`): frames from an I2C sensor, the label from a button, the status on a LED, lines
//! to any `core::fmt::Write` (a UART writer, RTT).
//!
//! The protocol, for two classes per task: each sample is one frame read from register
//! [`FRAME_REGISTER`] of the sensor at `address` (the backbone's input width in bytes);
//! the button held while the frame is taken labels it as the task's second class,
//! released as its first (task `t` teaches outputs `2t` and `2t + 1`). After
//! `samples_per_task` samples the task ends; after `tasks` tasks the stream ends. The LED
//! is on while learning and off otherwise. There is no held-out set on the board: the
//! accuracy matrix is measured in the simulator and in QEMU.

use super::run::{DeviceIo, Event, Status};
use super::DeviceError;
use core::fmt;
use embedded_hal::digital::{InputPin, OutputPin};
use embedded_hal::i2c::I2c;

/// The sensor register a frame is read from.
pub const FRAME_REGISTER: u8 = 0x00;

/// Sensor, label button, status LED and a line writer, as a [`DeviceIo`].
pub struct HalIo<I, B, L, W> {
    i2c: I,
    address: u8,
    button: B,
    led: L,
    out: W,
    samples_per_task: usize,
    tasks: usize,
    task: usize,
    taken: usize,
}

impl<I: I2c, B: InputPin, L: OutputPin, W: fmt::Write> HalIo<I, B, L, W> {
    /// A device that learns `tasks` tasks of `samples_per_task` labelled frames each.
    pub fn new(i2c: I, address: u8, button: B, led: L, out: W, samples_per_task: usize, tasks: usize) -> Self {
        HalIo {
            i2c,
            address,
            button,
            led,
            out,
            samples_per_task,
            tasks,
            task: 0,
            taken: 0,
        }
    }

    /// The peripherals back.
    pub fn release(self) -> (I, B, L, W) {
        (self.i2c, self.button, self.led, self.out)
    }
}

impl<I: I2c, B: InputPin, L: OutputPin, W: fmt::Write> DeviceIo for HalIo<I, B, L, W> {
    fn next(&mut self, pixels: &mut [u8]) -> Result<Event, DeviceError> {
        if self.task >= self.tasks {
            return Ok(Event::End);
        }
        if self.taken == self.samples_per_task {
            (self.task, self.taken) = (self.task + 1, 0);
            return Ok(Event::TaskEnd);
        }
        let pressed = self
            .button
            .is_high()
            .map_err(|_| DeviceError::Source("the label button cannot be read"))?;
        self.i2c
            .write_read(self.address, &[FRAME_REGISTER], pixels)
            .map_err(|_| DeviceError::Source("the I2C sensor did not send a frame"))?;
        self.taken += 1;
        let label = 2 * self.task + usize::from(pressed);
        Ok(Event::Sample { label: label as u16 })
    }

    fn seek(&mut self, events: u64) -> Result<(), DeviceError> {
        // Each task is `samples_per_task` frames, then its end.
        let per_task = self.samples_per_task as u64 + 1;
        let task = events / per_task;
        if task > self.tasks as u64 {
            return Err(DeviceError::Mismatch("a checkpoint's place is past the last task"));
        }
        (self.task, self.taken) = (task as usize, (events % per_task) as usize);
        Ok(())
    }

    fn status(&mut self, status: Status) {
        // A LED that fails to switch changes nothing the learner keeps.
        let _ = match status {
            Status::Learning => self.led.set_high(),
            Status::Evaluating | Status::Idle => self.led.set_low(),
        };
    }

    fn print(&mut self, args: fmt::Arguments<'_>) {
        let _ = self.out.write_fmt(args);
        let _ = self.out.write_char('\n');
    }
}

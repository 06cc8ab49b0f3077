//! The device loop: what firmware runs on a board, and what the host simulator runs with
//! the same config, stream and kernels (`edgecl simulate --firmware boards/B`), so the two
//! print the same accuracy matrix to the last bit.
//!
//! `no_std` and heap-free like the [`learner`](crate::learner) it drives:
//!
//! - [`Backbone`]: the frozen feature extractor, dense int8 layers with a per-row f32 scale,
//!   read in place from a byte image (flash on a microcontroller, `include_bytes!`); its
//!   own kernels (integer dot products on the pixels, then f32), checked against tract on
//!   the host (`tests/device.rs`).
//! - [`Stream`]: a labelled sample stream with a held-out test set per task, 4- or 8-bit
//!   pixels, in the same kind of image. The firmware's is embedded in flash; the host
//!   writes it from MNIST (`edgecl device-data`).
//! - [`DeviceConfig`]: the learner the firmware runs, parsed from a flat `key = value`
//!   text (a TOML subset: the firmware's `firmware.toml`) by the same code on both sides.
//! - [`DeviceIo`]: where samples come from and where lines and status go. The loop does
//!   not know whether that is the embedded stream with semihosting ([`StreamIo`]) or a
//!   sensor, a label button and a LED through embedded-hal ([`hal::HalIo`], feature `hal`).
//! - [`run`]: streams the samples through the backbone into the learner (class-IL), holds
//!   every buffer in the one arena, evaluates after each task and prints the accuracy
//!   matrix.
//!
//! Image layouts (little-endian; `crc` is CRC-32/ISO-HDLC of the body):
//!
//! ```text
//! backbone  0 "ECBB" | 4 version u16 | 6 layers u16 | 8 input u32 | 12 output u32
//!           16 body length u32 | 20 crc u32 | 24 body: per layer
//!              inputs u32 | outputs u32 | flags u32 (bit 0: ReLU) | 0 u32
//!              scales f32[outputs] | biases f32[outputs] | weights i8[outputs x inputs]
//!              (row-major) | zero padding to 4 bytes
//! stream    0 "ECST" | 4 version u16 | 6 tasks u16 | 8 classes u16 | 10 bits u16 (4 or 8)
//!           12 width u32 | 16 train per task u32 | 20 test per task u32
//!           24 body length u32 | 28 crc u32 | 32 body: order u8[classes] (the source
//!              label of each output), zero padding to 4 bytes, then per task its train
//!              records and its test records: label u8 | pixels (width bytes, or
//!              ceil(width / 2) with 4 bits: high nibble first, value = nibble x 17)
//! ```

mod backbone;
mod config;
mod error;
mod image;
mod run;
pub mod signed;
mod stream;

#[cfg(feature = "hal")]
pub mod hal;

pub use backbone::{Backbone, MAX_LAYERS};
pub use config::{DeviceConfig, DeviceStrategy};
pub use error::DeviceError;
pub use image::crc32;
pub use run::{
    head_fnv1a, plan, run, run_with, run_with_baseline, Checkpoints, DeviceIo, DevicePlan, DeviceStore, Event,
    RunSummary, Status, Step,
};
pub use stream::{Stream, StreamIo};

//! The device loop: what firmware runs on a board, and what the host simulator runs with
//! the same config, stream and kernels (`edgecl simulate --firmware boards/B`), so the two
//! print the same accuracy matrix to the last bit.
//!
//! `no_std` and heap-free like the [`learner`](crate::learner) it drives:
//!
//! - [`Backbone`]: the frozen feature extractor, int8 convolutions over images (with ReLU
//!   and a fused 2x2 max-pool) or over time (1-D, on sensor windows, with a fused 2-step
//!   max-pool) and dense layers with a per-output-channel f32 scale, read in place from a
//!   byte image (flash on a microcontroller, `include_bytes!`); u8 pixels or i8 windows
//!   in (a window quantised by the device from its own per-channel normalisation), u8
//!   activations between layers, exact i32 sums, f32 only per output and in the
//!   features; a fast kernel and a scalar reference that agree bit for bit, checked
//!   against tract on the host (`tests/device.rs`, `tests/device_windows.rs`).
//! - [`Stream`]: a labelled sample stream with a held-out test set per task, 4- or 8-bit
//!   pixels (or a window's i8 values, 8 bits), in the same kind of image. The firmware's
//!   is embedded in flash; the host writes it from MNIST or the watch windows (`edgecl
//!   device-data`).
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
//! backbone  0 "ECBB" | 4 version u16 (2) | 6 layers u16 | 8 input channels u16
//!           10 input rows u16 | 12 input columns u16 | 14 input kind u16 (0 u8 pixels,
//!           channel-major; 1 an i8 window of `columns` steps of `channels` values,
//!           time-major, `rows` 1) | 16 output u32 | 20 body length u32 | 24 crc u32
//!           28 body: a window's normalisation first: mean f32[channels] | mul
//!              f32[channels] (> 0; value x of channel c becomes round((x - mean[c]) x
//!              mul[c]), half away from zero, clipped to -127..=127); then per layer
//!              kind u8 (1 convolution, 2 dense, 3 convolution over time) | flags u8
//!              (bit 0 ReLU, bit 1 max-pool, stride 2, after the ReLU: 2x2, over time 2
//!              steps, a last odd row or step dropped; convolutions only) | kernel u8 |
//!              pad u8 (convolution: square kernel, stride 1, zero padding on every side;
//!              over time: kernel and padding along the steps of a one-row map; dense:
//!              0, 0) | inputs u32 | outputs u32 (channels, or widths) | 0 u32
//!              scales f32[outputs] (> 0) | biases f32[outputs]
//!              weights i8[outputs x inputs x kernel x kernel] (over time: outputs x
//!              inputs x kernel; dense: outputs x inputs; row-major, ONNX's layout) | zero
//!              padding to 4 bytes
//!           input: u8 pixels, channel-major, or the window's i8 values, read channel by
//!           channel (ONNX's transpose to [C, T]); a dense layer after a convolution
//!           reads its map channel-major (ONNX's Flatten). Output `o` of a layer sums
//!           `acc = sum w x a` in i32 (at most 65535 products), takes `v = acc * scale[o]
//!           + bias[o]` in f32 (a pooled one from the largest of its sums); every
//!           layer but the last has ReLU and stores `(v + 0.5) as u8` (saturating), the
//!           last gives `v` (ReLU'd if flagged) as the f32 features
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
#[cfg(feature = "std")]
mod text;

#[cfg(feature = "hal")]
pub mod hal;

pub use backbone::{Backbone, MAX_LAYERS};
pub use config::{runs, DeviceConfig, Printed, STRATEGIES};
pub use error::DeviceError;
pub use image::crc32;
pub use run::{
    head_fnv1a, plan, run, run_with, run_with_baseline, Checkpoints, DeviceIo, DevicePlan, DeviceStore, Event,
    RunSummary, Status, Step,
};
pub use stream::{Stream, StreamIo};

//! edgecl on the Netduino Plus 2 (STM32F405RG). Two programs, one per feature (see
//! README.md):
//!
//! - `semihosting` (the default): the device loop over the embedded MNIST stream, the
//!   accuracy matrices of the config and of fine-tuning, and the memory report, through
//!   semihosting: what QEMU's `netduinoplus2` runs (`edgecl_firmware::board_main!`).
//! - `hal` (`--no-default-features --features hal`): the chip itself through
//!   stm32f4xx-hal: frames from an I2C sensor, the user button as the label, the user LED
//!   as the status, lines over RTT, checkpoint slots in flash sectors 10 and 11
//!   (`chip`, `flash`).
#![no_std]
#![no_main]

#[cfg(all(feature = "semihosting", feature = "hal"))]
compile_error!(
    "`semihosting` and `hal` are two programs: build the chip's with `--no-default-features --features hal`"
);
#[cfg(not(any(feature = "semihosting", feature = "hal")))]
compile_error!("no program: keep the default feature `semihosting` (QEMU), or build with `--features hal`");
#[cfg(all(feature = "overflow", not(feature = "semihosting")))]
compile_error!("`overflow` is a feature of the semihosting program");

#[cfg(feature = "semihosting")]
use semihosting as _; // its panic handler

#[cfg(feature = "semihosting")]
edgecl_firmware::board_main!();

#[cfg(feature = "hal")]
mod chip;
#[cfg(feature = "hal")]
mod flash;

//! edgecl on the Raspberry Pi Pico (RP2040, Cortex-M0+ without an FPU: every float is
//! software): the same device loop as every board, built to show the core needs no FPU.
//! Output through semihosting, which needs a debug probe attached. See README.md.
#![no_std]
#![no_main]

use semihosting as _; // its panic handler

/// The second-stage bootloader the boot ROM copies from the first 256 bytes of flash.
#[link_section = ".boot2"]
#[used]
pub static BOOT2: [u8; 256] = rp2040_boot2::BOOT_LOADER_W25Q080;

edgecl_firmware::board_main!();

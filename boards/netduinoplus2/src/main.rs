//! edgecl on the Netduino Plus 2 (STM32F405RG): the device loop over the embedded MNIST
//! stream, the accuracy matrices of the config and of fine-tuning, and the memory report,
//! through semihosting. See README.md.
#![no_std]
#![no_main]

use semihosting as _; // its panic handler

edgecl_firmware::board_main!();

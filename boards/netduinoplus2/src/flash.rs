//! The checkpoint slots' flash: sectors 10 and 11 of the STM32F405's internal flash as an
//! `embedded-storage` 0.3 NOR flash, programmed through the FLASH registers (RM0090's
//! embedded flash chapter). Offsets are relative to the start of sector 10.
//!
//! ```text
//! 0x0800_0000  sectors 0-9    768 KiB   code, tables, the signed device image
//!                                       (memory-hal.x's FLASH ends here)
//! 0x080C_0000  sector 10      128 KiB   checkpoint slot 0     offsets 0x0_0000..0x2_0000
//! 0x080E_0000  sector 11      128 KiB   checkpoint slot 1     offsets 0x2_0000..0x4_0000
//! 0x0810_0000  end of the 1 MiB flash
//! ```
//!
//! - Reads are of any length at any offset, straight from the memory-mapped array.
//! - Writes are whole 32-bit words at offsets that are multiples of 4 (PSIZE x32, which
//!   needs a 2.7-3.6 V supply: the Netduino Plus 2 runs the chip at 3.3 V). Programming only
//!   clears bits: a word programmed twice holds the AND of both (RM0090 allows successive
//!   writes that change bits from 1 to 0 without an erase). Every word is read back after
//!   it is programmed and must hold the AND of what was there and what was asked.
//! - Erases are whole 128 KiB sectors (`ERASE_SIZE`, one slot each): up to 2 s a sector
//!   (the datasheet's t_ERASE128KB at x32).
//! - Out-of-range or unaligned requests fail with `OutOfBounds` / `NotAligned` before the
//!   flash is touched, checked in the order of `embedded_storage::nor_flash::check_*`.
//! - The controller is unlocked for each erase or write and locked again when it ends, so
//!   stray stores cannot program the flash between calls. Error flags of the controller end
//!   the call with [`FlashError::Controller`].
//! - While the controller is busy the CPU stalls on its next flash fetch (one bank): the
//!   device loop waits; no interrupt runs from RAM.
//! - The data cache is off during an erase or a write (so the read-back sees the array, not
//!   a line cached before) and is reset before it is enabled again: lines cached before an
//!   erase or a write may be stale (ST's own HAL flushes the caches after an erase).
//!
//! QEMU's `netduinoplus2` cannot run this driver: it models the flash as ROM and the
//! flash interface as an unimplemented device, so nothing is ever erased or programmed.
//! `edgecl::storage::conformance` (feature `selftest`) checks it on the chip.
//!
//! # Here be dragons
//!
//! The crate's `unsafe` for the flash is all in this module: the memory-mapped reads and
//! the word stores of [`raw`], and one register field the PAC cannot bound-check (the
//! sector number). Each block says why it holds.

use embedded_storage::nor_flash::{
    check_erase, check_read, check_write, ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use stm32f4xx_hal::pac::FLASH;

/// Address of the first checkpoint sector (sector 10).
pub const SLOT_REGION_ADDRESS: u32 = 0x080C_0000;
/// Bytes of one checkpoint slot: one 128 KiB sector.
pub const SLOT_BYTES: u32 = 128 * 1024;
/// Bytes of both slots: sectors 10 and 11, to the end of the flash.
pub const SLOT_REGION_BYTES: u32 = 2 * SLOT_BYTES;
/// The sector number (FLASH_CR.SNB) of offset 0.
pub const FIRST_SLOT_SECTOR: u8 = 10;

/// The unlock sequence written to FLASH_KEYR (RM0090).
const KEYS: [u32; 2] = [0x4567_0123, 0xCDEF_89AB];

/// FLASH_SR's error flags: PGSERR (7), PGPERR (6), PGAERR (5), WRPERR (4), OPERR (1).
const ERROR_FLAGS: u32 = 0b1111_0010;

/// Why an erase, write or read failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashError {
    /// An offset or length not a multiple of the operation's size.
    NotAligned,
    /// Outside the two checkpoint sectors.
    OutOfBounds,
    /// The controller stayed locked after the unlock keys (a wrong sequence locks it until
    /// the next reset).
    Locked,
    /// The controller raised error flags (FLASH_SR bits, see [`ERROR_FLAGS`]): write
    /// protection, or a programming sequence, parallelism or alignment error.
    Controller {
        /// The FLASH_SR error bits that were set.
        flags: u32,
    },
    /// A word read back after programming is not the AND of the old word and the new.
    Verify {
        /// The word's offset.
        offset: u32,
    },
}

impl NorFlashError for FlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            FlashError::NotAligned => NorFlashErrorKind::NotAligned,
            FlashError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            FlashError::Locked | FlashError::Controller { .. } | FlashError::Verify { .. } => NorFlashErrorKind::Other,
        }
    }
}

impl core::fmt::Display for FlashError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            FlashError::NotAligned => write!(f, "flash: offset or length not aligned"),
            FlashError::OutOfBounds => write!(f, "flash: outside the checkpoint sectors"),
            FlashError::Locked => write!(f, "flash: the controller stays locked until reset"),
            FlashError::Controller { flags } => {
                write!(f, "flash: the controller reported errors (FLASH_SR {flags:#04x})")
            }
            FlashError::Verify { offset } => write!(f, "flash: the word at {offset:#x} did not program"),
        }
    }
}

fn kind_error(kind: NorFlashErrorKind) -> FlashError {
    match kind {
        NorFlashErrorKind::NotAligned => FlashError::NotAligned,
        _ => FlashError::OutOfBounds,
    }
}

/// Memory-mapped access to the checkpoint sectors, bounds-checked here so each `unsafe`
/// block's argument is local.
mod raw {
    use super::{FlashError, SLOT_REGION_ADDRESS, SLOT_REGION_BYTES};

    fn address(offset: u32, len: usize) -> Result<usize, FlashError> {
        let end = (offset as usize).checked_add(len).ok_or(FlashError::OutOfBounds)?;
        if end > SLOT_REGION_BYTES as usize {
            return Err(FlashError::OutOfBounds);
        }
        Ok(SLOT_REGION_ADDRESS as usize + offset as usize)
    }

    /// `out.len()` bytes from `offset`.
    pub(super) fn read(offset: u32, out: &mut [u8]) -> Result<(), FlashError> {
        let base = address(offset, out.len())?;
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: `base + i` lies in sectors 10-11 (checked above), flash that is always
            // mapped and readable; no Rust object lives there (memory-hal.x ends FLASH below
            // it), and volatile because erases and writes change it behind the compiler.
            *b = unsafe { core::ptr::read_volatile((base + i) as *const u8) };
        }
        Ok(())
    }

    /// The word at `offset` (a multiple of 4).
    pub(super) fn word(offset: u32) -> Result<u32, FlashError> {
        let at = address(offset, 4)?;
        if at % 4 != 0 {
            return Err(FlashError::NotAligned);
        }
        // SAFETY: as in `read`; `at` is 4-aligned, as a u32 read needs.
        Ok(unsafe { core::ptr::read_volatile(at as *const u32) })
    }

    /// Stores `value` at `offset` (a multiple of 4): with FLASH_CR.PG set and PSIZE x32,
    /// the controller programs it.
    pub(super) fn store(offset: u32, value: u32) -> Result<(), FlashError> {
        let at = address(offset, 4)?;
        if at % 4 != 0 {
            return Err(FlashError::NotAligned);
        }
        // SAFETY: `at` is a 4-aligned word in sectors 10-11, which hold no Rust object. A
        // store to flash is a programming request to the controller, not a memory write:
        // with PG set (the only caller, `SlotFlash::write`, sets it) it programs the word,
        // otherwise the controller flags PGSERR and nothing changes.
        unsafe { core::ptr::write_volatile(at as *mut u32, value) };
        Ok(())
    }
}

/// Sectors 10 and 11 of the internal flash, as a [`NorFlash`] of 256 KiB.
pub struct SlotFlash {
    regs: FLASH,
}

impl SlotFlash {
    /// Takes the FLASH registers (after the clocks are set: the HAL's `freeze` writes the
    /// wait states into FLASH_ACR).
    pub fn new(regs: FLASH) -> Self {
        SlotFlash { regs }
    }

    /// Waits for the controller, then reports and clears its error flags.
    fn wait(&mut self) -> Result<(), FlashError> {
        while self.regs.sr().read().bsy().bit_is_set() {}
        let flags = self.regs.sr().read().bits() & ERROR_FLAGS;
        if flags != 0 {
            self.clear_flags();
            return Err(FlashError::Controller { flags });
        }
        Ok(())
    }

    fn clear_flags(&mut self) {
        self.regs.sr().write(|w| {
            w.eop().clear();
            w.operr().clear();
            w.wrperr().clear();
            w.pgaerr().clear();
            w.pgperr().clear();
            w.pgserr().clear()
        });
    }

    /// Runs `op` with the controller unlocked and the data cache off; then locks the
    /// controller, and resets and restores the data cache, whatever `op` returned.
    fn unlocked(&mut self, op: impl FnOnce(&mut Self) -> Result<(), FlashError>) -> Result<(), FlashError> {
        // Flags left over from before this call (a stray store to flash sets PGSERR) are
        // cleared below, not reported.
        while self.regs.sr().read().bsy().bit_is_set() {}
        if self.regs.cr().read().lock().bit_is_set() {
            for key in KEYS {
                self.regs.keyr().write(|w| w.key().set(key));
            }
            if self.regs.cr().read().lock().bit_is_set() {
                return Err(FlashError::Locked);
            }
        }
        self.clear_flags();
        let cached = self.regs.acr().read().dcen().bit_is_set();
        self.regs.acr().modify(|_, w| w.dcen().clear_bit());
        let result = op(self);
        self.regs.cr().modify(|_, w| {
            w.pg().clear_bit();
            w.ser().clear_bit();
            w.lock().set_bit()
        });
        // RM0090: reset the data cache only while it is off.
        self.regs.acr().modify(|_, w| w.dcrst().set_bit());
        self.regs.acr().modify(|_, w| w.dcrst().clear_bit());
        if cached {
            self.regs.acr().modify(|_, w| w.dcen().set_bit());
        }
        result
    }
}

impl ErrorType for SlotFlash {
    type Error = FlashError;
}

impl ReadNorFlash for SlotFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        check_read(self, offset, bytes.len()).map_err(kind_error)?;
        raw::read(offset, bytes)
    }

    fn capacity(&self) -> usize {
        SLOT_REGION_BYTES as usize
    }
}

impl NorFlash for SlotFlash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = SLOT_BYTES as usize;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        check_erase(self, from, to).map_err(kind_error)?;
        self.unlocked(|f| {
            for start in (from..to).step_by(SLOT_BYTES as usize) {
                let sector = FIRST_SLOT_SECTOR + (start / SLOT_BYTES) as u8;
                f.regs.cr().modify(|_, w| {
                    w.pg().clear_bit();
                    w.psize().psize32();
                    w.ser().set_bit();
                    // SAFETY: SNB is 4 bits and the PAC leaves its range to the caller;
                    // `sector` is 10 or 11 (`start` is below the 256 KiB capacity, checked
                    // above), both sectors of this single-bank 1 MiB part.
                    unsafe { w.snb().bits(sector) }
                });
                f.regs.cr().modify(|_, w| w.strt().set_bit());
                f.wait()?;
            }
            Ok(())
        })
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        check_write(self, offset, bytes.len()).map_err(kind_error)?;
        self.unlocked(|f| {
            f.regs.cr().modify(|_, w| {
                w.ser().clear_bit();
                w.psize().psize32();
                w.pg().set_bit()
            });
            for (i, word) in bytes.chunks_exact(4).enumerate() {
                let at = offset + 4 * i as u32;
                let new = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
                let old = raw::word(at)?;
                raw::store(at, new)?;
                f.wait()?;
                if raw::word(at)? != old & new {
                    return Err(FlashError::Verify { offset: at });
                }
            }
            Ok(())
        })
    }
}

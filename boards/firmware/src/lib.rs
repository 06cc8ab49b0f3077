//! What every edgecl board firmware shares: the board's signed device image verified with
//! the public key compiled in, the device loop ([`edgecl::device`]) over the embedded
//! sample stream, lines out through semihosting (QEMU, or a debug probe), the stack painted
//! at start and measured at the end, and the memory report.
//!
//! A board crate holds its memory layout (`memory.x`, or one per program), its
//! `.cargo/config.toml`, `board.toml` and `firmware.toml` (what its image in `boards/flash/`
//! was exported from), and one line of code: [`board_main!`]. Its build script (`boards/firmware/board_build.rs`, shared) turns
//! `board.toml` into the arena's size and picks the image and the public key.
#![no_std]

use core::fmt::{self, Write as _};
use edgecl::device::{self, signed, DeviceError, Stream};

pub use cortex_m_rt;
pub use semihosting;

/// The sample stream every board embeds.
pub static STREAM: &[u8] = include_bytes!("../../flash/stream.bin");

/// Written over the stack below the live frames at start; what is still there at the end
/// was never used.
const PAINT: u32 = 0x5AFE_C0DE;

/// What a board tells the shared code.
pub struct BoardInfo {
    /// The board profile's name.
    pub name: &'static str,
    /// The board profile's RAM (all regions).
    pub ram_bytes: usize,
    /// The board profile's flash.
    pub flash_bytes: usize,
    /// The signed device image (config, initial head, backbone).
    pub image: &'static [u8],
    /// The owner's Ed25519 public key the image must verify with.
    pub public_key: [u8; 32],
}

/// Lines to the host through semihosting.
pub struct Host;

impl fmt::Write for Host {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        semihosting::print!("{s}");
        Ok(())
    }
}

extern "C" {
    static _stack_start: u32;
    static _stack_end: u32;
    static __sdata: u32;
    static __edata: u32;
    static __sidata: u32;
    static __sheap: u32;
    static _flash_start: u32;
    static _sram_start: u32;
    static _sram_end: u32;
}

fn addr(sym: &u32) -> usize {
    sym as *const u32 as usize
}

/// Paints the stack from its bottom to just below the current frame.
///
/// # Safety
/// Call first thing in `main`, with nothing live below the stack pointer.
pub unsafe fn paint_stack() {
    let bottom = addr(&*core::ptr::addr_of!(_stack_end));
    let sp = cortex_m::register::msp::read() as usize;
    let mut p = bottom;
    while p + 256 < sp {
        (p as *mut u32).write_volatile(PAINT);
        p += 4;
    }
}

/// The deepest the stack has been since [`paint_stack`], in bytes.
pub fn stack_peak() -> usize {
    // SAFETY: linker symbols; the words between them are the stack's, readable.
    unsafe {
        let (bottom, top) = (
            addr(&*core::ptr::addr_of!(_stack_end)),
            addr(&*core::ptr::addr_of!(_stack_start)),
        );
        let mut p = bottom;
        while p < top && (p as *const u32).read_volatile() == PAINT {
            p += 4;
        }
        top - p
    }
}

/// Runs the firmware: verifies the device image (CRC, signature, board, budget), runs its
/// config from its initial head over the stream and the fine-tune baseline in `arena`,
/// then prints the memory report. Exit status 0, or 2 with the error's message (an
/// image signed by another key, an over-budget config...).
pub fn run(board: &BoardInfo, arena: &'static mut [u8]) -> ! {
    let mut out = Host;
    let arena_bytes = arena.len();
    let _ = writeln!(
        out,
        "edgecl firmware on {}: arena {} B at {:#010x}",
        board.name,
        arena.len(),
        arena.as_ptr() as usize
    );
    let result = (|| -> Result<(), DeviceError> {
        let image = signed::verify(board.image, &board.public_key, board.name, arena.len())?;
        let backbone = image
            .backbone
            .ok_or(DeviceError::Mismatch("the device image carries no backbone"))?;
        let stream = Stream::parse(STREAM)?;
        device::run_with_baseline(&image.config, &backbone, Some(image.head), stream, arena, &mut out)?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = writeln!(out, "edgecl: {e}");
        semihosting::process::exit(2)
    }
    // SAFETY: linker symbols, only their addresses are read.
    let (stack, statics, flash, sram) = unsafe {
        let at = |s: &u32| addr(s);
        let stack = at(&*core::ptr::addr_of!(_stack_start)) - at(&*core::ptr::addr_of!(_stack_end));
        let data = at(&*core::ptr::addr_of!(__edata)) - at(&*core::ptr::addr_of!(__sdata));
        let statics = at(&*core::ptr::addr_of!(__sheap)) - at(&*core::ptr::addr_of!(__sdata));
        let flash = at(&*core::ptr::addr_of!(__sidata)) + data - at(&*core::ptr::addr_of!(_flash_start));
        let sram = at(&*core::ptr::addr_of!(_sram_end)) - at(&*core::ptr::addr_of!(_sram_start));
        (stack, statics, flash, sram)
    };
    let peak = stack_peak();
    let used = statics + peak;
    let _ = writeln!(
        out,
        "memory: flash {flash} B of {}; RAM: statics {statics} B (arena {arena_bytes}) + stack peak {peak} B = {used} B; stack headroom {} B of {stack} B reserved; {} B of the {sram} B SRAM region unused, {} B of the board's {} B RAM",
        board.flash_bytes,
        stack - peak.min(stack),
        sram - (statics + stack).min(sram),
        board.ram_bytes - used.min(board.ram_bytes),
        board.ram_bytes,
    );
    semihosting::process::exit(0)
}

/// The board crate's whole program: the arena as a static buffer of the board's learner
/// budget (`ARENA_BYTES`, from `board.toml` by the build script), the entry point and a
/// hard-fault handler that reports and exits.
#[macro_export]
macro_rules! board_main {
    () => {
        include!(concat!(env!("OUT_DIR"), "/board.rs"));
        include!(concat!(env!("OUT_DIR"), "/key.rs"));

        #[repr(C, align(16))]
        struct ArenaBytes([u8; ARENA_BYTES]);
        static mut ARENA: ArenaBytes = ArenaBytes([0; ARENA_BYTES]);

        #[$crate::cortex_m_rt::entry]
        fn main() -> ! {
            // SAFETY: first thing in main; nothing lives below the stack pointer yet.
            unsafe { $crate::paint_stack() };
            #[cfg(feature = "overflow")]
            overflow::recurse(1_000_000);
            // SAFETY: main runs once and is the only user of ARENA.
            let arena = unsafe { &mut (*core::ptr::addr_of_mut!(ARENA)).0 };
            $crate::run(
                &$crate::BoardInfo {
                    name: BOARD,
                    ram_bytes: RAM_BYTES,
                    flash_bytes: FLASH_BYTES,
                    image: include_bytes!(concat!(env!("OUT_DIR"), "/device.img")),
                    public_key: PUBLIC_KEY,
                },
                arena,
            )
        }

        #[$crate::cortex_m_rt::exception]
        unsafe fn HardFault(ef: &$crate::cortex_m_rt::ExceptionFrame) -> ! {
            $crate::semihosting::println!("edgecl: hard fault at pc {:#010x}", ef.pc());
            $crate::semihosting::process::exit(3)
        }

        /// Feature `overflow`: recursion without end, to show that a stack overflow
        /// faults at the bottom of SRAM instead of running into the arena.
        #[cfg(feature = "overflow")]
        mod overflow {
            #[inline(never)]
            pub fn recurse(n: u32) -> u32 {
                let frame = core::hint::black_box([n; 64]);
                if n == 0 {
                    0
                } else {
                    recurse(n - 1).wrapping_add(frame[7])
                }
            }
        }
    };
}

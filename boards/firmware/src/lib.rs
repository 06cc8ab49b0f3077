//! What every edgecl board firmware shares: the board's signed device image verified with
//! the public key compiled in, the device loop ([`edgecl::device`]) over the embedded
//! sample stream, checkpoints in two slots of a NOR flash kept in a host file through
//! semihosting (QEMU's STM32F405 does not program its flash), lines out through
//! semihosting (QEMU, or a debug probe), the stack painted at start and measured at the
//! end, and the memory report.
//!
//! A board crate holds its memory layout (`memory.x`, or one per program), its
//! `.cargo/config.toml`, `board.toml` and `firmware.toml` (what its image in `boards/flash/`
//! was exported from), and one line of code: [`board_main!`]. Its build script (`boards/firmware/board_build.rs`, shared) turns
//! `board.toml` into the arena's size and picks the image and the public key.
#![no_std]

use core::ffi::CStr;
use core::fmt::{self, Write as _};
use edgecl::device::{self, signed, Checkpoints, DeviceError, Stream};
use edgecl::storage::{FileIo, FileNor, IoError, Slots};
use semihosting::io::{Read as _, Seek as _, SeekFrom, Write as _};

pub use cortex_m_rt;
pub use semihosting;

/// The sample stream every board embeds.
pub static STREAM: &[u8] = include_bytes!("../../flash/stream.bin");

/// The host file that holds the checkpoint flash, in QEMU's working folder.
pub const SLOTS_FILE: &CStr = c"edgecl-slots.bin";

/// Bytes of each checkpoint slot: one 128 KiB sector of the STM32F405's flash (sectors 10
/// and 11 on the board), the same geometry in the file.
pub const SLOT_BYTES: u32 = 128 * 1024;

/// The checkpoint flash under QEMU: two slots' sectors in [`SLOTS_FILE`].
pub type SlotFlash = FileNor<HostFile, { SLOT_BYTES as usize }>;

/// Creates (or empties) a host file for reading and writing (semihosting's "w+b").
fn create(path: &CStr) -> Option<semihosting::fs::File> {
    semihosting::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .ok()
}

/// A host file through semihosting, read and written by offset.
pub struct HostFile(semihosting::fs::File);

impl FileIo for HostFile {
    fn read_at(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), IoError> {
        self.0.seek(SeekFrom::Start(u64::from(offset))).map_err(|_| IoError)?;
        self.0.read_exact(buf).map_err(|_| IoError)
    }

    fn write_at(&mut self, offset: u32, bytes: &[u8]) -> Result<(), IoError> {
        self.0.seek(SeekFrom::Start(u64::from(offset))).map_err(|_| IoError)?;
        self.0.write_all(bytes).map_err(|_| IoError)
    }
}

/// Opens the checkpoint flash in `path`: as it is when it holds two slots' bytes, else
/// created (or re-made, saying why) with every sector erased. `None`, with the reason
/// printed, when the host refuses the file: the firmware then learns without
/// checkpoints.
pub fn open_slot_flash(path: &CStr, out: &mut impl fmt::Write) -> Option<SlotFlash> {
    let capacity = 2 * SLOT_BYTES;
    let existing = semihosting::fs::OpenOptions::new().read(true).write(true).open(path);
    let made = match existing {
        Ok(file) => match file.metadata().map(|m| m.len()) {
            Ok(len) if len == u64::from(capacity) => SlotFlash::open(HostFile(file), capacity),
            Ok(len) => {
                let _ = writeln!(
                    out,
                    "checkpoints: {} holds {len} B, not the {capacity} B of two slots: erased",
                    path.to_str().unwrap_or("the slot file")
                );
                SlotFlash::format(HostFile(file), capacity)
            }
            Err(_) => SlotFlash::format(HostFile(file), capacity),
        },
        Err(_) => match create(path) {
            Some(file) => SlotFlash::format(HostFile(file), capacity),
            None => {
                let _ = writeln!(
                    out,
                    "checkpoints: the host refused the slot file; learning without checkpoints"
                );
                return None;
            }
        },
    };
    match made {
        Ok(flash) => Some(flash),
        Err(e) => {
            let _ = writeln!(
                out,
                "checkpoints: the slot file cannot be used ({e:?}); learning without checkpoints"
            );
            None
        }
    }
}

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
        let mut slots = open_slot_flash(SLOTS_FILE, &mut out).and_then(|f| Slots::new(f, 0, SLOT_BYTES).ok());
        let saves = slots.as_mut().map(|s| Checkpoints {
            store: s,
            image: device::crc32(board.image),
        });
        device::run_with_baseline(
            &image.config,
            &backbone,
            Some(image.head),
            stream,
            arena,
            &mut out,
            saves,
        )?;
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

/// Runs the NOR conformance check (`edgecl::storage::conformance`) on the semihosting
/// flash in `path` (created and erased first) and exits: 0 when it keeps every rule,
/// 1 with the rule it broke.
pub fn nor_check(path: &CStr) -> ! {
    let mut out = Host;
    let Some(mut flash) = create(path).and_then(|f| SlotFlash::format(HostFile(f), 2 * SLOT_BYTES).ok()) else {
        let _ = writeln!(out, "nor-check: the host refused the file");
        semihosting::process::exit(1)
    };
    match edgecl::storage::conformance::check(&mut flash) {
        Ok(report) => {
            let _ = writeln!(out, "nor-check: the semihosting flash keeps NOR's rules ({report})");
            semihosting::process::exit(0)
        }
        Err(e) => {
            let _ = writeln!(out, "nor-check: {e}");
            semihosting::process::exit(1)
        }
    }
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
        #[allow(unreachable_code)] // with `nor-check` (or `overflow`), main stops early
        fn main() -> ! {
            // SAFETY: first thing in main; nothing lives below the stack pointer yet.
            unsafe { $crate::paint_stack() };
            #[cfg(feature = "overflow")]
            overflow::recurse(1_000_000);
            #[cfg(feature = "nor-check")]
            $crate::nor_check(c"edgecl-nor-check.bin");
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

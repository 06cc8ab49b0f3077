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
pub use static_cell;

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
    /// The sample stream it learns from (the build script's pick: `boards/flash/stream.bin`
    /// unless `EDGECL_FIRMWARE_STREAM` names another).
    pub stream: &'static [u8],
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
/// config from its initial head over the stream and (with `baseline`) the fine-tune
/// baseline in `arena`,
/// then prints the memory report. Exit status 0, or 2 with the error's message (an
/// image signed by another key, an over-budget config...).
pub fn run(board: &BoardInfo, arena: &'static mut [u8], baseline: bool) -> ! {
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
        let stream = Stream::parse(board.stream)?;
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
            baseline,
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

/// The steps the cost meter times, in the order it prints them.
const STEPS: [(device::Step, &str); 5] = [
    (device::Step::Features, "backbone, one sample"),
    (device::Step::Update, "updates on one batch"),
    (device::Step::Predict, "head predictions, one batch"),
    (device::Step::Save, "checkpoint save"),
    (device::Step::Restore, "boot check and restore"),
];

/// The SysTick counter's mask: it counts down through 24 bits.
const SYST_MASK: u32 = 0x00FF_FFFF;

/// A [`device::DeviceIo`] that times each step of the loop with SysTick (on the core
/// clock), around another one. Under `qemu-system-arm -icount shift=0` QEMU's clock moves
/// 1 ns per instruction, so the ticks count instructions (see [`cost`]); a step must take
/// under 2^24 ticks (about 100 million instructions).
pub struct Meter<I> {
    inner: I,
    /// Held while the meter reads it.
    _syst: cortex_m::peripheral::SYST,
    started: u32,
    /// Per step: calls, total ticks, fewest and most ticks of one call.
    spent: [(u64, u64, u32, u32); 5],
}

impl<I> Meter<I> {
    fn now(&self) -> u32 {
        cortex_m::peripheral::SYST::get_current() & SYST_MASK
    }
}

impl<I: device::DeviceIo> device::DeviceIo for Meter<I> {
    fn next(&mut self, pixels: &mut [u8]) -> Result<device::Event, DeviceError> {
        self.inner.next(pixels)
    }
    fn holdout_tasks(&self) -> usize {
        self.inner.holdout_tasks()
    }
    fn holdout_len(&self, task: usize) -> usize {
        self.inner.holdout_len(task)
    }
    fn holdout(&mut self, task: usize, i: usize, pixels: &mut [u8]) -> Result<u16, DeviceError> {
        self.inner.holdout(task, i, pixels)
    }
    fn seek(&mut self, events: u64) -> Result<(), DeviceError> {
        self.inner.seek(events)
    }
    fn status(&mut self, status: device::Status) {
        self.inner.status(status)
    }
    fn print(&mut self, args: fmt::Arguments<'_>) {
        self.inner.print(args)
    }
    fn begin(&mut self, _step: device::Step) {
        self.started = self.now();
    }
    fn end(&mut self, step: device::Step) {
        // SysTick counts down and wraps at 2^24.
        let ticks = self.started.wrapping_sub(self.now()) & SYST_MASK;
        if let Some(i) = STEPS.iter().position(|(s, _)| *s == step) {
            let e = &mut self.spent[i];
            *e = (
                e.0 + 1,
                e.1 + u64::from(ticks),
                if e.0 == 0 { ticks } else { e.2.min(ticks) },
                e.3.max(ticks),
            );
        }
    }
}

/// Feature `cost`: runs the image's config once over the stream (with checkpoints, in a
/// fresh `edgecl-cost-slots.bin`) with every step of the loop timed by SysTick, and
/// prints ticks and instructions per step. Run it under `-icount shift=0`: QEMU's clock
/// then moves 1 ns per instruction and SysTick ticks at the core's 168 MHz, so
/// instructions = ticks x 1e9 / 168e6; a calibration loop of a known instruction count
/// (`cortex_m::asm::delay(n)`: n + 1 passes of `subs; bne`) checks the ratio in the same
/// run. Without `-icount` the ticks follow the host's clock and mean nothing.
pub fn cost(board: &BoardInfo, arena: &'static mut [u8], clock_mhz: u32) -> ! {
    use cortex_m::peripheral::syst::SystClkSource;
    let mut out = Host;
    let Some(mut p) = cortex_m::Peripherals::take() else {
        let _ = writeln!(out, "cost: the core peripherals are taken");
        semihosting::process::exit(1)
    };
    p.SYST.set_clock_source(SystClkSource::Core);
    p.SYST.set_reload(SYST_MASK);
    p.SYST.clear_current();
    p.SYST.enable_counter();
    let mut meter = Meter {
        inner: (),
        _syst: p.SYST,
        started: 0,
        spent: [(0, 0, 0, 0); 5],
    };
    // Calibration: 2 (n + 1) instructions.
    let n = 500_000u32;
    let t0 = meter.now();
    cortex_m::asm::delay(n);
    let calibration = t0.wrapping_sub(meter.now()) & SYST_MASK;
    let insns = 2 * (u64::from(n) + 1);
    let per_ns = f64::from(clock_mhz) / 1000.0;
    let _ = writeln!(
        out,
        "cost: calibration: {insns} instructions took {calibration} ticks ({:.4} per instruction; {per_ns:.4} expected at 1 ns per instruction and {clock_mhz} MHz)",
        f64::from(calibration) / insns as f64
    );
    let result = (|| -> Result<(device::RunSummary, usize), DeviceError> {
        let image = signed::verify(board.image, &board.public_key, board.name, arena.len())?;
        let backbone = image
            .backbone
            .ok_or(DeviceError::Mismatch("the device image carries no backbone"))?;
        let stream = Stream::parse(board.stream)?;
        let mut slots = create(c"edgecl-cost-slots.bin")
            .and_then(|f| SlotFlash::format(HostFile(f), 2 * SLOT_BYTES).ok())
            .and_then(|f| Slots::new(f, 0, SLOT_BYTES).ok());
        let saves = slots.as_mut().map(|s| Checkpoints {
            store: s,
            image: device::crc32(board.image),
        });
        let mut io = Meter {
            inner: device::StreamIo::new(stream, Host),
            _syst: meter._syst,
            started: 0,
            spent: [(0, 0, 0, 0); 5],
        };
        let summary = device::run_with(&image.config, &backbone, Some(image.head), arena, &mut io, saves)?;
        meter.spent = io.spent;
        Ok((summary, image.config.repeats))
    })();
    let (summary, repeats) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(out, "edgecl: {e}");
            semihosting::process::exit(2)
        }
    };
    for ((_, name), (calls, ticks, min, max)) in STEPS.iter().zip(meter.spent) {
        if calls == 0 {
            continue;
        }
        let mean = ticks as f64 / calls as f64;
        let _ = writeln!(
            out,
            "cost: {name}: {calls} calls, {mean:.0} ticks each ({min}..{max}), {:.0} instructions",
            mean / per_ns
        );
    }
    let (calls, ticks, _, _) = meter.spent[1];
    if calls > 0 {
        let _ = writeln!(
            out,
            "cost: one train step (of {repeats} per batch): {:.0} instructions; {} updates in all",
            ticks as f64 / calls as f64 / repeats as f64 / per_ns,
            summary.updates
        );
    }
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
        // Zeroed in .bss; `take` hands it out once, as `&'static mut`.
        static ARENA: $crate::static_cell::ConstStaticCell<ArenaBytes> =
            $crate::static_cell::ConstStaticCell::new(ArenaBytes([0; ARENA_BYTES]));

        #[$crate::cortex_m_rt::entry]
        #[allow(unreachable_code)] // with `nor-check` (or `overflow`), main stops early
        fn main() -> ! {
            // SAFETY: first thing in main; nothing lives below the stack pointer yet.
            unsafe { $crate::paint_stack() };
            #[cfg(feature = "overflow")]
            overflow::recurse(1_000_000);
            #[cfg(feature = "nor-check")]
            $crate::nor_check(c"edgecl-nor-check.bin");
            let board = $crate::BoardInfo {
                name: BOARD,
                ram_bytes: RAM_BYTES,
                flash_bytes: FLASH_BYTES,
                image: include_bytes!(concat!(env!("OUT_DIR"), "/device.img")),
                public_key: PUBLIC_KEY,
                stream: include_bytes!(concat!(env!("OUT_DIR"), "/stream.bin")),
            };
            let arena = &mut ARENA.take().0;
            #[cfg(feature = "cost")]
            $crate::cost(&board, arena, CLOCK_MHZ);
            // Feature `no-baseline`: only the config runs (the tests that reboot it).
            $crate::run(&board, arena, !cfg!(feature = "no-baseline"))
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

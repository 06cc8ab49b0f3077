//! The program for the chip itself (feature `hal`): the device loop over a sensor, a
//! button and a LED through stm32f4xx-hal, lines over RTT.
//!
//! At start: SYSCLK to 168 MHz from the board's 25 MHz crystal, the header's power on
//! (PB2), I2C1 at 400 kHz on PB6 (SCL) / PB7 (SDA), the user button (PB11, high while
//! pressed) and the blue user LED (PA10). The signed device image compiled in is verified
//! with the public key compiled in; then [`edgecl::device::run_with`] restores the newest
//! checkpoint of this image from the slots (or starts from the image's head) and learns
//! `config.tasks` tasks of [`SAMPLES_PER_TASK`] frames, each frame read from the sensor
//! at [`SENSOR_ADDRESS`] with the button as its label (see `edgecl::device::hal`). The
//! checkpoint slots over flash sectors 10 and 11 ([`crate::flash`]) keep what it learned
//! across resets (every `checkpoint_every` updates, after each task, at the end). With feature `selftest`, those sectors are first erased and put through
//! `edgecl::storage::conformance::check`.
//!
//! When it ends the LED goes off and the chip sleeps; on an error the message is printed
//! and the LED blinks. Panics and hard faults print over RTT and stop: nothing needs a
//! debugger attached (no semihosting).
#![deny(unsafe_code)]

use crate::flash::{SlotFlash, SLOT_BYTES, SLOT_REGION_ADDRESS, SLOT_REGION_BYTES};
use core::fmt::{self, Write as _};
use cortex_m_rt::{entry, exception, ExceptionFrame};
use edgecl::device::{self, hal::HalIo, signed, Checkpoints, DeviceError};
use edgecl::storage::Slots;
use edgecl_firmware::static_cell::ConstStaticCell;
use rtt_target::{rprint, rprintln, rtt_init_print, ChannelMode};
use stm32f4xx_hal::gpio::{Output, PinState, PA10};
use stm32f4xx_hal::i2c::I2c;
use stm32f4xx_hal::pac;
use stm32f4xx_hal::prelude::*;
use stm32f4xx_hal::rcc::Config;

include!(concat!(env!("OUT_DIR"), "/board.rs"));
include!(concat!(env!("OUT_DIR"), "/key.rs"));

/// The signed device image (config, initial head, backbone) the build script picked.
static IMAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/device.img"));

/// The Netduino Plus 2's crystal (HSE), in MHz.
const HSE_MHZ: u32 = 25;
/// SYSCLK, the F405's maximum, in MHz.
const SYSCLK_MHZ: u32 = 168;
/// The sensor's 7-bit I2C address.
pub const SENSOR_ADDRESS: u8 = 0x68;
/// I2C1's clock, in kHz (fast mode).
const I2C_KHZ: u32 = 400;
/// Labelled frames per task: the size of a task of the test stream (`boards/flash/stream.bin`).
pub const SAMPLES_PER_TASK: usize = 200;
/// Bytes of the RTT up channel the lines go through.
const RTT_BUFFER: usize = 1024;

/// The blue user LED.
type Led = PA10<Output>;

#[repr(C, align(16))]
struct ArenaBytes([u8; ARENA_BYTES]);

/// The learner's arena, zeroed in .bss and handed out once.
static ARENA: ConstStaticCell<ArenaBytes> = ConstStaticCell::new(ArenaBytes([0; ARENA_BYTES]));

/// Lines out through RTT channel 0 (dropped while no probe reads them and the buffer is
/// full: the loop never waits for a host).
struct Rtt;

impl fmt::Write for Rtt {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        rprint!("{}", s);
        Ok(())
    }
}

#[entry]
fn main() -> ! {
    #[allow(unsafe_code)]
    // SAFETY: first thing in main; nothing lives below the stack pointer yet.
    unsafe {
        edgecl_firmware::paint_stack()
    };
    rtt_init_print!(ChannelMode::NoBlockSkip, RTT_BUFFER);
    let mut out = Rtt;
    let Some(dp) = pac::Peripherals::take() else {
        rprintln!("edgecl: the peripherals are taken");
        sleep()
    };
    let mut rcc = dp.RCC.freeze(Config::hse(HSE_MHZ.MHz()).sysclk(SYSCLK_MHZ.MHz()));
    let gpioa = dp.GPIOA.split(&mut rcc);
    let gpiob = dp.GPIOB.split(&mut rcc);
    // PB2 switches the power of the header's 3.3 V and 5 V pins, the sensor's supply.
    let _header_power = gpiob.pb2.into_push_pull_output_in_state(PinState::High);
    let mut led = gpioa.pa10.into_push_pull_output();
    // The board pulls PB11 down and the button pulls it up; the internal pull-down keeps it
    // low with the board's resistor missing too.
    let button = gpiob.pb11.into_pull_down_input();
    let i2c = I2c::new(dp.I2C1, (gpiob.pb6, gpiob.pb7), I2C_KHZ.kHz(), &mut rcc);
    let flash = SlotFlash::new(dp.FLASH);
    let arena = &mut ARENA.take().0;
    let _ = writeln!(
        out,
        "edgecl firmware on {BOARD} (hal): SYSCLK {} MHz, arena {} B at {:#010x}; flash {} B for code, 2 checkpoint slots of {} B at {:#010x}",
        rcc.clocks.sysclk().to_MHz(),
        arena.len(),
        arena.as_ptr() as usize,
        FLASH_BYTES - SLOT_REGION_BYTES as usize,
        SLOT_BYTES,
        SLOT_REGION_ADDRESS,
    );

    #[cfg(feature = "selftest")]
    let flash = match selftest(flash, &mut out) {
        Ok(flash) => flash,
        Err(e) => fail(&e, &mut led),
    };

    let image = match signed::verify(IMAGE, &PUBLIC_KEY, BOARD, arena.len()) {
        Ok(image) => image,
        Err(e) => fail(&e, &mut led),
    };
    let Some(backbone) = image.backbone else {
        fail(&DeviceError::Mismatch("the device image carries no backbone"), &mut led)
    };
    // The checkpoint slots: restored at start, saved every `checkpoint_every` updates,
    // after each task and at the end; kept across resets and power cuts.
    let mut slots = match Slots::new(flash, 0, SLOT_BYTES) {
        Ok(slots) => slots,
        Err(e) => fail(&e, &mut led),
    };
    let mut io = HalIo::new(
        i2c,
        SENSOR_ADDRESS,
        button,
        led,
        Rtt,
        SAMPLES_PER_TASK,
        image.config.tasks,
    );
    let saves = Checkpoints {
        store: &mut slots,
        image: device::crc32(IMAGE),
    };
    let result = device::run_with(&image.config, &backbone, Some(image.head), arena, &mut io, Some(saves));
    let (_, _, mut led, _) = io.release();
    if let Err(e) = result {
        fail(&e, &mut led)
    }
    let _ = writeln!(
        out,
        "memory: arena {} B + stack peak {} B of the board's {RAM_BYTES} B RAM; done",
        ARENA_BYTES,
        edgecl_firmware::stack_peak()
    );
    led.set_low();
    sleep()
}

/// Feature `selftest`: erases the checkpoint sectors and checks them against NOR's rules.
#[cfg(feature = "selftest")]
fn selftest(mut flash: SlotFlash, out: &mut Rtt) -> Result<SlotFlash, edgecl::storage::conformance::CheckError> {
    let _ = writeln!(
        out,
        "selftest: erasing sectors 10 and 11 and checking them (5 sector erases, up to 10 s)"
    );
    let report = edgecl::storage::conformance::check(&mut flash)?;
    let _ = writeln!(out, "selftest: {report}");
    Ok(flash)
}

/// Prints `why` and blinks the LED at 2 Hz, for good.
fn fail(why: &dyn fmt::Display, led: &mut Led) -> ! {
    rprintln!("edgecl: {}", why);
    let half_period = SYSCLK_MHZ * 1_000_000 / 4;
    loop {
        led.set_high();
        cortex_m::asm::delay(half_period);
        led.set_low();
        cortex_m::asm::delay(half_period);
    }
}

/// Sleeps for good.
fn sleep() -> ! {
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    cortex_m::interrupt::disable();
    rprintln!("edgecl: {}", info);
    sleep()
}

#[allow(unsafe_code)]
#[exception]
unsafe fn HardFault(ef: &ExceptionFrame) -> ! {
    rprintln!("edgecl: hard fault at pc {:#010x}", ef.pc());
    sleep()
}

//! Fitting a cell to its board: the replay generator's size that leaves the head its floor,
//! and the flash a deployment needs.

use crate::device::signed;
use crate::host::board::Board;
use crate::host::simulate::{self, GeneratorChoice, Options, Protocol};
use crate::learner::Plan;
use serde::Serialize;

/// Narrowest hidden layer the fitting rule leaves the edge head beside a generator.
pub const HEAD_FLOOR: usize = 8;

/// Highest Gaussian rank the fitting rule tries.
pub const MAX_RANK: usize = 16;

/// VAE hidden widths the fitting rule tries, widest first.
pub const VAE_WIDTHS: [usize; 6] = [256, 128, 64, 32, 16, 8];

/// The sweep's fitting rule for a strategy with a generator, which shares the budget
/// with the head (every other part of a plan follows from the head's width, which
/// [`simulate::learner_config`] makes the widest that fits).
///
/// The generator takes the largest size whose plan still leaves the head [`HEAD_FLOOR`]
/// hidden units: the Gaussian's rank from [`MAX_RANK`] down to 0 (the buffer holds the
/// rows that fit the Gaussian's bytes at that rank), or the VAE's hidden width from
/// [`VAE_WIDTHS`]. When no size leaves the floor, the smallest is taken with the widest
/// head that fits (which may not fit at all). A head fixed by `--hidden` is kept and the
/// largest generator that fits beside it is taken. Measured on Split-MNIST class-IL, 64 KiB:
/// the rank that starves the head to 2 units (rank 8) loses 25 points against rank 2
/// (8 units); see the README.
pub fn fit_generator(opts: &mut Options, inputs: usize, outputs: usize, tasks: usize) {
    if !opts.strategy.replays() {
        return;
    }
    let head_floor = if opts.hidden.is_some() { 0 } else { HEAD_FLOOR };
    let leaves_floor = |o: &Options| {
        let Ok(c) = simulate::learner_config(o, inputs, outputs, tasks) else {
            return false;
        };
        let fits = Plan::new(&c).is_ok_and(|p| p.total() <= o.budget);
        let dims = c.dims.as_slice();
        let hidden = if dims.len() > 2 { dims[1] } else { 0 };
        fits && (opts.protocol != Protocol::Edge || hidden >= head_floor)
    };
    match opts.replay.generator {
        GeneratorChoice::Gaussian | GeneratorChoice::Buffer => {
            let rank = (0..=MAX_RANK)
                .rev()
                .find(|&r| {
                    let mut o = opts.clone();
                    o.replay.rank = r;
                    leaves_floor(&o)
                })
                .unwrap_or(0);
            opts.replay.rank = rank;
        }
        GeneratorChoice::Vae => {
            let smallest = VAE_WIDTHS[VAE_WIDTHS.len() - 1];
            let width = VAE_WIDTHS
                .iter()
                .copied()
                .find(|&w| {
                    let mut o = opts.clone();
                    o.replay.vae_hidden = Some(w);
                    leaves_floor(&o)
                })
                .unwrap_or(smallest);
            opts.replay.vae_hidden = Some(width);
        }
    }
}

/// Bytes a learner's checkpoint slots are rounded up to (a NOR sector; the profiles do not
/// give the chips' own sector sizes).
pub const SECTOR: usize = 4096;

/// What a cell needs of a board's flash: the firmware without its data, the signed device
/// image (header, config, the head's f32 weights and biases, the int8 backbone on MCU
/// boards, signature) and two checkpoint slots.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FlashNeed {
    /// The board's firmware less the test stream and the device image, from its profile
    /// (`firmware_base_bytes`, measured by `boards/size-report`); `None` when the board has
    /// no firmware measured, and then not counted.
    pub firmware_bytes: Option<usize>,
    /// The signed device image.
    pub image_bytes: usize,
    /// Two checkpoint slots, each the arena's bytes (no checkpoint is larger: scratch is
    /// not saved) rounded up to [`SECTOR`].
    pub checkpoint_bytes: usize,
    /// The sum.
    pub total_bytes: usize,
    /// The board's flash.
    pub flash_bytes: usize,
    /// `total_bytes <= flash_bytes`.
    pub fits: bool,
}

/// Bytes of config text a device image is planned with (the shipped configs are under 600).
pub const CONFIG_BYTES: usize = 1024;

/// The flash a learner of `head_parameters` weights and biases in an arena of
/// `arena_bytes` needs on `board`, with a device backbone image of `backbone_bytes`
/// (0 on Linux boards, which run the ONNX backbone with tract).
pub fn flash_need(board: &Board, head_parameters: usize, arena_bytes: usize, backbone_bytes: usize) -> FlashNeed {
    let firmware_bytes = board
        .firmware_base_bytes
        .map(|b| usize::try_from(b).unwrap_or(usize::MAX));
    let image_bytes = signed::HEADER + CONFIG_BYTES + 4 * head_parameters + backbone_bytes + signed::SIGNATURE;
    let checkpoint_bytes = 2 * arena_bytes.div_ceil(SECTOR) * SECTOR;
    let total_bytes = firmware_bytes.unwrap_or(0) + image_bytes + checkpoint_bytes;
    let flash_bytes = usize::try_from(board.flash_bytes).unwrap_or(usize::MAX);
    FlashNeed {
        firmware_bytes,
        image_bytes,
        checkpoint_bytes,
        total_bytes,
        flash_bytes,
        fits: total_bytes <= flash_bytes,
    }
}

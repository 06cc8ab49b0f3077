//! Host side of the device loop ([`crate::device`]): the int8 backbone image made from an
//! ONNX model of convolutions (over images or over time) and dense layers, with its
//! calibrated activation ranges; the sample stream image made from an IDX dataset (pixels,
//! or sensor windows quantised by the device's own code); and the firmware's run
//! reproduced on the host from a board folder (`edgecl simulate --firmware boards/B`), with
//! the very code the firmware runs.

mod keys;
mod quantise;
mod stream;

pub use keys::{from_hex32, key_file_text, keygen, public_key, read_key_file, to_hex, KeyKind};
#[cfg(feature = "onnx")]
pub use quantise::{backbone_image, backbone_image_bytes, calibrate, calibrated_layers, model_backbone_image};
pub use quantise::{read_calibration, CALIBRATION_FILE};
pub use stream::{stream_image, window_stream_image, StreamSpec};

use crate::device::{self, Backbone, Checkpoints, DeviceConfig, Stream};
use crate::host::board::Board;
use crate::storage::{MockNor, Slots};
use anyhow::{ensure, Context, Result};
use std::path::{Path, PathBuf};

/// A board folder with firmware, as the firmware sees it: its profile, the signed device
/// image it embeds (`boards/flash/<board>.img`: config, initial head, backbone), the
/// public key it verifies that image with (`boards/dev-key.pub` unless built with
/// another), and the sample stream (`boards/flash/stream.bin`).
#[derive(Debug)]
pub struct FirmwareDir {
    /// The board's profile (`board.toml`).
    pub board: Board,
    /// The signed device image.
    pub image: Vec<u8>,
    /// The public key the image must verify with.
    pub public_key: [u8; 32],
    /// A config text run instead of the image's (host experiments; no signature).
    pub config: Option<String>,
    /// The stream image.
    pub stream: Vec<u8>,
}

/// Bytes of each of the firmware's two checkpoint slots: two 128 KiB sectors of the
/// STM32F405's flash on the board, a file through semihosting in QEMU.
pub const FIRMWARE_SLOT: u32 = 128 * 1024;

/// Where the flash images of the firmware live, relative to a board folder.
pub const FLASH_DIR: &str = "../flash";

/// The development key's public half, relative to a board folder.
pub const DEV_PUBLIC_KEY: &str = "../dev-key.pub";

impl FirmwareDir {
    /// Reads `dir/board.toml`, the board's signed image and the stream in `dir/../flash/`
    /// and the development public key; `config` (a file) replaces the image's config
    /// for an experiment on the host.
    pub fn load(dir: &Path, config: Option<&Path>) -> Result<Self> {
        let read = |p: PathBuf| std::fs::read(&p).with_context(|| format!("reading {}", p.display()));
        let board = Board::load(&dir.join("board.toml").display().to_string())?;
        let key = String::from_utf8(read(dir.join(DEV_PUBLIC_KEY))?).context("the public key is not text")?;
        let config = match config {
            Some(p) => Some(
                String::from_utf8(read(p.to_path_buf())?).with_context(|| format!("{} is not UTF-8", p.display()))?,
            ),
            None => None,
        };
        Ok(FirmwareDir {
            image: read(dir.join(FLASH_DIR).join(format!("{}.img", board.name)))?,
            public_key: read_key_file(&key, KeyKind::Public, DEV_PUBLIC_KEY)?,
            config,
            stream: read(dir.join(FLASH_DIR).join("stream.bin"))?,
            board,
        })
    }

    /// Another signed `image` and another sample `stream` (files), as the firmware's build
    /// takes them from `EDGECL_FIRMWARE_IMAGE` and `EDGECL_FIRMWARE_STREAM`.
    pub fn replace(&mut self, image: Option<&Path>, stream: Option<&Path>) -> Result<()> {
        let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
        if let Some(p) = image {
            self.image = read(p)?;
        }
        if let Some(p) = stream {
            self.stream = read(p)?;
        }
        Ok(())
    }

    /// Runs the firmware's loop on the host in an arena of the board's learner budget,
    /// after the firmware's checks of its image: the lines the firmware prints between
    /// its banner and its memory report.
    pub fn simulate(&self) -> Result<String> {
        let fail = |out: &str, e: device::DeviceError| anyhow::anyhow!("{out}edgecl: {e}");
        let image = device::signed::verify(&self.image, &self.public_key, &self.board.name, self.board.budget())
            .map_err(|e| fail("", e))?;
        let backbone = image
            .backbone
            .ok_or_else(|| anyhow::anyhow!("edgecl: the image carries no backbone"))?;
        let (config, head) = match &self.config {
            Some(text) => (
                DeviceConfig::parse(text).map_err(|e| anyhow::anyhow!("edgecl: {e}"))?,
                None,
            ),
            None => (image.config, Some(image.head)),
        };
        let stream = Stream::parse(&self.stream).map_err(|e| fail("", e))?;
        let mut arena = vec![0u8; self.board.budget()];
        let mut out = String::new();
        // The firmware's checkpoint slots, erased, as at its first boot.
        let mut slots = Slots::new(MockNor::new(2 * FIRMWARE_SLOT as usize), 0, FIRMWARE_SLOT)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let saves = Checkpoints {
            store: &mut slots,
            image: device::crc32(&self.image),
        };
        match device::run_with_baseline(
            &config,
            &backbone,
            head,
            stream,
            &mut arena,
            &mut out,
            Some(saves),
            true,
        ) {
            Ok(_) => Ok(out),
            Err(e) => Err(fail(&out, e)),
        }
    }
}

/// How far the device's int8 backbone is from tract running the f32 ONNX model.
#[derive(Debug, Clone, Copy)]
pub struct TractCheck {
    /// Samples compared (the stream's held-out ones).
    pub samples: usize,
    /// Largest `|device - tract|` over every feature of every sample.
    pub max_abs_difference: f32,
    /// Largest feature tract computed.
    pub max_feature: f32,
}

/// Runs the stream's held-out samples through the device backbone (its own kernels, int8)
/// and through tract (the ONNX model in f32), on the same pixels (a window: on the values
/// its i8 bytes stand for, [`Backbone::dequantise_window`]).
#[cfg(feature = "onnx")]
pub fn check_against_tract(onnx: &[u8], backbone: &[u8], stream: &[u8]) -> Result<TractCheck> {
    let tract = crate::host::onnx::Backbone::from_bytes(onnx, "backbone.onnx")?;
    let device = Backbone::parse(backbone).map_err(|e| anyhow::anyhow!("{e}"))?;
    let stream = Stream::parse(stream).map_err(|e| anyhow::anyhow!("{e}"))?;
    ensure!(
        tract.input_width() == device.input() && stream.width() == device.input(),
        "backbone and stream widths differ"
    );
    let (w, f) = (device.input(), device.output());
    let n = stream.tasks() * stream.test_per_task();
    let mut pixels = vec![0u8; w];
    let mut x = ndarray::Array2::<f32>::zeros((n, w));
    let mut ours = vec![0.0f32; n * f];
    let mut scratch = vec![0.0f32; device.scratch_len()];
    for t in 0..stream.tasks() {
        for i in 0..stream.test_per_task() {
            let r = t * stream.test_per_task() + i;
            stream
                .test_sample(t, i, &mut pixels)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if device.takes_windows() {
                let mut row = vec![0.0f32; w];
                device
                    .dequantise_window(&pixels, &mut row)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                x.row_mut(r).assign(&ndarray::ArrayView1::from(&row));
            } else {
                for (v, &p) in x.row_mut(r).iter_mut().zip(&pixels) {
                    *v = f32::from(p) / 255.0;
                }
            }
            device
                .features(&pixels, &mut ours[r * f..(r + 1) * f], &mut scratch)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
    }
    let theirs = tract.features(x.view())?;
    Ok(TractCheck {
        samples: n,
        max_abs_difference: crate::host::onnx::max_abs_difference(&ours, theirs.iter()),
        max_feature: theirs.iter().fold(0.0f32, |m, v| m.max(v.abs())),
    })
}

/// A signed device image for `board`: `config_text`'s config (as postcard bytes), the
/// head's seeded initial weights (the learner's own initialisation from the config's
/// seed), and `backbone` (an int8 image; empty for boards that run the ONNX backbone
/// with tract) whose feature width is `features`. Refused when the learner does not fit the board's budget.
pub fn device_image(
    board: &Board,
    config_text: &str,
    backbone: &[u8],
    features: usize,
    secret: &[u8; 32],
) -> Result<Vec<u8>> {
    let config = DeviceConfig::parse(config_text)?;
    let learner_config = config.learner(features).map_err(|e| anyhow::anyhow!("{e}"))?;
    let needed = if backbone.is_empty() {
        crate::learner::Plan::new(&learner_config)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .total()
    } else {
        let b = Backbone::parse(backbone).map_err(|e| anyhow::anyhow!("{e}"))?;
        ensure!(
            b.output() == features,
            "the backbone has {} features, not {features}",
            b.output()
        );
        device::plan(&config, &b).map_err(|e| anyhow::anyhow!("{e}"))?.total
    };
    ensure!(
        needed <= board.budget(),
        "over budget: the config needs {needed} bytes, {} has a {} byte learner budget",
        board.name,
        board.budget()
    );
    let head = initial_head(&learner_config)?;
    let mut buf = [0u8; DeviceConfig::MAX_BYTES];
    let config_bytes = config.to_bytes(&mut buf).map_err(|e| anyhow::anyhow!("{e}"))?;
    sign_image(&board.name, config_bytes, &head, backbone, secret)
}

/// The head's initial weights then biases (f32 little-endian) of a learner built from
/// `config`: its seeded initialisation, the one the simulator starts from.
pub fn initial_head(config: &crate::learner::LearnerConfig) -> Result<Vec<u8>> {
    let plan = crate::learner::Plan::new(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut arena = vec![0u8; plan.total()];
    let learner = crate::learner::Learner::new(config, &mut arena).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(learner
        .weights()
        .iter()
        .chain(learner.biases())
        .flat_map(|v| v.to_le_bytes())
        .collect())
}

/// A device image of the given parts signed with `secret`, without the checks
/// [`device_image`] makes (for tests of what the firmware refuses).
pub fn sign_image(board: &str, config: &[u8], head: &[u8], backbone: &[u8], secret: &[u8; 32]) -> Result<Vec<u8>> {
    let header = device::signed::header(board, config, head, backbone).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut image = header.to_vec();
    image.extend_from_slice(config);
    image.extend_from_slice(head);
    image.extend_from_slice(backbone);
    let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(*secret));
    let signature = pair.sk.sign(&image, None);
    image.extend_from_slice(&signature[..]);
    Ok(image)
}

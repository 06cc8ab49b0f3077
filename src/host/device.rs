//! Host side of the device loop ([`crate::device`]): the int8 backbone image made from an
//! ONNX model of convolutions (over images or over time) and dense layers, with its
//! calibrated activation ranges; the sample stream image made from an IDX dataset (pixels,
//! or sensor windows quantised by the device's own code); and the firmware's run
//! reproduced on the host from a board folder (`edgecl simulate --firmware boards/B`), with
//! the very code the firmware runs.

use crate::device::{self, Backbone, Checkpoints, DeviceConfig, Stream};
use crate::host::board::Board;
use crate::host::idx::Dataset;
#[cfg(feature = "onnx")]
use crate::host::onnx::{BackboneModel, Layer};
use crate::learner::rng::Rng;
use crate::storage::{MockNor, Slots};
use anyhow::{bail, ensure, Context, Result};
use std::path::{Path, PathBuf};

/// A device layer's kind (the image's layer kind byte).
#[cfg(feature = "onnx")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// 2-D convolution, square kernel (1).
    Conv,
    /// Dense (2).
    Dense,
    /// 1-D convolution over time on a one-row map (3).
    Conv1d,
}

/// One layer of the device image, grouped from a model's layers: a convolution with its
/// ReLU and max-pool, or a dense layer with its ReLU.
#[cfg(feature = "onnx")]
#[derive(Debug, Clone, Copy)]
struct DeviceLayer<'m> {
    kind: Kind,
    weights: &'m [f32],
    biases: &'m [f32],
    inputs: usize,
    outputs: usize,
    kernel: usize,
    pad: usize,
    relu: bool,
    pool: bool,
    /// Input map rows and columns (1 x 1 for dense).
    h: usize,
    w: usize,
}

#[cfg(feature = "onnx")]
impl DeviceLayer<'_> {
    fn conv(&self) -> bool {
        self.kind != Kind::Dense
    }

    /// Kernel rows and columns, padding rows and columns, pool rows.
    fn geometry(&self) -> ((usize, usize), (usize, usize), usize) {
        let (k, p) = (self.kernel, self.pad);
        match self.kind {
            Kind::Conv => ((k, k), (p, p), 2),
            Kind::Conv1d => ((1, k), (0, p), 1),
            Kind::Dense => ((1, 1), (0, 0), 1),
        }
    }

    /// Convolution output rows and columns before the pool.
    fn conv_hw(&self) -> (usize, usize) {
        let ((kh, kw), (ph, pw), _) = self.geometry();
        (self.h + 2 * ph + 1 - kh, self.w + 2 * pw + 1 - kw)
    }

    fn out_hw(&self) -> (usize, usize) {
        let (oh, ow) = self.conv_hw();
        let (_, _, rows) = self.geometry();
        if self.pool {
            (oh / rows, ow / 2)
        } else {
            (oh, ow)
        }
    }

    fn fan_in(&self) -> usize {
        let ((kh, kw), _, _) = self.geometry();
        self.inputs * kh * kw
    }
}

/// A device backbone's input: an image's `(channels, rows, columns)` of u8 pixels, or a
/// sensor window of `columns` steps of `channels` values normalised with `norm`'s
/// per-channel mean and scale.
#[cfg(feature = "onnx")]
#[derive(Debug, Clone, Copy)]
struct Input<'m> {
    shape: (usize, usize, usize),
    norm: Option<(&'m [f32], &'m [f32])>,
}

/// The model's input and its device layers: `Image` or `Window` first (or a flat input),
/// then `Conv [Relu] [MaxPool2]` or `Conv1d [Relu] [MaxPool1d2]` (pool and ReLU in either
/// order), `Flatten`, `Dense [Relu]`.
#[cfg(feature = "onnx")]
fn device_layers(model: &BackboneModel) -> Result<(Input<'_>, Vec<DeviceLayer<'_>>)> {
    let mut it = model.layers.iter().peekable();
    let input = match it.peek() {
        Some(Layer::Image {
            channels,
            height,
            width,
        }) => {
            it.next();
            Input {
                shape: (*channels, *height, *width),
                norm: None,
            }
        }
        Some(Layer::Window {
            steps,
            channels,
            mean,
            scale,
        }) => {
            it.next();
            ensure!(
                mean.len() == *channels && scale.len() == *channels && scale.iter().all(|s| s.is_finite() && *s > 0.0),
                "the window's normalisation is not one mean and one positive scale per channel"
            );
            Input {
                shape: (*channels, 1, *steps),
                norm: Some((mean, scale)),
            }
        }
        _ => Input {
            shape: (1, 1, model.input_width),
            norm: None,
        },
    };
    let (c0, h0, w0) = input.shape;
    ensure!(
        c0 * h0 * w0 == model.input_width && c0.max(h0).max(w0) <= 65535,
        "the backbone's input is not an image or window of at most 65535 rows, columns (steps) and channels"
    );
    let (mut c, mut h, mut w, mut flat) = (c0, h0, w0, h0 == 1 && w0 == 1);
    let mut out = Vec::new();
    while let Some(layer) = it.next() {
        let conv = |kind, weights, biases, inputs: &usize, outputs: &usize, kernel: &usize, pad: &usize| {
            ensure!(!flat, "the device runs no convolution after a dense layer or a flatten");
            ensure!(*inputs == c, "a convolution takes {inputs} channels, gets {c}");
            ensure!(
                kind == Kind::Conv || h == 1,
                "a 1-D convolution takes one row, gets {h}"
            );
            Ok(DeviceLayer {
                kind,
                weights,
                biases,
                inputs: *inputs,
                outputs: *outputs,
                kernel: *kernel,
                pad: *pad,
                relu: false,
                pool: false,
                h,
                w,
            })
        };
        let mut l = match layer {
            Layer::Conv {
                weights,
                biases,
                inputs,
                outputs,
                kernel,
                pad,
            } => conv(Kind::Conv, weights, biases, inputs, outputs, kernel, pad)?,
            Layer::Conv1d {
                weights,
                biases,
                inputs,
                outputs,
                kernel,
                pad,
            } => conv(Kind::Conv1d, weights, biases, inputs, outputs, kernel, pad)?,
            Layer::Dense {
                weights,
                biases,
                inputs,
                outputs,
            } => {
                ensure!(
                    *inputs == c * h * w,
                    "a dense layer takes {inputs} values, gets {}",
                    c * h * w
                );
                DeviceLayer {
                    kind: Kind::Dense,
                    weights,
                    biases,
                    inputs: *inputs,
                    outputs: *outputs,
                    kernel: 1,
                    pad: 0,
                    relu: false,
                    pool: false,
                    h: 1,
                    w: 1,
                }
            }
            Layer::Flatten => {
                flat = true;
                continue;
            }
            other => anyhow::bail!(
                "the device backbone runs convolutions (with ReLU and max-pool) and dense layers \
                 (with ReLU); found {other:?} where a convolution or a dense layer should be"
            ),
        };
        ensure!(
            l.inputs > 0 && l.outputs > 0 && l.kernel >= 1 && l.kernel <= 255 && l.pad < l.kernel,
            "a layer of the backbone has no inputs, no outputs, or a padding not smaller than its kernel"
        );
        loop {
            match it.peek() {
                Some(Layer::Relu) if !l.relu => l.relu = true,
                Some(Layer::MaxPool2) if l.kind == Kind::Conv && !l.pool => l.pool = true,
                Some(Layer::MaxPool1d2) if l.kind == Kind::Conv1d && !l.pool => l.pool = true,
                _ => break,
            }
            it.next();
        }
        (c, h, w) = if l.conv() {
            let (oh, ow) = l.out_hw();
            (l.outputs, oh, ow)
        } else {
            flat = true;
            (l.outputs, 1, 1)
        };
        out.push(l);
    }
    ensure!(!out.is_empty(), "the backbone has no convolution or dense layer");
    ensure!(
        out.len() <= device::MAX_LAYERS,
        "the backbone has {} layers, the device runs at most {}",
        out.len(),
        device::MAX_LAYERS
    );
    Ok((input, out))
}

/// The ranges [`backbone_image`] takes: for a window model, the normalised window's
/// first; then one per layer whose outputs the device stores as u8 (all but the last).
#[cfg(feature = "onnx")]
pub fn calibrated_layers(model: &BackboneModel) -> Result<usize> {
    let (input, layers) = device_layers(model)?;
    Ok(usize::from(input.norm.is_some()) + layers.len() - 1)
}

/// A flat sample as the first layer's input map: a window (time-major, `[T, C]`)
/// normalised and made channel-major (`[C, T]`), as the ONNX graph does; an image as it is.
#[cfg(feature = "onnx")]
fn input_map(input: &Input<'_>, row: &[f32]) -> Vec<f32> {
    match input.norm {
        Some((mean, scale)) => {
            let (c, _, t) = input.shape;
            (0..c * t)
                .map(|i| {
                    let (ch, step) = (i / t, i % t);
                    (row[step * c + ch] - mean[ch]) * scale[ch]
                })
                .collect()
        }
        None => row.to_vec(),
    }
}

/// The static ranges of the samples `x` (`n x input_width`: pixels in `0..=1`, or raw
/// sensor windows), computed in f32 by plain loops, that [`backbone_image`] turns into
/// the device's steps: for a window model, the largest `|value|` of the normalised
/// window first; then the largest output of every layer but the last (after its ReLU and
/// pool).
#[cfg(feature = "onnx")]
pub fn calibrate(model: &BackboneModel, x: ndarray::ArrayView2<'_, f32>) -> Result<Vec<f32>> {
    let (input, layers) = device_layers(model)?;
    ensure!(x.ncols() == model.input_width, "calibration samples of the wrong width");
    ensure!(x.nrows() > 0, "calibration needs at least one sample");
    let window = usize::from(input.norm.is_some());
    let mut maxima = vec![0.0f32; window + layers.len() - 1];
    for row in x.rows() {
        let mut v = input_map(&input, &row.to_vec());
        if window == 1 {
            maxima[0] = v.iter().fold(maxima[0], |m, &a| m.max(a.abs()));
        }
        for (i, l) in layers.iter().enumerate().take(layers.len() - 1) {
            v = float_layer(l, &v);
            maxima[window + i] = v.iter().fold(maxima[window + i], |m, &a| m.max(a));
        }
    }
    Ok(maxima)
}

/// One device layer in f32 (bias, sums, ReLU, pool).
#[cfg(feature = "onnx")]
fn float_layer(l: &DeviceLayer<'_>, v: &[f32]) -> Vec<f32> {
    let ((kh, kw), (ph, pw), rows) = l.geometry();
    let (oh, ow) = l.conv_hw();
    let mut full = vec![0.0f32; l.outputs * oh * ow];
    for o in 0..l.outputs {
        for y in 0..oh {
            for x in 0..ow {
                let mut s = l.biases[o];
                for ci in 0..l.inputs {
                    for dy in 0..kh {
                        for dx in 0..kw {
                            let (iy, ix) = ((y + dy).wrapping_sub(ph), (x + dx).wrapping_sub(pw));
                            if iy < l.h && ix < l.w {
                                s += l.weights[((o * l.inputs + ci) * kh + dy) * kw + dx]
                                    * v[(ci * l.h + iy) * l.w + ix];
                            }
                        }
                    }
                }
                full[(o * oh + y) * ow + x] = if l.relu { s.max(0.0) } else { s };
            }
        }
    }
    if !l.pool {
        return full;
    }
    let (qh, qw) = l.out_hw();
    let mut pooled = vec![0.0f32; l.outputs * qh * qw];
    for o in 0..l.outputs {
        for y in 0..qh {
            for x in 0..qw {
                let mut m = f32::MIN;
                for dy in 0..rows {
                    for dx in 0..2 {
                        m = m.max(full[(o * oh + rows * y + dy) * ow + 2 * x + dx]);
                    }
                }
                pooled[(o * qh + y) * qw + x] = m;
            }
        }
    }
    pooled
}

/// The int8 image of a backbone of convolutions (each with its ReLU and max-pool) and
/// dense layers (each with its ReLU), `ranges` from [`calibrate`] ([`calibrated_layers`]
/// of them).
///
/// Per output channel, `s_w = max |w| / 127` and `q = round(w / s_w)`. A layer before the
/// last stores its outputs as u8 with the step `s_out = range / 255`; the input pixels
/// have the step `1 / 255`, a window's normalised values the step `s_in = range / 127`
/// (the image holds each channel's mean and `scale / s_in`, so the device rounds a raw
/// value to i8 itself); each output's scale is `s_w * s_in / s_out` and its bias
/// `b / s_out` (the last layer: `s_w * s_in` and `b`), so the device computes
/// `acc * scale + bias` from its integer sum.
#[cfg(feature = "onnx")]
pub fn backbone_image(model: &BackboneModel, ranges: &[f32]) -> Result<Vec<u8>> {
    let (input, layers) = device_layers(model)?;
    let window = usize::from(input.norm.is_some());
    ensure!(
        ranges.len() == window + layers.len() - 1,
        "the calibration has {} activation ranges, the backbone needs {} ({}one per layer but the last)",
        ranges.len(),
        window + layers.len() - 1,
        if window == 1 { "the window's, then " } else { "" }
    );
    ensure!(
        ranges.iter().all(|m| m.is_finite() && *m > 0.0),
        "an activation range is zero, negative or not finite: {ranges:?}"
    );
    let mut body = Vec::new();
    let mut s_in = 1.0f64 / 255.0;
    if let Some((mean, scale)) = input.norm {
        s_in = f64::from(ranges[0]) / 127.0;
        for m in mean {
            body.extend_from_slice(&m.to_le_bytes());
        }
        for k in scale {
            body.extend_from_slice(&((f64::from(*k) / s_in) as f32).to_le_bytes());
        }
    }
    let activation_max = &ranges[window..];
    let mut output = 0usize;
    for (i, l) in layers.iter().enumerate() {
        let last = i + 1 == layers.len();
        let s_out = if last {
            1.0
        } else {
            f64::from(activation_max[i]) / 255.0
        };
        let flags = u8::from(l.relu) | (u8::from(l.pool) << 1);
        let (kind, kernel, pad) = match l.kind {
            Kind::Conv => (1u8, l.kernel as u8, l.pad as u8),
            Kind::Dense => (2, 0, 0),
            Kind::Conv1d => (3, l.kernel as u8, l.pad as u8),
        };
        body.extend_from_slice(&[kind, flags, kernel, pad]);
        for v in [l.inputs as u32, l.outputs as u32, 0] {
            body.extend_from_slice(&v.to_le_bytes());
        }
        let rows: Vec<&[f32]> = l.weights.chunks_exact(l.fan_in()).collect();
        let weight_scales: Vec<f64> = rows
            .iter()
            .map(|r| {
                let m = r.iter().fold(0.0f32, |m, w| m.max(w.abs()));
                if m > 0.0 {
                    f64::from(m) / 127.0
                } else {
                    1.0
                }
            })
            .collect();
        for s in &weight_scales {
            body.extend_from_slice(&((s * s_in / s_out) as f32).to_le_bytes());
        }
        for b in l.biases {
            body.extend_from_slice(&((f64::from(*b) / s_out) as f32).to_le_bytes());
        }
        for (r, s) in rows.iter().zip(&weight_scales) {
            body.extend(
                r.iter()
                    .map(|&w| (f64::from(w) / s).round().clamp(-127.0, 127.0) as i8 as u8),
            );
        }
        while !body.len().is_multiple_of(4) {
            body.push(0);
        }
        s_in = s_out;
        output = if l.conv() {
            let (qh, qw) = l.out_hw();
            l.outputs * qh * qw
        } else {
            l.outputs
        };
    }
    let (c, h, w) = input.shape;
    let mut image = b"ECBB".to_vec();
    for v in [2u16, layers.len() as u16, c as u16, h as u16, w as u16, window as u16] {
        image.extend_from_slice(&v.to_le_bytes());
    }
    for v in [output as u32, body.len() as u32, device::crc32(&body)] {
        image.extend_from_slice(&v.to_le_bytes());
    }
    image.extend_from_slice(&body);
    Backbone::parse(&image).map_err(|e| anyhow::anyhow!("the image written does not read back: {e}"))?;
    Ok(image)
}

/// Bytes of a model's device image (they do not depend on the calibration).
#[cfg(feature = "onnx")]
pub fn backbone_image_bytes(model: &BackboneModel) -> Result<usize> {
    Ok(backbone_image(model, &vec![1.0; calibrated_layers(model)?])?.len())
}

/// What `edgecl train` writes beside a backbone: the activation ranges its device image
/// is quantised with.
pub const CALIBRATION_FILE: &str = "calibration.json";

/// The activation ranges of a model folder's `calibration.json`.
pub fn read_calibration(model_dir: &Path) -> Result<Vec<f32>> {
    let path = model_dir.join(CALIBRATION_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (the device image's activation ranges, written by `edgecl train`)",
            path.display()
        )
    })?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    json.get("activation_max")
        .and_then(|v| v.as_array())
        .and_then(|a| {
            a.iter()
                .map(|v| v.as_f64().map(|f| f as f32))
                .collect::<Option<Vec<f32>>>()
        })
        .with_context(|| format!("{}: no `activation_max` list of numbers", path.display()))
}

/// The device image of a model folder: its `backbone.onnx` quantised with its
/// `calibration.json`; also the model read and the ONNX bytes.
#[cfg(feature = "onnx")]
pub fn model_backbone_image(model_dir: &Path) -> Result<(BackboneModel, Vec<u8>, Vec<u8>)> {
    let onnx_path = model_dir.join("backbone.onnx");
    let onnx = std::fs::read(&onnx_path).with_context(|| format!("reading {}", onnx_path.display()))?;
    let model = BackboneModel::from_onnx(&onnx, &onnx_path.display().to_string())?;
    let image = backbone_image(&model, &read_calibration(model_dir)?)
        .with_context(|| format!("the device image of {}", model_dir.display()))?;
    Ok((model, onnx, image))
}

/// What a stream image holds.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// Source classes of each task, in order (task `t`'s classes become outputs
    /// `t * k .. (t + 1) * k`).
    pub tasks: Vec<Vec<u16>>,
    /// Training samples per task, shared evenly between its classes.
    pub train_per_task: usize,
    /// Held-out test samples per task, shared evenly between its classes.
    pub test_per_task: usize,
    /// Bits per pixel, 4 or 8.
    pub bits: u8,
    /// Seed of which samples are drawn and their order.
    pub seed: u64,
}

impl StreamSpec {
    /// Split-MNIST's five tasks of two digits, sorted.
    pub fn split(train_per_task: usize, test_per_task: usize, bits: u8, seed: u64) -> Self {
        StreamSpec {
            tasks: (0..5).map(|t| vec![2 * t, 2 * t + 1]).collect(),
            train_per_task,
            test_per_task,
            bits,
            seed,
        }
    }
}

/// The stream image of `spec` drawn from `train` (training records) and `test` (held-out
/// records); pixels are the datasets' values times 255.
pub fn stream_image(train: &Dataset, test: &Dataset, spec: &StreamSpec) -> Result<Vec<u8>> {
    ensure!(matches!(spec.bits, 4 | 8), "pixels are stored in 4 or 8 bits");
    stream_with(train, test, spec, |row, body| {
        let px = row.map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8);
        if spec.bits == 8 {
            body.extend(px.iter());
        } else {
            let nib: Vec<u8> = px.iter().map(|&p| ((u16::from(p) + 8) / 17) as u8).collect();
            body.extend(nib.chunks(2).map(|c| c[0] << 4 | c.get(1).copied().unwrap_or(0)));
        }
        Ok(())
    })
}

/// The stream image of `spec` for a backbone that takes sensor windows: each window
/// (`[T, C]`, time-major, as the datasets hold it) stored as the i8 bytes the device makes
/// of it ([`Backbone::quantise_window`], the backbone's own normalisation and step), 8
/// bits a value.
pub fn window_stream_image(
    train: &Dataset,
    test: &Dataset,
    spec: &StreamSpec,
    backbone: &Backbone<'_>,
) -> Result<Vec<u8>> {
    ensure!(backbone.takes_windows(), "the backbone takes pixels: use stream_image");
    ensure!(spec.bits == 8, "a window's values are stored in 8 bits");
    ensure!(
        train.x.ncols() == backbone.input(),
        "the windows have {} values, the backbone takes {}",
        train.x.ncols(),
        backbone.input()
    );
    let mut bytes = vec![0u8; backbone.input()];
    stream_with(train, test, spec, |row, body| {
        let values: Vec<f32> = row.to_vec();
        backbone
            .quantise_window(&values, &mut bytes)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        body.extend_from_slice(&bytes);
        Ok(())
    })
}

/// A stream image of `spec`'s tasks with each sample's row stored by `encode`.
fn stream_with(
    train: &Dataset,
    test: &Dataset,
    spec: &StreamSpec,
    mut encode: impl FnMut(ndarray::ArrayView1<'_, f32>, &mut Vec<u8>) -> Result<()>,
) -> Result<Vec<u8>> {
    let order: Vec<u16> = spec.tasks.iter().flatten().copied().collect();
    ensure!(!order.is_empty() && order.len() <= 256, "1 to 256 classes");
    let width = train.x.ncols();
    ensure!(test.x.ncols() == width, "training and test samples differ in width");
    let mut rng = Rng::new(spec.seed);
    let mut body: Vec<u8> = order.iter().map(|&c| c as u8).collect();
    while !body.len().is_multiple_of(4) {
        body.push(0);
    }
    for classes in &spec.tasks {
        for (data, per_task) in [(train, spec.train_per_task), (test, spec.test_per_task)] {
            let mut picked = Vec::new();
            for (j, &c) in classes.iter().enumerate() {
                let mut pool: Vec<usize> = (0..data.len()).filter(|&i| data.y[i] == c).collect();
                let want = per_task / classes.len() + usize::from(j < per_task % classes.len());
                ensure!(
                    pool.len() >= want,
                    "class {c} has {} samples, {want} wanted",
                    pool.len()
                );
                rng.shuffle(&mut pool);
                let output = order.iter().position(|&o| o == c).expect("c is in order") as u8;
                picked.extend(pool[..want].iter().map(|&i| (output, i)));
            }
            rng.shuffle(&mut picked);
            for (label, i) in picked {
                body.push(label);
                encode(data.x.row(i), &mut body)?;
            }
        }
    }
    let mut image = b"ECST".to_vec();
    for v in [1u16, spec.tasks.len() as u16, order.len() as u16, u16::from(spec.bits)] {
        image.extend_from_slice(&v.to_le_bytes());
    }
    for v in [
        width as u32,
        spec.train_per_task as u32,
        spec.test_per_task as u32,
        body.len() as u32,
        device::crc32(&body),
    ] {
        image.extend_from_slice(&v.to_le_bytes());
    }
    image.extend_from_slice(&body);
    Stream::parse(&image).map_err(|e| anyhow::anyhow!("the image written does not read back: {e}"))?;
    Ok(image)
}

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

/// A new Ed25519 key pair from the operating system's randomness: the 32-byte secret
/// seed and the public key.
pub fn keygen() -> ([u8; 32], [u8; 32]) {
    let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::generate());
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&pair.sk.seed()[..]);
    (seed, *pair.pk)
}

/// The public key of a secret seed.
pub fn public_key(seed: &[u8; 32]) -> [u8; 32] {
    *ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(*seed)).pk
}

/// Lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Which half of a key pair a key file holds: its first word says (`edgecl keygen`
/// writes `edgecl-secret-key HEX` and `edgecl-public-key HEX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// The secret seed images are signed with (`edgecl export --sign`).
    Secret,
    /// The public key images are verified with (the firmware, `edgecl run --key`).
    Public,
}

impl KeyKind {
    /// The tag a key file of this kind starts with.
    pub fn tag(self) -> &'static str {
        match self {
            KeyKind::Secret => "edgecl-secret-key",
            KeyKind::Public => "edgecl-public-key",
        }
    }

    fn what(self) -> &'static str {
        match self {
            KeyKind::Secret => "secret",
            KeyKind::Public => "public",
        }
    }
}

/// A key file's text: its tag, a space, the 64 hex digits and a newline.
pub fn key_file_text(kind: KeyKind, key: &[u8; 32]) -> String {
    format!("{} {}\n", kind.tag(), to_hex(key))
}

/// The key in key file `text` (named `file` in errors), which must be of `kind`: a public
/// key given where the secret one is wanted (or the reverse), or a file without its tag,
/// is refused saying which file is which.
pub fn read_key_file(text: &str, kind: KeyKind, file: &str) -> Result<[u8; 32]> {
    let other = match kind {
        KeyKind::Secret => KeyKind::Public,
        KeyKind::Public => KeyKind::Secret,
    };
    let mut words = text.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some(tag), Some(hex), None) if tag == kind.tag() => {
            from_hex32(hex).with_context(|| format!("{file}: the {} key", kind.what()))
        }
        (Some(tag), Some(_), None) if tag == other.tag() => bail!(
            "{file} is a {} key ({}), but a {} key is wanted here: `edgecl keygen --out F` writes the secret key to F and the public key to F.pub{}",
            other.what(),
            other.tag(),
            kind.what(),
            match kind {
                KeyKind::Secret => "; sign with F",
                KeyKind::Public => "; verify with F.pub",
            }
        ),
        (Some(hex), None, None) if from_hex32(hex).is_ok() => bail!(
            "{file} holds a key without its tag, so whether it is secret or public cannot be told: a {} key file reads `{} HEX` (`edgecl keygen` writes them so)",
            kind.what(),
            kind.tag()
        ),
        _ => bail!("{file}: not a key file (a {} key file reads `{} HEX`, 64 hex digits)", kind.what(), kind.tag()),
    }
}

/// 32 bytes from 64 hex digits (surrounding whitespace ignored).
pub fn from_hex32(text: &str) -> Result<[u8; 32]> {
    let t = text.trim();
    ensure!(t.len() == 64 && t.is_ascii(), "a key is 64 hex digits");
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(t.as_bytes().chunks_exact(2)) {
        let s = std::str::from_utf8(pair).expect("ascii");
        *o = u8::from_str_radix(s, 16).with_context(|| format!("`{s}` is not hex"))?;
    }
    Ok(out)
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

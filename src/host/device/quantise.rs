//! The int8 backbone image made from an ONNX model: the model's layers grouped as the
//! device runs them (image or window input; 2-D and 1-D convolutions with their ReLU and
//! max-pool; dense layers), the static ranges calibrated in f32, and the image written.

#[cfg(feature = "onnx")]
use crate::device::{self, Backbone};
#[cfg(feature = "onnx")]
use crate::host::onnx::{BackboneModel, Layer};
#[cfg(feature = "onnx")]
use anyhow::ensure;
use anyhow::{Context, Result};
use std::path::Path;

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

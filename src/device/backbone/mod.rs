//! The frozen backbone on the device: int8 convolutions over images (any square kernel,
//! zero padding, an optional 2x2 max-pool fused in) and over time (1-D, for sensor
//! windows, with an optional 2-step max-pool), and dense layers, read in place from their
//! byte image (no copy into RAM), with u8 activations between layers.
//!
//! Two inputs: u8 pixels (`0..=255`, channel-major images), or i8 sensor windows
//! (`[T, C]`, time-major, as a sensor delivers them): each channel's value normalised
//! with the image's per-channel mean and multiplier and rounded to i8
//! ([`Backbone::quantise_window`]); the first layer reads the window channel by channel
//! (ONNX's transpose to `[C, T]`).
//!
//! Every layer sums `weight x activation` exactly in `i32` (i8 x u8, or i8 x i8 on a
//! window), then turns each sum into a value once per output with one f32 multiply and
//! one add: `y = acc * scale[o] + bias[o]`. A layer before the last stores `y` rounded
//! into u8 (`(y + 0.5) as u8`, which saturates: the ReLU and the clip to 255); the static
//! activation scale calibrated at export is folded into `scale` and `bias`. The last
//! layer gives the f32 features. Scales are positive, so `y` rises with `acc` and a
//! max-pool takes the largest of its sums before the multiply: exactly the pool of the
//! rounded values, with a fraction of the multiplies and no full-size map.
//!
//! Two kernels compute this: [`Backbone::features`] (the one the firmware and `simulate
//! --firmware` run: maps kept with the next layer's zero border so no tap is tested, an
//! i32 sum per position of one output channel, 3x3 kernels a row of taps at a time over
//! zipped views of the input rows, 1-D kernels of 3 or 5 all taps of a position at once,
//! other kernels one tap over a whole row at a time) and
//! [`Backbone::features_reference`] (plain loops, a bounds test per tap, the window read
//! in place). Integer sums make the two give the same bits, which `tests/device.rs`
//! checks.

mod kernels;

use super::image::{pad4, Reader};
use super::DeviceError;
use kernels::{conv_fast, dense_fast, le_f32, relu, sum_reference, to_u8, value, Out};

/// Most layers a backbone image may have.
pub const MAX_LAYERS: usize = 8;

/// Most products one output sums (`inputs x kernel rows x kernel columns`): its `i32` sum
/// of `i8 x u8` cannot overflow (`65535 x 128 x 255 < 2^31`).
const MAX_FAN_IN: usize = 65535;

const MAGIC: &[u8; 4] = b"ECBB";
const VERSION: u16 = 2;
const HEADER: usize = 28;
const LAYER_HEADER: usize = 16;
const WHAT: &str = "backbone";

const INPUT_PIXELS: u16 = 0;
const INPUT_WINDOW: u16 = 1;

const KIND_CONV: u8 = 1;
const KIND_DENSE: u8 = 2;
const KIND_CONV1D: u8 = 3;
const FLAG_RELU: u8 = 1;
const FLAG_POOL: u8 = 2;

/// One layer's place in the image and its shapes.
#[derive(Debug, Clone, Copy, Default)]
struct LayerAt {
    conv: bool,
    relu: bool,
    pool: bool,
    /// Kernel rows and columns (1 x k over time; 1 x 1 for dense).
    kernel: (usize, usize),
    /// Zero padding above and below, left and right.
    pad: (usize, usize),
    /// Rows a pool window spans (2 on images, 1 over time; it always spans 2 columns).
    pool_rows: usize,
    /// Input channels (conv) or width (dense).
    inputs: usize,
    /// Output channels (conv) or width (dense).
    outputs: usize,
    /// Input map rows and columns (1 x 1 for dense).
    h: usize,
    w: usize,
    /// Convolution output rows and columns before the pool.
    oh: usize,
    ow: usize,
    /// Offset of the scales in the body (biases and weights follow).
    at: usize,
    /// The zero border (rows, columns) the fast kernel keeps around this layer's output
    /// map (the next layer's padding; 0 for the last layer and before a dense one).
    border: (usize, usize),
}

impl LayerAt {
    /// Output rows and columns (after the pool).
    fn out_hw(&self) -> (usize, usize) {
        if self.pool {
            (self.oh / self.pool_rows, self.ow / 2)
        } else {
            (self.oh, self.ow)
        }
    }

    /// Values of the output.
    fn out_len(&self) -> usize {
        let (h, w) = self.out_hw();
        self.outputs * h * w
    }

    /// Taps of one kernel.
    fn taps(&self) -> usize {
        self.kernel.0 * self.kernel.1
    }

    /// Products summed per output.
    fn fan_in(&self) -> usize {
        self.inputs * self.taps()
    }

    /// Multiply-accumulates of one forward pass (every conv position, pooled or not).
    fn macs(&self) -> usize {
        self.outputs * self.oh * self.ow * self.fan_in()
    }

    /// Positions a pool window spans (1 without a pool).
    fn window(&self) -> (usize, usize) {
        if self.pool {
            (self.pool_rows, 2)
        } else {
            (1, 1)
        }
    }
}

/// A validated backbone image.
#[derive(Debug, Clone, Copy)]
pub struct Backbone<'a> {
    body: &'a [u8],
    layers: [LayerAt; MAX_LAYERS],
    count: usize,
    channels: usize,
    height: usize,
    width: usize,
    /// The input is an i8 window `[width steps, channels]` (else u8 pixels).
    window: bool,
    output: usize,
    /// u8 bytes of the channel-major (padded) input copy, the even and the odd layers'
    /// maps (fast kernel).
    fast: [usize; 3],
    /// u8 bytes of the even and odd layers' maps (reference kernel).
    plain: [usize; 2],
    /// i32 sums of one output channel's map (fast kernel).
    sums: usize,
}

fn bad(why: &'static str) -> DeviceError {
    DeviceError::Malformed { what: WHAT, why }
}

/// One layer's header checked against the map before it: its shapes, the place of its
/// values still to set.
fn layer_shapes(
    kind: u8,
    (kernel, pad, pool): (usize, usize, bool),
    (inputs, outputs): (usize, usize),
    (c, h, w, flat): (usize, usize, usize, bool),
) -> Result<LayerAt, DeviceError> {
    let mut l = LayerAt {
        pool,
        inputs,
        outputs,
        pool_rows: 2,
        ..LayerAt::default()
    };
    match kind {
        KIND_CONV | KIND_CONV1D => {
            if flat {
                return Err(bad("a convolution follows a dense layer"));
            }
            if kernel == 0 {
                return Err(bad("a convolution has a kernel of 0"));
            }
            if pad >= kernel {
                return Err(bad("a convolution's padding is not smaller than its kernel"));
            }
            if inputs != c {
                return Err(bad("a convolution's input channels differ from the channels before it"));
            }
            (l.kernel, l.pad) = if kind == KIND_CONV {
                ((kernel, kernel), (pad, pad))
            } else {
                if h != 1 {
                    return Err(bad("a 1-D convolution takes a map of one row"));
                }
                l.pool_rows = 1;
                ((1, kernel), (0, pad))
            };
            let (ph, pw) = (h + 2 * l.pad.0, w + 2 * l.pad.1);
            if ph < l.kernel.0 || pw < l.kernel.1 {
                return Err(bad("a convolution's kernel is larger than its padded input"));
            }
            (l.conv, l.h, l.w) = (true, h, w);
            (l.oh, l.ow) = (ph - l.kernel.0 + 1, pw - l.kernel.1 + 1);
            if pool && (l.oh < l.pool_rows || l.ow < 2) {
                return Err(bad("a pooled map would have no rows or columns"));
            }
        }
        KIND_DENSE => {
            if pool {
                return Err(bad("a dense layer cannot pool"));
            }
            if kernel != 0 || pad != 0 {
                return Err(bad("a dense layer's kernel and padding bytes are not 0"));
            }
            let width_before = c
                .checked_mul(h)
                .and_then(|n| n.checked_mul(w))
                .ok_or(bad("a layer's size overflows"))?;
            if inputs != width_before {
                return Err(bad("a dense layer's inputs differ from the width before it"));
            }
            (l.kernel, l.h, l.w, l.oh, l.ow) = ((1, 1), 1, 1, 1, 1);
        }
        _ => {
            return Err(bad(
                "a layer kind is neither convolution (1), dense (2) nor 1-D convolution (3)",
            ))
        }
    }
    Ok(l)
}

impl<'a> Backbone<'a> {
    /// Validates an image: magic, version, lengths, CRC, the input kind (and a window's
    /// finite means and positive finite multipliers), every layer's kind, flags, kernel,
    /// padding and widths chaining from the input to the output, the fan-in bound of the
    /// integer sums, positive finite scales, finite biases, zero padding.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DeviceError> {
        let r = Reader { bytes, what: WHAT };
        let body = r.body(MAGIC, VERSION, 20, HEADER)?;
        let count = r.u16(6)? as usize;
        let (channels, height, width) = (r.u16(8)? as usize, r.u16(10)? as usize, r.u16(12)? as usize);
        let output = r.u32(16)? as usize;
        if count == 0 || count > MAX_LAYERS {
            return Err(bad("1 to 8 layers"));
        }
        if channels == 0 || height == 0 || width == 0 {
            return Err(bad("the input has no channels, rows or columns"));
        }
        let window = match r.u16(14)? {
            INPUT_PIXELS => false,
            INPUT_WINDOW => true,
            _ => return Err(bad("the input kind is neither pixels (0) nor a window (1)")),
        };
        let b = Reader {
            bytes: body,
            what: WHAT,
        };
        let mut at = 0usize;
        if window {
            if height != 1 {
                return Err(bad("a window's input has one row (its steps are the columns)"));
            }
            for c in 0..channels {
                if !b.f32(4 * c)?.is_finite() {
                    return Err(bad("a window's channel mean is NaN or infinite"));
                }
                let mul = b.f32(4 * (channels + c))?;
                if !(mul.is_finite() && mul > 0.0) {
                    return Err(bad("a window's channel multiplier is zero, negative, NaN or infinite"));
                }
            }
            at = 8 * channels;
        }
        let overflow = bad("a layer's size overflows");
        let mut layers = [LayerAt::default(); MAX_LAYERS];
        let (mut c, mut h, mut w, mut flat) = (channels, height, width, false);
        for (i, slot) in layers.iter_mut().enumerate().take(count) {
            let head = b.slice(at, LAYER_HEADER)?;
            let (kind, flags, kernel, pad) = (head[0], head[1], head[2] as usize, head[3] as usize);
            let (inputs, outputs) = (b.u32(at + 4)? as usize, b.u32(at + 8)? as usize);
            if b.u32(at + 12)? != 0 {
                return Err(bad("a layer's reserved word is not 0"));
            }
            if flags & !(FLAG_RELU | FLAG_POOL) != 0 {
                return Err(bad("a layer has unknown flag bits"));
            }
            if outputs == 0 {
                return Err(bad("a layer has no outputs"));
            }
            let (relu, pool) = (flags & FLAG_RELU != 0, flags & FLAG_POOL != 0);
            let mut l = layer_shapes(kind, (kernel, pad, pool), (inputs, outputs), (c, h, w, flat))?;
            l.relu = relu;
            flat = !l.conv;
            let fan_in = inputs.checked_mul(l.taps()).filter(|&n| n <= MAX_FAN_IN).ok_or(bad(
                "a layer sums more than 65535 products (its i32 sums could overflow)",
            ))?;
            if i + 1 < count && !relu {
                return Err(bad(
                    "a layer before the last has no ReLU (u8 activations hold no negatives)",
                ));
            }
            let values = at.checked_add(LAYER_HEADER).ok_or(overflow)?;
            let weights = outputs.checked_mul(fan_in).ok_or(overflow)?;
            let bytes = outputs
                .checked_mul(8)
                .and_then(|n| n.checked_add(weights))
                .and_then(|n| n.checked_add(3))
                .ok_or(overflow)?;
            let end = values.checked_add(pad4(bytes - 3)).ok_or(overflow)?;
            b.slice(values, end - values)?;
            for o in 0..outputs {
                let scale = b.f32(values + 4 * o)?;
                if !(scale.is_finite() && scale > 0.0) {
                    return Err(bad("a scale is zero, negative, NaN or infinite"));
                }
                if !b.f32(values + 4 * (outputs + o))?.is_finite() {
                    return Err(bad("a bias is NaN or infinite"));
                }
            }
            if b.slice(values + bytes - 3, end - (values + bytes - 3))?
                .iter()
                .any(|&p| p != 0)
            {
                return Err(bad("a layer's padding bytes are not 0"));
            }
            l.at = values;
            // Every later product of this layer's sizes is bounded by `weights` and the
            // map sizes checked here.
            l.outputs
                .checked_mul(l.oh)
                .and_then(|n| n.checked_mul(l.ow))
                .and_then(|n| n.checked_mul(4 * l.taps()))
                .ok_or(overflow)?;
            (c, h, w) = if flat {
                (outputs, 1, 1)
            } else {
                (outputs, l.out_hw().0, l.out_hw().1)
            };
            *slot = l;
            at = end;
        }
        let width_out = c * h * w;
        if width_out != output {
            return Err(bad("the last layer's width is not the header's output"));
        }
        if at != body.len() {
            return Err(bad("the body has bytes after the last layer"));
        }
        for i in 0..count.saturating_sub(1) {
            let next = layers[i + 1];
            layers[i].border = if next.conv { next.pad } else { (0, 0) };
        }
        let scratch = bad("the backbone's scratch overflows");
        let padded = |c: usize, h: usize, w: usize, (ph, pw): (usize, usize)| -> Option<usize> {
            c.checked_mul(h.checked_add(2 * ph)?)?
                .checked_mul(w.checked_add(2 * pw)?)
        };
        let first = layers[0];
        let mut fast = [0usize; 3];
        let first_pad = if first.conv { first.pad } else { (0, 0) };
        if window || first_pad != (0, 0) {
            // A window is copied channel-major (and padded) before the first layer.
            fast[0] = padded(channels, height, width, first_pad).ok_or(scratch)?;
        }
        let (mut plain, mut sums) = ([0usize; 2], 0usize);
        for (i, l) in layers[..count - 1].iter().enumerate() {
            let (oh, ow) = l.out_hw();
            let map = padded(l.outputs, oh, ow, l.border).ok_or(scratch)?;
            fast[1 + i % 2] = fast[1 + i % 2].max(map);
            plain[i % 2] = plain[i % 2].max(l.out_len());
        }
        for l in &layers[..count] {
            if l.conv {
                sums = sums.max(l.oh * l.ow);
            }
        }
        let backbone = Backbone {
            body,
            layers,
            count,
            channels,
            height,
            width,
            window,
            output,
            fast,
            plain,
            sums,
        };
        // The scratch length must be a number this target can carve.
        backbone.fast_words().checked_mul(4).ok_or(scratch)?;
        Ok(backbone)
    }

    /// Bytes per sample: pixels (`channels x height x width`, channel-major) or a
    /// window's i8 values (`steps x channels`, time-major).
    pub fn input(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The input's channels, rows and columns (a window: its channels, 1, its steps).
    pub fn input_shape(&self) -> (usize, usize, usize) {
        (self.channels, self.height, self.width)
    }

    /// Whether the input is an i8 sensor window (else u8 pixels).
    pub fn takes_windows(&self) -> bool {
        self.window
    }

    /// Features per sample (the head's input width).
    pub fn output(&self) -> usize {
        self.output
    }

    /// Layers.
    pub fn layers(&self) -> usize {
        self.count
    }

    /// Weights (int8) in the image.
    pub fn weights(&self) -> usize {
        self.layers[..self.count].iter().map(|l| l.outputs * l.fan_in()).sum()
    }

    /// Multiply-accumulates of one forward pass (a pooled convolution computes every
    /// position of each pool window).
    pub fn macs(&self) -> usize {
        self.layers[..self.count].iter().map(LayerAt::macs).sum()
    }

    /// A window of `steps x channels` sensor values (time-major, as [`input`] counts
    /// them) as the backbone's i8 input bytes: each value `x` of channel `c` becomes
    /// `round((x - mean[c]) * mul[c])` (half away from zero) clipped to `-127..=127`, with
    /// the mean and multiplier the image holds (the model's normalisation and the
    /// calibrated input step). A NaN or infinite value is refused and `out` is left as it
    /// was.
    ///
    /// [`input`]: Backbone::input
    pub fn quantise_window(&self, values: &[f32], out: &mut [u8]) -> Result<(), DeviceError> {
        self.check_window(values.len(), out.len())?;
        let c = self.channels;
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(DeviceError::NonFinite {
                step: i / c,
                channel: i % c,
            });
        }
        for (i, (q, &x)) in out.iter_mut().zip(values).enumerate() {
            let v = (x - le_f32(self.body, i % c)) * le_f32(self.body, c + i % c);
            let r = if v >= 0.0 { (v + 0.5) as i32 } else { (v - 0.5) as i32 };
            *q = r.clamp(-127, 127) as i8 as u8;
        }
        Ok(())
    }

    /// A window backbone, and `values` values and `bytes` bytes both its input's length.
    fn check_window(&self, values: usize, bytes: usize) -> Result<(), DeviceError> {
        if !self.window {
            return Err(DeviceError::Mismatch("the backbone takes pixels, not windows"));
        }
        if values != self.input() || bytes != self.input() {
            return Err(DeviceError::Mismatch(
                "window buffers: values or bytes of the wrong length",
            ));
        }
        Ok(())
    }

    /// The values a window's i8 `bytes` stand for (`q / mul[c] + mean[c]`): the inverse
    /// of [`Backbone::quantise_window`] up to its rounding.
    pub fn dequantise_window(&self, bytes: &[u8], out: &mut [f32]) -> Result<(), DeviceError> {
        self.check_window(out.len(), bytes.len())?;
        let c = self.channels;
        for (i, (x, &q)) in out.iter_mut().zip(bytes).enumerate() {
            *x = f32::from(q as i8) / le_f32(self.body, c + i % c) + le_f32(self.body, i % c);
        }
        Ok(())
    }

    fn fast_words(&self) -> usize {
        self.sums + (self.fast[0] + self.fast[1] + self.fast[2]).div_ceil(4)
    }

    /// `f32`s of scratch [`Backbone::features`] and [`Backbone::features_reference`]
    /// need (the fast kernel's, the larger): one i32 sum per position of the largest
    /// convolution output, then the u8 maps of the layers before the last (even and odd
    /// layers alternate between two buffers) and a channel-major, zero-bordered copy of
    /// the input when it is a window or the first layer pads.
    pub fn scratch_len(&self) -> usize {
        self.fast_words().max((self.plain[0] + self.plain[1]).div_ceil(4))
    }

    fn check(&self, input: &[u8], out: &[f32], scratch: &[f32]) -> Result<(), DeviceError> {
        if input.len() != self.input() || out.len() != self.output || scratch.len() < self.scratch_len() {
            return Err(DeviceError::Mismatch(
                "backbone buffers: pixels, features or scratch of the wrong length",
            ));
        }
        Ok(())
    }

    fn scales(&self, l: &LayerAt) -> (&'a [u8], &'a [u8], &'a [u8]) {
        let n = l.outputs;
        let body: &'a [u8] = self.body;
        (
            &body[l.at..l.at + 4 * n],
            &body[l.at + 4 * n..l.at + 8 * n],
            &body[l.at + 8 * n..l.at + 8 * n + n * l.fan_in()],
        )
    }

    /// The features of one sample of `input()` bytes (u8 pixels `0..=255`, channel-major;
    /// or a window's i8 values from [`Backbone::quantise_window`]) into `out` (`output()`
    /// values), through `scratch` (`scratch_len()` values): the fast kernel, the one the
    /// firmware and the simulator run.
    pub fn features(&self, input: &[u8], out: &mut [f32], scratch: &mut [f32]) -> Result<(), DeviceError> {
        self.check(input, out, scratch)?;
        let (sums, maps) = scratch.split_at_mut(self.sums);
        let sums: &mut [i32] = bytemuck::cast_slice_mut(sums);
        let maps: &mut [u8] = bytemuck::cast_slice_mut(maps);
        let (padded, rest) = maps.split_at_mut(self.fast[0]);
        let (even, rest) = rest.split_at_mut(self.fast[1]);
        let odd = &mut rest[..self.fast[2]];
        if self.fast[0] > 0 {
            // The input, channel-major, with the first convolution's zero border.
            let first = self.layers[0];
            let (p, q) = if first.conv { first.pad } else { (0, 0) };
            let (h, w) = (self.height, self.width);
            let (ph, pw) = (h + 2 * p, w + 2 * q);
            padded.fill(0);
            if self.window {
                let c = self.channels;
                for (t, step) in input.chunks_exact(c).enumerate() {
                    for (ch, &v) in step.iter().enumerate() {
                        padded[(ch * ph + p) * pw + q + t] = v;
                    }
                }
            } else {
                for (ch, plane) in input.chunks_exact(h * w).enumerate() {
                    for (y, row) in plane.chunks_exact(w).enumerate() {
                        let at = (ch * ph + y + p) * pw + q;
                        padded[at..at + w].copy_from_slice(row);
                    }
                }
            }
        }
        let start: &[u8] = if self.fast[0] > 0 { padded } else { input };
        for (i, l) in self.layers[..self.count].iter().enumerate() {
            let (src, map): (&[u8], &mut [u8]) = match i % 2 {
                0 if i == 0 => (start, &mut *even),
                0 => (&*odd, &mut *even),
                _ => (&*even, &mut *odd),
            };
            let dst = if i + 1 == self.count {
                Out::Features(&mut *out)
            } else {
                Out::Map(map)
            };
            let (scales, biases, weights) = self.scales(l);
            let signed: &[i8] = bytemuck::cast_slice(src);
            match (l.conv, i == 0 && self.window) {
                (true, false) => conv_fast(l, weights, scales, biases, src, sums, dst),
                (true, true) => conv_fast(l, weights, scales, biases, signed, sums, dst),
                (false, false) => dense_fast(l, weights, scales, biases, src, dst),
                (false, true) => dense_fast(l, weights, scales, biases, signed, dst),
            }
        }
        Ok(())
    }

    /// The same features as [`Backbone::features`], bit for bit, by plain loops: maps
    /// without borders, a window read in place (time-major), a bounds test for every tap,
    /// one position at a time.
    pub fn features_reference(&self, input: &[u8], out: &mut [f32], scratch: &mut [f32]) -> Result<(), DeviceError> {
        self.check(input, out, scratch)?;
        let maps: &mut [u8] = bytemuck::cast_slice_mut(scratch);
        let (even, rest) = maps.split_at_mut(self.plain[0]);
        let odd = &mut rest[..self.plain[1]];
        let c = self.channels;
        for (i, l) in self.layers[..self.count].iter().enumerate() {
            let (src, map): (&[u8], &mut [u8]) = match i % 2 {
                0 if i == 0 => (input, &mut *even),
                0 => (&*odd, &mut *even),
                _ => (&*even, &mut *odd),
            };
            // Activation `(channel, row, column)` of the layer's input (of a dense layer:
            // `(input, 0, 0)`, a window's inputs channel-major as after ONNX's transpose).
            let (window, steps) = (i == 0 && self.window, self.width);
            let at = |ci: usize, y: usize, x: usize| -> i32 {
                match (window, l.conv) {
                    (true, true) => i32::from(src[x * c + ci] as i8),
                    (true, false) => i32::from(src[(ci % steps) * c + ci / steps] as i8),
                    (false, _) => i32::from(src[(ci * l.h + y) * l.w + x]),
                }
            };
            let last = i + 1 == self.count;
            let (scales, biases, weights) = self.scales(l);
            let (qh, qw) = l.out_hw();
            let (wh, ww) = l.window();
            for o in 0..l.outputs {
                let (scale, bias) = (le_f32(scales, o), le_f32(biases, o));
                for qy in 0..qh {
                    for qx in 0..qw {
                        let mut best = i32::MIN;
                        for a in 0..wh * ww {
                            let (y, x) = (wh * qy + a / ww, ww * qx + a % ww);
                            best = best.max(sum_reference(l, weights, &at, o, y, x));
                        }
                        let to = (o * qh + qy) * qw + qx;
                        let v = value(best, scale, bias);
                        if last {
                            out[to] = if l.relu { relu(v) } else { v };
                        } else {
                            map[to] = to_u8(v);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

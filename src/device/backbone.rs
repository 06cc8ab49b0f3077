//! The frozen backbone on the device: int8 convolutions (any square kernel, zero padding,
//! an optional 2x2 max-pool fused in) and dense layers, read in place from their byte
//! image (no copy into RAM), with u8 activations between layers.
//!
//! Every layer sums `weight x activation` exactly in `i32` (i8 x u8), then turns each sum
//! into a value once per output with one f32 multiply and one add: `y = acc * scale[o] +
//! bias[o]`. A layer before the last stores `y` rounded into u8 (`(y + 0.5) as u8`, which
//! saturates: the ReLU and the clip to 255); the static activation scale calibrated at
//! export is folded into `scale` and `bias`. The last layer gives the f32 features. Scales
//! are positive, so `y` rises with `acc` and a 2x2 max-pool takes the largest of its four
//! sums before the multiply: exactly the pool of the rounded values, with a quarter of the
//! multiplies and no full-size map.
//!
//! Two kernels compute this: [`Backbone::features`] (the one the firmware and `simulate
//! --firmware` run: maps kept with the next layer's zero border so no tap is tested, an
//! i32 sum per position of one output channel, 3x3 kernels a row of taps at a time over
//! zipped views of the input rows) and [`Backbone::features_reference`] (plain loops, a
//! bounds test per tap). Integer sums make the two give the same bits, which
//! `tests/device.rs` checks.

use super::image::{pad4, Reader};
use super::DeviceError;

/// Most layers a backbone image may have.
pub const MAX_LAYERS: usize = 8;

/// Most products one output sums (`inputs x kernel x kernel`): its `i32` sum of `i8 x u8`
/// cannot overflow (`65535 x 128 x 255 < 2^31`).
const MAX_FAN_IN: usize = 65535;

const MAGIC: &[u8; 4] = b"ECBB";
const VERSION: u16 = 2;
const HEADER: usize = 28;
const LAYER_HEADER: usize = 16;
const WHAT: &str = "backbone";

const KIND_CONV: u8 = 1;
const KIND_DENSE: u8 = 2;
const FLAG_RELU: u8 = 1;
const FLAG_POOL: u8 = 2;

/// One layer's place in the image and its shapes.
#[derive(Debug, Clone, Copy, Default)]
struct LayerAt {
    conv: bool,
    relu: bool,
    pool: bool,
    kernel: usize,
    pad: usize,
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
    /// The zero border the fast kernel keeps around this layer's output map (the next
    /// layer's padding; 0 for the last layer and before a dense one).
    border: usize,
}

impl LayerAt {
    /// Output rows and columns (after the pool).
    fn out_hw(&self) -> (usize, usize) {
        if self.pool {
            (self.oh / 2, self.ow / 2)
        } else {
            (self.oh, self.ow)
        }
    }

    /// Values of the output.
    fn out_len(&self) -> usize {
        let (h, w) = self.out_hw();
        self.outputs * h * w
    }

    /// Products summed per output.
    fn fan_in(&self) -> usize {
        self.inputs * self.kernel * self.kernel
    }

    /// Multiply-accumulates of one forward pass (every conv position, pooled or not).
    fn macs(&self) -> usize {
        self.outputs * self.oh * self.ow * self.fan_in()
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
    output: usize,
    /// u8 bytes of the padded input copy, the even and the odd layers' maps (fast kernel).
    fast: [usize; 3],
    /// u8 bytes of the even and odd layers' maps (reference kernel).
    plain: [usize; 2],
    /// i32 sums of one output channel's map (fast kernel).
    sums: usize,
}

fn bad(why: &'static str) -> DeviceError {
    DeviceError::Malformed { what: WHAT, why }
}

impl<'a> Backbone<'a> {
    /// Validates an image: magic, version, lengths, CRC, every layer's kind, flags,
    /// kernel, padding and widths chaining from the input to the output, the fan-in
    /// bound of the integer sums, positive finite scales, finite biases, zero padding.
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
        if r.u16(14)? != 0 {
            return Err(bad("the header's reserved field is not 0"));
        }
        let b = Reader {
            bytes: body,
            what: WHAT,
        };
        let overflow = bad("a layer's size overflows");
        let mut layers = [LayerAt::default(); MAX_LAYERS];
        let (mut at, mut c, mut h, mut w, mut flat) = (0usize, channels, height, width, false);
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
            let mut l = LayerAt {
                relu,
                pool,
                inputs,
                outputs,
                ..LayerAt::default()
            };
            match kind {
                KIND_CONV => {
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
                    let (ph, pw) = (h + 2 * pad, w + 2 * pad);
                    if ph < kernel || pw < kernel {
                        return Err(bad("a convolution's kernel is larger than its padded input"));
                    }
                    (l.conv, l.kernel, l.pad, l.h, l.w) = (true, kernel, pad, h, w);
                    (l.oh, l.ow) = (ph - kernel + 1, pw - kernel + 1);
                    if pool && (l.oh < 2 || l.ow < 2) {
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
                    let width_before = c.checked_mul(h).and_then(|n| n.checked_mul(w)).ok_or(overflow)?;
                    if inputs != width_before {
                        return Err(bad("a dense layer's inputs differ from the width before it"));
                    }
                    (l.kernel, l.h, l.w, l.oh, l.ow) = (1, 1, 1, 1, 1);
                    flat = true;
                }
                _ => return Err(bad("a layer kind is neither convolution (1) nor dense (2)")),
            }
            let fan_in = inputs
                .checked_mul(l.kernel * l.kernel)
                .filter(|&n| n <= MAX_FAN_IN)
                .ok_or(bad(
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
                .and_then(|n| n.checked_mul(4 * l.kernel * l.kernel))
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
            layers[i].border = if next.conv { next.pad } else { 0 };
        }
        let scratch = bad("the backbone's scratch overflows");
        let padded = |c: usize, h: usize, w: usize, p: usize| -> Option<usize> {
            c.checked_mul(h.checked_add(2 * p)?)?.checked_mul(w.checked_add(2 * p)?)
        };
        let first = layers[0];
        let mut fast = [0usize; 3];
        if first.conv && first.pad > 0 {
            fast[0] = padded(channels, height, width, first.pad).ok_or(scratch)?;
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
            output,
            fast,
            plain,
            sums,
        };
        // The scratch length must be a number this target can carve.
        backbone.fast_words().checked_mul(4).ok_or(scratch)?;
        Ok(backbone)
    }

    /// Pixels per sample (`channels x height x width`, channel-major).
    pub fn input(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The input's channels, rows and columns.
    pub fn input_shape(&self) -> (usize, usize, usize) {
        (self.channels, self.height, self.width)
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

    /// Multiply-accumulates of one forward pass (a pooled convolution computes all four
    /// positions of each pool window).
    pub fn macs(&self) -> usize {
        self.layers[..self.count].iter().map(LayerAt::macs).sum()
    }

    fn fast_words(&self) -> usize {
        self.sums + (self.fast[0] + self.fast[1] + self.fast[2]).div_ceil(4)
    }

    /// `f32`s of scratch [`Backbone::features`] and [`Backbone::features_reference`]
    /// need (the fast kernel's, the larger): one i32 sum per position of the largest
    /// convolution output, then the u8 maps of the layers before the last (even and odd
    /// layers alternate between two buffers) and a zero-bordered copy of the input when
    /// the first layer pads.
    pub fn scratch_len(&self) -> usize {
        self.fast_words().max((self.plain[0] + self.plain[1]).div_ceil(4))
    }

    fn check(&self, pixels: &[u8], out: &[f32], scratch: &[f32]) -> Result<(), DeviceError> {
        if pixels.len() != self.input() || out.len() != self.output || scratch.len() < self.scratch_len() {
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

    /// The features of one sample of `input()` pixels (`0..=255`, channel-major) into
    /// `out` (`output()` values), through `scratch` (`scratch_len()` values): the fast
    /// kernel, the one the firmware and the simulator run.
    pub fn features(&self, pixels: &[u8], out: &mut [f32], scratch: &mut [f32]) -> Result<(), DeviceError> {
        self.check(pixels, out, scratch)?;
        let (sums, maps) = scratch.split_at_mut(self.sums);
        let sums: &mut [i32] = bytemuck::cast_slice_mut(sums);
        let maps: &mut [u8] = bytemuck::cast_slice_mut(maps);
        let (padded, rest) = maps.split_at_mut(self.fast[0]);
        let (even, rest) = rest.split_at_mut(self.fast[1]);
        let odd = &mut rest[..self.fast[2]];
        if self.fast[0] > 0 {
            // The input with the first convolution's zero border.
            let p = self.layers[0].pad;
            let (ph, pw) = (self.height + 2 * p, self.width + 2 * p);
            padded.fill(0);
            for (ch, plane) in pixels.chunks_exact(self.height * self.width).enumerate() {
                for (y, row) in plane.chunks_exact(self.width).enumerate() {
                    let at = (ch * ph + y + p) * pw + p;
                    padded[at..at + self.width].copy_from_slice(row);
                }
            }
        }
        let input: &[u8] = if self.fast[0] > 0 { padded } else { pixels };
        for (i, l) in self.layers[..self.count].iter().enumerate() {
            let (src, map): (&[u8], &mut [u8]) = match i % 2 {
                0 if i == 0 => (input, &mut *even),
                0 => (&*odd, &mut *even),
                _ => (&*even, &mut *odd),
            };
            let dst = if i + 1 == self.count {
                Out::Features(&mut *out)
            } else {
                Out::Map(map)
            };
            let (scales, biases, weights) = self.scales(l);
            if l.conv {
                conv_fast(l, weights, scales, biases, src, sums, dst);
            } else {
                dense_fast(l, weights, scales, biases, src, dst);
            }
        }
        Ok(())
    }

    /// The same features as [`Backbone::features`], bit for bit, by plain loops: maps
    /// without borders, a bounds test for every tap, one position at a time.
    pub fn features_reference(&self, pixels: &[u8], out: &mut [f32], scratch: &mut [f32]) -> Result<(), DeviceError> {
        self.check(pixels, out, scratch)?;
        let maps: &mut [u8] = bytemuck::cast_slice_mut(scratch);
        let (even, rest) = maps.split_at_mut(self.plain[0]);
        let odd = &mut rest[..self.plain[1]];
        for (i, l) in self.layers[..self.count].iter().enumerate() {
            let (src, map): (&[u8], &mut [u8]) = match i % 2 {
                0 if i == 0 => (pixels, &mut *even),
                0 => (&*odd, &mut *even),
                _ => (&*even, &mut *odd),
            };
            let last = i + 1 == self.count;
            let (scales, biases, weights) = self.scales(l);
            let (qh, qw) = l.out_hw();
            let window = if l.pool { 2 } else { 1 };
            for o in 0..l.outputs {
                let (scale, bias) = (le_f32(scales, o), le_f32(biases, o));
                for qy in 0..qh {
                    for qx in 0..qw {
                        let mut best = i32::MIN;
                        for a in 0..window * window {
                            let (y, x) = (window * qy + a / window, window * qx + a % window);
                            best = best.max(sum_reference(l, weights, src, o, y, x));
                        }
                        let at = (o * qh + qy) * qw + qx;
                        let v = value(best, scale, bias);
                        if last {
                            out[at] = if l.relu { relu(v) } else { v };
                        } else {
                            map[at] = to_u8(v);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// One output's integer sum at conv position `(y, x)` (`(0, 0)` for dense), from a map
/// without borders.
fn sum_reference(l: &LayerAt, weights: &[u8], src: &[u8], o: usize, y: usize, x: usize) -> i32 {
    let (k, p) = (l.kernel, l.pad);
    let mut acc = 0i32;
    for ci in 0..l.inputs {
        for dy in 0..k {
            for dx in 0..k {
                let (iy, ix) = ((y + dy).wrapping_sub(p), (x + dx).wrapping_sub(p));
                if iy < l.h && ix < l.w {
                    let w = weights[((o * l.inputs + ci) * k + dy) * k + dx] as i8;
                    acc += i32::from(w) * i32::from(src[(ci * l.h + iy) * l.w + ix]);
                }
            }
        }
    }
    acc
}

/// Where a layer writes: the next layer's u8 map, or the f32 features.
enum Out<'b> {
    Map(&'b mut [u8]),
    Features(&'b mut [f32]),
}

/// An integer sum as a value: one multiply, one add (never fused), the same bits on
/// every target.
fn value(acc: i32, scale: f32, bias: f32) -> f32 {
    acc as f32 * scale + bias
}

/// A value as the next layer's u8 activation: rounded half up, negatives to 0 (the
/// ReLU), past 255 to 255 (`as` saturates).
fn to_u8(v: f32) -> u8 {
    (v + 0.5) as u8
}

/// `max(v, 0)` with `+0.0` for every non-positive value (`f32::max` may keep `-0.0`).
fn relu(v: f32) -> f32 {
    if v > 0.0 {
        v
    } else {
        0.0
    }
}

/// Writes the output value of sum `acc` at `(qy, qx)` of channel `o`.
#[inline(always)]
fn emit(l: &LayerAt, dst: &mut Out<'_>, o: usize, (qy, qx): (usize, usize), acc: i32, (scale, bias): (f32, f32)) {
    let v = value(acc, scale, bias);
    let (qh, qw) = l.out_hw();
    match dst {
        Out::Map(m) => {
            let (b, stride) = (l.border, qw + 2 * l.border);
            m[(o * (qh + 2 * b) + qy + b) * stride + qx + b] = to_u8(v);
        }
        Out::Features(f) => f[(o * qh + qy) * qw + qx] = if l.relu { relu(v) } else { v },
    }
}

/// A convolution over a map with its zero border (`inputs x (h + 2 pad) x (w + 2 pad)`):
/// per output channel, the sums of every position accumulate in `sums`, one input
/// channel at a time (3x3 taps unrolled), then the pool and the scale.
fn conv_fast(
    l: &LayerAt,
    weights: &[u8],
    scales: &[u8],
    biases: &[u8],
    src: &[u8],
    sums: &mut [i32],
    mut dst: Out<'_>,
) {
    let (k, kk) = (l.kernel, l.kernel * l.kernel);
    let (ph, pw) = (l.h + 2 * l.pad, l.w + 2 * l.pad);
    let (oh, ow) = (l.oh, l.ow);
    let plane = ph * pw;
    let sums = &mut sums[..oh * ow];
    if let Out::Map(m) = &mut dst {
        if l.border > 0 {
            m.fill(0);
        }
    }
    let (qh, qw) = l.out_hw();
    for o in 0..l.outputs {
        sums.fill(0);
        for ci in 0..l.inputs {
            let wt = &weights[(o * l.inputs + ci) * kk..][..kk];
            let map = &src[ci * plane..][..plane];
            if k == 3 {
                // One kernel row at a time: three taps over three shifted views of an
                // input row, zipped so that no index is checked.
                for y in 0..oh {
                    let s = &mut sums[y * ow..][..ow];
                    for dy in 0..3 {
                        let r = &map[(y + dy) * pw..][..ow + 2];
                        let w = [tap(wt, 3 * dy), tap(wt, 3 * dy + 1), tap(wt, 3 * dy + 2)];
                        row3(w, r, s);
                    }
                }
            } else {
                for dy in 0..k {
                    for dx in 0..k {
                        let wv = i32::from(wt[dy * k + dx] as i8);
                        if wv == 0 {
                            continue;
                        }
                        for y in 0..oh {
                            let r = &map[(y + dy) * pw + dx..][..ow];
                            for (a, &v) in sums[y * ow..][..ow].iter_mut().zip(r) {
                                *a += wv * i32::from(v);
                            }
                        }
                    }
                }
            }
        }
        let (scale, bias) = (le_f32(scales, o), le_f32(biases, o));
        for qy in 0..qh {
            for qx in 0..qw {
                let acc = if l.pool {
                    let (t, b) = (&sums[2 * qy * ow..][..ow], &sums[(2 * qy + 1) * ow..][..ow]);
                    t[2 * qx].max(t[2 * qx + 1]).max(b[2 * qx].max(b[2 * qx + 1]))
                } else {
                    sums[qy * ow + qx]
                };
                emit(l, &mut dst, o, (qy, qx), acc, (scale, bias));
            }
        }
    }
}

/// A dense layer over a flat u8 vector: one zipped dot product per output.
fn dense_fast(l: &LayerAt, weights: &[u8], scales: &[u8], biases: &[u8], src: &[u8], mut dst: Out<'_>) {
    let n = l.inputs;
    let src = &src[..n];
    for (o, row) in weights[..l.outputs * n].chunks_exact(n).enumerate() {
        let acc: i32 = row
            .iter()
            .zip(src)
            .map(|(&w, &x)| i32::from(w as i8) * i32::from(x))
            .sum();
        emit(l, &mut dst, o, (0, 0), acc, (le_f32(scales, o), le_f32(biases, o)));
    }
}

/// `s[x] += w . r[x..x + 3]` for every `x` of `s` (`r` is two longer): three outputs per
/// step, the two pixels they share with the next step kept in registers, so each pixel
/// is loaded once.
#[inline(always)]
fn row3(w: [i32; 3], r: &[u8], s: &mut [i32]) {
    let [w0, w1, w2] = w;
    let (mut p0, mut p1) = (i32::from(r[0]), i32::from(r[1]));
    let mut sc = s.chunks_exact_mut(3);
    let mut rc = r[2..].chunks_exact(3);
    for (a, q) in (&mut sc).zip(&mut rc) {
        let (q0, q1, q2) = (i32::from(q[0]), i32::from(q[1]), i32::from(q[2]));
        a[0] += w0 * p0 + w1 * p1 + w2 * q0;
        a[1] += w0 * p1 + w1 * q0 + w2 * q1;
        a[2] += w0 * q0 + w1 * q1 + w2 * q2;
        (p0, p1) = (q1, q2);
    }
    for (a, &q) in sc.into_remainder().iter_mut().zip(rc.remainder()) {
        let q = i32::from(q);
        *a += w0 * p0 + w1 * p1 + w2 * q;
        (p0, p1) = (p1, q);
    }
}

/// Weight `j` of a kernel as i32.
fn tap(wt: &[u8], j: usize) -> i32 {
    i32::from(wt[j] as i8)
}

fn le_f32(b: &[u8], i: usize) -> f32 {
    f32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
}

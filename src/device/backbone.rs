//! The frozen backbone on the device: dense int8 layers with a per-row f32 scale, run in
//! place from their byte image (no copy into RAM).
//!
//! The first layer's dot products are exact integer sums of `weight x pixel` (i8 x u8 into
//! i32), scaled once per output by `scale / 255`; later layers sum `weight x value` in f32 in
//! index order. Either way the result is the same on every target.

use super::image::{pad4, Reader};
use super::DeviceError;

/// Most layers a backbone image may have.
pub const MAX_LAYERS: usize = 8;

/// Most inputs of the first layer: its integer sums of `i8 x u8` stay inside `i32`
/// (`65535 x 128 x 255 < 2^31`).
const MAX_PIXELS: usize = 65535;

const MAGIC: &[u8; 4] = b"ECBB";
const VERSION: u16 = 1;
const HEADER: usize = 24;
const LAYER_HEADER: usize = 16;
const WHAT: &str = "backbone";

/// One layer's place in the image.
#[derive(Debug, Clone, Copy, Default)]
struct LayerAt {
    inputs: usize,
    outputs: usize,
    relu: bool,
    /// Offset of the scales in the body (biases and weights follow).
    at: usize,
}

/// A validated backbone image.
#[derive(Debug, Clone, Copy)]
pub struct Backbone<'a> {
    body: &'a [u8],
    layers: [LayerAt; MAX_LAYERS],
    count: usize,
    input: usize,
    output: usize,
    widest: usize,
}

impl<'a> Backbone<'a> {
    /// Validates an image: magic, version, lengths, CRC, layer widths chaining from the
    /// input to the output, finite scales and biases.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DeviceError> {
        let r = Reader { bytes, what: WHAT };
        let body = r.body(MAGIC, VERSION, 16, HEADER)?;
        let bad = |why| DeviceError::Malformed { what: WHAT, why };
        let count = r.u16(6)? as usize;
        let (input, output) = (r.u32(8)? as usize, r.u32(12)? as usize);
        if count == 0 || count > MAX_LAYERS {
            return Err(bad("1 to 8 layers"));
        }
        let b = Reader {
            bytes: body,
            what: WHAT,
        };
        let mut layers = [LayerAt::default(); MAX_LAYERS];
        let (mut at, mut width, mut widest) = (0usize, input, 0usize);
        for layer in layers.iter_mut().take(count) {
            let (inputs, outputs) = (b.u32(at)? as usize, b.u32(at + 4)? as usize);
            let flags = b.u32(at + 8)?;
            if inputs != width || outputs == 0 || flags > 1 {
                return Err(bad(
                    "a layer's inputs differ from the width before it, or it has no outputs",
                ));
            }
            if at == 0 && inputs > MAX_PIXELS {
                return Err(bad("the first layer takes at most 65535 pixels"));
            }
            let overflow = bad("a layer's size overflows");
            let values = at.checked_add(LAYER_HEADER).ok_or(overflow)?;
            let bytes = (|| {
                outputs
                    .checked_mul(inputs)?
                    .checked_add(outputs.checked_mul(8)?)?
                    .checked_add(3)
            })()
            .ok_or(overflow)?;
            let end = values.checked_add(pad4(bytes - 3)).ok_or(overflow)?;
            b.slice(values, end - values)?;
            for i in 0..2 * outputs {
                if !b.f32(values + 4 * i)?.is_finite() {
                    return Err(bad("a scale or bias is NaN or infinite"));
                }
            }
            *layer = LayerAt {
                inputs,
                outputs,
                relu: flags == 1,
                at: values,
            };
            (at, width, widest) = (end, outputs, widest.max(outputs));
        }
        if width != output || at != body.len() {
            return Err(bad(
                "the last layer's width is not the output, or the body has bytes left",
            ));
        }
        Ok(Backbone {
            body,
            layers,
            count,
            input,
            output,
            widest,
        })
    }

    /// Pixels per sample.
    pub fn input(&self) -> usize {
        self.input
    }

    /// Features per sample (the head's input width).
    pub fn output(&self) -> usize {
        self.output
    }

    /// Layers.
    pub fn layers(&self) -> usize {
        self.count
    }

    /// `f32`s of scratch [`Backbone::features`] needs: two of the widest layer.
    pub fn scratch_len(&self) -> usize {
        2 * self.widest
    }

    /// Weights (int8) in the image.
    pub fn weights(&self) -> usize {
        self.layers[..self.count].iter().map(|l| l.inputs * l.outputs).sum()
    }

    /// The features of one sample of `input()` pixels (`0..=255`, read as `p / 255`) into
    /// `out` (`output()` values), through `scratch` (`scratch_len()` values).
    pub fn features(&self, pixels: &[u8], out: &mut [f32], scratch: &mut [f32]) -> Result<(), DeviceError> {
        if pixels.len() != self.input || out.len() != self.output || scratch.len() < self.scratch_len() {
            return Err(DeviceError::Mismatch(
                "backbone buffers: pixels, features or scratch of the wrong length",
            ));
        }
        let (a, rest) = scratch.split_at_mut(self.widest);
        let b = &mut rest[..self.widest];
        for (l, layer) in self.layers[..self.count].iter().enumerate() {
            let n = layer.outputs;
            let scales = &self.body[layer.at..layer.at + 4 * n];
            let biases = &self.body[layer.at + 4 * n..layer.at + 8 * n];
            let weights = &self.body[layer.at + 8 * n..layer.at + 8 * n + n * layer.inputs];
            let (src, dst) = if l % 2 == 0 { (&*b, &mut *a) } else { (&*a, &mut *b) };
            for j in 0..n {
                let row = &weights[j * layer.inputs..(j + 1) * layer.inputs];
                let scale = le_f32(&scales[4 * j..]);
                let bias = le_f32(&biases[4 * j..]);
                let v = if l == 0 {
                    let acc: i32 = row
                        .iter()
                        .zip(pixels)
                        .map(|(&w, &p)| i32::from(w as i8) * i32::from(p))
                        .sum();
                    acc as f32 * (scale / 255.0) + bias
                } else {
                    let mut acc = 0.0f32;
                    for (&w, &x) in row.iter().zip(&src[..layer.inputs]) {
                        acc += f32::from(w as i8) * x;
                    }
                    acc * scale + bias
                };
                dst[j] = if layer.relu { v.max(0.0) } else { v };
            }
        }
        let last = if self.count % 2 == 1 { &*a } else { &*b };
        out.copy_from_slice(&last[..self.output]);
        Ok(())
    }
}

fn le_f32(b: &[u8]) -> f32 {
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

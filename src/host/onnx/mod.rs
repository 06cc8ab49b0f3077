//! ONNX backbones (feature `onnx`): a dense ReLU backbone written as an ONNX model, and
//! ONNX backbones run by tract to turn samples into the head's features.
//!
//! A dense backbone written by [`BackboneModel::to_onnx`] is the plainest ONNX a runtime
//! accepts:
//!
//! ```text
//! input  "input"    float [N, d_0]          N is a symbolic batch axis ("N")
//! Gemm(input, W_0, b_0, transB=1) -> Relu -> Gemm(., W_1, b_1, transB=1) -> Relu -> ...
//! output "features" float [N, d_L]          the last layer's post-ReLU activations
//! ```
//!
//! with the weights as initializers (`W_l` is `d_{l+1} x d_l`, row-major, the layout of the
//! core's dense layers and of PyTorch's `Linear`), opset 13, IR version 8. Convolutional
//! backbones start with a `Reshape` of the flat sample to `[N, C, H, W]` and use `Conv`,
//! `MaxPool`, `Relu` and `Flatten` before their dense layers ([`Layer`]).
//!
//! [`Backbone::load`] reads any ONNX model with one float input `[N, d]` and one float
//! output `[N, f]`; a truncated, corrupted or unsupported file is an error that names the
//! file and the problem.

mod backbone;
mod export;
mod import;

pub use backbone::Backbone;

use anyhow::{bail, ensure, Result};
use ndarray::{Array2, ArrayView2, Axis};

/// A model shipped in `models/`, compiled into the binary.
#[derive(Debug, Clone, Copy)]
pub struct Shipped {
    /// Its folder's name (`--model NAME`).
    pub name: &'static str,
    /// The shape of the samples it takes (`[28, 28]` images, `[100, 6]` windows).
    pub sample_shape: &'static [usize],
    /// `backbone.onnx`.
    pub onnx: &'static [u8],
}

/// The models shipped in `models/`, compiled into the binary; the first whose sample
/// shape matches the data's is the edge protocol's default ([`shipped_for`]).
pub const SHIPPED: &[Shipped] = &[
    Shipped {
        name: "fashion-cnn",
        sample_shape: &[28, 28],
        onnx: include_bytes!("../../../models/fashion-cnn/backbone.onnx"),
    },
    Shipped {
        name: "mnist04-cnn",
        sample_shape: &[28, 28],
        onnx: include_bytes!("../../../models/mnist04-cnn/backbone.onnx"),
    },
    Shipped {
        name: "watch03-conv1d",
        sample_shape: &[100, 6],
        onnx: include_bytes!("../../../models/watch03-conv1d/backbone.onnx"),
    },
];

/// The shipped model whose features feed the edge protocol's head on 28x28 images.
pub const DEFAULT_MODEL: &str = "fashion-cnn";

/// The ONNX bytes of the shipped model `name`.
pub fn shipped(name: &str) -> Option<&'static [u8]> {
    SHIPPED.iter().find(|m| m.name == name).map(|m| m.onnx)
}

/// The first shipped model that takes samples of `shape`.
pub fn shipped_for(shape: &[usize]) -> Option<&'static Shipped> {
    SHIPPED.iter().find(|m| m.sample_shape == shape)
}

/// Largest `|a_i - b_i|` over two equally long runs of features (0 when empty).
pub fn max_abs_difference<'a>(a: impl IntoIterator<Item = &'a f32>, b: impl IntoIterator<Item = &'a f32>) -> f32 {
    a.into_iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max)
}

/// One layer of a [`BackboneModel`].
#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
    /// Views each flat sample as a `channels x height x width` image.
    Image {
        /// Channels.
        channels: usize,
        /// Rows.
        height: usize,
        /// Columns.
        width: usize,
    },
    /// 2-D convolution, stride 1, square kernel, zero padding `pad` on every side.
    Conv {
        /// `out x in x kernel x kernel`, row-major (ONNX's and burn's layout).
        weights: Vec<f32>,
        /// `out` biases.
        biases: Vec<f32>,
        /// Input channels.
        inputs: usize,
        /// Output channels.
        outputs: usize,
        /// Kernel side.
        kernel: usize,
        /// Padding on each side.
        pad: usize,
    },
    /// 2x2 max pooling, stride 2.
    MaxPool2,
    /// Views each flat sample, time-major (`[steps, channels]`, a sensor window), as
    /// `channels` sequences of `steps` values, channel `c` normalised to
    /// `(x - mean[c]) * scale[c]` (ONNX: `Reshape`, `Sub`, `Mul`, `Transpose`).
    Window {
        /// Time steps.
        steps: usize,
        /// Channels.
        channels: usize,
        /// Per channel, subtracted first.
        mean: Vec<f32>,
        /// Per channel, multiplied after.
        scale: Vec<f32>,
    },
    /// 1-D convolution over time, stride 1, zero padding `pad` at both ends.
    Conv1d {
        /// `out x in x kernel`, row-major (ONNX's and burn's layout).
        weights: Vec<f32>,
        /// `out` biases.
        biases: Vec<f32>,
        /// Input channels.
        inputs: usize,
        /// Output channels.
        outputs: usize,
        /// Kernel length.
        kernel: usize,
        /// Padding at each end.
        pad: usize,
    },
    /// Max pooling over 2 time steps, stride 2 (a last odd step is dropped).
    MaxPool1d2,
    /// `max(x, 0)`.
    Relu,
    /// Image back to a flat vector (channel-major).
    Flatten,
    /// Dense layer `y = W x + b`.
    Dense {
        /// `outputs x inputs`, row-major (PyTorch's `Linear` layout).
        weights: Vec<f32>,
        /// `outputs` biases.
        biases: Vec<f32>,
        /// Input width.
        inputs: usize,
        /// Output width.
        outputs: usize,
    },
}

/// A frozen feature extractor as a sequence of layers over flat samples of
/// `input_width` values; what [`BackboneModel::to_onnx`] writes.
#[derive(Debug, Clone, PartialEq)]
pub struct BackboneModel {
    /// Values per (flat) sample.
    pub input_width: usize,
    /// Layers, input first.
    pub layers: Vec<Layer>,
}

/// The shape flowing between layers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    Flat(usize),
    Image(usize, usize, usize),
    /// `channels x steps`.
    Seq(usize, usize),
}

impl Shape {
    fn len(self) -> usize {
        match self {
            Shape::Flat(n) => n,
            Shape::Image(c, h, w) => c * h * w,
            Shape::Seq(c, t) => c * t,
        }
    }
}

impl BackboneModel {
    /// Dense ReLU layers `dims[0] -> dims[1] -> ...` (ReLU after each), with PyTorch's
    /// `Linear` initialisation (`U(-1/sqrt(fan_in), 1/sqrt(fan_in))`) from the core's
    /// seeded generator.
    pub fn random_dense(dims: &[usize], seed: u64) -> BackboneModel {
        let mut rng = crate::learner::rng::Rng::new(seed);
        let mut layers = Vec::new();
        for w in dims.windows(2) {
            let (i, o) = (w[0], w[1]);
            let bound = 1.0 / (i.max(1) as f32).sqrt();
            layers.push(Layer::Dense {
                weights: (0..i * o).map(|_| rng.uniform_range(-bound, bound)).collect(),
                biases: (0..o).map(|_| rng.uniform_range(-bound, bound)).collect(),
                inputs: i,
                outputs: o,
            });
            layers.push(Layer::Relu);
        }
        BackboneModel {
            input_width: dims.first().copied().unwrap_or(0),
            layers,
        }
    }

    /// The shapes after each layer, checking that every layer fits its input; the last
    /// is the features' shape, which must be flat.
    fn shapes(&self) -> Result<Vec<Shape>> {
        let mut shape = Shape::Flat(self.input_width);
        ensure!(self.input_width > 0, "a backbone's input width must be positive");
        let mut out = Vec::with_capacity(self.layers.len());
        for (l, layer) in self.layers.iter().enumerate() {
            shape = match (layer, shape) {
                (
                    Layer::Image {
                        channels,
                        height,
                        width,
                    },
                    Shape::Flat(n),
                ) => {
                    ensure!(
                        channels * height * width == n,
                        "layer {l}: {n} values are not a {channels}x{height}x{width} image"
                    );
                    Shape::Image(*channels, *height, *width)
                }
                (
                    Layer::Conv {
                        weights,
                        biases,
                        inputs,
                        outputs,
                        kernel,
                        pad,
                    },
                    Shape::Image(c, h, w),
                ) => {
                    ensure!(*inputs == c, "layer {l}: convolution takes {inputs} channels, gets {c}");
                    ensure!(
                        weights.len() == outputs * inputs * kernel * kernel && biases.len() == *outputs,
                        "layer {l}: convolution weights or biases have the wrong size"
                    );
                    ensure!(
                        *kernel >= 1 && h + 2 * pad >= *kernel && w + 2 * pad >= *kernel,
                        "layer {l}: kernel {kernel} larger than its input"
                    );
                    Shape::Image(*outputs, h + 2 * pad + 1 - kernel, w + 2 * pad + 1 - kernel)
                }
                (Layer::MaxPool2, Shape::Image(c, h, w)) => {
                    ensure!(h >= 2 && w >= 2, "layer {l}: cannot pool a {h}x{w} image");
                    Shape::Image(c, h / 2, w / 2)
                }
                (
                    Layer::Window {
                        steps,
                        channels,
                        mean,
                        scale,
                    },
                    Shape::Flat(n),
                ) => {
                    ensure!(
                        steps * channels == n && *steps >= 1,
                        "layer {l}: {n} values are not a window of {steps} steps x {channels} channels"
                    );
                    ensure!(
                        mean.len() == *channels && scale.len() == *channels,
                        "layer {l}: the window's normalisation has the wrong size"
                    );
                    Shape::Seq(*channels, *steps)
                }
                (
                    Layer::Conv1d {
                        weights,
                        biases,
                        inputs,
                        outputs,
                        kernel,
                        pad,
                    },
                    Shape::Seq(c, t),
                ) => {
                    ensure!(*inputs == c, "layer {l}: convolution takes {inputs} channels, gets {c}");
                    ensure!(
                        weights.len() == outputs * inputs * kernel && biases.len() == *outputs,
                        "layer {l}: convolution weights or biases have the wrong size"
                    );
                    ensure!(
                        *kernel >= 1 && t + 2 * pad >= *kernel,
                        "layer {l}: kernel {kernel} longer than its input"
                    );
                    Shape::Seq(*outputs, t + 2 * pad + 1 - kernel)
                }
                (Layer::MaxPool1d2, Shape::Seq(c, t)) => {
                    ensure!(t >= 2, "layer {l}: cannot pool {t} step");
                    Shape::Seq(c, t / 2)
                }
                (Layer::Relu, s) => s,
                (Layer::Flatten, s) => Shape::Flat(s.len()),
                (
                    Layer::Dense {
                        weights,
                        biases,
                        inputs,
                        outputs,
                    },
                    Shape::Flat(n),
                ) => {
                    ensure!(*inputs == n, "layer {l}: dense layer takes {inputs} values, gets {n}");
                    ensure!(
                        weights.len() == inputs * outputs && biases.len() == *outputs,
                        "layer {l}: dense weights or biases have the wrong size"
                    );
                    Shape::Flat(*outputs)
                }
                (layer, s) => bail!("layer {l}: {layer:?} does not apply to a {s:?} input"),
            };
            out.push(shape);
        }
        ensure!(
            matches!(shape, Shape::Flat(n) if n > 0),
            "a backbone must end in flat features, it ends in {shape:?}"
        );
        Ok(out)
    }

    /// Width of the features.
    pub fn feature_width(&self) -> Result<usize> {
        Ok(self.shapes()?.last().map_or(self.input_width, |s| s.len()))
    }
}

impl BackboneModel {
    /// The features of `x` (`n x input_width`) computed with plain loops in f64: the
    /// reference the ONNX runtime and the trainer are checked against.
    pub fn forward(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        let shapes = self.shapes()?;
        ensure!(
            x.ncols() == self.input_width,
            "samples have {} values, the backbone takes {}",
            x.ncols(),
            self.input_width
        );
        let features = shapes.last().map_or(self.input_width, |s| s.len());
        let mut out = Array2::<f32>::zeros((x.nrows(), features));
        for (row, mut dst) in x.axis_iter(Axis(0)).zip(out.axis_iter_mut(Axis(0))) {
            let mut v: Vec<f64> = row.iter().map(|&a| a as f64).collect();
            let mut shape = Shape::Flat(self.input_width);
            for (layer, &next) in self.layers.iter().zip(&shapes) {
                v = match (layer, shape, next) {
                    (
                        Layer::Conv {
                            weights,
                            biases,
                            inputs,
                            outputs,
                            kernel,
                            pad,
                        },
                        Shape::Image(_, h, w),
                        Shape::Image(_, oh, ow),
                    ) => {
                        let (k, p) = (*kernel, *pad as isize);
                        let mut o = vec![0.0f64; outputs * oh * ow];
                        for co in 0..*outputs {
                            for y in 0..oh {
                                for xx in 0..ow {
                                    let mut s = biases[co] as f64;
                                    for ci in 0..*inputs {
                                        for dy in 0..k {
                                            for dx in 0..k {
                                                let (iy, ix) =
                                                    (y as isize + dy as isize - p, xx as isize + dx as isize - p);
                                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                                    let wv = weights[((co * inputs + ci) * k + dy) * k + dx] as f64;
                                                    s += wv * v[(ci * h + iy as usize) * w + ix as usize];
                                                }
                                            }
                                        }
                                    }
                                    o[(co * oh + y) * ow + xx] = s;
                                }
                            }
                        }
                        o
                    }
                    (Layer::MaxPool2, Shape::Image(c, h, w), Shape::Image(_, oh, ow)) => {
                        let mut o = vec![0.0f64; c * oh * ow];
                        for ch in 0..c {
                            for y in 0..oh {
                                for xx in 0..ow {
                                    let at = |dy: usize, dx: usize| v[(ch * h + 2 * y + dy) * w + 2 * xx + dx];
                                    o[(ch * oh + y) * ow + xx] = at(0, 0).max(at(0, 1)).max(at(1, 0)).max(at(1, 1));
                                }
                            }
                        }
                        o
                    }
                    (
                        Layer::Window {
                            steps,
                            channels,
                            mean,
                            scale,
                        },
                        ..,
                    ) => {
                        let (t, c) = (*steps, *channels);
                        let mut o = vec![0.0f64; t * c];
                        for s in 0..t {
                            for ch in 0..c {
                                o[ch * t + s] = (v[s * c + ch] - mean[ch] as f64) * scale[ch] as f64;
                            }
                        }
                        o
                    }
                    (
                        Layer::Conv1d {
                            weights,
                            biases,
                            inputs,
                            outputs,
                            kernel,
                            pad,
                        },
                        Shape::Seq(_, t),
                        Shape::Seq(_, ot),
                    ) => {
                        let (k, p) = (*kernel, *pad as isize);
                        let mut o = vec![0.0f64; outputs * ot];
                        for co in 0..*outputs {
                            for s in 0..ot {
                                let mut acc = biases[co] as f64;
                                for ci in 0..*inputs {
                                    for d in 0..k {
                                        let at = s as isize + d as isize - p;
                                        if at >= 0 && (at as usize) < t {
                                            acc += weights[(co * inputs + ci) * k + d] as f64 * v[ci * t + at as usize];
                                        }
                                    }
                                }
                                o[co * ot + s] = acc;
                            }
                        }
                        o
                    }
                    (Layer::MaxPool1d2, Shape::Seq(c, t), Shape::Seq(_, ot)) => {
                        let mut o = vec![0.0f64; c * ot];
                        for ch in 0..c {
                            for s in 0..ot {
                                o[ch * ot + s] = v[ch * t + 2 * s].max(v[ch * t + 2 * s + 1]);
                            }
                        }
                        o
                    }
                    (Layer::Relu, ..) => v.into_iter().map(|a| a.max(0.0)).collect(),
                    (
                        Layer::Dense {
                            weights,
                            biases,
                            inputs,
                            outputs,
                        },
                        ..,
                    ) => (0..*outputs)
                        .map(|j| {
                            let w = &weights[j * inputs..(j + 1) * inputs];
                            w.iter().zip(&v).map(|(&a, &b)| a as f64 * b).sum::<f64>() + biases[j] as f64
                        })
                        .collect(),
                    (Layer::Image { .. } | Layer::Flatten, ..) => v,
                    (layer, ..) => bail!("internal: {layer:?} met an input it does not take"),
                };
                shape = next;
            }
            dst.iter_mut().zip(&v).for_each(|(d, &s)| *d = s as f32);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learner::rng::Rng;

    #[test]
    fn exported_model_runs_in_tract_like_the_reference_at_any_batch() {
        let b = BackboneModel::random_dense(&[20, 16, 8], 3);
        let onnx = b.to_onnx().unwrap();
        let loaded = Backbone::from_bytes(&onnx, "test.onnx").unwrap();
        assert_eq!((loaded.input_width(), loaded.feature_width()), (20, 8));
        let mut rng = Rng::new(4);
        for n in [1usize, 7, 600] {
            let x = Array2::from_shape_fn((n, 20), |_| rng.uniform());
            let want = b.forward(x.view()).unwrap();
            let got = loaded.features(x.view()).unwrap();
            let err = max_abs_difference(&want, &got);
            assert!(err < 1e-5, "batch {n}: max error {err}");
        }
        assert!(loaded.features(Array2::zeros((2, 19)).view()).is_err());
    }

    #[test]
    fn convolutional_backbone_runs_in_tract_like_the_reference() {
        let mut rng = Rng::new(8);
        let mut r = |n: usize| (0..n).map(|_| rng.uniform_range(-0.5, 0.5)).collect::<Vec<f32>>();
        let model = BackboneModel {
            input_width: 2 * 8 * 8,
            layers: vec![
                Layer::Image {
                    channels: 2,
                    height: 8,
                    width: 8,
                },
                Layer::Conv {
                    weights: r(3 * 2 * 9),
                    biases: r(3),
                    inputs: 2,
                    outputs: 3,
                    kernel: 3,
                    pad: 1,
                },
                Layer::Relu,
                Layer::MaxPool2,
                Layer::Conv {
                    weights: r(4 * 3 * 9),
                    biases: r(4),
                    inputs: 3,
                    outputs: 4,
                    kernel: 3,
                    pad: 0,
                },
                Layer::Relu,
                Layer::Flatten,
                Layer::Dense {
                    weights: r(5 * 16),
                    biases: r(5),
                    inputs: 16,
                    outputs: 5,
                },
                Layer::Relu,
            ],
        };
        assert_eq!(model.feature_width().unwrap(), 5);
        let loaded = Backbone::from_bytes(&model.to_onnx().unwrap(), "cnn.onnx").unwrap();
        assert_eq!((loaded.input_width(), loaded.feature_width()), (128, 5));
        let x = Array2::from_shape_fn((9, 128), |_| rng.uniform());
        let want = model.forward(x.view()).unwrap();
        let got = loaded.features(x.view()).unwrap();
        let err = max_abs_difference(&want, &got);
        assert!(err < 1e-5, "max error {err}");
        assert!(want.iter().any(|&v| v > 0.0));
        let mut bad = model.clone();
        bad.layers.remove(0);
        assert!(bad.to_onnx().is_err(), "a convolution over a flat input is refused");
    }

    #[test]
    fn window_backbone_runs_in_tract_like_the_reference() {
        let mut rng = Rng::new(5);
        let mut r = |n: usize| (0..n).map(|_| rng.uniform_range(-0.5, 0.5)).collect::<Vec<f32>>();
        let (t, c) = (11, 3);
        let model = BackboneModel {
            input_width: t * c,
            layers: vec![
                Layer::Window {
                    steps: t,
                    channels: c,
                    mean: vec![0.1, -2.0, 5.0],
                    scale: vec![2.0, 0.5, 1.0],
                },
                Layer::Conv1d {
                    weights: r(4 * 3 * 5),
                    biases: r(4),
                    inputs: 3,
                    outputs: 4,
                    kernel: 5,
                    pad: 2,
                },
                Layer::Relu,
                Layer::MaxPool1d2,
                Layer::Conv1d {
                    weights: r(2 * 4 * 3),
                    biases: r(2),
                    inputs: 4,
                    outputs: 2,
                    kernel: 3,
                    pad: 0,
                },
                Layer::Relu,
                Layer::Flatten,
                Layer::Dense {
                    weights: r(6 * 6),
                    biases: r(6),
                    inputs: 6,
                    outputs: 6,
                },
                Layer::Relu,
            ],
        };
        assert_eq!(model.feature_width().unwrap(), 6);
        let loaded = Backbone::from_bytes(&model.to_onnx().unwrap(), "conv1d.onnx").unwrap();
        assert_eq!((loaded.input_width(), loaded.feature_width()), (33, 6));
        let x = Array2::from_shape_fn((7, 33), |(i, j)| {
            (i as f32 - 3.0) + (j % 3) as f32 * 2.0 + rng.uniform()
        });
        let want = model.forward(x.view()).unwrap();
        let got = loaded.features(x.view()).unwrap();
        let err = max_abs_difference(&want, &got);
        assert!(err < 1e-4, "max error {err}");
        assert!(want.iter().any(|&v| v > 0.0));
        let mut bad = model.clone();
        bad.layers.remove(0);
        assert!(bad.to_onnx().is_err(), "a 1-D convolution over a flat input is refused");
    }

    #[test]
    fn every_truncation_of_a_model_is_an_error_naming_the_file() {
        let onnx = BackboneModel::random_dense(&[6, 5, 4], 9).to_onnx().unwrap();
        for len in 0..onnx.len() {
            match Backbone::from_bytes(&onnx[..len], "small.onnx") {
                Ok(b) => {
                    // A prefix that still decodes must still describe a usable model.
                    let x = Array2::<f32>::zeros((1, b.input_width()));
                    let _ = b.features(x.view());
                }
                Err(e) => {
                    let msg = format!("{e:#}");
                    assert!(msg.starts_with("small.onnx: "), "{len}: {msg}");
                    assert!(!msg.contains('\n'), "{len}: {msg}");
                }
            }
        }
    }

    #[test]
    fn corrupted_bytes_are_errors() {
        let mut onnx = BackboneModel::random_dense(&[6, 5, 4], 9).to_onnx().unwrap();
        let mut rng = Rng::new(1);
        for _ in 0..3000 {
            let i = rng.below(onnx.len() as u32) as usize;
            let saved = onnx[i];
            onnx[i] = rng.next_u32() as u8;
            if let Ok(b) = Backbone::from_bytes(&onnx, "x.onnx") {
                let _ = b.features(Array2::<f32>::zeros((2, b.input_width())).view());
            }
            onnx[i] = saved;
        }
        assert!(Backbone::from_bytes(b"not an onnx file at all", "junk.onnx").is_err());
    }
}

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

/// The models shipped in `models/`, compiled into the binary: `(name, backbone.onnx)`.
pub const SHIPPED: &[(&str, &[u8])] = &[
    (
        "fashion-cnn",
        include_bytes!("../../../models/fashion-cnn/backbone.onnx"),
    ),
    (
        "mnist04-cnn",
        include_bytes!("../../../models/mnist04-cnn/backbone.onnx"),
    ),
];

/// The shipped model whose features feed the edge protocol's head by default.
pub const DEFAULT_MODEL: &str = "fashion-cnn";

/// The ONNX bytes of the shipped model `name`.
pub fn shipped(name: &str) -> Option<&'static [u8]> {
    SHIPPED.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
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
}

impl Shape {
    fn len(self) -> usize {
        match self {
            Shape::Flat(n) => n,
            Shape::Image(c, h, w) => c * h * w,
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

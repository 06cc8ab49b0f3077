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

use anyhow::{bail, ensure, Context, Result};
use ndarray::{Array2, ArrayView2, Axis};
use prost::Message;
use std::path::Path;
use std::sync::Arc;
use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::DimLike;

/// The models shipped in `models/`, compiled into the binary: `(name, backbone.onnx)`.
pub const SHIPPED: &[(&str, &[u8])] = &[
    ("fashion-cnn", include_bytes!("../../models/fashion-cnn/backbone.onnx")),
    ("mnist04-cnn", include_bytes!("../../models/mnist04-cnn/backbone.onnx")),
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

/// Symbolic name of the batch axis.
const BATCH: &str = "N";
/// ONNX opset the writer targets.
const OPSET: i64 = 13;
/// ONNX IR version the writer targets.
const IR_VERSION: i64 = 8;

fn value_info(name: &str, width: usize) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    let dim = |v: Value| Dimension {
        value: Some(v),
        ..Default::default()
    };
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: vec![dim(Value::DimParam(BATCH.into())), dim(Value::DimValue(width as i64))],
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn initializer(name: String, dims: &[usize], data: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name,
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: pb::tensor_proto::DataType::Float as i32,
        float_data: data.to_vec(),
        ..Default::default()
    }
}

fn ints(name: &str, values: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: values.to_vec(),
        ..Default::default()
    }
}

fn int(name: &str, value: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
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

    /// The backbone as an encoded ONNX `ModelProto`.
    pub fn to_onnx(&self) -> Result<Vec<u8>> {
        let shapes = self.shapes()?;
        let mut nodes = Vec::new();
        let mut inits = Vec::new();
        let mut x = "input".to_string();
        let last = self.layers.len().saturating_sub(1);
        for (l, layer) in self.layers.iter().enumerate() {
            let out = if l == last {
                "features".to_string()
            } else {
                format!("t{l}")
            };
            let mut node = pb::NodeProto {
                output: vec![out.clone()],
                name: format!("n{l}"),
                ..Default::default()
            };
            match layer {
                Layer::Image {
                    channels,
                    height,
                    width,
                } => {
                    let shape = format!("shape{l}");
                    inits.push(pb::TensorProto {
                        name: shape.clone(),
                        dims: vec![4],
                        data_type: pb::tensor_proto::DataType::Int64 as i32,
                        int64_data: vec![-1, *channels as i64, *height as i64, *width as i64],
                        ..Default::default()
                    });
                    node.op_type = "Reshape".into();
                    node.input = vec![x.clone(), shape];
                }
                Layer::Conv {
                    weights,
                    biases,
                    inputs,
                    outputs,
                    kernel,
                    pad,
                } => {
                    let (w, b) = (format!("W{l}"), format!("b{l}"));
                    inits.push(initializer(w.clone(), &[*outputs, *inputs, *kernel, *kernel], weights));
                    inits.push(initializer(b.clone(), &[*outputs], biases));
                    node.op_type = "Conv".into();
                    node.input = vec![x.clone(), w, b];
                    let (k, p) = (*kernel as i64, *pad as i64);
                    node.attribute = vec![
                        ints("kernel_shape", &[k, k]),
                        ints("pads", &[p, p, p, p]),
                        ints("strides", &[1, 1]),
                    ];
                }
                Layer::MaxPool2 => {
                    node.op_type = "MaxPool".into();
                    node.input = vec![x.clone()];
                    node.attribute = vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])];
                }
                Layer::Relu => {
                    node.op_type = "Relu".into();
                    node.input = vec![x.clone()];
                }
                Layer::Flatten => {
                    node.op_type = "Flatten".into();
                    node.input = vec![x.clone()];
                    node.attribute = vec![int("axis", 1)];
                }
                Layer::Dense {
                    weights,
                    biases,
                    inputs,
                    outputs,
                } => {
                    let (w, b) = (format!("W{l}"), format!("b{l}"));
                    inits.push(initializer(w.clone(), &[*outputs, *inputs], weights));
                    inits.push(initializer(b.clone(), &[*outputs], biases));
                    node.op_type = "Gemm".into();
                    node.input = vec![x.clone(), w, b];
                    node.attribute = vec![int("transB", 1)];
                }
            }
            nodes.push(node);
            x = out;
        }
        let features = shapes.last().map_or(self.input_width, |s| s.len());
        let graph = pb::GraphProto {
            name: "edgecl_backbone".into(),
            node: nodes,
            initializer: inits,
            input: vec![value_info("input", self.input_width)],
            output: vec![value_info("features", features)],
            ..Default::default()
        };
        ensure!(!graph.node.is_empty(), "a backbone needs at least one layer");
        let model = pb::ModelProto {
            ir_version: IR_VERSION,
            producer_name: "edgecl".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: OPSET,
            }],
            graph: Some(graph),
            ..Default::default()
        };
        Ok(model.encode_to_vec())
    }

    /// Reads back a backbone from an ONNX file such as [`BackboneModel::to_onnx`] and
    /// `edgecl train` write (`Reshape` to an image first, `Conv` with a square kernel,
    /// stride 1 and even zero padding, `MaxPool` 2x2 stride 2, `Relu`, `Flatten`, `Gemm`):
    /// what the device's int8 image is made from. Any other operator or attribute, or a
    /// graph that is not one chain from the input, is an error.
    pub fn from_onnx(bytes: &[u8], name: &str) -> Result<BackboneModel> {
        use pb::tensor_proto::DataType;
        let bad = |what: String| anyhow::anyhow!("{name}: {what}");
        let proto = pb::ModelProto::decode(bytes).map_err(|e| bad(format!("not a valid ONNX file ({e})")))?;
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| bad("not an ONNX model: it has no graph".into()))?;
        check_graph(graph).map_err(|e| bad(e.to_string()))?;
        let input = graph
            .input
            .first()
            .ok_or_else(|| bad("the graph has no input".into()))?;
        let floats = |t: &pb::TensorProto| -> Result<Vec<f32>> {
            check_initializer(t).map_err(|e| bad(format!("initializer `{}`: {e}", t.name)))?;
            ensure!(
                t.data_type == DataType::Float as i32,
                "{name}: initializer `{}` is not float",
                t.name
            );
            Ok(if t.raw_data.is_empty() {
                t.float_data.clone()
            } else {
                t.raw_data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect()
            })
        };
        let init = |n: &str| graph.initializer.iter().find(|t| t.name == n);
        let mut x = input.name.clone();
        let mut width = None;
        let mut layers = Vec::new();
        for node in &graph.node {
            ensure!(
                node.input.first() == Some(&x) && node.output.len() == 1,
                "{name}: node `{}` does not continue the chain from the input",
                node.name
            );
            let attr = |n: &str| node.attribute.iter().find(|a| a.name == n);
            match node.op_type.as_str() {
                "Relu" => layers.push(Layer::Relu),
                "Gemm" => {
                    let trans_b = attr("transB").map_or(0, |a| a.i);
                    ensure!(
                        attr("transA").map_or(0, |a| a.i) == 0
                            && attr("alpha").map_or(1.0, |a| a.f) == 1.0
                            && attr("beta").map_or(1.0, |a| a.f) == 1.0
                            && node.input.len() == 3,
                        "{name}: Gemm `{}` is not y = x W^T + b",
                        node.name
                    );
                    let (w, b) = match (init(&node.input[1]), init(&node.input[2])) {
                        (Some(w), Some(b)) => (w, b),
                        _ => bail!("{name}: Gemm `{}` takes its weights from outside the file", node.name),
                    };
                    ensure!(
                        w.dims.len() == 2,
                        "{name}: Gemm `{}` weights are not a matrix",
                        node.name
                    );
                    let (d0, d1) = (w.dims[0] as usize, w.dims[1] as usize);
                    let (outputs, inputs) = if trans_b == 1 { (d0, d1) } else { (d1, d0) };
                    let mut weights = floats(w)?;
                    if trans_b != 1 {
                        weights = (0..outputs * inputs)
                            .map(|k| weights[(k % inputs) * outputs + k / inputs])
                            .collect();
                    }
                    let biases = floats(b)?;
                    ensure!(
                        biases.len() == outputs,
                        "{name}: Gemm `{}` has {} biases for {outputs} outputs",
                        node.name,
                        biases.len()
                    );
                    width.get_or_insert(inputs);
                    layers.push(Layer::Dense {
                        weights,
                        biases,
                        inputs,
                        outputs,
                    });
                }
                "Reshape" if layers.is_empty() => {
                    let shape =
                        node.input.get(1).and_then(|n| init(n)).ok_or_else(|| {
                            bad(format!("Reshape `{}` takes its shape from outside the file", node.name))
                        })?;
                    check_initializer(shape).map_err(|e| bad(format!("initializer `{}`: {e}", shape.name)))?;
                    let dims: Vec<i64> = if shape.raw_data.is_empty() {
                        shape.int64_data.clone()
                    } else {
                        shape
                            .raw_data
                            .chunks_exact(8)
                            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                            .collect()
                    };
                    ensure!(
                        shape.data_type == DataType::Int64 as i32
                            && dims.len() == 4
                            && dims[0] == -1
                            && dims[1..].iter().all(|&d| (1..=1 << 16).contains(&d)),
                        "{name}: Reshape `{}` is not [-1, channels, height, width]",
                        node.name
                    );
                    let (channels, height, columns) = (dims[1] as usize, dims[2] as usize, dims[3] as usize);
                    width.get_or_insert(channels * height * columns);
                    layers.push(Layer::Image {
                        channels,
                        height,
                        width: columns,
                    });
                }
                "Conv" => {
                    let ints_of = |n: &str| attr(n).map(|a| a.ints.clone());
                    let (w, b) = match (
                        node.input.get(1).and_then(|n| init(n)),
                        node.input.get(2).and_then(|n| init(n)),
                    ) {
                        (Some(w), Some(b)) if node.input.len() == 3 => (w, b),
                        _ => bail!("{name}: Conv `{}` takes its weights from outside the file", node.name),
                    };
                    ensure!(
                        w.dims.len() == 4 && w.dims[2] == w.dims[3],
                        "{name}: Conv `{}` weights are not out x in x k x k",
                        node.name
                    );
                    let (outputs, inputs, kernel) = (w.dims[0] as usize, w.dims[1] as usize, w.dims[2] as usize);
                    let k = kernel as i64;
                    let pads = ints_of("pads").unwrap_or_else(|| vec![0; 4]);
                    ensure!(
                        ints_of("kernel_shape").is_none_or(|v| v == [k, k])
                            && ints_of("strides").is_none_or(|v| v == [1, 1])
                            && ints_of("dilations").is_none_or(|v| v == [1, 1])
                            && attr("group").is_none_or(|a| a.i == 1)
                            && attr("auto_pad").is_none()
                            && pads.len() == 4
                            && pads.iter().all(|&p| p == pads[0] && (0..k).contains(&p)),
                        "{name}: Conv `{}` is not a square kernel with stride 1 and the same zero padding on every side",
                        node.name
                    );
                    let biases = floats(b)?;
                    ensure!(
                        biases.len() == outputs,
                        "{name}: Conv `{}` has {} biases for {outputs} outputs",
                        node.name,
                        biases.len()
                    );
                    layers.push(Layer::Conv {
                        weights: floats(w)?,
                        biases,
                        inputs,
                        outputs,
                        kernel,
                        pad: pads[0] as usize,
                    });
                }
                "MaxPool" => {
                    let ints_of = |n: &str| attr(n).map(|a| a.ints.clone());
                    ensure!(
                        ints_of("kernel_shape").as_deref() == Some(&[2, 2])
                            && ints_of("strides").as_deref() == Some(&[2, 2])
                            && ints_of("pads").is_none_or(|v| v.iter().all(|&p| p == 0))
                            && ints_of("dilations").is_none_or(|v| v == [1, 1])
                            && attr("ceil_mode").is_none_or(|a| a.i == 0)
                            && attr("auto_pad").is_none(),
                        "{name}: MaxPool `{}` is not 2x2 with stride 2",
                        node.name
                    );
                    layers.push(Layer::MaxPool2);
                }
                "Flatten" => {
                    ensure!(
                        attr("axis").is_none_or(|a| a.i == 1),
                        "{name}: Flatten `{}` does not keep the batch axis",
                        node.name
                    );
                    layers.push(Layer::Flatten);
                }
                op => bail!(
                    "{name}: operator {op} (node `{}`): the device runs Reshape (first), Conv, MaxPool 2x2, Flatten, \
                     Gemm and Relu only",
                    node.name
                ),
            }
            x = node.output[0].clone();
        }
        let model = BackboneModel {
            input_width: width.ok_or_else(|| bad("no Reshape or dense layer takes the input".into()))?,
            layers,
        };
        model.shapes().map_err(|e| bad(e.to_string()))?;
        Ok(model)
    }

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

/// Checks that an initializer's data matches its declared shape before tract sees it, so a
/// corrupted size is an error rather than a huge allocation or a panic.
fn check_initializer(t: &pb::TensorProto) -> Result<()> {
    use pb::tensor_proto::DataType;
    let mut count: u64 = 1;
    for &d in &t.dims {
        ensure!((0..=1 << 31).contains(&d), "dimension {d} is out of range");
        count = count
            .checked_mul(d as u64)
            .filter(|&c| c <= 1 << 31)
            .context("more than 2^31 elements")?;
    }
    // (bytes per element, values stored in the type's own field)
    let (size, stored) = match DataType::try_from(t.data_type) {
        Ok(DataType::Float) => (4, t.float_data.len()),
        Ok(DataType::Double) => (8, t.double_data.len()),
        Ok(DataType::Int64) => (8, t.int64_data.len()),
        Ok(DataType::Uint32) => (4, t.uint64_data.len()),
        Ok(DataType::Uint64) => (8, t.uint64_data.len()),
        Ok(DataType::Int32) => (4, t.int32_data.len()),
        Ok(DataType::Int16 | DataType::Uint16 | DataType::Float16) => (2, t.int32_data.len()),
        Ok(DataType::Int8 | DataType::Uint8 | DataType::Bool) => (1, t.int32_data.len()),
        _ => bail!("unsupported element type {}", t.data_type),
    };
    if t.raw_data.is_empty() {
        ensure!(stored as u64 == count, "{stored} values for {count} elements");
    } else {
        ensure!(
            t.raw_data.len() as u64 == count * size,
            "{} bytes of data for {count} elements",
            t.raw_data.len()
        );
    }
    Ok(())
}

/// Checks that every tensor a node or the graph's output names is produced by something
/// (tract indexes these names without checking), and that there is no control flow.
fn check_graph(graph: &pb::GraphProto) -> Result<()> {
    use std::collections::HashSet;
    let mut known: HashSet<&str> = graph.input.iter().map(|i| i.name.as_str()).collect();
    known.extend(graph.initializer.iter().map(|t| t.name.as_str()));
    known.extend(graph.node.iter().flat_map(|n| n.output.iter().map(String::as_str)));
    for node in &graph.node {
        if let Some(a) = node.attribute.iter().find(|a| a.g.is_some() || !a.graphs.is_empty()) {
            bail!(
                "node `{}` ({}) holds a subgraph in `{}`; backbones have no control flow",
                node.name,
                node.op_type,
                a.name
            );
        }
        if let Some(missing) = node.input.iter().find(|i| !i.is_empty() && !known.contains(i.as_str())) {
            bail!(
                "node `{}` reads `{missing}`, which nothing in the graph produces",
                node.name
            );
        }
    }
    if let Some(o) = graph.output.iter().find(|o| !known.contains(o.name.as_str())) {
        bail!("graph output `{}` is produced by no node", o.name);
    }
    Ok(())
}

/// An ONNX backbone loaded and optimised by tract, ready to run at any batch size.
#[derive(Debug, Clone)]
pub struct Backbone {
    plan: Arc<TypedRunnableModel>,
    name: String,
    input_width: usize,
    feature_width: usize,
    /// The plan was made for one sample at a time.
    one: bool,
}

/// Samples run through tract at once.
const CHUNK: usize = 512;

impl Backbone {
    /// Loads the ONNX file at `path`.
    pub fn load(path: &Path) -> Result<Backbone> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Backbone::from_bytes(&bytes, &path.display().to_string())
    }

    /// Loads an ONNX model from its bytes; `name` is what errors call it.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Backbone> {
        Backbone::load_bytes(bytes, name, false)
    }

    /// Loads an ONNX model from its bytes for one sample at a time: tract's plan is made
    /// once, here, for a batch of exactly one ([`Backbone::sample`]; [`Backbone::features`]
    /// then takes one row only).
    pub fn per_sample(bytes: &[u8], name: &str) -> Result<Backbone> {
        Backbone::load_bytes(bytes, name, true)
    }

    fn load_bytes(bytes: &[u8], name: &str, one: bool) -> Result<Backbone> {
        let bad = |what: &str| format!("{name}: {what}");
        let proto = pb::ModelProto::decode(bytes)
            .map_err(|e| anyhow::anyhow!("{}", bad(&format!("not a valid ONNX file ({e})"))))?;
        let Some(graph) = &proto.graph else {
            bail!("{}", bad("not an ONNX model: it has no graph"))
        };
        for t in &graph.initializer {
            check_initializer(t).map_err(|e| anyhow::anyhow!("{}", bad(&format!("initializer `{}`: {e}", t.name))))?;
        }
        check_graph(graph).map_err(|e| anyhow::anyhow!("{}", bad(&e.to_string())))?;
        // The checks above cover what tract indexes without checking; should a model
        // still trip an assertion inside tract, it is this file's error, not a crash.
        let prepared = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let b = Backbone::prepare(&proto, name, None)?;
            match one {
                true => Backbone::prepare(&proto, name, Some(b.input_width)),
                false => Ok(b),
            }
        }));
        match prepared {
            Ok(result) => result,
            Err(_) => bail!(
                "{}",
                bad("tract could not load this model (it panicked); the file is likely corrupted")
            ),
        }
    }

    /// tract's plan of `proto`, for any batch, or for a batch of one sample of
    /// `one_of_width` values.
    fn prepare(proto: &pb::ModelProto, name: &str, one_of_width: Option<usize>) -> Result<Backbone> {
        let bad = |what: &str| format!("{name}: {what}");
        let mut model = tract_onnx::onnx()
            .model_for_proto_model(proto)
            .map_err(|e| anyhow::anyhow!("{}", bad(&format!("ONNX model not understood: {e:#}"))))?;
        if let Some(width) = one_of_width {
            model = model
                .with_input_fact(0, f32::fact([1, width]).into())
                .map_err(|e| anyhow::anyhow!("{}", bad(&format!("cannot take one sample at a time: {e:#}"))))?;
        }
        let typed = model
            .into_optimized()
            .map_err(|e| anyhow::anyhow!("{}", bad(&format!("ONNX model cannot be prepared to run: {e:#}"))))?;
        ensure!(
            typed.inputs.len() == 1 && typed.outputs.len() == 1,
            "{}",
            bad(&format!(
                "a backbone has one input and one output, this model has {} and {}",
                typed.inputs.len(),
                typed.outputs.len()
            ))
        );
        let width = |fact: &TypedFact, what: &str| -> Result<usize> {
            let shape = fact.shape.to_tvec();
            if fact.datum_type != f32::datum_type() || shape.len() != 2 {
                bail!(
                    "{}",
                    bad(&format!("its {what} must be float [N, width], it is {fact:?}"))
                );
            }
            shape[1]
                .to_usize()
                .map_err(|_| anyhow::anyhow!("{}", bad(&format!("its {what} width is not fixed ({fact:?})"))))
        };
        let input_width = width(typed.input_fact(0)?, "input")?;
        let feature_width = width(typed.output_fact(0)?, "output")?;
        let plan = typed
            .into_runnable()
            .map_err(|e| anyhow::anyhow!("{}", bad(&format!("cannot be run: {e:#}"))))?;
        Ok(Backbone {
            plan,
            name: name.to_string(),
            input_width,
            feature_width,
            one: one_of_width.is_some(),
        })
    }

    /// The features of one sample (`input_width` values) into `out` (`feature_width`).
    pub fn sample(&self, x: &[f32], out: &mut [f32]) -> Result<()> {
        ensure!(
            x.len() == self.input_width && out.len() == self.feature_width,
            "{}: takes a sample of {} values into {} features, not {} into {}",
            self.name,
            self.input_width,
            self.feature_width,
            x.len(),
            out.len()
        );
        let result = self.infer(Tensor::from_shape(&[1, self.input_width], x)?)?;
        let view = result[0].to_plain_array_view::<f32>()?;
        ensure!(
            view.len() == out.len(),
            "{}: {} features out, expected {}",
            self.name,
            view.len(),
            out.len()
        );
        out.iter_mut().zip(view.iter()).for_each(|(o, &v)| *o = v);
        Ok(())
    }

    /// What errors and reports call this backbone (its file, or a shipped model's name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Width of the samples the backbone takes.
    pub fn input_width(&self) -> usize {
        self.input_width
    }

    /// Width of the features it gives.
    pub fn feature_width(&self) -> usize {
        self.feature_width
    }

    /// Features (`n x feature_width`) of the samples `x` (`n x input_width`).
    pub fn features(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        ensure!(
            x.ncols() == self.input_width,
            "{}: takes samples of {} values, these have {}",
            self.name,
            self.input_width,
            x.ncols()
        );
        let mut out = Array2::<f32>::zeros((x.nrows(), self.feature_width));
        if self.one {
            for (xs, mut ys) in x.rows().into_iter().zip(out.rows_mut()) {
                let xs = xs.to_vec();
                let ys = ys.as_slice_mut().context("a feature row is not contiguous")?;
                self.sample(&xs, ys)?;
            }
            return Ok(out);
        }
        // tract runs one thread per plan; the chunks are shared among the machine's cores
        // (each chunk's features depend on that chunk only, so the result is the same).
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunks: Vec<_> = x
            .axis_chunks_iter(Axis(0), CHUNK)
            .zip(out.axis_chunks_iter_mut(Axis(0), CHUNK))
            .collect();
        let per_thread = chunks.len().div_ceil(threads).max(1);
        let mut groups: Vec<Vec<_>> = Vec::new();
        let mut chunks = chunks.into_iter().peekable();
        while chunks.peek().is_some() {
            groups.push(chunks.by_ref().take(per_thread).collect());
        }
        let run = |group: Vec<_>| group.into_iter().try_for_each(|(xs, ys)| self.run_chunk(xs, ys));
        if groups.len() <= 1 {
            // One chunk's worth (e.g. batch 1): no thread to start.
            groups.into_iter().try_for_each(run)?;
            return Ok(out);
        }
        std::thread::scope(|scope| {
            let handles: Vec<_> = groups
                .into_iter()
                .map(|group| scope.spawn(move || run(group)))
                .collect();
            handles.into_iter().try_for_each(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("{}: inference thread panicked", self.name))?
            })
        })?;
        Ok(out)
    }

    /// tract's plan run on `input`.
    fn infer(&self, input: Tensor) -> Result<TVec<TValue>> {
        self.plan
            .run(tvec!(input.into_tvalue()))
            .with_context(|| format!("{}: inference failed", self.name))
    }

    /// Features of one chunk of samples, written into `ys`.
    fn run_chunk(&self, xs: ArrayView2<'_, f32>, mut ys: ndarray::ArrayViewMut2<'_, f32>) -> Result<()> {
        let result = self.infer(xs.to_owned().into())?;
        let view = result[0].to_plain_array_view::<f32>()?;
        ensure!(
            view.shape() == ys.shape(),
            "{}: output shape {:?}, expected {:?}",
            self.name,
            view.shape(),
            ys.shape()
        );
        ys.assign(&view.into_dimensionality::<ndarray::Ix2>()?);
        Ok(())
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

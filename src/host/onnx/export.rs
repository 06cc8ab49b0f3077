//! Writing a [`BackboneModel`] as ONNX: the encoded `ModelProto` (opset 13, IR version 8,
//! a symbolic batch axis) and the protobuf pieces it is built from.

use super::{BackboneModel, Layer};
use anyhow::{ensure, Result};
use prost::Message;
use tract_onnx::pb;

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

pub(super) fn initializer(name: String, dims: &[usize], data: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name,
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: pb::tensor_proto::DataType::Float as i32,
        float_data: data.to_vec(),
        ..Default::default()
    }
}

pub(super) fn ints(name: &str, values: &[i64]) -> pb::AttributeProto {
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

/// An int64 shape initializer for a `Reshape` (`-1` first: the batch axis).
fn shape_initializer(name: String, dims: &[usize]) -> pb::TensorProto {
    pb::TensorProto {
        name,
        dims: vec![dims.len() as i64 + 1],
        data_type: pb::tensor_proto::DataType::Int64 as i32,
        int64_data: std::iter::once(-1).chain(dims.iter().map(|&d| d as i64)).collect(),
        ..Default::default()
    }
}

/// `node` as layer `l`'s convolution of `weights` (`out x in x kernel...`, one kernel
/// length per spatial axis) over `x`, stride 1, zero padding `pad` at both ends of each.
#[allow(clippy::too_many_arguments)]
fn conv_node(
    node: &mut pb::NodeProto,
    inits: &mut Vec<pb::TensorProto>,
    l: usize,
    x: &str,
    (weights, biases): (&[f32], &[f32]),
    (outputs, inputs): (usize, usize),
    (kernel, pad, axes): (usize, usize, usize),
) {
    let (w, b) = (format!("W{l}"), format!("b{l}"));
    let mut dims = vec![outputs, inputs];
    dims.extend(std::iter::repeat_n(kernel, axes));
    inits.push(initializer(w.clone(), &dims, weights));
    inits.push(initializer(b.clone(), &[outputs], biases));
    node.op_type = "Conv".into();
    node.input = vec![x.to_string(), w, b];
    let (k, p) = (kernel as i64, pad as i64);
    node.attribute = vec![
        ints("kernel_shape", &vec![k; axes]),
        ints("pads", &vec![p; 2 * axes]),
        ints("strides", &vec![1; axes]),
    ];
}

impl BackboneModel {
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
                    inits.push(shape_initializer(shape.clone(), &[*channels, *height, *width]));
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
                } => conv_node(
                    &mut node,
                    &mut inits,
                    l,
                    &x,
                    (weights, biases),
                    (*outputs, *inputs),
                    (*kernel, *pad, 2),
                ),
                Layer::Window {
                    steps,
                    channels,
                    mean,
                    scale,
                } => {
                    // Reshape to [N, T, C], normalise each channel, then [N, C, T].
                    let (shape, m, k) = (format!("shape{l}"), format!("mean{l}"), format!("scale{l}"));
                    inits.push(shape_initializer(shape.clone(), &[*steps, *channels]));
                    inits.push(initializer(m.clone(), &[*channels], mean));
                    inits.push(initializer(k.clone(), &[*channels], scale));
                    let step = |op: &str, input: Vec<String>, part: &str| pb::NodeProto {
                        op_type: op.into(),
                        input,
                        output: vec![format!("t{l}{part}")],
                        name: format!("n{l}{part}"),
                        ..Default::default()
                    };
                    nodes.push(step("Reshape", vec![x.clone(), shape], "r"));
                    nodes.push(step("Sub", vec![format!("t{l}r"), m], "s"));
                    nodes.push(step("Mul", vec![format!("t{l}s"), k], "m"));
                    node.op_type = "Transpose".into();
                    node.input = vec![format!("t{l}m")];
                    node.attribute = vec![ints("perm", &[0, 2, 1])];
                }
                Layer::Conv1d {
                    weights,
                    biases,
                    inputs,
                    outputs,
                    kernel,
                    pad,
                } => conv_node(
                    &mut node,
                    &mut inits,
                    l,
                    &x,
                    (weights, biases),
                    (*outputs, *inputs),
                    (*kernel, *pad, 1),
                ),
                Layer::MaxPool1d2 => {
                    node.op_type = "MaxPool".into();
                    node.input = vec![x.clone()];
                    node.attribute = vec![ints("kernel_shape", &[2]), ints("strides", &[2])];
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
}

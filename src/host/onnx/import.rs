//! Reading a [`BackboneModel`] back from ONNX: the one chain of supported operators from the
//! input, with every initializer and the graph checked before they are used.

use super::{BackboneModel, Layer};
use anyhow::{bail, ensure, Context, Result};
use prost::Message;
use tract_onnx::pb;

impl BackboneModel {
    /// Reads back a backbone from an ONNX file such as [`BackboneModel::to_onnx`] and
    /// `edgecl train` write (first a `Reshape` to an image, or a sensor window's
    /// `Reshape` to `[T, C]`, `Sub` and `Mul` by per-channel constants and `Transpose` to
    /// `[C, T]`; then `Conv` with a square kernel or over time, stride 1 and even zero
    /// padding, `MaxPool` 2x2 or 2 steps with stride 2, `Relu`, `Flatten`, `Gemm`): what
    /// the device's int8 image is made from. Any other operator or attribute, or a graph
    /// that is not one chain from the input, is an error.
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
        let mut window: Option<PendingWindow> = None;
        for node in &graph.node {
            ensure!(
                node.input.first() == Some(&x) && node.output.len() == 1,
                "{name}: node `{}` does not continue the chain from the input",
                node.name
            );
            let attr = |n: &str| node.attribute.iter().find(|a| a.name == n);
            if let Some(PendingWindow {
                steps,
                channels,
                mean,
                scale,
            }) = &mut window
            {
                // Sub, Mul, Transpose: the window's normalisation, in that order.
                let constant = || -> Result<Vec<f32>> {
                    let t = node
                        .input
                        .get(1)
                        .and_then(|n| init(n))
                        .filter(|_| node.input.len() == 2)
                        .ok_or_else(|| {
                            bad(format!(
                                "{} `{}` takes its constant from outside the file",
                                node.op_type, node.name
                            ))
                        })?;
                    let v = floats(t)?;
                    ensure!(
                        t.dims == [*channels as i64] && v.iter().all(|x| x.is_finite()),
                        "{name}: {} `{}` is not one finite value per channel ({channels})",
                        node.op_type,
                        node.name
                    );
                    Ok(v)
                };
                match (node.op_type.as_str(), mean.is_some(), scale.is_some()) {
                    ("Sub", false, false) => *mean = Some(constant()?),
                    ("Mul", true, false) => *scale = Some(constant()?),
                    ("Transpose", true, true) => {
                        ensure!(
                            attr("perm").map(|a| a.ints.as_slice()) == Some(&[0, 2, 1]),
                            "{name}: Transpose `{}` does not turn [N, T, C] into [N, C, T]",
                            node.name
                        );
                        layers.push(Layer::Window {
                            steps: *steps,
                            channels: *channels,
                            mean: mean.take().unwrap_or_default(),
                            scale: scale.take().unwrap_or_default(),
                        });
                        window = None;
                    }
                    (op, ..) => bail!(
                        "{name}: node `{}` ({op}): a window's Reshape to [T, C] is followed by Sub (the channel means), \
                         Mul (the channel scales) and Transpose to [C, T]",
                        node.name
                    ),
                }
                x = node.output[0].clone();
                continue;
            }
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
                            && matches!(dims.len(), 3 | 4)
                            && dims[0] == -1
                            && dims[1..].iter().all(|&d| (1..=1 << 16).contains(&d)),
                        "{name}: Reshape `{}` is not [-1, channels, height, width] (an image) or [-1, steps, channels] (a window)",
                        node.name
                    );
                    if dims.len() == 3 {
                        let (steps, channels) = (dims[1] as usize, dims[2] as usize);
                        width.get_or_insert(steps * channels);
                        window = Some(PendingWindow {
                            steps,
                            channels,
                            mean: None,
                            scale: None,
                        });
                        x = node.output[0].clone();
                        continue;
                    }
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
                    // Two spatial axes (a square kernel) or one (over time).
                    let axes = w.dims.len().saturating_sub(2);
                    ensure!(
                        (axes == 2 && w.dims[2] == w.dims[3]) || axes == 1,
                        "{name}: Conv `{}` weights are not out x in x k x k or out x in x k",
                        node.name
                    );
                    let (outputs, inputs, kernel) = (w.dims[0] as usize, w.dims[1] as usize, w.dims[2] as usize);
                    let k = kernel as i64;
                    let pads = ints_of("pads").unwrap_or_else(|| vec![0; 2 * axes]);
                    ensure!(
                        ints_of("kernel_shape").is_none_or(|v| v == vec![k; axes])
                            && ints_of("strides").is_none_or(|v| v == vec![1; axes])
                            && ints_of("dilations").is_none_or(|v| v == vec![1; axes])
                            && attr("group").is_none_or(|a| a.i == 1)
                            && attr("auto_pad").is_none()
                            && pads.len() == 2 * axes
                            && pads.iter().all(|&p| p == pads[0] && (0..k).contains(&p)),
                        "{name}: Conv `{}` is not a square or 1-D kernel with stride 1 and the same zero padding on every side",
                        node.name
                    );
                    let biases = floats(b)?;
                    ensure!(
                        biases.len() == outputs,
                        "{name}: Conv `{}` has {} biases for {outputs} outputs",
                        node.name,
                        biases.len()
                    );
                    let (weights, pad) = (floats(w)?, pads[0] as usize);
                    layers.push(if axes == 2 {
                        Layer::Conv {
                            weights,
                            biases,
                            inputs,
                            outputs,
                            kernel,
                            pad,
                        }
                    } else {
                        Layer::Conv1d {
                            weights,
                            biases,
                            inputs,
                            outputs,
                            kernel,
                            pad,
                        }
                    });
                }
                "MaxPool" => {
                    let ints_of = |n: &str| attr(n).map(|a| a.ints.clone());
                    let kernel = ints_of("kernel_shape").unwrap_or_default();
                    let axes = kernel.len();
                    ensure!(
                        matches!(axes, 1 | 2)
                            && kernel.iter().all(|&k| k == 2)
                            && ints_of("strides") == Some(vec![2; axes])
                            && ints_of("pads").is_none_or(|v| v.iter().all(|&p| p == 0))
                            && ints_of("dilations").is_none_or(|v| v == vec![1; axes])
                            && attr("ceil_mode").is_none_or(|a| a.i == 0)
                            && attr("auto_pad").is_none(),
                        "{name}: MaxPool `{}` is not 2x2 (or 2 steps) with stride 2",
                        node.name
                    );
                    layers.push(if axes == 2 { Layer::MaxPool2 } else { Layer::MaxPool1d2 });
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
                    "{name}: operator {op} (node `{}`): the device runs Reshape (first; a window's with Sub, Mul and \
                     Transpose), Conv, MaxPool 2x2 or 2 steps, Flatten, Gemm and Relu only",
                    node.name
                ),
            }
            x = node.output[0].clone();
        }
        ensure!(
            window.is_none(),
            "{name}: the graph ends inside a window's normalisation (Reshape, Sub, Mul, Transpose)"
        );
        let model = BackboneModel {
            input_width: width.ok_or_else(|| bad("no Reshape or dense layer takes the input".into()))?,
            layers,
        };
        model.shapes().map_err(|e| bad(e.to_string()))?;
        Ok(model)
    }
}

/// A window's `Reshape` to `[T, C]` read, its normalisation (`Sub`, `Mul`, `Transpose`)
/// still to come.
struct PendingWindow {
    steps: usize,
    channels: usize,
    mean: Option<Vec<f32>>,
    scale: Option<Vec<f32>>,
}

/// Checks that an initializer's data matches its declared shape before tract sees it, so a
/// corrupted size is an error rather than a huge allocation or a panic.
pub(super) fn check_initializer(t: &pb::TensorProto) -> Result<()> {
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
pub(super) fn check_graph(graph: &pb::GraphProto) -> Result<()> {
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

//! ONNX backbones (feature `onnx`): a dense ReLU backbone written as an ONNX model, and
//! ONNX backbones run by tract to turn samples into the head's features.
//!
//! The model [`DenseBackbone::to_onnx`] writes is the plainest ONNX a runtime accepts:
//!
//! ```text
//! input  "input"    float [N, d_0]          N is a symbolic batch axis ("N")
//! Gemm(input, W_0, b_0, transB=1) -> Relu -> Gemm(., W_1, b_1, transB=1) -> Relu -> ...
//! output "features" float [N, d_L]          the last layer's post-ReLU activations
//! ```
//!
//! with the weights as initializers (`W_l` is `d_{l+1} x d_l`, row-major, the layout of the
//! core's dense layers and of PyTorch's `Linear`), opset 13, IR version 8.
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

/// A dense ReLU network used as a frozen feature extractor: layer `l` computes
/// `relu(W_l x + b_l)`.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseBackbone {
    /// Widths, input first, features last.
    pub dims: Vec<usize>,
    /// `W_l`, `d_{l+1} x d_l` row-major, per layer.
    pub weights: Vec<Vec<f32>>,
    /// `b_l` per layer.
    pub biases: Vec<Vec<f32>>,
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

impl DenseBackbone {
    /// A backbone with PyTorch's `Linear` initialisation (`U(-1/sqrt(fan_in),
    /// 1/sqrt(fan_in))` for weights and biases) from the core's seeded generator.
    pub fn random(dims: &[usize], seed: u64) -> DenseBackbone {
        let mut rng = crate::learner::rng::Rng::new(seed);
        let layers = dims.len().saturating_sub(1);
        let mut b = DenseBackbone {
            dims: dims.to_vec(),
            weights: Vec::new(),
            biases: Vec::new(),
        };
        for l in 0..layers {
            let bound = 1.0 / (dims[l].max(1) as f32).sqrt();
            b.weights.push(
                (0..dims[l] * dims[l + 1])
                    .map(|_| rng.uniform_range(-bound, bound))
                    .collect(),
            );
            b.biases
                .push((0..dims[l + 1]).map(|_| rng.uniform_range(-bound, bound)).collect());
        }
        b
    }

    /// Checks that every layer's weights and biases have the sizes `dims` says.
    pub fn validate(&self) -> Result<()> {
        ensure!(self.dims.len() >= 2, "a backbone needs an input and a feature width");
        ensure!(
            self.dims.iter().all(|&d| d > 0),
            "backbone widths must be positive: {:?}",
            self.dims
        );
        let layers = self.dims.len() - 1;
        ensure!(
            self.weights.len() == layers && self.biases.len() == layers,
            "{layers} layers need {layers} weight and bias tensors, got {} and {}",
            self.weights.len(),
            self.biases.len()
        );
        for l in 0..layers {
            let (i, o) = (self.dims[l], self.dims[l + 1]);
            ensure!(
                self.weights[l].len() == i * o,
                "layer {l}: {} weights, expected {}",
                self.weights[l].len(),
                i * o
            );
            ensure!(
                self.biases[l].len() == o,
                "layer {l}: {} biases, expected {o}",
                self.biases[l].len()
            );
        }
        Ok(())
    }

    /// The backbone as an encoded ONNX `ModelProto`.
    pub fn to_onnx(&self) -> Result<Vec<u8>> {
        self.validate()?;
        let layers = self.dims.len() - 1;
        let mut nodes = Vec::new();
        let mut inits = Vec::new();
        let mut x = "input".to_string();
        for l in 0..layers {
            let (w, b) = (format!("W{l}"), format!("b{l}"));
            inits.push(initializer(
                w.clone(),
                &[self.dims[l + 1], self.dims[l]],
                &self.weights[l],
            ));
            inits.push(initializer(b.clone(), &[self.dims[l + 1]], &self.biases[l]));
            let (gemm, relu) = (
                format!("gemm{l}"),
                if l + 1 == layers {
                    "features".to_string()
                } else {
                    format!("relu{l}")
                },
            );
            nodes.push(pb::NodeProto {
                input: vec![x.clone(), w, b],
                output: vec![gemm.clone()],
                name: gemm.clone(),
                op_type: "Gemm".into(),
                attribute: vec![pb::AttributeProto {
                    name: "transB".into(),
                    r#type: pb::attribute_proto::AttributeType::Int as i32,
                    i: 1,
                    ..Default::default()
                }],
                ..Default::default()
            });
            nodes.push(pb::NodeProto {
                input: vec![gemm],
                output: vec![relu.clone()],
                name: format!("relu_node{l}"),
                op_type: "Relu".into(),
                ..Default::default()
            });
            x = relu;
        }
        let graph = pb::GraphProto {
            name: "edgecl_backbone".into(),
            node: nodes,
            initializer: inits,
            input: vec![value_info("input", self.dims[0])],
            output: vec![value_info("features", self.dims[layers])],
            ..Default::default()
        };
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

    /// The backbone's features of `x` (`n x d_0`), computed with plain loops in f64
    /// accumulation: the reference the ONNX runtime is checked against.
    pub fn forward(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        let mut h = x.to_owned();
        for l in 0..self.dims.len() - 1 {
            let (i, o) = (self.dims[l], self.dims[l + 1]);
            let mut next = Array2::<f32>::zeros((h.nrows(), o));
            for (row, mut out) in h.axis_iter(Axis(0)).zip(next.axis_iter_mut(Axis(0))) {
                for (j, v) in out.iter_mut().enumerate() {
                    let w = &self.weights[l][j * i..(j + 1) * i];
                    let s: f64 =
                        row.iter().zip(w).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>() + self.biases[l][j] as f64;
                    *v = (s as f32).max(0.0);
                }
            }
            h = next;
        }
        h
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
        let prepared = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Backbone::prepare(&proto, name)));
        match prepared {
            Ok(result) => result,
            Err(_) => bail!(
                "{}",
                bad("tract could not load this model (it panicked); the file is likely corrupted")
            ),
        }
    }

    fn prepare(proto: &pb::ModelProto, name: &str) -> Result<Backbone> {
        let bad = |what: &str| format!("{name}: {what}");
        let model = tract_onnx::onnx()
            .model_for_proto_model(proto)
            .map_err(|e| anyhow::anyhow!("{}", bad(&format!("ONNX model not understood: {e:#}"))))?;
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
        })
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
        for (xs, mut ys) in x
            .axis_chunks_iter(Axis(0), CHUNK)
            .zip(out.axis_chunks_iter_mut(Axis(0), CHUNK))
        {
            let input: Tensor = xs.to_owned().into();
            let result = self
                .plan
                .run(tvec!(input.into_tvalue()))
                .with_context(|| format!("{}: inference failed", self.name))?;
            let view = result[0].to_plain_array_view::<f32>()?;
            ensure!(
                view.shape() == ys.shape(),
                "{}: output shape {:?}, expected {:?}",
                self.name,
                view.shape(),
                ys.shape()
            );
            ys.assign(&view.into_dimensionality::<ndarray::Ix2>()?);
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
        let b = DenseBackbone::random(&[20, 16, 8], 3);
        let onnx = b.to_onnx().unwrap();
        let loaded = Backbone::from_bytes(&onnx, "test.onnx").unwrap();
        assert_eq!((loaded.input_width(), loaded.feature_width()), (20, 8));
        let mut rng = Rng::new(4);
        for n in [1usize, 7, 600] {
            let x = Array2::from_shape_fn((n, 20), |_| rng.uniform());
            let want = b.forward(x.view());
            let got = loaded.features(x.view()).unwrap();
            let err = want
                .iter()
                .zip(got.iter())
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(err < 1e-5, "batch {n}: max error {err}");
        }
        assert!(loaded.features(Array2::zeros((2, 19)).view()).is_err());
    }

    #[test]
    fn every_truncation_of_a_model_is_an_error_naming_the_file() {
        let onnx = DenseBackbone::random(&[6, 5, 4], 9).to_onnx().unwrap();
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
        let mut onnx = DenseBackbone::random(&[6, 5, 4], 9).to_onnx().unwrap();
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

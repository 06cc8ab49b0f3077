//! [`Backbone`]: any ONNX model with one float input and one float output, run by tract
//! (optimised, in chunks or one sample at a time) to turn samples into features.

use super::import::{check_graph, check_initializer};
use anyhow::{bail, ensure, Context, Result};
use ndarray::{Array2, ArrayView2, Axis};
use prost::Message;
use std::path::Path;
use std::sync::Arc;
use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::DimLike;

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

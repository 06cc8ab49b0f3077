//! Dense layers with ReLU between them and softmax cross-entropy on top: batched
//! forward and backward passes over slices the learner carved from its arena.
//!
//! Shapes, for `n` samples and widths `d_0 .. d_L`:
//! - layer `l` has weights `W_l` (`d_{l+1} x d_l`, row-major, like PyTorch's `Linear`)
//!   and biases `b_l` (`d_{l+1}`); all weights sit end to end, then all biases;
//! - `acts` holds, per hidden layer, `n x d_{l+1}` post-ReLU outputs, each block at
//!   `batch * (sum of earlier hidden widths)`, then the `n x d_L` logits;
//! - gradients follow the parameters' layout: weights, then biases.

use crate::learner::kernels::{gemm, MatRef};
use crate::learner::{math, Active, Error, Kernels, LayerDims};

/// Offset of hidden layer `l`'s outputs (or, for the last layer, the logits) in `acts`.
pub fn act_offset(dims: &LayerDims, batch: usize, l: usize) -> usize {
    batch * dims.as_slice()[1..=l].iter().sum::<usize>()
}

const SHAPE_BUG: Error = Error::Internal("kernel shapes disagree with the plan");

/// Forward pass of `n` samples `x` (`n x d_0`): fills `acts` with hidden outputs and logits.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    kernels: Kernels,
    dims: &LayerDims,
    weights: &[f32],
    biases: &[f32],
    x: &[f32],
    n: usize,
    batch: usize,
    acts: &mut [f32],
    pack: &mut [f32],
) -> Result<(), Error> {
    let last = dims.layers() - 1;
    for l in 0..=last {
        let (d_in, d_out) = dims.layer(l);
        let out_at = act_offset(dims, batch, l);
        let (before, after) = acts.split_at_mut(out_at);
        let input = if l == 0 {
            x
        } else {
            &before[act_offset(dims, batch, l - 1)..]
        };
        let out = &mut after[..n * d_out];
        let bias = &biases[dims.bias_offset(l)..dims.bias_offset(l) + d_out];
        for row in out.chunks_exact_mut(d_out) {
            row.copy_from_slice(bias);
        }
        let w = &weights[dims.weight_offset(l)..dims.weight_offset(l) + d_out * d_in];
        let a = MatRef::row_major(input, n, d_in).ok_or(SHAPE_BUG)?;
        let wt = MatRef::row_major(w, d_out, d_in).ok_or(SHAPE_BUG)?.t();
        if !gemm(kernels, a, wt, out, true, pack) {
            return Err(SHAPE_BUG);
        }
        if l < last {
            for v in out.iter_mut() {
                *v = v.max(0.0);
            }
        }
    }
    Ok(())
}

/// Softmax cross-entropy over each sample's active classes, averaged over the batch.
///
/// Reads the logits (`n x C`), writes `dL/dlogits` into `dlogits` (zero outside the
/// active classes) and returns the mean loss. Labels and classes are validated by the
/// caller.
pub fn softmax_xent(logits: &[f32], labels: &[u16], active: &Active<'_>, classes: usize, dlogits: &mut [f32]) -> f32 {
    let n = labels.len();
    let inv_n = 1.0 / n as f32;
    let mut loss = 0.0f32;
    for (i, (&y, (z, d))) in labels
        .iter()
        .zip(logits.chunks_exact(classes).zip(dlogits.chunks_exact_mut(classes)))
        .enumerate()
    {
        let (lo, hi) = active.range(i, classes);
        let max = z[lo..hi].iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        d.fill(0.0);
        for (dj, &zj) in d[lo..hi].iter_mut().zip(&z[lo..hi]) {
            *dj = math::exp(zj - max);
            sum += *dj;
        }
        let y = y as usize;
        loss += max + math::ln(sum) - z[y];
        let inv_sum = 1.0 / sum;
        for dj in d[lo..hi].iter_mut() {
            *dj *= inv_sum * inv_n;
        }
        d[y] -= inv_n;
    }
    loss * inv_n
}

/// Backward pass: from `dlogits` (in the first half of `deltas`) to the gradients of
/// every weight and bias (`grads`, overwritten).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    kernels: Kernels,
    dims: &LayerDims,
    weights: &[f32],
    x: &[f32],
    n: usize,
    batch: usize,
    acts: &[f32],
    grads: &mut [f32],
    deltas: &mut [f32],
    pack: &mut [f32],
) -> Result<(), Error> {
    let (gw, gb) = grads.split_at_mut(dims.weight_count());
    let half = deltas.len() / 2;
    let (mut cur, mut next) = deltas.split_at_mut(half);
    for l in (0..dims.layers()).rev() {
        let (d_in, d_out) = dims.layer(l);
        let d = &cur[..n * d_out];
        let input = if l == 0 {
            x
        } else {
            &acts[act_offset(dims, batch, l - 1)..]
        };
        // dW = d^T · input   (d_out x d_in)
        let dt = MatRef::row_major(d, n, d_out).ok_or(SHAPE_BUG)?.t();
        let inp = MatRef::row_major(input, n, d_in).ok_or(SHAPE_BUG)?;
        let gw_l = &mut gw[dims.weight_offset(l)..dims.weight_offset(l) + d_out * d_in];
        if !gemm(kernels, dt, inp, gw_l, false, pack) {
            return Err(SHAPE_BUG);
        }
        // db = column sums of d
        let gb_l = &mut gb[dims.bias_offset(l)..dims.bias_offset(l) + d_out];
        gb_l.fill(0.0);
        for row in d.chunks_exact(d_out) {
            for (g, &v) in gb_l.iter_mut().zip(row) {
                *g += v;
            }
        }
        if l > 0 {
            // dx = d · W, then through the ReLU of the layer below.
            let w = &weights[dims.weight_offset(l)..dims.weight_offset(l) + d_out * d_in];
            let dm = MatRef::row_major(d, n, d_out).ok_or(SHAPE_BUG)?;
            let wm = MatRef::row_major(w, d_out, d_in).ok_or(SHAPE_BUG)?;
            let dx = &mut next[..n * d_in];
            if !gemm(kernels, dm, wm, dx, false, pack) {
                return Err(SHAPE_BUG);
            }
            for (g, &h) in dx.iter_mut().zip(&input[..n * d_in]) {
                if h <= 0.0 {
                    *g = 0.0;
                }
            }
            core::mem::swap(&mut cur, &mut next);
        }
    }
    Ok(())
}

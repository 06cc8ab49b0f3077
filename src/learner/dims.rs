//! The bottom of the core: a network's widths and the checks every input passes.
//!
//! [`LayerDims`] gives every count the layout and the kernels derive (weights, biases,
//! offsets per layer); [`Active`] says which output classes a sample is scored over; the
//! `check_*` functions refuse bad batches (shape, NaN/Inf, labels out of range or of
//! another task) before anything is touched.

use crate::learner::Error;

/// Most layer widths a network may have (input, hidden layers and output).
pub const MAX_DIMS: usize = 8;

/// The widths of a dense network, input first, output (the classes) last.
///
/// `[784, 400, 400, 10]` is two hidden layers of 400 units over 784 inputs and 10 classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct LayerDims {
    dims: [usize; MAX_DIMS],
    len: usize,
}

impl LayerDims {
    /// Widths from input to output: at least two entries, at most [`MAX_DIMS`], none zero.
    pub fn new(dims: &[usize]) -> Result<Self, Error> {
        if dims.len() < 2 {
            return Err(Error::BadConfig("a network needs an input and an output width"));
        }
        if dims.len() > MAX_DIMS {
            return Err(Error::BadConfig("too many layers (at most 8 widths)"));
        }
        if dims.iter().any(|&d| d == 0 || d > u16::MAX as usize) {
            return Err(Error::BadConfig("every layer width must be 1 to 65535"));
        }
        let mut out = [0; MAX_DIMS];
        out[..dims.len()].copy_from_slice(dims);
        Ok(LayerDims {
            dims: out,
            len: dims.len(),
        })
    }

    /// The widths, input first.
    pub fn as_slice(&self) -> &[usize] {
        &self.dims[..self.len]
    }

    /// Number of dense layers (widths minus one).
    pub fn layers(&self) -> usize {
        self.len - 1
    }

    /// Input width.
    pub fn input(&self) -> usize {
        self.dims[0]
    }

    /// Output width: the number of classes the head can tell apart.
    pub fn classes(&self) -> usize {
        self.dims[self.len - 1]
    }

    /// `(inputs, outputs)` of dense layer `l`.
    pub fn layer(&self, l: usize) -> (usize, usize) {
        (self.dims[l], self.dims[l + 1])
    }

    /// Weights of all layers together.
    pub fn weight_count(&self) -> usize {
        (0..self.layers()).map(|l| self.dims[l] * self.dims[l + 1]).sum()
    }

    /// Biases of all layers together.
    pub fn bias_count(&self) -> usize {
        self.dims[1..self.len].iter().sum()
    }

    /// Offset of layer `l`'s weights in the weight vector.
    pub fn weight_offset(&self, l: usize) -> usize {
        (0..l).map(|i| self.dims[i] * self.dims[i + 1]).sum()
    }

    /// Offset of layer `l`'s biases in the bias vector.
    pub fn bias_offset(&self, l: usize) -> usize {
        self.dims[1..=l].iter().sum()
    }

    /// Sum of the hidden widths (the activations kept for the backward pass, per sample).
    pub fn hidden_sum(&self) -> usize {
        self.dims[1..self.len - 1].iter().sum()
    }

    /// Weights plus biases, or `None` when the count overflows `usize` (possible on
    /// 32-bit targets with wide layers). [`crate::learner::Plan::new`] checks this before
    /// any other count is used.
    pub fn checked_params(&self) -> Option<usize> {
        let mut total = 0usize;
        for l in 0..self.layers() {
            let (i, o) = self.layer(l);
            total = total.checked_add(i.checked_mul(o)?)?.checked_add(o)?;
        }
        Some(total)
    }

    /// Widest layer output (hidden or classes): the size of a delta row.
    pub fn widest_output(&self) -> usize {
        self.dims[1..self.len].iter().copied().max().unwrap_or(0)
    }
}

/// A contiguous range of output classes, `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassRange {
    /// First class.
    pub start: u16,
    /// One past the last class.
    pub end: u16,
}

/// Which output classes the softmax and the prediction consider, per sample.
///
/// Task-incremental heads mask the logits of classes outside the sample's task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Active<'b> {
    /// Every output class.
    All,
    /// The same classes for every sample.
    Classes(ClassRange),
    /// A range per sample (a batch mixing tasks).
    PerSample(&'b [ClassRange]),
}

impl Active<'_> {
    /// The `(start, end)` classes of sample `i` (callers validate first).
    pub fn range(&self, i: usize, classes: usize) -> (usize, usize) {
        let r = match *self {
            Active::All => return (0, classes),
            Active::Classes(r) => r,
            Active::PerSample(rs) => rs[i],
        };
        (r.start as usize, r.end as usize)
    }

    pub(crate) fn validate(&self, n: usize, classes: usize) -> Result<(), Error> {
        let check = |r: &ClassRange| {
            let (s, e) = (r.start as usize, r.end as usize);
            if s >= e || e > classes {
                Err(Error::BadActiveClasses {
                    start: s,
                    end: e,
                    classes,
                })
            } else {
                Ok(())
            }
        };
        match self {
            Active::All => Ok(()),
            Active::Classes(r) => check(r),
            Active::PerSample(rs) if rs.len() != n => Err(Error::OutputShape {
                got: rs.len(),
                expected: n,
            }),
            Active::PerSample(rs) => rs.iter().try_for_each(check),
        }
    }
}

/// Number of samples in `x` (rows of `width`), after checking its shape, that there are
/// 1 to `max` of them, and that every value is finite.
pub(crate) fn check_input(x: &[f32], width: usize, max: usize) -> Result<usize, Error> {
    if x.is_empty() || !x.len().is_multiple_of(width) {
        return Err(Error::InputShape {
            got: x.len(),
            expected: width * (x.len() / width).max(1),
        });
    }
    let n = x.len() / width;
    if n > max {
        return Err(Error::BatchSize { got: n, max });
    }
    if let Some(index) = x.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFiniteInput { index });
    }
    Ok(n)
}

/// The highest logit's class among `z[lo..hi]` (the first on ties).
pub(crate) fn best_class(z: &[f32], lo: usize, hi: usize) -> usize {
    let mut best = lo;
    for j in lo + 1..hi {
        if z[j] > z[best] {
            best = j;
        }
    }
    best
}

/// Checks that `active` fits `n` samples of `classes` outputs.
pub(crate) fn check_active(active: &Active<'_>, n: usize, classes: usize) -> Result<(), Error> {
    active.validate(n, classes)
}

/// Checks `n` labels: the count, each in range and among its sample's active classes.
pub(crate) fn check_labels(labels: &[u16], n: usize, active: &Active<'_>, classes: usize) -> Result<(), Error> {
    if labels.len() != n {
        return Err(Error::OutputShape {
            got: labels.len(),
            expected: n,
        });
    }
    active.validate(n, classes)?;
    for (i, &y) in labels.iter().enumerate() {
        let y = y as usize;
        if y >= classes {
            return Err(Error::LabelOutOfRange { label: y, classes });
        }
        let (lo, hi) = active.range(i, classes);
        if y < lo || y >= hi {
            return Err(Error::LabelInactive { label: y });
        }
    }
    Ok(())
}

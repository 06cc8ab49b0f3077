//! What a learner is: layer sizes, optimizer, batch size and kernels.

use crate::learner::consolidation::PenaltyConfig;
use crate::learner::packnet::{self, PackNetConfig};
use crate::learner::replay::GeneratorConfig;
use crate::learner::Error;

/// Largest batch a learner may plan for.
pub const MAX_BATCH: usize = 65_535;

/// Most layer widths a network may have (input, hidden layers and output).
pub const MAX_DIMS: usize = 8;

/// The widths of a dense network, input first, output (the classes) last.
///
/// `[784, 400, 400, 10]` is two hidden layers of 400 units over 784 inputs and 10 classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// The optimizer and its hyper-parameters (PyTorch's update rules).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Optimizer {
    /// `v = momentum * v + g; theta -= lr * v` (no state when momentum is 0).
    Sgd {
        /// Learning rate.
        lr: f32,
        /// Momentum factor in `[0, 1)`.
        momentum: f32,
    },
    /// Adam (Kingma & Ba) with bias correction, two state vectors.
    Adam {
        /// Learning rate.
        lr: f32,
        /// First-moment decay.
        beta1: f32,
        /// Second-moment decay.
        beta2: f32,
        /// Added to the denominator.
        eps: f32,
    },
}

impl Optimizer {
    /// Adam with PyTorch's defaults and the given learning rate.
    pub fn adam(lr: f32) -> Self {
        Optimizer::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }

    /// State vectors of the parameters' size this optimizer keeps.
    pub fn state_vectors(&self) -> usize {
        match *self {
            Optimizer::Sgd { momentum: 0.0, .. } => 0,
            Optimizer::Sgd { .. } => 1,
            Optimizer::Adam { .. } => 2,
        }
    }

    /// Checks the hyper-parameters: lr > 0, momentum and betas in `[0, 1)`, eps > 0.
    pub fn validate(&self) -> Result<(), Error> {
        let ok = match *self {
            Optimizer::Sgd { lr, momentum } => lr.is_finite() && lr > 0.0 && (0.0..1.0).contains(&momentum),
            Optimizer::Adam { lr, beta1, beta2, eps } => {
                lr.is_finite()
                    && lr > 0.0
                    && (0.0..1.0).contains(&beta1)
                    && (0.0..1.0).contains(&beta2)
                    && eps.is_finite()
                    && eps > 0.0
            }
        };
        if ok {
            Ok(())
        } else {
            Err(Error::BadConfig(
                "optimizer: lr must be > 0, momentum and betas in [0, 1), eps > 0",
            ))
        }
    }

    /// The learning rate.
    pub fn lr(&self) -> f32 {
        match *self {
            Optimizer::Sgd { lr, .. } | Optimizer::Adam { lr, .. } => lr,
        }
    }
}

/// Which matrix kernels the learner runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    /// Plain loops in a fixed order: the same bits on every target. Needs no packing buffer.
    Reference,
    /// Packed, register-blocked kernels (FMA where the CPU has it). Needs a packing buffer.
    Fast,
}

/// Everything that decides a learner's shape and bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LearnerConfig {
    /// Layer widths, input first, classes last.
    pub dims: LayerDims,
    /// Optimizer and its hyper-parameters.
    pub optimizer: Optimizer,
    /// Largest batch a training step or an inference call handles at once.
    pub batch_size: usize,
    /// Most tasks the learner will see (sizes per-task state in later components).
    pub max_tasks: usize,
    /// Seed of the weight initialisation.
    pub seed: u64,
    /// Kernel family.
    pub kernels: Kernels,
    /// The importance penalty against forgetting (EWC, online EWC, SI, MAS), if any.
    pub penalty: Option<PenaltyConfig>,
    /// PackNet's per-weight task ownership, if any ([`crate::learner::packnet`]).
    pub packnet: Option<PackNetConfig>,
    /// A class-conditional generator of the input features for replay, if any
    /// ([`crate::learner::replay`]).
    pub generator: Option<GeneratorConfig>,
}

impl LearnerConfig {
    /// Checks the parts a [`LayerDims`] cannot check alone.
    pub fn validate(&self) -> Result<(), Error> {
        if self.batch_size == 0 || self.batch_size > MAX_BATCH {
            return Err(Error::BadConfig("batch size must be 1 to 65535"));
        }
        if self.max_tasks == 0 {
            return Err(Error::BadConfig("max tasks must be at least 1"));
        }
        self.optimizer.validate()?;
        if let Some(p) = &self.penalty {
            p.validate()?;
        }
        if let Some(g) = &self.generator {
            if g.classes != self.dims.classes() {
                return Err(Error::BadConfig("the generator keeps one class per output of the head"));
            }
            g.validate()?;
        }
        if let Some(p) = &self.packnet {
            p.validate()?;
            packnet::owner_bits(self.max_tasks)?;
        }
        Ok(())
    }
}

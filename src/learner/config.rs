//! What a learner is: layer sizes, optimizer, batch size, kernels and its defences.

use crate::learner::consolidation::PenaltyConfig;
pub use crate::learner::dims::{LayerDims, MAX_DIMS};
pub use crate::learner::kernels::Kernels;
pub use crate::learner::optim::Optimizer;
use crate::learner::packnet::{self, PackNetConfig};
use crate::learner::replay::GeneratorConfig;
use crate::learner::Error;

/// Largest batch a learner may plan for.
pub const MAX_BATCH: usize = 65_535;

/// Everything that decides a learner's shape and bytes.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
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

//! The persistent state: the parts a learner's state is made of, the visitor that walks
//! them in a fixed order, and the version of their encoding.
//!
//! Every component that keeps state across a checkpoint (the head, the optimizer, each
//! defence) visits its parts with a `StateVisitor`; [`crate::learner::checkpoint`] writes
//! and reads the bytes the visitor sees, so the order is defined once, by the visits.

use crate::learner::math::Fnv1a;
use crate::learner::Error;
use serde::{Deserialize, Serialize};

pub use crate::learner::format::{MAGIC, VERSION};

/// What a part of the state holds, where a loaded value could break an invariant the
/// learner indexes by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// Values used as they are.
    Plain,
    /// The Gaussian's slot classes (u16): a class of the head or free.
    SlotClasses,
    /// The buffer's row labels (u16): classes of the head.
    BufferLabels,
}

/// What visits the parts of a learner's persistent state ([`crate::learner::checkpoint`]).
pub(crate) type StateVisitor<'f> = dyn FnMut(Part, &mut [u8]) -> Result<(), Error> + 'f;

/// The scalars of a checkpoint (the body's first part).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// FNV-1a of the config's postcard bytes ([`config_hash`]).
    pub config_hash: u32,
    /// Bytes of the state after the meta.
    pub state_bytes: u32,
    /// The caller's task counter.
    pub task: u32,
    /// The learner's update counter.
    pub steps: u32,
    /// The distillation teacher holds a commit.
    pub teacher_ready: bool,
    /// The learner's generator state.
    pub rng: [u32; 4],
    /// The replay generator's state.
    pub replay_rng: [u32; 4],
    /// The penalty's samples and consolidated tasks.
    pub penalty: Option<(u32, u32)>,
    /// PackNet's finished tasks and whether the current one is retraining.
    pub packnet: Option<(u32, bool)>,
    /// The buffer's samples offered.
    pub reservoir_seen: Option<u64>,
    /// The VAE's update counter.
    pub vae_steps: Option<u32>,
    /// Bytes of the caller's record after the meta.
    pub caller: u32,
}

/// The fingerprint a checkpoint carries of `config`: FNV-1a over its postcard encoding
/// (a stable, target-independent format: integers as varints, floats as their bits), so
/// an image only loads into a learner of the same shapes, optimizer and defences.
pub fn config_hash(config: &impl Serialize) -> u32 {
    // Hashing is infallible; an encoding error (none exists for plain configs) hashes
    // to the offset basis, which then matches no real config's hash by chance only.
    postcard::serialize_with_flavor(config, Fnv1a::new()).unwrap_or(Fnv1a::new().finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learner::{Kernels, LayerDims, LearnerConfig, Method, Optimizer, PenaltyConfig, Quant, Storage};

    fn config(lambda: f32) -> LearnerConfig {
        LearnerConfig {
            dims: LayerDims::new(&[256, 20, 10]).unwrap(),
            optimizer: Optimizer::adam(1e-3),
            batch_size: 32,
            max_tasks: 5,
            seed: 1,
            kernels: Kernels::Reference,
            penalty: Some(PenaltyConfig {
                method: Method::Si { xi: 0.1 },
                lambda,
                storage: Storage::Compact(Quant::Log),
            }),
            packnet: None,
            generator: None,
        }
    }

    #[test]
    fn the_config_fingerprint_is_fixed_by_the_postcard_encoding() {
        // A change of this value means every deployed checkpoint stops loading: bump
        // the format version with it.
        assert_eq!(config_hash(&config(2.0)), 0x965c_fa61);
        assert_ne!(config_hash(&config(2.0)), config_hash(&config(2.5)));
        let mut buf = [0u8; 256];
        let mut fnv = Fnv1a::new();
        fnv.update(postcard::to_slice(&config(2.0), &mut buf).unwrap());
        assert_eq!(fnv.finish(), config_hash(&config(2.0)));
    }
}

//! The layout of a learner: every component it keeps, in carving order, written once.
//!
//! `learner` takes each component from a [`Space`]: [`crate::learner::Plan`] counts the
//! bytes (and hands back empty slices), [`crate::learner::Arena`] carves them from the
//! caller's buffer. [`crate::learner::Plan::new`] and [`crate::learner::Learner::new`] both
//! run it, so what the plan promises is what the arena holds:
//!
//! ```text
//! head:      weights | biases | gradients | optimizer state | activations | deltas | [packing]
//! defences:  [penalty] | [generator] | [distillation teacher] | [PackNet owners]
//! ```
//!
//! Each defence lays out its own part in its module (`Carve::layout`) and acts through
//! the hooks of `Defence`; the registry below lists them once, in the order their
//! state is carved and saved. Adding a defence is a new module implementing both traits
//! and one line in the registry.

use crate::learner::arena::{mul, Space, OVERFLOW};
use crate::learner::consolidation::Consolidation;
use crate::learner::defence::{Carve, Defence, HeadShape};
use crate::learner::kernels::fast;
use crate::learner::packnet::PackState;
use crate::learner::replay::{Generator, GeneratorKind, Teacher};
use crate::learner::vae::VaeSizes;
use crate::learner::{names, Error, Kernels, LearnerConfig};

/// The registry of defences: one line each, `field: Type = |config| its config`, in the
/// order their parts are carved (after the head) and saved. The macro makes the
/// [`Defences`] a learner holds (an `Option` per line), their layout, and the walk over
/// them that the learner's hooks run.
macro_rules! registry {
    ($($(#[$doc:meta])* $field:ident: $ty:ty = $config:expr),* $(,)?) => {
        /// The defences of a learner, each present when its config asks for it.
        #[derive(Debug)]
        pub(crate) struct Defences<'a> {
            $($(#[$doc])* pub $field: Option<$ty>,)*
        }

        impl<'a> Defences<'a> {
            /// Takes each configured defence's part from `space`, in registry order.
            pub(crate) fn layout(config: &LearnerConfig, head: &HeadShape, space: &mut impl Space<'a>) -> Result<Self, Error> {
                Ok(Defences {
                    $($field: match ($config)(config) {
                        Some(c) => Some(<$ty as Carve<'a>>::layout(&c, head, space)?),
                        None => None,
                    },)*
                })
            }

            /// Runs `f` on every defence present, in registry order.
            pub(crate) fn each(&mut self, mut f: impl FnMut(&mut dyn Defence) -> Result<(), Error>) -> Result<(), Error> {
                $(if let Some(d) = &mut self.$field {
                    f(d)?;
                })*
                Ok(())
            }

            /// Runs an infallible hook `f` on every defence present, in registry order.
            pub(crate) fn for_each(&mut self, mut f: impl FnMut(&mut dyn Defence)) {
                $(if let Some(d) = &mut self.$field {
                    f(d);
                })*
            }
        }
    };
}

registry! {
    /// The importance penalty (EWC, online EWC, SI, MAS).
    penalty: Consolidation<'a> = |c: &LearnerConfig| c.penalty,
    /// The replay generator of old classes' features.
    generator: Generator<'a> = |c: &LearnerConfig| c.generator,
    /// Distillation's teacher head (replay with `distill`).
    teacher: Teacher<'a> = |c: &LearnerConfig| c.generator.and_then(|g| g.distill),
    /// PackNet's owner task per weight.
    packnet: PackState<'a> = |c: &LearnerConfig| c.packnet,
}

/// What the defences' layouts and hooks see of `config`'s head.
pub(crate) fn head_shape(config: &LearnerConfig) -> HeadShape {
    HeadShape {
        dims: config.dims,
        batch: config.batch_size,
        max_tasks: config.max_tasks,
        seed: config.seed,
    }
}

/// Every component of a learner, as [`learner`] took them.
pub(crate) struct Parts<'a> {
    pub weights: &'a mut [f32],
    pub biases: &'a mut [f32],
    pub grads: &'a mut [f32],
    pub opt_state: &'a mut [f32],
    pub acts: &'a mut [f32],
    pub deltas: &'a mut [f32],
    pub pack: &'a mut [f32],
    pub defences: Defences<'a>,
}

/// Takes every component of `config`'s learner from `space`, in carving order.
///
/// The config is validated by the caller ([`LearnerConfig::validate`]); every size is
/// computed with checked arithmetic, so a config too large for the target is
/// [`OVERFLOW`], never a wrapped size.
pub(crate) fn learner<'a>(config: &LearnerConfig, space: &mut impl Space<'a>) -> Result<Parts<'a>, Error> {
    let d = &config.dims;
    let b = config.batch_size;
    let params = d.checked_params().ok_or(OVERFLOW)?;
    let weights = space.take(names::WEIGHTS, d.weight_count())?;
    let biases = space.take(names::BIASES, d.bias_count())?;
    let grads = space.take(names::GRADIENTS, params)?;
    let opt_state = space.take(names::OPTIMIZER, mul(config.optimizer.state_vectors(), params)?)?;
    let acts = space.take(names::ACTIVATIONS, mul(b, d.hidden_sum() + d.classes())?)?;
    let deltas = space.take(names::DELTAS, mul(2 * b, d.widest_output())?)?;
    let pack = match config.kernels {
        Kernels::Fast => {
            let vae = match config.generator.map(|g| (g, g.kind)) {
                Some((g, GeneratorKind::Vae(v))) => VaeSizes::of(&v, d.input(), g.classes, b)?.ok_or(OVERFLOW)?.widest,
                _ => 0,
            };
            let largest = d.as_slice().iter().copied().max().unwrap_or(1).max(b).max(vae);
            space.take(names::PACKING, fast::packing_len(largest))?
        }
        Kernels::Reference => &mut [],
    };
    let defences = Defences::layout(config, &head_shape(config), space)?;
    Ok(Parts {
        weights,
        biases,
        grads,
        opt_state,
        acts,
        deltas,
        pack,
        defences,
    })
}

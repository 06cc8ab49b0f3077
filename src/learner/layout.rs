//! The layout of a learner: every component it keeps, in carving order, written once.
//!
//! [`learner`] takes each component from a [`Space`]: [`crate::learner::Plan`] counts the
//! bytes (and hands back empty slices), [`crate::learner::Arena`] carves them from the
//! caller's buffer. [`crate::learner::Plan::new`] and [`crate::learner::Learner::new`] both
//! run it, so what the plan promises is what the arena holds:
//!
//! ```text
//! head:      weights | biases | gradients | optimizer state | activations | deltas | [packing]
//! defences:  [penalty] | [generator] | [distillation teacher] | [PackNet owners]
//! ```
//!
//! Each defence lays out its own part in its module (`consolidation::layout`,
//! `replay::layout`, `replay::teacher_layout`, `packnet::layout`); adding one is a new
//! line here in the order its state is carved.

use crate::learner::arena::{mul, Space, OVERFLOW};
use crate::learner::consolidation::{self, Consolidation};
use crate::learner::kernels::fast;
use crate::learner::packnet::{self, PackState};
use crate::learner::replay::{self, Generator, GeneratorKind, Teacher};
use crate::learner::vae::VaeSizes;
use crate::learner::{names, Error, Kernels, LearnerConfig};

/// Every component of a learner, as [`learner`] took them.
pub(crate) struct Parts<'a> {
    pub weights: &'a mut [f32],
    pub biases: &'a mut [f32],
    pub grads: &'a mut [f32],
    pub opt_state: &'a mut [f32],
    pub acts: &'a mut [f32],
    pub deltas: &'a mut [f32],
    pub pack: &'a mut [f32],
    pub cons: Option<Consolidation<'a>>,
    pub generator: Option<Generator<'a>>,
    pub teacher: Option<Teacher<'a>>,
    pub packnet: Option<PackState<'a>>,
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
    let cons = match &config.penalty {
        Some(p) => Some(consolidation::layout(p, d, config.max_tasks, space)?),
        None => None,
    };
    let generator = match &config.generator {
        Some(g) => Some(replay::layout(g, d, b, space)?),
        None => None,
    };
    let teacher = match config.generator {
        Some(g) if g.distill.is_some() => Some(replay::teacher_layout(d, b, space)?),
        _ => None,
    };
    let packnet = match &config.packnet {
        Some(p) => Some(packnet::layout(p, d, config.max_tasks, space)?),
        None => None,
    };
    Ok(Parts {
        weights,
        biases,
        grads,
        opt_state,
        acts,
        deltas,
        pack,
        cons,
        generator,
        teacher,
        packnet,
    })
}

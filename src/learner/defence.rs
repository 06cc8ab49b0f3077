//! The trait every defence against forgetting implements, and the views of the head it
//! is given.
//!
//! A defence is a part of the learner's arena with a say at fixed points of training:
//! it lays out its components (`Carve::layout`, run by the plan to count and by the
//! learner to carve), is initialised once carved, may refuse a step, add to the
//! gradient, mask it, act around the optimizer's update, and visits its persistent parts
//! for a checkpoint. The defences a learner holds are listed once, in
//! [`crate::learner::layout`]'s registry, in the order they are carved and saved.

use crate::learner::arena::Space;
use crate::learner::state::StateVisitor;
use crate::learner::{Error, LayerDims, Optimizer};

/// What a defence's layout may depend on besides its own config: the head's shape.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadShape {
    /// Widths of the head, input first.
    pub dims: LayerDims,
    /// Largest batch the learner plans for.
    pub batch: usize,
    /// Most tasks the learner will see.
    pub max_tasks: usize,
    /// The learner's seed.
    pub seed: u64,
}

/// The head's parameters, gradients and optimizer state at a hook.
pub(crate) struct Head<'h> {
    /// The head's optimizer.
    pub optimizer: Optimizer,
    /// Weights of every layer.
    pub weights: &'h mut [f32],
    /// Biases of every layer.
    pub biases: &'h mut [f32],
    /// Gradients of weights then biases.
    pub grads: &'h mut [f32],
    /// The optimizer's state vectors, each of the parameters' size.
    pub opt_state: &'h mut [f32],
}

/// How a defence is made: its config, and the layout of its part of the arena.
pub(crate) trait Carve<'a>: Defence + Sized {
    /// What configures it (a part of [`crate::learner::LearnerConfig`]).
    type Config;

    /// Takes its components from `space`, in the order they are carved and saved.
    fn layout(config: &Self::Config, head: &HeadShape, space: &mut impl Space<'a>) -> Result<Self, Error>;
}

/// A defence against forgetting inside the learner's arena: its hooks, each with a
/// default that does nothing.
pub(crate) trait Defence {
    /// Once carved, before the first step: the values its zeroed components cannot start
    /// at (free slots, initial weights, anchors at the initial head).
    fn init(&mut self, _shape: &HeadShape, _head: &mut Head<'_>) {}

    /// Before a training step: refuse it (a task past the reserved ones, no free weight).
    fn before_step(&self, _dims: &LayerDims) -> Result<(), Error> {
        Ok(())
    }

    /// The data loss's gradient is in `head.grads`: add this defence's term.
    fn on_gradients(&self, _head: &mut Head<'_>) {}

    /// Before the update: zero what must not move (gradients and moments).
    fn mask_gradients(&self, _head: &mut Head<'_>) {}

    /// Just before the optimizer moves the parameters.
    fn before_update(&mut self, _head: &mut Head<'_>) {}

    /// Just after the optimizer moved them.
    fn after_update(&mut self, _head: &mut Head<'_>) {}

    /// Visits its persistent parts as bytes, in a fixed order.
    fn visit_state(&mut self, _f: &mut StateVisitor<'_>) -> Result<(), Error> {
        Ok(())
    }
}

//! The learner's persistent state as a checkpoint sees it: its parts in order and its
//! scalars ([`crate::learner::checkpoint`] writes and reads them).

use super::*;

impl<'a> Learner<'a> {
    /// Visits every part of the persistent state as bytes, in the checkpoint's order
    /// ([`crate::learner::checkpoint`]); scratch is not visited.
    pub(crate) fn state_parts(&mut self, f: &mut StateVisitor<'_>) -> Result<(), Error> {
        use crate::learner::state::Part;
        use bytemuck::cast_slice_mut as bytes;
        f(Part::Plain, bytes(&mut *self.weights))?;
        f(Part::Plain, bytes(&mut *self.biases))?;
        f(Part::Plain, bytes(&mut *self.opt_state))?;
        self.defences.each(|d| d.visit_state(f))?;
        Ok(())
    }

    /// The scalars a checkpoint carries besides the parts.
    pub(crate) fn meta(&self, task: u32, state: usize) -> crate::learner::state::Meta {
        crate::learner::state::Meta {
            config_hash: crate::learner::state::config_hash(&self.config),
            state_bytes: u32::try_from(state).unwrap_or(u32::MAX),
            task,
            steps: self.steps,
            teacher_ready: self.teacher_ready,
            rng: self.rng.state(),
            replay_rng: self.replay_rng.state(),
            penalty: self.defences.penalty.as_ref().map(|c| (c.samples, c.tasks)),
            packnet: self.defences.packnet.as_ref().map(|p| (p.packed as u32, p.retraining)),
            reservoir_seen: match &self.defences.generator {
                Some(Generator::Buffer(b)) => Some(b.seen),
                _ => None,
            },
            vae_steps: match &self.defences.generator {
                Some(Generator::Vae(v)) => Some(v.steps),
                _ => None,
            },
            caller: 0,
        }
    }

    /// Sets the scalars of a checked checkpoint.
    pub(crate) fn set_meta(&mut self, m: &crate::learner::state::Meta, rng: Rng, replay_rng: Rng) {
        self.steps = m.steps;
        self.teacher_ready = m.teacher_ready;
        self.rng = rng;
        self.replay_rng = replay_rng;
        if let (Some(c), Some((samples, tasks))) = (&mut self.defences.penalty, m.penalty) {
            (c.samples, c.tasks) = (samples, tasks);
        }
        if let (Some(p), Some((packed, retraining))) = (&mut self.defences.packnet, m.packnet) {
            (p.packed, p.retraining) = (packed as usize, retraining);
        }
        match (&mut self.defences.generator, m.reservoir_seen, m.vae_steps) {
            (Some(Generator::Buffer(b)), Some(seen), _) => b.seen = seen,
            (Some(Generator::Vae(v)), _, Some(steps)) => v.steps = steps,
            _ => {}
        }
    }
}

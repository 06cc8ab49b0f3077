//! The heads behind one trait: what every trainable network of the core does whatever its
//! shape, the dense head with its defences ([`Learner`]) and the progressive columns
//! ([`Columns`]). A driver that only trains, predicts and sizes a head holds a
//! `&mut dyn Classifier`; what only one shape has (a defence's handle, a new column) it
//! reaches through that shape's own type.

use crate::learner::{Active, Columns, Error, Learner, Plan};

/// A trainable head inside its arena.
pub trait Classifier {
    /// One update on a batch of `labels.len()` samples (`x`: rows of the input width) over
    /// the `active` classes; returns the batch's mean cross-entropy before the update.
    fn train_step(&mut self, x: &[f32], labels: &[u16], active: Active<'_>) -> Result<f32, Error>;

    /// The most likely active class of each sample of `x` into `out`, for `task`
    /// (0-based): a head with one network per task (the columns) runs the task's own,
    /// tasks past the newest by the newest; a single network ignores it.
    fn predict_for(&mut self, x: &[f32], task: usize, active: Active<'_>, out: &mut [u16]) -> Result<(), Error>;

    /// Trainable parameters: weights and biases of the dense head, every column's
    /// weights for the columns.
    fn parameters(&self) -> usize;

    /// Bytes of the arena in use, alignment included.
    fn arena_used(&self) -> usize;

    /// The plan the head was carved by.
    fn plan(&self) -> &Plan;
}

impl Classifier for Learner<'_> {
    fn train_step(&mut self, x: &[f32], labels: &[u16], active: Active<'_>) -> Result<f32, Error> {
        Learner::train_step(self, x, labels, active)
    }

    fn predict_for(&mut self, x: &[f32], _task: usize, active: Active<'_>, out: &mut [u16]) -> Result<(), Error> {
        self.predict(x, active, out)
    }

    fn parameters(&self) -> usize {
        self.weights().len() + self.biases().len()
    }

    fn arena_used(&self) -> usize {
        Learner::arena_used(self)
    }

    fn plan(&self) -> &Plan {
        Learner::plan(self)
    }
}

impl Classifier for Columns<'_> {
    fn train_step(&mut self, x: &[f32], labels: &[u16], active: Active<'_>) -> Result<f32, Error> {
        Columns::train_step(self, x, labels, active)
    }

    fn predict_for(&mut self, x: &[f32], task: usize, active: Active<'_>, out: &mut [u16]) -> Result<(), Error> {
        let newest = self
            .columns()
            .checked_sub(1)
            .ok_or(Error::NoSuchTask { task, tasks: 0 })?;
        self.predict(x, task.min(newest), active, out)
    }

    fn parameters(&self) -> usize {
        self.column_weights().len()
    }

    fn arena_used(&self) -> usize {
        Columns::arena_used(self)
    }

    fn plan(&self) -> &Plan {
        Columns::plan(self)
    }
}

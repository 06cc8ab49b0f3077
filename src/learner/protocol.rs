//! The per-task protocol: what a learner's defences do when a task ends, in one order, for
//! every driver (the host simulator, the device loop, `edgecl run`).
//!
//! A driver trains the task as samples come, then runs a [`TaskEnd`] to its end: each
//! [`TaskEnd::next`] does the defences' own work (PackNet prunes and freezes, the
//! generator commits, the penalty consolidates) and stops whenever it needs data only the
//! driver has, as a [`Need`]. The order is fixed here:
//!
//! 1. PackNet keeps the task's largest free weights for `outputs`, asks for
//!    [`Need::Retrain`] when the driver kept the task's samples, then freezes them;
//! 2. the generator asks for [`Need::Observe`] unless it saw every sample as it came,
//!    then commits;
//! 3. a penalty that estimates importance from samples (EWC, online EWC, MAS) asks for
//!    [`Need::Importance`] unless it was estimated as samples came, then consolidates.
//!
//! Nothing is allocated; a learner without a defence skips its steps.
//!
//! ```
//! use edgecl::learner::protocol::{Need, TaskEnd};
//! use edgecl::learner::learner::ClassRange;
//! use edgecl::{Active, Kernels, LayerDims, Learner, LearnerConfig, Method, Optimizer, PenaltyConfig, Plan, Storage};
//!
//! let config = LearnerConfig {
//!     dims: LayerDims::new(&[2, 2]).unwrap(),
//!     optimizer: Optimizer::adam(0.01),
//!     batch_size: 2,
//!     max_tasks: 2,
//!     seed: 1,
//!     kernels: Kernels::Reference,
//!     penalty: Some(PenaltyConfig { method: Method::Mas, lambda: 1.0, storage: Storage::F32 }),
//!     packnet: None,
//!     generator: None,
//! };
//! let mut arena = vec![0u8; Plan::new(&config).unwrap().total()];
//! let mut learner = Learner::new(&config, &mut arena).unwrap();
//! let (x, y) = ([1.0, 0.0, 0.0, 1.0], [0, 1]);
//! learner.train_step(&x, &y, Active::All).unwrap();
//! let mut end = TaskEnd::new(ClassRange { start: 0, end: 2 });
//! while let Some(need) = end.next(&mut learner).unwrap() {
//!     match need {
//!         Need::Importance { samples } => {
//!             let mut p = learner.penalised().unwrap();
//!             for (row, &label) in x.chunks_exact(2).zip(&y).take(samples) {
//!                 p.accumulate_importance(row, label, Active::All).unwrap();
//!             }
//!         }
//!         other => unreachable!("{other:?}"),
//!     }
//! }
//! assert_eq!(learner.consolidated_tasks(), 1);
//! ```

use crate::learner::dims::ClassRange;
use crate::learner::{Error, Learner, Method};

/// What the driver must do before it calls [`TaskEnd::next`] again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Train this many more updates on the task's samples, as during the task (PackNet
    /// retraining the weights it kept).
    Retrain {
        /// Updates.
        updates: usize,
    },
    /// Show each of the task's training samples once to the generator
    /// ([`crate::learner::learner::Replaying::observe`]).
    Observe,
    /// Add up to this many of the task's training samples to the importance
    /// ([`crate::learner::learner::Penalised::accumulate_importance`]), over the classes
    /// the task trained.
    Importance {
        /// Samples at most.
        samples: usize,
    },
}

/// The step a [`TaskEnd`] is at (or failed in): for the driver's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// PackNet keeps the task's weights (and the driver retrains them).
    Prune,
    /// PackNet freezes the task's weights.
    Freeze,
    /// The generator observes the task's samples.
    Observe,
    /// The generator commits what it observed.
    Commit,
    /// The penalty estimates the task's importance.
    Importance,
    /// The penalty consolidates.
    Consolidate,
    /// Nothing is left.
    Done,
}

impl Stage {
    /// What the stage does, for a message (`pruning the task's weights`, ...).
    pub fn doing(self) -> &'static str {
        match self {
            Stage::Prune => "pruning the task's weights",
            Stage::Freeze => "freezing the task's weights",
            Stage::Observe => "the generator observing the task",
            Stage::Commit => "committing the generator",
            Stage::Importance => "estimating the task's importance",
            Stage::Consolidate => "consolidating the penalty",
            Stage::Done => "ending the task",
        }
    }
}

/// One task's end, run step by step with [`TaskEnd::next`].
#[derive(Debug, Clone, Copy)]
pub struct TaskEnd {
    outputs: ClassRange,
    retrain: usize,
    observed: bool,
    estimated: bool,
    samples: usize,
    stage: Stage,
}

impl TaskEnd {
    /// A task's end; `outputs` are the classes PackNet keeps the task's weights for (the
    /// task's own, or every class seen). By default nothing is retrained, the generator
    /// has not observed the task and the importance asks for 1 sample.
    pub fn new(outputs: ClassRange) -> TaskEnd {
        TaskEnd {
            outputs,
            retrain: 0,
            observed: false,
            estimated: false,
            samples: 1,
            stage: Stage::Prune,
        }
    }

    /// PackNet retrains its kept weights for `updates` (0: the driver kept no samples).
    pub fn retrain(self, updates: usize) -> TaskEnd {
        TaskEnd {
            retrain: updates,
            ..self
        }
    }

    /// The generator saw every training sample as it came: no [`Need::Observe`].
    pub fn observed(self, observed: bool) -> TaskEnd {
        TaskEnd { observed, ..self }
    }

    /// The importance was estimated as samples came: no [`Need::Importance`].
    pub fn estimated(self, estimated: bool) -> TaskEnd {
        TaskEnd { estimated, ..self }
    }

    /// Samples the importance pass asks for (at least 1).
    pub fn importance_samples(self, samples: usize) -> TaskEnd {
        TaskEnd {
            samples: samples.max(1),
            ..self
        }
    }

    /// The step it is at: after an error, the step that failed.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// Runs the defences' steps up to the next thing the driver must do (`Some`), or to
    /// the end (`None`, and every later call too). On error the stage stays the failed
    /// one.
    pub fn next(&mut self, learner: &mut Learner<'_>) -> Result<Option<Need>, Error> {
        let c = learner.config();
        let (packnet, generator, penalty) = (c.packnet.is_some(), c.generator.is_some(), c.penalty.map(|p| p.method));
        loop {
            match self.stage {
                Stage::Prune if packnet => {
                    if let Some(mut p) = learner.packnet() {
                        p.prune(self.outputs)?;
                    }
                    self.stage = Stage::Freeze;
                    if self.retrain > 0 {
                        return Ok(Some(Need::Retrain { updates: self.retrain }));
                    }
                }
                Stage::Prune => self.stage = Stage::Observe,
                Stage::Freeze => {
                    if let Some(mut p) = learner.packnet() {
                        p.end_task()?;
                    }
                    self.stage = Stage::Observe;
                }
                Stage::Observe => {
                    self.stage = Stage::Commit;
                    if generator && !self.observed {
                        return Ok(Some(Need::Observe));
                    }
                }
                Stage::Commit => {
                    if let Some(mut r) = learner.replaying() {
                        r.commit()?;
                    }
                    self.stage = Stage::Importance;
                }
                Stage::Importance => {
                    self.stage = Stage::Consolidate;
                    let from_samples = matches!(penalty, Some(m) if !matches!(m, Method::Si { .. }));
                    if from_samples && !self.estimated {
                        return Ok(Some(Need::Importance { samples: self.samples }));
                    }
                }
                Stage::Consolidate => {
                    if let Some(mut p) = learner.penalised() {
                        p.consolidate()?;
                    }
                    self.stage = Stage::Done;
                }
                Stage::Done => return Ok(None),
            }
        }
    }
}

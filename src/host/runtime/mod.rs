//! The learner deployed on a Linux board (feature `onnx`): samples in as they come,
//! features through tract at batch 1, a prediction out for each, and the labelled ones
//! learned by the core's [`Learner`] in an arena of the board's budget, with checkpoints
//! in a state folder so that a killed process goes on where it stopped.
//!
//! ```text
//! Deployment::open(image, key, backbone, state)   verify the signed image (Ed25519),
//!        |                                        its config, the backbone's SHA-256;
//!        |                                        plan the learner; one tract plan
//!        v                                        for batch 1
//! let mut arena = vec![0; dep.arena_bytes()]      the one arena: the plan's bytes
//! let mut rt = dep.start(&mut arena)?             resume from the newest valid state,
//!        |                                        or the image's initial head
//!        v
//! rt.predict(x) / rt.learn(x, label)              batch-1 features -> head -> class
//!   labelled rows gather into the batch; full:    and scores; learn adds the row
//!   observe (generator, importance), replayed
//!   rows of old classes, one update
//! rt.begin_task(classes) / rt.end_task()          commit the generator, consolidate
//!                                                 the penalty, evaluate, checkpoint
//! rt.checkpoint() / rt.stats()
//! ```
//!
//! The protocol is the simulator's online one ([`simulate::Observe::Online`]): the update a full
//! batch makes, the rows replayed in it and the task-end steps are those
//! `edgecl simulate --observe online` makes, in the same order, so a stream of the
//! simulator's samples gives its accuracy matrix bit for bit.
//!
//! Every input event moves the state's position by one (a sample, a task boundary, or a
//! refused line through [`Runtime::skip`]). A checkpoint taken while labelled rows wait for
//! their batch records the position of the first of them and the learner as it was
//! before them (rows are observed only when their batch updates), so a restart reads them
//! again and learns exactly what an uninterrupted run learns.

pub mod config;
pub mod input;
pub mod state;

mod deployment;
mod learn;
mod step;

pub use config::RunConfig;
pub use state::{RunState, StateDir};

pub use deployment::{hex, linux_image, sha256};
pub use step::{Holdout, Prediction, Refused, Resumed, Stats, StepError};

use crate::device::head_fnv1a;
use crate::host::board::Board;
use crate::host::onnx::Backbone;
use crate::host::simulate::{self, ReplayRatio};
use crate::learner::learner::ClassRange;
use crate::learner::{Learner, LearnerConfig, Plan};
use anyhow::Result;
use std::fmt;
use std::path::PathBuf;

/// A verified deployment: the image's config and head, the backbone, the learner's plan
/// and the state folder. [`Deployment::start`] makes the runtime in a caller's arena.
pub struct Deployment {
    board: Board,
    config: RunConfig,
    learner: LearnerConfig,
    plan: Plan,
    head: Vec<u8>,
    backbone: Backbone,
    image_sha256: [u8; 32],
    backbone_sha256: [u8; 32],
    state: PathBuf,
    checkpoint_every: u64,
    /// The penalty estimates importance from samples (EWC, online EWC, MAS).
    estimates: bool,
    /// The generator is a VAE, which learns on every batch.
    vae: bool,
    /// PackNet's masks: `Some(true)` alone (each task trains and predicts over its own
    /// classes, the task inferred by the most confident mask), `Some(false)` with replay
    /// (every class seen, the newest mask).
    packnet: Option<bool>,
}

impl fmt::Debug for Deployment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deployment")
            .field("board", &self.board.name)
            .field("learner", &self.learner.dims.as_slice())
            .field("arena_bytes", &self.plan.total())
            .field("state", &self.state)
            .finish()
    }
}

/// The deployed learner: see the [module docs](self).
pub struct Runtime<'a> {
    dep: &'a Deployment,
    learner: Learner<'a>,
    state: RunState,
    dir: StateDir,
    /// The batch: `k` real rows gathered, the rest replayed at the update.
    xb: Vec<f32>,
    yb: Vec<u16>,
    k: usize,
    /// One sample's features.
    feat: Vec<f32>,
    /// The state as it was before the first row waiting in the batch.
    pending: Option<RunState>,
    holdout: Option<Holdout>,
    /// Room for the learner's checkpoint image.
    image: Vec<u8>,
    checkpoints: u64,
    since_checkpoint: u64,
    /// A checkpoint is written once the event being handled is consumed.
    checkpoint_due: bool,
    resumed: Option<Resumed>,
}

impl fmt::Debug for Runtime<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("deployment", self.dep)
            .field("position", &self.state.position)
            .field("pending_rows", &self.k)
            .finish()
    }
}

impl<'a> Runtime<'a> {
    /// Where the runtime resumed from (`None`: a fresh state folder).
    pub fn resumed(&self) -> Option<&Resumed> {
        self.resumed.as_ref()
    }

    /// Input events consumed so far (the `seq` of the next one).
    pub fn position(&self) -> u64 {
        self.state.position
    }

    /// The learner (read only).
    pub fn learner(&self) -> &Learner<'a> {
        &self.learner
    }

    /// Names the input about to be read and returns the position to go on from in it:
    /// the stored position when the state was learned from the same input, else 0.
    pub fn attach(&mut self, source: &str) -> u64 {
        if self.state.source != source {
            self.state.source = source.to_string();
            self.state.position = 0;
        }
        self.state.position
    }

    /// Sets a held-out set to evaluate after each task (and now, if nothing was learned).
    pub fn set_holdout(&mut self, holdout: Holdout) -> Result<()> {
        self.holdout = Some(holdout);
        if self.state.task == 0 && self.state.updates == 0 && self.state.untrained.is_empty() {
            self.state.untrained = self.evaluate()?;
        }
        Ok(())
    }

    /// The head's prediction of one sample.
    pub fn predict(&mut self, x: &[f32]) -> std::result::Result<Prediction, StepError> {
        let p = self.sample(x, None);
        self.consumed()?;
        p
    }

    /// Predicts one labelled sample, then learns from it: the row joins the batch, and a
    /// full batch updates the head. Returns the prediction made before learning.
    pub fn learn(&mut self, x: &[f32], label: i64) -> std::result::Result<Prediction, StepError> {
        let p = self.sample(x, Some(label));
        self.consumed()?;
        p
    }

    /// A refused input event (a malformed line): counted, nothing else changes.
    pub fn skip(&mut self) {
        self.state.skipped += 1;
        self.state.position += 1;
    }

    /// One input event is consumed: the position moves past it, and a checkpoint that
    /// came due while it was handled (an update, a task end) is written now, so that it
    /// never records a half-handled event.
    fn consumed(&mut self) -> Result<()> {
        self.state.position += 1;
        if std::mem::take(&mut self.checkpoint_due) {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// A task of the classes `classes` starts (ends the running one if it learned
    /// anything): the replay batch is fixed for it and the classes are active from now.
    pub fn begin_task(&mut self, classes: ClassRange) -> std::result::Result<(), StepError> {
        if classes.start >= classes.end || usize::from(classes.end) > self.dep.config.classes {
            self.skip();
            return Err(StepError::Refused(Refused::Label {
                label: i64::from(classes.end) - 1,
                classes: self.dep.config.classes,
            }));
        }
        if self.state.task_labelled > 0 {
            self.finish_task()?;
        }
        self.start_task();
        self.state.own = (classes.start, classes.end);
        self.state.own_given = true;
        self.state.hi = self.state.hi.max(classes.end);
        self.state.real = self.real_rows().map(|r| r as u32);
        self.consumed()?;
        Ok(())
    }

    /// The running task ends: a partial batch updates, the generator commits, the
    /// penalty consolidates, the held-out set (if any) is evaluated and a checkpoint is
    /// written. A task that learned nothing ends nothing.
    pub fn end_task(&mut self) -> std::result::Result<(), StepError> {
        if self.state.task_labelled > 0 {
            self.finish_task()?;
        }
        self.consumed()?;
        Ok(())
    }

    /// Writes the state to the state folder now (the newest checkpoint stays valid if it
    /// fails). Returns the slot file written.
    pub fn checkpoint(&mut self) -> Result<PathBuf> {
        let state = self.pending.as_ref().unwrap_or(&self.state);
        let sequence = (self.checkpoints as u32).wrapping_add(1);
        let n = self
            .learner
            .write_checkpoint(sequence, state.task, &mut self.image)
            .map_err(|e| anyhow::anyhow!("writing the learner's checkpoint: {e}"))?;
        let path = self.dir.save(state, &self.image[..n])?;
        self.checkpoints += 1;
        self.since_checkpoint = 0;
        Ok(path)
    }

    /// What the runtime has done so far.
    pub fn stats(&mut self) -> Stats {
        let mut state_hash = crate::learner::math::Fnv1a::new();
        let n = self.learner.write_checkpoint(0, 0, &mut self.image).unwrap_or(0);
        if n >= crate::learner::checkpoint::HEADER {
            state_hash.update(&self.image[crate::learner::checkpoint::HEADER..n]);
        }
        let state_hash = state_hash.finish();
        let s = &self.state;
        Stats {
            samples: s.samples,
            labelled: s.labelled,
            updates: s.updates,
            skipped: s.skipped,
            tasks: s.task,
            checkpoints: self.checkpoints,
            position: s.position,
            arena_bytes: self.dep.plan.total(),
            head_fnv1a: head_fnv1a(self.learner.weights(), self.learner.biases()),
            state_fnv1a: state_hash,
            matrix: s.matrix.clone(),
            untrained: s.untrained.clone(),
        }
    }

    /// Real rows per update of the running task: `None` when nothing is replayed (no
    /// generator, or no old class yet), so an update takes a whole batch of real rows.
    pub fn real_rows(&self) -> Option<usize> {
        if self.state.own_given {
            if let Some(r) = self.state.real {
                return Some(r as usize);
            }
        }
        let g = self.learner.generator()?;
        let own = ClassRange {
            start: self.state.own.0,
            end: self.state.own.1,
        };
        let ratio = self.dep.config.replay_ratio.map_or(ReplayRatio::Balanced, |r| r.0);
        simulate::real_rows(g, own, ratio, self.learner.config().batch_size)
    }
}

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

pub use config::RunConfig;
pub use state::{RunState, StateDir};

use crate::device::{head_fnv1a, signed};
use crate::host::board::Board;
use crate::host::onnx::Backbone;
use crate::host::simulate::{self, ReplayRatio};
use crate::learner::learner::ClassRange;
use crate::learner::{Active, Learner, LearnerConfig, Plan};
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::{Path, PathBuf};

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

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Deployment {
    /// Reads and verifies the image at `image` with the public key file `key` (hex, as
    /// `edgecl keygen` writes it) and the ONNX `backbone`; `state` is the state folder.
    pub fn open(image: &Path, key: &Path, backbone: &Path, state: &Path) -> Result<Deployment> {
        let image_bytes = std::fs::read(image).with_context(|| format!("reading the image {}", image.display()))?;
        let key_text = std::fs::read_to_string(key).with_context(|| format!("reading the key {}", key.display()))?;
        let public =
            crate::host::device::from_hex32(&key_text).with_context(|| format!("the public key {}", key.display()))?;
        let onnx = std::fs::read(backbone).with_context(|| format!("reading the backbone {}", backbone.display()))?;
        Deployment::from_bytes(
            &image_bytes,
            &image.display().to_string(),
            &public,
            &onnx,
            &backbone.display().to_string(),
            state,
        )
    }

    /// [`Deployment::open`] over bytes already read; the names are what errors call them.
    pub fn from_bytes(
        image: &[u8],
        image_name: &str,
        public_key: &[u8; 32],
        onnx: &[u8],
        onnx_name: &str,
        state: &Path,
    ) -> Result<Deployment> {
        let parts = signed::open(image, public_key).map_err(|e| anyhow::anyhow!("{image_name}: {e}"))?;
        let board = Board::load(parts.board).with_context(|| format!("{image_name}: the board it was made for"))?;
        if board.kind != "linux" {
            bail!(
                "{image_name}: an image for {} ({} board); edgecl run deploys on Linux boards, the firmware runs microcontroller images",
                board.name,
                board.kind
            );
        }
        if !parts.backbone.is_empty() {
            bail!(
                "{image_name}: the image carries a backbone; a Linux board's image takes its backbone as an ONNX file"
            );
        }
        let text = std::str::from_utf8(parts.config)
            .map_err(|_| anyhow::anyhow!("{image_name}: its config is not UTF-8 text"))?;
        let config = RunConfig::parse(text).with_context(|| format!("{image_name}: its config"))?;
        let backbone_sha256 = sha256(onnx);
        match &config.backbone_sha256 {
            Some(want) if !want.eq_ignore_ascii_case(&hex(&backbone_sha256)) => bail!(
                "{onnx_name}: not the backbone this image was made for (its SHA-256 is {}, the image wants {want}); refusing to run",
                hex(&backbone_sha256)
            ),
            Some(_) => {}
            None => bail!("{image_name}: its config names no backbone_sha256 (edgecl export writes it)"),
        }
        let backbone = Backbone::per_sample(onnx, onnx_name)?;
        let learner = config.learner(&board, backbone.feature_width())?;
        let plan = Plan::new(&learner)?;
        let budget = config.budget.map_or(board.budget(), |b| b.0);
        plan.check(budget)
            .with_context(|| format!("{image_name}: the learner on {}", board.name))?;
        let weights = learner.dims.weight_count() + learner.dims.bias_count();
        if parts.head.len() != 4 * weights {
            bail!(
                "{image_name}: its head has {} bytes, the learner {:?} has {weights} parameters",
                parts.head.len(),
                learner.dims.as_slice()
            );
        }
        Ok(Deployment {
            board,
            learner,
            plan,
            head: parts.head.to_vec(),
            backbone,
            image_sha256: sha256(image),
            backbone_sha256,
            state: state.to_path_buf(),
            checkpoint_every: 0,
            estimates: config.estimates_importance(),
            packnet: match config.strategy()? {
                simulate::Strategy::PackNet(_) => Some(true),
                simulate::Strategy::PackNetReplay => Some(false),
                _ => None,
            },
            vae: matches!(
                learner.generator,
                Some(crate::learner::GeneratorConfig {
                    kind: crate::learner::GeneratorKind::Vae(_),
                    ..
                })
            ),
            config,
        })
    }

    /// Checkpoints every `n` updates as well as at task ends (0: at task ends only).
    pub fn checkpoint_every(&mut self, n: u64) {
        self.checkpoint_every = n;
    }

    /// Bytes of the arena [`Deployment::start`] needs: the learner's plan.
    pub fn arena_bytes(&self) -> usize {
        self.plan.total()
    }

    /// The board the image was made for.
    pub fn board(&self) -> &Board {
        &self.board
    }

    /// The image's config.
    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    /// The learner's config.
    pub fn learner(&self) -> &LearnerConfig {
        &self.learner
    }

    /// The learner's plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The backbone (one sample at a time).
    pub fn backbone(&self) -> &Backbone {
        &self.backbone
    }

    /// Builds the learner in `arena` and resumes from the newest valid state in the state
    /// folder, or starts from the image's initial head when the folder holds none. A
    /// folder written under another image, backbone or config is refused.
    pub fn start<'a>(&'a self, arena: &'a mut [u8]) -> Result<Runtime<'a>> {
        let mut learner = Learner::new(&self.learner, arena)?;
        let mut dir = StateDir::open(&self.state)?;
        let loaded = dir.load()?;
        let classes = self.config.classes;
        let (state, resumed) = match loaded {
            None => {
                let (w, b) = learner.params_mut();
                if !signed::read_head(&self.head, w, b) {
                    bail!("the image's head is not the learner's size");
                }
                let state = RunState {
                    image_sha256: self.image_sha256,
                    backbone_sha256: self.backbone_sha256,
                    seen: vec![false; classes],
                    ..RunState::default()
                };
                (state, None)
            }
            Some(l) => {
                let folder = self.state.display();
                if l.state.image_sha256 != self.image_sha256 {
                    bail!(
                        "the state folder {folder} was written under another device image (SHA-256 {}, this one is {}); it is left as it is: give another --state, or move it away to start over",
                        hex(&l.state.image_sha256),
                        hex(&self.image_sha256)
                    );
                }
                if l.state.backbone_sha256 != self.backbone_sha256 {
                    bail!(
                        "the state folder {folder} was written with another backbone (SHA-256 {}, this one is {}); it is left as it is",
                        hex(&l.state.backbone_sha256),
                        hex(&self.backbone_sha256)
                    );
                }
                if l.state.seen.len() != classes {
                    bail!(
                        "the state folder {folder} holds a state of {} classes, the image's head has {classes}",
                        l.state.seen.len()
                    );
                }
                learner.read_checkpoint(&l.learner).map_err(|e| {
                    anyhow::anyhow!(
                        "the state folder {folder} holds a learner this image's config did not make ({e}); it is left as it is"
                    )
                })?;
                let resumed = Resumed {
                    path: l.path,
                    rejected: l.rejected,
                };
                (l.state, Some(resumed))
            }
        };
        let (b, f) = (self.learner.batch_size, self.learner.dims.input());
        let capacity = learner.checkpoint_capacity();
        Ok(Runtime {
            dep: self,
            learner,
            state,
            dir,
            xb: vec![0.0; b * f],
            yb: vec![0; b],
            k: 0,
            feat: vec![0.0; f],
            pending: None,
            holdout: None,
            image: vec![0; capacity],
            checkpoints: 0,
            since_checkpoint: 0,
            checkpoint_due: false,
            resumed,
        })
    }
}

/// Where a runtime resumed from.
#[derive(Debug, Clone)]
pub struct Resumed {
    /// The slot file.
    pub path: PathBuf,
    /// Slot files that were present but invalid, with why.
    pub rejected: Vec<String>,
}

/// What the head says of a sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The most likely class.
    pub class: u16,
    /// The softmax over every class of the head.
    pub scores: Vec<f32>,
}

/// Why a sample was refused (the learner's state is unchanged).
#[derive(Debug, Clone, PartialEq)]
pub enum Refused {
    /// Not the backbone's input width.
    Width {
        /// Values given.
        got: usize,
        /// Values the backbone takes.
        expected: usize,
    },
    /// A value is NaN or infinite.
    NonFinite {
        /// Its index in the sample.
        index: usize,
        /// The value.
        value: f32,
    },
    /// A label past the head's classes.
    Label {
        /// The label given.
        label: i64,
        /// Classes of the head.
        classes: usize,
    },
    /// The backbone's features of it are NaN or infinite.
    NonFiniteFeatures,
    /// An input line that is not an event, and why.
    Line(String),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Refused::Width { got, expected } => {
                write!(f, "a sample of {got} values; the backbone takes {expected}")
            }
            Refused::NonFinite { index, value } => write!(f, "value {index} of the sample is {value}"),
            Refused::Label { label, classes } => {
                write!(
                    f,
                    "label {label} is out of range: the head has classes 0 to {}",
                    classes - 1
                )
            }
            Refused::NonFiniteFeatures => write!(f, "the backbone's features of this sample are not finite"),
            Refused::Line(ref why) => write!(f, "{why}"),
        }
    }
}

/// Why a step failed.
#[derive(Debug)]
pub enum StepError {
    /// The sample was refused and skipped; nothing else changed.
    Refused(Refused),
    /// The runtime could not go on (the backbone, the learner or the state folder failed).
    Failed(anyhow::Error),
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepError::Refused(r) => write!(f, "{r}"),
            StepError::Failed(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::error::Error for StepError {}

impl From<anyhow::Error> for StepError {
    fn from(e: anyhow::Error) -> Self {
        StepError::Failed(e)
    }
}

impl From<crate::learner::Error> for StepError {
    fn from(e: crate::learner::Error) -> Self {
        StepError::Failed(e.into())
    }
}

/// A held-out set the runtime evaluates after each task: features and labels per task.
#[derive(Debug, Clone, Default)]
pub struct Holdout {
    /// Per held-out task: features (`n x feature width`) and labels.
    pub tasks: Vec<(Vec<f32>, Vec<u16>)>,
}

/// What the runtime has done.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// Samples predicted.
    pub samples: u64,
    /// Labelled samples learned from.
    pub labelled: u64,
    /// Updates of the head.
    pub updates: u64,
    /// Input events refused.
    pub skipped: u64,
    /// Tasks ended.
    pub tasks: u32,
    /// Checkpoints written by this process.
    pub checkpoints: u64,
    /// Input events consumed (where a restart of the same input goes on).
    pub position: u64,
    /// The arena's bytes (the learner's plan).
    pub arena_bytes: usize,
    /// FNV-1a of the head's weights and biases.
    pub head_fnv1a: u32,
    /// FNV-1a of the learner's whole saved state (every checkpointed component).
    pub state_fnv1a: u32,
    /// The accuracy rows measured after each task, when there is a held-out set.
    pub matrix: Vec<Vec<f64>>,
    /// The accuracy before any learning, when there is a held-out set.
    pub untrained: Vec<f64>,
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
        let mut state_hash = 0x811c_9dc5u32;
        let n = self.learner.write_checkpoint(0, 0, &mut self.image).unwrap_or(0);
        if n >= crate::learner::checkpoint::HEADER {
            for &b in &self.image[crate::learner::checkpoint::HEADER..n] {
                state_hash = (state_hash ^ u32::from(b)).wrapping_mul(0x0100_0193);
            }
        }
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

    /// Checks a sample, takes its features and the head's prediction, and learns from it
    /// when labelled. Refusals change nothing but the skipped count.
    fn sample(&mut self, x: &[f32], label: Option<i64>) -> std::result::Result<Prediction, StepError> {
        let refused = self.check(x, label).err();
        let features = match refused {
            Some(r) => Err(r),
            None => self.features(x),
        };
        if let Err(r) = features {
            self.state.skipped += 1;
            return Err(StepError::Refused(r));
        }
        let prediction = self.head()?;
        if let Some(label) = label {
            self.add_row(label as u16)?;
        }
        self.state.samples += 1;
        Ok(prediction)
    }

    fn check(&self, x: &[f32], label: Option<i64>) -> std::result::Result<(), Refused> {
        let expected = self.dep.backbone.input_width();
        if x.len() != expected {
            return Err(Refused::Width { got: x.len(), expected });
        }
        if let Some(index) = x.iter().position(|v| !v.is_finite()) {
            return Err(Refused::NonFinite { index, value: x[index] });
        }
        let classes = self.dep.config.classes;
        match label {
            Some(l) if l < 0 || l >= classes as i64 => Err(Refused::Label { label: l, classes }),
            _ => Ok(()),
        }
    }

    fn features(&mut self, x: &[f32]) -> std::result::Result<(), Refused> {
        if self.dep.backbone.sample(x, &mut self.feat).is_err() || self.feat.iter().any(|v| !v.is_finite()) {
            return Err(Refused::NonFiniteFeatures);
        }
        Ok(())
    }

    /// The head over the features in `feat`: the best class of all, and the softmax.
    fn head(&mut self) -> Result<Prediction> {
        let learned = self.learner.packnet_tasks();
        if let (Some(own_only), true) = (self.dep.packnet, learned > 0) {
            return self.head_packnet(own_only, learned);
        }
        let logits = self.learner.logits(&self.feat)?;
        let best = logits
            .iter()
            .enumerate()
            .fold(0, |b, (j, &z)| if z > logits[b] { j } else { b });
        let top = logits[best];
        let mut scores: Vec<f32> = logits.iter().map(|&z| crate::learner::math::exp(z - top)).collect();
        let sum: f32 = scores.iter().sum();
        scores.iter_mut().for_each(|s| *s /= sum);
        Ok(Prediction {
            class: best as u16,
            scores,
        })
    }

    /// PackNet's prediction after `learned` tasks: with replay, the newest mask over the
    /// classes seen; alone, the mask most confident over its own task's classes (scores
    /// are that mask's softmax over them, 0 elsewhere).
    fn head_packnet(&mut self, own_only: bool, learned: usize) -> Result<Prediction> {
        let classes = self.dep.config.classes;
        let tasks: Vec<(usize, (u16, u16))> = match own_only {
            true => (1..=learned).zip(self.state.task_classes.iter().copied()).collect(),
            false => vec![(learned, (0, self.state.hi))],
        };
        // (confidence, class, softmax over the task's classes) of the most confident mask.
        let mut best: Option<(f32, usize, Vec<f32>)> = None;
        for &(s, (lo, hi)) in &tasks {
            let z = self.learner.logits_task(&self.feat, s)?;
            let (lo, hi) = (usize::from(lo), usize::from(hi).min(classes));
            let b = (lo..hi).fold(lo, |b, j| if z[j] > z[b] { j } else { b });
            let mut scores = vec![0.0f32; classes];
            for j in lo..hi {
                scores[j] = crate::learner::math::exp(z[j] - z[b]);
            }
            let sum: f32 = scores.iter().sum();
            if best.as_ref().is_none_or(|(c, ..)| 1.0 / sum > *c) {
                scores.iter_mut().for_each(|v| *v /= sum);
                best = Some((1.0 / sum, b, scores));
            }
        }
        let (_, class, scores) = best.context("no PackNet task to predict with")?;
        Ok(Prediction {
            class: class as u16,
            scores,
        })
    }

    /// Clears what a task keeps of itself and applies a pending optimizer reset.
    fn start_task(&mut self) {
        self.clear_task();
        if self.state.pending_reset {
            self.learner.reset_optimizer();
            self.state.pending_reset = false;
        }
    }

    /// Forgets the running task's classes, batch composition and count.
    fn clear_task(&mut self) {
        self.state.own = (0, 0);
        self.state.own_given = false;
        self.state.real = None;
        self.state.task_labelled = 0;
    }

    /// The features in `feat` with `label` join the batch; task-free boundaries first.
    fn add_row(&mut self, label: u16) -> Result<()> {
        let c = &self.dep.config;
        let new_class = !self.state.seen[usize::from(label)];
        if self.state.task_labelled > 0
            && ((c.end_task_on_new_class && new_class)
                || (c.end_task_every > 0 && self.state.task_labelled >= c.end_task_every))
        {
            self.finish_task()?;
        }
        if self.state.task_labelled == 0 && !self.state.own_given {
            self.start_task();
        }
        if self.k == 0 {
            self.pending = Some(self.state.clone());
        }
        let s = &mut self.state;
        s.seen[usize::from(label)] = true;
        if !s.own_given {
            s.own = match s.own {
                (_, 0) => (label, label + 1),
                (lo, hi) => (lo.min(label), hi.max(label + 1)),
            };
        }
        s.hi = s.hi.max(label + 1);
        s.labelled += 1;
        s.task_labelled += 1;
        let f = self.feat.len();
        self.xb[self.k * f..(self.k + 1) * f].copy_from_slice(&self.feat);
        self.yb[self.k] = label;
        self.k += 1;
        let target = self.real_rows().unwrap_or(self.yb.len());
        if self.k >= target {
            self.update(false)?;
        }
        Ok(())
    }

    /// One update on the `k` real rows gathered: each is observed (generator, importance),
    /// replayed rows of old classes fill the batch, the head steps, the VAE steps on the
    /// same batch. A partial batch (`flush`) replays in proportion to its real rows.
    fn update(&mut self, flush: bool) -> Result<()> {
        let (k, f, batch) = (self.k, self.feat.len(), self.yb.len());
        let seen = ClassRange {
            start: 0,
            end: self.state.hi,
        };
        let own = ClassRange {
            start: self.state.own.0,
            end: self.state.own.1,
        };
        let active = Active::Classes(seen);
        // PackNet alone trains each task's own outputs.
        let step_active = Active::Classes(if self.dep.packnet == Some(true) { own } else { seen });
        let replaying = self.learner.generator().is_some();
        let estimates = self.dep.estimates;
        for (x, &y) in self.xb[..k * f].chunks_exact(f).zip(&self.yb[..k]) {
            if replaying {
                self.learner.observe(x, y).context("the generator observing a sample")?;
            }
            if estimates {
                self.learner
                    .accumulate_importance(x, y, active)
                    .context("estimating importance")?;
            }
        }
        let mut replayed = 0;
        if let Some(real) = self.real_rows() {
            let extra = match flush {
                false => batch - k,
                true => ((k * (batch - real)) as f64 / real as f64).round() as usize,
            }
            .min(batch - k);
            if extra > 0 {
                replayed = self
                    .learner
                    .fill_replay(&mut self.xb[k * f..(k + extra) * f], &mut self.yb[k..k + extra], own)
                    .context("replaying old classes")?;
            }
        }
        let n = k + replayed;
        let (x, y) = (&self.xb[..n * f], &self.yb[..n]);
        match replayed {
            0 => self.learner.train_step(x, y, step_active),
            r => self.learner.train_step_replay(x, y, step_active, r),
        }
        .context("updating the head")?;
        if self.dep.vae {
            self.learner.train_generator(x, y).context("updating the generator")?;
        }
        self.state.updates += 1;
        self.k = 0;
        self.pending = None;
        self.since_checkpoint += 1;
        if self.dep.checkpoint_every > 0 && self.since_checkpoint >= self.dep.checkpoint_every {
            self.checkpoint_due = true;
        }
        Ok(())
    }

    /// Ends the running task (it learned something): see [`Runtime::end_task`].
    fn finish_task(&mut self) -> Result<()> {
        if self.k > 0 {
            self.update(true)?;
        }
        let own = (self.state.own.0, self.state.own.1);
        if let Some(own_only) = self.dep.packnet {
            // The task keeps its largest free weights (no retraining after: the device
            // has not kept the task's samples).
            let outputs = match own_only {
                true => ClassRange {
                    start: own.0,
                    end: own.1,
                },
                false => ClassRange {
                    start: 0,
                    end: self.state.hi,
                },
            };
            self.learner
                .packnet_prune(outputs)
                .context("pruning the task's weights")?;
            self.learner.packnet_end_task().context("ending the task's masks")?;
        }
        self.state.task_classes.push(own);
        if self.learner.generator().is_some() {
            self.learner.commit_generator().context("committing the generator")?;
        }
        if self.learner.config().penalty.is_some() {
            self.learner.consolidate().context("consolidating the penalty")?;
        }
        self.state.task += 1;
        self.state.pending_reset = self.dep.config.reset_optimizer;
        self.clear_task();
        if self.holdout.is_some() {
            let row = self.evaluate()?;
            self.state.matrix.push(row);
        }
        self.checkpoint_due = true;
        Ok(())
    }

    /// Accuracy (%) on each held-out task over every class of the head.
    fn evaluate(&mut self) -> Result<Vec<f64>> {
        let Some(h) = self.holdout.take() else {
            return Ok(Vec::new());
        };
        let row = self.evaluate_on(&h);
        self.holdout = Some(h);
        row
    }

    fn evaluate_on(&mut self, h: &Holdout) -> Result<Vec<f64>> {
        let active = Active::Classes(ClassRange {
            start: 0,
            end: self.dep.config.classes as u16,
        });
        let learned = self.learner.packnet_tasks();
        let mut row = Vec::with_capacity(h.tasks.len());
        for (x, y) in &h.tasks {
            let mut out = vec![0u16; y.len()];
            match (self.dep.packnet, learned) {
                (None, _) | (_, 0) => self.learner.predict(x, active, &mut out)?,
                (Some(false), _) => {
                    let seen = Active::Classes(ClassRange {
                        start: 0,
                        end: self.state.hi,
                    });
                    self.learner.predict_task(x, learned, seen, &mut out, None)?;
                }
                (Some(true), _) => {
                    // Each sample to the task whose mask is most confident over its own
                    // classes (the first such task on a tie), as the simulator does.
                    let mut best = vec![(f32::NEG_INFINITY, 0u16); y.len()];
                    let mut conf = vec![0f32; y.len()];
                    for (s, &(lo, hi)) in self.state.task_classes.iter().enumerate().take(learned) {
                        let own = Active::Classes(ClassRange { start: lo, end: hi });
                        self.learner.predict_task(x, s + 1, own, &mut out, Some(&mut conf))?;
                        for (b, (&c, &o)) in best.iter_mut().zip(conf.iter().zip(&out)) {
                            if c > b.0 {
                                *b = (c, o);
                            }
                        }
                    }
                    out.iter_mut().zip(&best).for_each(|(o, b)| *o = b.1);
                }
            }
            let right = out.iter().zip(y).filter(|(a, b)| a == b).count();
            row.push(100.0 * right as f64 / y.len().max(1) as f64);
        }
        Ok(row)
    }
}

/// A Linux board's signed device image: the run config `config_text` with the SHA-256 of
/// the ONNX backbone `onnx` added (`backbone_sha256`), the head's initial weights (the
/// learner's seeded initialisation, as the simulator's), and no backbone payload.
pub fn linux_image(
    board: &Board,
    config_text: &str,
    onnx: &[u8],
    onnx_name: &str,
    secret: &[u8; 32],
) -> Result<Vec<u8>> {
    if board.kind != "linux" {
        bail!("{} is a {} board: its image carries an int8 backbone and a device config (edgecl export without a run config)", board.name, board.kind);
    }
    let digest = hex(&sha256(onnx));
    let given = RunConfig::parse(config_text)?;
    let text = match &given.backbone_sha256 {
        Some(d) if d.eq_ignore_ascii_case(&digest) => config_text.to_string(),
        Some(d) => bail!("the config's backbone_sha256 is {d}, but {onnx_name} has {digest}"),
        None => format!(
            "{}\n# the ONNX backbone this head was made for\nbackbone_sha256 = \"{digest}\"\n",
            config_text.trim_end()
        ),
    };
    let config = RunConfig::parse(&text)?;
    let backbone = Backbone::from_bytes(onnx, onnx_name)?;
    let learner = config.learner(board, backbone.feature_width())?;
    let plan = Plan::new(&learner)?;
    plan.check(config.budget.map_or(board.budget(), |b| b.0))
        .with_context(|| format!("the learner {:?} on {}", learner.dims.as_slice(), board.name))?;
    let head = crate::host::device::initial_head(&learner)?;
    crate::host::device::sign_image(&board.name, &text, &head, &[], secret)
}

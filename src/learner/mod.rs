//! The `no_std` learner core.
//!
//! Everything here builds without `std` and without a heap (`thumbv7em-none-eabihf`,
//! `thumbv6m-none-eabi`). State lives in one arena:
//!
//! ```text
//!  caller's &mut [u8]  (its length is the budget)
//! +-------+---------+--------+-----------+-----------------+-------------+--------+------+
//! | align | weights | biases | gradients | optimizer state | activations | deltas | pack |
//! +-------+---------+--------+-----------+-----------------+-------------+--------+------+
//!   0..15   each component starts on a 16-byte boundary; `pack` only with fast kernels
//!
//! with an importance penalty, after those:
//! +------------+-------------------+---------+-------------------+
//! | importance | importance scales | anchors |  importance sums  |
//! +------------+-------------------+---------+-------------------+
//!   u8 or f32    f32 per tensor      f16/f32   f32 per parameter
//!   (a slot per task for EWC: importance, scales and anchors)
//!
//! with PackNet, last: `packnet owners`, ceil(log2(max_tasks + 1)) bits per weight
//! ```
//!
//! The modules form layers; a module imports only from its own layer's lower entries or
//! from layers below (`tests/layers.rs` fails on any import circle among these files):
//!
//! 1. Bottom: [`error`] (the core's errors), [`format`](mod@format) (the checkpoint format's
//!    constants), [`math`] (libm wrappers, FNV-1a), [`rng`] (the seeded generator, the
//!    same bits on every target), [`names`] (component names), [`dims`] (layer widths,
//!    active classes, the input checks), [`state`] (the persistent state's parts, their
//!    visitor, the checkpoint's scalars and the config fingerprint), [`strategy`] (the
//!    one vocabulary of defences every driver parses and prints), [`kernels`] (matrix
//!    products and Adam's element-wise update, reference and fast), [`arena`] (carves
//!    typed slices; the [`arena::Space`] a layout takes its components from).
//! 2. The network: [`network`] (dense layers, ReLU, softmax cross-entropy), [`optim`]
//!    (SGD with momentum and Adam).
//! 3. Defences, each laying out its own part of the arena: [`consolidation`] (importance
//!    penalties: EWC, online EWC, SI, MAS), [`packnet`] (bit-packed owner task per
//!    weight), [`replay`] and [`vae`] (class-conditional generators of features, and
//!    distillation's teacher).
//! 4. [`config`] ([`LearnerConfig`]: the head and its defences), [`layout`] (every
//!    component in carving order, written once), [`plan`] (the layout counted: bytes
//!    per component before anything is carved).
//! 5. Learners: [`learner`] (the [`Learner`]: a dense head and its defences, each
//!    defence's calls on its handle, [`learner::Penalised`], [`learner::Replaying`],
//!    [`learner::Packing`], which only a learner built with it gives),
//!    [`progressive`] (progressive columns, [`Columns`], a frozen column per task), and
//!    [`checkpoint`] (a learner's state as one self-checking image).
//! 6. What drivers hold: [`classifier`] (the heads behind one trait) and [`protocol`]
//!    (the per-task protocol, [`protocol::TaskEnd`], the simulator, the device loop and
//!    `edgecl run` all run at a task's end).

pub mod arena;
pub mod checkpoint;
pub mod classifier;
pub mod config;
pub mod consolidation;
pub mod defence;
pub mod dims;
pub mod error;
pub mod format;
pub mod kernels;
pub mod layout;
#[allow(clippy::module_inception)]
pub mod learner;
pub mod math;
pub mod names;
pub mod network;
pub mod optim;
pub mod packnet;
pub mod plan;
pub mod progressive;
pub mod protocol;
pub mod replay;
pub mod rng;
pub mod state;
pub mod strategy;
pub mod vae;

pub use arena::Arena;
pub use config::LearnerConfig;
pub use consolidation::{FisherLabels, Method, PenaltyConfig, Quant, Storage};
pub use dims::{Active, LayerDims};
pub use error::Error;
pub use kernels::Kernels;
pub use learner::Learner;
pub use optim::Optimizer;
pub use packnet::PackNetConfig;
pub use plan::{Component, Plan};
pub use progressive::{Columns, ColumnsConfig};
pub use replay::{Generator, GeneratorConfig, GeneratorKind};
pub use strategy::{PenaltyKind, Strategy};
pub use vae::{Likelihood, VaeConfig};

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
//! - [`config`]: what the learner is ([`LearnerConfig`]: layer sizes, optimizer, batch).
//! - [`plan`]: the bytes of every component, computed before anything is carved.
//! - [`arena`]: carves typed slices out of the caller's buffer, in plan order.
//! - [`kernels`]: matrix products, a plain reference kernel and a packed fast path.
//! - [`network`]: dense layers, ReLU and softmax cross-entropy, forward and backward.
//! - [`optim`]: SGD with momentum and Adam, their state in the arena.
//! - [`consolidation`]: importance (EWC, online EWC, SI, MAS), anchors and the penalty.
//! - [`packnet`]: PackNet's bit-packed owner task per weight, pruning and masked inference.
//! - [`replay`]: a class-conditional Gaussian generator of features (Welford statistics)
//!   that replays old classes.
//! - [`progressive`]: progressive columns ([`Columns`]), a frozen column per task with
//!   lateral connections, as many as the plan reserves.
//! - [`rng`]: the seeded generator used for weight init (the same bits on every target).
//! - [`learner`]: the [`Learner`] that ties them together.
//! - [`error`]: the core's one error enum.

pub mod arena;
pub mod checkpoint;
pub mod config;
pub mod consolidation;
pub mod error;
pub mod kernels;
#[allow(clippy::module_inception)]
pub mod learner;
pub mod math;
pub mod network;
pub mod optim;
pub mod packnet;
pub mod plan;
pub mod progressive;
pub mod replay;
pub mod rng;
pub mod vae;

pub use arena::Arena;
pub use config::{Kernels, LayerDims, LearnerConfig, Optimizer};
pub use consolidation::{FisherLabels, Method, PenaltyConfig, Quant, Storage};
pub use error::Error;
pub use learner::{Active, Learner};
pub use packnet::PackNetConfig;
pub use plan::{Component, Plan};
pub use progressive::{Columns, ColumnsConfig};
pub use replay::{Generator, GeneratorConfig, GeneratorKind};
pub use vae::{Likelihood, VaeConfig};

//! # edgecl
//!
//! Continual learning on small devices, inside one fixed byte arena.
//!
//! The crate has two halves, and the folder layout follows them:
//!
//! - [`learner`]: the `no_std` core. A trainable network (the head), its optimizer and
//!   every scratch buffer are carved from one caller-given `&mut [u8]` whose size is the
//!   budget. A [`learner::Plan`] gives every component's bytes before anything is carved;
//!   after [`learner::Learner::new`] the core allocates nothing. The same code runs in the
//!   host simulator and in firmware.
//! - [`host`] (feature `std`, on by default): IDX data loaders, continual-learning
//!   scenarios, board profiles, the simulator that measures forgetting, and reports.
//!
//! - [`device`]: the `no_std` device loop firmware runs (backbone from flash, sample
//!   stream, evaluation, accuracy matrix), also run by the host simulator to reproduce a
//!   board's numbers bit for bit.
//!
//! The `edgecl` binary (`src/main.rs`) is the command line over the host half.
#![cfg_attr(not(any(feature = "std", test)), no_std)]
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod learner;

pub mod device;

pub mod storage;

#[cfg(feature = "std")]
pub mod host;

pub use learner::{
    Active, Arena, Columns, ColumnsConfig, Error, FisherLabels, Generator, GeneratorConfig, GeneratorKind, Kernels,
    LayerDims, Learner, LearnerConfig, Likelihood, Method, Optimizer, PackNetConfig, PenaltyConfig, PenaltyKind, Plan,
    Quant, Storage, Strategy, VaeConfig,
};

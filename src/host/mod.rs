//! The host side (feature `std`): data, scenarios, boards, the simulator and reports.
//!
//! - [`idx`]: IDX (optionally gzip) files into datasets, with clear errors.
//! - `onnx` (feature `onnx`): dense backbones written as ONNX, ONNX backbones run by tract.
//! - [`scenario`]: a dataset cut into tasks (split, permuted, rotated) and settings.
//! - [`board`]: board profiles (`boards/*.toml`), compiled in.
//! - [`simulate`]: the core's learner run over a scenario under a board's budget.
//! - `train` (feature `train`): backbones trained with burn and exported as ONNX.
//! - `runtime` (feature `onnx`): the learner deployed on a Linux board (`edgecl run`):
//!   live samples, tract at batch 1, learning in the board's arena, checkpoints.
//! - [`report`]: the accuracy matrix, forgetting metrics, memory table and JSON.
//! - [`sweep`], [`sweep_report`], [`slurm`]: grids of simulator runs (boards x scenarios x
//!   settings x strategies x budgets x seeds), run on this machine's cores or as a Slurm
//!   job array, and their report.
//! - [`plots`]: a sweep's plots (accuracy against budget, heat maps, task curves, plan bars)
//!   as PNG and SVG.

pub mod board;
pub mod device;
pub mod idx;
#[cfg(feature = "onnx")]
pub mod onnx;
pub mod plots;
pub mod report;
#[cfg(feature = "onnx")]
pub mod runtime;
pub mod scenario;
pub mod simulate;
pub mod slurm;
pub mod sweep;
pub mod sweep_report;
#[cfg(feature = "train")]
pub mod train;

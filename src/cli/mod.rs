//! The `edgecl` commands that live in a file of their own (the rest are in `main.rs`).

#[cfg(feature = "onnx")]
pub mod run;
pub mod sweep;

//! The `edgecl` commands, a file (or folder) each, and the arguments they share.

pub mod boards;
#[cfg(feature = "onnx")]
pub mod device_data;
#[cfg(feature = "onnx")]
pub mod export;
pub mod keygen;
pub mod plan;
#[cfg(feature = "onnx")]
pub mod run;
pub mod shape;
pub mod simulate;
pub mod strategy;
pub mod sweep;
#[cfg(feature = "train")]
pub mod train;

use std::path::{Path, PathBuf};

/// The shipped MNIST: `data/mnist` here, else the one beside the sources.
pub fn default_data() -> PathBuf {
    let local = Path::new("data/mnist");
    if local.exists() {
        local.to_path_buf()
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist")
    }
}

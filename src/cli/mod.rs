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
    shipped_path("data/mnist")
}

/// A file or folder the checkout ships (`data/mnist`, `models/fashion-cnn8`,
/// `boards/netduinoplus2/firmware.toml`), relative to the working directory: there when it
/// exists, else in the checkout this edgecl was built from, so commands find it from
/// anywhere.
pub fn shipped_path(relative: &str) -> PathBuf {
    let local = Path::new(relative);
    if local.exists() {
        local.to_path_buf()
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
    }
}

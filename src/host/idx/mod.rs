//! Reader for IDX files, the format MNIST and its relatives ship in.
//!
//! # Format
//!
//! An IDX file is a header followed by a dense, row-major payload:
//!
//! | offset      | size       | meaning                                        |
//! | ----------- | ---------- | ---------------------------------------------- |
//! | 0           | 2          | two zero bytes                                 |
//! | 2           | 1          | element type code                              |
//! | 3           | 1          | rank `r` (number of dimensions, at least 1)    |
//! | 4           | `4 * r`    | the dimensions, each a big-endian `u32`        |
//! | `4 + 4 * r` | the rest   | the elements, big-endian, last index fastest   |
//!
//! Supported element types are `0x08` (unsigned byte) and `0x0D` (big-endian
//! IEEE-754 `f32`). The other standard codes (`0x09` i8, `0x0B` i16, `0x0C`
//! i32, `0x0E` f64) and any unknown code are rejected with
//! [`IdxError::UnsupportedType`]. Files may be gzip-compressed (as MNIST is
//! distributed); [`read_idx`] detects the gzip magic `1f 8b` and inflates
//! them, up to [`DEFAULT_MAX_DECOMPRESSED`] bytes.
//!
//! # Guarantees
//!
//! Every function here treats its input as untrusted: on any byte sequence,
//! any file and any hand-built [`IdxArray`] it returns `Ok` or an
//! [`IdxError`] and never panics. The payload length must match the header
//! exactly (short is [`IdxError::Truncated`], long is
//! [`IdxError::TrailingBytes`]); sizes are computed with checked arithmetic,
//! and nothing is allocated from header sizes before the payload has been
//! checked to be that long. Every error displays as one line that says what
//! was wrong and, where it helps, what to do; errors about a file are
//! wrapped in [`IdxError::InFile`] so the message starts with the path.
//!
//! # Datasets
//!
//! [`dataset_from_arrays`] pairs a samples array (first dimension = sample
//! count) with a rank-1 `u8` labels array into a [`Dataset`], and
//! [`load_split`] finds and loads the standard MNIST file names from a
//! directory.

mod dataset;
mod error;
mod folder;
mod format;

pub use dataset::{dataset_from_arrays, Dataset, SideFile, MAX_WINDOW_CHANNELS};
pub use error::IdxError;
pub use folder::{find_split, load_split, load_split_with, split_files, Split, SplitFiles};
pub use format::{parse_idx, read_idx, read_idx_with_limit, IdxArray, IdxData, DEFAULT_MAX_DECOMPRESSED};

use std::path::Path;

/// An [`IdxError::Io`] for `path`.
fn io_error(path: &Path, e: &std::io::Error) -> IdxError {
    IdxError::Io {
        path: path_string(path),
        message: one_line(&e.to_string()),
    }
}

/// A path as a one-line string for messages.
fn path_string(path: &Path) -> String {
    one_line(&path.display().to_string())
}

/// Escapes line breaks so a message stays on one line.
fn one_line(s: &str) -> String {
    s.replace('\n', "\\n").replace('\r', "\\r")
}

#[cfg(test)]
mod tests;

//! [`IdxError`]: everything that can be wrong with an IDX file, a dataset or a folder, each
//! displayed as one line that says what was wrong and what to do.

use super::format::GZIP_MAGIC;
use super::path_string;
use std::fmt;
use std::path::Path;

/// Everything that can go wrong reading IDX data or building a [`Dataset`](super::Dataset).
#[derive(Debug, Clone, PartialEq)]
pub enum IdxError {
    /// The first two bytes are not zero; `found` holds up to the first four bytes.
    BadMagic {
        /// The first (up to four) bytes of the input.
        found: Vec<u8>,
    },
    /// The element type code is not `0x08` (u8) or `0x0D` (f32).
    UnsupportedType {
        /// The type code found in byte 2 of the header.
        code: u8,
    },
    /// The header declares rank 0; an IDX array needs at least one dimension.
    ZeroRank,
    /// The input is shorter than its header says (counts are whole-input bytes).
    Truncated {
        /// Bytes the header (or the fixed header prefix) requires.
        expected: usize,
        /// Bytes actually present.
        found: usize,
    },
    /// The input is longer than its header says (counts are whole-input bytes).
    TrailingBytes {
        /// Bytes the header requires.
        expected: usize,
        /// Bytes actually present.
        found: usize,
    },
    /// The dimensions multiply to more bytes than can be addressed.
    SizeOverflow {
        /// The dimensions from the header.
        dims: Vec<u64>,
    },
    /// A hand-built [`IdxArray`](super::IdxArray) whose `dims` do not match its data length.
    ShapeMismatch {
        /// The array's dimensions.
        dims: Vec<usize>,
        /// Number of elements in its data.
        len: usize,
    },
    /// A file or directory could not be read.
    Io {
        /// The path that failed.
        path: String,
        /// The operating system's message.
        message: String,
    },
    /// A gzip stream is corrupt or cut short.
    Gzip(String),
    /// Inflating a gzip file would exceed the decompressed-size cap.
    TooLarge {
        /// The cap in bytes.
        limit: u64,
    },
    /// An `f32` sample is NaN or infinite.
    NonFinite {
        /// Flat (row-major) element index of the first bad value.
        index: usize,
    },
    /// The labels array holds `f32` rather than `u8`.
    LabelsNotU8,
    /// The labels array is not rank 1.
    LabelsRank {
        /// The rank found.
        rank: usize,
    },
    /// The samples' first dimension differs from the number of labels.
    CountMismatch {
        /// Number of samples.
        samples: usize,
        /// Number of labels.
        labels: usize,
    },
    /// A label is not below the number of classes.
    LabelOutOfRange {
        /// Position of the label.
        index: usize,
        /// The label value.
        label: u16,
        /// The number of classes it was checked against.
        classes: usize,
    },
    /// There are no samples, so the number of classes cannot be inferred.
    Empty,
    /// A split's file was not found in a directory.
    Missing {
        /// The directory searched.
        dir: String,
        /// What was looked for, including the accepted file names.
        what: String,
    },
    /// Several non-standard file names match the same role in a directory.
    Ambiguous {
        /// The directory searched.
        dir: String,
        /// What was looked for.
        what: String,
        /// The matching file names.
        candidates: Vec<String>,
    },
    /// A side file does not hold one value per sample.
    SideLength {
        /// The side file's name (`subjects`).
        name: String,
        /// Values it holds.
        values: usize,
        /// Samples of the split.
        samples: usize,
    },
    /// A side file holds `f32` rather than `u8` values.
    SideNotU8 {
        /// The side file's name.
        name: String,
    },
    /// An error about a particular file (or pair of files).
    InFile {
        /// The file the error is about.
        path: String,
        /// The underlying error.
        source: Box<IdxError>,
    },
}

impl IdxError {
    /// The innermost error, with any [`IdxError::InFile`] wrappers removed;
    /// handy for matching on the kind of failure.
    pub fn root(&self) -> &IdxError {
        let mut e = self;
        while let IdxError::InFile { source, .. } = e {
            e = source;
        }
        e
    }

    /// Wraps `self` in [`IdxError::InFile`] for `path`.
    pub(super) fn in_file(self, path: &Path) -> IdxError {
        IdxError::InFile {
            path: path_string(path),
            source: Box::new(self),
        }
    }
}

/// Name of an IDX element type code, for messages.
fn type_name(code: u8) -> &'static str {
    match code {
        0x08 => "u8",
        0x09 => "i8",
        0x0B => "i16",
        0x0C => "i32",
        0x0D => "f32",
        0x0E => "f64",
        _ => "unknown",
    }
}

impl fmt::Display for IdxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdxError::BadMagic { found } => {
                let hex: Vec<String> = found.iter().map(|b| format!("{b:02X}")).collect();
                write!(
                    f,
                    "bad IDX magic: expected two zero bytes then a type code, found [{}]; ",
                    hex.join(", ")
                )?;
                if found.starts_with(&GZIP_MAGIC) {
                    write!(f, "this is gzip data, load it with read_idx or gunzip it")
                } else {
                    write!(f, "is this an IDX file?")
                }
            }
            IdxError::UnsupportedType { code } => write!(
                f,
                "unsupported IDX element type 0x{code:02X} ({}); only 0x08 (u8) and 0x0D (f32) \
                 are supported, convert the file to one of those",
                type_name(*code)
            ),
            IdxError::ZeroRank => write!(
                f,
                "IDX header declares rank 0; an IDX array needs at least one dimension"
            ),
            IdxError::Truncated { expected, found } => write!(
                f,
                "IDX data truncated: expected {expected} bytes, found {found}; \
                 the file is probably cut short, re-download it"
            ),
            IdxError::TrailingBytes { expected, found } => write!(
                f,
                "IDX data has {} trailing bytes: header implies {expected} bytes, found {found}; \
                 the header dimensions may be wrong",
                found.saturating_sub(*expected)
            ),
            IdxError::SizeOverflow { dims } => write!(
                f,
                "IDX dimensions {dims:?} describe more data than can be addressed; \
                 the header is corrupt"
            ),
            IdxError::ShapeMismatch { dims, len } => write!(
                f,
                "IDX array dimensions {dims:?} do not match its {len} data elements; \
                 fix dims or build the array with parse_idx/read_idx"
            ),
            IdxError::Io { path, message } => write!(f, "cannot read {path}: {message}"),
            IdxError::Gzip(message) => write!(
                f,
                "corrupt gzip stream ({message}); the file may be truncated, re-download it"
            ),
            IdxError::TooLarge { limit } => write!(
                f,
                "decompressed data exceeds the {limit}-byte limit (possible gzip bomb); \
                 gunzip the file by hand if it really is that large"
            ),
            IdxError::NonFinite { index } => write!(
                f,
                "non-finite sample value (NaN or Inf) at flat element index {index}; \
                 clean the data before loading it"
            ),
            IdxError::LabelsNotU8 => write!(
                f,
                "labels must be u8 (IDX type 0x08), found f32 (0x0D); \
                 store class labels as unsigned bytes"
            ),
            IdxError::LabelsRank { rank } => write!(
                f,
                "labels must be a rank-1 IDX array (one label per sample), found rank {rank}"
            ),
            IdxError::CountMismatch { samples, labels } => write!(
                f,
                "sample count {samples} does not match label count {labels}; \
                 check that the samples and labels files belong to the same split"
            ),
            IdxError::LabelOutOfRange { index, label, classes } => write!(
                f,
                "label {label} at index {index} is out of range for {classes} classes \
                 (labels must be in 0..{classes}); fix that label, or raise the class count \
                 (`edgecl simulate --num-classes N`, N above {label})"
            ),
            IdxError::Empty => write!(
                f,
                "dataset is empty, so the number of classes cannot be inferred; \
                 pass the class count explicitly or use non-empty files"
            ),
            IdxError::Missing { dir, what } => write!(
                f,
                "no {what} found in {dir}; put the file there or point to another directory"
            ),
            IdxError::Ambiguous { dir, what, candidates } => write!(
                f,
                "several {what} files in {dir}: {}; name the samples with --samples NAME, keep one, or rename it to the standard name",
                candidates.join(", ")
            ),
            IdxError::SideLength { name, values, samples } => write!(
                f,
                "side file `{name}` holds {values} values for {samples} samples; a side file holds one value per sample"
            ),
            IdxError::SideNotU8 { name } => write!(f, "side file `{name}` holds f32 values; side files hold u8 values"),
            IdxError::InFile { path, source } => write!(f, "{path}: {source}"),
        }
    }
}

/// The wrapped error is already part of the [`IdxError::InFile`] message, so
/// [`std::error::Error::source`] returns `None`; use [`IdxError::root`] instead.
impl std::error::Error for IdxError {}

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

use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use ndarray::Array2;

/// Default cap on the size of a gzip-inflated file (2 GiB), so that a gzip
/// bomb gives [`IdxError::TooLarge`] instead of exhausting memory.
pub const DEFAULT_MAX_DECOMPRESSED: u64 = 2 << 30;

/// The two bytes every gzip stream starts with.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// IDX type code for unsigned bytes.
const TYPE_U8: u8 = 0x08;
/// IDX type code for big-endian `f32`.
const TYPE_F32: u8 = 0x0D;

/// Everything that can go wrong reading IDX data or building a [`Dataset`].
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
    /// A hand-built [`IdxArray`] whose `dims` do not match its data length.
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
    fn in_file(self, path: &Path) -> IdxError {
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
                 (labels must be in 0..{classes}); raise the class count or fix the labels"
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
                "several {what} files in {dir}: {}; keep one or rename it to the standard name",
                candidates.join(", ")
            ),
            IdxError::InFile { path, source } => write!(f, "{path}: {source}"),
        }
    }
}

/// The wrapped error is already part of the [`IdxError::InFile`] message, so
/// [`std::error::Error::source`] returns `None`; use [`IdxError::root`] instead.
impl std::error::Error for IdxError {}

/// A decoded IDX array: its dimensions and its elements in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    /// The dimensions, outermost first (for MNIST images `[N, 28, 28]`).
    pub dims: Vec<usize>,
    /// The elements; their number is the product of `dims`.
    pub data: IdxData,
}

/// The elements of an [`IdxArray`], in their stored type.
#[derive(Debug, Clone, PartialEq)]
pub enum IdxData {
    /// Type code `0x08`: unsigned bytes.
    U8(Vec<u8>),
    /// Type code `0x0D`: big-endian `f32`, decoded to native.
    F32(Vec<f32>),
}

impl IdxData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            IdxData::U8(v) => v.len(),
            IdxData::F32(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Samples and labels ready for training.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// One row per sample, the sample's dimensions flattened; u8 data is
    /// scaled to `[0, 1]`, f32 data is kept as is (and is finite).
    pub x: Array2<f32>,
    /// One label per row of `x`, each below `classes`.
    pub y: Vec<u16>,
    /// The shape of one sample (the samples' dimensions after the first).
    pub sample_shape: Vec<usize>,
    /// Number of classes.
    pub classes: usize,
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Splits off a seeded `fraction` of each class's samples as a validation set:
    /// `(the rest, validation)`, each in the original order.
    pub fn split_validation(&self, fraction: f64, seed: u64) -> (Dataset, Dataset) {
        let mut rng = crate::learner::rng::Rng::new(seed ^ 0x7a11_da7e);
        let mut held = vec![false; self.len()];
        for c in 0..self.classes {
            let mut rows: Vec<usize> = (0..self.len()).filter(|&i| usize::from(self.y[i]) == c).collect();
            rng.shuffle(&mut rows);
            let k = (rows.len() as f64 * fraction).round() as usize;
            rows.iter().take(k).for_each(|&i| held[i] = true);
        }
        let pick = |keep: bool| self.rows(&(0..self.len()).filter(|&i| held[i] != keep).collect::<Vec<_>>());
        (pick(true), pick(false))
    }

    /// The samples at `rows`, in that order; the class count is kept.
    pub fn rows(&self, rows: &[usize]) -> Dataset {
        Dataset {
            x: self.x.select(ndarray::Axis(0), rows),
            y: rows.iter().map(|&i| self.y[i]).collect(),
            sample_shape: self.sample_shape.clone(),
            classes: self.classes,
        }
    }

    /// The samples whose label is in `classes`, in their order; labels and the class count
    /// are kept as they are.
    pub fn only_classes(&self, classes: &[u16]) -> Dataset {
        self.rows(
            &(0..self.len())
                .filter(|&i| classes.contains(&self.y[i]))
                .collect::<Vec<_>>(),
        )
    }
}

/// Which half of a dataset to load with [`load_split`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// The training files (`train-*`).
    Train,
    /// The test files (`t10k-*` or `test-*`).
    Test,
}

/// Parses raw (uncompressed) IDX bytes.
///
/// Returns an error, never panics, for anything that is not exactly one
/// well-formed IDX array of a supported type.
pub fn parse_idx(bytes: &[u8]) -> Result<IdxArray, IdxError> {
    let magic_ok = bytes.iter().take(2).all(|&b| b == 0);
    if !magic_ok {
        return Err(IdxError::BadMagic {
            found: bytes.iter().take(4).copied().collect(),
        });
    }
    let (code, rank) = match bytes {
        [_, _, code, rank, ..] => (*code, usize::from(*rank)),
        _ => {
            return Err(IdxError::Truncated {
                expected: 4,
                found: bytes.len(),
            })
        }
    };
    let elem_size = match code {
        TYPE_U8 => 1usize,
        TYPE_F32 => 4,
        _ => return Err(IdxError::UnsupportedType { code }),
    };
    if rank == 0 {
        return Err(IdxError::ZeroRank);
    }
    // rank <= 255, so this cannot overflow.
    let header_len = 4 + 4 * rank;
    let dim_bytes = bytes.get(4..header_len).ok_or(IdxError::Truncated {
        expected: header_len,
        found: bytes.len(),
    })?;
    let (dim_words, _) = dim_bytes.as_chunks::<4>();
    let raw_dims: Vec<u64> = dim_words.iter().map(|w| u64::from(u32::from_be_bytes(*w))).collect();
    let overflow = || IdxError::SizeOverflow { dims: raw_dims.clone() };
    let mut dims = Vec::with_capacity(rank);
    let mut count: usize = 1;
    for &d in &raw_dims {
        let d = usize::try_from(d).map_err(|_| overflow())?;
        count = count.checked_mul(d).ok_or_else(overflow)?;
        dims.push(d);
    }
    let expected = count
        .checked_mul(elem_size)
        .and_then(|n| n.checked_add(header_len))
        .ok_or_else(overflow)?;
    if bytes.len() < expected {
        return Err(IdxError::Truncated {
            expected,
            found: bytes.len(),
        });
    }
    if bytes.len() > expected {
        return Err(IdxError::TrailingBytes {
            expected,
            found: bytes.len(),
        });
    }
    let payload = bytes.get(header_len..).unwrap_or_default();
    let data = if code == TYPE_U8 {
        IdxData::U8(payload.to_vec())
    } else {
        let (words, _) = payload.as_chunks::<4>();
        IdxData::F32(words.iter().map(|w| f32::from_be_bytes(*w)).collect())
    };
    Ok(IdxArray { dims, data })
}

/// Reads and parses an IDX file, inflating it first if it is gzip-compressed
/// (starts with `1f 8b`), with the [`DEFAULT_MAX_DECOMPRESSED`] cap.
pub fn read_idx(path: &Path) -> Result<IdxArray, IdxError> {
    read_idx_with_limit(path, DEFAULT_MAX_DECOMPRESSED)
}

/// Like [`read_idx`], but a gzip file that inflates to more than
/// `max_decompressed` bytes gives [`IdxError::TooLarge`].
pub fn read_idx_with_limit(path: &Path, max_decompressed: u64) -> Result<IdxArray, IdxError> {
    let raw = fs::read(path).map_err(|e| io_error(path, &e))?;
    let bytes = if raw.starts_with(&GZIP_MAGIC) {
        gunzip(&raw, max_decompressed).map_err(|e| e.in_file(path))?
    } else {
        raw
    };
    parse_idx(&bytes).map_err(|e| e.in_file(path))
}

/// Inflates a gzip stream, refusing to produce more than `limit` bytes.
fn gunzip(compressed: &[u8], limit: u64) -> Result<Vec<u8>, IdxError> {
    // The gzip trailer stores the inflated size mod 2^32; it is only a hint
    // (it may lie), so it is capped before being used to reserve memory.
    let hint = compressed
        .len()
        .checked_sub(4)
        .and_then(|start| compressed.get(start..))
        .and_then(|t| <[u8; 4]>::try_from(t).ok())
        .map_or(0, |t| u64::from(u32::from_le_bytes(t)))
        .min(limit);
    let mut out = Vec::new();
    out.try_reserve(usize::try_from(hint).unwrap_or(0))
        .map_err(|_| IdxError::TooLarge { limit })?;
    let mut decoder = GzDecoder::new(compressed).take(limit.saturating_add(1));
    decoder
        .read_to_end(&mut out)
        .map_err(|e| IdxError::Gzip(one_line(&e.to_string())))?;
    if u64::try_from(out.len()).map_or(true, |n| n > limit) {
        return Err(IdxError::TooLarge { limit });
    }
    Ok(out)
}

/// Which input an error from [`build_dataset`] is about.
enum Side {
    Samples,
    Labels,
    Both,
}

/// Pairs a samples array with a labels array.
///
/// The samples' first dimension is the sample count and the remaining
/// dimensions are flattened into one row per sample (a rank-1 samples array
/// gives one column). `u8` samples are divided by 255; `f32` samples must all
/// be finite. The labels must be a rank-1 `u8` array with one label per
/// sample. With `classes = Some(c)` every label must be below `c`; with
/// `None` the class count is the largest label plus one, and an empty
/// dataset is an error.
pub fn dataset_from_arrays(samples: IdxArray, labels: IdxArray, classes: Option<usize>) -> Result<Dataset, IdxError> {
    build_dataset(samples, labels, classes).map_err(|(_, e)| e)
}

/// [`dataset_from_arrays`], also saying which input an error is about.
fn build_dataset(samples: IdxArray, labels: IdxArray, classes: Option<usize>) -> Result<Dataset, (Side, IdxError)> {
    let y = labels_vec(labels).map_err(|e| (Side::Labels, e))?;
    let (x, sample_shape) = samples_matrix(samples).map_err(|e| (Side::Samples, e))?;
    if x.nrows() != y.len() {
        return Err((
            Side::Both,
            IdxError::CountMismatch {
                samples: x.nrows(),
                labels: y.len(),
            },
        ));
    }
    let classes = match classes {
        Some(c) => {
            let bad = y.iter().enumerate().find(|&(_, &label)| usize::from(label) >= c);
            if let Some((index, &label)) = bad {
                return Err((
                    Side::Labels,
                    IdxError::LabelOutOfRange {
                        index,
                        label,
                        classes: c,
                    },
                ));
            }
            c
        }
        None => match y.iter().max() {
            Some(&m) => usize::from(m) + 1,
            None => return Err((Side::Both, IdxError::Empty)),
        },
    };
    Ok(Dataset {
        x,
        y,
        sample_shape,
        classes,
    })
}

/// Checks that `dims` matches `len` and returns the element count.
fn check_shape(dims: &[usize], len: usize) -> Result<(), IdxError> {
    let n = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if n == Some(len) {
        Ok(())
    } else {
        Err(IdxError::ShapeMismatch {
            dims: dims.to_vec(),
            len,
        })
    }
}

/// Validates a labels array and widens it to `u16`.
fn labels_vec(labels: IdxArray) -> Result<Vec<u16>, IdxError> {
    let IdxArray { dims, data } = labels;
    let bytes = match data {
        IdxData::U8(v) => v,
        IdxData::F32(_) => return Err(IdxError::LabelsNotU8),
    };
    if dims.len() != 1 {
        return Err(IdxError::LabelsRank { rank: dims.len() });
    }
    check_shape(&dims, bytes.len())?;
    Ok(bytes.into_iter().map(u16::from).collect())
}

/// Flattens a samples array to one row per sample.
fn samples_matrix(samples: IdxArray) -> Result<(Array2<f32>, Vec<usize>), IdxError> {
    let IdxArray { dims, data } = samples;
    check_shape(&dims, data.len())?;
    let shape_err = || IdxError::ShapeMismatch {
        dims: dims.clone(),
        len: data.len(),
    };
    let (&rows, sample_shape) = dims.split_first().ok_or_else(shape_err)?;
    // With no rows the full product is 0 whatever the others are, so the sample's own
    // product is checked too (found by the `idx` fuzz target).
    let cols = sample_shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(shape_err)?;
    let values: Vec<f32> = match &data {
        IdxData::U8(v) => v.iter().map(|&b| f32::from(b) / 255.0).collect(),
        IdxData::F32(v) => {
            if let Some(index) = v.iter().position(|x| !x.is_finite()) {
                return Err(IdxError::NonFinite { index });
            }
            v.clone()
        }
    };
    let x = Array2::from_shape_vec((rows, cols), values).map_err(|_| shape_err())?;
    Ok((x, sample_shape.to_vec()))
}

/// Finds and loads one split of an MNIST-style dataset from `dir`.
///
/// See [`split_files`] for the file names accepted. Errors about a file are
/// wrapped in [`IdxError::InFile`] with that file's path.
pub fn load_split(dir: &Path, split: Split, classes: Option<usize>) -> Result<Dataset, IdxError> {
    let (samples_path, labels_path) = split_files(dir, split)?;
    let samples = read_idx(&samples_path)?;
    let labels = read_idx(&labels_path)?;
    build_dataset(samples, labels, classes).map_err(|(side, e)| match side {
        Side::Samples => e.in_file(&samples_path),
        Side::Labels => e.in_file(&labels_path),
        Side::Both => IdxError::InFile {
            path: format!("{} and {}", path_string(&samples_path), path_string(&labels_path)),
            source: Box::new(e),
        },
    })
}

/// Finds the samples and labels files of `split` in `dir`, returned as
/// `(samples, labels)`.
///
/// The standard MNIST names are preferred: `train-images-idx3-ubyte`,
/// `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte` and
/// `t10k-labels-idx1-ubyte`, or the same with `.` instead of the second `-`
/// (`train-images.idx3-ubyte`), each with or without a `.gz` suffix.
/// Otherwise any file whose name starts with the split's prefix (`train-`;
/// `t10k-` or `test-`) is taken: labels if its name contains `labels`,
/// samples if not. If several such files fit one role (other than a file and
/// its `.gz` twin, where the plain one wins) the result is
/// [`IdxError::Ambiguous`].
pub fn split_files(dir: &Path, split: Split) -> Result<(PathBuf, PathBuf), IdxError> {
    let names = dir_file_names(dir)?;
    let (split_name, stem, prefixes): (&str, &str, &[&str]) = match split {
        Split::Train => ("train", "train", &["train-"]),
        Split::Test => ("test", "t10k", &["t10k-", "test-"]),
    };
    let samples = find_role(
        dir,
        &names,
        &format!("{split_name} samples"),
        &[format!("{stem}-images-idx3-ubyte"), format!("{stem}-images.idx3-ubyte")],
        prefixes,
        false,
    )?;
    let labels = find_role(
        dir,
        &names,
        &format!("{split_name} labels"),
        &[format!("{stem}-labels-idx1-ubyte"), format!("{stem}-labels.idx1-ubyte")],
        prefixes,
        true,
    )?;
    Ok((samples, labels))
}

/// Names of the regular files (following symlinks) in `dir`, sorted.
fn dir_file_names(dir: &Path) -> Result<Vec<String>, IdxError> {
    let entries = fs::read_dir(dir).map_err(|e| io_error(dir, &e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, &e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if entry.path().is_file() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Picks the file for one role (samples or labels) from `names`.
fn find_role(
    dir: &Path,
    names: &[String],
    what: &str,
    standard: &[String],
    prefixes: &[&str],
    labels: bool,
) -> Result<PathBuf, IdxError> {
    for base in standard {
        for name in [base.clone(), format!("{base}.gz")] {
            if names.contains(&name) {
                return Ok(dir.join(name));
            }
        }
    }
    let mut candidates: Vec<&String> = names
        .iter()
        .filter(|n| {
            let lower = n.to_ascii_lowercase();
            prefixes.iter().any(|p| lower.starts_with(p)) && lower.contains("labels") == labels
        })
        .collect();
    // A file next to its own .gz twin counts once, as the plain file.
    let all = candidates.clone();
    candidates.retain(|n| {
        n.strip_suffix(".gz")
            .is_none_or(|plain| !all.iter().any(|m| m.as_str() == plain))
    });
    match candidates.as_slice() {
        [one] => Ok(dir.join(one.as_str())),
        [] => {
            let role = if labels { "'labels'" } else { "no 'labels'" };
            Err(IdxError::Missing {
                dir: path_string(dir),
                what: format!(
                    "{what} file (looked for {}, each optionally .gz, or a name starting {} \
                     with {role} in it)",
                    standard.join(" or "),
                    prefixes.join(" or ")
                ),
            })
        }
        many => Err(IdxError::Ambiguous {
            dir: path_string(dir),
            what: what.to_string(),
            candidates: many.iter().map(|s| s.to_string()).collect(),
        }),
    }
}

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
mod tests {
    use super::*;
    use std::io::Write;

    /// Builds an IDX buffer from a type code, dims and payload bytes.
    fn idx(code: u8, dims: &[u32], payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, code, dims.len() as u8];
        for d in dims {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b.extend_from_slice(payload);
        b
    }

    fn f32_payload(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_be_bytes()).collect()
    }

    fn u8_array(dims: &[usize], data: Vec<u8>) -> IdxArray {
        IdxArray {
            dims: dims.to_vec(),
            data: IdxData::U8(data),
        }
    }

    fn f32_array(dims: &[usize], data: Vec<f32>) -> IdxArray {
        IdxArray {
            dims: dims.to_vec(),
            data: IdxData::F32(data),
        }
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn u8_round_trips_rank_1_3_4() {
        for dims in [vec![5u32], vec![2, 3, 4], vec![2, 1, 3, 2]] {
            let n: u32 = dims.iter().product();
            let payload: Vec<u8> = (0..n).map(|i| (i * 7 % 256) as u8).collect();
            let a = parse_idx(&idx(0x08, &dims, &payload)).unwrap();
            let want: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
            assert_eq!(a.dims, want);
            assert_eq!(a.data, IdxData::U8(payload));
        }
    }

    #[test]
    fn f32_round_trips_rank_1_3_4() {
        for dims in [vec![3u32], vec![2, 2, 3], vec![1, 2, 2, 2]] {
            let n: u32 = dims.iter().product();
            let vals: Vec<f32> = (0..n).map(|i| i as f32 * -1.5 + 0.25).collect();
            let a = parse_idx(&idx(0x0D, &dims, &f32_payload(&vals))).unwrap();
            let want: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
            assert_eq!(a.dims, want);
            assert_eq!(a.data, IdxData::F32(vals));
        }
    }

    #[test]
    fn zero_sized_dims_parse() {
        let a = parse_idx(&idx(0x08, &[0, 28, 28], &[])).unwrap();
        assert_eq!(a.dims, vec![0, 28, 28]);
        assert!(a.data.is_empty());
    }

    #[test]
    fn no_rows_with_huge_sample_dims_is_an_error_not_an_overflow() {
        // Found by the `idx` fuzz target: 0 samples of 0x1ce0e0e0 x 0xe0e0e02a x
        // 0xe0000000 values.
        let bytes = [
            0, 0, 8, 4, 0, 0, 0, 0, 0x1c, 0xe0, 0xe0, 0xe0, 0xe0, 0xe0, 0xe0, 0x2a, 0xe0, 0, 0, 0,
        ];
        let samples = parse_idx(&bytes).unwrap();
        let labels = parse_idx(&idx(0x08, &[0], &[])).unwrap();
        assert!(dataset_from_arrays(samples, labels, None).is_err());
    }

    #[test]
    fn bad_magic() {
        let e = parse_idx(&[0x50, 0x4B, 0x03, 0x04, 1, 2]).unwrap_err();
        assert_eq!(
            e,
            IdxError::BadMagic {
                found: vec![0x50, 0x4B, 0x03, 0x04]
            }
        );
        assert!(e.to_string().contains("[50, 4B, 03, 04]"));
        let e = parse_idx(&[0, 1]).unwrap_err();
        assert!(matches!(e, IdxError::BadMagic { .. }));
        let e = parse_idx(&gz(b"x")).unwrap_err();
        assert!(e.to_string().contains("gzip"), "{e}");
    }

    #[test]
    fn unsupported_types() {
        for code in [0x09, 0x0B, 0x0C, 0x0E, 0x00, 0x42] {
            let e = parse_idx(&idx(code, &[1], &[0; 8])).unwrap_err();
            assert_eq!(e, IdxError::UnsupportedType { code });
        }
        let e = IdxError::UnsupportedType { code: 0x0B };
        assert!(e.to_string().contains("0x0B (i16)"));
    }

    #[test]
    fn zero_rank() {
        assert_eq!(parse_idx(&[0, 0, 8, 0]).unwrap_err(), IdxError::ZeroRank);
    }

    #[test]
    fn truncated_header() {
        assert_eq!(
            parse_idx(&[]).unwrap_err(),
            IdxError::Truncated { expected: 4, found: 0 }
        );
        assert_eq!(
            parse_idx(&[0, 0, 8]).unwrap_err(),
            IdxError::Truncated { expected: 4, found: 3 }
        );
        // Rank 3 needs 16 header bytes; only one dim present.
        let mut b = vec![0, 0, 8, 3];
        b.extend_from_slice(&7u32.to_be_bytes());
        assert_eq!(
            parse_idx(&b).unwrap_err(),
            IdxError::Truncated { expected: 16, found: 8 }
        );
    }

    #[test]
    fn truncated_payload() {
        assert_eq!(
            parse_idx(&idx(0x08, &[2, 3], &[0; 5])).unwrap_err(),
            IdxError::Truncated {
                expected: 12 + 6,
                found: 12 + 5
            }
        );
        assert_eq!(
            parse_idx(&idx(0x0D, &[2], &[0; 7])).unwrap_err(),
            IdxError::Truncated {
                expected: 8 + 8,
                found: 8 + 7
            }
        );
    }

    #[test]
    fn trailing_bytes() {
        let e = parse_idx(&idx(0x08, &[2], &[1, 2, 3])).unwrap_err();
        assert_eq!(
            e,
            IdxError::TrailingBytes {
                expected: 10,
                found: 11
            }
        );
        assert!(e.to_string().contains("1 trailing bytes"));
    }

    #[test]
    fn size_overflow() {
        let m = u32::MAX;
        let e = parse_idx(&idx(0x0D, &[m, m, m, m], &[])).unwrap_err();
        assert!(matches!(e, IdxError::SizeOverflow { ref dims } if dims.len() == 4));
    }

    #[test]
    fn never_panics_on_prefixes_and_noise() {
        let good = idx(0x0D, &[2, 3], &f32_payload(&[1.0; 6]));
        for n in 0..good.len() {
            assert!(parse_idx(&good[..n]).is_err());
        }
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 40) as usize;
            let mut b: Vec<u8> = (0..len).map(|i| (state >> ((i % 8) * 8)) as u8 ^ i as u8).collect();
            if state & 1 == 0 && b.len() >= 2 {
                b[0] = 0;
                b[1] = 0;
            }
            if state & 2 == 0 && b.len() >= 4 {
                b[2] = if state & 4 == 0 { 0x08 } else { 0x0D };
                b[3] %= 4;
            }
            let _ = parse_idx(&b);
            let _ = gunzip(&b, 1 << 16);
        }
    }

    #[test]
    fn dataset_u8_scaled_and_flattened() {
        let s = u8_array(&[2, 2, 2], vec![0, 255, 51, 102, 1, 2, 3, 4]);
        let l = u8_array(&[2], vec![3, 1]);
        let d = dataset_from_arrays(s, l, None).unwrap();
        assert_eq!(d.x.dim(), (2, 4));
        assert_eq!(d.x[[0, 0]], 0.0);
        assert_eq!(d.x[[0, 1]], 1.0);
        assert!((d.x[[0, 2]] - 0.2).abs() < 1e-6);
        assert_eq!(d.y, vec![3, 1]);
        assert_eq!(d.sample_shape, vec![2, 2]);
        assert_eq!(d.classes, 4);
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn dataset_f32_kept_rank1_samples() {
        let s = f32_array(&[3], vec![-2.5, 0.0, 7.0]);
        let l = u8_array(&[3], vec![0, 1, 0]);
        let d = dataset_from_arrays(s, l, Some(5)).unwrap();
        assert_eq!(d.x.dim(), (3, 1));
        assert_eq!(d.x.column(0).to_vec(), vec![-2.5, 0.0, 7.0]);
        assert!(d.sample_shape.is_empty());
        assert_eq!(d.classes, 5);
    }

    #[test]
    fn non_finite() {
        let l = || u8_array(&[2], vec![0, 1]);
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let s = f32_array(&[2, 2], vec![0.0, 1.0, bad, 2.0]);
            assert_eq!(
                dataset_from_arrays(s, l(), None).unwrap_err(),
                IdxError::NonFinite { index: 2 }
            );
        }
    }

    #[test]
    fn label_errors() {
        let s = || u8_array(&[2, 1], vec![0, 1]);
        assert_eq!(
            dataset_from_arrays(s(), f32_array(&[2], vec![0.0, 1.0]), None).unwrap_err(),
            IdxError::LabelsNotU8
        );
        assert_eq!(
            dataset_from_arrays(s(), u8_array(&[2, 1], vec![0, 1]), None).unwrap_err(),
            IdxError::LabelsRank { rank: 2 }
        );
        assert_eq!(
            dataset_from_arrays(s(), u8_array(&[3], vec![0, 1, 1]), None).unwrap_err(),
            IdxError::CountMismatch { samples: 2, labels: 3 }
        );
        assert_eq!(
            dataset_from_arrays(s(), u8_array(&[2], vec![1, 5]), Some(2)).unwrap_err(),
            IdxError::LabelOutOfRange {
                index: 1,
                label: 5,
                classes: 2
            }
        );
    }

    #[test]
    fn empty_dataset() {
        let s = u8_array(&[0, 4], vec![]);
        let l = u8_array(&[0], vec![]);
        assert_eq!(
            dataset_from_arrays(s.clone(), l.clone(), None).unwrap_err(),
            IdxError::Empty
        );
        let d = dataset_from_arrays(s, l, Some(10)).unwrap();
        assert_eq!(d.x.dim(), (0, 4));
        assert!(d.is_empty());
    }

    #[test]
    fn shape_mismatch() {
        let l = || u8_array(&[2], vec![0, 1]);
        let e = dataset_from_arrays(u8_array(&[2, 3], vec![0; 5]), l(), None).unwrap_err();
        assert_eq!(
            e,
            IdxError::ShapeMismatch {
                dims: vec![2, 3],
                len: 5
            }
        );
        let e = dataset_from_arrays(u8_array(&[], vec![0]), l(), None).unwrap_err();
        assert!(matches!(e, IdxError::ShapeMismatch { .. }));
        let big = usize::MAX / 2;
        let e = dataset_from_arrays(u8_array(&[big, big], vec![]), l(), None).unwrap_err();
        assert!(matches!(e, IdxError::ShapeMismatch { .. }));
        let e = dataset_from_arrays(u8_array(&[2, 1], vec![0; 2]), u8_array(&[3], vec![0]), None).unwrap_err();
        assert!(matches!(e, IdxError::ShapeMismatch { .. }));
    }

    #[test]
    fn gunzip_round_trip_limit_and_corruption() {
        let plain = idx(0x08, &[4], &[1, 2, 3, 4]);
        let z = gz(&plain);
        assert_eq!(gunzip(&z, 1 << 20).unwrap(), plain);
        assert_eq!(gunzip(&z, plain.len() as u64).unwrap(), plain);
        assert_eq!(
            gunzip(&z, plain.len() as u64 - 1).unwrap_err(),
            IdxError::TooLarge {
                limit: plain.len() as u64 - 1
            }
        );
        let bomb = gz(&vec![0u8; 1 << 20]);
        assert!(matches!(
            gunzip(&bomb, 1000).unwrap_err(),
            IdxError::TooLarge { limit: 1000 }
        ));
        let e = gunzip(&z[..z.len() / 2], 1 << 20).unwrap_err();
        assert!(matches!(e, IdxError::Gzip(_)), "{e:?}");
        let mut bad = z.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0xFF;
        bad[mid + 1] ^= 0xFF;
        assert!(gunzip(&bad, 1 << 20).is_err());
    }

    #[test]
    fn io_error_and_in_file() {
        let p = std::env::temp_dir().join("edgecl-idx-unit-does-not-exist.idx");
        let e = read_idx(&p).unwrap_err();
        assert!(matches!(e, IdxError::Io { .. }));
        assert!(e.to_string().contains("edgecl-idx-unit-does-not-exist"));
        let w = IdxError::ZeroRank.in_file(Path::new("a/b.idx"));
        assert_eq!(w.root(), &IdxError::ZeroRank);
        assert!(w.to_string().starts_with("a/b.idx: "));
    }

    #[test]
    fn every_display_is_one_line() {
        let all = vec![
            IdxError::BadMagic {
                found: vec![0x1f, 0x8b, 8, 0],
            },
            IdxError::UnsupportedType { code: 0x0E },
            IdxError::ZeroRank,
            IdxError::Truncated { expected: 10, found: 3 },
            IdxError::TrailingBytes {
                expected: 10,
                found: 13,
            },
            IdxError::SizeOverflow { dims: vec![1, 2] },
            IdxError::ShapeMismatch {
                dims: vec![1, 2],
                len: 3,
            },
            IdxError::Io {
                path: "p".into(),
                message: "m".into(),
            },
            IdxError::Gzip("unexpected end".into()),
            IdxError::TooLarge { limit: 5 },
            IdxError::NonFinite { index: 4 },
            IdxError::LabelsNotU8,
            IdxError::LabelsRank { rank: 2 },
            IdxError::CountMismatch { samples: 1, labels: 2 },
            IdxError::LabelOutOfRange {
                index: 1,
                label: 5,
                classes: 2,
            },
            IdxError::Empty,
            IdxError::Missing {
                dir: "d".into(),
                what: "w".into(),
            },
            IdxError::Ambiguous {
                dir: "d".into(),
                what: "w".into(),
                candidates: vec!["a".into(), "b".into()],
            },
            IdxError::InFile {
                path: "x\ny".into(),
                source: Box::new(IdxError::Empty),
            }
            .root()
            .clone()
            .in_file(Path::new("x\ny")),
        ];
        for e in all {
            let s = e.to_string();
            assert!(!s.contains('\n') && !s.is_empty(), "{s:?}");
        }
    }
}

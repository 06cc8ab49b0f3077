//! The IDX format itself: the parsed array ([`IdxArray`], [`IdxData`]) and the readers of
//! bytes and files, gzip included.

use super::error::IdxError;
use super::{io_error, one_line};
use flate2::read::GzDecoder;
use std::fs;
use std::io::Read;
use std::path::Path;

/// Default cap on the size of a gzip-inflated file (2 GiB), so that a gzip
/// bomb gives [`IdxError::TooLarge`] instead of exhausting memory.
pub const DEFAULT_MAX_DECOMPRESSED: u64 = 2 << 30;

/// The two bytes every gzip stream starts with.
pub(super) const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// IDX type code for unsigned bytes.
const TYPE_U8: u8 = 0x08;

/// IDX type code for big-endian `f32`.
const TYPE_F32: u8 = 0x0D;

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
pub(super) fn gunzip(compressed: &[u8], limit: u64) -> Result<Vec<u8>, IdxError> {
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

//! Device images: what `edgecl export` writes for a board and what the firmware loads,
//! verified before use with the owner's Ed25519 public key compiled into the firmware.
//!
//! ```text
//!  0  magic "ECDI" | 4 version u16 (2) | 6 reserved u16 (0)
//!  8  board id, 24 bytes (ASCII, zero-padded)
//! 32  config bytes u32 | 36 head bytes u32 | 40 backbone bytes u32
//! 44  CRC-32 (ISO-HDLC) of bytes 0..44 and of the payload
//! 48  payload: the config (a microcontroller's: the [`DeviceConfig`]'s postcard bytes;
//!     a Linux board's: its run config's TOML text) | the initial head (f32 little-endian: the
//!     config's weights, then its biases, the core's layout) | the backbone image (none
//!     on boards that run the backbone elsewhere)
//! end - 64: Ed25519 signature of every byte before it
//! ```
//!
//! [`verify`] checks, in order: length, magic, version, sizes, CRC, signature, board,
//! then that the config decodes and its values are in range, the backbone image is
//! valid, the learner fits the arena and the head fits the config. Each failure has its
//! own error. Format 1 (the config as text, parsed on the device) is refused with the
//! version error.

use super::image::Reader;
use super::{plan, Backbone, DeviceConfig, DeviceError};
use crate::learner::checkpoint::crc32;

/// The image's magic bytes.
pub const MAGIC: &[u8; 4] = b"ECDI";
/// The format version this build reads.
pub const VERSION: u16 = 2;
/// Bytes before the payload.
pub const HEADER: usize = 48;
/// Bytes of the signature after the payload.
pub const SIGNATURE: usize = 64;
/// Bytes of the board id field.
pub const BOARD_ID: usize = 24;
const WHAT: &str = "device image";

/// A verified device image.
#[derive(Debug, Clone, Copy)]
pub struct DeviceImage<'a> {
    /// The board it was made for.
    pub board: &'a str,
    /// The learner's config.
    pub config: DeviceConfig,
    /// The initial head: weights then biases, f32 little-endian.
    pub head: &'a [u8],
    /// The backbone, when the image carries one.
    pub backbone: Option<Backbone<'a>>,
}

impl DeviceImage<'_> {
    /// The initial head into `weights` and `biases` (the learner's own slices).
    pub fn load_head(&self, weights: &mut [f32], biases: &mut [f32]) -> Result<(), DeviceError> {
        match read_head(self.head, weights, biases) {
            true => Ok(()),
            false => Err(DeviceError::Mismatch("the image's head is not the learner's size")),
        }
    }
}

/// Little-endian f32 `head` bytes into `weights` then `biases`; false (and nothing
/// written) when it is not exactly their size.
pub(crate) fn read_head(head: &[u8], weights: &mut [f32], biases: &mut [f32]) -> bool {
    if head.len() != 4 * (weights.len() + biases.len()) {
        return false;
    }
    for (v, b) in weights.iter_mut().chain(biases.iter_mut()).zip(head.chunks_exact(4)) {
        *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
    true
}

/// The header of an image for `board` over `config`, `head` and `backbone` payloads,
/// CRC included; the caller appends the payloads and signs everything.
pub fn header(board: &str, config: &[u8], head: &[u8], backbone: &[u8]) -> Result<[u8; HEADER], DeviceError> {
    if board.len() > BOARD_ID || !board.is_ascii() {
        return Err(DeviceError::Mismatch("a board id is 1 to 24 ASCII bytes"));
    }
    let mut h = [0u8; HEADER];
    h[..4].copy_from_slice(MAGIC);
    h[4..6].copy_from_slice(&VERSION.to_le_bytes());
    h[8..8 + board.len()].copy_from_slice(board.as_bytes());
    for (i, part) in [config, head, backbone].iter().enumerate() {
        let n = u32::try_from(part.len()).map_err(|_| DeviceError::Mismatch("a payload of 4 GiB or more"))?;
        h[32 + 4 * i..36 + 4 * i].copy_from_slice(&n.to_le_bytes());
    }
    let crc = crc32(&[&h[..44], config, head, backbone]);
    h[44..48].copy_from_slice(&crc.to_le_bytes());
    Ok(h)
}

/// The signed parts of an image, checked up to its signature: the board it names and
/// its three payloads, none of them interpreted yet.
#[derive(Debug, Clone, Copy)]
pub struct SignedParts<'a> {
    /// The board id the image names.
    pub board: &'a str,
    /// The config payload.
    pub config: &'a [u8],
    /// The initial head: weights then biases, f32 little-endian.
    pub head: &'a [u8],
    /// The backbone payload (empty on boards that run the backbone elsewhere).
    pub backbone: &'a [u8],
}

/// Checks an image's length, magic, version, sizes, CRC and Ed25519 signature against
/// the owner's `public_key`, and splits it into its parts; what the payloads say is the
/// caller's to check ([`verify`] for microcontroller images, `host::runtime` for Linux
/// boards).
pub fn open<'a>(bytes: &'a [u8], public_key: &[u8; 32]) -> Result<SignedParts<'a>, DeviceError> {
    let r = Reader { bytes, what: WHAT };
    if bytes.len() < HEADER + SIGNATURE {
        return Err(DeviceError::Truncated {
            what: WHAT,
            needed: HEADER + SIGNATURE,
            got: bytes.len(),
        });
    }
    if r.slice(0, 4)? != MAGIC {
        return Err(DeviceError::BadMagic { what: WHAT });
    }
    let version = r.u16(4)?;
    if version != VERSION {
        return Err(DeviceError::Version {
            what: WHAT,
            got: version,
            supported: VERSION,
        });
    }
    let sizes = [r.u32(32)? as usize, r.u32(36)? as usize, r.u32(40)? as usize];
    let payload = sizes.iter().try_fold(0usize, |a, &n| a.checked_add(n));
    let needed = payload
        .and_then(|p| p.checked_add(HEADER + SIGNATURE))
        .ok_or(DeviceError::Malformed {
            what: WHAT,
            why: "sizes overflow",
        })?;
    if bytes.len() < needed {
        return Err(DeviceError::Truncated {
            what: WHAT,
            needed,
            got: bytes.len(),
        });
    }
    if bytes.len() > needed {
        return Err(DeviceError::Malformed {
            what: WHAT,
            why: "bytes after the signature",
        });
    }
    let signed = &bytes[..needed - SIGNATURE];
    let (computed, stored) = (crc32(&[&bytes[..44], &signed[HEADER..]]), r.u32(44)?);
    if computed != stored {
        return Err(DeviceError::BadCrc {
            what: WHAT,
            stored,
            computed,
        });
    }
    let key = ed25519_compact::PublicKey::new(*public_key);
    let signature =
        ed25519_compact::Signature::from_slice(&bytes[needed - SIGNATURE..]).map_err(|_| DeviceError::BadSignature)?;
    key.verify(signed, &signature).map_err(|_| DeviceError::BadSignature)?;
    let id = &bytes[8..8 + BOARD_ID];
    let id_len = id.iter().position(|&b| b == 0).unwrap_or(BOARD_ID);
    let id = core::str::from_utf8(&id[..id_len]).map_err(|_| DeviceError::WrongBoard)?;
    let (config, rest) = signed[HEADER..].split_at(sizes[0]);
    let (head, backbone) = rest.split_at(sizes[1]);
    Ok(SignedParts {
        board: id,
        config,
        head,
        backbone,
    })
}

/// Verifies an image for `board` against the owner's Ed25519 `public_key` and an arena
/// of `arena` bytes; see the [module docs](self) for the order of the checks.
pub fn verify<'a>(
    bytes: &'a [u8],
    public_key: &[u8; 32],
    board: &str,
    arena: usize,
) -> Result<DeviceImage<'a>, DeviceError> {
    let SignedParts {
        board: id,
        config: config_bytes,
        head,
        backbone: backbone_bytes,
    } = open(bytes, public_key)?;
    if id != board {
        return Err(DeviceError::WrongBoard);
    }
    let config = DeviceConfig::from_bytes(config_bytes)?;
    let backbone = if backbone_bytes.is_empty() {
        None
    } else {
        Some(Backbone::parse(backbone_bytes)?)
    };
    if let Some(b) = &backbone {
        let p = plan(&config, b)?;
        let dims = config.learner(b.output())?.dims;
        if p.total > arena {
            return Err(DeviceError::OverBudget { needed: p.total, arena });
        }
        if head.len() != 4 * (dims.weight_count() + dims.bias_count()) {
            return Err(DeviceError::Mismatch("the image's head is not its config's size"));
        }
    }
    Ok(DeviceImage {
        board: id,
        config,
        head,
        backbone,
    })
}

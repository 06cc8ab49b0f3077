//! Checkpoints: a learner's whole state as one self-checking byte image, written with
//! [`Learner::write_checkpoint`] and read back with [`Learner::read_checkpoint`], which
//! changes nothing unless the image is intact and made by the same config.
//!
//! ```text
//!  0  magic "ECCP"
//!  4  format version u16 (1) | 6  reserved u16 (0)
//!  8  sequence number u32      (the newer of two images has the higher one)
//! 12  body length u32
//! 16  CRC-32 (ISO-HDLC) of bytes 0..16 and of the body
//! 20  body: Meta (postcard): config hash, state bytes, the caller's task counter, the
//!           learner's step counter, both random generators' states, the penalty's,
//!           PackNet's and the generator's counters
//!     then the state, each component's bytes in a fixed order, little-endian:
//!           weights | biases | optimizer state | importance and anchors (compact u8 +
//!           scales + f16, or f32) | the penalty's accumulator | PackNet owners |
//!           generator (Gaussian: counts, means, spreads, factors, scales, slot classes,
//!           working slots; buffer: counts, rows, scales, labels; VAE: counts, committed
//!           counts, parameters, both moments, replayed decoder) | distillation teacher
//!           (parameters, known classes)
//! ```
//!
//! Scratch (gradients, activations, packing, logits) is not saved: every step rewrites
//! it before reading it. The config hash is FNV-1a over the config's `Debug` text, so a
//! checkpoint only loads into a learner of the same shapes, optimizer, penalty and
//! generator.

use crate::learner::{Error, Learner};
use core::fmt;
use serde::{Deserialize, Serialize};

#[cfg(target_endian = "big")]
compile_error!("checkpoints are little-endian images of the arena's values");

/// The image's magic bytes.
pub const MAGIC: &[u8; 4] = b"ECCP";
/// The format version this build writes and reads.
pub const VERSION: u16 = 1;
/// Bytes before the body.
pub const HEADER: usize = 20;
/// Most bytes the encoded [`Meta`] takes.
const META_MAX: usize = 96;

/// Why a checkpoint image was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointError {
    /// It does not start with `ECCP`.
    BadMagic,
    /// A format version this build does not read.
    Version {
        /// Version found.
        got: u16,
    },
    /// Shorter than its header says (or than a header).
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// The CRC does not match: a torn or corrupted write.
    BadCrc,
    /// Made by a learner of another config.
    OtherConfig,
    /// The body does not decode, or its parts do not fit this learner.
    Malformed(&'static str),
    /// The output buffer is too small for the image.
    NoRoom {
        /// Bytes the image needs.
        needed: usize,
    },
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CheckpointError::BadMagic => write!(f, "not a checkpoint (bad magic)"),
            CheckpointError::Version { got } => write!(f, "checkpoint format {got}, this build reads {VERSION}"),
            CheckpointError::Truncated { needed, got } => {
                write!(f, "checkpoint truncated: {got} bytes of {needed}")
            }
            CheckpointError::BadCrc => write!(f, "checkpoint CRC mismatch (torn or corrupted)"),
            CheckpointError::OtherConfig => write!(f, "checkpoint of a learner with another config"),
            CheckpointError::Malformed(why) => write!(f, "checkpoint malformed: {why}"),
            CheckpointError::NoRoom { needed } => write!(f, "checkpoint needs {needed} bytes of buffer"),
        }
    }
}

impl From<CheckpointError> for Error {
    fn from(e: CheckpointError) -> Self {
        Error::Checkpoint(e)
    }
}

/// What a part of the state holds, where a loaded value could break an invariant the
/// learner indexes by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// Values used as they are.
    Plain,
    /// The Gaussian's slot classes (u16): a class of the head or free.
    SlotClasses,
    /// The buffer's row labels (u16): classes of the head.
    BufferLabels,
}

/// The scalars of a checkpoint (the body's first part).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// FNV-1a of the config's `Debug` text.
    pub config_hash: u32,
    /// Bytes of the state after the meta.
    pub state_bytes: u32,
    /// The caller's task counter.
    pub task: u32,
    /// The learner's update counter.
    pub steps: u32,
    /// The distillation teacher holds a commit.
    pub teacher_ready: bool,
    /// The learner's generator state.
    pub rng: [u32; 4],
    /// The replay generator's state.
    pub replay_rng: [u32; 4],
    /// The penalty's samples and consolidated tasks.
    pub penalty: Option<(u32, u32)>,
    /// PackNet's finished tasks and whether the current one is retraining.
    pub packnet: Option<(u32, bool)>,
    /// The buffer's samples offered.
    pub reservoir_seen: Option<u64>,
    /// The VAE's update counter.
    pub vae_steps: Option<u32>,
}

/// What a valid image says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// Its sequence number.
    pub sequence: u32,
    /// Its whole length, header included.
    pub len: usize,
}

/// Checks an image's magic, version, length and CRC (not its config): what a storage
/// layer needs to choose between two slots. `bytes` may run past the image's end.
pub fn peek(bytes: &[u8]) -> Result<CheckpointInfo, CheckpointError> {
    if bytes.len() < HEADER {
        return Err(CheckpointError::Truncated {
            needed: HEADER,
            got: bytes.len(),
        });
    }
    if &bytes[..4] != MAGIC {
        return Err(CheckpointError::BadMagic);
    }
    let word = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != VERSION {
        return Err(CheckpointError::Version { got: version });
    }
    let len = (word(12) as usize)
        .checked_add(HEADER)
        .ok_or(CheckpointError::Malformed("length overflows"))?;
    if bytes.len() < len {
        return Err(CheckpointError::Truncated {
            needed: len,
            got: bytes.len(),
        });
    }
    if crc32(&[&bytes[..16], &bytes[HEADER..len]]) != word(16) {
        return Err(CheckpointError::BadCrc);
    }
    Ok(CheckpointInfo { sequence: word(8), len })
}

/// CRC-32 (ISO-HDLC, the zlib/Ethernet one) of `parts` one after the other: what every
/// image of the crate (checkpoints, device images, backbone and stream) carries.
pub fn crc32(parts: &[&[u8]]) -> u32 {
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    let mut d = crc.digest();
    for part in parts {
        d.update(part);
    }
    d.finalize()
}

/// FNV-1a over formatted text.
struct Fnv(u32);

impl fmt::Write for Fnv {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            self.0 = (self.0 ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
        Ok(())
    }
}

/// The hash a checkpoint carries of `config`.
pub fn config_hash(config: &impl fmt::Debug) -> u32 {
    let mut h = Fnv(0x811c_9dc5);
    let _ = fmt::Write::write_fmt(&mut h, format_args!("{config:?}"));
    h.0
}

impl Learner<'_> {
    /// Bytes of the state the checkpoint saves (after its meta).
    pub fn state_bytes(&mut self) -> usize {
        let mut n = 0;
        let _ = self.state_parts(&mut |_, part| {
            n += part.len();
            Ok(())
        });
        n
    }

    /// Most bytes [`Learner::write_checkpoint`] writes: header, meta and state.
    pub fn checkpoint_capacity(&mut self) -> usize {
        HEADER + META_MAX + self.state_bytes()
    }

    /// Writes the learner's state into `out` as a checkpoint numbered `sequence`, with the
    /// caller's `task` counter; returns its length. Changes nothing in the learner.
    pub fn write_checkpoint(&mut self, sequence: u32, task: u32, out: &mut [u8]) -> Result<usize, Error> {
        let state = self.state_bytes();
        let meta = self.meta(task, state);
        let mut buf = [0u8; META_MAX];
        let meta_len = postcard::to_slice(&meta, &mut buf)
            .map_err(|_| CheckpointError::Malformed("meta does not encode"))?
            .len();
        let len = HEADER + meta_len + state;
        if out.len() < len {
            return Err(CheckpointError::NoRoom { needed: len }.into());
        }
        out[..4].copy_from_slice(MAGIC);
        out[4..6].copy_from_slice(&VERSION.to_le_bytes());
        out[6..8].copy_from_slice(&0u16.to_le_bytes());
        out[8..12].copy_from_slice(&sequence.to_le_bytes());
        out[12..16].copy_from_slice(&((len - HEADER) as u32).to_le_bytes());
        out[HEADER..HEADER + meta_len].copy_from_slice(&buf[..meta_len]);
        let mut at = HEADER + meta_len;
        self.state_parts(&mut |_, part| {
            out[at..at + part.len()].copy_from_slice(part);
            at += part.len();
            Ok(())
        })?;
        let c = crc32(&[&out[..16], &out[HEADER..len]]);
        out[16..20].copy_from_slice(&c.to_le_bytes());
        Ok(len)
    }

    /// Loads a checkpoint written by a learner of the same config: the state continues
    /// from it bit for bit. Magic, version, length, CRC, config, sizes, generator states
    /// and every stored value the learner indexes by (slot and row classes) are checked
    /// before anything changes; on error the learner is as it
    /// was. Returns the image's sequence number and the task counter it carries.
    pub fn read_checkpoint(&mut self, bytes: &[u8]) -> Result<(CheckpointInfo, u32), Error> {
        let info = peek(bytes)?;
        let body = &bytes[HEADER..info.len];
        let (meta, state): (Meta, &[u8]) =
            postcard::take_from_bytes(body).map_err(|_| CheckpointError::Malformed("meta does not decode"))?;
        let state_bytes = self.state_bytes();
        let expected = self.meta(meta.task, state_bytes);
        if meta.config_hash != expected.config_hash {
            return Err(CheckpointError::OtherConfig.into());
        }
        let fits = meta.state_bytes == expected.state_bytes
            && state.len() == meta.state_bytes as usize
            && meta.penalty.is_some() == expected.penalty.is_some()
            && meta.packnet.is_some() == expected.packnet.is_some()
            && meta.reservoir_seen.is_some() == expected.reservoir_seen.is_some()
            && meta.vae_steps.is_some() == expected.vae_steps.is_some();
        if !fits {
            return Err(CheckpointError::Malformed("its parts do not fit this learner").into());
        }
        let (Some(rng), Some(replay_rng)) = (
            crate::learner::rng::Rng::from_state(meta.rng),
            crate::learner::rng::Rng::from_state(meta.replay_rng),
        ) else {
            return Err(CheckpointError::Malformed("a random generator state is zero").into());
        };
        if meta
            .packnet
            .is_some_and(|(packed, _)| packed as usize > self.config().max_tasks)
        {
            return Err(CheckpointError::Malformed("more PackNet tasks than the config allows").into());
        }
        // The parts' values the learner indexes by must be in range before anything is
        // copied (a CRC is no proof against crafted bytes).
        let classes = self.config().dims.classes();
        let mut at = 0;
        self.state_parts(&mut |kind, part| {
            let incoming = &state[at..at + part.len()];
            at += part.len();
            let class_ok = |v: u16, free: bool| (v as usize) < classes || (free && v == crate::learner::replay::FREE);
            let ok = match kind {
                Part::Plain => true,
                Part::SlotClasses => incoming
                    .chunks_exact(2)
                    .all(|b| class_ok(u16::from_le_bytes([b[0], b[1]]), true)),
                Part::BufferLabels => incoming
                    .chunks_exact(2)
                    .all(|b| class_ok(u16::from_le_bytes([b[0], b[1]]), false)),
            };
            if ok {
                Ok(())
            } else {
                Err(CheckpointError::Malformed("a stored class is past the head's classes").into())
            }
        })?;
        let mut at = 0;
        self.state_parts(&mut |_, part| {
            part.copy_from_slice(&state[at..at + part.len()]);
            at += part.len();
            Ok(())
        })?;
        self.set_meta(&meta, rng, replay_rng);
        Ok((info, meta.task))
    }
}

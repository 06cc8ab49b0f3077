//! The device loop's error type: malformed images and configs, mismatched parts, a config
//! over the arena, a failing source, or the learner's own refusal.

use crate::learner::Error;
use core::fmt;

/// Everything the device loop can refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceError {
    /// An image does not start with its magic bytes.
    BadMagic {
        /// Which image.
        what: &'static str,
    },
    /// An image of a format version this build does not read.
    Version {
        /// Which image.
        what: &'static str,
        /// Version found.
        got: u16,
        /// Version this build reads.
        supported: u16,
    },
    /// An image is shorter than its header says.
    Truncated {
        /// Which image.
        what: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// An image's body does not match its CRC.
    BadCrc {
        /// Which image.
        what: &'static str,
        /// CRC in the header.
        stored: u32,
        /// CRC of the body.
        computed: u32,
    },
    /// An image's header or body is inconsistent (the message says how).
    Malformed {
        /// Which image.
        what: &'static str,
        /// What is wrong.
        why: &'static str,
    },
    /// A line of the device config cannot be used.
    Config {
        /// 1-based line number (0: the config as a whole).
        line: usize,
        /// What is wrong.
        why: &'static str,
    },
    /// A config value out of its range.
    ConfigKey {
        /// The key, as `firmware.toml` names it.
        key: &'static str,
        /// Its range.
        why: &'static str,
    },
    /// Two parts do not fit together (stream width against backbone input...).
    Mismatch(&'static str),
    /// A sensor window holds a NaN or an infinity (the first one found).
    NonFinite {
        /// Its time step.
        step: usize,
        /// Its channel.
        channel: usize,
    },
    /// The learner and the loop's buffers need more than the arena.
    OverBudget {
        /// Bytes the config needs.
        needed: usize,
        /// Bytes of the arena.
        arena: usize,
    },
    /// A device image made for another board.
    WrongBoard,
    /// A device image whose Ed25519 signature does not verify with the firmware's key.
    BadSignature,
    /// The sample source failed (a bus error, a closed port).
    Source(&'static str),
    /// The learner refused a step.
    Learner(Error),
    /// The checkpoint flash failed.
    Storage(crate::storage::StorageError),
}

impl From<Error> for DeviceError {
    fn from(e: Error) -> Self {
        DeviceError::Learner(e)
    }
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DeviceError::BadMagic { what } => write!(f, "{what} image: bad magic bytes"),
            DeviceError::Version { what, got, supported } => {
                write!(f, "{what} image: format version {got}, this build reads {supported}")?;
                if got < supported {
                    write!(f, " (made by an older edgecl: export it again)")?;
                }
                Ok(())
            }
            DeviceError::Truncated { what, needed, got } => {
                write!(f, "{what} image: truncated, needs {needed} bytes, has {got}")
            }
            DeviceError::BadCrc { what, stored, computed } => {
                write!(
                    f,
                    "{what} image: CRC {computed:#010x} of the body, header says {stored:#010x}"
                )
            }
            DeviceError::Malformed { what, why } => write!(f, "{what} image: {why}"),
            DeviceError::Config { line: 0, why } => write!(f, "device config: {why}"),
            DeviceError::Config { line, why } => write!(f, "device config line {line}: {why}"),
            DeviceError::ConfigKey { key, why } => write!(f, "device config: `{key}` {why}"),
            DeviceError::Mismatch(why) => write!(f, "parts do not fit: {why}"),
            DeviceError::NonFinite { step, channel } => write!(
                f,
                "a window value is NaN or infinite (step {step}, channel {channel}); nothing was learned from it"
            ),
            DeviceError::OverBudget { needed, arena } => write!(
                f,
                "config over budget: it needs {needed} bytes, the arena has {arena} ({} too many)",
                needed - arena.min(needed)
            ),
            DeviceError::WrongBoard => write!(f, "device image: made for another board"),
            DeviceError::BadSignature => write!(f, "device image: the signature does not verify"),
            DeviceError::Source(why) => write!(f, "sample source: {why}"),
            DeviceError::Learner(e) => write!(f, "learner: {e}"),
            DeviceError::Storage(e) => write!(f, "checkpoints: {e}"),
        }
    }
}

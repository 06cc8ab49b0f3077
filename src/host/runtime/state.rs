//! The runtime's state folder: two slot files, each one whole image or absent, written
//! in turn through [`FileStore`] (temporary file, fsync, rename, fsync of the folder), so
//! a kill or a power cut at any byte leaves the newer or the older state readable.
//!
//! ```text
//! STATE/state-0.bin, STATE/state-1.bin, each:
//!  0  magic "ECRS" | 4 version u16 (1) | 6 reserved u16 (0)
//!  8  sequence u64         (the newer slot has the higher one)
//! 16  body length u32
//! 20  CRC-32 (ISO-HDLC) of bytes 0..20 and of the body
//! 24  body: RunState (postcard) | the learner's checkpoint image (its own magic and CRC)
//! ```
//!
//! [`RunState`] binds the state to the image and the backbone it was made with (their
//! SHA-256), and holds where the input stood, the task, the counters and the accuracy
//! rows measured so far.

use crate::learner::checkpoint::crc32;
use crate::storage::FileStore;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The slot files' magic bytes.
pub const MAGIC: &[u8; 4] = b"ECRS";
/// The format version this build writes and reads.
pub const VERSION: u16 = 1;
/// Bytes before the body.
pub const HEADER: usize = 24;
/// The slot files in a state folder.
pub const SLOTS: [&str; 2] = ["state-0.bin", "state-1.bin"];

/// What the runtime keeps beside the learner.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// SHA-256 of the device image the state was learned under.
    pub image_sha256: [u8; 32],
    /// SHA-256 of the ONNX backbone.
    pub backbone_sha256: [u8; 32],
    /// What the input was (a file's path, an IDX folder), so only the same input resumes
    /// at [`RunState::position`].
    pub source: String,
    /// Input events consumed before the state (the first one a restart reads).
    pub position: u64,
    /// Tasks ended.
    pub task: u32,
    /// The current task's classes, `start..end` (`end == 0`: none yet).
    pub own: (u16, u16),
    /// The current task's classes were given by a task-start event.
    pub own_given: bool,
    /// One past the highest class trained on so far (the active classes are `0..hi`).
    pub hi: u16,
    /// Classes seen ever, one flag each.
    pub seen: Vec<bool>,
    /// The classes (`start..end`) of each task ended, in order.
    pub task_classes: Vec<(u16, u16)>,
    /// Real rows per update of the current task when it was fixed at its start.
    pub real: Option<u32>,
    /// The optimizer's state is cleared when the next task starts.
    pub pending_reset: bool,
    /// Samples taken (predicted).
    pub samples: u64,
    /// Labelled samples learned from.
    pub labelled: u64,
    /// Labelled samples of the current task.
    pub task_labelled: u64,
    /// Updates of the head.
    pub updates: u64,
    /// Input events refused (bad lines, bad samples).
    pub skipped: u64,
    /// Accuracy (%) on each held-out task before any learning, when there is a held-out set.
    pub untrained: Vec<f64>,
    /// Accuracy rows (%) on the held-out tasks after each task, when there is a held-out set.
    pub matrix: Vec<Vec<f64>>,
}

/// The two slot files of a state folder.
#[derive(Debug)]
pub struct StateDir {
    dir: PathBuf,
    /// The sequence number of the newest valid slot, and which slot holds it.
    newest: Option<(u64, usize)>,
}

/// A state loaded from its folder.
#[derive(Debug)]
pub struct Loaded {
    /// What the runtime kept.
    pub state: RunState,
    /// The learner's checkpoint image.
    pub learner: Vec<u8>,
    /// The slot file it came from.
    pub path: PathBuf,
    /// Slot files that were present but not valid, with why (reported, never used).
    pub rejected: Vec<String>,
}

impl StateDir {
    /// The state folder at `dir`, created when missing.
    pub fn open(dir: &Path) -> Result<StateDir> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating the state folder {}", dir.display()))?;
        Ok(StateDir {
            dir: dir.to_path_buf(),
            newest: None,
        })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The newest valid state, `None` for a folder without slot files. A folder whose
    /// slot files are all invalid is an error: it is never overwritten silently.
    pub fn load(&mut self) -> Result<Option<Loaded>> {
        let mut best: Option<(u64, usize, RunState, Vec<u8>)> = None;
        let mut rejected = Vec::new();
        for (i, name) in SLOTS.iter().enumerate() {
            let path = self.dir.join(name);
            let bytes = match FileStore::new(&path).read() {
                Ok(Some(b)) => b,
                Ok(None) => continue,
                Err(e) => {
                    rejected.push(format!("{}: {e}", path.display()));
                    continue;
                }
            };
            match decode(&bytes) {
                Ok((seq, state, learner)) => {
                    if best.as_ref().is_none_or(|b| seq > b.0) {
                        best = Some((seq, i, state, learner));
                    }
                }
                Err(e) => rejected.push(format!("{}: {e:#}", path.display())),
            }
        }
        match best {
            Some((seq, i, state, learner)) => {
                self.newest = Some((seq, i));
                Ok(Some(Loaded {
                    state,
                    learner,
                    path: self.dir.join(SLOTS[i]),
                    rejected,
                }))
            }
            None if rejected.is_empty() => Ok(None),
            None => bail!(
                "the state folder {} holds no valid state ({}); it is left as it is: move it away or give another --state",
                self.dir.display(),
                rejected.join("; ")
            ),
        }
    }

    /// Writes `state` and the learner's checkpoint `learner` to the slot that does not
    /// hold the newest state; the newest stays valid if this fails. Returns the file.
    pub fn save(&mut self, state: &RunState, learner: &[u8]) -> Result<PathBuf> {
        let (seq, slot) = match self.newest {
            Some((seq, i)) => (seq + 1, 1 - i),
            None => (1, 0),
        };
        let bytes = encode(seq, state, learner)?;
        let path = self.dir.join(SLOTS[slot]);
        FileStore::new(&path)
            .write(&bytes)
            .with_context(|| format!("writing the checkpoint {}", path.display()))?;
        self.newest = Some((seq, slot));
        Ok(path)
    }
}

/// A slot file's bytes.
pub fn encode(sequence: u64, state: &RunState, learner: &[u8]) -> Result<Vec<u8>> {
    let meta = postcard::to_allocvec(state).context("encoding the run state")?;
    let body = meta.len() + learner.len();
    let len = u32::try_from(body).context("a state of 4 GiB or more")?;
    let mut out = Vec::with_capacity(HEADER + body);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&sequence.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&meta);
    out.extend_from_slice(learner);
    let crc = crc32(&[&out[..20], &out[HEADER..]]);
    out[20..24].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// A slot file's sequence, run state and learner checkpoint, every check made.
pub fn decode(bytes: &[u8]) -> Result<(u64, RunState, Vec<u8>)> {
    if bytes.len() < HEADER {
        bail!("truncated: {} bytes, a header is {HEADER}", bytes.len());
    }
    if &bytes[..4] != MAGIC {
        bail!("not an edgecl run state (bad magic)");
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != VERSION {
        bail!("run state format {version}, this build reads {VERSION}");
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&bytes[8..16]);
    let len = u32::from_le_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]) as usize;
    if bytes.len() != HEADER.saturating_add(len) {
        bail!(
            "truncated or padded: {} bytes, its header says {}",
            bytes.len(),
            HEADER + len
        );
    }
    let stored = u32::from_le_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
    if crc32(&[&bytes[..20], &bytes[HEADER..]]) != stored {
        bail!("CRC mismatch (torn or corrupted)");
    }
    let (state, learner): (RunState, &[u8]) =
        postcard::take_from_bytes(&bytes[HEADER..]).map_err(|e| anyhow::anyhow!("run state does not decode ({e})"))?;
    crate::learner::checkpoint::peek(learner).map_err(|e| anyhow::anyhow!("its learner checkpoint: {e}"))?;
    Ok((u64::from_le_bytes(seq), state, learner.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn learner_image() -> Vec<u8> {
        use crate::learner::{Kernels, LayerDims, Learner, LearnerConfig, Optimizer, Plan};
        let c = LearnerConfig {
            dims: LayerDims::new(&[4, 3]).unwrap(),
            optimizer: Optimizer::Sgd { lr: 0.1, momentum: 0.0 },
            batch_size: 2,
            max_tasks: 1,
            seed: 1,
            kernels: Kernels::Reference,
            penalty: None,
            packnet: None,
            generator: None,
        };
        let mut arena = vec![0u8; Plan::new(&c).unwrap().total()];
        let mut l = Learner::new(&c, &mut arena).unwrap();
        let mut out = vec![0u8; l.checkpoint_capacity()];
        let n = l.write_checkpoint(1, 0, &mut out).unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn every_flipped_byte_and_every_truncation_is_refused() {
        let state = RunState {
            source: "x.jsonl".into(),
            position: 7,
            seen: vec![true, false],
            matrix: vec![vec![50.0]],
            ..RunState::default()
        };
        let bytes = encode(3, &state, &learner_image()).unwrap();
        let (seq, back, _) = decode(&bytes).unwrap();
        assert_eq!((seq, &back), (3, &state));
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(decode(&b).is_err(), "byte {i} flipped was accepted");
        }
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "{n} bytes accepted");
        }
    }

    #[test]
    fn saves_alternate_slots_and_the_newest_valid_one_loads() {
        let dir = std::env::temp_dir().join(format!("edgecl-state-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut s = StateDir::open(&dir).unwrap();
        assert!(s.load().unwrap().is_none());
        let image = learner_image();
        let mut state = RunState::default();
        for position in 1..=3 {
            state.position = position;
            s.save(&state, &image).unwrap();
        }
        // Saves 1 and 3 went to slot 0, save 2 to slot 1.
        let loaded = StateDir::open(&dir).unwrap().load().unwrap().unwrap();
        assert_eq!(loaded.state.position, 3);
        // Slot 0 corrupted: the older slot 1 loads, and the bad one is named.
        let p0 = dir.join(SLOTS[0]);
        let mut b = std::fs::read(&p0).unwrap();
        b[30] ^= 1;
        std::fs::write(&p0, b).unwrap();
        let loaded = StateDir::open(&dir).unwrap().load().unwrap().unwrap();
        assert_eq!(loaded.state.position, 2);
        assert_eq!(loaded.rejected.len(), 1);
        // Both corrupted: an error, and the files stay.
        std::fs::write(dir.join(SLOTS[1]), b"ECRS garbage").unwrap();
        let e = format!("{:#}", StateDir::open(&dir).unwrap().load().unwrap_err());
        assert!(e.contains("no valid state") && e.contains("left as it is"), "{e}");
        assert!(p0.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

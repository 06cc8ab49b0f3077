//! Checkpoints: a learner's whole state as one self-checking byte image, written with
//! [`Learner::write_checkpoint`] and read back with [`Learner::read_checkpoint`], which
//! changes nothing unless the image is intact and made by the same config.
//!
//! ```text
//!  0  magic "ECCP"
//!  4  format version u16 (3) | 6  reserved u16 (0)
//!  8  sequence number u32      (the newer of two images has the higher one)
//! 12  body length u32
//! 16  CRC-32 (ISO-HDLC) of bytes 0..16 and of the body
//! 20  body: Meta (postcard): config hash, state bytes, the caller's task counter, the
//!           learner's step counter, both random generators' states, the penalty's,
//!           PackNet's and the generator's counters, the caller's bytes' length
//!     then the caller's bytes (what the loop around the learner keeps: its place in
//!           the stream, its accuracy matrix...), then the state, each component's bytes in a fixed order, little-endian:
//!           weights | biases | optimizer state | then each defence's parts in the
//!           registry's order (`layout`): importance and anchors (compact u8 + scales +
//!           f16, or f32) and the penalty's accumulator | generator (Gaussian: counts,
//!           means, spreads, factors, scales, slot classes, working slots; buffer: counts,
//!           rows, scales, labels; VAE: counts, committed counts, parameters, both
//!           moments, replayed decoder) | distillation teacher (parameters, known
//!           classes) | PackNet owners
//! ```
//!
//! An image is written and read as a stream ([`Learner::write_checkpoint_to`],
//! [`Learner::read_checkpoint_from`], [`peek_from`]): a CRC pass, then the bytes in order,
//! so a save to flash needs no image-sized buffer in RAM. Format 1 (no caller bytes) and
//! format 2 (its config hash was over the config's `Debug` text) are refused with their
//! version.
//!
//! Scratch (gradients, activations, packing, logits) is not saved: every step rewrites
//! it before reading it. The config hash is FNV-1a over the config's postcard bytes, so a
//! checkpoint only loads into a learner of the same shapes, optimizer, penalty and
//! generator.

pub use crate::learner::error::CheckpointError;
pub(crate) use crate::learner::state::Part;
pub use crate::learner::state::{config_hash, Meta};
use crate::learner::{Error, Learner};

#[cfg(target_endian = "big")]
compile_error!("checkpoints are little-endian images of the arena's values");

pub use crate::learner::state::{MAGIC, VERSION};
/// Bytes before the body.
pub const HEADER: usize = 20;
/// Most bytes the encoded [`Meta`] takes.
const META_MAX: usize = 96;

/// Why a streamed checkpoint failed: the image (or the learner), or the storage under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streamed<E> {
    /// The image or the learner refused.
    Checkpoint(Error),
    /// The sink or source failed.
    Io(E),
}

impl<E> From<CheckpointError> for Streamed<E> {
    fn from(e: CheckpointError) -> Self {
        Streamed::Checkpoint(e.into())
    }
}

impl<E> From<Error> for Streamed<E> {
    fn from(e: Error) -> Self {
        Streamed::Checkpoint(e)
    }
}

/// Where a streamed checkpoint goes: its bytes in order.
pub trait Sink {
    /// What the sink fails with.
    type Error;
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]) -> Result<(), Self::Error>;
}

/// Where a streamed checkpoint is read from: any of its bytes by offset.
pub trait Source {
    /// What the source fails with.
    type Error;
    /// Bytes it holds: an image whose header says more is truncated.
    fn size(&self) -> usize;
    /// Fills `buf` with the image's bytes from `offset`.
    fn get(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), Self::Error>;
}

/// An image in memory as a [`Source`].
struct SliceSource<'a>(&'a [u8]);

impl Source for SliceSource<'_> {
    type Error = CheckpointError;
    fn size(&self) -> usize {
        self.0.len()
    }
    fn get(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), CheckpointError> {
        let end = offset.checked_add(buf.len()).filter(|&e| e <= self.0.len());
        let end = end.ok_or(CheckpointError::Truncated {
            needed: offset.saturating_add(buf.len()),
            got: self.0.len(),
        })?;
        buf.copy_from_slice(&self.0[offset..end]);
        Ok(())
    }
}

/// A buffer as a [`Sink`] (its room checked before anything is written).
struct SliceSink<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl Sink for SliceSink<'_> {
    type Error = CheckpointError;
    fn put(&mut self, bytes: &[u8]) -> Result<(), CheckpointError> {
        let end = self.at + bytes.len();
        let room = self
            .out
            .get_mut(self.at..end)
            .ok_or(CheckpointError::NoRoom { needed: end })?;
        room.copy_from_slice(bytes);
        self.at = end;
        Ok(())
    }
}

/// Bytes moved per call when a streamed image is checked or read.
const CHUNK: usize = 256;

/// What a valid image says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// Its sequence number.
    pub sequence: u32,
    /// Its whole length, header included.
    pub len: usize,
}

/// What [`Learner::read_checkpoint_from`] loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loaded {
    /// The image's sequence number and length.
    pub info: CheckpointInfo,
    /// The caller's task counter.
    pub task: u32,
    /// Bytes of the caller's record (at the start of the caller's buffer).
    pub caller: usize,
}

/// The header's magic, version and length: the image's sequence number, its whole
/// length and its stored CRC.
fn check_header(h: &[u8; HEADER]) -> Result<(u32, usize, u32), CheckpointError> {
    if &h[..4] != MAGIC {
        return Err(CheckpointError::BadMagic);
    }
    let word = |at: usize| u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
    let version = u16::from_le_bytes([h[4], h[5]]);
    if version != VERSION {
        return Err(CheckpointError::Version { got: version });
    }
    let len = (word(12) as usize)
        .checked_add(HEADER)
        .ok_or(CheckpointError::Malformed("length overflows"))?;
    Ok((word(8), len, word(16)))
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
    let mut h = [0u8; HEADER];
    h.copy_from_slice(&bytes[..HEADER]);
    let (_, len, _) = check_header(&h)?;
    if bytes.len() < len {
        return Err(CheckpointError::Truncated {
            needed: len,
            got: bytes.len(),
        });
    }
    match peek_from(&mut SliceSource(bytes)) {
        Ok(info) => Ok(info),
        Err(Streamed::Io(e)) => Err(e),
        Err(Streamed::Checkpoint(Error::Checkpoint(e))) => Err(e),
        Err(Streamed::Checkpoint(_)) => Err(CheckpointError::Malformed("unreadable")),
    }
}

/// [`peek`] over a [`Source`]: the header, then the CRC of the body read in chunks of
/// 256 bytes, so no buffer holds the image.
pub fn peek_from<S: Source>(src: &mut S) -> Result<CheckpointInfo, Streamed<S::Error>> {
    let mut h = [0u8; HEADER];
    src.get(0, &mut h).map_err(Streamed::Io)?;
    let (sequence, len, stored) = check_header(&h)?;
    if len > src.size() {
        return Err(CheckpointError::Truncated {
            needed: len,
            got: src.size(),
        }
        .into());
    }
    let mut d = CRC32.digest();
    d.update(&h[..16]);
    let mut chunk = [0u8; CHUNK];
    let mut at = HEADER;
    while at < len {
        let n = (len - at).min(CHUNK);
        src.get(at, &mut chunk[..n]).map_err(Streamed::Io)?;
        d.update(&chunk[..n]);
        at += n;
    }
    if d.finalize() != stored {
        return Err(CheckpointError::BadCrc.into());
    }
    Ok(CheckpointInfo { sequence, len })
}

/// The CRC every image of the crate carries: CRC-32/ISO-HDLC (the zlib/Ethernet one),
/// its table built once at compile time.
static CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// CRC-32 (ISO-HDLC, the zlib/Ethernet one) of `parts` one after the other: what every
/// image of the crate (checkpoints, device images, backbone and stream) carries.
pub fn crc32(parts: &[&[u8]]) -> u32 {
    let mut d = CRC32.digest();
    for part in parts {
        d.update(part);
    }
    d.finalize()
}

/// Runs the state visitor with an I/O step that may fail with the storage's own error:
/// that error is kept aside (the visitor only carries the learner's) and returned.
fn visit_io<E>(
    learner: &mut Learner<'_>,
    mut step: impl FnMut(Part, &mut [u8]) -> Result<Result<(), E>, Error>,
) -> Result<(), Streamed<E>> {
    let mut failed = None;
    let r = learner.state_parts(&mut |kind, part| match step(kind, part)? {
        Ok(()) => Ok(()),
        Err(e) => {
            failed = Some(e);
            Err(CheckpointError::Malformed("storage failed").into())
        }
    });
    match (failed, r) {
        (Some(e), _) => Err(Streamed::Io(e)),
        (None, r) => r.map_err(Streamed::Checkpoint),
    }
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
        self.checkpoint_capacity_with(0)
    }

    /// Most bytes a checkpoint with `caller` bytes of the caller's record takes.
    pub fn checkpoint_capacity_with(&mut self, caller: usize) -> usize {
        HEADER + META_MAX + caller + self.state_bytes()
    }

    /// Writes the learner's state into `out` as a checkpoint numbered `sequence`, with the
    /// caller's `task` counter; returns its length. Changes nothing in the learner.
    pub fn write_checkpoint(&mut self, sequence: u32, task: u32, out: &mut [u8]) -> Result<usize, Error> {
        let needed = self.encoded_len(task, &[])?;
        if out.len() < needed {
            return Err(CheckpointError::NoRoom { needed }.into());
        }
        let mut sink = SliceSink { out, at: 0 };
        self.write_checkpoint_to(sequence, task, &[], &mut sink)
            .map_err(|e| match e {
                Streamed::Checkpoint(e) => e,
                Streamed::Io(e) => e.into(),
            })
    }

    /// The length of the image [`Learner::write_checkpoint_to`] writes.
    fn encoded_len(&mut self, task: u32, caller: &[u8]) -> Result<usize, Error> {
        let (_, meta_len) = self.encoded_meta(task, caller)?;
        Ok(HEADER + meta_len + caller.len() + self.state_bytes())
    }

    fn encoded_meta(&mut self, task: u32, caller: &[u8]) -> Result<([u8; META_MAX], usize), Error> {
        let state = self.state_bytes();
        let caller_len =
            u32::try_from(caller.len()).map_err(|_| CheckpointError::Malformed("caller's record too large"))?;
        let meta = Meta {
            caller: caller_len,
            ..self.meta(task, state)
        };
        let mut buf = [0u8; META_MAX];
        let n = postcard::to_slice(&meta, &mut buf)
            .map_err(|_| CheckpointError::Malformed("meta does not encode"))?
            .len();
        Ok((buf, n))
    }

    /// Streams the learner's state into `sink` as a checkpoint numbered `sequence`, with
    /// the caller's `task` counter and record (`caller`): one pass over the state for the
    /// CRC, then header, meta, record and state in order. Returns the image's length;
    /// changes nothing in the learner. The most bytes it writes are
    /// [`Learner::checkpoint_capacity_with`].
    pub fn write_checkpoint_to<K: Sink>(
        &mut self,
        sequence: u32,
        task: u32,
        caller: &[u8],
        sink: &mut K,
    ) -> Result<usize, Streamed<K::Error>> {
        let (meta, meta_len) = self.encoded_meta(task, caller)?;
        let len = HEADER + meta_len + caller.len() + self.state_bytes();
        let body = u32::try_from(len - HEADER).map_err(|_| CheckpointError::Malformed("image too large"))?;
        let mut h = [0u8; HEADER];
        h[..4].copy_from_slice(MAGIC);
        h[4..6].copy_from_slice(&VERSION.to_le_bytes());
        h[8..12].copy_from_slice(&sequence.to_le_bytes());
        h[12..16].copy_from_slice(&body.to_le_bytes());
        let mut d = CRC32.digest();
        d.update(&h[..16]);
        d.update(&meta[..meta_len]);
        d.update(caller);
        self.state_parts(&mut |_, part| {
            d.update(part);
            Ok(())
        })?;
        h[16..20].copy_from_slice(&d.finalize().to_le_bytes());
        sink.put(&h).map_err(Streamed::Io)?;
        sink.put(&meta[..meta_len]).map_err(Streamed::Io)?;
        sink.put(caller).map_err(Streamed::Io)?;
        visit_io(self, |_, part| Ok(sink.put(part)))?;
        Ok(len)
    }

    /// Loads a checkpoint written by a learner of the same config: the state continues
    /// from it bit for bit. Magic, version, length, CRC, config, sizes, generator states
    /// and every stored value the learner indexes by (slot and row classes) are checked
    /// before anything changes; on error the learner is as it
    /// was. Returns the image's sequence number and the task counter it carries.
    pub fn read_checkpoint(&mut self, bytes: &[u8]) -> Result<(CheckpointInfo, u32), Error> {
        peek(bytes)?;
        match self.read_checkpoint_from(&mut SliceSource(bytes), &mut [], &mut |_| Ok(())) {
            Ok(l) => Ok((l.info, l.task)),
            Err(Streamed::Checkpoint(e)) => Err(e),
            Err(Streamed::Io(e)) => Err(e.into()),
        }
    }

    /// [`Learner::read_checkpoint`] over a [`Source`], with the caller's record copied
    /// into `caller` (its length returned) and shown to `accept` before anything of the
    /// learner changes: a CRC pass, a pass checking the stored classes, the record, then
    /// the copy, in chunks, so no buffer holds the image. Every check is
    /// made before anything changes; only a source that fails during the final copy
    /// (after it read the same bytes twice without fault) leaves the learner half loaded,
    /// and says so with its error.
    pub fn read_checkpoint_from<S: Source>(
        &mut self,
        src: &mut S,
        caller: &mut [u8],
        accept: &mut impl FnMut(&[u8]) -> Result<(), CheckpointError>,
    ) -> Result<Loaded, Streamed<S::Error>> {
        let info = peek_from(src)?;
        let mut head = [0u8; META_MAX];
        let m = (info.len - HEADER).min(META_MAX);
        src.get(HEADER, &mut head[..m]).map_err(Streamed::Io)?;
        let (meta, rest): (Meta, &[u8]) =
            postcard::take_from_bytes(&head[..m]).map_err(|_| CheckpointError::Malformed("meta does not decode"))?;
        let meta_len = m - rest.len();
        let state_bytes = self.state_bytes();
        let expected = self.meta(meta.task, state_bytes);
        if meta.config_hash != expected.config_hash {
            return Err(CheckpointError::OtherConfig.into());
        }
        let record = meta.caller as usize;
        let state_at = HEADER + meta_len + record;
        let fits = meta.state_bytes == expected.state_bytes
            && state_at.checked_add(state_bytes) == Some(info.len)
            && meta.penalty.is_some() == expected.penalty.is_some()
            && meta.packnet.is_some() == expected.packnet.is_some()
            && meta.reservoir_seen.is_some() == expected.reservoir_seen.is_some()
            && meta.vae_steps.is_some() == expected.vae_steps.is_some();
        if !fits {
            return Err(CheckpointError::Malformed("its parts do not fit this learner").into());
        }
        if record > caller.len() {
            return Err(CheckpointError::NoRoom { needed: record }.into());
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
        let mut at = state_at;
        let mut chunk = [0u8; CHUNK];
        visit_io(self, |kind, part| {
            let start = at;
            at += part.len();
            let free = match kind {
                Part::Plain => return Ok(Ok(())),
                Part::SlotClasses => true,
                Part::BufferLabels => false,
            };
            let mut off = 0;
            while off < part.len() {
                let n = (part.len() - off).min(CHUNK);
                if let Err(e) = src.get(start + off, &mut chunk[..n]) {
                    return Ok(Err(e));
                }
                let ok = chunk[..n].chunks_exact(2).all(|b| {
                    let v = u16::from_le_bytes([b[0], b[1]]);
                    (v as usize) < classes || (free && v == crate::learner::replay::FREE)
                });
                if !ok {
                    return Err(CheckpointError::Malformed("a stored class is past the head's classes").into());
                }
                off += n;
            }
            Ok(Ok(()))
        })?;
        src.get(HEADER + meta_len, &mut caller[..record])
            .map_err(Streamed::Io)?;
        accept(&caller[..record])?;
        let mut at = state_at;
        visit_io(self, |_, part| {
            let r = src.get(at, part);
            at += part.len();
            Ok(r)
        })?;
        self.set_meta(&meta, rng, replay_rng);
        Ok(Loaded {
            info,
            task: meta.task,
            caller: record,
        })
    }
}

//! The device loop: samples in, features through the backbone, updates on the head (with
//! replayed rows or a penalty), an evaluation on the held-out set after each task, the
//! accuracy matrix out. Every buffer is carved from the one arena after the learner.

use super::{Backbone, DeviceConfig, DeviceError, DeviceStrategy, Stream, StreamIo};
use crate::learner::checkpoint::CheckpointError;
use crate::learner::learner::ClassRange;
use crate::learner::plan::{checked_f32_bytes, checked_padded, ALIGN};
use crate::learner::{Active, Arena, Learner, Plan};
use crate::storage::{Restored, SlotState, Slots, StorageError};
use core::fmt;
use embedded_storage::nor_flash::NorFlash;

/// What the sample source gives next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A labelled sample; its pixels are in the buffer given to [`DeviceIo::next`].
    Sample {
        /// Output class (below the config's classes).
        label: u16,
    },
    /// The current task is over: consolidate, evaluate, start the next.
    TaskEnd,
    /// No more samples.
    End,
}

/// A step of the loop a [`DeviceIo`] may time ([`DeviceIo::begin`], [`DeviceIo::end`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// One sample through the backbone.
    Features,
    /// The updates on one batch of real samples: `repeats` train steps, each with fresh
    /// replayed rows when replaying.
    Update,
    /// The head's predictions on a batch of held-out features.
    Predict,
    /// A checkpoint saved.
    Save,
    /// The boot check of the slots and the restore.
    Restore,
}

/// What the device is doing, for a status LED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Taking samples and updating the head.
    Learning,
    /// Measuring accuracy on the held-out set.
    Evaluating,
    /// Done.
    Idle,
}

/// The device's inputs and outputs, whatever they are: the embedded stream and
/// semihosting in QEMU ([`StreamIo`]), a sensor, a label button and a LED on a board
/// ([`super::hal::HalIo`], feature `hal`).
pub trait DeviceIo {
    /// The next event; a sample's `pixels` (the backbone's input width) are written.
    fn next(&mut self, pixels: &mut [u8]) -> Result<Event, DeviceError>;
    /// Tasks with a held-out set (0: no evaluation).
    fn holdout_tasks(&self) -> usize {
        0
    }
    /// Held-out samples of `task`.
    fn holdout_len(&self, _task: usize) -> usize {
        0
    }
    /// Held-out sample `i` of `task` into `pixels`; its label.
    fn holdout(&mut self, _task: usize, _i: usize, _pixels: &mut [u8]) -> Result<u16, DeviceError> {
        Err(DeviceError::Mismatch("this device has no held-out set"))
    }
    /// Moves to just after the first `events` events (samples and task ends) of the
    /// stream: where a restored checkpoint left off.
    fn seek(&mut self, _events: u64) -> Result<(), DeviceError> {
        Err(DeviceError::Mismatch(
            "this sample source cannot resume from a checkpoint",
        ))
    }
    /// Shows what the device is doing.
    fn status(&mut self, _status: Status) {}
    /// A step starts (for a cost meter; nothing by default).
    fn begin(&mut self, _step: Step) {}
    /// The step that began last ends.
    fn end(&mut self, _step: Step) {}
    /// Writes one line of output.
    fn print(&mut self, _args: fmt::Arguments<'_>) {}
}

/// The bytes of a device run: the learner's plan and the loop's own buffers.
#[derive(Debug, Clone)]
pub struct DevicePlan {
    /// The learner's plan.
    pub learner: Plan,
    /// The loop's buffers: the batch's features and labels, the pixel buffer, the
    /// backbone's scratch, the predictions, the loop's record (its place in the stream
    /// and the accuracy matrix of correct counts, what a checkpoint keeps beside the
    /// learner) and the held-out sizes, with alignment.
    pub loop_bytes: usize,
    /// Everything: what the arena must hold.
    pub total: usize,
}

/// The bytes `config` needs with `backbone`'s features.
pub fn plan(config: &DeviceConfig, backbone: &Backbone<'_>) -> Result<DevicePlan, DeviceError> {
    let learner = Plan::new(&config.learner(backbone.output())?)?;
    let too_big = DeviceError::Config {
        line: 0,
        why: "the loop's buffers overflow",
    };
    let (b, f) = (config.batch, backbone.output());
    let parts = [
        b.checked_mul(f).and_then(checked_f32_bytes),
        b.checked_mul(2).and_then(checked_padded),
        checked_padded(backbone.input()),
        checked_f32_bytes(backbone.scratch_len()),
        b.checked_mul(2).and_then(checked_padded),
        config
            .tasks
            .checked_mul(config.tasks)
            .and_then(|n| n.checked_add(RECORD_WORDS))
            .and_then(|n| n.checked_mul(4))
            .and_then(checked_padded),
        config.tasks.checked_mul(4).and_then(checked_padded),
    ];
    let mut loop_bytes = ALIGN - 1;
    for p in parts {
        loop_bytes = loop_bytes.checked_add(p.ok_or(too_big)?).ok_or(too_big)?;
    }
    let total = learner.total().checked_add(loop_bytes).ok_or(too_big)?;
    Ok(DevicePlan {
        learner,
        loop_bytes,
        total,
    })
}

/// What a run ends with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunSummary {
    /// Tasks learned.
    pub tasks: usize,
    /// Samples learned from.
    pub samples: u64,
    /// Updates of the head.
    pub updates: u64,
    /// Class-IL average accuracy (%) over the tasks learned, after the last one.
    pub average: f32,
    /// Backward transfer (points): final minus just-learned accuracy, averaged over all
    /// tasks but the last.
    pub bwt: f32,
    /// FNV-1a of the head's final weights and biases (their bits).
    pub checksum: u32,
}

/// Rows of a batch of `real` samples that are replayed: as many per old class as per
/// class of the current task (`lo` old classes, `hi - lo` current ones), within `batch`.
fn replayed_rows(real: usize, batch: usize, lo: usize, hi: usize) -> usize {
    let new = hi.saturating_sub(lo).max(1);
    ((2 * real * lo + new) / (2 * new)).min(batch - real)
}

/// Real samples per full batch: `batch` shared between the current task's classes and the
/// old ones in proportion (all of it when nothing is replayed), at least one.
fn real_rows(batch: usize, lo: usize, hi: usize, replay: bool) -> usize {
    if !replay || lo == 0 || hi <= lo {
        return batch;
    }
    ((2 * batch * (hi - lo) + hi) / (2 * hi)).max(1)
}

struct Dims<'a>(&'a [usize]);

impl fmt::Display for Dims<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            write!(f, "{}{d}", if i == 0 { "" } else { "-" })?;
        }
        Ok(())
    }
}

/// Where the device loop keeps its checkpoints: a learner and the loop's record, saved
/// and restored whole ([`Slots`] over any NOR flash is one).
pub trait DeviceStore {
    /// Saves `learner` with the loop's `record`; the slot and sequence number written.
    fn save(&mut self, learner: &mut Learner<'_>, task: u32, record: &[u8]) -> Result<(usize, u32), StorageError>;
    /// Restores the newest checkpoint the learner and `accept` take; see
    /// [`Slots::restore`].
    fn restore(
        &mut self,
        learner: &mut Learner<'_>,
        record: &mut [u8],
        accept: &mut dyn FnMut(&[u8]) -> Result<(), CheckpointError>,
    ) -> Result<Restored, StorageError>;
}

impl<F: NorFlash> DeviceStore for Slots<F> {
    fn save(&mut self, learner: &mut Learner<'_>, task: u32, record: &[u8]) -> Result<(usize, u32), StorageError> {
        self.checkpoint(learner, task, record)
    }

    fn restore(
        &mut self,
        learner: &mut Learner<'_>,
        record: &mut [u8],
        accept: &mut dyn FnMut(&[u8]) -> Result<(), CheckpointError>,
    ) -> Result<Restored, StorageError> {
        Slots::restore(self, learner, record, accept)
    }
}

/// Checkpoints for a run: where they go, and the device image they belong to (a
/// checkpoint of another image is refused at boot even when its learner has the same
/// shape).
pub struct Checkpoints<'s> {
    /// The slots.
    pub store: &'s mut dyn DeviceStore,
    /// An identity of the device image (the firmware uses the CRC-32 of its signed bytes).
    pub image: u32,
}

/// Words of the loop's record before the accuracy matrix.
const RECORD_WORDS: usize = 17;
/// The record's first word, "ECDL".
const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"ECDL");
/// The record's layout version.
const RECORD_VERSION: u32 = 1;

/// Where the loop is: what its record keeps (after magic, version, image and tasks),
/// with the accuracy matrix after it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Place {
    /// The stream is over and the run's summary printed.
    done: bool,
    /// Events (samples and task ends) consumed.
    events: u64,
    task: usize,
    lo: usize,
    hi: usize,
    /// Samples taken in the current task.
    pending: usize,
    samples: u64,
    updates: u64,
    /// Updates after which the next periodic checkpoint is due.
    next_save: u64,
}

fn split64(v: u64) -> [u32; 2] {
    [v as u32, (v >> 32) as u32]
}

impl Place {
    fn write(&self, words: &mut [u32], image: u32, tasks: usize) {
        let [e0, e1] = split64(self.events);
        let [s0, s1] = split64(self.samples);
        let [u0, u1] = split64(self.updates);
        let [n0, n1] = split64(self.next_save);
        words[..RECORD_WORDS].copy_from_slice(&[
            RECORD_MAGIC,
            RECORD_VERSION,
            image,
            tasks as u32,
            u32::from(self.done),
            e0,
            e1,
            self.task as u32,
            self.lo as u32,
            self.hi as u32,
            self.pending as u32,
            s0,
            s1,
            u0,
            u1,
            n0,
            n1,
        ]);
    }

    /// The place a record holds, if it is this loop's: the same layout, image, tasks
    /// and classes.
    fn read(record: &[u8], image: u32, tasks: usize, classes: usize) -> Result<Place, CheckpointError> {
        if record.len() != 4 * (RECORD_WORDS + tasks * tasks) {
            return Err(CheckpointError::Refused("its loop record is not this config's size"));
        }
        let w = |i: usize| u32::from_le_bytes([record[4 * i], record[4 * i + 1], record[4 * i + 2], record[4 * i + 3]]);
        let wide = |i: usize| u64::from(w(i)) | (u64::from(w(i + 1)) << 32);
        if w(0) != RECORD_MAGIC || w(1) != RECORD_VERSION {
            return Err(CheckpointError::Refused("not a device loop's record"));
        }
        if w(2) != image {
            return Err(CheckpointError::Refused("a checkpoint of another device image"));
        }
        let p = Place {
            done: w(4) == 1,
            events: wide(5),
            task: w(7) as usize,
            lo: w(8) as usize,
            hi: w(9) as usize,
            pending: w(10) as usize,
            samples: wide(11),
            updates: wide(13),
            next_save: wide(15),
        };
        if w(3) as usize != tasks || w(4) > 1 || p.task > tasks || p.lo > p.hi || p.hi > classes {
            return Err(CheckpointError::Refused("its loop record is out of range"));
        }
        Ok(p)
    }
}

/// Streams `io`'s samples into a learner built from `config` in `arena`, class-
/// incrementally: the classes seen so far are active, a task's own classes are those
/// first seen in it. After each task: the generator commits (replay), SI consolidates,
/// and the held-out set is evaluated into a row of the accuracy matrix. Prints the
/// matrix as it goes and the summary at the end; nothing is allocated.
pub fn run(
    config: &DeviceConfig,
    backbone: &Backbone<'_>,
    head: Option<&[u8]>,
    arena: &mut [u8],
    io: &mut impl DeviceIo,
) -> Result<RunSummary, DeviceError> {
    run_with(config, backbone, head, arena, io, None)
}

/// [`run`] with checkpoints: at start the newest checkpoint the learner and the loop
/// accept is restored and the stream resumed from its place (printing which slot, or
/// why none, and the accuracy matrix rows it holds); then the learner and the loop's
/// record are saved every `config.checkpoint_every` updates, after each task and when
/// the stream ends. A save that fails is reported and checkpoints stop; learning goes
/// on.
pub fn run_with(
    config: &DeviceConfig,
    backbone: &Backbone<'_>,
    head: Option<&[u8]>,
    arena: &mut [u8],
    io: &mut impl DeviceIo,
    mut saves: Option<Checkpoints<'_>>,
) -> Result<RunSummary, DeviceError> {
    let p = plan(config, backbone)?;
    if p.total > arena.len() {
        return Err(DeviceError::OverBudget {
            needed: p.total,
            arena: arena.len(),
        });
    }
    let holdout = io.holdout_tasks();
    if holdout > config.tasks {
        return Err(DeviceError::Mismatch(
            "the held-out set has more tasks than the config's tasks",
        ));
    }
    let lc = config.learner(backbone.output())?;
    let name = config.strategy.name();
    io.print(format_args!(
        "run {name}: head {}, learner {} B + loop {} B = {} B of a {} B arena",
        Dims(lc.dims.as_slice()),
        p.learner.total(),
        p.loop_bytes,
        p.total,
        arena.len()
    ));
    let (learner_bytes, rest) = arena.split_at_mut(p.learner.total());
    let mut a = Arena::new(rest);
    let (b, f, tasks) = (config.batch, backbone.output(), config.tasks);
    let xb = a.carve_f32("device batch", b * f)?;
    let yb = a.carve_u16("device labels", b)?;
    let pixels = a.carve_u8("device pixels", backbone.input())?;
    let scratch = a.carve_f32("backbone scratch", backbone.scratch_len())?;
    let preds = a.carve_u16("device predictions", b)?;
    let record = a.carve_u32("loop record and accuracy matrix", RECORD_WORDS + tasks * tasks)?;
    let lens = a.carve_u32("held-out sizes", tasks)?;
    for (s, n) in lens.iter_mut().enumerate().take(holdout) {
        *n = u32::try_from(io.holdout_len(s))
            .map_err(|_| DeviceError::Mismatch("a held-out set of 2^32 samples or more"))?;
    }
    let mut learner = Learner::new(&lc, learner_bytes)?;
    if let Some(h) = head {
        let (w, b) = learner.params_mut();
        if !super::signed::read_head(h, w, b) {
            return Err(DeviceError::Mismatch("the initial head is not the learner's size"));
        }
    }
    let mut place = Place {
        next_save: config.checkpoint_every as u64,
        ..Place::default()
    };
    if let Some(c) = &mut saves {
        io.begin(Step::Restore);
        let restored = restore(c, config, &mut learner, record, io, place);
        io.end(Step::Restore);
        place = restored?;
        for t in 0..place.task.min(holdout) {
            print_row(io, config, t, &record[RECORD_WORDS..], lens, holdout);
        }
        if place.events > 0 {
            io.seek(place.events)?;
        }
    }
    let replay = config.strategy == DeviceStrategy::Replay;
    let Place {
        mut task,
        mut lo,
        mut hi,
        mut pending,
        mut samples,
        mut updates,
        ..
    } = place;
    let mut k = 0usize;
    let mut save = |learner: &mut Learner<'_>,
                    record: &mut [u32],
                    place: Place,
                    io: &mut dyn FnMut(fmt::Arguments<'_>)|
     -> Option<()> {
        let c = saves.as_mut()?;
        place.write(record, c.image, tasks);
        if let Err(e) = c.store.save(learner, place.task as u32, bytemuck::cast_slice(&*record)) {
            io(format_args!("checkpoints stop: {e}"));
            saves = None;
        }
        Some(())
    };
    let mut events = place.events;
    let mut next_save = place.next_save;
    // A run restored after its stream ended only prints its matrix and summary.
    if !place.done {
        loop {
            let event = io.next(pixels)?;
            if event != Event::End {
                events += 1;
            }
            if let Event::Sample { label } = event {
                if usize::from(label) >= config.classes {
                    return Err(crate::learner::Error::LabelOutOfRange {
                        label: usize::from(label),
                        classes: config.classes,
                    }
                    .into());
                }
                if task >= tasks {
                    return Err(DeviceError::Mismatch(
                        "the stream has more tasks than the config's tasks",
                    ));
                }
                if pending == 0 {
                    io.status(Status::Learning);
                }
                hi = hi.max(usize::from(label) + 1);
                let row = &mut xb[k * f..(k + 1) * f];
                io.begin(Step::Features);
                backbone.features(pixels, row, scratch)?;
                io.end(Step::Features);
                yb[k] = label;
                if replay {
                    learner.observe(row, label)?;
                }
                (k, pending, samples) = (k + 1, pending + 1, samples + 1);
                if k >= real_rows(b, lo, hi, replay) {
                    io.begin(Step::Update);
                    updates += update(&mut learner, config, xb, yb, k, lo, hi, f)?;
                    io.end(Step::Update);
                    k = 0;
                    if config.checkpoint_every > 0 && updates >= next_save {
                        next_save = updates + config.checkpoint_every as u64;
                        let here = Place {
                            done: false,
                            events,
                            task,
                            lo,
                            hi,
                            pending,
                            samples,
                            updates,
                            next_save,
                        };
                        io.begin(Step::Save);
                        save(&mut learner, record, here, &mut |a| io.print(a));
                        io.end(Step::Save);
                    }
                }
                continue;
            }
            if pending > 0 {
                if k > 0 {
                    updates += update(&mut learner, config, xb, yb, k, lo, hi, f)?;
                    k = 0;
                }
                match config.strategy {
                    DeviceStrategy::Replay => learner.commit_generator()?,
                    DeviceStrategy::Si => learner.consolidate()?,
                    DeviceStrategy::FineTune => {}
                }
                if holdout > 0 {
                    io.status(Status::Evaluating);
                    evaluate(
                        &mut learner,
                        backbone,
                        io,
                        config,
                        task,
                        hi,
                        xb,
                        yb,
                        preds,
                        pixels,
                        scratch,
                        &mut record[RECORD_WORDS..],
                        lens,
                    )?;
                }
                (task, lo, pending) = (task + 1, hi, 0);
            }
            let here = Place {
                done: event == Event::End,
                events,
                task,
                lo,
                hi,
                pending,
                samples,
                updates,
                next_save,
            };
            if event == Event::End || event == Event::TaskEnd && pending == 0 {
                io.begin(Step::Save);
                save(&mut learner, record, here, &mut |a| io.print(a));
                io.end(Step::Save);
            }
            if event == Event::End {
                break;
            }
        }
    }
    io.status(Status::Idle);
    let matrix = &record[RECORD_WORDS..];
    let (average, bwt) = metrics(matrix, lens, tasks, task, holdout);
    let seen = task.min(holdout);
    let hash = head_fnv1a(learner.weights(), learner.biases());
    io.print(format_args!(
        "{name}: average accuracy {average:.2} over {seen} tasks, BWT {bwt:.2}"
    ));
    io.print(format_args!(
        "{name}: {samples} samples, {updates} updates, head FNV-1a {hash:08x}"
    ));
    Ok(RunSummary {
        tasks: task,
        samples,
        updates,
        average,
        bwt,
        checksum: hash,
    })
}

/// At start: restores the newest checkpoint of this image, config and loop from `c`,
/// printing what each slot holds and what was restored (or why nothing was); the place
/// to resume from (the start when nothing was restored).
fn restore(
    c: &mut Checkpoints<'_>,
    config: &DeviceConfig,
    learner: &mut Learner<'_>,
    record: &mut [u32],
    io: &mut impl DeviceIo,
    start: Place,
) -> Result<Place, DeviceError> {
    let (tasks, classes, image) = (config.tasks, config.classes, c.image);
    // A flash that cannot be read is an error of the run, not a reason to start over:
    // a read that fails while the state is copied leaves the learner half loaded.
    let r = c
        .store
        .restore(learner, bytemuck::cast_slice_mut(record), &mut |r| {
            Place::read(r, image, tasks, classes).map(|_| ())
        })
        .map_err(DeviceError::Storage)?;
    let [s0, s1] = r.slots;
    io.print(format_args!("checkpoints: slot 0 {s0}, slot 1 {s1}"));
    for (i, why) in r.refused.iter().enumerate() {
        if let Some(e) = why {
            io.print(format_args!("checkpoints: slot {i} refused: {e}"));
        }
    }
    let Some((slot, loaded)) = r.loaded else {
        let why = if r.slots.iter().any(|s| matches!(s, SlotState::Valid(_))) {
            "no checkpoint of this image and config"
        } else {
            "no whole checkpoint"
        };
        io.print(format_args!(
            "checkpoints: {why}; starting from the image's initial head"
        ));
        return Ok(start);
    };
    let bytes: &[u8] = bytemuck::cast_slice(&*record);
    let place = Place::read(&bytes[..loaded.caller], image, tasks, classes)
        .map_err(|_| DeviceError::Mismatch("a restored loop record changed after it was checked"))?;
    io.print(format_args!(
        "checkpoints: restored checkpoint {} from slot {slot}: task {}, {} samples, {} updates{}",
        loaded.info.sequence,
        place.task + usize::from(place.pending > 0),
        place.samples,
        place.updates,
        if place.done { ", the stream was over" } else { "" }
    ));
    Ok(place)
}

/// FNV-1a of a head's weights then biases (their bits, little-endian): what the device
/// loop and `edgecl run` print to compare heads across machines.
pub fn head_fnv1a(weights: &[f32], biases: &[f32]) -> u32 {
    let mut hash = 0x811c_9dc5u32;
    for v in weights.iter().chain(biases) {
        for byte in v.to_bits().to_le_bytes() {
            hash = (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
        }
    }
    hash
}

/// `config.repeats` updates on the batch's `k` real rows, each time with fresh replayed
/// rows of the old classes `0..lo` when replaying.
#[allow(clippy::too_many_arguments)]
fn update(
    learner: &mut Learner<'_>,
    config: &DeviceConfig,
    xb: &mut [f32],
    yb: &mut [u16],
    k: usize,
    lo: usize,
    hi: usize,
    f: usize,
) -> Result<u64, DeviceError> {
    let active = Active::Classes(ClassRange {
        start: 0,
        end: hi as u16,
    });
    let replay = config.strategy == DeviceStrategy::Replay;
    let extra = if replay {
        replayed_rows(k, config.batch, lo, hi)
    } else {
        0
    };
    for _ in 0..config.repeats {
        let mut replayed = 0;
        if extra > 0 {
            let exclude = ClassRange {
                start: lo as u16,
                end: hi as u16,
            };
            replayed = learner.fill_replay(&mut xb[k * f..(k + extra) * f], &mut yb[k..k + extra], exclude)?;
        }
        let n = k + replayed;
        learner.train_step_replay(&xb[..n * f], &yb[..n], active, replayed)?;
    }
    Ok(config.repeats as u64)
}

/// Average accuracy and backward transfer (points) after `learned` tasks from the correct
/// counts (`tasks x tasks`, row = after task, column = held-out task): row `learned - 1`
/// over the tasks learned that have a held-out set; BWT over those but the last learned.
fn metrics(matrix: &[u32], lens: &[u32], tasks: usize, learned: usize, holdout: usize) -> (f32, f32) {
    let seen = learned.min(holdout);
    if seen == 0 {
        return (0.0, 0.0);
    }
    let pct = |t: usize, s: usize| percent(matrix[t * tasks + s], lens[s]);
    let mut average = 0.0f32;
    for s in 0..seen {
        average += pct(learned - 1, s);
    }
    let old = seen.min(learned - 1);
    let mut bwt = 0.0f32;
    for s in 0..old {
        bwt += pct(learned - 1, s) - pct(s, s);
    }
    (average / seen as f32, bwt / old.max(1) as f32)
}

/// `correct` of `n` as a percentage (0 for an empty set), the same on every target.
fn percent(correct: u32, n: u32) -> f32 {
    correct as f32 * 100.0 / n.max(1) as f32
}

/// Row `task` of the accuracy matrix: correct predictions on each held-out task, with
/// the classes seen so far (`0..hi`) active; prints it.
#[allow(clippy::too_many_arguments)]
fn evaluate(
    learner: &mut Learner<'_>,
    backbone: &Backbone<'_>,
    io: &mut impl DeviceIo,
    config: &DeviceConfig,
    task: usize,
    hi: usize,
    xb: &mut [f32],
    yb: &mut [u16],
    preds: &mut [u16],
    pixels: &mut [u8],
    scratch: &mut [f32],
    matrix: &mut [u32],
    lens: &[u32],
) -> Result<(), DeviceError> {
    let (b, f, tasks) = (config.batch, backbone.output(), config.tasks);
    let active = Active::Classes(ClassRange {
        start: 0,
        end: hi as u16,
    });
    let holdout = io.holdout_tasks();
    for s in 0..holdout {
        let n = lens[s] as usize;
        let mut correct = 0u32;
        let mut i = 0;
        while i < n {
            let m = (n - i).min(b);
            for r in 0..m {
                yb[r] = io.holdout(s, i + r, pixels)?;
                io.begin(Step::Features);
                backbone.features(pixels, &mut xb[r * f..(r + 1) * f], scratch)?;
                io.end(Step::Features);
            }
            io.begin(Step::Predict);
            learner.predict(&xb[..m * f], active, &mut preds[..m])?;
            io.end(Step::Predict);
            correct += preds[..m].iter().zip(&yb[..m]).filter(|(p, y)| p == y).count() as u32;
            i += m;
        }
        matrix[task * tasks + s] = correct;
    }
    print_row(io, config, task, matrix, lens, holdout);
    Ok(())
}

/// Prints row `task` of the accuracy matrix.
fn print_row(io: &mut impl DeviceIo, config: &DeviceConfig, task: usize, matrix: &[u32], lens: &[u32], holdout: usize) {
    let tasks = config.tasks;
    let row = Row {
        correct: &matrix[task * tasks..task * tasks + holdout],
        lens: &lens[..holdout],
    };
    io.print(format_args!("{} after task {}:{row}", config.strategy.name(), task + 1));
}

/// A row of the accuracy matrix as printed: percentages, then `correct/n` per task.
struct Row<'a> {
    correct: &'a [u32],
    lens: &'a [u32],
}

impl fmt::Display for Row<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (&c, &n) in self.correct.iter().zip(self.lens) {
            write!(f, " {:6.2}", percent(c, n))?;
        }
        f.write_str(" |")?;
        for (&c, &n) in self.correct.iter().zip(self.lens) {
            write!(f, " {c}/{n}")?;
        }
        Ok(())
    }
}

/// Runs `config` and then its fine-tune baseline over `stream`, each from a fresh learner
/// in `arena` (started from `head`, weights then biases as f32 little-endian, when
/// given), printing to `out`: what the firmware does, and what the host simulator does
/// to reproduce it. With `saves`, the config's run keeps checkpoints there and resumes
/// from them ([`run_with`]); the baseline, a reference, runs whole each time, unless
/// `baseline` is false (the firmware's `no-baseline` build): then only the config runs,
/// and its summary is returned twice.
#[allow(clippy::too_many_arguments)]
pub fn run_with_baseline<W: fmt::Write>(
    config: &DeviceConfig,
    backbone: &Backbone<'_>,
    head: Option<&[u8]>,
    stream: Stream<'_>,
    arena: &mut [u8],
    out: &mut W,
    saves: Option<Checkpoints<'_>>,
    baseline: bool,
) -> Result<(RunSummary, RunSummary), DeviceError> {
    let _ = writeln!(
        out,
        "edgecl device: backbone {} layers {}-{} ({} int8 weights), stream {} tasks x ({} train + {} test) at {} bits, seed {}",
        backbone.layers(),
        backbone.input(),
        backbone.output(),
        backbone.weights(),
        stream.tasks(),
        stream.train_per_task(),
        stream.test_per_task(),
        stream.bits(),
        config.seed
    );
    if stream.width() != backbone.input() {
        return Err(DeviceError::Mismatch(
            "the stream's pixels are not the backbone's input width",
        ));
    }
    if stream.classes() > config.classes {
        return Err(DeviceError::Mismatch("the stream has more classes than the head"));
    }
    let main = run_with(
        config,
        backbone,
        head,
        arena,
        &mut StreamIo::new(stream, &mut *out),
        saves,
    )?;
    if !baseline {
        return Ok((main, main));
    }
    let base = if config.strategy == DeviceStrategy::FineTune {
        main
    } else {
        run(
            &config.fine_tune(),
            backbone,
            head,
            arena,
            &mut StreamIo::new(stream, &mut *out),
        )?
    };
    let _ = writeln!(
        out,
        "{} over fine-tune: {:+.2} points of average accuracy",
        config.strategy.name(),
        main.average - base.average
    );
    Ok((main, base))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replayed_rows_weigh_every_class_alike_within_the_batch() {
        // Task 3 of Split-MNIST: 4 old classes, 2 new: a third of the batch is real.
        assert_eq!(real_rows(32, 4, 6, true), 11);
        assert_eq!(replayed_rows(11, 32, 4, 6), 21);
        // Nothing old, or no replay: the whole batch is real, nothing replayed.
        assert_eq!(real_rows(32, 0, 2, true), 32);
        assert_eq!(real_rows(32, 4, 6, false), 32);
        assert_eq!(replayed_rows(5, 32, 0, 2), 0);
        // A partial batch replays in proportion, never past the batch.
        assert_eq!(replayed_rows(3, 32, 4, 6), 6);
        assert_eq!(replayed_rows(30, 32, 8, 10), 2);
        // Many old classes: at least one real row.
        assert_eq!(real_rows(4, 200, 201, true), 1);
    }

    #[test]
    fn average_and_bwt_come_from_the_row_after_the_last_task() {
        // 3 tasks, 10 held-out samples each; rows: after task 1, 2, 3.
        let m = [9, 0, 0, 5, 8, 0, 4, 6, 10];
        let lens = [10, 10, 10];
        let (avg, bwt) = metrics(&m, &lens, 3, 3, 3);
        assert!((avg - 200.0 / 3.0).abs() < 1e-4);
        assert!((bwt - (-50.0 - 20.0) / 2.0).abs() < 1e-4);
        // Two held-out sets for three tasks learned: the last row over those two, and BWT
        // over both (neither is the last task).
        let (avg, bwt) = metrics(&m, &lens, 3, 3, 2);
        assert!((avg - 50.0).abs() < 1e-4);
        assert!((bwt - (-35.0)).abs() < 1e-4);
        assert_eq!(metrics(&m, &lens, 3, 0, 3), (0.0, 0.0));
        assert_eq!(metrics(&m, &lens, 3, 1, 3), (90.0, 0.0));
    }
}

//! The device loop: samples in, features through the backbone, updates on the head (with
//! replayed rows or a penalty), an evaluation on the held-out set after each task, the
//! accuracy matrix out. Every buffer is carved from the one arena after the learner.

mod baseline;
mod checkpoint;
mod eval;
mod io;

pub use baseline::run_with_baseline;
pub use checkpoint::{Checkpoints, DeviceStore};
pub use io::{DeviceIo, Event, Status, Step};

use super::{Backbone, DeviceConfig, DeviceError, Printed};
use crate::learner::learner::ClassRange;
use crate::learner::plan::{checked_f32_bytes, checked_padded, ALIGN};
use crate::learner::protocol::TaskEnd;
use crate::learner::{Active, Arena, Learner, Plan};
use checkpoint::{restore, Place, RECORD_WORDS};
use core::fmt;
use eval::{evaluate, metrics, print_row};

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
    let name = Printed(config.strategy);
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
    let replay = config.strategy.replays();
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
                if let Some(mut r) = learner.replaying() {
                    r.observe(row, label)?;
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
                // The generator observed and SI measured as samples came; no samples are
                // kept for a retraining pass.
                let seen = ClassRange {
                    start: 0,
                    end: hi as u16,
                };
                let mut end = TaskEnd::new(seen).observed(true).estimated(true);
                if end.next(&mut learner)?.is_some() {
                    return Err(DeviceError::Mismatch(
                        "the task's end needs samples the device does not keep",
                    ));
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

/// FNV-1a of a head's weights then biases (their bits, little-endian): what the device
/// loop and `edgecl run` print to compare heads across machines.
pub fn head_fnv1a(weights: &[f32], biases: &[f32]) -> u32 {
    let mut hash = crate::learner::math::Fnv1a::new();
    for v in weights.iter().chain(biases) {
        hash.update(&v.to_bits().to_le_bytes());
    }
    hash.finish()
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
    let replay = config.strategy.replays();
    let extra = if replay {
        replayed_rows(k, config.batch, lo, hi)
    } else {
        0
    };
    for _ in 0..config.repeats {
        let Some(mut r) = learner.replaying() else {
            learner.train_step(&xb[..k * f], &yb[..k], active)?;
            continue;
        };
        let mut replayed = 0;
        if extra > 0 {
            let exclude = ClassRange {
                start: lo as u16,
                end: hi as u16,
            };
            replayed = r.fill(&mut xb[k * f..(k + extra) * f], &mut yb[k..k + extra], exclude)?;
        }
        let n = k + replayed;
        r.train_step(&xb[..n * f], &yb[..n], active, replayed)?;
    }
    Ok(config.repeats as u64)
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

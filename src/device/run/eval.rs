//! Evaluation after each task: the held-out accuracy row, the average and backward transfer,
//! and the printed row of the accuracy matrix.

use super::io::{DeviceIo, Step};
use crate::device::{Backbone, DeviceConfig, DeviceError, Printed};
use crate::learner::learner::ClassRange;
use crate::learner::{Active, Learner};
use core::fmt;

/// Average accuracy and backward transfer (points) after `learned` tasks from the correct
/// counts (`tasks x tasks`, row = after task, column = held-out task): row `learned - 1`
/// over the tasks learned that have a held-out set; BWT over those but the last learned.
pub(super) fn metrics(matrix: &[u32], lens: &[u32], tasks: usize, learned: usize, holdout: usize) -> (f32, f32) {
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
pub(super) fn evaluate(
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
pub(super) fn print_row(
    io: &mut impl DeviceIo,
    config: &DeviceConfig,
    task: usize,
    matrix: &[u32],
    lens: &[u32],
    holdout: usize,
) {
    let tasks = config.tasks;
    let row = Row {
        correct: &matrix[task * tasks..task * tasks + holdout],
        lens: &lens[..holdout],
    };
    io.print(format_args!(
        "{} after task {}:{row}",
        Printed(config.strategy),
        task + 1
    ));
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

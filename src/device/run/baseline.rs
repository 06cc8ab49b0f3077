//! [`run_with_baseline`]: the config's run and then its fine-tune baseline, as the firmware
//! prints them and the host simulator reproduces them.

use super::checkpoint::Checkpoints;
use super::{run, run_with, RunSummary};
use crate::device::{Backbone, DeviceConfig, DeviceError, Printed, Stream, StreamIo};
use crate::learner::Strategy;
use core::fmt;

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
    if backbone.takes_windows() && stream.bits() != 8 {
        return Err(DeviceError::Mismatch(
            "the backbone takes windows, whose i8 values a stream stores in 8 bits",
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
    let base = if config.strategy == Strategy::Naive {
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
        Printed(config.strategy),
        main.average - base.average
    );
    Ok((main, base))
}

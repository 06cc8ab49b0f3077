//! What `edgecl run` reads: JSON lines (a file or standard input), or an IDX folder
//! played as the simulator's stream.
//!
//! A JSON line is one input event:
//!
//! ```text
//! {"x": [0.0, 0.5, ...], "label": 3}     a sample (the backbone's input width), label optional
//! {"x": [[ax, ay, az, wx, wy, wz], ...]}  a sensor window: one row per time step, one
//!                                        value per channel (flattened time-major, as
//!                                        an IDX window file holds it)
//! {"event": "task-start", "classes": [2, 3]}   a task of these (consecutive) classes starts
//! {"event": "task-end"}                  the running task ends
//! ```
//!
//! Python's `json.dumps` writes NaN and infinities as the bare words `NaN`, `Infinity`
//! and `-Infinity`; they are read as those values (and the sample is then refused as not
//! finite), so a sensor's NaN is reported as such rather than as a malformed line.

use crate::host::idx::{load_split, Split};
use crate::host::scenario::{ClassOrder, Features, Kind, Part, Scenario, Setting, Spec};
use crate::host::simulate::{self, ReplayRatio};
use crate::learner::learner::ClassRange;
use crate::learner::rng::Rng;
use anyhow::{Context, Result};
use serde::Deserialize;
use std::path::Path;

/// One input event.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A sample, with its label when it has one.
    Sample {
        /// The sample's values.
        x: Vec<f32>,
        /// Its label.
        label: Option<i64>,
    },
    /// A task of these classes starts.
    TaskStart(ClassRange),
    /// The running task ends.
    TaskEnd,
    /// A line that is not an event, and why.
    Bad(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    #[serde(default)]
    x: Option<Vec<Value>>,
    #[serde(default)]
    label: Option<i64>,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    classes: Option<Vec<i64>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Value {
    Number(f64),
    Word(String),
    Row(Vec<Value>),
}

/// A number of `"x"` (`NaN`, `Infinity`, `-Infinity` as words), or why not; `at` names it.
fn number(v: Value, at: &dyn Fn() -> String) -> std::result::Result<f32, String> {
    match v {
        Value::Number(n) => Ok(n as f32),
        Value::Word(w) => match w.as_str() {
            "NaN" => Ok(f32::NAN),
            "Infinity" => Ok(f32::INFINITY),
            "-Infinity" => Ok(f32::NEG_INFINITY),
            _ => Err(format!("{} is the string {w:?}, not a number", at())),
        },
        Value::Row(_) => Err(format!("{} is a list inside a row: a window is rows of numbers", at())),
    }
}

/// `"x"`'s values: a flat list, or a window's rows (each time step one row of the same
/// number of channels) flattened time-major.
fn sample_values(values: Vec<Value>) -> std::result::Result<Vec<f32>, String> {
    let rows = values.iter().filter(|v| matches!(v, Value::Row(_))).count();
    if rows == 0 {
        return values
            .into_iter()
            .enumerate()
            .map(|(i, v)| number(v, &|| format!("value {i} of \"x\"")))
            .collect();
    }
    if rows != values.len() {
        return Err("\"x\" mixes rows and numbers: a window is a list of rows, one per time step".into());
    }
    let mut x = Vec::new();
    let mut width = None;
    for (r, v) in values.into_iter().enumerate() {
        let Value::Row(row) = v else {
            unreachable!("every value is a row")
        };
        match width {
            None => width = Some(row.len()),
            Some(w) if w != row.len() => {
                return Err(format!(
                    "row {r} of \"x\" has {} values but row 0 has {w}: each row of a window is one time step, a value per channel",
                    row.len()
                ))
            }
            Some(_) => {}
        }
        for (c, v) in row.into_iter().enumerate() {
            x.push(number(v, &|| format!("value {c} of row {r} of \"x\""))?);
        }
    }
    Ok(x)
}

/// The event one JSON line holds.
pub fn parse_line(line: &str) -> Item {
    let parsed = serde_json::from_str::<Line>(line).or_else(|e| {
        if line.contains("NaN") || line.contains("Infinity") {
            let quoted = line
                .replace("-Infinity", "\u{1}")
                .replace("Infinity", "\"Infinity\"")
                .replace('\u{1}', "\"-Infinity\"")
                .replace("NaN", "\"NaN\"");
            serde_json::from_str::<Line>(&quoted).map_err(|_| e)
        } else {
            Err(e)
        }
    });
    let line = match parsed {
        Ok(l) => l,
        Err(e) => return Item::Bad(format!("not a JSON event ({e})")),
    };
    match (line.event.as_deref(), line.x) {
        (None, Some(values)) => {
            if line.classes.is_some() {
                return Item::Bad("a sample has no \"classes\"".into());
            }
            match sample_values(values) {
                Ok(x) => Item::Sample { x, label: line.label },
                Err(why) => Item::Bad(why),
            }
        }
        (Some("task-end"), None) if line.label.is_none() && line.classes.is_none() => Item::TaskEnd,
        (Some("task-start"), None) if line.label.is_none() => match line.classes.as_deref() {
            Some([first, ..]) => {
                let classes = line.classes.as_deref().unwrap_or_default();
                let consecutive = classes.windows(2).all(|w| w[1] == w[0] + 1);
                let end = classes.last().copied().unwrap_or(*first) + 1;
                if !consecutive || *first < 0 || end > i64::from(u16::MAX) {
                    return Item::Bad(format!(
                        "a task's classes are consecutive and ascending, e.g. [2, 3]; got {classes:?}"
                    ));
                }
                Item::TaskStart(ClassRange {
                    start: *first as u16,
                    end: end as u16,
                })
            }
            _ => Item::Bad("a task-start names its \"classes\", e.g. [2, 3]".into()),
        },
        (Some(e), _) => Item::Bad(format!(
            "event {e:?} is not one of \"task-start\" (with \"classes\") and \"task-end\" (alone)"
        )),
        (None, None) => Item::Bad("neither a sample (\"x\") nor an event (\"event\")".into()),
    }
}

/// An IDX folder played as the simulator's class-incremental stream: per task, a
/// task-start with its classes, the samples the simulator draws for its updates (the
/// task's training rows reshuffled each pass, from the simulator's batch generator), and a
/// task-end. Split-MNIST's sorted class order, so a sample's label is its digit.
pub struct IdxStream {
    scenario: Scenario,
    rng: Rng,
    iters: usize,
    batch: usize,
    ratio: Option<ReplayRatio>,
    task: usize,
    /// Events of the current task given so far (0: its task-start is next).
    at: usize,
    pool: Vec<u32>,
    cursor: usize,
    scratch: Vec<f32>,
}

impl std::fmt::Debug for IdxStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdxStream")
            .field("tasks", &self.scenario.tasks.len())
            .field("task", &self.task)
            .field("at", &self.at)
            .finish()
    }
}

/// What an [`IdxStream`] is cut from.
#[derive(Debug, Clone)]
pub struct IdxSpec {
    /// Tasks (`None`: every class in tasks of `classes_per_task`).
    pub tasks: Option<usize>,
    /// Classes per task.
    pub classes_per_task: usize,
    /// Updates per task the stream feeds (the simulator's `--iters`).
    pub iters: usize,
    /// Seed of the scenario and of the draws (the learner's seed, as the simulator).
    pub seed: u64,
    /// Rows per update.
    pub batch: usize,
    /// Replay's ratio when the learner replays.
    pub ratio: Option<ReplayRatio>,
}

impl IdxStream {
    /// The stream over the IDX folder `dir`.
    pub fn open(dir: &Path, spec: &IdxSpec) -> Result<IdxStream> {
        let train = load_split(dir, Split::Train, None)?;
        let test = load_split(dir, Split::Test, Some(train.classes))?;
        let s = Spec {
            kind: Kind::Split,
            setting: Setting::ClassIl,
            tasks: spec.tasks,
            classes_per_task: spec.classes_per_task,
            task_order: None,
            class_order: ClassOrder::Sorted,
            seed: spec.seed,
            features: Features::Pixels,
            tasks_by: None,
        };
        let scenario = Scenario::build(s, train, test).with_context(|| format!("the stream of {}", dir.display()))?;
        Ok(IdxStream {
            scenario,
            rng: Rng::new(spec.seed ^ simulate::BATCH_SEED),
            iters: spec.iters,
            batch: spec.batch,
            ratio: spec.ratio,
            task: 0,
            at: 0,
            pool: Vec::new(),
            cursor: 0,
            scratch: Vec::new(),
        })
    }

    /// The scenario.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// Real rows per update of task `t`: what the learner's batch holds of the task's own
    /// samples (every old class seen, replayed in the ratio).
    pub fn rows(&self, t: usize) -> usize {
        let own = self.scenario.per_task;
        self.ratio
            .and_then(|r| simulate::real_rows_of(self.scenario.outputs_before(t), own, r, self.batch))
            .unwrap_or(self.batch)
    }

    /// Every event of the stream.
    pub fn len(&self) -> u64 {
        (0..self.scenario.tasks.len())
            .map(|t| 2 + (self.iters * self.rows(t)) as u64)
            .sum()
    }

    /// Whether the stream has no events.
    pub fn is_empty(&self) -> bool {
        self.scenario.tasks.is_empty()
    }

    /// The next event (`None` at the end); `x` holds a sample's pixels when `fill`.
    fn advance(&mut self, fill: bool) -> Option<Item> {
        let t = self.task;
        if t >= self.scenario.tasks.len() {
            return None;
        }
        let draws = self.iters * self.rows(t);
        let item = if self.at == 0 {
            self.pool = self.scenario.tasks[t].train.clone();
            self.cursor = self.pool.len();
            Item::TaskStart(self.scenario.task_outputs(t))
        } else if self.at <= draws {
            if self.cursor == self.pool.len() {
                self.rng.shuffle(&mut self.pool);
                self.cursor = 0;
            }
            let i = self.pool[self.cursor];
            self.cursor += 1;
            let mut x = Vec::new();
            if fill {
                x = vec![0.0; self.scenario.input_width()];
                self.scenario.fill(Part::Train, t, i, &mut x, &mut self.scratch);
            }
            let label = self.scenario.target(t, self.scenario.train.y[i as usize]);
            Item::Sample {
                x,
                label: Some(i64::from(label)),
            }
        } else {
            self.task += 1;
            self.at = 0;
            return Some(Item::TaskEnd);
        };
        self.at += 1;
        Some(item)
    }

    /// Skips `n` events (a restart going on from its position).
    pub fn skip_events(&mut self, n: u64) {
        for _ in 0..n {
            if self.advance(false).is_none() {
                break;
            }
        }
    }

    /// The task the next event belongs to.
    pub fn task(&self) -> usize {
        self.task
    }
}

impl Iterator for IdxStream {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        self.advance(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_become_events_or_say_what_is_wrong() {
        assert_eq!(
            parse_line(r#"{"x": [1, 0.5], "label": 3}"#),
            Item::Sample {
                x: vec![1.0, 0.5],
                label: Some(3)
            }
        );
        assert_eq!(
            parse_line(r#"{"x": [1]}"#),
            Item::Sample {
                x: vec![1.0],
                label: None
            }
        );
        match parse_line(r#"{"x": [[1, 2, 3], [4, 5, NaN]], "label": 1}"#) {
            Item::Sample { x, label } => {
                assert_eq!(
                    (&x[..5], x[5].is_nan(), label),
                    (&[1.0, 2.0, 3.0, 4.0, 5.0][..], true, Some(1))
                );
            }
            other => panic!("{other:?}"),
        }
        for (line, why) in [
            (r#"{"x": [[1, 2], [3]]}"#, "row 1 of \"x\" has 1 values but row 0 has 2"),
            (r#"{"x": [[1, 2], 3]}"#, "mixes rows and numbers"),
            (
                r#"{"x": [[1, [2]]]}"#,
                "value 1 of row 0 of \"x\" is a list inside a row",
            ),
            (r#"{"x": [[1, "a"]]}"#, "value 1 of row 0 of \"x\" is the string \"a\""),
        ] {
            match parse_line(line) {
                Item::Bad(m) => assert!(m.contains(why), "{line}: {m}"),
                other => panic!("{line}: {other:?}"),
            }
        }
        assert_eq!(parse_line(r#"{"event": "task-end"}"#), Item::TaskEnd);
        assert_eq!(
            parse_line(r#"{"event": "task-start", "classes": [4, 5, 6]}"#),
            Item::TaskStart(ClassRange { start: 4, end: 7 })
        );
        match parse_line(r#"{"x": [NaN, Infinity, -Infinity]}"#) {
            Item::Sample { x, .. } => {
                assert!(x[0].is_nan() && x[1] == f32::INFINITY && x[2] == f32::NEG_INFINITY)
            }
            other => panic!("{other:?}"),
        }
        // An f64 past f32's range is infinite as the sample's f32.
        match parse_line(r#"{"x": [1e39]}"#) {
            Item::Sample { x, .. } => assert!(x[0].is_infinite()),
            other => panic!("{other:?}"),
        }
        for (line, why) in [
            ("{\"x\": [1, 2", "not a JSON event"),
            ("[1, 2]", "not a JSON event"),
            (r#"{"x": [1], "labl": 2}"#, "labl"),
            (r#"{"x": ["a"]}"#, "string"),
            (r#"{"event": "task-start", "classes": [3, 1]}"#, "consecutive"),
            (r#"{"event": "task-start"}"#, "classes"),
            (r#"{"event": "stop"}"#, "stop"),
            ("{}", "neither"),
            ("", "not a JSON event"),
        ] {
            match parse_line(line) {
                Item::Bad(e) => assert!(e.contains(why), "{line}: {e}"),
                other => panic!("{line}: {other:?}"),
            }
        }
    }
}

/// How a sensor's frame holds its values.
#[derive(Debug, Clone, PartialEq)]
pub enum FrameFormat {
    /// One byte per value, scaled to [0, 1] (pixels, as the firmware's
    /// [`crate::device::hal::HalIo`] reads them).
    Bytes,
    /// Little-endian i16 counts, as an IMU's FIFO gives them (a window's steps one after
    /// another, each step a count per channel), each times its channel's scale (units per
    /// count: `scales[i % scales.len()]`).
    I16 {
        /// Units per count, one for every channel or one per channel in order.
        scales: Vec<f32>,
    },
}

impl FrameFormat {
    /// `--i2c-scale LIST`: i16 frames with one scale (units per count, finite and not 0)
    /// for every channel, or one per channel; `width` values a frame must split into
    /// whole steps of them.
    pub fn i16_scales(text: &str, width: usize) -> Result<FrameFormat, String> {
        let scales = text
            .split(',')
            .map(|v| v.trim().parse::<f32>().ok().filter(|s| s.is_finite() && *s != 0.0))
            .collect::<Option<Vec<f32>>>()
            .ok_or_else(|| format!("--i2c-scale `{text}` is not a list of finite, non-zero units per count"))?;
        if !width.is_multiple_of(scales.len()) {
            return Err(format!(
                "--i2c-scale gives {} channel scales, but the backbone's {width} values are not whole steps of {} channels",
                scales.len(),
                scales.len()
            ));
        }
        Ok(FrameFormat::I16 { scales })
    }

    /// Bytes of a frame of `width` values.
    fn bytes(&self, width: usize) -> usize {
        match self {
            FrameFormat::Bytes => width,
            FrameFormat::I16 { .. } => 2 * width,
        }
    }

    /// The values of a frame.
    fn values(&self, frame: &[u8]) -> Vec<f32> {
        match self {
            FrameFormat::Bytes => frame.iter().map(|&b| f32::from(b) / 255.0).collect(),
            FrameFormat::I16 { scales } => frame
                .chunks_exact(2)
                .enumerate()
                .map(|(i, b)| f32::from(i16::from_le_bytes([b[0], b[1]])) * scales[i % scales.len()])
                .collect(),
        }
    }
}

/// A sensor on an I2C bus as a source of samples: each sample is one frame of the
/// backbone's input width ([`FrameFormat`]: bytes scaled to [0, 1], or a window's i16
/// counts times their channel's scale), read from register
/// [`crate::device::hal::FRAME_REGISTER`] of the device at `address`. Labels and task
/// events come from a side channel of JSON lines (`{"label": 3}` labels the next frame;
/// task-start and task-end events pass through), when there is one. A failed read is a
/// [`Item::Bad`] naming the error: the sample is skipped and the next read goes on.
pub struct SensorSource<I> {
    i2c: I,
    address: u8,
    frame: Vec<u8>,
    format: FrameFormat,
    labels: Option<std::sync::mpsc::Receiver<String>>,
    period: std::time::Duration,
}

impl<I> std::fmt::Debug for SensorSource<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SensorSource")
            .field("address", &self.address)
            .field("frame bytes", &self.frame.len())
            .field("format", &self.format)
            .finish()
    }
}

impl<I: embedded_hal::i2c::I2c> SensorSource<I> {
    /// Frames of `width` bytes from `address` on `i2c`, one every `period` at most, and
    /// labels from `labels` (lines of JSON) when given.
    pub fn new(
        i2c: I,
        address: u8,
        width: usize,
        labels: Option<std::sync::mpsc::Receiver<String>>,
        period: std::time::Duration,
    ) -> Self {
        Self::with_format(i2c, address, (width, FrameFormat::Bytes), labels, period)
    }

    /// [`SensorSource::new`] with frames of `width` values in `format`.
    pub fn with_format(
        i2c: I,
        address: u8,
        (width, format): (usize, FrameFormat),
        labels: Option<std::sync::mpsc::Receiver<String>>,
        period: std::time::Duration,
    ) -> Self {
        SensorSource {
            i2c,
            address,
            frame: vec![0; format.bytes(width)],
            format,
            labels,
            period,
        }
    }

    /// The next event: a task event or label line waiting on the side channel, else a
    /// frame (labelled by the label line read before it, if any).
    pub fn next_item(&mut self) -> Item {
        let mut label = None;
        if let Some(rx) = &self.labels {
            if let Ok(line) = rx.try_recv() {
                match serde_json::from_str::<LabelLine>(&line) {
                    Ok(LabelLine { label: Some(l), .. }) => label = Some(l),
                    _ => match parse_line(&line) {
                        Item::Sample { .. } => {
                            return Item::Bad("the label channel carries labels and task events, not samples".into())
                        }
                        Item::Bad(why) => return Item::Bad(format!("label channel: {why}")),
                        event => return event,
                    },
                }
            }
        }
        std::thread::sleep(self.period);
        let register = [crate::device::hal::FRAME_REGISTER];
        if let Err(e) = self.i2c.write_read(self.address, &register, &mut self.frame) {
            return Item::Bad(format!(
                "reading the sensor at {:#04x} failed ({:?})",
                self.address,
                embedded_hal::i2c::Error::kind(&e)
            ));
        }
        Item::Sample {
            x: self.format.values(&self.frame),
            label,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelLine {
    label: Option<i64>,
}

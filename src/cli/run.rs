//! `edgecl run`: the learner deployed on a Linux board. See `edgecl::host::runtime` for
//! the runtime; this file is the command: its flags (or a TOML file of the same keys),
//! the input sources, the output lines, signals and exit codes.

use anyhow::{bail, Context, Result};
use clap::Args;
use edgecl::host::report;
use edgecl::host::runtime::input::{parse_line, IdxSpec, IdxStream, Item};
#[cfg(target_os = "linux")]
use edgecl::host::runtime::input::{FrameFormat, SensorSource};
use edgecl::host::runtime::{Deployment, Holdout, Refused, Runtime, StepError};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use std::io::{BufRead, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Exit status when `--strict` stops at a bad input.
pub const EXIT_BAD_INPUT: i32 = 2;

const EXAMPLE: &str = "\
Example (a Raspberry Pi with the shipped backbone; see the README's deploy guide):
  edgecl keygen --out owner.key
  edgecl export --board raspberry-pi-4 --model models/fashion-cnn --config run.toml \\
      --sign owner.key --out pi.img
  edgecl run --image pi.img --key owner.key.pub --backbone models/fashion-cnn/backbone.onnx \\
      --state /var/lib/edgecl --input samples.jsonl --output predictions.jsonl

Inputs: - or FILE (JSON lines), idx:DIR (the simulator's stream), i2c:/dev/i2c-1:0x68
(a frame of the backbone's input width per read, one byte per value, or with --i2c-scale
a sensor window's i16 counts; --labels FILE gives {\"label\": 3} lines for the next frame
and task events).
Input lines: {\"x\": [...784 values...], \"label\": 3}   (label optional)
             {\"event\": \"task-start\", \"classes\": [2, 3]}   {\"event\": \"task-end\"}
Output lines: {\"seq\": 0, \"class\": 7, \"scores\": [...], \"learned\": true}, then {\"summary\": {...}}

Every flag may instead be a key of --config FILE (TOML, the flag without its leading dashes):
  image = \"pi.img\"
  key = \"owner.key.pub\"
  backbone = \"models/fashion-cnn/backbone.onnx\"
  state = \"/var/lib/edgecl\"
  input = \"-\"
  checkpoint-every = 100

Exit status: 0 done (or stopped by SIGTERM/SIGINT after a checkpoint), 1 an error (a bad
image, key, backbone, state folder or config, or a checkpoint that could not be written;
the previous checkpoint stays valid), 2 a bad input with --strict.";

/// `edgecl run`'s flags; each may come from `--config FILE` instead.
#[derive(Args, Debug, Default, Deserialize)]
#[command(after_help = EXAMPLE)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RunArgs {
    /// The signed device image (`edgecl export --board raspberry-pi-4 ...`).
    #[arg(long)]
    image: Option<PathBuf>,
    /// The owner's public key (KEY.pub from `edgecl keygen`).
    #[arg(long)]
    key: Option<PathBuf>,
    /// The ONNX backbone the image was made for (its SHA-256 is in the image).
    #[arg(long)]
    backbone: Option<PathBuf>,
    /// The state folder: checkpoints, and where a restart goes on from.
    #[arg(long)]
    state: Option<PathBuf>,
    /// `-` (standard input) or a file of JSON lines, or an IDX folder (`idx:DIR`, or a
    /// folder) played as the simulator's class-incremental stream.
    #[arg(long)]
    input: Option<String>,
    /// Where the prediction lines and the summary go [standard output]; appended to.
    #[arg(long)]
    output: Option<PathBuf>,
    /// A TOML file of these flags (flags given on the command line win).
    #[arg(long)]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Checkpoint every N updates, as well as at each task end and on SIGTERM/SIGINT
    /// (0: only then) [100].
    #[arg(long)]
    checkpoint_every: Option<u64>,
    /// Stop at the first bad input (exit status 2) instead of skipping it.
    #[arg(long)]
    #[serde(default)]
    strict: bool,
    /// Stop after this many input events (the state keeps the position).
    #[arg(long)]
    max_events: Option<u64>,
    /// I2C input: labels and task events for the frames, as JSON lines (`{"label": 3}`
    /// labels the next frame; task-start and task-end events as in a JSON-lines input):
    /// a file, or `-` for standard input.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// I2C input: milliseconds between frames [0: as fast as the bus reads].
    #[arg(long)]
    period_ms: Option<u64>,
    /// I2C input: frames of little-endian i16 counts (a sensor window's steps, each a
    /// count per channel, as an IMU's FIFO gives them), each times its channel's scale in
    /// units per count: one scale for every channel, or one per channel
    /// (`0.000598,0.000598,0.000598,0.00106,0.00106,0.00106`) [frames of one byte per
    /// value, scaled to 0..1].
    #[arg(long, value_name = "LIST")]
    i2c_scale: Option<String>,
    /// IDX input: updates per task the stream feeds (the simulator's --iters) [6000].
    #[arg(long)]
    iters: Option<usize>,
    /// IDX input: number of tasks [every class, classes-per-task at a time].
    #[arg(long)]
    tasks: Option<usize>,
    /// IDX input: classes per task [2].
    #[arg(long)]
    classes_per_task: Option<usize>,
    /// IDX input: evaluate the test set after each task (the accuracy matrix in the
    /// summary) [true].
    #[arg(long)]
    evaluate: Option<bool>,
    /// No progress bar (it is shown only when standard error is a terminal anyway).
    #[arg(long, short)]
    #[serde(default)]
    quiet: bool,
}

impl RunArgs {
    /// The flags over the config file's keys.
    fn merged(self) -> Result<RunArgs> {
        let Some(path) = &self.config else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: RunArgs = toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
        Ok(RunArgs {
            image: self.image.or(file.image),
            key: self.key.or(file.key),
            backbone: self.backbone.or(file.backbone),
            state: self.state.or(file.state),
            input: self.input.or(file.input),
            output: self.output.or(file.output),
            config: self.config,
            checkpoint_every: self.checkpoint_every.or(file.checkpoint_every),
            strict: self.strict || file.strict,
            max_events: self.max_events.or(file.max_events),
            labels: self.labels.or(file.labels),
            period_ms: self.period_ms.or(file.period_ms),
            i2c_scale: self.i2c_scale.or(file.i2c_scale),
            iters: self.iters.or(file.iters),
            tasks: self.tasks.or(file.tasks),
            classes_per_task: self.classes_per_task.or(file.classes_per_task),
            evaluate: self.evaluate.or(file.evaluate),
            quiet: self.quiet || file.quiet,
        })
    }
}

/// Where the events come from.
enum Source {
    /// A file of JSON lines.
    File(Box<dyn BufRead>),
    /// Standard input, read on a thread so that a signal is seen while it waits.
    Stdin(Receiver<std::io::Result<String>>),
    /// An IDX folder as the simulator's stream.
    Idx(Box<IdxStream>),
    /// A sensor on an I2C bus.
    #[cfg(target_os = "linux")]
    Sensor(Box<SensorSource<linux_embedded_hal::I2cdev>>),
}

/// What a source gives next.
enum Next {
    Item(Item),
    /// Nothing yet (standard input is waiting).
    Wait,
    End,
}

impl Source {
    fn next(&mut self) -> Result<Next> {
        let line = match self {
            Source::Idx(s) => return Ok(s.next().map_or(Next::End, Next::Item)),
            #[cfg(target_os = "linux")]
            Source::Sensor(s) => return Ok(Next::Item(s.next_item())),
            Source::File(r) => {
                let mut line = String::new();
                match r.read_line(&mut line).context("reading the input")? {
                    0 => return Ok(Next::End),
                    _ => line,
                }
            }
            Source::Stdin(rx) => match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => line.context("reading standard input")?,
                Err(RecvTimeoutError::Timeout) => return Ok(Next::Wait),
                Err(RecvTimeoutError::Disconnected) => return Ok(Next::End),
            },
        };
        Ok(Next::Item(parse_line(line.trim_end_matches(['\n', '\r']))))
    }

    /// Skips the first `n` events (a restart of the same input).
    fn skip(&mut self, n: u64) -> Result<()> {
        match self {
            Source::Idx(s) => s.skip_events(n),
            Source::File(r) => {
                let mut line = String::new();
                for _ in 0..n {
                    line.clear();
                    if r.read_line(&mut line)? == 0 {
                        break;
                    }
                }
            }
            Source::Stdin(_) => {}
            #[cfg(target_os = "linux")]
            Source::Sensor(_) => {}
        }
        Ok(())
    }
}

/// Runs `edgecl run`; returns the exit status.
pub fn run(args: RunArgs) -> Result<i32> {
    let args = args.merged()?;
    let need =
        |v: Option<PathBuf>, flag: &str| v.with_context(|| format!("--{flag} is needed (or `{flag}` in --config)"));
    let image = need(args.image.clone(), "image")?;
    let key = need(args.key.clone(), "key")?;
    let backbone = need(args.backbone.clone(), "backbone")?;
    let state = need(args.state.clone(), "state")?;
    let input = args
        .input
        .clone()
        .context("--input is needed: -, a JSON-lines file or an IDX folder")?;

    let mut dep = Deployment::open(&image, &key, &backbone, &state)?;
    dep.checkpoint_every(args.checkpoint_every.unwrap_or(100));
    let mut arena = vec![0u8; dep.arena_bytes()];
    let mut rt = dep.start(&mut arena)?;
    if let Some(r) = rt.resumed() {
        for why in &r.rejected {
            eprintln!("edgecl run: ignoring an invalid checkpoint: {why}");
        }
        eprintln!("edgecl run: resumed from {}", r.path.display());
    }
    let (mut source, key_name, total) = open_source(&input, &args, &dep, &mut rt)?;
    let position = rt.attach(&key_name);
    source.skip(position)?;
    if position > 0 {
        eprintln!("edgecl run: going on in {key_name} at event {position}");
    }

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // The first signal stops the loop after a checkpoint; a second one exits at once.
        signal_hook::flag::register_conditional_shutdown(signal, 1, Arc::clone(&stop))
            .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&stop)))
            .context("registering the signal handlers")?;
    }
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(BufWriter::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("opening {}", p.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout())),
    };
    let bar = progress(&args, total, position);
    let started = Instant::now();
    let (mut events, mut outcome) = (0u64, "end");
    loop {
        if stop.load(Ordering::Relaxed) {
            outcome = "signal";
            break;
        }
        if args.max_events.is_some_and(|m| events >= m) {
            outcome = "max-events";
            break;
        }
        let seq = rt.position();
        let item = match source.next()? {
            Next::End => break,
            Next::Wait => {
                out.flush()?;
                continue;
            }
            Next::Item(item) => item,
        };
        events += 1;
        bar.inc(1);
        // Where an event was, in a message (only made when there is one to print).
        let at = || match &source {
            Source::File(_) | Source::Stdin(_) => format!("line {}", seq + 1),
            _ => format!("event {}", seq + 1),
        };
        let result = match item {
            Item::Sample { x, label } => match label {
                Some(l) => rt.learn(&x, l),
                None => rt.predict(&x),
            }
            .map(|p| Some((p, label.is_some()))),
            Item::TaskStart(classes) => {
                let r = rt.begin_task(classes);
                if let (Ok(()), Source::Idx(s)) = (&r, &source) {
                    let want = s.rows(s.task());
                    let have = rt.real_rows().unwrap_or(dep.learner().batch_size);
                    if want != have {
                        bail!(
                            "task {}: the learner takes {have} real rows per update, the stream feeds {want} (a class of an earlier task was never drawn: give more --iters)",
                            s.task() + 1
                        );
                    }
                }
                r.map(|()| None)
            }
            Item::TaskEnd => rt.end_task().map(|()| None),
            Item::Bad(why) => {
                rt.skip();
                Err(StepError::Refused(Refused::Line(why)))
            }
        };
        match result {
            Ok(Some((p, learned))) => {
                write!(out, "{{\"seq\":{seq},\"class\":{},\"scores\":[", p.class)?;
                for (i, s) in p.scores.iter().enumerate() {
                    write!(out, "{}{s}", if i == 0 { "" } else { "," })?;
                }
                writeln!(out, "],\"learned\":{learned}}}")?;
            }
            Ok(None) => {}
            Err(StepError::Refused(why)) => {
                bar.suspend(|| eprintln!("edgecl run: {}: {why}; skipped, the learner is unchanged", at()));
                if args.strict {
                    bar.finish_and_clear();
                    finish(&mut rt, &mut out, &dep, started, "bad-input")?;
                    eprintln!("edgecl run: --strict: stopped at {}", at());
                    return Ok(EXIT_BAD_INPUT);
                }
            }
            Err(StepError::Failed(e)) => {
                bar.finish_and_clear();
                out.flush()?;
                return Err(e.context(format!("at {}", at())));
            }
        }
    }
    bar.finish_and_clear();
    finish(&mut rt, &mut out, &dep, started, outcome)?;
    if outcome == "signal" {
        eprintln!("edgecl run: stopped by a signal after a checkpoint; run the same command to go on");
    }
    Ok(0)
}

/// The source `input` names, the name the state keeps of it, and its events when known.
fn open_source(
    input: &str,
    args: &RunArgs,
    dep: &Deployment,
    rt: &mut Runtime<'_>,
) -> Result<(Source, String, Option<u64>)> {
    if input == "-" {
        let (tx, rx) = std::sync::mpsc::sync_channel(1024);
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        return Ok((Source::Stdin(rx), "-".to_string(), None));
    }
    if let Some(rest) = input.strip_prefix("i2c:") {
        return sensor(rest, args, dep);
    }
    let dir = input.strip_prefix("idx:").map(Path::new);
    let path = Path::new(input);
    if let Some(dir) = dir.or(path.is_dir().then_some(path)) {
        let c = dep.config();
        let spec = IdxSpec {
            tasks: args.tasks,
            classes_per_task: args.classes_per_task.unwrap_or(2),
            iters: args.iters.unwrap_or(6000),
            seed: c.seed,
            batch: dep.learner().batch_size,
            ratio: dep.learner().generator.map(|_| {
                c.replay_ratio
                    .map_or(edgecl::host::simulate::ReplayRatio::Balanced, |r| r.0)
            }),
        };
        let stream = IdxStream::open(dir, &spec)?;
        if stream.scenario().outputs() > c.classes {
            bail!(
                "the stream has {} classes, the image's head {}",
                stream.scenario().outputs(),
                c.classes
            );
        }
        if args.evaluate.unwrap_or(true) {
            rt.set_holdout(holdout(&stream, dep)?)?;
        }
        let total = stream.len();
        let name = format!("idx:{} iters {} seed {}", dir.display(), spec.iters, spec.seed);
        return Ok((Source::Idx(Box::new(stream)), name, Some(total)));
    }
    let file = std::fs::File::open(path).with_context(|| format!("opening the input {input}"))?;
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    Ok((
        Source::File(Box::new(std::io::BufReader::new(file))),
        canonical.display().to_string(),
        None,
    ))
}

/// `--input i2c:BUS:ADDRESS`: frames from a sensor, labels from `--labels`.
#[cfg(target_os = "linux")]
fn sensor(spec: &str, args: &RunArgs, dep: &Deployment) -> Result<(Source, String, Option<u64>)> {
    let (bus, address) = spec
        .rsplit_once(':')
        .context("--input i2c:BUS:ADDRESS, e.g. i2c:/dev/i2c-1:0x68")?;
    let address = u8::from_str_radix(address.trim_start_matches("0x"), 16)
        .ok()
        .filter(|a| *a < 0x80)
        .with_context(|| format!("--input i2c:{spec}: `{address}` is not a 7-bit I2C address such as 0x68"))?;
    let i2c = linux_embedded_hal::I2cdev::new(bus).with_context(|| format!("opening the I2C bus {bus}"))?;
    let labels = match &args.labels {
        None => None,
        Some(p) => {
            let stdin = p.as_os_str() == "-";
            if !stdin {
                std::fs::metadata(p).with_context(|| format!("the labels {}", p.display()))?;
            }
            let (tx, rx) = std::sync::mpsc::channel();
            let path = p.clone();
            // Opened on the thread: a FIFO's open waits for its writer.
            std::thread::spawn(move || {
                let reader: Box<dyn BufRead> = if stdin {
                    Box::new(std::io::BufReader::new(std::io::stdin()))
                } else {
                    match std::fs::File::open(&path) {
                        Ok(f) => Box::new(std::io::BufReader::new(f)),
                        Err(e) => {
                            eprintln!("edgecl run: opening the labels {}: {e}", path.display());
                            return;
                        }
                    }
                };
                for line in reader.lines().map_while(std::result::Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            Some(rx)
        }
    };
    let period = Duration::from_millis(args.period_ms.unwrap_or(0));
    let width = dep.backbone().input_width();
    let format = match &args.i2c_scale {
        Some(text) => FrameFormat::i16_scales(text, width).map_err(anyhow::Error::msg)?,
        None => FrameFormat::Bytes,
    };
    let source = SensorSource::with_format(i2c, address, (width, format), labels, period);
    Ok((Source::Sensor(Box::new(source)), format!("i2c:{spec}"), None))
}

#[cfg(not(target_os = "linux"))]
fn sensor(spec: &str, _: &RunArgs, _: &Deployment) -> Result<(Source, String, Option<u64>)> {
    bail!("--input i2c:{spec}: I2C sensors are read through Linux's i2c-dev, and this is not Linux")
}

/// The stream's test sets through the backbone, one sample at a time.
fn holdout(stream: &IdxStream, dep: &Deployment) -> Result<Holdout> {
    let s = stream.scenario();
    let b = dep.backbone();
    let mut tasks = Vec::with_capacity(s.tasks.len());
    for t in 0..s.tasks.len() {
        let (x, y) = s.test_set(t);
        let mut f = vec![0.0f32; y.len() * b.feature_width()];
        for (xs, fs) in x
            .chunks_exact(b.input_width())
            .zip(f.chunks_exact_mut(b.feature_width()))
        {
            b.sample(xs, fs)?;
        }
        tasks.push((f, y));
    }
    Ok(Holdout { tasks })
}

fn progress(args: &RunArgs, total: Option<u64>, position: u64) -> ProgressBar {
    if args.quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {pos}/{len} events, {per_sec}, eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_position(position);
    bar
}

/// The last checkpoint and the summary line.
fn finish(
    rt: &mut Runtime<'_>,
    out: &mut Box<dyn Write>,
    dep: &Deployment,
    started: Instant,
    outcome: &str,
) -> Result<()> {
    rt.checkpoint()?;
    let s = rt.stats();
    let seconds = started.elapsed().as_secs_f64();
    let mut summary = serde_json::json!({
        "stopped": outcome,
        "samples": s.samples,
        "labelled": s.labelled,
        "updates": s.updates,
        "skipped": s.skipped,
        "tasks": s.tasks,
        "position": s.position,
        "checkpoints": s.checkpoints,
        "learner": dep.learner().dims.as_slice(),
        "strategy": dep.config().strategy,
        "arena_bytes": s.arena_bytes,
        "head_fnv1a": format!("{:08x}", s.head_fnv1a),
        "state_fnv1a": format!("{:08x}", s.state_fnv1a),
        "seconds": seconds,
    });
    if !s.matrix.is_empty() {
        summary["accuracy_matrix"] = serde_json::json!(s.matrix);
        summary["avg_accuracy"] = serde_json::json!(report::average_accuracy(&s.matrix));
        summary["bwt"] = serde_json::json!(report::bwt(&s.matrix));
        summary["untrained"] = serde_json::json!(s.untrained);
    }
    writeln!(out, "{}", serde_json::json!({ "summary": summary }))?;
    out.flush()?;
    eprintln!(
        "edgecl run: {} samples ({} labelled, {} skipped), {} updates, {} tasks ended, head FNV-1a {:08x}{}",
        s.samples,
        s.labelled,
        s.skipped,
        s.updates,
        s.tasks,
        s.head_fnv1a,
        if s.matrix.is_empty() {
            String::new()
        } else {
            format!(", average accuracy {:.2}", report::average_accuracy(&s.matrix))
        }
    );
    Ok(())
}

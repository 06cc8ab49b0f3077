//! `edgecl simulate`: its arguments and the run (a scenario on the core, or a board's
//! firmware loop).

use super::default_data;
use super::shape::{Shape, Source};
use super::strategy::StrategyArg;
use anyhow::{bail, Context, Result};
use clap::Args;
use edgecl::host::idx::{load_split_with, Split};
use edgecl::host::report::{LambdaTrial, Report};
use edgecl::host::scenario::{ClassOrder, Scenario};
use edgecl::host::simulate::{self, Length};
use std::io::IsTerminal;
use std::path::PathBuf;

/// Share of each class's training samples a `--lambda` list holds out to choose on.
const VALIDATION_FRACTION: f64 = 0.1;

/// `edgecl simulate`'s arguments.
#[derive(Args)]
pub struct SimulateArgs {
    #[command(flatten)]
    pub shape: Shape,
    /// Folder of IDX files (train-*/t10k-*, optionally .gz); default: the shipped MNIST.
    #[arg(long)]
    data: Option<PathBuf>,
    /// The samples file of a folder that holds several (its name after `train-`/`test-`
    /// starts with NAME, e.g. `signals`); the split's other idx1 files are side files.
    #[arg(long, value_name = "NAME")]
    samples: Option<String>,
    /// Updates per task (default: 2000 split / 5000 permuted literature; 6000 edge).
    #[arg(long, conflicts_with = "epochs")]
    iters: Option<usize>,
    /// Passes per task over the data it trains on (its own; for joint, all seen so far),
    /// instead of --iters.
    #[arg(long)]
    epochs: Option<f64>,
    /// Order of the tasks, e.g. 4,3,2,1,0.
    #[arg(long, value_delimiter = ',')]
    task_order: Option<Vec<usize>>,
    /// Split: `sorted` ({0,1}, {2,3}, ...), `random` (drawn from the seed), a list such as
    /// 1,7,0,3,... cut into tasks of --classes-per-task, or the tasks themselves separated
    /// by `/` (0,1,2,3/4,5/6); default: random for the literature protocol, sorted for the
    /// edge one. Classes no task holds are named in the report.
    #[arg(long, value_parser = ClassOrder::parse)]
    class_order: Option<ClassOrder>,
    /// How many classes there are (default: one more than the largest training label);
    /// every label must be below it.
    #[arg(long, value_name = "N")]
    num_classes: Option<usize>,
    /// Test on a validation split carved from the training data (10% of each class's
    /// samples, seeded) instead of the test set: for choosing any setting.
    #[arg(long)]
    validation: bool,
    /// Write the report as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    /// Run a board's firmware loop instead of a scenario: DIR is a board folder with
    /// firmware (e.g. boards/netduinoplus2); its firmware.toml, learner budget and the
    /// flash images in boards/flash/ are used, and the lines the firmware prints are
    /// printed, bit for bit.
    #[arg(long, value_name = "DIR")]
    firmware: Option<PathBuf>,
    /// With --firmware: this config file instead of DIR/firmware.toml.
    #[arg(long, value_name = "FILE", requires = "firmware")]
    firmware_config: Option<PathBuf>,
    /// With --firmware: this signed device image instead of boards/flash/BOARD.img (the
    /// firmware's EDGECL_FIRMWARE_IMAGE).
    #[arg(long, value_name = "FILE", requires = "firmware")]
    firmware_image: Option<PathBuf>,
    /// With --firmware: this sample stream instead of boards/flash/stream.bin (the
    /// firmware's EDGECL_FIRMWARE_STREAM; e.g. sensor windows from edgecl device-data).
    #[arg(long, value_name = "FILE", requires = "firmware")]
    firmware_stream: Option<PathBuf>,
}

/// Whether the command line named a `--strategy` for `simulate`.
pub fn strategy_given(matches: &clap::ArgMatches) -> bool {
    matches
        .subcommand_matches("simulate")
        .and_then(|m| m.value_source("strategy"))
        .is_some_and(|s| s == clap::parser::ValueSource::CommandLine)
}

/// The report `--json` writes when fine-tuning ran beside a defence: the defence's report
/// (every field as a single run writes it) with fine-tuning's as `baseline`.
#[derive(serde::Serialize)]
struct WithBaseline<'r> {
    #[serde(flatten)]
    report: &'r Report,
    baseline: &'r Report,
}

/// The Gaussian generator observes a split task's classes together: as many slots as the
/// largest task holds (tasks of different sizes, `--tasks-by`).
pub fn fit_slots(opts: &mut simulate::Options, s: &Scenario) {
    if opts.replay.slots.is_some() && s.spec.kind == edgecl::host::scenario::Kind::Split {
        opts.replay.slots = Some(s.per_task);
    }
}

/// `edgecl simulate`: a scenario under a board's budget (or a board's firmware loop),
/// its report printed and, with `--json`, written. Without `--strategy` the scenario
/// runs twice on the same stream, fine-tuning then the board's recommended defence, and
/// both are printed with the difference.
pub fn simulate(args: SimulateArgs, strategy_given: bool) -> Result<()> {
    if let Some(dir) = &args.firmware {
        let mut fw = edgecl::host::device::FirmwareDir::load(dir, args.firmware_config.as_deref())?;
        fw.replace(args.firmware_image.as_deref(), args.firmware_stream.as_deref())?;
        print!("{}", fw.simulate()?);
        return Ok(());
    }
    let dir = args.data.clone().unwrap_or_else(default_data);
    let samples = args.samples.as_deref();
    let train = load_split_with(&dir, Split::Train, args.num_classes, samples)?;
    let test = load_split_with(&dir, Split::Test, Some(train.classes), samples)?;
    let names = |d: &edgecl::host::idx::Dataset| d.side.iter().map(|f| f.name.clone()).collect::<Vec<_>>();
    if names(&train) != names(&test) {
        bail!(
            "{}: the train split has side files {:?} but the test split {:?}",
            dir.display(),
            names(&train),
            names(&test)
        );
    }
    let source = args.shape.source_for(Some(&train.sample_shape))?;
    let (default_iters, ..) = args.shape.training();
    let length = match (args.iters, args.epochs) {
        (Some(i), _) => Length::Iters(i),
        (None, Some(e)) => Length::Epochs(e),
        (None, None) => Length::Iters(default_iters),
    };
    let progress = !args.quiet && std::io::stderr().is_terminal();
    let mut opts = args.shape.options(length, progress, dir.display().to_string())?;
    opts.backbone = match &source {
        Source::Protocol => None,
        #[cfg(feature = "onnx")]
        Source::Backbone(b) => Some(b.name().to_string()),
    };
    // The scenario over `train` and `test`, its features from the source; the learner's
    // plan is checked before the backbone runs.
    let build = |opts: &mut simulate::Options, train, test| -> Result<Scenario> {
        #[allow(unused_mut)]
        let mut spec = args.shape.spec(args.task_order.clone(), args.class_order.clone());
        match &source {
            Source::Protocol => {
                let s = Scenario::build(spec, train, test)?;
                fit_slots(opts, &s);
                simulate::setup(opts, s.input_width(), s.outputs(), s.tasks.len(), s.spec.setting)?;
                Ok(s)
            }
            #[cfg(feature = "onnx")]
            Source::Backbone(b) => {
                spec.features = edgecl::host::scenario::Features::Pixels;
                let s = Scenario::build(spec, train, test)?;
                fit_slots(opts, &s);
                simulate::setup(opts, b.feature_width(), s.outputs(), s.tasks.len(), s.spec.setting)?;
                s.with_backbone(b)
            }
        }
    };
    let scenario = if args.validation {
        let (fit, held_out) = train.split_validation(VALIDATION_FRACTION, args.shape.seed);
        build(&mut opts, fit, held_out)?
    } else {
        build(&mut opts, train, test)?
    };
    let lambdas = args.shape.lambdas();
    if args.shape.lambda.is_some() && opts.strategy.penalty().is_none() {
        bail!("--lambda is the strength of a penalty: use it with --strategy ewc, online-ewc, si or mas");
    }
    let mut sweep = Vec::new();
    if lambdas.len() > 1 {
        // Pick lambda on a validation split of the training data, never on the test set.
        let (fit, held_out) = scenario.train.split_validation(VALIDATION_FRACTION, args.shape.seed);
        let vscenario = build(&mut opts, fit, held_out)?;
        for &lambda in &lambdas {
            let mut o = opts.clone();
            o.penalty = args.shape.penalty(lambda);
            let r = simulate::run(&o, &vscenario)?;
            eprintln!("lambda {lambda}: validation average accuracy {:.2}", r.avg_accuracy);
            sweep.push(LambdaTrial {
                lambda,
                validation_avg_accuracy: r.avg_accuracy,
            });
        }
        let best = sweep
            .iter()
            .fold(None::<&LambdaTrial>, |b, t| match b {
                Some(b) if b.validation_avg_accuracy >= t.validation_avg_accuracy => Some(b),
                _ => Some(t),
            })
            .map_or(lambdas[0], |t| t.lambda);
        eprintln!(
            "chosen lambda {best} (validation: {:.0}% of each class's training samples held out)",
            VALIDATION_FRACTION * 100.0
        );
        opts.penalty = args.shape.penalty(best);
    }
    let evaluation = |mut report: Report| {
        if args.validation {
            report.evaluation = "validation".to_string();
        }
        report
    };
    let mut report = evaluation(simulate::run(&opts, &scenario)?);
    report.lambda_sweep = sweep;
    print!("{}", report.to_table());
    let text = if strategy_given {
        serde_json::to_string_pretty(&report)?
    } else {
        // The same scenario (stream, features, seed) for the defence the board recommends.
        let name = opts.board.recommended_strategy();
        let mut shape = args.shape.clone();
        shape.strategy = StrategyArg::parse(name)?;
        let mut defence_opts = shape.options(length, progress, opts.data.clone())?;
        fit_slots(&mut defence_opts, &scenario);
        defence_opts.backbone = opts.backbone.clone();
        println!();
        let defence = evaluation(simulate::run(&defence_opts, &scenario)?);
        print!("{}", defence.to_table());
        println!(
            "\n{name} over fine-tune on the same stream: {:+.2} points of average accuracy ({:.2} against {:.2}), \
             BWT {:.2} against {:.2}, {} bytes of the arena against {} (--strategy NAME runs one)",
            defence.avg_accuracy - report.avg_accuracy,
            defence.avg_accuracy,
            report.avg_accuracy,
            defence.bwt,
            report.bwt,
            defence.arena_bytes,
            report.arena_bytes,
        );
        serde_json::to_string_pretty(&WithBaseline {
            report: &defence,
            baseline: &report,
        })?
    };
    if let Some(path) = args.json {
        std::fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

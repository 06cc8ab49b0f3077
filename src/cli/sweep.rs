//! `edgecl sweep` and `edgecl sweep-cell`: a grid of simulator runs (boards x scenarios x
//! settings x strategies x budgets x seeds), run on this machine's cores or sent to a
//! Slurm cluster as a job array, and the report drawn from whatever cells exist.
//!
//! A sweep's folder holds everything a cell needs: `settings.txt` (the run's settings
//! as JSON, everything but the grid), `cells.txt` (one line per cell, in a stable order),
//! `cells/` (one report per cell, written atomically), and for Slurm `slurm/` (the
//! scripts, their logs, the job ids).

use crate::{default_data, ScenarioArg, SettingArg, Shape, Source};
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use edgecl::host::board::{parse_bytes, Board};
use edgecl::host::idx::{load_split, Dataset, Split};
use edgecl::host::scenario::Scenario;
use edgecl::host::simulate::{self, GeneratorChoice, Length, PenaltyKind, Strategy};
use edgecl::host::slurm::{self, JobOptions, SLURM_DIR};
use edgecl::host::sweep::{
    self, collect, fit_generator, flash_need, outcome, parse_label, read_cells, run_cells, summary, write_cell, Cell,
    Grid, Group, Outcome, SummaryRow, CELLS_FILE,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Budgets a sweep takes when none are given (bytes).
const SWEEP_BUDGETS: [usize; 5] = [8 << 10, 16 << 10, 32 << 10, 64 << 10, 128 << 10];

/// The file that holds a sweep's settings.
const SETTINGS_FILE: &str = "settings.txt";
/// The file that holds the command that last ran or submitted the sweep.
const COMMAND_FILE: &str = "command.txt";

#[derive(Args)]
pub struct SweepArgs {
    #[command(flatten)]
    shape: Shape,
    /// Boards, each swept with its own rules (its learner budget caps the budgets, its
    /// flash is checked, an MCU board's features come from its firmware's backbone);
    /// instead of --board.
    #[arg(long, value_delimiter = ',', conflicts_with = "board")]
    boards: Option<Vec<String>>,
    /// Scenarios (instead of --scenario).
    #[arg(long, value_enum, value_delimiter = ',')]
    scenarios: Option<Vec<ScenarioArg>>,
    /// Settings (instead of --setting).
    #[arg(long, value_enum, value_delimiter = ',')]
    settings: Option<Vec<SettingArg>>,
    /// Arena budgets, each replacing the board's learner budget [8k,16k,32k,64k,128k; with
    /// a board, those below its learner budget and the budget itself].
    #[arg(long, value_delimiter = ',', value_parser = parse_bytes)]
    budgets: Option<Vec<usize>>,
    /// Strategies, as --strategy takes them; a replaying one may name its generator after
    /// a colon (replay:buffer is the reservoir buffer, replay:vae the VAE).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "naive,joint,online-ewc,si,packnet,replay,replay:buffer,si+replay"
    )]
    strategies: Vec<String>,
    /// Seeds 1..=N per strategy and budget.
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Folder for the cells' reports and the summary.
    #[arg(long, required_unless_present_any = ["report", "resubmit"])]
    out: Option<PathBuf>,
    /// Folder of IDX files; default: the shipped MNIST.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Updates per task (default: the protocol's).
    #[arg(long)]
    iters: Option<usize>,
    /// Cells run at once (default: the machine's cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Stop after running this many cells (what a kill does; for tests).
    #[arg(long, hide = true)]
    max_cells: Option<usize>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    /// Draw the report (sweep.json, plots, report.html) of the sweep in DIR from the cells
    /// it has, and say how many are missing or failed; runs nothing.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["out", "resubmit", "slurm"])]
    report: Option<PathBuf>,
    /// Submit the missing and failed cells of the Slurm sweep in DIR again (with the job
    /// options it was submitted with, unless new ones are given), and its report job.
    #[arg(long, value_name = "DIR", conflicts_with = "out")]
    resubmit: Option<PathBuf>,
    #[command(flatten)]
    slurm: SlurmArgs,
}

/// How a sweep goes to Slurm.
#[derive(Args)]
struct SlurmArgs {
    /// Run the cells as a Slurm job array (`sbatch`): each task runs
    /// `edgecl sweep-cell OUT INDEX`, and a job after the array draws the report.
    #[arg(long)]
    slurm: bool,
    /// Slurm partition.
    #[arg(long)]
    partition: Option<String>,
    /// Time limit of each cell (sbatch's forms: MM, HH:MM:SS, D-HH, ...).
    #[arg(long)]
    time: Option<String>,
    /// CPUs of each cell.
    #[arg(long)]
    cpus_per_task: Option<usize>,
    /// Array tasks run at once (`--array=...%K`).
    #[arg(long)]
    array_parallel: Option<usize>,
    /// Cells each array task runs one after the other [1]: more for short cells, whose
    /// jobs would otherwise cost the scheduler more than they compute.
    #[arg(long)]
    cells_per_task: Option<usize>,
    /// More #SBATCH options, as sbatch takes them (e.g. --sbatch-option=--account=proj).
    #[arg(long, allow_hyphen_values = true)]
    sbatch_option: Vec<String>,
    /// A shell line each job runs first, e.g. "module load gcc" (repeat for more).
    #[arg(long)]
    setup: Vec<String>,
    /// Write the scripts and print them and the sbatch commands; submit nothing.
    #[arg(long)]
    dry_run: bool,
}

impl SlurmArgs {
    fn given(&self) -> bool {
        self.partition.is_some()
            || self.time.is_some()
            || self.cpus_per_task.is_some()
            || self.array_parallel.is_some()
            || self.cells_per_task.is_some()
            || !self.sbatch_option.is_empty()
            || !self.setup.is_empty()
    }

    fn options(&self) -> JobOptions {
        JobOptions {
            partition: self.partition.clone(),
            time: self.time.clone(),
            cpus_per_task: self.cpus_per_task.unwrap_or(1),
            array_parallel: self.array_parallel,
            cells_per_task: self.cells_per_task.unwrap_or(1),
            sbatch_options: self.sbatch_option.clone(),
            setup: self.setup.clone(),
        }
    }
}

#[derive(Args)]
pub struct SweepCellArgs {
    /// The sweep's folder (written by `edgecl sweep --out DIR`).
    dir: PathBuf,
    /// The cell's line in DIR/cells.txt, from 0 (in a Slurm array: SLURM_ARRAY_TASK_ID plus
    /// the array's offset).
    index: usize,
    /// Record that the cell's process ended with this exit status, when it left no
    /// report (the job scripts call this after a task that exited non-zero); runs nothing.
    #[arg(long, value_name = "STATUS")]
    exit_status: Option<i32>,
}

/// Everything a sweep's cells share: what `settings.txt` holds. The per-cell fields of
/// the shape (board, scenario, setting, strategy, budget, seed) are cleared: the cell
/// sets them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Settings {
    shape: Shape,
    /// The IDX folder, absolute.
    data: PathBuf,
    iters: Option<usize>,
}

impl Settings {
    fn new(args: &SweepArgs) -> Result<Settings> {
        let mut shape = args.shape.clone();
        (shape.strategy, shape.budget, shape.seed, shape.board) = (String::new(), None, 0, None);
        (shape.scenario, shape.setting) = (ScenarioArg::Split, SettingArg::ClassIl);
        #[cfg(feature = "onnx")]
        {
            // A model folder or backbone file named relative to here is found from anywhere.
            if let Some(m) = &shape.model {
                if Path::new(m).is_dir() {
                    shape.model = Some(absolute(Path::new(m))?.display().to_string());
                }
            }
            if let Some(b) = &shape.backbone {
                shape.backbone = Some(absolute(b)?);
            }
        }
        let data = absolute(&args.data.clone().unwrap_or_else(default_data))?;
        Ok(Settings {
            shape,
            data,
            iters: args.iters,
        })
    }

    fn text(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)? + "\n")
    }

    fn read(dir: &Path) -> Result<Settings> {
        let path = dir.join(SETTINGS_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {} (is {} a sweep's folder?)", path.display(), dir.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not the settings of this edgecl version's sweeps", path.display()))
    }

    /// The shape `cell` runs with.
    fn shape(&self, cell: &Cell) -> Result<Shape> {
        let mut shape = self.shape.clone();
        shape.board = cell.board.clone();
        shape.scenario = ScenarioArg::from_str(&cell.scenario, false)
            .map_err(|_| anyhow::anyhow!("cell scenario `{}` is not one this build knows", cell.scenario))?;
        shape.setting = SettingArg::from_str(&cell.setting, false)
            .map_err(|_| anyhow::anyhow!("cell setting `{}` is not one this build knows", cell.setting))?;
        shape.strategy = cell.strategy.split(':').next().unwrap_or_default().to_string();
        shape.budget = Some(cell.budget);
        shape.seed = cell.seed;
        // An MCU board's features come from the dense backbone its firmware ran
        // (models/fashion-mlp) unless a model is named.
        #[cfg(feature = "onnx")]
        if shape.model.is_none() && shape.backbone.is_none() && shape.board()?.kind == "mcu" && cell.board.is_some() {
            let mlp = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/fashion-mlp");
            shape.model = Some(mlp.display().to_string());
        }
        Ok(shape)
    }
}

/// `p` as an absolute path (canonical when it exists).
fn absolute(p: &Path) -> Result<PathBuf> {
    match p.canonicalize() {
        Ok(c) => Ok(c),
        Err(_) => std::path::absolute(p).with_context(|| format!("resolving {}", p.display())),
    }
}

/// A clap value's name (`class-il`).
fn value_name<T: ValueEnum>(v: &T) -> String {
    v.to_possible_value()
        .map_or_else(String::new, |p| p.get_name().to_string())
}

/// The grid the arguments ask for, checked.
fn grid(args: &SweepArgs) -> Result<Grid> {
    let boards: Vec<Option<String>> = match (&args.boards, &args.shape.board) {
        (Some(list), _) => {
            for (i, b) in list.iter().enumerate() {
                if list[..i].contains(b) {
                    bail!("--boards: `{b}` is listed twice");
                }
            }
            list.iter().cloned().map(Some).collect()
        }
        (None, board) => vec![board.clone()],
    };
    let mut axes = Vec::new();
    for b in boards {
        let mut shape = args.shape.clone();
        shape.board = b.clone();
        let board = shape.board()?;
        let mut budgets = match (&b, args.budgets.clone()) {
            (_, Some(list)) => list,
            (None, None) => SWEEP_BUDGETS.to_vec(),
            (Some(_), None) => {
                let mut l: Vec<usize> = SWEEP_BUDGETS.iter().copied().filter(|&x| x < board.budget()).collect();
                l.push(board.budget());
                l
            }
        };
        budgets.sort_unstable();
        budgets.dedup();
        if budgets.contains(&0) {
            bail!("--budgets: a budget of 0 bytes holds no learner");
        }
        if let Some(over) = budgets.iter().find(|&&x| b.is_some() && x > board.budget()) {
            bail!(
                "--budgets {over}: more than {}'s learner budget of {} bytes",
                board.name,
                board.budget()
            );
        }
        axes.push((b, budgets));
    }
    let strategies = args.strategies.clone();
    for (i, s) in strategies.iter().enumerate() {
        parse_label(s)?;
        if strategies[..i].contains(s) {
            bail!("--strategies: `{s}` is listed twice");
        }
    }
    if args.seeds == 0 {
        bail!("--seeds 0: a sweep needs at least one seed");
    }
    let names = |v: Option<Vec<String>>, one: String, flag: &str| -> Result<Vec<String>> {
        let names = v.unwrap_or_else(|| vec![one]);
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                bail!("{flag}: `{n}` is listed twice");
            }
        }
        Ok(names)
    };
    let scenarios = names(
        args.scenarios.as_ref().map(|v| v.iter().map(value_name).collect()),
        value_name(&args.shape.scenario),
        "--scenarios",
    )?;
    let settings = names(
        args.settings.as_ref().map(|v| v.iter().map(value_name).collect()),
        value_name(&args.shape.setting),
        "--settings",
    )?;
    Ok(Grid {
        boards: axes,
        scenarios,
        settings,
        strategies,
        seeds: args.seeds,
    })
}

/// The command line as a shell takes it back (quoted where needed).
fn command_line() -> String {
    std::env::args_os()
        .map(|a| slurm::shell_quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes `text` to `path` through a temporary file and a rename.
fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// Refuses to change a sweep's folder while Slurm still holds jobs of it (their array
/// indices would point at other cells).
fn no_jobs_running(dir: &Path, doing: &str) -> Result<()> {
    let ids = slurm::recorded_jobs(dir)?;
    if ids.is_empty() {
        return Ok(());
    }
    if let Some(held) = slurm::still_queued(&ids) {
        if !held.is_empty() {
            bail!(
                "Slurm still holds job(s) {} of the sweep in {}: wait for them (squeue) or cancel them (scancel) \
                 before {doing}",
                held.join(", "),
                dir.display()
            );
        }
    }
    Ok(())
}

/// `edgecl sweep`.
pub fn sweep(args: SweepArgs) -> Result<()> {
    if let Some(dir) = &args.report {
        return report(dir, None).map(|_| ());
    }
    if let Some(dir) = &args.resubmit {
        return resubmit(dir, &args.slurm);
    }
    let Some(out) = args.out.clone() else {
        bail!("--out DIR: where the sweep's cells and report go");
    };
    if !args.slurm.slurm && (args.slurm.given() || args.slurm.dry_run) {
        bail!(
            "--partition, --time, --cpus-per-task, --array-parallel, --cells-per-task, --sbatch-option, --setup \
             and --dry-run go with --slurm"
        );
    }
    let grid = grid(&args)?;
    let settings = Settings::new(&args)?;
    let text = settings.text()?;
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let out = absolute(&out)?;
    // A folder holds one sweep's settings: resuming with other ones would mix their cells.
    let settings_path = out.join(SETTINGS_FILE);
    match std::fs::read_to_string(&settings_path) {
        Ok(old) if old != text => bail!(
            "{} holds a sweep with other settings (see {}): resuming would mix their cells; use another --out, \
             or delete the folder",
            out.display(),
            settings_path.display()
        ),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => write_atomic(&settings_path, &text)?,
        Err(e) => return Err(e).with_context(|| format!("reading {}", settings_path.display())),
    }
    let cells = grid.cells();
    let listing = sweep::cells_text(&cells);
    let cells_path = out.join(CELLS_FILE);
    if std::fs::read_to_string(&cells_path).ok().as_deref() != Some(listing.as_str()) {
        no_jobs_running(&out, "changing its grid")?;
        write_atomic(&cells_path, &listing)?;
    }
    write_atomic(&out.join(COMMAND_FILE), &(command_line() + "\n"))?;
    if args.slurm.slurm {
        no_jobs_running(&out, "submitting it again")?;
        return submit(&out, &cells, args.slurm.options(), args.slurm.dry_run, "submitted");
    }
    no_jobs_running(&out, "running its cells here")?;

    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let progress = !args.quiet && std::io::stderr().is_terminal();
    let started = std::time::Instant::now();
    // The data is read only when a cell still needs it.
    let mut data = None;
    // The cells that share a scenario (features, seed) run together, so each scenario is
    // built once and only one is held at a time.
    let mut groups: Vec<(ScenarioKey, Vec<Cell>)> = Vec::new();
    for c in &cells {
        let key = ScenarioKey::of(&settings.shape(c)?);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(c.clone()),
            None => groups.push((key, vec![c.clone()])),
        }
    }
    let (mut ran, mut skipped) = (0, 0);
    let mut limit = args.max_cells;
    for (_, group) in &groups {
        let pending: Vec<Cell> = group.iter().filter(|c| !sweep::finished(&out, c)).cloned().collect();
        if pending.is_empty() || limit == Some(0) {
            skipped += group.len() - pending.len();
            continue;
        }
        let data = match &mut data {
            Some(d) => d,
            None => data.insert(Data::load(&settings.data)?),
        };
        let prepared = Prepared::new(&settings, &pending[0], data)?;
        let done = run_cells(&out, group, jobs, limit, progress, |cell| prepared.run(&settings, cell))?;
        limit = limit.map(|l| l - done.ran);
        ran += done.ran;
        skipped += done.skipped;
    }
    println!("{} cells: {ran} run now, {skipped} finished before", cells.len());
    report(&out, Some((started.elapsed().as_secs_f64(), jobs))).map(|_| ())
}

/// The training and test sets of a sweep's data folder.
struct Data {
    train: Dataset,
    test: Dataset,
}

impl Data {
    fn load(dir: &Path) -> Result<Data> {
        let train = load_split(dir, Split::Train, None)?;
        let test = load_split(dir, Split::Test, Some(train.classes))?;
        Ok(Data { train, test })
    }
}

/// What makes two cells' scenarios the same: their features and the way tasks are cut.
#[derive(Debug, PartialEq)]
struct ScenarioKey {
    #[cfg(feature = "onnx")]
    model: Option<String>,
    #[cfg(feature = "onnx")]
    backbone: Option<PathBuf>,
    scenario: ScenarioArg,
    setting: SettingArg,
    seed: u64,
}

impl ScenarioKey {
    fn of(shape: &Shape) -> ScenarioKey {
        ScenarioKey {
            #[cfg(feature = "onnx")]
            model: shape.model.clone(),
            #[cfg(feature = "onnx")]
            backbone: shape.backbone.clone(),
            scenario: shape.scenario,
            setting: shape.setting,
            seed: shape.seed,
        }
    }
}

/// A scenario built for a set of cells that share it, and what their board's flash
/// holds of the backbone.
struct Prepared {
    scenario: Scenario,
    backbone: Option<String>,
    /// The device backbone image's bytes (or why the board cannot run it), made at the
    /// first cell on an MCU board: the cells that share the scenario share its backbone.
    device_image: std::sync::OnceLock<std::result::Result<std::result::Result<usize, String>, String>>,
}

impl Prepared {
    fn new(settings: &Settings, cell: &Cell, data: &Data) -> Result<Prepared> {
        let shape = settings.shape(cell)?;
        #[allow(unused_mut)]
        let mut spec = shape.spec(None, None);
        let (scenario, backbone) = match shape.source()? {
            Source::Protocol => (Scenario::build(spec, data.train.clone(), data.test.clone())?, None),
            #[cfg(feature = "onnx")]
            Source::Backbone(b) => {
                spec.features = edgecl::host::scenario::Features::Pixels;
                let s = Scenario::build(spec, data.train.clone(), data.test.clone())?.with_backbone(&b)?;
                (s, Some(b.name().to_string()))
            }
        };
        Ok(Prepared {
            scenario,
            backbone,
            device_image: std::sync::OnceLock::new(),
        })
    }

    /// Runs `cell` (whose scenario this is): its report, `{"fits": false, ...}` when its
    /// learner does not fit the budget, or an error.
    fn run(&self, settings: &Settings, cell: &Cell) -> Result<Value> {
        let shape = settings.shape(cell)?;
        let board = shape.board()?;
        let (strategy, generator) = parse_label(&cell.strategy)?;
        let (default_iters, ..) = shape.training();
        let length = Length::Iters(settings.iters.unwrap_or(default_iters));
        let mut opts = shape.options(length, false, settings.data.display().to_string())?;
        opts.strategy = strategy;
        if let Some(g) = generator {
            opts.replay.generator = g;
        }
        opts.backbone = self.backbone.clone();
        let scenario = &self.scenario;
        let (inputs, outputs, tasks) = (scenario.input_width(), scenario.outputs(), scenario.tasks.len());
        fit_generator(&mut opts, inputs, outputs, tasks);
        if let Err(e) = simulate::setup(&opts, inputs, outputs, tasks, scenario.spec.setting) {
            let over = e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<edgecl::Error>(),
                    Some(edgecl::Error::OverBudget { .. })
                )
            });
            return match over {
                true => Ok(serde_json::json!({ "fits": false, "error": format!("{e:#}") })),
                false => Err(e),
            };
        }
        let started = std::time::Instant::now();
        let report = simulate::run(&opts, scenario)?;
        let seconds = started.elapsed().as_secs_f64();
        // Bytes of the backbone image an MCU board's flash holds (0 on Linux boards), or
        // why the board cannot run it; none without a board.
        let flash_backbone = match (cell.board.is_some(), board.kind.as_str()) {
            (false, _) => None,
            (true, "mcu") => Some(
                self.device_image
                    .get_or_init(|| device_backbone(&shape).map_err(|e| format!("{e:#}")))
                    .clone()
                    .map_err(anyhow::Error::msg)?,
            ),
            (true, _) => Some(Ok(0)),
        };
        // The firmware runs fine-tuning, SI and Gaussian replay (its config's strategies).
        let on_firmware = matches!(
            (strategy, opts.replay.generator),
            (Strategy::Naive | Strategy::Penalty(PenaltyKind::Si), _)
                | (Strategy::Replay(None), GeneratorChoice::Gaussian)
        );
        let flash = flash_backbone.as_ref().map(|b| match b {
            Ok(_) if board.kind == "mcu" && !on_firmware => serde_json::json!({
                "fits": null,
                "error": format!("the firmware does not run {}", cell.strategy),
            }),
            Ok(_) if board.kind == "mcu" && board.firmware_base_bytes.is_none() => serde_json::json!({
                "fits": null,
                "error": format!("{} has no measured firmware", board.name),
            }),
            Ok(bytes) => serde_json::to_value(flash_need(
                &board,
                report.learner.parameters,
                report.arena_bytes,
                *bytes,
            ))
            .unwrap_or_default(),
            Err(why) => serde_json::json!({ "fits": false, "error": why }),
        });
        Ok(serde_json::json!({ "fits": true, "seconds": seconds, "flash": flash, "report": report }))
    }
}

/// The device backbone image of a shape's backbone for an MCU board: its bytes, or why
/// the board cannot run it.
fn device_backbone(shape: &Shape) -> Result<std::result::Result<usize, String>> {
    #[cfg(feature = "onnx")]
    {
        let Some((bytes, name)) = shape.onnx_bytes()? else {
            return Ok(Err("pooled pixels have no device backbone".into()));
        };
        let image = edgecl::host::onnx::BackboneModel::from_onnx(&bytes, &name)
            .and_then(|m| edgecl::host::device::backbone_image_bytes(&m));
        Ok(image.map_err(|e| {
            format!(
                "{name} is not a device backbone ({e:#}); MCU firmware runs convolutional and dense int8 backbones \
                 such as models/fashion-cnn8"
            )
        }))
    }
    #[cfg(not(feature = "onnx"))]
    {
        let _ = shape;
        Ok(Err("built without ONNX".into()))
    }
}

/// `edgecl sweep-cell DIR INDEX`: runs one cell of the sweep in DIR (unless it has its
/// report) and writes its report; exits non-zero when the run failed.
pub fn sweep_cell(args: SweepCellArgs) -> Result<bool> {
    let dir = &args.dir;
    let cells = read_cells(dir)?;
    let Some(cell) = cells.get(args.index) else {
        bail!(
            "cell {} of {}: {} lists {} cells (0 to {})",
            args.index,
            dir.display(),
            CELLS_FILE,
            cells.len(),
            cells.len().saturating_sub(1)
        );
    };
    let name = cell.file_name();
    let current = collect(dir, std::slice::from_ref(cell))?.pop().and_then(|(_, v)| v);
    if let Some(status) = args.exit_status {
        match outcome(current.as_ref()) {
            Outcome::Done => println!(
                "cell {} ({name}) has its report; exit status {status} not recorded",
                args.index
            ),
            Outcome::Failed(e) => println!("cell {} ({name}) already failed: {e}", args.index),
            Outcome::Missing => {
                let why = format!(
                    "the cell's process ended without a report: {}",
                    slurm::exit_reason(status)
                );
                let record = serde_json::json!({ "error": why, "exit_status": status });
                write_cell(dir, cell, &record, "exit")?;
                println!("cell {} ({name}) failed: {why}", args.index);
            }
        }
        return Ok(true);
    }
    if let Outcome::Done = outcome(current.as_ref()) {
        println!("cell {} ({name}) has its report: not run again", args.index);
        return Ok(true);
    }
    let settings = Settings::read(dir)?;
    let result = Data::load(&settings.data)
        .and_then(|data| Prepared::new(&settings, cell, &data))
        .and_then(|p| p.run(&settings, cell));
    let (report, ok) = match result {
        Ok(v) => (v, true),
        Err(e) => (serde_json::json!({ "error": format!("{e:#}") }), false),
    };
    write_cell(dir, cell, &report, "cell")?;
    match outcome(Some(&report)) {
        Outcome::Failed(e) => eprintln!("edgecl: cell {} ({name}) failed: {e}", args.index),
        _ => println!("cell {} ({name}) done", args.index),
    }
    Ok(ok)
}

/// Writes the Slurm scripts for `cells`' indices that have no report (all of them on a
/// first submission) and submits them, then the report job after them; with `dry_run`,
/// prints them instead.
fn submit(dir: &Path, cells: &[Cell], opts: JobOptions, dry_run: bool, verb: &str) -> Result<()> {
    let todo: Vec<usize> = (0..cells.len()).filter(|&i| !sweep::finished(dir, &cells[i])).collect();
    let slurm_dir = dir.join(SLURM_DIR);
    std::fs::create_dir_all(slurm_dir.join("logs")).with_context(|| format!("creating {}", slurm_dir.display()))?;
    std::fs::write(
        slurm_dir.join("options.json"),
        serde_json::to_string_pretty(&opts)? + "\n",
    )
    .with_context(|| format!("writing {}", slurm_dir.join("options.json").display()))?;
    let exe = std::env::current_exe().context("finding this edgecl binary")?;
    let exe = absolute(&exe)?;
    let report_path = slurm_dir.join("report.sbatch");
    std::fs::write(&report_path, slurm::report_script(&exe, dir, &opts)?)
        .with_context(|| format!("writing {}", report_path.display()))?;
    if todo.is_empty() {
        println!("{} cells, all with a report: nothing to submit", cells.len());
        return report(dir, None).map(|_| ());
    }
    let mut scripts = Vec::new();
    if opts.cells_per_task > 1 {
        // One array of tasks, each running a line of cells from its task file.
        let batches = slurm::batches(&todo, opts.cells_per_task);
        let max = slurm::max_array_size().unwrap_or(slurm::DEFAULT_MAX_ARRAY_SIZE);
        if batches.len() > max {
            bail!(
                "{} tasks of {} cells: more than the cluster's MaxArraySize of {max}; raise --cells-per-task",
                batches.len(),
                opts.cells_per_task
            );
        }
        let tasks = slurm_dir.join("tasks.txt");
        let lines: String = batches
            .iter()
            .map(|b| b.iter().map(usize::to_string).collect::<Vec<_>>().join(" ") + "\n")
            .collect();
        std::fs::write(&tasks, lines).with_context(|| format!("writing {}", tasks.display()))?;
        let path = slurm_dir.join("cells.sbatch");
        let script = slurm::batched_script(&exe, dir, &tasks, batches.len(), &opts)?;
        std::fs::write(&path, &script).with_context(|| format!("writing {}", path.display()))?;
        scripts.push((path, script, todo.clone()));
    } else {
        // Arrays whose indices stay below the cluster's MaxArraySize, each with its script.
        let max = slurm::max_array_size().unwrap_or(slurm::DEFAULT_MAX_ARRAY_SIZE);
        for (n, (offset, indices)) in slurm::chunks(&todo, max).iter().enumerate() {
            let name = match n {
                0 => "cells.sbatch".to_string(),
                n => format!("cells-{n}.sbatch"),
            };
            let path = slurm_dir.join(name);
            let script = slurm::cells_script(&exe, dir, indices, *offset, &opts)?;
            std::fs::write(&path, &script).with_context(|| format!("writing {}", path.display()))?;
            let absolute: Vec<usize> = indices.iter().map(|i| i + offset).collect();
            scripts.push((path, script, absolute));
        }
    }
    if dry_run {
        for (path, script, _) in &scripts {
            println!("# {}\n{script}", path.display());
        }
        println!(
            "# {}\n{}",
            report_path.display(),
            std::fs::read_to_string(&report_path)?
        );
        println!("# to submit:");
        for (n, (path, ..)) in scripts.iter().enumerate() {
            println!(
                "id{n}=$(sbatch --parsable {})",
                slurm::shell_quote(&path.display().to_string())
            );
        }
        let ids: Vec<String> = (0..scripts.len()).map(|n| format!("$id{n}")).collect();
        println!(
            "sbatch --dependency=afterany:{} {}",
            ids.join(":"),
            slurm::shell_quote(&report_path.display().to_string())
        );
        return Ok(());
    }
    let mut arrays = Vec::new();
    for (path, _, absolute) in &scripts {
        let id = slurm::submit(path, &[])?;
        slurm::record_job(dir, &format!("cells {id} {}", slurm::array_list(absolute)))?;
        arrays.push(id);
    }
    let report_job = slurm::submit(&report_path, &arrays)?;
    slurm::record_job(dir, &format!("report {report_job}"))?;
    println!(
        "{verb} job array {}: {} of {} cells ({}); report job {report_job} after it",
        arrays.join(", "),
        todo.len(),
        cells.len(),
        slurm::array_list(&todo)
    );
    println!("{}", arrays.join(" "));
    Ok(())
}

/// `edgecl sweep --resubmit DIR`.
fn resubmit(dir: &Path, args: &SlurmArgs) -> Result<()> {
    let dir = absolute(dir)?;
    Settings::read(&dir)?;
    let cells = read_cells(&dir)?;
    no_jobs_running(&dir, "resubmitting")?;
    let opts = if args.given() {
        args.options()
    } else {
        let path = dir.join(SLURM_DIR).join("options.json");
        match std::fs::read_to_string(&path) {
            Ok(t) => serde_json::from_str(&t).with_context(|| format!("{} is not job options", path.display()))?,
            Err(_) => args.options(),
        }
    };
    let results = collect(&dir, &cells)?;
    let (failed, missing) = sweep::failed_and_missing(&results);
    println!("{} cells: {failed} failed, {missing} missing", cells.len());
    submit(&dir, &cells, opts, args.dry_run, "resubmitted")
}

/// Collects the cells of the sweep in `dir`, writes `sweep.json`, the plots and the page,
/// and prints the summary; `local` is this run's seconds and worker threads when the
/// cells ran here. Returns the summary rows.
fn report(dir: &Path, local: Option<(f64, usize)>) -> Result<Vec<SummaryRow>> {
    let started = std::time::Instant::now();
    let settings = Settings::read(dir)?;
    let cells = read_cells(dir)?;
    let results = collect(dir, &cells)?;
    let table = summary(&results);
    let command =
        std::fs::read_to_string(dir.join(COMMAND_FILE)).map_or_else(|_| String::new(), |c| c.trim().to_string());
    let mut groups: Vec<Group> = Vec::new();
    let mut boards: Vec<Option<String>> = Vec::new();
    let mut budgets: Vec<usize> = Vec::new();
    let mut strategies: Vec<String> = Vec::new();
    let (mut scenarios, mut settings_list) = (Vec::<String>::new(), Vec::<String>::new());
    let mut seeds = 0;
    for c in &cells {
        let push = |v: &mut Vec<String>, s: &str| {
            if !v.iter().any(|x| x == s) {
                v.push(s.to_string());
            }
        };
        if !groups.contains(&c.group()) {
            groups.push(c.group());
        }
        if !boards.contains(&c.board) {
            boards.push(c.board.clone());
        }
        if !budgets.contains(&c.budget) {
            budgets.push(c.budget);
        }
        push(&mut strategies, &c.strategy);
        push(&mut scenarios, &c.scenario);
        push(&mut settings_list, &c.setting);
        seeds = seeds.max(c.seed);
    }
    budgets.sort_unstable();
    let first = cells.first().map(|c| settings.shape(c)).transpose()?;
    let board = match &first {
        Some(s) => s.board()?,
        None => Board::load(settings.shape.protocol().default_board())?,
    };
    let backbone: Option<String> = match &first {
        #[cfg(feature = "onnx")]
        Some(s) => s.onnx_bytes()?.map(|(_, name)| name),
        _ => None,
    };
    let (failed_n, missing_n) = sweep::failed_and_missing(&results);
    let failed: Vec<Value> = results
        .iter()
        .enumerate()
        .filter_map(|(i, (c, v))| match outcome(v.as_ref()) {
            Outcome::Failed(e) => Some(serde_json::json!({
                "index": i, "file": c.file_name(), "error": e,
                "exit_status": v.as_ref().and_then(|v| v.get("exit_status")).cloned(),
            })),
            _ => None,
        })
        .collect();
    let (seconds, jobs, runner) = match local {
        Some((s, j)) => (s, Some(j), "local"),
        None => (started.elapsed().as_secs_f64(), None, "report"),
    };
    let json = serde_json::json!({
        "command": command,
        "edgecl": env!("CARGO_PKG_VERSION"),
        "data": settings.data.display().to_string(),
        "backbone": backbone,
        "board": board.name,
        "board_kind": board.kind,
        "boards": boards,
        "scenarios": scenarios,
        "settings": settings_list,
        "budgets": budgets,
        "strategies": strategies,
        "seeds": seeds,
        "seconds": seconds,
        "cell_seconds": results
            .iter()
            .filter_map(|(_, v)| v.as_ref()?.get("seconds")?.as_f64())
            .fold(0.0, |a, b| a + b),
        "jobs": jobs,
        "runner": runner,
        "cells_total": cells.len(),
        "cells_failed": failed_n,
        "cells_missing": missing_n,
        "failed": failed,
        "summary": table.iter().map(SummaryRow::to_json).collect::<Vec<_>>(),
        "cells": results.iter().map(|(c, v)| serde_json::json!({
            "board": c.board,
            "scenario": c.scenario,
            "setting": c.setting,
            "strategy": c.strategy,
            "budget": c.budget,
            "seed": c.seed,
            "result": v,
        })).collect::<Vec<_>>(),
    });
    let path = dir.join("sweep.json");
    write_atomic(&path, &(serde_json::to_string_pretty(&json)? + "\n"))?;
    for g in &groups {
        if groups.len() > 1 {
            println!("\n{}", g.title());
        }
        let budgets: Vec<usize> = {
            let mut b: Vec<usize> = cells.iter().filter(|c| &c.group() == g).map(|c| c.budget).collect();
            b.sort_unstable();
            b.dedup();
            b
        };
        print!("{:<16}", "strategy");
        for b in &budgets {
            print!("{:>18}", format!("{b} B"));
        }
        println!();
        for s in &strategies {
            print!("{s:<16}");
            for b in &budgets {
                let row = table
                    .iter()
                    .find(|r| &r.strategy == s && r.budget == *b && &r.group == g);
                let text = row.map_or_else(|| "no result".to_string(), SummaryRow::text);
                print!("{text:>18}");
            }
            println!();
        }
    }
    let with_result = cells.len() - failed_n - missing_n;
    println!(
        "{} cells: {with_result} with a result, {failed_n} failed, {missing_n} missing",
        cells.len()
    );
    for f in &failed {
        println!(
            "failed: {} ({})",
            f["file"].as_str().unwrap_or(""),
            f["error"].as_str().unwrap_or("")
        );
    }
    println!("{}", path.display());
    let html = edgecl::host::sweep_report::write(dir)?;
    println!("{}", html.display());
    Ok(table)
}

//! `edgecl sweep` and `edgecl sweep-cell`: a grid of simulator runs (boards x scenarios x
//! settings x strategies x budgets x seeds), run on this machine's cores or sent to a
//! Slurm cluster as a job array, and the report drawn from whatever cells exist.
//!
//! A sweep's folder holds everything a cell needs: `settings.txt` (the run's settings
//! as JSON, everything but the grid), `cells.txt` (one line per cell, in a stable order),
//! `cells/` (one report per cell, written atomically), and for Slurm `slurm/` (the
//! scripts, their logs, the job ids).

//!
//! Here: the arguments and `sweep` itself; [`grid`] checks the grid asked for,
//! [`settings`] keeps what the cells share, [`cell`] runs cells (and `sweep-cell`),
//! [`slurm`] submits them as job arrays and [`report`] draws the report.

mod cell;
mod grid;
mod report;
mod settings;
mod slurm;

pub use cell::sweep_cell;

use crate::cli::shape::Shape;
use anyhow::{bail, Context, Result};
use cell::{Data, Prepared, ScenarioKey};
use clap::Args;
use edgecl::host::board::parse_bytes;
use edgecl::host::scenario::{Kind, Setting};
use edgecl::host::slurm::JobOptions;
use edgecl::host::sweep::{self, run_cells, Cell, CELLS_FILE};
use report::report;
use settings::Settings;
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
    scenarios: Option<Vec<Kind>>,
    /// Settings (instead of --setting).
    #[arg(long, value_enum, value_delimiter = ',')]
    settings: Option<Vec<Setting>>,
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

/// `p` as an absolute path (canonical when it exists).
fn absolute(p: &Path) -> Result<PathBuf> {
    match p.canonicalize() {
        Ok(c) => Ok(c),
        Err(_) => std::path::absolute(p).with_context(|| format!("resolving {}", p.display())),
    }
}

/// The command line as a shell takes it back (quoted where needed).
fn command_line() -> String {
    std::env::args_os()
        .map(|a| edgecl::host::slurm::shell_quote(&a.to_string_lossy()))
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
    let ids = edgecl::host::slurm::recorded_jobs(dir)?;
    if ids.is_empty() {
        return Ok(());
    }
    if let Some(held) = edgecl::host::slurm::still_queued(&ids) {
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
        return slurm::resubmit(dir, &args.slurm);
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
    let grid = grid::grid(&args)?;
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
        return slurm::submit(&out, &cells, args.slurm.options(), args.slurm.dry_run, "submitted");
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

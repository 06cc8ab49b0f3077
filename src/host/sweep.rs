//! Budget sweeps: many simulator runs (strategy x budget x seed), each a cell whose report
//! is written to `DIR/cells/` when it finishes, so a sweep killed half-way and started
//! again runs only the cells still missing. Cells run in parallel on worker threads.

use crate::device::signed;
use crate::host::board::Board;
use crate::host::simulate::{self, GeneratorChoice, Options, Protocol, Strategy};
use crate::learner::Plan;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// One run of a sweep: a point of the grid boards x scenarios x settings x strategies x
/// budgets x seeds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cell {
    /// Board profile whose rules the cell runs under (`--board`), or none: the protocol's
    /// default board, without the flash rule.
    pub board: Option<String>,
    /// Scenario, as `--scenario` takes it (`split`, `permuted`, `rotated`).
    pub scenario: String,
    /// Setting, as `--setting` takes it (`task-il`, `domain-il`, `class-il`).
    pub setting: String,
    /// Strategy, as `--strategy` takes it.
    pub strategy: String,
    /// Arena bytes.
    pub budget: usize,
    /// Seed.
    pub seed: u64,
}

/// The axes of a sweep's grid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grid {
    /// Each board (none: the protocol's default board, without its rules) with the budgets
    /// swept on it.
    pub boards: Vec<(Option<String>, Vec<usize>)>,
    /// Scenarios.
    pub scenarios: Vec<String>,
    /// Settings.
    pub settings: Vec<String>,
    /// Strategy labels.
    pub strategies: Vec<String>,
    /// Seeds `1..=seeds`.
    pub seeds: u64,
}

impl Grid {
    /// Every cell, in a stable order: boards outermost, then scenarios, settings,
    /// strategies, budgets and seeds.
    pub fn cells(&self) -> Vec<Cell> {
        let mut cells = Vec::new();
        for (board, budgets) in &self.boards {
            for scenario in &self.scenarios {
                for setting in &self.settings {
                    for strategy in &self.strategies {
                        for &budget in budgets {
                            for seed in 1..=self.seeds {
                                cells.push(Cell {
                                    board: board.clone(),
                                    scenario: scenario.clone(),
                                    setting: setting.clone(),
                                    strategy: strategy.clone(),
                                    budget,
                                    seed,
                                });
                            }
                        }
                    }
                }
            }
        }
        cells
    }
}

impl Cell {
    /// The cell's report file name: `[BOARD-]SCENARIO-SETTING-STRATEGY-BUDGET-SEED.json`.
    pub fn file_name(&self) -> String {
        format!(
            "{}-{}-{}-{}.json",
            self.group().key(),
            file_safe(&self.strategy),
            self.budget,
            self.seed
        )
    }

    /// The group the report puts the cell in: board, scenario and setting.
    pub fn group(&self) -> Group {
        Group {
            board: self.board.clone(),
            scenario: self.scenario.clone(),
            setting: self.setting.clone(),
        }
    }
}

/// Cells that share a board, scenario and setting: one table and one set of plots in the
/// report.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Group {
    /// Board, when the sweep names one.
    pub board: Option<String>,
    /// Scenario.
    pub scenario: String,
    /// Setting.
    pub setting: String,
}

impl Group {
    /// `board, scenario, setting` for headings.
    pub fn title(&self) -> String {
        match &self.board {
            Some(b) => format!("{b}, {} {}", self.scenario, self.setting),
            None => format!("{} {}", self.scenario, self.setting),
        }
    }

    /// A file-name-safe key (`[board-]scenario-setting`) for plot names and page anchors.
    pub fn key(&self) -> String {
        let board = self.board.as_deref().map_or_else(String::new, |b| file_safe(b) + "-");
        format!("{board}{}-{}", file_safe(&self.scenario), file_safe(&self.setting))
    }
}

/// The file listing a sweep's cells, one per line, in the order [`Grid::cells`] gives:
/// `sweep-cell DIR INDEX` runs line INDEX.
pub const CELLS_FILE: &str = "cells.txt";

/// The header line of [`CELLS_FILE`].
const CELLS_HEADER: &str = "# index\tboard\tscenario\tsetting\tstrategy\tbudget\tseed\tfile";

/// [`CELLS_FILE`]'s text for `cells`: a header, then one tab-separated line per cell
/// (`-` for no board).
pub fn cells_text(cells: &[Cell]) -> String {
    let mut t = String::from(CELLS_HEADER);
    t.push('\n');
    for (i, c) in cells.iter().enumerate() {
        t += &format!(
            "{i}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            c.board.as_deref().unwrap_or("-"),
            c.scenario,
            c.setting,
            c.strategy,
            c.budget,
            c.seed,
            c.file_name()
        );
    }
    t
}

/// The cells of a [`CELLS_FILE`]'s text, checked line by line (its index, its fields, the
/// file name they give).
pub fn parse_cells(text: &str) -> Result<Vec<Cell>> {
    let mut cells = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        let bad = |why: &str| anyhow::anyhow!("{CELLS_FILE} line {}: {why}: `{line}`", n + 1);
        let [index, board, scenario, setting, strategy, budget, seed, file] = f[..] else {
            return Err(bad("want 8 tab-separated fields"));
        };
        if index.parse::<usize>().ok() != Some(cells.len()) {
            return Err(bad(&format!("want index {}", cells.len())));
        }
        let cell = Cell {
            board: (board != "-").then(|| board.to_string()),
            scenario: scenario.into(),
            setting: setting.into(),
            strategy: strategy.into(),
            budget: budget.parse().map_err(|_| bad("the budget is not a number"))?,
            seed: seed.parse().map_err(|_| bad("the seed is not a number"))?,
        };
        if cell.file_name() != file {
            return Err(bad(&format!("its fields name the file {}", cell.file_name())));
        }
        cells.push(cell);
    }
    Ok(cells)
}

/// The cells listed in `out`'s [`CELLS_FILE`].
pub fn read_cells(out: &Path) -> Result<Vec<Cell>> {
    let path = out.join(CELLS_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (written by `edgecl sweep --out {}`)",
            path.display(),
            out.display()
        )
    })?;
    parse_cells(&text).with_context(|| format!("in {}", path.display()))
}

/// Where a cell stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A whole report with a result (a run, or a learner over budget).
    Done,
    /// The run failed: its error, as its report file says.
    Failed(String),
    /// No report yet (or one cut short outside the sweep's own atomic writes).
    Missing,
}

/// The outcome of a cell whose report file holds `value` (none: no file, or not JSON).
pub fn outcome(value: Option<&Value>) -> Outcome {
    match value {
        Some(v) if v.get("fits").is_some() => Outcome::Done,
        Some(v) => Outcome::Failed(
            v.get("error")
                .and_then(Value::as_str)
                .unwrap_or("a report without a result")
                .to_string(),
        ),
        None => Outcome::Missing,
    }
}

/// Whether `cell` has a report in `out/cells/` from an earlier run: a whole JSON file
/// with a result (a run, or a learner over budget). A file that does not parse (cut
/// short outside the sweep's own atomic writes) and a failed run are run again.
pub fn finished(out: &Path, cell: &Cell) -> bool {
    let Ok(text) = std::fs::read_to_string(cells_dir(out).join(cell.file_name())) else {
        return false;
    };
    outcome(serde_json::from_str::<Value>(&text).ok().as_ref()) == Outcome::Done
}

/// Of `results`, the cells that failed and those still missing.
pub fn failed_and_missing(results: &[(Cell, Option<Value>)]) -> (usize, usize) {
    results.iter().fold((0, 0), |(f, m), (_, v)| match outcome(v.as_ref()) {
        Outcome::Failed(_) => (f + 1, m),
        Outcome::Missing => (f, m + 1),
        Outcome::Done => (f, m),
    })
}

/// Writes `report` as `cell`'s file in `out/cells/`: to a temporary name of its own
/// (`tag` tells writers apart), then renamed, so a reader never sees half a report.
pub fn write_cell(out: &Path, cell: &Cell, report: &Value, tag: &str) -> Result<()> {
    let dir = cells_dir(out);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(cell.file_name());
    let tmp = path.with_extension(format!("json.{}.{tag}.tmp", std::process::id()));
    let written = serde_json::to_string_pretty(report)
        .map_err(anyhow::Error::from)
        .and_then(|text| std::fs::write(&tmp, text + "\n").map_err(anyhow::Error::from))
        .and_then(|()| std::fs::rename(&tmp, &path).map_err(anyhow::Error::from));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.with_context(|| format!("writing {}", path.display()))
}

/// `label` with every character but ASCII letters, digits and `-` as `_`, for file names.
pub fn file_safe(label: &str) -> String {
    label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
        .collect()
}

/// Where the cells' reports go.
pub fn cells_dir(out: &Path) -> PathBuf {
    out.join("cells")
}

/// How a sweep went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Cells run now.
    pub ran: usize,
    /// Cells found finished from an earlier run and not run again.
    pub skipped: usize,
}

/// Runs every cell of `cells` that has no report in `out/cells/` yet, on `jobs` threads,
/// at most `limit` of them (for stopping a sweep early). `run` gives a cell's report; an
/// error is recorded as the cell's report (`{"error": ...}`) so the sweep goes on. Each
/// report is written to a temporary file and renamed, so a killed sweep leaves whole
/// reports only.
pub fn run_cells<F>(
    out: &Path,
    cells: &[Cell],
    jobs: usize,
    limit: Option<usize>,
    progress: bool,
    run: F,
) -> Result<Progress>
where
    F: Fn(&Cell) -> Result<Value> + Sync,
{
    let dir = cells_dir(out);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let todo: Vec<&Cell> = cells.iter().filter(|c| !finished(out, c)).collect();
    let skipped = cells.len() - todo.len();
    let todo = &todo[..todo.len().min(limit.unwrap_or(usize::MAX))];
    let bar = if progress {
        let b = ProgressBar::new(cells.len() as u64);
        b.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} cells, {elapsed} elapsed, eta {eta} {msg}")
                .expect("a valid template"),
        );
        b.set_position(skipped as u64);
        b
    } else {
        ProgressBar::hidden()
    };
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(cell) = todo.get(i) else { break };
                let report = run(cell).unwrap_or_else(|e| serde_json::json!({ "error": format!("{e:#}") }));
                if let Err(e) = write_cell(out, cell, &report, &i.to_string()) {
                    *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    break;
                }
                bar.inc(1);
                bar.set_message(format!("{} {} B seed {}", cell.strategy, cell.budget, cell.seed));
            });
        }
    });
    bar.finish_and_clear();
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(Progress {
        ran: todo.len(),
        skipped,
    })
}

/// The reports of `cells` found in `out/cells/` (None for a missing one, or one that is
/// not JSON: [`run_cells`] runs those again).
pub fn collect(out: &Path, cells: &[Cell]) -> Result<Vec<(Cell, Option<Value>)>> {
    let dir = cells_dir(out);
    cells
        .iter()
        .map(|c| {
            let path = dir.join(c.file_name());
            let value = match std::fs::read_to_string(&path) {
                Ok(text) => serde_json::from_str(&text).ok(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            };
            Ok((c.clone(), value))
        })
        .collect()
}

/// The average accuracy of a cell's run, when it ran.
pub fn accuracy(result: &Value) -> Option<f64> {
    result.get("report")?.get("avg_accuracy")?.as_f64()
}

/// Whether a cell's learner did not fit its budget.
pub fn did_not_fit(result: &Value) -> bool {
    result.get("fits").and_then(Value::as_bool) == Some(false)
}

/// One strategy at one budget over its seeds, in one group (board, scenario, setting).
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryRow {
    /// Board, scenario and setting.
    pub group: Group,
    /// Strategy label.
    pub strategy: String,
    /// Arena bytes.
    pub budget: usize,
    /// Mean and standard error of the average accuracy over the cells that ran.
    pub accuracy: Option<(f64, f64)>,
    /// Smallest and largest average accuracy over the seeds that ran.
    pub range: Option<(f64, f64)>,
    /// Cells with a result (the seeds the mean is over).
    pub ran: usize,
    /// Cells whose learner does not fit the budget.
    pub unfit: usize,
    /// Cells without a result otherwise: failed, or not run yet.
    pub missing: usize,
    /// Of [`SummaryRow::missing`], the cells whose run failed (an error, a process that
    /// exited non-zero, a job cancelled or preempted).
    pub failed: usize,
}

impl SummaryRow {
    /// The row as `sweep.json`'s `summary` holds it.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "board": self.group.board,
            "scenario": self.group.scenario,
            "setting": self.group.setting,
            "strategy": self.strategy,
            "budget": self.budget,
            "avg_accuracy_mean": self.accuracy.map(|(m, _)| m),
            "avg_accuracy_se": self.accuracy.map(|(_, e)| e),
            "avg_accuracy_min": self.range.map(|(lo, _)| lo),
            "avg_accuracy_max": self.range.map(|(_, hi)| hi),
            "cells_with_result": self.ran,
            "cells_over_budget": self.unfit,
            "cells_without_result": self.missing,
            "cells_failed": self.failed,
            "cells_not_run": self.missing - self.failed,
        })
    }

    /// A row read back from [`SummaryRow::to_json`]'s form (absent numbers as none or 0).
    pub fn from_json(v: &Value) -> SummaryRow {
        let f = |k: &str| v.get(k).and_then(Value::as_f64);
        let n = |k: &str| v.get(k).and_then(Value::as_u64).map_or(0, |n| n as usize);
        let t = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        SummaryRow {
            group: Group {
                board: t("board"),
                scenario: t("scenario").unwrap_or_default(),
                setting: t("setting").unwrap_or_default(),
            },
            strategy: t("strategy").unwrap_or_else(|| "?".into()),
            budget: n("budget"),
            accuracy: f("avg_accuracy_mean").map(|m| (m, f("avg_accuracy_se").unwrap_or(0.0))),
            range: f("avg_accuracy_min").zip(f("avg_accuracy_max")),
            ran: n("cells_with_result"),
            unfit: n("cells_over_budget"),
            missing: n("cells_without_result"),
            failed: n("cells_failed").min(n("cells_without_result")),
        }
    }

    /// The row's cell of a table: `mean ± se` (`mean (n=1)` for one seed), the cells
    /// failed and still missing, or why there is no figure.
    pub fn text(&self) -> String {
        let mut notes = Vec::new();
        if self.failed > 0 {
            notes.push(format!("{} failed", self.failed));
        }
        if self.missing > self.failed {
            notes.push(format!("{} missing", self.missing - self.failed));
        }
        let notes = match notes.is_empty() {
            true => String::new(),
            false => format!(" ({})", notes.join(", ")),
        };
        match self.accuracy {
            Some((m, e)) => match self.ran {
                1 => format!("{m:.2} (n=1){notes}"),
                _ => format!("{m:.2} ± {e:.2}{notes}"),
            },
            None if self.unfit > 0 => "does not fit".to_string() + &notes,
            None if self.failed > 0 => notes
                .trim_start()
                .trim_start_matches('(')
                .trim_end_matches(')')
                .to_string(),
            None => "no result".to_string() + &notes,
        }
    }
}

/// Mean, standard error and range of the average accuracy of each strategy at each
/// budget in each group, over the cells that ran (the others are left out and counted).
pub fn summary(results: &[(Cell, Option<Value>)]) -> Vec<SummaryRow> {
    let mut keys: Vec<(Group, String, usize)> = Vec::new();
    for (c, _) in results {
        let key = (c.group(), c.strategy.clone(), c.budget);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys.into_iter()
        .map(|(g, s, b)| {
            let cells: Vec<Option<&Value>> = results
                .iter()
                .filter(|(c, _)| c.strategy == s && c.budget == b && c.group() == g)
                .map(|(_, v)| v.as_ref())
                .collect();
            // Each cell counts once: a result, over budget, or neither.
            let values: Vec<f64> = cells.iter().filter_map(|v| accuracy((*v)?)).collect();
            let unfit = cells
                .iter()
                .filter(|v| v.is_some_and(|v| did_not_fit(v) && accuracy(v).is_none()))
                .count();
            let failed = cells
                .iter()
                .filter(|v| matches!(outcome(**v), Outcome::Failed(_)))
                .count();
            let stats = (!values.is_empty()).then(|| {
                let n = values.len() as f64;
                let mean = values.iter().sum::<f64>() / n;
                let var = if values.len() > 1 {
                    values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
                } else {
                    0.0
                };
                (mean, (var / n).sqrt())
            });
            let range = (!values.is_empty()).then(|| {
                let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                (lo, hi)
            });
            SummaryRow {
                group: g,
                strategy: s,
                budget: b,
                accuracy: stats,
                range,
                ran: values.len(),
                unfit,
                missing: cells.len() - values.len() - unfit,
                failed,
            }
        })
        .collect()
}

/// A sweep's strategy label: a `--strategy` value, and for one that replays an optional
/// generator after a colon (`replay:buffer`, `si+replay:vae`; the Gaussian when none).
pub fn parse_label(label: &str) -> Result<(Strategy, Option<GeneratorChoice>)> {
    let (name, generator) = match label.split_once(':') {
        Some((n, g)) => (n, Some(g)),
        None => (label, None),
    };
    let strategy = Strategy::parse(name)?;
    let generator = match generator {
        None => None,
        Some(_) if !strategy.replays() => {
            bail!("`{label}`: a generator (after the colon) goes with a strategy that replays")
        }
        Some("gaussian") => Some(GeneratorChoice::Gaussian),
        Some("buffer") => Some(GeneratorChoice::Buffer),
        Some("vae") => Some(GeneratorChoice::Vae),
        Some(g) => bail!("`{label}`: unknown generator `{g}` (gaussian, buffer or vae)"),
    };
    Ok((strategy, generator))
}

/// Narrowest hidden layer the fitting rule leaves the edge head beside a generator.
pub const HEAD_FLOOR: usize = 8;
/// Highest Gaussian rank the fitting rule tries.
pub const MAX_RANK: usize = 16;
/// VAE hidden widths the fitting rule tries, widest first.
pub const VAE_WIDTHS: [usize; 6] = [256, 128, 64, 32, 16, 8];

/// The sweep's fitting rule for a strategy with a generator, which shares the budget
/// with the head (every other part of a plan follows from the head's width, which
/// [`simulate::learner_config`] makes the widest that fits).
///
/// The generator takes the largest size whose plan still leaves the head [`HEAD_FLOOR`]
/// hidden units: the Gaussian's rank from [`MAX_RANK`] down to 0 (the buffer holds the
/// rows that fit the Gaussian's bytes at that rank), or the VAE's hidden width from
/// [`VAE_WIDTHS`]. When no size leaves the floor, the smallest is taken with the widest
/// head that fits (which may not fit at all). A head fixed by `--hidden` is kept and the
/// largest generator that fits beside it is taken. Measured on Split-MNIST class-IL, 64 KiB:
/// the rank that starves the head to 2 units (rank 8) loses 25 points against rank 2
/// (8 units); see the README.
pub fn fit_generator(opts: &mut Options, inputs: usize, outputs: usize, tasks: usize) {
    if !opts.strategy.replays() {
        return;
    }
    let head_floor = if opts.hidden.is_some() { 0 } else { HEAD_FLOOR };
    let leaves_floor = |o: &Options| {
        let Ok(c) = simulate::learner_config(o, inputs, outputs, tasks) else {
            return false;
        };
        let fits = Plan::new(&c).is_ok_and(|p| p.total() <= o.budget);
        let dims = c.dims.as_slice();
        let hidden = if dims.len() > 2 { dims[1] } else { 0 };
        fits && (opts.protocol != Protocol::Edge || hidden >= head_floor)
    };
    match opts.replay.generator {
        GeneratorChoice::Gaussian | GeneratorChoice::Buffer => {
            let rank = (0..=MAX_RANK)
                .rev()
                .find(|&r| {
                    let mut o = opts.clone();
                    o.replay.rank = r;
                    leaves_floor(&o)
                })
                .unwrap_or(0);
            opts.replay.rank = rank;
        }
        GeneratorChoice::Vae => {
            let smallest = VAE_WIDTHS[VAE_WIDTHS.len() - 1];
            let width = VAE_WIDTHS
                .iter()
                .copied()
                .find(|&w| {
                    let mut o = opts.clone();
                    o.replay.vae_hidden = Some(w);
                    leaves_floor(&o)
                })
                .unwrap_or(smallest);
            opts.replay.vae_hidden = Some(width);
        }
    }
}

/// Bytes a learner's checkpoint slots are rounded up to (a NOR sector; the profiles do not
/// give the chips' own sector sizes).
pub const SECTOR: usize = 4096;

/// What a cell needs of a board's flash: the firmware without its data, the signed device
/// image (header, config, the head's f32 weights and biases, the int8 backbone on MCU
/// boards, signature) and two checkpoint slots.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FlashNeed {
    /// The board's firmware less the test stream and the device image, from its profile
    /// (`firmware_base_bytes`, measured by `boards/size-report`); `None` when the board has
    /// no firmware measured, and then not counted.
    pub firmware_bytes: Option<usize>,
    /// The signed device image.
    pub image_bytes: usize,
    /// Two checkpoint slots, each the arena's bytes (no checkpoint is larger: scratch is
    /// not saved) rounded up to [`SECTOR`].
    pub checkpoint_bytes: usize,
    /// The sum.
    pub total_bytes: usize,
    /// The board's flash.
    pub flash_bytes: usize,
    /// `total_bytes <= flash_bytes`.
    pub fits: bool,
}

/// Bytes of config text a device image is planned with (the shipped configs are under 600).
pub const CONFIG_BYTES: usize = 1024;

/// The flash a learner of `head_parameters` weights and biases in an arena of
/// `arena_bytes` needs on `board`, with a device backbone image of `backbone_bytes`
/// (0 on Linux boards, which run the ONNX backbone with tract).
pub fn flash_need(board: &Board, head_parameters: usize, arena_bytes: usize, backbone_bytes: usize) -> FlashNeed {
    let firmware_bytes = board
        .firmware_base_bytes
        .map(|b| usize::try_from(b).unwrap_or(usize::MAX));
    let image_bytes = signed::HEADER + CONFIG_BYTES + 4 * head_parameters + backbone_bytes + signed::SIGNATURE;
    let checkpoint_bytes = 2 * arena_bytes.div_ceil(SECTOR) * SECTOR;
    let total_bytes = firmware_bytes.unwrap_or(0) + image_bytes + checkpoint_bytes;
    let flash_bytes = usize::try_from(board.flash_bytes).unwrap_or(usize::MAX);
    FlashNeed {
        firmware_bytes,
        image_bytes,
        checkpoint_bytes,
        total_bytes,
        flash_bytes,
        fits: total_bytes <= flash_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::simulate::{Length, PackNetOptions, PenaltyOptions, ReplayOptions};
    use crate::{FisherLabels, Kernels, Optimizer, Storage};

    fn edge(strategy: &str, generator: GeneratorChoice, budget: usize) -> Options {
        Options {
            protocol: Protocol::Edge,
            strategy: Strategy::parse(strategy).unwrap(),
            board: Board::load("netduinoplus2").unwrap(),
            budget,
            length: Length::Iters(10),
            batch: 32,
            optimizer: Optimizer::adam(1e-3),
            hidden: None,
            kernels: Kernels::Reference,
            seed: 1,
            progress: false,
            data: String::new(),
            backbone: None,
            penalty: PenaltyOptions {
                lambda: 1.0,
                gamma: 1.0,
                xi: 0.1,
                storage: Storage::F32,
                fisher: FisherLabels::True,
                samples: 10,
            },
            reset_optimizer: false,
            observe: crate::host::simulate::Observe::AfterTask,
            packnet: PackNetOptions {
                prune_ratio: 0.75,
                retrain_iters: 2,
            },
            column_width: None,
            replay: ReplayOptions {
                generator,
                slots: Some(2),
                ..ReplayOptions::default()
            },
        }
    }

    fn head(o: &Options) -> usize {
        simulate::learner_config(o, 256, 10, 5).unwrap().dims.as_slice()[1]
    }

    fn fits(o: &Options) -> bool {
        let c = simulate::learner_config(o, 256, 10, 5).unwrap();
        Plan::new(&c).unwrap().total() <= o.budget
    }

    #[test]
    fn summary_rows_survive_json_and_say_what_they_hold() {
        let row = SummaryRow {
            group: Group {
                board: Some("rp-pico".into()),
                scenario: "split".into(),
                setting: "class-il".into(),
            },
            strategy: "si".into(),
            budget: 4096,
            accuracy: Some((50.0, 1.5)),
            range: Some((48.0, 52.0)),
            ran: 2,
            unfit: 0,
            missing: 3,
            failed: 1,
        };
        assert_eq!(SummaryRow::from_json(&row.to_json()), row);
        assert_eq!(row.text(), "50.00 ± 1.50 (1 failed, 2 missing)");
        let one = SummaryRow {
            ran: 1,
            missing: 0,
            failed: 0,
            ..row.clone()
        };
        assert_eq!(one.text(), "50.00 (n=1)");
        let unfit = SummaryRow {
            accuracy: None,
            range: None,
            ran: 0,
            unfit: 3,
            missing: 0,
            failed: 0,
            ..row.clone()
        };
        assert_eq!(unfit.text(), "does not fit");
        let failed = SummaryRow {
            accuracy: None,
            range: None,
            ran: 0,
            missing: 2,
            failed: 2,
            ..row
        };
        assert_eq!(failed.text(), "2 failed");
    }

    #[test]
    fn labels_name_a_generator_only_for_strategies_that_replay() {
        let (s, g) = parse_label("replay:buffer").unwrap();
        assert!(s.replays() && g == Some(GeneratorChoice::Buffer));
        assert_eq!(parse_label("si+replay").unwrap().1, None);
        assert!(parse_label("si:buffer").unwrap_err().to_string().contains("replays"));
        assert!(parse_label("replay:tape")
            .unwrap_err()
            .to_string()
            .contains("gaussian, buffer or vae"));
        assert!(parse_label("nope").is_err());
    }

    #[test]
    fn the_generator_takes_the_largest_size_that_leaves_the_head_its_floor() {
        for budget in [64 << 10, 96 << 10, 128 << 10] {
            let mut o = edge("replay", GeneratorChoice::Gaussian, budget);
            fit_generator(&mut o, 256, 10, 5);
            assert!(fits(&o) && head(&o) >= HEAD_FLOOR, "{budget}: rank {}", o.replay.rank);
            if o.replay.rank < MAX_RANK {
                // One rank more would starve the head or not fit.
                let mut more = o.clone();
                more.replay.rank += 1;
                assert!(!fits(&more) || head(&more) < HEAD_FLOOR, "{budget}");
            }
        }
        // More budget, no smaller generator.
        let ranks: Vec<usize> = [64 << 10, 96 << 10, 128 << 10]
            .iter()
            .map(|&b| {
                let mut o = edge("replay", GeneratorChoice::Gaussian, b);
                fit_generator(&mut o, 256, 10, 5);
                o.replay.rank
            })
            .collect();
        assert!(
            ranks.windows(2).all(|w| w[0] <= w[1]) && ranks[2] > ranks[0],
            "{ranks:?}"
        );
    }

    #[test]
    fn without_room_for_the_floor_the_smallest_generator_is_taken() {
        let mut o = edge("replay", GeneratorChoice::Gaussian, 32 << 10);
        o.replay.rank = 7;
        fit_generator(&mut o, 256, 10, 5);
        assert_eq!(o.replay.rank, 0);
        let mut v = edge("replay", GeneratorChoice::Vae, 20 << 10);
        fit_generator(&mut v, 256, 10, 5);
        assert_eq!(v.replay.vae_hidden, Some(VAE_WIDTHS[VAE_WIDTHS.len() - 1]));
    }

    #[test]
    fn strategies_without_a_generator_are_left_alone() {
        let mut o = edge("si", GeneratorChoice::Gaussian, 64 << 10);
        let before = o.clone();
        fit_generator(&mut o, 256, 10, 5);
        assert_eq!(o.replay, before.replay);
    }

    #[test]
    fn flash_need_adds_firmware_image_and_two_checkpoint_slots() {
        let board = Board::load("netduinoplus2").unwrap();
        let n = flash_need(&board, 1000, 5000, 100_000);
        let base = board.firmware_base_bytes.unwrap() as usize;
        assert_eq!(n.firmware_bytes, Some(base));
        assert_eq!(
            n.image_bytes,
            signed::HEADER + CONFIG_BYTES + 4000 + 100_000 + signed::SIGNATURE
        );
        assert_eq!(n.checkpoint_bytes, 2 * 8192);
        assert_eq!(n.total_bytes, base + n.image_bytes + n.checkpoint_bytes);
        assert!(n.fits);
        let big = flash_need(&board, 1000, 5000, 1 << 20);
        assert!(!big.fits && big.total_bytes > big.flash_bytes);
        // A board without measured firmware counts the image and checkpoints only.
        let pi = Board::load("raspberry-pi-4").unwrap();
        let p = flash_need(&pi, 1000, 5000, 0);
        assert_eq!(
            (p.firmware_bytes, p.total_bytes),
            (None, p.image_bytes + p.checkpoint_bytes)
        );
    }
}

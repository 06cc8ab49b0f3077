//! A sweep's cells on disk: the `cells.txt` list, each finished cell's report file in
//! `DIR/cells/` and what it says of the cell ([`Outcome`]).

use super::Cell;
use anyhow::{Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The file listing a sweep's cells, one per line, in the order [`Grid::cells`](super::Grid::cells) gives:
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

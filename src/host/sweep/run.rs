//! Running cells on worker threads, skipping those already finished, and collecting every
//! cell's report.

use super::cells::{cells_dir, finished, write_cell};
use super::Cell;
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

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

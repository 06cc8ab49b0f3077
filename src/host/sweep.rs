//! Budget sweeps: many simulator runs (strategy x budget x seed), each a cell whose report
//! is written to `DIR/cells/` when it finishes, so a sweep killed half-way and started
//! again runs only the cells still missing. Cells run in parallel on worker threads.

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// One run of a sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// Strategy, as `--strategy` takes it.
    pub strategy: String,
    /// Arena bytes.
    pub budget: usize,
    /// Seed.
    pub seed: u64,
}

impl Cell {
    /// Every strategy x budget x seed `1..=seeds`, strategies outermost.
    pub fn grid(strategies: &[String], budgets: &[usize], seeds: u64) -> Vec<Cell> {
        let mut cells = Vec::new();
        for s in strategies {
            for &budget in budgets {
                for seed in 1..=seeds {
                    cells.push(Cell {
                        strategy: s.clone(),
                        budget,
                        seed,
                    });
                }
            }
        }
        cells
    }

    /// The cell's report file name.
    pub fn file_name(&self) -> String {
        let s: String = self
            .strategy
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
            .collect();
        format!("{s}-{}-{}.json", self.budget, self.seed)
    }
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
    let todo: Vec<&Cell> = cells.iter().filter(|c| !dir.join(c.file_name()).exists()).collect();
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
                let path = dir.join(cell.file_name());
                let tmp = path.with_extension("json.tmp");
                let written = serde_json::to_string_pretty(&report)
                    .map_err(anyhow::Error::from)
                    .and_then(|text| std::fs::write(&tmp, text + "\n").map_err(anyhow::Error::from))
                    .and_then(|()| std::fs::rename(&tmp, &path).map_err(anyhow::Error::from));
                if let Err(e) = written {
                    *failure.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(e.context(format!("writing {}", path.display())));
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

/// The reports of `cells` found in `out/cells/` (None for a missing one).
pub fn collect(out: &Path, cells: &[Cell]) -> Result<Vec<(Cell, Option<Value>)>> {
    let dir = cells_dir(out);
    cells
        .iter()
        .map(|c| {
            let path = dir.join(c.file_name());
            let value = match std::fs::read_to_string(&path) {
                Ok(text) => {
                    Some(serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?)
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            };
            Ok((c.clone(), value))
        })
        .collect()
}

/// One strategy at one budget over its seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryRow {
    /// Strategy.
    pub strategy: String,
    /// Arena bytes.
    pub budget: usize,
    /// Mean and standard error of the average accuracy over the cells that ran.
    pub accuracy: Option<(f64, f64)>,
    /// Cells without a result (did not fit, failed, or not run yet).
    pub missing: usize,
}

/// Mean and standard error of the average accuracy of each strategy at each budget, from
/// the cells that ran (cells that did not fit or failed are left out and counted).
pub fn summary(results: &[(Cell, Option<Value>)]) -> Vec<SummaryRow> {
    let mut keys: Vec<(String, usize)> = Vec::new();
    for (c, _) in results {
        if !keys.contains(&(c.strategy.clone(), c.budget)) {
            keys.push((c.strategy.clone(), c.budget));
        }
    }
    keys.into_iter()
        .map(|(s, b)| {
            let values: Vec<f64> = results
                .iter()
                .filter(|(c, _)| c.strategy == s && c.budget == b)
                .filter_map(|(_, v)| v.as_ref()?.get("avg_accuracy")?.as_f64())
                .collect();
            let missing = results.iter().filter(|(c, _)| c.strategy == s && c.budget == b).count() - values.len();
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
            SummaryRow {
                strategy: s,
                budget: b,
                accuracy: stats,
                missing,
            }
        })
        .collect()
}

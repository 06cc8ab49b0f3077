//! The summary of a sweep: one [`SummaryRow`] per group of cells that differ only in the
//! seed, and the strategy labels the rows carry.

use super::cells::{outcome, Outcome};
use super::{Cell, Group};
use crate::host::simulate::{GeneratorChoice, Strategy};
use anyhow::{bail, Result};
use serde_json::Value;

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

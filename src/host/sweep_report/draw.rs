//! The report's plots, drawn into `DIR/plots/`: per group, accuracy against budget, and per
//! strategy its heat map, task curves and plan bars.

use super::data::{budgets, cell, components, matrix, rows, strategies};
use crate::host::plots::bytes_label;
use crate::host::plots::{self, Bar, BudgetPoint, BudgetSeries};
use crate::host::sweep::file_safe;
use anyhow::{Context, Result};
use serde_json::Value;
use std::path::Path;

/// One plot of the report.
pub(super) struct Plot {
    /// File stem in `plots/`.
    pub(super) stem: String,
    /// Heading.
    pub(super) title: String,
    /// What it shows.
    pub(super) caption: String,
    /// Data marks it draws (points, cells, bar parts), for the render check.
    pub(super) marks: usize,
}

/// Draws the plots of the sweep in `out/sweep.json` into `out/plots/`.
pub(super) fn draw(out: &Path, sweep: &Value, prefix: &str, heading: &str) -> Result<Vec<Plot>> {
    let dir = out.join("plots");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let rows = rows(sweep);
    let strategies = strategies(sweep);
    let budgets = budgets(sweep);
    let mut plots = Vec::new();

    let series: Vec<BudgetSeries> = strategies
        .iter()
        .map(|s| BudgetSeries {
            strategy: s.clone(),
            points: rows
                .iter()
                .filter(|r| &r.strategy == s)
                .filter_map(|r| {
                    let ((mean, _), (min, max)) = (r.accuracy?, r.range?);
                    Some(BudgetPoint {
                        budget: r.budget,
                        mean,
                        min,
                        max,
                    })
                })
                .collect(),
        })
        .collect();
    let seeds = sweep.get("seeds").and_then(Value::as_u64).unwrap_or(0);
    plots::accuracy_vs_budget(
        &dir.join(format!("{prefix}accuracy-vs-budget")),
        &format!("{heading}Average accuracy against budget"),
        &series,
    )?;
    plots.push(Plot {
        stem: format!("{prefix}accuracy-vs-budget"),
        title: format!("{heading}Average accuracy against budget"),
        caption: format!(
            "Average accuracy over all tasks after the last one, mean over {seeds} seeds; the bars span the seeds' \
             lowest and highest. A strategy has no point at a budget its smallest learner does not fit."
        ),
        marks: series.iter().map(|s| s.points.len()).sum(),
    });

    // Per strategy, its run at the largest budget it fits (seed 1).
    let mut bars = Vec::new();
    for s in &strategies {
        let Some((b, report)) = budgets.iter().rev().find_map(|&b| Some((b, cell(sweep, s, b, 1)?))) else {
            continue;
        };
        let m = matrix(report);
        let stem = format!("{prefix}matrix-{}", file_safe(s));
        let title = format!("{heading}{s} at {}: accuracy matrix (seed 1)", bytes_label(b as f64));
        plots::heat_map(&dir.join(&stem), &title, &m)?;
        plots.push(Plot {
            stem,
            title,
            caption: "Row i: after training task i; column j: accuracy (%) on task j's test samples.".into(),
            marks: m.iter().map(Vec::len).sum(),
        });
        let stem = format!("{prefix}tasks-{}", file_safe(s));
        let title = format!(
            "{heading}{s} at {}: each task's accuracy over time (seed 1)",
            bytes_label(b as f64)
        );
        plots::task_curves(&dir.join(&stem), &title, &m)?;
        plots.push(Plot {
            stem,
            title,
            caption: "Accuracy on each task from the moment it is learned: a falling line is forgetting.".into(),
            marks: m.iter().enumerate().map(|(i, r)| r.len().min(i + 1)).sum(),
        });
        bars.push(Bar {
            label: s.clone(),
            parts: components(report),
        });
    }
    let title = format!("{heading}The plan's bytes per component, at the largest budget each fits");
    plots::plan_bars(&dir.join(format!("{prefix}plan-bytes")), &title, &bars)?;
    plots.push(Plot {
        stem: format!("{prefix}plan-bytes"),
        title,
        caption: "Each strategy's arena at the largest budget it fits, by component (the plan the core carves).".into(),
        marks: bars
            .iter()
            .map(|b| b.parts.iter().filter(|(_, n)| *n > 0).count())
            .sum(),
    });
    Ok(plots)
}

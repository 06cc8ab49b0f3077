//! Reading `sweep.json`: the summary rows, strategies, budgets, each budget's winner, one
//! cell's report, its accuracy matrix and plan, and the groups of cells.

use super::REFERENCES;
use crate::host::sweep::{Group, SummaryRow};
use serde_json::Value;

pub(super) fn rows(sweep: &Value) -> Vec<SummaryRow> {
    list(sweep, "summary").into_iter().map(SummaryRow::from_json).collect()
}

pub(super) fn list<'a>(sweep: &'a Value, key: &str) -> Vec<&'a Value> {
    sweep
        .get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

pub(super) fn strategies(sweep: &Value) -> Vec<String> {
    list(sweep, "strategies")
        .into_iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

pub(super) fn budgets(sweep: &Value) -> Vec<usize> {
    list(sweep, "budgets")
        .into_iter()
        .filter_map(|v| v.as_u64().map(|b| b as usize))
        .collect()
}

/// The strategy with the highest mean accuracy at each budget, leaving out
/// [`REFERENCES`]: `(budget, strategy, mean)`; `None` where none ran.
pub fn winners(sweep: &Value) -> Vec<(usize, Option<(String, f64)>)> {
    let rows = rows(sweep);
    budgets(sweep)
        .into_iter()
        .map(|b| {
            let best = rows
                .iter()
                .filter(|r| r.budget == b && !REFERENCES.contains(&r.strategy.as_str()))
                .filter_map(|r| Some((r.strategy.clone(), r.accuracy?.0)))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            (b, best)
        })
        .collect()
}

/// The report of the cell `strategy`/`budget`/`seed`, when it ran.
pub(super) fn cell<'a>(sweep: &'a Value, strategy: &str, budget: usize, seed: u64) -> Option<&'a Value> {
    list(sweep, "cells").into_iter().find_map(|c| {
        let hit = c.get("strategy")?.as_str()? == strategy
            && c.get("budget")?.as_u64()? as usize == budget
            && c.get("seed")?.as_u64()? == seed;
        hit.then(|| c.get("result")?.get("report")).flatten()
    })
}

pub(super) fn matrix(report: &Value) -> Vec<Vec<f64>> {
    report
        .get("accuracy_matrix")
        .and_then(Value::as_array)
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    r.as_array()
                        .map(|v| v.iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect())
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn components(report: &Value) -> Vec<(String, usize)> {
    report
        .get("components")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| {
                    let name = c.get("name")?.as_str()?;
                    let bytes = c.get("bytes")?.as_u64()? as usize;
                    (!matches!(name, "total" | "alignment")).then(|| (name.to_string(), bytes))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The sweep's groups (board, scenario, setting) in the order its cells come, each with
/// the part of the sweep it holds: its summary rows and cells, its budgets, the sweep's
/// strategies and seeds. A sweep written before groups existed is one group.
pub(super) fn groups(sweep: &Value) -> Vec<(Group, Value)> {
    let group_of = |v: &Value| {
        let t = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        Group {
            board: t("board"),
            scenario: t("scenario").unwrap_or_default(),
            setting: t("setting").unwrap_or_default(),
        }
    };
    let mut groups: Vec<Group> = Vec::new();
    for c in list(sweep, "cells").into_iter().chain(list(sweep, "summary")) {
        let g = group_of(c);
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    groups
        .into_iter()
        .map(|g| {
            let summary: Vec<Value> = list(sweep, "summary")
                .into_iter()
                .filter(|r| group_of(r) == g)
                .cloned()
                .collect();
            let cells: Vec<Value> = list(sweep, "cells")
                .into_iter()
                .filter(|c| group_of(c) == g)
                .cloned()
                .collect();
            let mut budgets: Vec<u64> = summary
                .iter()
                .filter_map(|r| r.get("budget").and_then(Value::as_u64))
                .collect();
            budgets.sort_unstable();
            budgets.dedup();
            let part = serde_json::json!({
                "summary": summary,
                "cells": cells,
                "budgets": budgets,
                "strategies": sweep.get("strategies").cloned().unwrap_or(Value::Null),
                "seeds": sweep.get("seeds").cloned().unwrap_or(Value::Null),
            });
            (g, part)
        })
        .collect()
}

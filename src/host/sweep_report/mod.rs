//! A sweep's report for people: plots (PNG and SVG) in `DIR/plots/` and one
//! self-contained `DIR/report.html` with the tables, the plots (SVG inlined), the exact
//! command, versions, data provenance and the machine. Drawn from `DIR/sweep.json`, so
//! `edgecl sweep` on a finished sweep draws it again without running a cell.

mod data;
mod draw;
mod provenance;

pub use data::winners;

use crate::host::plots::bytes_label;
use crate::host::sweep::{accuracy, did_not_fit, SummaryRow};
use anyhow::{Context, Result};
use data::{budgets, groups, list, rows, strategies};
use draw::draw;
use provenance::{crate_versions, machine, provenance};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Strategies that are not continual learning and never "win" a budget: joint training
/// keeps every task's data (the upper bound).
pub const REFERENCES: [&str; 1] = ["joint"];

/// The page's own account of what the browser laid out, in `body[data-render]`:
/// `tables SHOWN/ALL plots SHOWN/ALL`. A table is shown with a row under its header; a
/// plot when its SVG takes room, has text, and draws at least the data marks (points,
/// cells, bar parts: `circle` and `rect` elements) its figure's `data-marks` says.
const RENDER_CHECK: &str = "window.addEventListener('load', () => {\
  const shown = e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; };\
  const tables = [...document.querySelectorAll('table')];\
  const plots = [...document.querySelectorAll('figure.plot')];\
  const drawn = f => { const s = f.querySelector('svg'); const n = +f.dataset.marks;\
    return s && shown(s) && s.querySelectorAll('text').length > 0 && n > 0\
      && s.querySelectorAll('circle, rect').length >= n; };\
  const t = tables.filter(x => shown(x) && x.rows.length > 1).length;\
  const p = plots.filter(drawn).length;\
  document.body.setAttribute('data-render', `tables ${t}/${tables.length} plots ${p}/${plots.length}`);\
});";

/// HTML text of `s`.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.2}"))
}

/// Writes `out/report.html` (and the plots) for the sweep in `out/sweep.json`.
pub fn write(out: &Path) -> Result<PathBuf> {
    let json_path = out.join("sweep.json");
    let text = std::fs::read_to_string(&json_path).with_context(|| format!("reading {}", json_path.display()))?;
    let sweep: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", json_path.display()))?;
    let strategies = strategies(&sweep);
    let all_budgets = budgets(&sweep);
    let s = |k: &str| sweep.get(k).and_then(Value::as_str).unwrap_or("").to_string();

    let mut h = String::new();
    let w = &mut h;
    let _ = write!(
        w,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>edgecl sweep: {}</title>\n<style>\n\
         body {{ font-family: sans-serif; max-width: 1000px; margin: 2em auto; color: #222; }}\n\
         table {{ border-collapse: collapse; margin: 1em 0; }}\n\
         th, td {{ border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }}\n\
         th:first-child, td:first-child {{ text-align: left; }}\n\
         td.win {{ font-weight: bold; background: #e6f4e6; }}\n\
         figure {{ margin: 1.5em 0; }} figure svg {{ max-width: 100%; height: auto; }}\n\
         pre {{ background: #f4f4f4; padding: 0.6em; overflow-x: auto; white-space: pre-wrap; }}\n\
         </style></head><body>\n<h1>Forgetting under RAM limits</h1>\n",
        esc(&s("command"))
    );
    let names = |k: &str| -> Vec<String> {
        list(&sweep, k)
            .into_iter()
            .map(|v| {
                v.as_str()
                    .map_or_else(|| "(the protocol's default)".to_string(), str::to_string)
            })
            .collect()
    };
    let boards = names("boards");
    let on = match boards.len() {
        0 | 1 => format!("board <b>{}</b>'s profile", esc(&s("board"))),
        _ => format!("the boards <b>{}</b>", esc(&boards.join(", "))),
    };
    let scenarios = names("scenarios");
    let settings = names("settings");
    let grid = match (scenarios.len(), settings.len()) {
        (0, 0) => String::new(),
        _ => format!(
            ", scenario {} and setting {}",
            esc(&scenarios.join(", ")),
            esc(&settings.join(", "))
        ),
    };
    let took = match sweep.get("jobs").and_then(Value::as_u64) {
        Some(jobs) => format!(
            "(on {jobs} worker threads); this invocation of the sweep took {:.0} s (cells finished before are not run again)",
            sweep.get("seconds").and_then(Value::as_f64).unwrap_or(0.0)
        ),
        None => "(as separate jobs: drawn from the cells' files by <code>edgecl sweep --report</code>)".into(),
    };
    let _ = writeln!(
        w,
        "<p>{} strategies, {} budgets and {} seeds with {on}{grid}: {} cells. Their runs took {:.0} s in all {took}.</p>",
        strategies.len(),
        all_budgets.len(),
        sweep.get("seeds").and_then(Value::as_u64).unwrap_or(0),
        list(&sweep, "cells").len(),
        sweep.get("cell_seconds").and_then(Value::as_f64).unwrap_or(0.0),
    );
    // Cells without a result: failed ones by name and why, missing ones counted.
    let failed = list(&sweep, "failed");
    let missing = sweep.get("cells_missing").and_then(Value::as_u64).unwrap_or(0);
    if !failed.is_empty() || missing > 0 {
        let _ = writeln!(
            w,
            "<h2>Cells without a result</h2>\n<p id=\"incomplete\">{} failed, {missing} missing (not run yet, or \
             still running): the figures below leave them out. <code>edgecl sweep --resubmit DIR</code> runs them \
             on Slurm; the same <code>edgecl sweep</code> command runs them here.</p>",
            failed.len()
        );
        if !failed.is_empty() {
            let _ = writeln!(
                w,
                "<table id=\"failed\"><tr><th>cell</th><th>file</th><th>exit status</th><th>error</th></tr>"
            );
            for f in &failed {
                let _ = writeln!(
                    w,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    f.get("index").and_then(Value::as_u64).unwrap_or(0),
                    esc(f.get("file").and_then(Value::as_str).unwrap_or("")),
                    f.get("exit_status")
                        .and_then(Value::as_i64)
                        .map_or_else(String::new, |s| s.to_string()),
                    esc(f.get("error").and_then(Value::as_str).unwrap_or(""))
                );
            }
            let _ = writeln!(w, "</table>");
        }
    }
    let _ = writeln!(w, "<h2>Command</h2>\n<pre id=\"command\">{}</pre>", esc(&s("command")));

    let groups = groups(&sweep);
    let many = groups.len() > 1;
    for (g, part) in &groups {
        let (prefix, id) = match many {
            true => (format!("{}-", g.key()), format!("-{}", g.key())),
            false => (String::new(), String::new()),
        };
        let (hn, title) = match many {
            true => ("h3", format!("{}: ", g.title())),
            false => ("h2", String::new()),
        };
        if many {
            let _ = writeln!(w, "<h2 class=\"group\" id=\"group{id}\">{}</h2>", esc(&g.title()));
        }
        let plots = draw(out, part, &prefix, &title)?;
        let rows = rows(part);
        let budgets = budgets(part);
        // Which strategy wins where.
        let _ = writeln!(
            w,
            "<{hn}>Which strategy keeps the most accuracy at each budget</{hn}>\n<table id=\"winners{id}\"><tr><th>budget</th><th>best strategy</th><th>average accuracy (%)</th></tr>"
        );
        let winners = winners(part);
        for (b, best) in &winners {
            let all_over = rows
                .iter()
                .filter(|r| r.budget == *b && !REFERENCES.contains(&r.strategy.as_str()))
                .all(|r| r.ran == 0 && r.missing == 0 && r.unfit > 0);
            let none = if all_over { "none fits" } else { "no result" };
            let (name, acc) = best.clone().map_or((none.to_string(), None), |(n, a)| (n, Some(a)));
            let _ = writeln!(
                w,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                bytes_label(*b as f64),
                esc(&name),
                pct(acc)
            );
        }
        let _ = writeln!(
            w,
            "</table>\n<p>Joint training (every task's data kept) is the reference, not a contender.</p>"
        );

        // Mean ± standard error per strategy and budget.
        let _ = write!(
            w,
            "<{hn}>Average accuracy (%), mean ± standard error over seeds</{hn}>\n<table id=\"summary{id}\"><tr><th>strategy</th>"
        );
        for b in &budgets {
            let _ = write!(w, "<th>{}</th>", bytes_label(*b as f64));
        }
        let _ = writeln!(w, "</tr>");
        let best: Vec<Option<&str>> = winners
            .iter()
            .map(|(_, b)| b.as_ref().map(|(s, _)| s.as_str()))
            .collect();
        for st in &strategies {
            let _ = write!(w, "<tr><td>{}</td>", esc(st));
            for (i, b) in budgets.iter().enumerate() {
                let r = rows.iter().find(|r| &r.strategy == st && r.budget == *b);
                let text = r.map_or_else(|| "no result".to_string(), SummaryRow::text);
                let class = if best[i] == Some(st.as_str()) {
                    " class=\"win\""
                } else {
                    ""
                };
                let _ = write!(w, "<td{class}>{text}</td>");
            }
            let _ = writeln!(w, "</tr>");
        }
        let _ = writeln!(w, "</table>");

        // Accuracy bought per extra KiB.
        let _ = write!(
            w,
            "<{hn}>Accuracy each extra KiB buys</{hn}>\n<p>Points of average accuracy per KiB from one budget to the next (mean over seeds).</p>\n<table id=\"per-kib{id}\"><tr><th>strategy</th>"
        );
        for p in budgets.windows(2) {
            let _ = write!(
                w,
                "<th>{} → {}</th>",
                bytes_label(p[0] as f64),
                bytes_label(p[1] as f64)
            );
        }
        let _ = writeln!(w, "</tr>");
        for st in &strategies {
            let _ = write!(w, "<tr><td>{}</td>", esc(st));
            let mean = |b: usize| Some(rows.iter().find(|r| &r.strategy == st && r.budget == b)?.accuracy?.0);
            for p in budgets.windows(2) {
                let text = match (mean(p[0]), mean(p[1])) {
                    (Some(a), Some(c)) => {
                        let per_kib = (c - a) / ((p[1] as f64 - p[0] as f64) / 1024.0);
                        // Rounded first, so a tiny loss does not print as "-0.000".
                        format!("{:+.3}", (per_kib * 1000.0).round() / 1000.0 + 0.0)
                    }
                    _ => "–".into(),
                };
                let _ = write!(w, "<td>{text}</td>");
            }
            let _ = writeln!(w, "</tr>");
        }
        let _ = writeln!(w, "</table>");

        // Plots, inlined.
        let _ = writeln!(w, "<{hn}>Plots</{hn}>");
        for p in &plots {
            let svg_path = out.join("plots").join(format!("{}.svg", p.stem));
            let svg = std::fs::read_to_string(&svg_path).with_context(|| format!("reading {}", svg_path.display()))?;
            let svg = svg.trim_start_matches(|c| c != '<');
            let svg = svg
                .strip_prefix("<?xml")
                .map_or(svg, |r| r.split_once("?>").map_or(r, |(_, b)| b));
            let _ = writeln!(
                w,
                "<figure class=\"plot\" id=\"plot-{}\" data-marks=\"{}\"><h3>{}</h3>\n{}\n<figcaption>{} (<a href=\"plots/{}.png\">PNG</a>, <a href=\"plots/{}.svg\">SVG</a>)</figcaption></figure>",
                esc(&p.stem),
                p.marks,
                esc(&p.title),
                svg.trim(),
                esc(&p.caption),
                esc(&p.stem),
                esc(&p.stem)
            );
        }
    }

    // Every cell.
    let flash = list(&sweep, "cells").iter().any(|c| {
        c.get("result")
            .and_then(|r| r.get("flash"))
            .is_some_and(|f| !f.is_null())
    });
    let _ = write!(
        w,
        "<h2>Every cell</h2>\n<table id=\"cells\"><tr>{}<th>strategy</th><th>budget</th><th>seed</th><th>head</th><th>generator</th>\
         <th>arena (B)</th><th>average accuracy (%)</th><th>BWT</th><th>forgetting</th>",
        match many {
            true => "<th>board</th><th>scenario</th><th>setting</th>",
            false => "",
        }
    );
    if flash {
        let _ = write!(w, "<th>flash (B)</th><th>fits flash</th>");
    }
    let _ = writeln!(w, "</tr>");
    for c in list(&sweep, "cells") {
        let result = c.get("result");
        let report = result.and_then(|r| r.get("report"));
        let g = |k: &str| report.and_then(|r| r.get(k)).and_then(Value::as_f64);
        let head = report
            .and_then(|r| r.pointer("/learner/dims"))
            .map_or_else(String::new, |d| d.to_string());
        let generator = report
            .and_then(|r| r.pointer("/learner/replay"))
            .filter(|r| !r.is_null())
            .map_or_else(String::new, |r| {
                let name = r.get("generator").and_then(Value::as_str).unwrap_or("");
                match (
                    r.get("rank").and_then(Value::as_u64),
                    r.get("rows").and_then(Value::as_u64),
                ) {
                    (Some(k), _) => format!("{name} rank {k}"),
                    (_, Some(n)) => format!("{name} {n} rows"),
                    _ => name.to_string(),
                }
            });
        let acc = match result {
            Some(r) if did_not_fit(r) => "does not fit".to_string(),
            Some(r) => accuracy(r).map_or_else(
                || format!("failed: {}", r.get("error").and_then(Value::as_str).unwrap_or("")),
                |a| format!("{a:.2}"),
            ),
            None => "not run".into(),
        };
        let _ = write!(w, "<tr>");
        if many {
            let t = |k: &str| esc(c.get(k).and_then(Value::as_str).unwrap_or("–"));
            let _ = write!(
                w,
                "<td>{}</td><td>{}</td><td>{}</td>",
                t("board"),
                t("scenario"),
                t("setting")
            );
        }
        let _ = write!(
            w,
            "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            esc(c.get("strategy").and_then(Value::as_str).unwrap_or("")),
            bytes_label(c.get("budget").and_then(Value::as_u64).unwrap_or(0) as f64),
            c.get("seed").and_then(Value::as_u64).unwrap_or(0),
            esc(&head),
            esc(&generator),
            report
                .and_then(|r| r.get("arena_bytes"))
                .and_then(Value::as_u64)
                .map_or_else(String::new, |b| b.to_string()),
            esc(&acc),
            g("bwt").map_or_else(String::new, |v| format!("{v:.2}")),
            g("forgetting").map_or_else(String::new, |v| format!("{v:.2}")),
        );
        if flash {
            let f = result.and_then(|r| r.get("flash")).filter(|f| !f.is_null());
            let total = f
                .and_then(|f| f.get("total_bytes"))
                .and_then(Value::as_u64)
                .map_or_else(String::new, |b| b.to_string());
            let fits = match f {
                Some(f) => match (
                    f.get("fits").and_then(Value::as_bool),
                    f.get("error").and_then(Value::as_str),
                ) {
                    (_, Some(e)) => format!("no: {e}"),
                    (Some(true), _) => "yes".into(),
                    _ => "no".into(),
                },
                None => String::new(),
            };
            let _ = write!(w, "<td>{total}</td><td>{}</td>", esc(&fits));
        }
        let _ = writeln!(w, "</tr>");
    }
    let _ = writeln!(w, "</table>");

    // Where it ran and on what.
    let _ = writeln!(
        w,
        "<h2>Versions</h2>\n<table id=\"versions\"><tr><th>component</th><th>version</th></tr>\n<tr><td>edgecl</td><td>{}</td></tr>",
        esc(&s("edgecl"))
    );
    for (name, version) in crate_versions() {
        let _ = writeln!(w, "<tr><td>{name}</td><td>{}</td></tr>", esc(&version));
    }
    let _ = writeln!(
        w,
        "</table>\n<h2>Machine</h2>\n<table id=\"machine\"><tr><th>what</th><th>value</th></tr>"
    );
    for (k, v) in machine() {
        let _ = writeln!(w, "<tr><td>{}</td><td>{}</td></tr>", esc(&k), esc(&v));
    }
    let _ = writeln!(
        w,
        "</table>\n<h2>Data</h2>\n<p>Samples: <code>{}</code>.</p>",
        esc(&s("data"))
    );
    if let Some(p) = provenance(&s("data"), "PROVENANCE.md") {
        let _ = writeln!(w, "<pre id=\"data-provenance\">{}</pre>", esc(&p));
    }
    match sweep.get("backbone").and_then(Value::as_str) {
        Some(b) => {
            let _ = writeln!(w, "<p>Features: the frozen backbone <code>{}</code>.</p>", esc(b));
            // A model folder's file, or a shipped model's folder in `models/`.
            let card = [
                PathBuf::from(b),
                Path::new("models").join(b).join("backbone.onnx"),
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("models")
                    .join(b)
                    .join("backbone.onnx"),
            ]
            .iter()
            .find_map(|p| provenance(&p.display().to_string(), "MODEL.md"));
            if let Some(p) = card {
                let _ = writeln!(w, "<pre id=\"model-card\">{}</pre>", esc(&p));
            }
        }
        None => {
            let _ = writeln!(
                w,
                "<p>Features: the protocol's own (pixels, 2x2-pooled for the edge protocol).</p>"
            );
        }
    }
    let _ = writeln!(
        w,
        "<p>Every cell's full report is in <a href=\"sweep.json\">sweep.json</a> (and one file per cell in <code>cells/</code>).</p>"
    );
    // What a browser drew, for tests that render the page headless: tables with rows and
    // plots with text that take room on the page.
    let _ = writeln!(w, "<script>{RENDER_CHECK}</script>\n</body></html>");
    let path = out.join("report.html");
    std::fs::write(&path, h).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn winners_leave_out_joint_and_budgets_where_nothing_ran() {
        let sweep = serde_json::json!({
            "budgets": [1024, 2048],
            "summary": [
                {"strategy": "joint", "budget": 1024, "avg_accuracy_mean": 99.0},
                {"strategy": "si", "budget": 1024, "avg_accuracy_mean": 40.0},
                {"strategy": "replay", "budget": 1024, "avg_accuracy_mean": 60.0},
                {"strategy": "si", "budget": 2048, "avg_accuracy_mean": null},
            ]
        });
        let w = winners(&sweep);
        assert_eq!(w[0], (1024, Some(("replay".to_string(), 60.0))));
        assert_eq!(w[1], (2048, None));
    }

    #[test]
    fn html_text_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }

    #[test]
    fn crate_versions_come_from_the_lock_file() {
        let v = crate_versions();
        assert!(
            v.iter().any(|(n, ver)| *n == "postcard" && ver.starts_with('1')),
            "{v:?}"
        );
    }
}

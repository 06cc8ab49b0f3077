//! A sweep's report: `sweep.json` (every cell and the summary), the summary tables
//! printed per group, the plots and the page.

use super::settings::Settings;
use super::{write_atomic, COMMAND_FILE};
use anyhow::Result;
use edgecl::host::board::{Board, BoardKind};
use edgecl::host::sweep::{self, collect, outcome, read_cells, summary, Group, Outcome, SummaryRow};
use serde::Serialize;
use serde_json::Value;
use std::path::Path;

/// `sweep.json`. Its fields are in the alphabetical order the file has always had
/// (it was written from a `serde_json` map, whose keys are sorted).
#[derive(Serialize)]
struct SweepJson<'a> {
    backbone: Option<String>,
    board: String,
    board_kind: BoardKind,
    boards: Vec<Option<String>>,
    budgets: Vec<usize>,
    /// The cells' own seconds, summed.
    cell_seconds: f64,
    cells: Vec<CellJson<'a>>,
    cells_failed: usize,
    cells_missing: usize,
    cells_total: usize,
    /// The command that last ran or submitted the sweep.
    command: String,
    data: String,
    edgecl: &'static str,
    failed: &'a [Failed],
    /// Worker threads, when the cells ran here.
    jobs: Option<usize>,
    /// `local` (the cells ran here) or `report` (drawn from the cells there).
    runner: &'static str,
    scenarios: Vec<String>,
    seconds: f64,
    seeds: u64,
    settings: Vec<String>,
    strategies: &'a [String],
    summary: Vec<Value>,
}

/// A cell in `sweep.json`: its place in the grid and its report file's contents.
#[derive(Serialize)]
struct CellJson<'a> {
    board: &'a Option<String>,
    budget: usize,
    result: &'a Option<Value>,
    scenario: &'a str,
    seed: u64,
    setting: &'a str,
    strategy: &'a str,
}

/// A failed cell in `sweep.json`.
#[derive(Serialize)]
struct Failed {
    error: String,
    /// The exit status its process ended with, when it left no report.
    exit_status: Option<Value>,
    file: String,
    /// Its line of `cells.txt`.
    index: usize,
}

/// Collects the cells of the sweep in `dir`, writes `sweep.json`, the plots and the page,
/// and prints the summary; `local` is this run's seconds and worker threads when the
/// cells ran here. Returns the summary rows.
pub(super) fn report(dir: &Path, local: Option<(f64, usize)>) -> Result<Vec<SummaryRow>> {
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
    let failed: Vec<Failed> = results
        .iter()
        .enumerate()
        .filter_map(|(i, (c, v))| match outcome(v.as_ref()) {
            Outcome::Failed(error) => Some(Failed {
                error,
                exit_status: v.as_ref().and_then(|v| v.get("exit_status")).cloned(),
                file: c.file_name(),
                index: i,
            }),
            _ => None,
        })
        .collect();
    let (seconds, jobs, runner) = match local {
        Some((s, j)) => (s, Some(j), "local"),
        None => (started.elapsed().as_secs_f64(), None, "report"),
    };
    let json = SweepJson {
        backbone,
        board: board.name,
        board_kind: board.kind,
        boards,
        budgets,
        cell_seconds: results
            .iter()
            .filter_map(|(_, v)| v.as_ref()?.get("seconds")?.as_f64())
            .fold(0.0, |a, b| a + b),
        cells: results
            .iter()
            .map(|(c, v)| CellJson {
                board: &c.board,
                budget: c.budget,
                result: v,
                scenario: &c.scenario,
                seed: c.seed,
                setting: &c.setting,
                strategy: &c.strategy,
            })
            .collect(),
        cells_failed: failed_n,
        cells_missing: missing_n,
        cells_total: cells.len(),
        command,
        data: settings.data.display().to_string(),
        edgecl: env!("CARGO_PKG_VERSION"),
        failed: &failed,
        jobs,
        runner,
        scenarios,
        seconds,
        seeds,
        settings: settings_list,
        strategies: &strategies,
        summary: table.iter().map(SummaryRow::to_json).collect(),
    };
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
        println!("failed: {} ({})", f.file, f.error);
    }
    println!("{}", path.display());
    let html = edgecl::host::sweep_report::write(dir)?;
    println!("{}", html.display());
    Ok(table)
}

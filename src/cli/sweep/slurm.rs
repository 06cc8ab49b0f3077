//! A sweep sent to Slurm: the job scripts written and submitted (or printed, with
//! `--dry-run`), and `--resubmit` of the missing and failed cells.

use super::report::report;
use super::settings::Settings;
use super::{absolute, no_jobs_running, SlurmArgs};
use anyhow::{bail, Context, Result};
use edgecl::host::slurm::{self, JobOptions, SLURM_DIR};
use edgecl::host::sweep::{self, collect, read_cells, Cell};
use std::path::Path;

/// Writes the Slurm scripts for `cells`' indices that have no report (all of them on a
/// first submission) and submits them, then the report job after them; with `dry_run`,
/// prints them instead.
pub(super) fn submit(dir: &Path, cells: &[Cell], opts: JobOptions, dry_run: bool, verb: &str) -> Result<()> {
    let todo: Vec<usize> = (0..cells.len()).filter(|&i| !sweep::finished(dir, &cells[i])).collect();
    let slurm_dir = dir.join(SLURM_DIR);
    std::fs::create_dir_all(slurm_dir.join("logs")).with_context(|| format!("creating {}", slurm_dir.display()))?;
    std::fs::write(
        slurm_dir.join("options.json"),
        serde_json::to_string_pretty(&opts)? + "\n",
    )
    .with_context(|| format!("writing {}", slurm_dir.join("options.json").display()))?;
    let exe = std::env::current_exe().context("finding this edgecl binary")?;
    let exe = absolute(&exe)?;
    let report_path = slurm_dir.join("report.sbatch");
    std::fs::write(&report_path, slurm::report_script(&exe, dir, &opts)?)
        .with_context(|| format!("writing {}", report_path.display()))?;
    if todo.is_empty() {
        println!("{} cells, all with a report: nothing to submit", cells.len());
        return report(dir, None).map(|_| ());
    }
    let mut scripts = Vec::new();
    if opts.cells_per_task > 1 {
        // One array of tasks, each running a line of cells from its task file.
        let batches = slurm::batches(&todo, opts.cells_per_task);
        let max = slurm::max_array_size().unwrap_or(slurm::DEFAULT_MAX_ARRAY_SIZE);
        if batches.len() > max {
            bail!(
                "{} tasks of {} cells: more than the cluster's MaxArraySize of {max}; raise --cells-per-task",
                batches.len(),
                opts.cells_per_task
            );
        }
        let tasks = slurm_dir.join("tasks.txt");
        let lines: String = batches
            .iter()
            .map(|b| b.iter().map(usize::to_string).collect::<Vec<_>>().join(" ") + "\n")
            .collect();
        std::fs::write(&tasks, lines).with_context(|| format!("writing {}", tasks.display()))?;
        let path = slurm_dir.join("cells.sbatch");
        let script = slurm::batched_script(&exe, dir, &tasks, batches.len(), &opts)?;
        std::fs::write(&path, &script).with_context(|| format!("writing {}", path.display()))?;
        scripts.push((path, script, todo.clone()));
    } else {
        // Arrays whose indices stay below the cluster's MaxArraySize, each with its script.
        let max = slurm::max_array_size().unwrap_or(slurm::DEFAULT_MAX_ARRAY_SIZE);
        for (n, (offset, indices)) in slurm::chunks(&todo, max).iter().enumerate() {
            let name = match n {
                0 => "cells.sbatch".to_string(),
                n => format!("cells-{n}.sbatch"),
            };
            let path = slurm_dir.join(name);
            let script = slurm::cells_script(&exe, dir, indices, *offset, &opts)?;
            std::fs::write(&path, &script).with_context(|| format!("writing {}", path.display()))?;
            let absolute: Vec<usize> = indices.iter().map(|i| i + offset).collect();
            scripts.push((path, script, absolute));
        }
    }
    if dry_run {
        for (path, script, _) in &scripts {
            println!("# {}\n{script}", path.display());
        }
        println!(
            "# {}\n{}",
            report_path.display(),
            std::fs::read_to_string(&report_path)?
        );
        println!("# to submit:");
        for (n, (path, ..)) in scripts.iter().enumerate() {
            println!(
                "id{n}=$(sbatch --parsable {})",
                slurm::shell_quote(&path.display().to_string())
            );
        }
        let ids: Vec<String> = (0..scripts.len()).map(|n| format!("$id{n}")).collect();
        println!(
            "sbatch --dependency=afterany:{} {}",
            ids.join(":"),
            slurm::shell_quote(&report_path.display().to_string())
        );
        return Ok(());
    }
    let mut arrays = Vec::new();
    for (path, _, absolute) in &scripts {
        let id = slurm::submit(path, &[])?;
        slurm::record_job(dir, &format!("cells {id} {}", slurm::array_list(absolute)))?;
        arrays.push(id);
    }
    let report_job = slurm::submit(&report_path, &arrays)?;
    slurm::record_job(dir, &format!("report {report_job}"))?;
    println!(
        "{verb} job array {}: {} of {} cells ({}); report job {report_job} after it",
        arrays.join(", "),
        todo.len(),
        cells.len(),
        slurm::array_list(&todo)
    );
    println!("{}", arrays.join(" "));
    Ok(())
}

/// `edgecl sweep --resubmit DIR`.
pub(super) fn resubmit(dir: &Path, args: &SlurmArgs) -> Result<()> {
    let dir = absolute(dir)?;
    Settings::read(&dir)?;
    let cells = read_cells(&dir)?;
    no_jobs_running(&dir, "resubmitting")?;
    let opts = if args.given() {
        args.options()
    } else {
        let path = dir.join(SLURM_DIR).join("options.json");
        match std::fs::read_to_string(&path) {
            Ok(t) => serde_json::from_str(&t).with_context(|| format!("{} is not job options", path.display()))?,
            Err(_) => args.options(),
        }
    };
    let results = collect(&dir, &cells)?;
    let (failed, missing) = sweep::failed_and_missing(&results);
    println!("{} cells: {failed} failed, {missing} missing", cells.len());
    submit(&dir, &cells, opts, args.dry_run, "resubmitted")
}

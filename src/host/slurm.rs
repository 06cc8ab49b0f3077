//! A sweep's cells as a Slurm job array: the `sbatch` scripts, their submission, and
//! which of a sweep's jobs the scheduler still holds.
//!
//! The cells job runs `edgecl sweep-cell DIR INDEX` for each array index (an index of
//! `DIR/cells.txt`); each writes its cell's report atomically into `DIR/cells/` on the
//! shared file system. A task that exits non-zero (the run failed, the process was
//! killed, the job was cancelled, preempted or ran out of time: Slurm sends SIGTERM first)
//! is recorded by a second call, `sweep-cell DIR INDEX --exit-status N`, so the report
//! says which cells failed. The report job runs `edgecl sweep --report DIR` once the
//! array is over (`--dependency=afterany`), whatever became of its tasks.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// The folder of a sweep that holds its Slurm scripts, logs and job ids.
pub const SLURM_DIR: &str = "slurm";

/// How the jobs are asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobOptions {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--time` of each cell (Slurm's forms: `MM`, `HH:MM:SS`, `D-HH`, ...).
    pub time: Option<String>,
    /// `--cpus-per-task` of each cell.
    pub cpus_per_task: usize,
    /// Array tasks run at once (`--array=...%K`); none: as many as the cluster gives.
    pub array_parallel: Option<usize>,
    /// Cells each array task runs, one after the other (0 or 1: one; more spares the
    /// scheduler a job per short cell).
    #[serde(default)]
    pub cells_per_task: usize,
    /// More `#SBATCH` options, each as sbatch takes it (`--account=proj`, `--qos=short`).
    pub sbatch_options: Vec<String>,
    /// Shell lines run before each cell and the report (`module load ...`).
    pub setup: Vec<String>,
}

/// `s` quoted for a POSIX shell where it needs it.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_=.,/:+@%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Slurm's `--array` list of `indices` (sorted and without repeats): runs joined with `-`,
/// e.g. `0-3,7,9-11`.
pub fn array_list(indices: &[usize]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < indices.len() {
        let start = indices[i];
        let mut end = start;
        while i + 1 < indices.len() && indices[i + 1] == end + 1 {
            i += 1;
            end += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        match end > start {
            true => {
                let _ = write!(out, "{start}-{end}");
            }
            false => {
                let _ = write!(out, "{start}");
            }
        }
        i += 1;
    }
    out
}

/// A value for an `#SBATCH` line: no line breaks (each would end the directive).
fn directive(value: &str, what: &str) -> Result<String> {
    if value.contains(['\n', '\r']) || value.trim().is_empty() {
        bail!("{what} `{value}`: an sbatch option is one non-empty line");
    }
    Ok(value.to_string())
}

/// The `#SBATCH` lines and setup both scripts share.
fn common(opts: &JobOptions, w: &mut String) -> Result<()> {
    if let Some(p) = &opts.partition {
        let _ = writeln!(w, "#SBATCH --partition={}", directive(p, "--partition")?);
    }
    if let Some(t) = &opts.time {
        let _ = writeln!(w, "#SBATCH --time={}", directive(t, "--time")?);
    }
    let _ = writeln!(w, "#SBATCH --cpus-per-task={}", opts.cpus_per_task.max(1));
    for o in &opts.sbatch_options {
        let o = directive(o, "--sbatch-option")?;
        if !o.starts_with('-') {
            bail!("--sbatch-option `{o}`: give it as sbatch takes it, e.g. --account=proj");
        }
        let _ = writeln!(w, "#SBATCH {o}");
    }
    let _ = writeln!(w, "set -u");
    for line in &opts.setup {
        let _ = writeln!(w, "{}", directive(line, "--setup")?);
    }
    Ok(())
}

/// Slurm's default `MaxArraySize`: array indices run from 0 to 1000.
pub const DEFAULT_MAX_ARRAY_SIZE: usize = 1001;

/// The cluster's `MaxArraySize` (`scontrol show config`), when scontrol answers.
pub fn max_array_size() -> Option<usize> {
    let out = Command::new("scontrol").args(["show", "config"]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "MaxArraySize").then(|| v.trim().parse().ok()).flatten()
    })
}

/// The cells `indices` (sorted) as job arrays whose indices stay below `max_array_size`:
/// `(offset, indices less offset)` per array, the cells from `offset` on up to
/// `offset + max_array_size - 1`.
pub fn chunks(indices: &[usize], max_array_size: usize) -> Vec<(usize, Vec<usize>)> {
    let size = max_array_size.max(1);
    let mut out: Vec<(usize, Vec<usize>)> = Vec::new();
    for &i in indices {
        let offset = i / size * size;
        match out.last_mut() {
            Some((o, v)) if *o == offset => v.push(i - offset),
            _ => out.push((offset, vec![i - offset])),
        }
    }
    out
}

/// The start of a cells job-array script: its `#SBATCH` lines (the array `array`, the log
/// `log` in the sweep's logs folder), the setup, and the `edgecl` and `dir` variables.
fn array_head(exe: &Path, dir: &Path, how: &str, array: &str, log: &str, opts: &JobOptions) -> Result<String> {
    let mut w = String::from("#!/bin/bash\n");
    let _ = writeln!(
        w,
        "# The cells of the edgecl sweep in {}, {how} (written by edgecl sweep).",
        dir.display()
    );
    let _ = writeln!(w, "#SBATCH --job-name=edgecl-cells");
    let parallel = opts
        .array_parallel
        .map_or_else(String::new, |k| format!("%{}", k.max(1)));
    let _ = writeln!(w, "#SBATCH --array={array}{parallel}");
    let logs = dir.join(SLURM_DIR).join("logs");
    let _ = writeln!(
        w,
        "#SBATCH --output={}",
        directive(&logs.join(log).display().to_string(), "the log path")?
    );
    common(opts, &mut w)?;
    let _ = writeln!(w, "edgecl={}", shell_quote(&exe.display().to_string()));
    let _ = writeln!(w, "dir={}", shell_quote(&dir.display().to_string()));
    Ok(w)
}

/// The job-array script that runs the cells `offset + i` for `i` in `indices` of the
/// sweep in `dir` with the binary `exe` (both absolute paths on the shared file system).
pub fn cells_script(exe: &Path, dir: &Path, indices: &[usize], offset: usize, opts: &JobOptions) -> Result<String> {
    if indices.is_empty() {
        bail!("a job array needs at least one cell");
    }
    // The log names the cell's index in cells.txt: the array index, plus the offset.
    let log = match offset {
        0 => "cell-%a-%A.log".to_string(),
        o => format!("cell-{o}+%a-%A.log"),
    };
    let mut w = array_head(exe, dir, "one array task each", &array_list(indices), &log, opts)?;
    let _ = writeln!(w, "cell=$((SLURM_ARRAY_TASK_ID + {offset}))");
    let _ = writeln!(
        w,
        "# Cancelled, preempted or out of time, a task gets SIGTERM: the cell dies of it, this\n\
         # shell goes on (a trap, not the default) and records the exit status below.\n\
         trap 'echo \"edgecl-cells: SIGTERM\" >&2' TERM\n\
         \"$edgecl\" sweep-cell \"$dir\" \"$cell\"\n\
         status=$?\n\
         if [ \"$status\" -ne 0 ]; then\n\
         \x20 \"$edgecl\" sweep-cell \"$dir\" \"$cell\" --exit-status \"$status\"\n\
         fi\n\
         exit \"$status\""
    );
    Ok(w)
}

/// The job-array script whose task `t` runs, one after the other, the cells listed on
/// line `t + 1` of `tasks` (space-separated indices of cells.txt): [`batches`] of the
/// cells asked for. A cell that exits non-zero is recorded as [`cells_script`]'s are; after
/// SIGTERM the task records the cell it was running and runs no more.
pub fn batched_script(exe: &Path, dir: &Path, tasks: &Path, count: usize, opts: &JobOptions) -> Result<String> {
    if count == 0 {
        bail!("a job array needs at least one task");
    }
    let array = format!("0-{}", count - 1);
    let mut w = array_head(exe, dir, "several per array task", &array, "task-%a-%A.log", opts)?;
    let _ = writeln!(w, "tasks={}", shell_quote(&tasks.display().to_string()));
    let _ = writeln!(
        w,
        "# Cancelled, preempted or out of time, a task gets SIGTERM: the running cell dies of it,\n\
         # this shell records its exit status and runs no more cells.\n\
         stop=0\n\
         trap 'echo \"edgecl-cells: SIGTERM\" >&2; stop=1' TERM\n\
         status=0\n\
         for cell in $(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" \"$tasks\"); do\n\
         \x20 \"$edgecl\" sweep-cell \"$dir\" \"$cell\"\n\
         \x20 s=$?\n\
         \x20 if [ \"$s\" -ne 0 ]; then\n\
         \x20   \"$edgecl\" sweep-cell \"$dir\" \"$cell\" --exit-status \"$s\"\n\
         \x20   status=$s\n\
         \x20 fi\n\
         \x20 [ \"$stop\" -eq 0 ] || break\n\
         done\n\
         exit \"$status\""
    );
    Ok(w)
}

/// `indices` cut into runs of `per_task` (the last one shorter), one per array task: the
/// lines of a [`batched_script`]'s task file.
pub fn batches(indices: &[usize], per_task: usize) -> Vec<Vec<usize>> {
    indices.chunks(per_task.max(1)).map(<[usize]>::to_vec).collect()
}

/// The script that draws the sweep's report from whatever cells exist.
pub fn report_script(exe: &Path, dir: &Path, opts: &JobOptions) -> Result<String> {
    let mut w = String::from("#!/bin/bash\n");
    let _ = writeln!(
        w,
        "# The report of the edgecl sweep in {}, once its cells' array is over.",
        dir.display()
    );
    let _ = writeln!(w, "#SBATCH --job-name=edgecl-report");
    let logs = dir.join(SLURM_DIR).join("logs");
    let _ = writeln!(
        w,
        "#SBATCH --output={}",
        directive(&logs.join("report-%j.log").display().to_string(), "the log path")?
    );
    let opts = JobOptions {
        cpus_per_task: 1,
        array_parallel: None,
        cells_per_task: 1,
        ..opts.clone()
    };
    common(&opts, &mut w)?;
    let _ = writeln!(
        w,
        "exec {} sweep --report {}",
        shell_quote(&exe.display().to_string()),
        shell_quote(&dir.display().to_string())
    );
    Ok(w)
}

/// Submits `script` with `sbatch --parsable` (after the jobs `after` end, however they
/// end) and returns the job id.
pub fn submit(script: &Path, after: &[String]) -> Result<String> {
    let mut cmd = Command::new("sbatch");
    cmd.arg("--parsable");
    if !after.is_empty() {
        cmd.arg(format!("--dependency=afterany:{}", after.join(":")));
    }
    cmd.arg(script);
    let out = cmd.output().context(
        "running sbatch (is Slurm installed here, and is this a submit host? --dry-run writes the scripts only)",
    )?;
    if !out.status.success() {
        bail!(
            "sbatch {} failed ({}): {}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    // `ID` or `ID;CLUSTER`.
    let text = String::from_utf8_lossy(&out.stdout);
    let id = text.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        bail!("sbatch printed `{}`, not a job id", text.trim());
    }
    Ok(id)
}

/// Of the jobs `ids`, those the scheduler still holds (queued, running, completing):
/// `squeue` lists every job and its array job, so jobs long finished (no longer known) are
/// not an error. `None` when squeue cannot be run (no Slurm here).
pub fn still_queued(ids: &[String]) -> Option<Vec<String>> {
    let out = Command::new("squeue").args(["-h", "-o", "%F %A"]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut held: Vec<String> = text
        .lines()
        .flat_map(|l| l.split_whitespace())
        .filter(|id| ids.iter().any(|i| i == id))
        .map(str::to_string)
        .collect();
    held.sort();
    held.dedup();
    Some(held)
}

/// The file in a sweep's [`SLURM_DIR`] that lists its jobs, one per line:
/// `cells ID ARRAY` or `report ID`.
pub const JOBS_FILE: &str = "jobs.txt";

/// The job ids recorded in `dir`'s [`JOBS_FILE`] (none when there is none).
pub fn recorded_jobs(dir: &Path) -> Result<Vec<String>> {
    let path = dir.join(SLURM_DIR).join(JOBS_FILE);
    match std::fs::read_to_string(&path) {
        Ok(t) => Ok(t
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .map(str::to_string)
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Appends `line` to `dir`'s [`JOBS_FILE`].
pub fn record_job(dir: &Path, line: &str) -> Result<()> {
    use std::io::Write;
    let path = dir.join(SLURM_DIR).join(JOBS_FILE);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(f, "{line}").with_context(|| format!("writing {}", path.display()))
}

/// What an exit status says about how a cell's process ended.
pub fn exit_reason(status: i32) -> String {
    match status {
        143 => "killed by SIGTERM: the job was cancelled, preempted or ran out of time".into(),
        137 => "killed by SIGKILL: out of memory, or it did not stop after SIGTERM".into(),
        s if s > 128 => format!("killed by signal {}", s - 128),
        s => format!("exit status {s}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn array_lists_join_runs() {
        assert_eq!(array_list(&[0, 1, 2, 3, 7, 9, 10, 11]), "0-3,7,9-11");
        assert_eq!(array_list(&[5]), "5");
        assert_eq!(array_list(&[2, 4]), "2,4");
        assert_eq!(array_list(&[]), "");
    }

    #[test]
    fn the_cells_script_runs_each_index_and_records_a_failure() {
        let opts = JobOptions {
            partition: Some("short".into()),
            time: Some("00:10:00".into()),
            cpus_per_task: 2,
            array_parallel: Some(4),
            cells_per_task: 1,
            sbatch_options: vec!["--account=edge".into()],
            setup: vec!["module load gcc".into()],
        };
        let exe = PathBuf::from("/shared/bin/edgecl");
        let dir = PathBuf::from("/shared/sweeps/my sweep");
        let s = cells_script(&exe, &dir, &[0, 1, 2, 5], 0, &opts).unwrap();
        for line in [
            "#SBATCH --array=0-2,5%4",
            "#SBATCH --partition=short",
            "#SBATCH --time=00:10:00",
            "#SBATCH --cpus-per-task=2",
            "#SBATCH --account=edge",
            "#SBATCH --output=/shared/sweeps/my sweep/slurm/logs/cell-%a-%A.log",
            "module load gcc",
            "dir='/shared/sweeps/my sweep'",
            "cell=$((SLURM_ARRAY_TASK_ID + 0))",
            "\"$edgecl\" sweep-cell \"$dir\" \"$cell\" --exit-status \"$status\"",
        ] {
            assert!(s.lines().any(|l| l.trim() == line), "no `{line}` in\n{s}");
        }
        // Directives come before the first command, or sbatch ignores them.
        let first_command = s.lines().position(|l| l == "set -u").unwrap();
        assert!(s.lines().skip(first_command).all(|l| !l.starts_with("#SBATCH")));
        let r = report_script(&exe, &dir, &opts).unwrap();
        assert!(
            r.contains("exec /shared/bin/edgecl sweep --report '/shared/sweeps/my sweep'"),
            "{r}"
        );
        assert!(r.contains("#SBATCH --cpus-per-task=1") && !r.contains("--array"), "{r}");
    }

    #[test]
    fn bad_options_are_refused_with_what_was_wrong() {
        let exe = PathBuf::from("/e");
        let dir = PathBuf::from("/d");
        let with = |o: JobOptions| cells_script(&exe, &dir, &[0], 0, &o).unwrap_err().to_string();
        let broken = JobOptions {
            time: Some("1:00\n#SBATCH --mem=1".into()),
            ..JobOptions::default()
        };
        assert!(with(broken).contains("one non-empty line"));
        let bare = JobOptions {
            sbatch_options: vec!["account=edge".into()],
            ..JobOptions::default()
        };
        assert!(with(bare).contains("as sbatch takes it"));
        assert!(cells_script(&exe, &dir, &[], 0, &JobOptions::default()).is_err());
    }

    #[test]
    fn arrays_stay_below_the_clusters_max_array_size() {
        let all: Vec<usize> = (0..2500).collect();
        let c = chunks(&all, 1001);
        assert_eq!(c.iter().map(|(o, _)| *o).collect::<Vec<_>>(), [0, 1001, 2002]);
        assert!(c.iter().all(|(_, v)| v.iter().all(|&i| i < 1001)));
        assert_eq!(c.iter().map(|(_, v)| v.len()).sum::<usize>(), 2500);
        assert_eq!(c[2].1.last(), Some(&497));
        // Only the cells asked for, each once, at its own index.
        let some = [3, 999, 1000, 1001, 2400];
        let c = chunks(&some, 1001);
        let back: Vec<usize> = c.iter().flat_map(|(o, v)| v.iter().map(move |i| o + i)).collect();
        assert_eq!(back, some);
        let exe = PathBuf::from("/e");
        assert_eq!(c, [(0, vec![3, 999, 1000]), (1001, vec![0]), (2002, vec![398])]);
        let s = cells_script(&exe, &PathBuf::from("/d"), &c[2].1, c[2].0, &JobOptions::default()).unwrap();
        assert!(
            s.contains("#SBATCH --array=398\n") && s.contains("cell=$((SLURM_ARRAY_TASK_ID + 2002))"),
            "{s}"
        );
        assert!(s.contains("cell-2002+%a-%A.log"), "{s}");
    }

    #[test]
    fn a_batched_array_runs_each_tasks_line_of_cells() {
        assert_eq!(
            batches(&[0, 1, 2, 5, 6, 9, 11], 3),
            [vec![0, 1, 2], vec![5, 6, 9], vec![11]]
        );
        assert_eq!(batches(&[4], 0), [vec![4]]);
        let opts = JobOptions {
            array_parallel: Some(8),
            ..JobOptions::default()
        };
        let s = batched_script(
            &PathBuf::from("/e"),
            &PathBuf::from("/d"),
            &PathBuf::from("/d/slurm/tasks.txt"),
            3,
            &opts,
        )
        .unwrap();
        for line in [
            "#SBATCH --array=0-2%8",
            "#SBATCH --output=/d/slurm/logs/task-%a-%A.log",
            "tasks=/d/slurm/tasks.txt",
            "for cell in $(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" \"$tasks\"); do",
            "\"$edgecl\" sweep-cell \"$dir\" \"$cell\" --exit-status \"$s\"",
            "[ \"$stop\" -eq 0 ] || break",
        ] {
            assert!(s.lines().any(|l| l.trim() == line), "no `{line}` in\n{s}");
        }
        assert!(batched_script(
            &PathBuf::from("/e"),
            &PathBuf::from("/d"),
            &PathBuf::from("/t"),
            0,
            &opts
        )
        .is_err());
    }

    #[test]
    fn exit_statuses_say_what_ended_the_cell() {
        assert!(exit_reason(143).contains("cancelled, preempted"));
        assert!(exit_reason(137).contains("SIGKILL"));
        assert_eq!(exit_reason(1), "exit status 1");
        assert_eq!(exit_reason(134), "killed by signal 6");
    }
}

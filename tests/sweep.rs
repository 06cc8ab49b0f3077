#![cfg(feature = "std")]
//! `edgecl sweep`: every cell's report lands in OUT/cells/, and a sweep stopped half-way
//! and started again runs only the missing cells.

use std::path::Path;
use std::process::Command;

fn sweep(out: &Path, extra: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_edgecl"))
        .args(["sweep", "--model", "none", "--iters", "30", "--budgets", "16k,32k"])
        .args(["--jobs", "2", "-q", "--out"])
        .arg(out)
        .args(extra)
        .output()
        .expect("edgecl runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_sweep_stopped_half_way_resumes_without_redoing_finished_cells() {
    let out = std::env::temp_dir().join(format!("edgecl-sweep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let grid = ["--strategies", "naive,si", "--seeds", "1"];
    let first = sweep(&out, &[&grid[..], &["--max-cells", "2"]].concat());
    assert!(first.contains("4 cells: 2 run now, 0 finished before"), "{first}");
    let cells = out.join("cells");
    let before: Vec<(String, Vec<u8>)> = std::fs::read_dir(&cells)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    assert_eq!(before.len(), 2);
    let second = sweep(&out, &grid);
    assert!(second.contains("4 cells: 2 run now, 2 finished before"), "{second}");
    assert_eq!(std::fs::read_dir(&cells).unwrap().count(), 4);
    for (name, bytes) in &before {
        // A report holds its run's seconds: a cell run again would differ.
        assert_eq!(&std::fs::read(cells.join(name)).unwrap(), bytes, "{name} was run again");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(summary["cells"].as_array().unwrap().len(), 4);
    assert!(summary["summary"][0]["avg_accuracy_mean"].as_f64().is_some());
    let third = sweep(&out, &grid);
    assert!(third.contains("4 cells: 0 run now, 4 finished before"), "{third}");
    std::fs::remove_dir_all(&out).unwrap();
}

/// Chromium, when installed (CI installs Debian's `chromium`; elsewhere the test says it
/// did not run).
fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"].into_iter().find(|b| {
        Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

const HEADLESS: [&str; 4] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--virtual-time-budget=10000",
];

/// Asserts that chromium laid out all `tables` tables and `plots` plots of the page at
/// `url` (the page's own check, in `body[data-render]`).
fn assert_laid_out(browser: &str, url: &str, tables: usize, plots: usize) {
    let dom = Command::new(browser)
        .args(HEADLESS)
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&dom.stdout);
    let want = format!("data-render=\"tables {tables}/{tables} plots {plots}/{plots}\"");
    assert!(dom.contains(&want), "chromium laid out {:?}, want {want}", {
        let at = dom.find("data-render").unwrap_or(0);
        &dom[at..(at + 60).min(dom.len())]
    });
}

#[test]
fn a_grid_of_settings_groups_its_report_and_names_failed_cells() {
    let out = std::env::temp_dir().join(format!("edgecl-sweep-groups-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let printed = sweep(
        &out,
        &[
            "--settings",
            "task-il,class-il",
            "--strategies",
            "naive,progressive",
            "--seeds",
            "1",
        ],
    );
    // Progressive columns need task labels: under class-il the cell fails, and says why.
    assert!(
        printed.contains("split task-il") && printed.contains("split class-il"),
        "{printed}"
    );
    assert!(
        printed.contains("8 cells: 6 with a result, 2 failed, 0 missing"),
        "{printed}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(summary["settings"], serde_json::json!(["task-il", "class-il"]));
    assert_eq!(summary["failed"].as_array().unwrap().len(), 2);
    let html = out.join("report.html");
    let text = std::fs::read_to_string(&html).unwrap();
    for id in [
        "group-split-task-il",
        "summary-split-task-il",
        "winners-split-class-il",
        "failed",
        "incomplete",
    ] {
        assert!(text.contains(&format!("id=\"{id}\"")), "no #{id}");
    }
    // Per group: accuracy against budget and plan bars; per strategy that ran there a heat
    // map and task curves (progressive runs under task-il only).
    let plots = 2 * 2 + 2 * 2 + 2;
    assert_eq!(text.matches("<figure class=\"plot\"").count(), plots);
    for stem in ["split-task-il-matrix-progressive", "split-class-il-accuracy-vs-budget"] {
        assert!(out.join("plots").join(format!("{stem}.svg")).is_file(), "{stem}");
    }
    assert!(!out.join("plots/split-class-il-matrix-progressive.svg").exists());
    let tables = text.matches("<table").count();
    match chromium() {
        Some(browser) => assert_laid_out(browser, &format!("file://{}", html.display()), tables, plots),
        None => {
            assert!(std::env::var_os("CI").is_none(), "CI installs chromium; it is missing");
            eprintln!("chromium not installed: the report was not rendered");
        }
    }
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn the_report_renders_every_table_and_plot_in_headless_chromium() {
    let out = std::env::temp_dir().join(format!("edgecl-sweep-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let printed = sweep(&out, &["--strategies", "naive,replay", "--seeds", "2"]);
    let html = out.join("report.html");
    assert!(printed.contains(&html.display().to_string()), "{printed}");
    let text = std::fs::read_to_string(&html).unwrap();
    // Plots: accuracy against budget, a heat map and task curves per strategy, plan bars.
    let plots = 1 + 2 * 2 + 1;
    assert_eq!(text.matches("<figure class=\"plot\"").count(), plots);
    for stem in ["accuracy-vs-budget", "matrix-naive", "tasks-replay", "plan-bytes"] {
        for ext in ["png", "svg"] {
            let f = out.join("plots").join(format!("{stem}.{ext}"));
            assert!(std::fs::metadata(&f).is_ok_and(|m| m.len() > 1000), "{}", f.display());
        }
    }
    // Every PNG decodes to a whole plot.
    let mut pngs = 0;
    for e in std::fs::read_dir(out.join("plots")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "png") {
            let img = image::open(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert_eq!((img.width(), img.height()), (900, 560), "{}", p.display());
            pngs += 1;
        }
    }
    assert_eq!(pngs, plots);
    // The command, versions, machine and the data's provenance are on the page.
    for id in [
        "command",
        "winners",
        "summary",
        "per-kib",
        "cells",
        "versions",
        "machine",
        "data-provenance",
    ] {
        assert!(text.contains(&format!("id=\"{id}\"")), "no #{id}");
    }
    assert!(text.contains("sweep --model none"), "the command is not shown");
    let tables = text.matches("<table").count();
    assert!(tables >= 6, "{tables} tables");
    let Some(browser) = chromium() else {
        assert!(std::env::var_os("CI").is_none(), "CI installs chromium; it is missing");
        eprintln!("chromium not installed: the report was not rendered");
        return;
    };
    let url = format!("file://{}", html.display());
    assert_laid_out(browser, &url, tables, plots);
    let shot = out.join("report.png");
    let headless = HEADLESS;
    let o = Command::new(browser)
        .args(headless)
        .args(["--window-size=1100,4000", "--hide-scrollbars"])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .expect("chromium runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 50_000,
        "{} B screenshot",
        png.len()
    );
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn a_sweep_killed_mid_run_keeps_whole_reports_and_finishes_the_rest() {
    let out = std::env::temp_dir().join(format!("edgecl-sweep-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let cells = out.join("cells");
    let reports = || -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&cells)
            .map(|d| {
                d.filter_map(|e| {
                    let p = e.ok()?.path();
                    let name = p.file_name()?.to_string_lossy().into_owned();
                    name.ends_with(".json").then(|| Some((name, std::fs::read(&p).ok()?)))?
                })
                .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    // Nine cells of 400 updates a task, on `jobs` threads.
    let grid = |jobs: &str| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_edgecl"));
        c.args(["sweep", "--model", "none", "--iters", "400", "--budgets", "16k,32k,64k"])
            .args([
                "--strategies",
                "naive,si,replay",
                "--seeds",
                "1",
                "-q",
                "--jobs",
                jobs,
                "--out",
            ])
            .arg(&out);
        c
    };
    let mut child = grid("1")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("edgecl runs");
    let started = std::time::Instant::now();
    while reports().len() < 2 {
        assert!(started.elapsed().as_secs() < 300, "no cell finished in 5 minutes");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sweep ended before it was killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = reports();
    assert!(before.len() >= 2 && before.len() < 9, "{} cells finished", before.len());
    for (name, bytes) in &before {
        let v: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(v.get("report").is_some() || v.get("fits").is_some(), "{name}");
    }
    let o = grid("2").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let printed = String::from_utf8_lossy(&o.stdout);
    let want = format!(
        "9 cells: {} run now, {} finished before",
        9 - before.len(),
        before.len()
    );
    assert!(printed.contains(&want), "{printed}");
    let after = reports();
    assert_eq!(after.len(), 9);
    for (name, bytes) in &before {
        let again = &after.iter().find(|(n, _)| n == name).unwrap().1;
        assert_eq!(again, bytes, "{name} was run again");
    }
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn a_folder_keeps_one_sweeps_settings_and_grids_are_checked() {
    let out = std::env::temp_dir().join(format!("edgecl-sweep-settings-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_edgecl"))
            .args(["sweep", "--model", "none", "--iters", "20", "--budgets", "16k"])
            .args(["--strategies", "naive", "--seeds", "1", "-q", "--out"])
            .arg(&out)
            .args(extra)
            .output()
            .unwrap()
    };
    assert!(run(&[]).status.success());
    // Other settings into the same folder would mix cells of two sweeps; another setting
    // is another cell of the grid (its file names it), and may join.
    let o = run(&["--gamma", "0.5"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("other settings"), "{err}");
    // Grids: a strategy twice, no seeds, an unknown generator.
    for (args, want) in [
        (&["--strategies", "naive,naive"][..], "listed twice"),
        (&["--seeds", "0"][..], "at least one seed"),
        (&["--strategies", "replay:tape"][..], "unknown generator"),
        (&["--boards", "rp-pico,rp-pico"][..], "`rp-pico` is listed twice"),
        (&["--settings", "class-il,class-il"][..], "`class-il` is listed twice"),
        (
            &["--boards", "rp-pico", "--budgets", "1m"][..],
            "more than rp-pico's learner budget",
        ),
        (&["--partition", "short"][..], "go with --slurm"),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_edgecl"))
            .args(["sweep", "--model", "none", "--out"])
            .arg(out.join("other"))
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(want), "{args:?}: {err}");
    }
    let o = run(&["--setting", "task-il"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.join("cells/split-task-il-naive-16384-1.json").is_file());
    assert!(out.join("cells/split-class-il-naive-16384-1.json").is_file());
    // sweep-cell: an index past cells.txt, a folder that is no sweep, a cells.txt edited
    // by hand; each a one-line error that changes nothing.
    let cell = |dir: &Path, index: &str| {
        Command::new(env!("CARGO_BIN_EXE_edgecl"))
            .arg("sweep-cell")
            .arg(dir)
            .arg(index)
            .output()
            .unwrap()
    };
    let o = cell(&out, "1");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("lists 1 cells (0 to 0)"), "{err}");
    let o = cell(&out.join("nowhere"), "0");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("cells.txt"), "{err}");
    let o = cell(&out, "0");
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && said.contains("has its report: not run again"),
        "{said}"
    );
    let listing = out.join("cells.txt");
    let text = std::fs::read_to_string(&listing).unwrap();
    std::fs::write(&listing, text.replace("16384\t1\t", "16384\t2\t")).unwrap();
    let o = cell(&out, "0");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("line 2") && err.contains("name the file"),
        "{err}"
    );
    std::fs::remove_dir_all(&out).unwrap();
}

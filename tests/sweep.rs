#![cfg(feature = "std")]
//! `edgecl sweep`: every cell's report lands in OUT/cells/, and a sweep stopped half-way
//! and started again runs only the missing cells.

use std::path::Path;
use std::process::Command;

fn sweep(out: &Path, extra: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_edgecl"))
        .args([
            "sweep",
            "--model",
            "none",
            "--iters",
            "30",
            "--budgets",
            "16k,32k",
            "--strategies",
            "naive,si",
        ])
        .args(["--seeds", "1", "--jobs", "2", "-q", "--out"])
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
    let first = sweep(&out, &["--max-cells", "2"]);
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
    let second = sweep(&out, &[]);
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
    let third = sweep(&out, &[]);
    assert!(third.contains("4 cells: 0 run now, 4 finished before"), "{third}");
    std::fs::remove_dir_all(&out).unwrap();
}

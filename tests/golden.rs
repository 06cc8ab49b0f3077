#![cfg(feature = "std")]
//! Results that must not move when the code is reorganised: the README's first matrix, a
//! report per strategy family, and the lines the firmware prints (its host twin, which
//! `tests/firmware.rs` holds equal to QEMU's run).
//!
//! The expected values live in `tests/golden/`, written from the tree before a change by
//! `EDGECL_BLESS=1 cargo test --release --test golden` (only then; a missing file is a
//! failure). A report is compared field by field with the times taken out: every number
//! of the accuracy matrix, the averages, the bytes and the final losses to the last bit.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn edgecl(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_edgecl"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "edgecl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn bless() -> bool {
    std::env::var_os("EDGECL_BLESS").is_some()
}

fn golden(name: &str) -> PathBuf {
    root().join("tests/golden").join(name)
}

/// Compares `got` with the golden file `name`, or writes it under `EDGECL_BLESS`.
fn check_text(name: &str, got: &str) {
    let path = golden(name);
    if bless() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (write it with EDGECL_BLESS=1 from the tree before the change)",
            path.display()
        )
    });
    if want != got {
        let line = want.lines().zip(got.lines()).position(|(a, b)| a != b);
        panic!(
            "{name} changed (first differing line {line:?}):\n--- golden\n{want}\n--- now\n{got}",
            line = line.map(|l| l + 1)
        );
    }
}

/// A report's JSON without what depends on the clock.
fn timeless(mut v: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.retain(|k, _| !k.contains("seconds") && !k.contains("per_second") && k != "data");
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

/// The reports of one command per family of defences (and their options), short runs.
const CASES: &[(&str, &[&str])] = &[
    ("naive", &["--strategy", "naive"]),
    ("joint", &["--strategy", "joint"]),
    ("ewc", &["--strategy", "ewc"]),
    (
        "ewc-f32-sampled",
        &["--strategy", "ewc", "--storage", "f32", "--fisher", "sampled"],
    ),
    (
        "online-ewc-online",
        &["--strategy", "online-ewc", "--observe", "online"],
    ),
    ("si-task-il", &["--strategy", "si", "--setting", "task-il"]),
    ("mas-linear-quant", &["--strategy", "mas", "--quant", "linear"]),
    ("ewc-lambda-sweep", &["--strategy", "ewc", "--lambda", "1,100"]),
    ("packnet-task-il", &["--strategy", "packnet", "--setting", "task-il"]),
    ("packnet-class-il", &["--strategy", "packnet"]),
    (
        "packnet+si-task-il",
        &["--strategy", "packnet+si", "--setting", "task-il"],
    ),
    (
        "progressive-task-il",
        &["--strategy", "progressive", "--setting", "task-il", "--budget", "192k"],
    ),
    ("replay-gaussian", &["--strategy", "replay", "--budget", "64k"]),
    (
        "replay-gaussian-online-distill",
        &["--strategy", "replay", "--observe", "online", "--distill"],
    ),
    ("replay-buffer", &["--strategy", "replay", "--generator", "buffer"]),
    (
        "replay-vae",
        &[
            "--strategy",
            "replay",
            "--generator",
            "vae",
            "--budget",
            "512k",
            "--vae-hidden",
            "32",
            "--vae-latent",
            "8",
        ],
    ),
    ("si+replay", &["--strategy", "si+replay"]),
    ("packnet+replay", &["--strategy", "packnet+replay"]),
    (
        "naive-sgd-fast-domain-il",
        &[
            "--strategy",
            "naive",
            "--optimizer",
            "sgd",
            "--kernels",
            "fast",
            "--setting",
            "domain-il",
            "--budget",
            "1m",
        ],
    ),
    (
        "naive-pixels-validation",
        &["--strategy", "naive", "--model", "none", "--validation"],
    ),
    (
        "literature-si-task-il",
        &["--protocol", "literature", "--setting", "task-il", "--strategy", "si"],
    ),
    (
        "literature-permuted-packnet",
        &[
            "--protocol",
            "literature",
            "--scenario",
            "permuted",
            "--tasks",
            "3",
            "--setting",
            "task-il",
            "--strategy",
            "packnet",
        ],
    ),
    (
        "literature-rotated-ewc",
        &[
            "--protocol",
            "literature",
            "--scenario",
            "rotated",
            "--tasks",
            "3",
            "--strategy",
            "ewc",
            "--setting",
            "domain-il",
        ],
    ),
];

#[test]
fn every_strategy_family_reports_what_it_reported_before() {
    let dir = std::env::temp_dir().join(format!("edgecl-golden-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Two at a time: the machine's cores.
    let reports: Vec<(String, Value)> = std::thread::scope(|s| {
        let chunks: Vec<_> = CASES.chunks(CASES.len().div_ceil(2)).collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let dir = &dir;
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|(name, args)| {
                            let json = dir.join(format!("{name}.json"));
                            let mut all = vec!["simulate", "-q", "--iters", "150", "--json", json.to_str().unwrap()];
                            all.extend_from_slice(args);
                            edgecl(&all);
                            let v: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
                            (name.to_string(), timeless(v))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let _ = std::fs::remove_dir_all(&dir);
    let mut text = String::new();
    for (name, v) in &reports {
        text += &format!("{name} {}\n", serde_json::to_string(v).unwrap());
    }
    check_text("simulate.jsonl", &text);
}

#[test]
fn the_firmware_prints_the_lines_it_printed_before() {
    for board in ["netduinoplus2", "rp-pico"] {
        let dir = format!("boards/{board}");
        if !root().join(&dir).join("firmware.toml").exists() {
            continue;
        }
        check_text(
            &format!("firmware-{board}.txt"),
            &edgecl(&["simulate", "--firmware", &dir]),
        );
    }
}

/// The README's first command prints the matrix the README shows (times aside).
#[test]
fn the_first_command_prints_the_readme_matrix() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("```text\nedgecl simulate: split class-il")
        .expect("the README's first output block");
    let block = &readme[start + "```text\n".len()..];
    let block = &block[..block.find("```").unwrap()];
    let out = edgecl(&["simulate", "-q"]);
    // Times and speeds differ run to run: drop the columns after the matrix and the last
    // line's clock.
    let untimed = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| {
                let l = match l.find(" s  ") {
                    Some(i) if l.starts_with("after T") => l[..i].rsplit_once(' ').unwrap().0.trim_end(),
                    _ => l,
                };
                match l.rfind(", ") {
                    Some(i) if l.starts_with("peak ") => l[..i].to_string(),
                    _ => l.to_string(),
                }
            })
            .collect()
    };
    assert_eq!(
        untimed(&out),
        untimed(block),
        "the README's first output block and the first command's output"
    );
}

#![cfg(feature = "std")]
//! The `edgecl` command line: determinism, one-line errors on bad data and budgets.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn edgecl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgecl"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("edgecl-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn idx_u8(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        v.extend(d.to_be_bytes());
    }
    v.extend(data);
    v
}

/// A small IDX data folder of 28x28 images; `edit` may spoil any file.
fn data_dir(name: &str, edit: impl Fn(&str, Vec<u8>) -> Vec<u8>) -> PathBuf {
    let d = temp_dir(name);
    let n = 40u32;
    let images: Vec<u8> = (0..n * 784).map(|i| (i % 251) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    for (file, bytes) in [
        ("train-images-idx3-ubyte", idx_u8(&[n, 28, 28], &images)),
        ("train-labels-idx1-ubyte", idx_u8(&[n], &labels)),
        ("t10k-images-idx3-ubyte", idx_u8(&[n, 28, 28], &images)),
        ("t10k-labels-idx1-ubyte", idx_u8(&[n], &labels)),
    ] {
        std::fs::write(d.join(file), edit(file, bytes)).unwrap();
    }
    d
}

fn one_line_error(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, got success; stderr: {err}");
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "`{n}` missing from: {err}");
    }
}

/// A report without its clock readings (and those of its `baseline`, the fine-tune run
/// a `simulate` without `--strategy` writes beside the recommended defence's).
fn report_without_timings(path: &Path) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        v.as_object_mut().unwrap().remove("seconds");
        for t in v["tasks"].as_array_mut().unwrap() {
            let t = t.as_object_mut().unwrap();
            t.remove("seconds");
            t.remove("updates_per_second");
        }
        if let Some(b) = v.get_mut("baseline") {
            strip(b);
        }
    }
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    strip(&mut v);
    v
}

/// Runs `edgecl simulate --quiet ARGS --json DIR/NAME.json`, asserts success, returns the report.
fn simulate_report(dir: &Path, name: &str, args: &[&str]) -> serde_json::Value {
    let json = dir.join(format!("{name}.json"));
    let mut all = vec!["simulate", "--quiet", "--json", json.to_str().unwrap()];
    all.extend(args);
    let out = edgecl(&all);
    assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

#[test]
fn same_seed_gives_the_same_report_to_the_last_bit() {
    let d = temp_dir("determinism");
    for (tag, extra) in [
        ("edge", vec!["--iters", "40"]),
        (
            "literature",
            vec![
                "--protocol",
                "literature",
                "--scenario",
                "permuted",
                "--setting",
                "task-il",
                "--tasks",
                "2",
                "--iters",
                "6",
            ],
        ),
    ] {
        let (a, b) = (d.join(format!("{tag}-a.json")), d.join(format!("{tag}-b.json")));
        for path in [&a, &b] {
            let mut args = vec!["simulate", "--quiet", "--seed", "7", "--json", path.to_str().unwrap()];
            args.extend(&extra);
            let out = edgecl(&args);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        let (ra, rb) = (report_without_timings(&a), report_without_timings(&b));
        assert_eq!(ra, rb, "{tag}: reports differ");
        for field in [
            "scenario",
            "setting",
            "strategy",
            "board",
            "seed",
            "accuracy_matrix",
            "avg_accuracy",
            "bwt",
            "fwt",
            "forgetting",
            "arena_bytes",
            "components",
            "growth_bytes",
        ] {
            assert!(ra.get(field).is_some(), "{tag}: field {field} missing");
        }
        // A different seed trains a different network.
        let c = d.join(format!("{tag}-c.json"));
        let mut args = vec!["simulate", "--quiet", "--seed", "8", "--json", c.to_str().unwrap()];
        args.extend(&extra);
        assert!(edgecl(&args).status.success());
        assert_ne!(report_without_timings(&c)["accuracy_matrix"], ra["accuracy_matrix"]);
    }
}

#[test]
fn simulate_without_a_strategy_runs_fine_tuning_beside_the_recommended_defence() {
    let d = temp_dir("pair");
    let pair = d.join("pair.json");
    let out = edgecl(&["simulate", "--quiet", "--iters", "40", "--json", pair.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let naive = text.find("strategy naive,").expect("the fine-tune run");
    let replay = text.find("strategy replay,").expect("the defence's run");
    assert!(naive < replay, "{text}");
    assert!(text.contains("replay over fine-tune on the same stream: "), "{text}");
    // Each of the two is the run `--strategy` gives alone, to the last bit.
    let alone = |strategy: &str| {
        let path = d.join(format!("{strategy}.json"));
        let out = edgecl(&[
            "simulate",
            "--quiet",
            "--iters",
            "40",
            "--strategy",
            strategy,
            "--json",
            path.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        report_without_timings(&path)
    };
    let mut both = report_without_timings(&pair);
    let baseline = both
        .as_object_mut()
        .unwrap()
        .remove("baseline")
        .expect("the baseline field");
    assert_eq!(baseline, alone("naive"));
    assert_eq!(both, alone("replay"));
}

#[test]
fn simulate_prints_the_accuracy_matrix_and_the_memory_table() {
    let out = edgecl(&["simulate", "--quiet", "--iters", "20"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for needle in [
        "after T5",
        "average accuracy",
        "BWT",
        "weights",
        "optimizer state",
        "budget",
    ] {
        assert!(text.contains(needle), "`{needle}` missing:\n{text}");
    }
}

#[test]
fn plan_over_budget_exits_non_zero_naming_the_component() {
    let out = edgecl(&["plan", "--protocol", "literature", "--board", "netduinoplus2"]);
    one_line_error(&out, &["over budget", "weights", "bytes"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("over by"));
    let ok = edgecl(&["plan", "--board", "netduinoplus2"]);
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).contains("gradients"));
}

#[test]
fn hidden_sizes_the_literature_network_too() {
    let out = edgecl(&["plan", "--protocol", "literature", "--hidden", "50"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("[784, 50, 50, 10]"));
    one_line_error(
        &edgecl(&["plan", "--protocol", "literature", "--hidden", "0"]),
        &["--hidden 0"],
    );
}

#[test]
fn simulate_over_budget_is_a_one_line_error() {
    let out = edgecl(&["simulate", "--quiet", "--protocol", "literature", "--budget", "64k"]);
    one_line_error(&out, &["over budget", "weights"]);
}

#[test]
fn bad_idx_files_are_one_line_errors() {
    let bad_magic = data_dir("magic", |f, mut b| {
        if f.starts_with("train-images") {
            b[0] = 0x42;
        }
        b
    });
    one_line_error(
        &edgecl(&["simulate", "--quiet", "--data", bad_magic.to_str().unwrap()]),
        &["magic", "train-images"],
    );

    let truncated = data_dir("truncated", |f, b| {
        if f.starts_with("t10k-images") {
            b[..b.len() - 100].to_vec()
        } else {
            b
        }
    });
    one_line_error(
        &edgecl(&["simulate", "--quiet", "--data", truncated.to_str().unwrap()]),
        &["t10k-images"],
    );

    let mismatch = data_dir("count", |f, b| {
        if f.starts_with("train-labels") {
            idx_u8(&[39], &b[8..47])
        } else {
            b
        }
    });
    one_line_error(
        &edgecl(&["simulate", "--quiet", "--data", mismatch.to_str().unwrap()]),
        &["40", "39"],
    );

    let unsupported = data_dir("type", |f, mut b| {
        if f.starts_with("train-images") {
            b[2] = 0x0B;
        }
        b
    });
    one_line_error(
        &edgecl(&["simulate", "--quiet", "--data", unsupported.to_str().unwrap()]),
        &["0x0B"],
    );
}

#[test]
fn out_of_range_labels_are_one_line_errors() {
    let d = data_dir("label", |f, mut b| {
        if f.starts_with("t10k-labels") {
            b[8 + 5] = 12;
        }
        b
    });
    one_line_error(
        &edgecl(&["simulate", "--quiet", "--data", d.to_str().unwrap()]),
        &["12", "range"],
    );
}

#[cfg(feature = "onnx")]
mod backbone {
    use super::*;
    use edgecl::host::onnx::BackboneModel;

    fn backbone_file(dir: &Path) -> PathBuf {
        let b = BackboneModel::random_dense(&[784, 24], 2);
        let path = dir.join("backbone.onnx");
        std::fs::write(&path, b.to_onnx().unwrap()).unwrap();
        path
    }

    #[test]
    fn simulate_learns_on_backbone_features() {
        let d = temp_dir("backbone");
        let model = backbone_file(&d);
        let json = d.join("r.json");
        let out = edgecl(&[
            "simulate",
            "--quiet",
            "--iters",
            "30",
            "--backbone",
            model.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(r["backbone"], model.to_str().unwrap());
        assert_eq!(r["learner"]["dims"][0], 24);
    }

    #[test]
    fn the_shipped_model_feeds_the_edge_head() {
        let d = temp_dir("model");
        let r = simulate_report(&d, "r", &["--iters", "20", "--model", "models/fashion-cnn"]);
        assert_eq!(r["backbone"], "models/fashion-cnn/backbone.onnx");
        assert_eq!(r["learner"]["dims"][0], 256);
    }

    #[test]
    fn the_edge_protocol_defaults_to_the_compiled_in_model() {
        let d = temp_dir("default-model");
        let report = |extra: &[&str]| -> serde_json::Value {
            let json = d.join("r.json");
            let mut args = vec!["simulate", "--quiet", "--iters", "5", "--json", json.to_str().unwrap()];
            args.extend(extra);
            let out = edgecl(&args);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
        };
        let r = report(&[]);
        assert_eq!(r["backbone"], "fashion-cnn");
        assert_eq!(r["learner"]["dims"][0], 256);
        let r = report(&["--model", "none"]);
        assert!(r["backbone"].is_null());
        assert_eq!(r["learner"]["dims"][0], 196);
        one_line_error(
            &edgecl(&["simulate", "--quiet", "--model", "no-such-model"]),
            &["no-such-model", "fashion-cnn", "none"],
        );
        one_line_error(
            &edgecl(&[
                "simulate",
                "--quiet",
                "--protocol",
                "literature",
                "--model",
                "fashion-cnn",
            ]),
            &["literature"],
        );
        // The plan sizes the head for the backbone's 256 features unless told otherwise.
        let plan = |extra: &[&str]| {
            let mut args = vec!["plan"];
            args.extend(extra);
            let out = edgecl(&args);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        assert!(plan(&[]).contains("[256, "), "{}", plan(&[]));
        assert!(plan(&["--model", "none"]).contains("[196, "));
    }

    #[test]
    fn a_truncated_backbone_is_a_one_line_error_naming_the_file() {
        let d = temp_dir("backbone-bad");
        let model = backbone_file(&d);
        let bytes = std::fs::read(&model).unwrap();
        std::fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();
        one_line_error(
            &edgecl(&["simulate", "--quiet", "--backbone", model.to_str().unwrap()]),
            &["backbone.onnx"],
        );
    }
}

#[test]
fn penalties_report_their_state_and_do_not_grow_over_ten_tasks() {
    let d = temp_dir("penalties");
    for strategy in ["online-ewc", "si", "mas", "ewc"] {
        let r = simulate_report(
            &d,
            strategy,
            &[
                "--model",
                "none",
                "--scenario",
                "permuted",
                "--setting",
                "domain-il",
                "--tasks",
                "10",
                "--iters",
                "5",
                "--importance-samples",
                "20",
                "--strategy",
                strategy,
            ],
        );
        assert_eq!(r["strategy"], strategy);
        assert_eq!(r["growth_bytes"], 0, "{strategy}");
        assert_eq!(r["learner"]["penalty"]["method"], strategy);
        assert_eq!(r["learner"]["penalty"]["storage"], "compact-log");
        let names: Vec<&str> = r["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        for c in ["importance", "importance scales", "anchors", "importance sums"] {
            assert!(names.contains(&c), "{strategy}: no `{c}` in {names:?}");
        }
    }
    // A lambda list is chosen on a validation split and reported.
    let r = simulate_report(
        &d,
        "sweep",
        &[
            "--model",
            "none",
            "--iters",
            "5",
            "--strategy",
            "si",
            "--lambda",
            "0.5,50",
        ],
    );
    let sweep = r["lambda_sweep"].as_array().unwrap();
    assert_eq!(sweep.len(), 2);
    let acc = |t: &serde_json::Value| t["validation_avg_accuracy"].as_f64().unwrap();
    let best = sweep.iter().map(acc).fold(f64::MIN, f64::max);
    let chosen = sweep
        .iter()
        .find(|t| t["lambda"] == r["learner"]["penalty"]["lambda"])
        .expect("the chosen lambda is one of those tried");
    assert_eq!(acc(chosen), best);
    one_line_error(
        &edgecl(&["simulate", "--quiet", "--strategy", "naive", "--lambda", "3"]),
        &["--lambda", "penalty"],
    );
    one_line_error(&edgecl(&["simulate", "--quiet", "--strategy", "ewc+si"]), &["combine"]);
}

/// At edge scale, a penalised head plans within 64 KB and the report shows the plan's bytes.
#[test]
fn the_plan_and_the_report_agree_on_a_penalised_edge_head_in_64k() {
    let d = temp_dir("plan-report");
    for strategy in ["si", "online-ewc"] {
        let args = ["--strategy", strategy, "--budget", "64k", "--setting", "task-il"];
        let plan = edgecl(&[&["plan"][..], &args[..]].concat());
        assert!(plan.status.success(), "{}", String::from_utf8_lossy(&plan.stderr));
        let plan = String::from_utf8_lossy(&plan.stdout).into_owned();
        let r = simulate_report(&d, strategy, &[&["--iters", "5"][..], &args[..]].concat());
        let total = r["arena_bytes"].as_u64().unwrap();
        assert!(total <= 64 * 1024, "{strategy}: {total} bytes");
        assert!(r["learner"]["parameters"].as_u64().unwrap() >= 1000);
        for c in r["components"].as_array().unwrap() {
            let line = format!(
                "{:<18}{:>12}",
                c["name"].as_str().unwrap(),
                c["bytes"].as_u64().unwrap()
            );
            assert!(plan.contains(&line), "{strategy}: `{line}` not in the plan:\n{plan}");
        }
    }
}

/// PackNet's frozen weights cannot forget: every column of the accuracy matrix is constant
/// below the diagonal (to the last bit), BWT is 0, and task-IL Split-MNIST (literature
/// network, 300 updates per task) averages at least 99.
#[test]
fn packnet_never_forgets_on_task_il_split_mnist() {
    let d = temp_dir("packnet");
    let r = simulate_report(
        &d,
        "split",
        &[
            "--protocol",
            "literature",
            "--setting",
            "task-il",
            "--strategy",
            "packnet",
            "--iters",
            "300",
        ],
    );
    let m: Vec<Vec<f64>> = serde_json::from_value(r["accuracy_matrix"].clone()).unwrap();
    for j in 0..m.len() {
        for row in &m[j..] {
            assert_eq!(row[j].to_bits(), m[j][j].to_bits(), "task {} changed: {m:?}", j + 1);
        }
    }
    assert_eq!(r["bwt"].as_f64().unwrap(), 0.0);
    let avg = r["avg_accuracy"].as_f64().unwrap();
    assert!(avg >= 99.0, "average accuracy {avg}");
    let p = &r["learner"]["packnet"];
    assert_eq!(p["mask_bits"], 3, "ceil(log2(5 + 1))");
    assert_eq!(p["weights_per_task"].as_array().unwrap().len(), 5);
    assert_eq!(r["growth_bytes"], 0);
}

/// Ten tasks: the owner masks are 4 bits per weight and their bytes after task 10 are
/// those after task 1; class-incremental use reports how often the task was inferred.
#[test]
fn packnet_masks_do_not_grow_and_class_il_reports_task_inference() {
    let d = temp_dir("packnet-masks");
    let r = simulate_report(
        &d,
        "permuted",
        &[
            "--model",
            "none",
            "--scenario",
            "permuted",
            "--setting",
            "task-il",
            "--tasks",
            "10",
            "--iters",
            "20",
            "--strategy",
            "packnet+si",
        ],
    );
    assert_eq!(r["strategy"], "packnet+si");
    assert_eq!(r["learner"]["penalty"]["method"], "si");
    assert_eq!(r["learner"]["packnet"]["mask_bits"], 4);
    assert_eq!(r["growth_bytes"], 0);
    let per_task = r["tasks"].as_array().unwrap();
    assert_eq!(per_task.len(), 10);
    assert!(per_task.iter().all(|t| t["arena_bytes"] == per_task[0]["arena_bytes"]));
    let owned = r["learner"]["packnet"]["weights_per_task"].as_array().unwrap();
    assert!(owned.iter().all(|n| n.as_u64().unwrap() > 0), "{owned:?}");

    let r = simulate_report(
        &d,
        "class-il",
        &["--model", "none", "--iters", "30", "--strategy", "packnet"],
    );
    let inferred: Vec<Vec<f64>> = serde_json::from_value(r["task_inference_accuracy"].clone()).unwrap();
    assert_eq!(inferred.len(), 5);
    assert_eq!(
        inferred[0],
        vec![100.0, 0.0, 0.0, 0.0, 0.0],
        "one task learned: every sample goes to it"
    );
    one_line_error(
        &edgecl(&["simulate", "--quiet", "--strategy", "packnet+joint"]),
        &["combine"],
    );
    one_line_error(
        &edgecl(&["simulate", "--quiet", "--strategy", "packnet", "--prune-ratio", "1"]),
        &["prune ratio"],
    );
}

/// Progressive columns at edge scale: Split-MNIST's five tasks plan and run within a
/// 192 KB budget (the plan reserving the columns that fit), old columns never forget, and
/// a run needing more columns than fit is refused up front with the cap.
#[test]
fn progressive_columns_fit_192_kb_and_refuse_a_task_past_the_cap() {
    let d = temp_dir("progressive");
    let args = ["--strategy", "progressive", "--setting", "task-il", "--budget", "192k"];
    let plan = edgecl(&[&["plan"][..], &args[..]].concat());
    assert!(plan.status.success(), "{}", String::from_utf8_lossy(&plan.stderr));
    assert!(String::from_utf8_lossy(&plan.stdout).contains("the plan reserves 5 columns"));
    let r = simulate_report(&d, "split", &[&["--iters", "20"][..], &args[..]].concat());
    let p = &r["learner"]["progressive"];
    assert_eq!(p["max_columns"], 5);
    assert_eq!(p["columns_used"], 5);
    assert!(r["arena_bytes"].as_u64().unwrap() <= 192 * 1024);
    assert_eq!(r["growth_bytes"], 0);
    assert_eq!(r["bwt"].as_f64().unwrap(), 0.0);
    // Six tasks at the same column width: the sixth is refused before anything trains.
    let out = edgecl(&[
        "simulate",
        "--quiet",
        "--strategy",
        "progressive",
        "--setting",
        "task-il",
        "--budget",
        "192k",
        "--column-width",
        "18",
        "--scenario",
        "rotated",
        "--tasks",
        "6",
    ]);
    one_line_error(&out, &["task", "at most", "columns"]);
    one_line_error(
        &edgecl(&[
            "simulate",
            "--quiet",
            "--strategy",
            "progressive",
            "--setting",
            "class-il",
        ]),
        &["task-il"],
    );
}

/// Every replay generator runs in the arena (planned up front, `growth_bytes` 0 from task
/// 1 to task 5), is reported, and the buffer defaults to the Gaussian's bytes.
#[test]
fn every_replay_generator_is_planned_and_does_not_grow() {
    let d = temp_dir("replay");
    let mut bytes = std::collections::HashMap::new();
    for (strategy, generator, component) in [
        ("replay", "gaussian", "generator factors"),
        ("online-ewc+replay", "gaussian", "generator working slots"),
        ("replay", "buffer", "buffer rows"),
        ("replay", "vae", "vae replay decoder"),
        ("packnet+replay", "gaussian", "packnet owners"),
    ] {
        let r = simulate_report(
            &d,
            strategy,
            &[
                "--model",
                "none",
                "--iters",
                "30",
                "--strategy",
                strategy,
                "--generator",
                generator,
                "--importance-samples",
                "20",
                "--budget",
                "512k",
            ],
        );
        assert_eq!(r["strategy"], strategy);
        assert_eq!(r["growth_bytes"], 0, "{strategy} {generator}");
        let tasks = r["tasks"].as_array().unwrap();
        assert_eq!(tasks.len(), 5);
        assert_eq!(tasks[0]["arena_bytes"], tasks[4]["arena_bytes"]);
        let names: Vec<&str> = r["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&component), "{strategy}: no `{component}` in {names:?}");
        let replay = &r["learner"]["replay"];
        assert_eq!(replay["generator"], generator);
        assert_eq!(replay["ratio"], "balanced");
        let b = replay["bytes"].as_u64().unwrap();
        assert!(b > 0 && b < 512 * 1024);
        if strategy == "replay" {
            bytes.insert(generator, b);
        }
        match generator {
            "gaussian" => assert_eq!((replay["rank"].as_u64(), replay["slots"].as_u64()), (Some(4), Some(2))),
            "buffer" => assert!(replay["rows"].as_u64().unwrap() > 10),
            _ => assert_eq!(replay["likelihood"], "gaussian"),
        }
    }
    let (g, b) = (bytes["gaussian"], bytes["buffer"]);
    assert!(b <= g && b + 300 > g, "buffer {b} bytes against the Gaussian's {g}");
}

#[test]
fn a_sensor_folder_with_side_files_runs_and_its_report_names_them() {
    let d = temp_dir("sensor");
    // 40 windows of 4 x 2 (u8), 4 classes, a subject and a side per window, both splits.
    for split in ["train", "test"] {
        let n = 40u32;
        let windows: Vec<u8> = (0..n * 8).map(|i| ((i * 37) % 251) as u8).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 4) as u8).collect();
        let subjects: Vec<u8> = (0..n).map(|i| (i / 10) as u8).collect();
        std::fs::write(
            d.join(format!("{split}-signals-idx3-ubyte")),
            idx_u8(&[n, 4, 2], &windows),
        )
        .unwrap();
        std::fs::write(d.join(format!("{split}-labels-idx1-ubyte")), idx_u8(&[n], &labels)).unwrap();
        std::fs::write(d.join(format!("{split}-subjects-idx1-ubyte")), idx_u8(&[n], &subjects)).unwrap();
        std::fs::write(d.join(format!("{split}-side-idx1-ubyte")), idx_u8(&[n], &labels)).unwrap();
    }
    let data = d.to_str().unwrap();
    let r = simulate_report(
        &d,
        "sensor",
        &[
            "--data",
            data,
            "--protocol",
            "literature",
            "--strategy",
            "naive",
            "--iters",
            "2",
        ],
    );
    assert_eq!(r["side_files"], serde_json::json!(["side", "subjects"]));
    // Two tasks of two classes (the literature protocol's seeded class order).
    assert_eq!(r["task_classes"].as_array().map(|t| t.len()), Some(2));
    // A test split without the train split's side files is refused, naming both.
    std::fs::remove_file(d.join("test-side-idx1-ubyte")).unwrap();
    let out = edgecl(&[
        "simulate",
        "--quiet",
        "--data",
        data,
        "--protocol",
        "literature",
        "--iters",
        "2",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("side files"), "{err}");
    let _ = std::fs::remove_dir_all(&d);
}

#![cfg(feature = "onnx")]
//! Sensor windows as first-class data (the watch folder in `data/seglearn-watch`, 100 x 6
//! IMU windows, 7 exercises, side files `subjects` and `side`): the folder as it comes on
//! the shipped sensor backbone, per-wearer tasks, and each bad input with its message.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const WATCH: &str = "data/seglearn-watch";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn edgecl_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgecl"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn edgecl(args: &[&str]) -> Output {
    edgecl_in(root(), args)
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("edgecl-sensor-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn report(out: &Output, json: &Path) -> Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap()
}

fn fails_with(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "`{n}` missing from: {err}");
    }
}

fn idx(kind: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, kind, dims.len() as u8];
    for d in dims {
        v.extend(d.to_be_bytes());
    }
    v.extend(data);
    v
}

/// A sensor folder: `n` f32 windows of `shape` per split (the test split's shape may
/// differ), 4 classes, a `subjects` side file; `edit` may change any file's values.
fn sensor_dir(
    name: &str,
    train: [u32; 2],
    test: [u32; 2],
    edit: impl Fn(&str, &mut Vec<f32>, &mut Vec<u8>),
) -> PathBuf {
    let d = temp_dir(name);
    let n = 40u32;
    for (split, [t, c]) in [("train", train), ("test", test)] {
        let mut x: Vec<f32> = (0..n * t * c).map(|i| ((i * 37) % 101) as f32 / 10.0 - 5.0).collect();
        let mut subjects: Vec<u8> = (0..n).map(|i| (i / 10) as u8 + 1).collect();
        edit(split, &mut x, &mut subjects);
        let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_be_bytes()).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 4) as u8).collect();
        let write = |file: &str, b: Vec<u8>| std::fs::write(d.join(format!("{split}-{file}")), b).unwrap();
        write("signals-idx3-float", idx(0x0D, &[n, t, c], &bytes));
        write("labels-idx1-ubyte", idx(0x08, &[n], &labels));
        write("subjects-idx1-ubyte", idx(0x08, &[subjects.len() as u32], &subjects));
    }
    d
}

#[test]
fn the_watch_folder_runs_as_it_comes_on_the_shipped_sensor_backbone() {
    let d = temp_dir("watch");
    let json = d.join("watch.json");
    // No flag but --data (and where the report goes).
    let out = edgecl(&["simulate", "--quiet", "--data", WATCH, "--json", json.to_str().unwrap()]);
    let r = report(&out, &json);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("tasks (classes): 0,1 | 2,3 | 4,5 | 6"), "{text}");
    for run in [&r, &r["baseline"]] {
        assert_eq!(run["backbone"], "watch03-conv1d");
        assert_eq!(run["task_classes"], serde_json::json!([[0, 1], [2, 3], [4, 5], [6]]));
        assert_eq!(run["side_files"], serde_json::json!(["side", "subjects"]));
        assert_eq!(run["setting"], "class-il");
        assert!(run.get("left_out_classes").is_none(), "no class is left out");
        assert_eq!(run["accuracy_matrix"].as_array().unwrap().len(), 4);
    }
    // The board's recommended defence beats fine-tuning on the same stream.
    let (defence, naive) = (
        r["avg_accuracy"].as_f64().unwrap(),
        r["baseline"]["avg_accuracy"].as_f64().unwrap(),
    );
    assert!(defence > naive + 20.0, "{defence} against fine-tune's {naive}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn tasks_by_subjects_make_one_domain_incremental_task_per_wearer() {
    let d = temp_dir("wearers");
    let json = d.join("wearers.json");
    let out = edgecl(&[
        "simulate",
        "--quiet",
        "--data",
        WATCH,
        "--tasks-by",
        "subjects",
        "--strategy",
        "naive",
        "--iters",
        "60",
        "--json",
        json.to_str().unwrap(),
    ]);
    let r = report(&out, &json);
    assert_eq!(r["setting"], "domain-il");
    let values: Vec<u64> = (1..=10).collect();
    assert_eq!(r["tasks_by"]["side"], "subjects");
    assert_eq!(r["tasks_by"]["values"], serde_json::json!(values));
    // The watch is split by wearer: every wearer's test windows are held out of its own.
    assert_eq!(r["tasks_by"]["cut"], serde_json::json!(values));
    assert_eq!(r["accuracy_matrix"].as_array().unwrap().len(), 10);
    assert!(r["task_classes"][0].as_array().unwrap().len() == 7);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn windows_without_a_backbone_pool_over_time_per_channel() {
    let d = temp_dir("pooled");
    let json = d.join("pooled.json");
    let out = edgecl(&[
        "simulate",
        "--quiet",
        "--data",
        WATCH,
        "--model",
        "none",
        "--strategy",
        "naive",
        "--iters",
        "20",
        "--json",
        json.to_str().unwrap(),
    ]);
    let r = report(&out, &json);
    // 100 x 6 pooled over 4 steps per channel: 25 x 6 inputs.
    assert_eq!(r["learner"]["dims"][0], 150);
    let norm = r["channel_norm"].as_array().unwrap();
    assert_eq!(norm.len(), 6);
    assert!(norm.iter().all(|c| c[1].as_f64().unwrap() > 0.0));
    let _ = std::fs::remove_dir_all(&d);
}

/// `edgecl simulate` over the folder `d` with pooled windows (no backbone), 2 updates.
fn pooled_run(d: &Path) -> Output {
    edgecl(&[
        "simulate",
        "-q",
        "--data",
        d.to_str().unwrap(),
        "--model",
        "none",
        "--iters",
        "2",
    ])
}

#[test]
fn a_window_of_another_shape_is_refused() {
    let d = sensor_dir("shape", [8, 2], [4, 4], |_, _, _| {});
    let out = pooled_run(&d);
    fails_with(&out, &["train samples have shape [8, 2] but test samples [4, 4]"]);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_nan_in_a_window_is_refused() {
    let d = sensor_dir("nan", [8, 2], [8, 2], |split, x, _| {
        if split == "train" {
            x[21] = f32::NAN;
        }
    });
    let out = pooled_run(&d);
    fails_with(
        &out,
        &[
            "train-signals-idx3-float",
            "non-finite sample value (NaN or Inf) at flat element index 21",
        ],
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_side_file_of_another_length_is_refused() {
    let d = sensor_dir("side", [8, 2], [8, 2], |split, _, subjects| {
        if split == "test" {
            subjects.truncate(39);
        }
    });
    let out = pooled_run(&d);
    fails_with(&out, &["side file `subjects` holds 39 values for 40 samples"]);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn tasks_by_a_side_file_with_one_value_is_refused() {
    let d = sensor_dir("one-value", [8, 2], [8, 2], |_, _, subjects| {
        subjects.iter_mut().for_each(|s| *s = 3)
    });
    let data = d.to_str().unwrap();
    let out = edgecl(&[
        "simulate",
        "-q",
        "--data",
        data,
        "--model",
        "none",
        "--tasks-by",
        "subjects",
    ]);
    fails_with(
        &out,
        &["--tasks-by subjects: every sample has the value 3, which makes one task; a sequence needs two or more"],
    );
    let out = edgecl(&[
        "simulate",
        "-q",
        "--data",
        data,
        "--model",
        "none",
        "--tasks-by",
        "wrist",
    ]);
    fails_with(&out, &["--tasks-by wrist: no such side file (the data has subjects)"]);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_shape_no_shipped_backbone_takes_says_which_model_to_pass() {
    let d = sensor_dir("no-backbone", [8, 2], [8, 2], |_, _, _| {});
    let out = edgecl(&["simulate", "-q", "--data", d.to_str().unwrap(), "--iters", "2"]);
    fails_with(
        &out,
        &["no shipped backbone takes samples of shape [8, 2]", "--model none"],
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_stray_label_is_named_with_its_index_and_the_flag_that_sets_the_class_count() {
    let d = temp_dir("stray");
    let n = 40u32;
    let images: Vec<u8> = (0..n * 784).map(|i| (i % 251) as u8).collect();
    let mut labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    let test_labels = labels.clone();
    labels[17] = 255;
    for (file, bytes) in [
        ("train-images-idx3-ubyte", idx(0x08, &[n, 28, 28], &images)),
        ("train-labels-idx1-ubyte", idx(0x08, &[n], &labels)),
        ("t10k-images-idx3-ubyte", idx(0x08, &[n, 28, 28], &images)),
        ("t10k-labels-idx1-ubyte", idx(0x08, &[n], &test_labels)),
    ] {
        std::fs::write(d.join(file), bytes).unwrap();
    }
    let data = d.to_str().unwrap();
    let out = edgecl(&["simulate", "-q", "--data", data, "--model", "none", "--iters", "2"]);
    fails_with(&out, &["training label 17 is 255", "--num-classes N"]);
    // With the class count given, the stray label itself is named.
    let out = edgecl(&[
        "simulate",
        "-q",
        "--data",
        data,
        "--model",
        "none",
        "--num-classes",
        "10",
    ]);
    fails_with(
        &out,
        &[
            "label 255 at index 17 is out of range for 10 classes",
            "--num-classes N",
        ],
    );
    // --classes-per-task over the class count.
    std::fs::write(d.join("train-labels-idx1-ubyte"), idx(0x08, &[n], &test_labels)).unwrap();
    let out = edgecl(&[
        "simulate",
        "-q",
        "--data",
        data,
        "--model",
        "none",
        "--classes-per-task",
        "11",
    ]);
    fails_with(
        &out,
        &["--classes-per-task 11: the data has 10 classes, so a task holds at most 10"],
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// `edgecl export --board BOARD --sign KEY --out OUT`, run in `dir`.
fn export(dir: &Path, board: &str, key: &str, out: &str) -> Output {
    edgecl_in(dir, &["export", "--board", board, "--sign", key, "--out", out])
}

#[test]
fn export_refuses_a_public_key_as_the_secret_and_runs_from_anywhere() {
    let d = temp_dir("export");
    let img = d.join("n.img");
    let key = |k: &str| root().join("boards").join(k).display().to_string();
    // From another directory, the shipped model and firmware.toml are found.
    let out = export(&d, "netduinoplus2", &key("dev-key"), img.to_str().unwrap());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        std::fs::read(&img).unwrap(),
        std::fs::read(root().join("boards/flash/netduinoplus2.img")).unwrap(),
        "the shipped image, made from anywhere"
    );
    let out = export(&d, "netduinoplus2", &key("dev-key.pub"), "x.img");
    fails_with(
        &out,
        &[
            "dev-key.pub is a public key (edgecl-public-key)",
            "a secret key is wanted here",
        ],
    );
    assert!(!d.join("x.img").exists(), "nothing is written");
    // A key without its tag cannot be told apart.
    std::fs::write(
        d.join("bare.key"),
        "b28f51dae6721761300e4ae8ff68f0745ffeb2657edf783fd8c64c1aa1483240\n",
    )
    .unwrap();
    let out = export(&d, "netduinoplus2", "bare.key", "x.img");
    fails_with(&out, &["bare.key holds a key without its tag"]);
    // A Linux board has no firmware.toml: the run config is asked for.
    let out = export(&d, "raspberry-pi-4", &key("dev-key"), "x.img");
    fails_with(&out, &["--config FILE is needed for raspberry-pi-4"]);
    // keygen's files carry their tags and export signs with them.
    let out = edgecl_in(&d, &["keygen", "--out", "owner.key"]);
    assert!(out.status.success());
    assert!(std::fs::read_to_string(d.join("owner.key"))
        .unwrap()
        .starts_with("edgecl-secret-key "));
    assert!(std::fs::read_to_string(d.join("owner.key.pub"))
        .unwrap()
        .starts_with("edgecl-public-key "));
    let out = export(&d, "netduinoplus2", "owner.key.pub", "x.img");
    fails_with(&out, &["owner.key.pub is a public key"]);
    let out = export(&d, "netduinoplus2", "owner.key", "x.img");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&d);
}

/// The watch's flash images from the command line, as the README's "Sensor windows on the
/// MCU" writes them, run by `simulate --firmware` with them; a task list naming a class
/// the data lacks, a class twice, and 4-bit windows are refused.
#[test]
fn device_data_writes_the_watch_images_and_simulate_runs_the_firmware_loop_on_them() {
    let d = temp_dir("device-data");
    let out = d.display().to_string();
    let data = |extra: &[&str]| {
        let mut args = vec![
            "device-data",
            "--model",
            "models/watch03-conv1d",
            "--data",
            WATCH,
            "--train-per-task",
            "20",
            "--test-per-task",
            "10",
            "--out",
            &out,
        ];
        args.extend_from_slice(extra);
        edgecl(&args)
    };
    let o = data(&["--tasks", "0,1/2,3/4,5/6"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("backbone.bin: 34028 bytes"), "{text}");
    assert!(text.contains("on the stream's 40 held-out samples"), "{text}");
    let image = d.join("watch.img").display().to_string();
    let o = edgecl(&[
        "export",
        "--board",
        "netduinoplus2",
        "--model",
        "models/watch03-conv1d",
        "--config",
        "boards/netduinoplus2/watch.toml",
        "--sign",
        "boards/dev-key",
        "--out",
        &image,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stream = d.join("stream.bin").display().to_string();
    let o = edgecl(&[
        "simulate",
        "--firmware",
        "boards/netduinoplus2",
        "--firmware-image",
        &image,
        "--firmware-stream",
        &stream,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("stream 4 tasks x (20 train + 10 test) at 8 bits"),
        "{text}"
    );
    assert_eq!(text.lines().filter(|l| l.contains(" after task ")).count(), 8, "{text}");
    fails_with(
        &data(&["--tasks", "0,1/7"]),
        &["--tasks names class 7", "classes 0 to 6"],
    );
    fails_with(&data(&["--tasks", "0,1/1,2"]), &["names a class twice"]);
    fails_with(
        &data(&["--tasks", "0,1/2,3", "--bits", "4"]),
        &["a window's values are stored in 8 bits"],
    );
    let _ = std::fs::remove_dir_all(&d);
}

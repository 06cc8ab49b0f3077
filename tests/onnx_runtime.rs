//! An ONNX backbone written by edgecl passes `onnx.checker` and gives tract's features
//! under onnxruntime (through `tests/onnx_check.py`, with the interpreter named by
//! `EDGECL_PYTHON`, default `python3`). Where that Python lacks onnx, onnxruntime or
//! numpy the test says so and passes; `.ci/run` installs them, so CI always checks.
#![cfg(feature = "onnx")]

use edgecl::host::onnx::{Backbone, BackboneModel};
use edgecl::learner::rng::Rng;
use ndarray::Array2;
use std::path::Path;
use std::process::Command;

/// Runs `tests/onnx_check.py` on `model` with samples `x`: `false` when it skipped.
fn check_with_onnxruntime(model: &Path, x: &Array2<f32>, tolerance_relative: f32) -> bool {
    let dir = std::env::temp_dir().join(format!(
        "edgecl-onnx-check-{}-{}",
        std::process::id(),
        model
            .parent()
            .and_then(|p| p.file_name())
            .map_or("m".into(), |n| n.to_string_lossy())
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let features = Backbone::load(model).unwrap().features(x.view()).unwrap();
    let largest = features.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let raw = |a: &Array2<f32>| a.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>();
    std::fs::write(dir.join("input.f32"), raw(x)).unwrap();
    std::fs::write(dir.join("expected.f32"), raw(&features)).unwrap();

    let python = std::env::var("EDGECL_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/onnx_check.py");
    let out = match Command::new(&python)
        .args([script, model.to_str().unwrap(), dir.join("input.f32").to_str().unwrap()])
        .arg(dir.join("expected.f32"))
        .arg(x.ncols().to_string())
        .arg((tolerance_relative * largest).to_string())
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("skipped: cannot run {python}: {e}");
            return false;
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.code() == Some(2) {
        eprintln!("skipped: {text}");
        return false;
    }
    assert!(
        out.status.success(),
        "{}: onnx_check.py failed: {text}",
        model.display()
    );
    eprintln!("{}: {text}", model.display());
    true
}

#[test]
fn exported_backbone_passes_onnx_checker_and_matches_onnxruntime() {
    let mut rng = Rng::new(11);
    let b = BackboneModel::random_dense(&[784, 64, 32], 11);
    let dir = std::env::temp_dir().join(format!("edgecl-onnx-dense-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("backbone.onnx");
    std::fs::write(&model, b.to_onnx().unwrap()).unwrap();
    let x = Array2::from_shape_fn((33, 784), |_| rng.uniform());
    check_with_onnxruntime(&model, &x, 1e-5);
}

/// Every shipped backbone too (features within 1e-5 of the largest feature): the image
/// CNNs and the sensor windows' 1D-CNN.
#[test]
fn shipped_backbones_pass_onnx_checker_and_match_onnxruntime() {
    let mut rng = Rng::new(12);
    for m in edgecl::host::onnx::SHIPPED {
        let width: usize = m.sample_shape.iter().product();
        let x = Array2::from_shape_fn((17, width), |_| rng.uniform_range(-2.0, 2.0));
        let model = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models")
            .join(m.name)
            .join("backbone.onnx");
        if !check_with_onnxruntime(&model, &x, 1e-5) {
            return;
        }
    }
}

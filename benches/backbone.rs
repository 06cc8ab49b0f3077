//! Latency and throughput of an ONNX backbone in tract (feature `onnx`).
//!
//! The model is a dense ReLU backbone 784-512-256-64 (PyTorch-style random init, seed 1),
//! the size of a small MNIST feature extractor, written by `BackboneModel::to_onnx` to
//! `target/bench-backbone.onnx` so that `benches/onnxruntime_backbone.py` times the very
//! same file. Timed: `Backbone::features` on 1 sample (latency) and on 128 samples
//! (throughput), tract's default single-threaded executor.
//!
//! `EDGECL_BENCH_MODEL=FILE.onnx` times that file instead.
//!
//! ```text
//! cargo bench --features onnx --bench backbone
//! benches/backbone_compare.sh PYTHON     # this, then onnxruntime on the same file
//! ```

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use edgecl::host::onnx::{Backbone, BackboneModel};
use edgecl::learner::rng::Rng;
use ndarray::Array2;
use std::hint::black_box;
use std::path::PathBuf;

fn model_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| "target".into());
    target.join("bench-backbone.onnx")
}

fn benches(c: &mut Criterion) {
    if let Some(model) = std::env::var_os("EDGECL_BENCH_MODEL") {
        // A given ONNX backbone instead of the random dense one.
        let backbone = Backbone::load(std::path::Path::new(&model)).expect("load EDGECL_BENCH_MODEL");
        return bench(c, "backbone_given", &backbone);
    }
    let path = model_path();
    let onnx = BackboneModel::random_dense(&[784, 512, 256, 64], 1)
        .to_onnx()
        .expect("export");
    std::fs::write(&path, onnx).expect("write the bench model");
    let backbone = Backbone::load(&path).expect("load");
    bench(c, "backbone_784_512_256_64", &backbone);
}

fn bench(c: &mut Criterion, group: &str, backbone: &Backbone) {
    let mut rng = Rng::new(2);
    let mut g = c.benchmark_group(group);
    for batch in [1usize, 128] {
        let x = Array2::from_shape_fn((batch, backbone.input_width()), |_| rng.uniform());
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(format!("tract/batch{batch}"), |b| {
            b.iter(|| black_box(backbone.features(black_box(x.view())).expect("features")))
        });
    }
    g.finish();
}

criterion_group!(backbone, benches);
criterion_main!(backbone);

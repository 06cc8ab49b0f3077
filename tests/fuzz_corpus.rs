#![cfg(feature = "onnx")]
//! The fuzz targets' seed corpus (`fuzz/corpus/<target>/`) holds real files, each valid
//! for its decoder. `EDGECL_WRITE_CORPUS=1 cargo test --release --test fuzz_corpus`
//! (re)writes them from the project's own data and models.

use edgecl::device::{signed, Backbone, DeviceConfig, Stream};
use edgecl::host::board::Board;
use edgecl::host::device::{backbone_image, device_image, public_key, stream_image, StreamSpec};
use edgecl::host::idx::{load_split, parse_idx, Split};
use edgecl::host::onnx::BackboneModel;
use edgecl::Learner;
use std::path::{Path, PathBuf};

#[path = "common/edge.rs"]
mod edge;

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target)
}

fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // A checkpoint of the firmware's learner after two tasks.
    let config = DeviceConfig::default().learner(64).unwrap();
    let mut arena = vec![0u8; 1 << 16];
    let mut l = Learner::new(&config, &mut arena).unwrap();
    for t in 0..2u16 {
        edge::edge_task(&mut l, t);
    }
    let ckpt = edge::image(&mut l, 1, 2);
    // Device images: a small backbone, a small MNIST stream, a signed image, the config.
    let backbone = backbone_image(&BackboneModel::random_dense(&[784, 8, 4], 3), &[4.0]).unwrap();
    let train = load_split(&root.join("data/mnist"), Split::Test, None).unwrap();
    let spec = StreamSpec {
        tasks: vec![vec![0, 1], vec![2, 3]],
        train_per_task: 2,
        test_per_task: 2,
        bits: 4,
        seed: 1,
    };
    let stream = stream_image(&train, &train, &spec).unwrap();
    let small = backbone_image(&BackboneModel::random_dense(&[6, 3], 5), &[]).unwrap();
    // A window backbone: 8 steps of 2 channels, a 1-D convolution pooled, a dense layer.
    let window = backbone_image(&small_window_model(), &[3.0, 2.0]).unwrap();
    let config_text = "strategy = \"fine-tune\"\nclasses = 4\nbatch = 2\n";
    let image = device_image(&Board::load("netduinoplus2").unwrap(), config_text, &small, 3, &[7; 32]).unwrap();
    let firmware = std::fs::read_to_string(root.join("boards/netduinoplus2/firmware.toml")).unwrap();
    let mut buf = [0u8; DeviceConfig::MAX_BYTES];
    let config = DeviceConfig::parse(&firmware)
        .unwrap()
        .to_bytes(&mut buf)
        .unwrap()
        .to_vec();
    // IDX: the first three MNIST test images and their labels, uncompressed.
    let mut images = vec![0, 0, 8, 3];
    for d in [3u32, 28, 28] {
        images.extend_from_slice(&d.to_be_bytes());
    }
    images.extend(
        train
            .x
            .rows()
            .into_iter()
            .take(3)
            .flat_map(|r| r.iter().map(|v| (v * 255.0).round() as u8).collect::<Vec<_>>()),
    );
    let mut labels = vec![0, 0, 8, 1, 0, 0, 0, 3];
    labels.extend(train.y[..3].iter().map(|&y| y as u8));
    vec![
        ("checkpoint", "edge-head.ckpt", ckpt),
        ("device_image", "backbone.bin", backbone),
        ("device_image", "window-backbone.bin", window),
        ("device_image", "stream.bin", stream),
        ("device_image", "signed.img", image),
        ("device_image", "config.bin", config),
        ("idx", "images-idx3-ubyte", images),
        ("idx", "labels-idx1-ubyte", labels),
    ]
}

/// `window(8 x 2) -> conv1d(3, k3, pad 1) -> ReLU -> pool -> flatten -> dense(4)`, with
/// fixed weights.
fn small_window_model() -> BackboneModel {
    use edgecl::host::onnx::Layer;
    let ramp = |n: usize, k: f32| (0..n).map(|i| ((i % 7) as f32 - 3.0) * k).collect::<Vec<f32>>();
    BackboneModel {
        input_width: 16,
        layers: vec![
            Layer::Window {
                steps: 8,
                channels: 2,
                mean: vec![0.5, -1.0],
                scale: vec![2.0, 0.25],
            },
            Layer::Conv1d {
                weights: ramp(3 * 2 * 3, 0.1),
                biases: vec![0.1, 0.0, -0.1],
                inputs: 2,
                outputs: 3,
                kernel: 3,
                pad: 1,
            },
            Layer::Relu,
            Layer::MaxPool1d2,
            Layer::Flatten,
            Layer::Dense {
                weights: ramp(4 * 12, 0.05),
                biases: vec![0.0; 4],
                inputs: 12,
                outputs: 4,
            },
        ],
    }
}

#[test]
fn the_fuzz_corpus_holds_real_valid_files() {
    let write = std::env::var_os("EDGECL_WRITE_CORPUS").is_some_and(|v| v == "1");
    for (target, name, bytes) in seeds() {
        let path = corpus(target).join(name);
        if write {
            std::fs::create_dir_all(corpus(target)).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let stored = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let valid = match (target, name) {
            ("checkpoint", _) => edgecl::learner::checkpoint::peek(&stored).is_ok(),
            (_, "backbone.bin") => Backbone::parse(&stored).is_ok(),
            (_, "window-backbone.bin") => Backbone::parse(&stored).is_ok_and(|b| b.takes_windows()),
            (_, "stream.bin") => Stream::parse(&stored).is_ok(),
            (_, "signed.img") => signed::verify(&stored, &public_key(&[7; 32]), "netduinoplus2", 98304).is_ok(),
            (_, "config.bin") => DeviceConfig::from_bytes(&stored).is_ok(),
            _ => parse_idx(&stored).is_ok(),
        };
        assert!(valid, "{} is not a valid file for its decoder", path.display());
        // Every seed is byte for byte what this test makes (the signature too: Ed25519
        // signing is deterministic without noise).
        assert_eq!(stored, bytes, "{} differs from what the test writes", path.display());
    }
}

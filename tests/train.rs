//! Host training (feature `train`): a backbone trained by burn, written as ONNX and run by
//! tract gives the trainer's own features within 1e-5.
#![cfg(feature = "train")]

use edgecl::host::idx::Dataset;
use edgecl::host::onnx::{max_abs_difference, Backbone};
use edgecl::host::train::{train, Arch, TrainConfig, TrainDevice};
use edgecl::learner::rng::Rng;
use ndarray::{s, Array2};

/// Blobs of brightness in one quadrant per class: learnable in a few steps.
fn quadrants(n: usize, seed: u64) -> Dataset {
    let mut rng = Rng::new(seed);
    let y: Vec<u16> = (0..n).map(|i| (i % 4) as u16).collect();
    let x = Array2::from_shape_fn((n, 784), |(i, p)| {
        let (r, c) = (p / 28, p % 28);
        let q = (r / 14) * 2 + c / 14;
        let base = if q == y[i] as usize { 0.8 } else { 0.1 };
        base + 0.1 * rng.uniform()
    });
    Dataset {
        x,
        y,
        sample_shape: vec![28, 28],
        classes: 4,
        side: Vec::new(),
    }
}

#[test]
fn trained_backbones_export_to_onnx_that_tract_runs_like_the_trainer() {
    for arch in [Arch::Cnn, Arch::Mlp] {
        let cfg = TrainConfig {
            arch,
            features: 16,
            hidden: 32,
            channels: vec![4, 8],
            calibration: 16,
            epochs: 2,
            batch: 32,
            lr: 3e-3,
            seed: 5,
            validation: 32,
            device: TrainDevice::Cpu,
            loss_every: 5,
            progress: false,
            augment: false,
        };
        let (tr, te) = (quadrants(256, 1), quadrants(64, 2));
        let trained = train(&cfg, &tr, &te).unwrap();
        assert!(trained.test_accuracy > 90.0, "{arch:?}: {}", trained.test_accuracy);
        assert_eq!(trained.validation_accuracy.len(), 2);
        assert!(
            trained.validation_accuracy[1] > 90.0,
            "{arch:?}: {:?}",
            trained.validation_accuracy
        );
        assert_eq!(trained.train_samples, 256 - 32);
        // 2 epochs of 7 steps, a point per 5 steps; the loss falls.
        assert_eq!(trained.loss_curve.len(), 2);
        assert!(
            trained.loss_curve[1] < trained.loss_curve[0],
            "{:?}",
            trained.loss_curve
        );
        let onnx = trained.backbone.to_onnx().unwrap();
        let tract = Backbone::from_bytes(&onnx, "trained.onnx").unwrap();
        let x = te.x.slice(s![..trained.check_samples, ..]);
        let got = tract.features(x).unwrap();
        let err = max_abs_difference(&got, &trained.check_features);
        let scale = trained.check_features.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        eprintln!("{arch:?}: max abs error {err:e}, largest feature {scale}");
        assert!(
            err <= 1e-5 * scale.max(1.0),
            "{arch:?}: tract differs from burn by {err} (largest feature {scale})"
        );
        assert_eq!(trained.head_biases.len(), 4);
        // The calibration makes a device image: one range per layer but the last.
        assert_eq!(trained.calibration_samples, 16);
        let layers = edgecl::host::device::calibrated_layers(&trained.backbone).unwrap();
        assert_eq!(trained.activation_max.len(), layers);
        let image = edgecl::host::device::backbone_image(&trained.backbone, &trained.activation_max).unwrap();
        let device = edgecl::device::Backbone::parse(&image).unwrap();
        assert_eq!((device.layers(), device.output()), (layers + 1, 16));
    }
}

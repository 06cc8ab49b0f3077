#![cfg(feature = "onnx")]
//! The device's int8 backbone on sensor windows: 1-D convolutions over time on i8
//! windows the device quantises itself. The fast kernel equals the reference bit for
//! bit, both stay close to the float model, the ONNX file reads back as the model
//! written, every malformed window field has its own error, a NaN in a window is refused
//! naming where it is, and the shipped watch backbone (models/watch03-conv1d) on the watch
//! windows stays close to tract.

use edgecl::device::{Backbone, DeviceError, Stream};
use edgecl::host::device::{
    backbone_image, calibrate, check_against_tract, model_backbone_image, window_stream_image, StreamSpec,
};
use edgecl::host::idx::{load_split, Dataset, Split};
use edgecl::host::onnx::{BackboneModel, Layer};
use edgecl::learner::rng::Rng;
use std::path::Path;

#[path = "common/backbone_image.rs"]
mod backbone_image;
use backbone_image::{edited, why};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Per channel: the raw values' centre and spread the random windows are drawn around.
fn centres(c: usize) -> Vec<(f32, f32)> {
    (0..c).map(|i| (i as f32 * 3.0 - 4.0, 0.5 + i as f32)).collect()
}

/// `window(t, c) -> conv1d(o, k, pad) [ReLU] [pool] -> ... -> flatten -> dense(f)` with
/// seeded weights, normalised by [`centres`]; `convs` gives (channels, kernel, pad,
/// pool).
fn random_window_model(
    t: usize,
    c: usize,
    convs: &[(usize, usize, usize, bool)],
    features: Option<usize>,
    seed: u64,
) -> BackboneModel {
    let mut rng = Rng::new(seed);
    let norm = centres(c);
    let mut layers = vec![Layer::Window {
        steps: t,
        channels: c,
        mean: norm.iter().map(|n| n.0).collect(),
        scale: norm.iter().map(|n| 1.0 / n.1).collect(),
    }];
    let (mut ch, mut len) = (c, t);
    for &(o, k, pad, pool) in convs {
        let bound = 1.0 / ((ch * k) as f32).sqrt();
        layers.push(Layer::Conv1d {
            weights: (0..o * ch * k).map(|_| rng.uniform_range(-bound, bound)).collect(),
            biases: (0..o).map(|_| rng.uniform_range(-0.1, 0.1)).collect(),
            inputs: ch,
            outputs: o,
            kernel: k,
            pad,
        });
        layers.push(Layer::Relu);
        len = len + 2 * pad + 1 - k;
        if pool {
            layers.push(Layer::MaxPool1d2);
            len /= 2;
        }
        ch = o;
    }
    layers.push(Layer::Flatten);
    if let Some(f) = features {
        let n = ch * len;
        let bound = 1.0 / (n as f32).sqrt();
        layers.push(Layer::Dense {
            weights: (0..f * n).map(|_| rng.uniform_range(-bound, bound)).collect(),
            biases: (0..f).map(|_| rng.uniform_range(-bound, bound)).collect(),
            inputs: n,
            outputs: f,
        });
        layers.push(Layer::Relu);
    }
    BackboneModel {
        input_width: t * c,
        layers,
    }
}

/// Window models of every shape the device runs: the shipped architecture in small
/// (k5 pad 2, pools), kernels 3 and 1, no padding, an odd length the pool cuts, a
/// convolution last, a dense layer straight on the window.
fn window_zoo() -> Vec<BackboneModel> {
    vec![
        random_window_model(20, 6, &[(4, 5, 2, true), (8, 5, 2, true)], Some(5), 1),
        random_window_model(17, 3, &[(3, 3, 1, true), (2, 1, 0, false), (4, 3, 0, true)], Some(4), 2),
        random_window_model(9, 2, &[(3, 4, 3, false)], None, 3),
        random_window_model(12, 4, &[], Some(6), 4),
    ]
}

/// `n` raw windows (time-major) around [`centres`], seeded; a few values far out, so
/// that the i8 clip is exercised.
fn random_windows(n: usize, t: usize, c: usize, seed: u64) -> ndarray::Array2<f32> {
    let mut rng = Rng::new(seed);
    let norm = centres(c);
    ndarray::Array2::from_shape_fn((n, t * c), |(_, j)| {
        let (m, s) = norm[j % c];
        let spread = if rng.below(50) == 0 { 12.0 } else { 2.5 };
        m + s * rng.uniform_range(-spread, spread)
    })
}

fn shape(model: &BackboneModel) -> (usize, usize) {
    match &model.layers[0] {
        Layer::Window { steps, channels, .. } => (*steps, *channels),
        _ => unreachable!("a window model"),
    }
}

/// A model's image, calibrated on its first 16 random windows.
fn image_of(model: &BackboneModel, x: &ndarray::Array2<f32>) -> Vec<u8> {
    let cal = x.slice(ndarray::s![..16, ..]);
    backbone_image(model, &calibrate(model, cal).unwrap()).unwrap()
}

fn quantised(backbone: &Backbone<'_>, x: &ndarray::Array2<f32>) -> Vec<Vec<u8>> {
    x.rows()
        .into_iter()
        .map(|row| {
            let mut q = vec![0u8; backbone.input()];
            backbone.quantise_window(&row.to_vec(), &mut q).unwrap();
            q
        })
        .collect()
}

#[test]
fn on_windows_the_fast_kernel_equals_the_reference_kernel_bit_for_bit() {
    for (m, model) in window_zoo().iter().enumerate() {
        let (t, c) = shape(model);
        let x = random_windows(200, t, c, m as u64);
        let image = image_of(model, &x);
        let backbone = Backbone::parse(&image).unwrap();
        assert!(backbone.takes_windows());
        assert_eq!((backbone.input(), backbone.input_shape()), (t * c, (c, 1, t)));
        let mut inputs = quantised(&backbone, &x);
        // The i8 extremes: every value -127, every value 127, all zero.
        for v in [-127i8, 127, 0] {
            inputs.push(vec![v as u8; t * c]);
        }
        let clipped = inputs.iter().flatten().filter(|&&q| q == 127 || q == 129).count();
        assert!(clipped > 0, "model {m}: no value reached the clip");
        let mut scratch = vec![0.0f32; backbone.scratch_len()];
        let (mut fast, mut reference) = (vec![0.0f32; backbone.output()], vec![0.0f32; backbone.output()]);
        for q in &inputs {
            scratch
                .iter_mut()
                .for_each(|v| *v = f32::from_bits(0x7fc0_0000 | 0x1234));
            backbone.features(q, &mut fast, &mut scratch).unwrap();
            backbone.features_reference(q, &mut reference, &mut scratch).unwrap();
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast), bits(&reference), "model {m}: the kernels differ");
            assert!(fast.iter().all(|v| v.is_finite()));
        }
        assert!(
            inputs.iter().any(|q| {
                backbone.features(q, &mut fast, &mut scratch).unwrap();
                fast.iter().any(|&v| v != 0.0)
            }),
            "model {m}: every feature is 0"
        );
    }
}

#[test]
fn on_windows_the_int8_kernels_are_close_to_the_float_model() {
    for (m, model) in window_zoo().iter().enumerate() {
        let (t, c) = shape(model);
        // Calibrated on these windows, checked on them: no value is clipped by the
        // input's range, so what differs is the rounding of weights and activations.
        let x = random_windows(16, t, c, 50 + m as u64);
        let backbone_bytes = image_of(model, &x);
        let backbone = Backbone::parse(&backbone_bytes).unwrap();
        let reference = model.forward(x.view()).unwrap();
        let largest = reference.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        let (mut ours, mut scratch) = (vec![0.0f32; backbone.output()], vec![0.0f32; backbone.scratch_len()]);
        let mut worst = 0.0f32;
        for (q, row) in quantised(&backbone, &x).iter().zip(reference.rows()) {
            backbone.features(q, &mut ours, &mut scratch).unwrap();
            worst = ours.iter().zip(row).fold(worst, |w, (a, b)| w.max((a - b).abs()));
        }
        assert!(largest > 0.0, "model {m}");
        assert!(
            worst <= 0.04 * largest,
            "model {m}: {worst} against features up to {largest}"
        );
    }
}

#[test]
fn a_window_is_quantised_per_channel_and_a_nan_is_refused_naming_its_step_and_channel() {
    let model = &window_zoo()[0];
    let (t, c) = shape(model);
    let x = random_windows(16, t, c, 7);
    let image = image_of(model, &x);
    let backbone = Backbone::parse(&image).unwrap();
    let row = x.row(3).to_vec();
    let mut q = vec![0u8; t * c];
    backbone.quantise_window(&row, &mut q).unwrap();
    let mut back = vec![0.0f32; t * c];
    backbone.dequantise_window(&q, &mut back).unwrap();
    // Half a step of each channel, its step being the calibrated range over 127 in
    // normalised units (`spread / 127 * range`), at most; clipped values aside.
    let range = calibrate(model, x.slice(ndarray::s![..16, ..])).unwrap()[0];
    for (i, (&a, &b)) in row.iter().zip(&back).enumerate() {
        let step = centres(c)[i % c].1 * range / 127.0;
        if (q[i] as i8).unsigned_abs() < 127 {
            assert!(
                (a - b).abs() <= 0.5001 * step,
                "value {i}: {a} -> {} -> {b}",
                q[i] as i8
            );
        }
    }
    // A channel's mean is its zero: the mean itself becomes 0.
    let mut at_mean: Vec<f32> = (0..t * c).map(|i| centres(c)[i % c].0).collect();
    backbone.quantise_window(&at_mean, &mut q).unwrap();
    assert!(q.iter().all(|&v| v == 0));
    // NaN or infinity: refused with its place, the output untouched.
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        at_mean[5 * c + 2] = bad;
        let mut out = vec![9u8; t * c];
        let e = backbone.quantise_window(&at_mean, &mut out).unwrap_err();
        assert_eq!(e, DeviceError::NonFinite { step: 5, channel: 2 });
        assert!(e.to_string().contains("step 5, channel 2"), "{e}");
        assert!(out.iter().all(|&v| v == 9));
    }
    // Buffers of the wrong length, and a pixel backbone asked to quantise a window.
    assert!(backbone.quantise_window(&row[1..], &mut q).is_err());
    let pixels = backbone_image(&BackboneModel::random_dense(&[6, 3], 5), &[]).unwrap();
    let pixels = Backbone::parse(&pixels).unwrap();
    assert!(!pixels.takes_windows());
    assert!(pixels.quantise_window(&[0.0; 6], &mut [0u8; 6]).is_err());
}

#[test]
fn the_window_onnx_reads_back_as_the_model_written() {
    for model in window_zoo() {
        let back = BackboneModel::from_onnx(&model.to_onnx().unwrap(), "window.onnx").unwrap();
        assert_eq!(back, model);
    }
    let shipped = std::fs::read(root().join("models/watch03-conv1d/backbone.onnx")).unwrap();
    let model = BackboneModel::from_onnx(&shipped, "watch03-conv1d").unwrap();
    assert_eq!(model.input_width, 600);
    assert_eq!(
        model.to_onnx().unwrap(),
        shipped,
        "the shipped model writes back to its own bytes"
    );
    // A window's normalisation cut short, or in another order, is refused by name.
    let mut cut = random_window_model(8, 2, &[(2, 3, 1, false)], None, 9)
        .to_onnx()
        .unwrap();
    let proto = {
        use prost::Message;
        let mut p = tract_onnx::pb::ModelProto::decode(cut.as_slice()).unwrap();
        let graph = p.graph.as_mut().unwrap();
        graph.node.swap(1, 2); // Mul before Sub
        p.encode_to_vec()
    };
    cut = proto;
    let e = BackboneModel::from_onnx(&cut, "swapped.onnx").unwrap_err().to_string();
    assert!(e.contains("swapped.onnx"), "{e}");
}

#[test]
fn every_malformed_window_field_has_its_own_error() {
    // window(6 steps, 2 channels) -> conv1d(3, k3, pad 1, ReLU, pool) -> dense(9 -> 4).
    let model = random_window_model(6, 2, &[(3, 3, 1, true)], Some(4), 11);
    let image = image_of(&model, &random_windows(16, 6, 2, 1));
    Backbone::parse(&image).unwrap();
    let header = |at: usize, v: u16| {
        let mut b = image.clone();
        b[at..at + 2].copy_from_slice(&v.to_le_bytes());
        b
    };
    assert_eq!(
        why(&header(14, 2)),
        "the input kind is neither pixels (0) nor a window (1)"
    );
    assert_eq!(
        why(&header(10, 2)),
        "a window's input has one row (its steps are the columns)"
    );
    let f32_at = |at: usize, v: f32| edited(&image, |b| b[at..at + 4].copy_from_slice(&v.to_le_bytes()));
    assert_eq!(why(&f32_at(4, f32::NAN)), "a window's channel mean is NaN or infinite");
    for mul in [0.0, -1.0, f32::INFINITY] {
        assert_eq!(
            why(&f32_at(8, mul)),
            "a window's channel multiplier is zero, negative, NaN or infinite"
        );
    }
    // The first layer (after 2 means and 2 multipliers) made a 2-D convolution: its 2x2
    // pool finds one row; a kind the device does not know.
    assert_eq!(
        why(&edited(&image, |b| b[16] = 1)),
        "a pooled map would have no rows or columns"
    );
    assert_eq!(
        why(&edited(&image, |b| b[16] = 4)),
        "a layer kind is neither convolution (1), dense (2) nor 1-D convolution (3)"
    );
    // Read as pixels, the layers would start at the means: refused, never a panic.
    assert!(Backbone::parse(&header(14, 0)).is_err());
    // Every truncation is an error.
    for len in 0..image.len() {
        assert!(Backbone::parse(&image[..len]).is_err(), "{len} bytes");
    }
}

/// The watch data's windows of classes `tasks` from the carried folder.
fn watch() -> (Dataset, Dataset) {
    let dir = root().join("data/seglearn-watch");
    let train = load_split(&dir, Split::Train, None).unwrap();
    let test = load_split(&dir, Split::Test, Some(train.classes)).unwrap();
    (train, test)
}

#[test]
fn the_shipped_watch_backbone_on_the_device_stays_close_to_tract() {
    let (model, onnx, image) = model_backbone_image(&root().join("models/watch03-conv1d")).unwrap();
    let backbone = Backbone::parse(&image).unwrap();
    assert!(backbone.takes_windows());
    assert_eq!(
        (backbone.input(), backbone.output()),
        (600, model.feature_width().unwrap())
    );
    let (train, test) = watch();
    let spec = StreamSpec {
        tasks: vec![vec![0, 1], vec![2, 3], vec![4, 5], vec![6]],
        train_per_task: 20,
        test_per_task: 30,
        bits: 8,
        seed: 1,
    };
    let stream = window_stream_image(&train, &test, &spec, &backbone).unwrap();
    let parsed = Stream::parse(&stream).unwrap();
    assert_eq!((parsed.tasks(), parsed.classes(), parsed.width()), (4, 7, 600));
    let check = check_against_tract(&onnx, &image, &stream).unwrap();
    eprintln!("{check:?}");
    assert_eq!(check.samples, 4 * 30);
    assert!(check.max_feature > 1.0);
    // Inputs as the stream holds them (dequantised), so this is the int8 network's own
    // error: weights, activations and the integer sums.
    assert!(check.max_abs_difference < 0.03 * check.max_feature, "{check:?}");
    // From the raw windows (the device's own rounding of each value to i8 included):
    // every test window of the unseen wearers, device features against tract's.
    let tract = edgecl::host::onnx::Backbone::from_bytes(&onnx, "watch03-conv1d").unwrap();
    let theirs = tract.features(test.x.view()).unwrap();
    let (mut q, mut ours) = (vec![0u8; 600], vec![0.0f32; backbone.output()]);
    let mut scratch = vec![0.0f32; backbone.scratch_len()];
    let (mut worst, mut largest) = (0.0f32, 0.0f32);
    for (row, want) in test.x.rows().into_iter().zip(theirs.rows()) {
        backbone.quantise_window(&row.to_vec(), &mut q).unwrap();
        backbone.features(&q, &mut ours, &mut scratch).unwrap();
        for (a, b) in ours.iter().zip(want) {
            worst = worst.max((a - b).abs());
            largest = largest.max(b.abs());
        }
    }
    eprintln!(
        "raw windows: {} windows, largest difference {worst}, largest feature {largest}",
        test.len()
    );
    assert!(worst < 0.05 * largest, "{worst} against features up to {largest}");
    // 4-bit windows are refused, and so is a pixel stream for this backbone.
    let four = StreamSpec { bits: 4, ..spec };
    assert!(window_stream_image(&train, &test, &four, &backbone).is_err());
}

#![cfg(feature = "onnx")]
//! The device loop's parts on the host: the images (every truncation and flipped bit is
//! an error, never a panic; each kind of damage its own error), the int8 kernels against a
//! float reference and against tract, the shipped images reproduced from their sources,
//! the config text, the run's refusals, and the embedded-hal I/O with hand-written mocks.

use edgecl::device::{self, hal::HalIo, Backbone, DeviceConfig, DeviceError, DeviceIo, Event, Status, Stream};
use edgecl::host::device::{
    backbone_image, calibrate, check_against_tract, model_backbone_image, read_calibration, stream_image, FirmwareDir,
    StreamSpec,
};
use edgecl::host::idx::{load_split, Dataset, Split};
use edgecl::host::onnx::{BackboneModel, Layer};
use std::path::Path;

#[path = "common/backbone_image.rs"]
mod backbone_image;
use backbone_image::{edited, why};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The model the firmware's backbone is made from.
const SHIPPED_MODEL: &str = "models/fashion-cnn8";

/// Pixels `n x width` in `0..=255`, seeded.
fn random_pixels(n: usize, width: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = edgecl::learner::rng::Rng::new(seed);
    (0..n)
        .map(|_| (0..width).map(|_| rng.below(256) as u8).collect())
        .collect()
}

fn as_floats(pixels: &[Vec<u8>]) -> ndarray::Array2<f32> {
    ndarray::Array2::from_shape_fn((pixels.len(), pixels[0].len()), |(i, j)| {
        f32::from(pixels[i][j]) / 255.0
    })
}

/// A model's image, calibrated on seeded random pixels.
fn image_of(model: &BackboneModel) -> Vec<u8> {
    let x = as_floats(&random_pixels(16, model.input_width, 99));
    backbone_image(model, &calibrate(model, x.view()).unwrap()).unwrap()
}

fn small_backbone() -> Vec<u8> {
    image_of(&BackboneModel::random_dense(&[12, 8, 4], 7))
}

/// `1 x side x side -> conv(k, pad) x channels[0] [ReLU, pool] -> ... -> flatten ->
/// dense(features)` with seeded weights; `convs` gives (channels, kernel, pad, pool).
fn random_cnn(side: usize, convs: &[(usize, usize, usize, bool)], features: Option<usize>, seed: u64) -> BackboneModel {
    let mut rng = edgecl::learner::rng::Rng::new(seed);
    let mut layers = vec![Layer::Image {
        channels: 1,
        height: side,
        width: side,
    }];
    let (mut c, mut h) = (1, side);
    for &(o, k, pad, pool) in convs {
        let bound = 1.0 / ((c * k * k) as f32).sqrt();
        layers.push(Layer::Conv {
            weights: (0..o * c * k * k).map(|_| rng.uniform_range(-bound, bound)).collect(),
            biases: (0..o).map(|_| rng.uniform_range(-0.1, 0.1)).collect(),
            inputs: c,
            outputs: o,
            kernel: k,
            pad,
        });
        layers.push(Layer::Relu);
        h = h + 2 * pad + 1 - k;
        if pool {
            layers.push(Layer::MaxPool2);
            h /= 2;
        }
        c = o;
    }
    layers.push(Layer::Flatten);
    if let Some(f) = features {
        let n = c * h * h;
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
        input_width: side * side,
        layers,
    }
}

/// Models of every layer kind: dense chains, 3x3 and other kernels, every padding, with
/// and without the pool, a convolution last.
fn model_zoo() -> Vec<BackboneModel> {
    vec![
        BackboneModel::random_dense(&[12, 4], 7),
        BackboneModel::random_dense(&[12, 9, 6, 4], 7),
        random_cnn(8, &[(3, 3, 1, true), (4, 3, 1, true)], Some(5), 1),
        random_cnn(9, &[(2, 3, 0, true), (3, 3, 2, false)], Some(6), 2),
        random_cnn(10, &[(3, 5, 2, true), (2, 1, 0, false), (4, 2, 1, true)], Some(3), 3),
        random_cnn(7, &[(2, 3, 1, false), (3, 4, 3, true)], None, 4),
        random_cnn(6, &[(4, 6, 0, false)], None, 5),
    ]
}

fn small_dataset(n: usize, width: usize, classes: u16, seed: u32) -> Dataset {
    let x = ndarray::Array2::from_shape_fn((n, width), |(i, j)| {
        ((i * 31 + j * 17 + seed as usize) % 256) as f32 / 255.0
    });
    Dataset {
        x,
        y: (0..n).map(|i| (i as u16) % classes).collect(),
        sample_shape: vec![width],
        classes: classes as usize,
        side: Vec::new(),
    }
}

fn small_stream(bits: u8) -> Vec<u8> {
    let (train, test) = (small_dataset(40, 12, 4, 0), small_dataset(20, 12, 4, 5));
    let spec = StreamSpec {
        tasks: vec![vec![0, 1], vec![2, 3]],
        train_per_task: 6,
        test_per_task: 4,
        bits,
        seed: 3,
    };
    stream_image(&train, &test, &spec).unwrap()
}

#[test]
fn every_truncation_and_every_flipped_bit_of_an_image_is_an_error() {
    let backbone = small_backbone();
    for image in [backbone, small_stream(4), small_stream(8)] {
        let parse = |b: &[u8]| -> Result<(), DeviceError> {
            if b.starts_with(b"ECBB") || image.starts_with(b"ECBB") {
                Backbone::parse(b).map(|_| ())
            } else {
                Stream::parse(b).map(|_| ())
            }
        };
        parse(&image).expect("the intact image reads");
        for len in 0..image.len() {
            assert!(
                parse(&image[..len]).is_err(),
                "a truncation to {len} bytes was accepted"
            );
        }
        let mut longer = image.clone();
        longer.push(0);
        assert!(parse(&longer).is_err(), "a trailing byte was accepted");
        for bit in 0..image.len() * 8 {
            let mut bad = image.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(parse(&bad).is_err(), "bit {bit} flipped was accepted");
        }
    }
}

#[test]
fn each_kind_of_damage_has_its_own_error() {
    let image = small_backbone();
    let mut magic = image.clone();
    magic[0] = b'X';
    assert!(matches!(Backbone::parse(&magic), Err(DeviceError::BadMagic { .. })));
    let mut version = image.clone();
    version[4] = 9;
    assert!(matches!(
        Backbone::parse(&version),
        Err(DeviceError::Version { got: 9, .. })
    ));
    assert!(matches!(
        Backbone::parse(&image[..image.len() - 1]),
        Err(DeviceError::Truncated { .. })
    ));
    let mut body = image.clone();
    let last = body.len() - 1;
    body[last] ^= 0x40;
    assert!(matches!(Backbone::parse(&body), Err(DeviceError::BadCrc { .. })));
    // A stream whose CRC is right but whose label is past its classes.
    let mut stream = small_stream(8);
    let first_label = 32 + 4; // header, then the order padded to 4
    stream[first_label] = 200;
    let crc = device::crc32(&stream[32..]);
    stream[28..32].copy_from_slice(&crc.to_le_bytes());
    assert!(matches!(Stream::parse(&stream), Err(DeviceError::Malformed { .. })));
}

#[test]
fn the_fast_kernel_equals_the_reference_kernel_bit_for_bit() {
    for (m, model) in model_zoo().iter().enumerate() {
        let image = image_of(model);
        let backbone = Backbone::parse(&image).unwrap();
        assert_eq!(backbone.input(), model.input_width);
        let mut scratch = vec![0.0f32; backbone.scratch_len()];
        let (mut fast, mut reference) = (vec![0.0f32; backbone.output()], vec![0.0f32; backbone.output()]);
        let mut pixels = random_pixels(200, model.input_width, m as u64);
        pixels.push(vec![0; model.input_width]);
        pixels.push(vec![255; model.input_width]);
        for px in &pixels {
            // Scratch left dirty by the other kernel must not matter.
            scratch
                .iter_mut()
                .for_each(|v| *v = f32::from_bits(0x7fc0_0000 | 0x1234));
            backbone.features(px, &mut fast, &mut scratch).unwrap();
            backbone.features_reference(px, &mut reference, &mut scratch).unwrap();
            let (a, b): (Vec<u32>, Vec<u32>) = (
                fast.iter().map(|v| v.to_bits()).collect(),
                reference.iter().map(|v| v.to_bits()).collect(),
            );
            assert_eq!(a, b, "model {m}: the kernels differ");
        }
        assert!(fast.iter().all(|v| v.is_finite()));
        // Wrong buffer lengths are refused by both.
        let short = &pixels[0][..model.input_width - 1];
        assert!(backbone.features(short, &mut fast, &mut scratch).is_err());
        assert!(backbone.features_reference(short, &mut fast, &mut scratch).is_err());
        if backbone.scratch_len() > 0 {
            let mut small = vec![0.0f32; backbone.scratch_len() - 1];
            assert!(backbone.features(&pixels[0], &mut fast, &mut small).is_err());
        }
    }
}

#[test]
fn the_int8_kernels_are_close_to_the_float_model() {
    for (m, model) in model_zoo().iter().enumerate() {
        let image = image_of(model);
        let backbone = Backbone::parse(&image).unwrap();
        let pixels = random_pixels(16, model.input_width, 99);
        let reference = model.forward(as_floats(&pixels).view()).unwrap();
        let largest = reference.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        let mut ours = vec![0.0f32; backbone.output()];
        let mut scratch = vec![0.0f32; backbone.scratch_len()];
        let mut worst = 0.0f32;
        for (px, row) in pixels.iter().zip(reference.rows()) {
            backbone.features(px, &mut ours, &mut scratch).unwrap();
            for (a, b) in ours.iter().zip(row) {
                worst = worst.max((a - b).abs());
            }
        }
        // The calibration samples themselves: int8 weights and u8 activations stay
        // within 3% of the largest feature on these small random layers.
        assert!(
            worst <= 0.03 * largest,
            "model {m}: {worst} against features up to {largest}"
        );
    }
}

/// A change to an image's body.
type Edit = Box<dyn Fn(&mut Vec<u8>)>;

#[test]
fn every_malformed_backbone_field_has_its_own_error() {
    // conv(1 -> 3, 3x3, pad 1, ReLU, pool) on 8x8, conv(3 -> 4, pool), dense(16 -> 5).
    let image = image_of(&random_cnn(8, &[(3, 3, 1, true), (4, 3, 1, true)], Some(5), 1));
    Backbone::parse(&image).unwrap();
    let header = |at: usize, v: u16| {
        let mut b = image.clone();
        b[at..at + 2].copy_from_slice(&v.to_le_bytes());
        b
    };
    let mut old = image.clone();
    old[4] = 1;
    assert!(matches!(
        Backbone::parse(&old),
        Err(DeviceError::Version {
            got: 1,
            supported: 2,
            ..
        })
    ));
    assert_eq!(why(&header(6, 0)), "1 to 8 layers");
    assert_eq!(why(&header(6, 9)), "1 to 8 layers");
    assert_eq!(why(&header(8, 0)), "the input has no channels, rows or columns");
    assert_eq!(
        why(&header(14, 2)),
        "the input kind is neither pixels (0) nor a window (1)"
    );
    // Read as a window, an 8x8 image has rows a window does not.
    assert_eq!(
        why(&header(14, 1)),
        "a window's input has one row (its steps are the columns)"
    );
    let mut output = image.clone();
    output[16] ^= 1;
    assert_eq!(why(&output), "the last layer's width is not the header's output");
    let second = 16 + 8 * 3 + 28; // the first layer: header, scales and biases, 27 weights + 1
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|b| b[0] = 4),
            "a layer kind is neither convolution (1), dense (2) nor 1-D convolution (3)",
        ),
        (Box::new(|b| b[0] = 3), "a 1-D convolution takes a map of one row"),
        (Box::new(|b| b[1] |= 4), "a layer has unknown flag bits"),
        (
            Box::new(|b| b[1] &= !1),
            "a layer before the last has no ReLU (u8 activations hold no negatives)",
        ),
        (Box::new(|b| b[2] = 0), "a convolution has a kernel of 0"),
        (
            Box::new(|b| b[3] = 3),
            "a convolution's padding is not smaller than its kernel",
        ),
        (
            Box::new(|b| b[4] = 2),
            "a convolution's input channels differ from the channels before it",
        ),
        (
            Box::new(|b| b[8..12].copy_from_slice(&0u32.to_le_bytes())),
            "a layer has no outputs",
        ),
        (Box::new(|b| b[12] = 1), "a layer's reserved word is not 0"),
        (
            Box::new(|b| b[16..20].copy_from_slice(&0f32.to_le_bytes())),
            "a scale is zero, negative, NaN or infinite",
        ),
        (
            Box::new(|b| b[16..20].copy_from_slice(&(-1f32).to_le_bytes())),
            "a scale is zero, negative, NaN or infinite",
        ),
        (
            Box::new(|b| b[16..20].copy_from_slice(&f32::INFINITY.to_le_bytes())),
            "a scale is zero, negative, NaN or infinite",
        ),
        (
            Box::new(|b| b[28..32].copy_from_slice(&f32::NAN.to_le_bytes())),
            "a bias is NaN or infinite",
        ),
        (
            Box::new(move |b| b[second - 1] = 1),
            "a layer's padding bytes are not 0",
        ),
        (
            Box::new(|b| b.extend_from_slice(&[0; 4])),
            "the body has bytes after the last layer",
        ),
        (Box::new(move |b| b[second] = 2), "a dense layer cannot pool"),
    ];
    for (edit, text) in cases {
        assert_eq!(why(&edited(&image, edit)), text);
    }
    // A 9x9 kernel on the 4x4 map of the second layer, padding 1: larger than its input.
    assert_eq!(
        why(&edited(&image, |b| b[second + 2] = 9)),
        "a convolution's kernel is larger than its padded input"
    );
    // A dense layer that pools; one whose inputs do not chain.
    let dense = image_of(&BackboneModel::random_dense(&[12, 8, 4], 7));
    assert_eq!(why(&edited(&dense, |b| b[1] |= 2)), "a dense layer cannot pool");
    assert_eq!(
        why(&edited(&dense, |b| b[2] = 1)),
        "a dense layer's kernel and padding bytes are not 0"
    );
    assert_eq!(
        why(&edited(&dense, |b| b[4] = 11)),
        "a dense layer's inputs differ from the width before it"
    );
    // A convolution after a dense layer.
    assert_eq!(
        why(&edited(&dense, |b| b[16 + 8 * 8 + 96] = 1)),
        "a convolution follows a dense layer"
    );
    // Pooling a 1x1 map: a 3x3 kernel without padding on 3x3 pixels, pooled.
    let tiny = image_of(&random_cnn(3, &[(2, 3, 0, false)], None, 9));
    assert_eq!(
        why(&edited(&tiny, |b| b[1] |= 2)),
        "a pooled map would have no rows or columns"
    );
    // More than 65535 products per output: 2 x 1 x 35000 inputs into one dense output.
    let mut wide = dense[..28].to_vec();
    wide[6..8].copy_from_slice(&1u16.to_le_bytes());
    wide[8..14].copy_from_slice(&[2, 0, 1, 0, 0xb8, 0x88]);
    wide[16..20].copy_from_slice(&1u32.to_le_bytes());
    let wide = edited(&wide, |b| {
        b.extend_from_slice(&[2, 1, 0, 0]);
        for v in [70_000u32, 1, 0] {
            b.extend_from_slice(&v.to_le_bytes());
        }
    });
    assert_eq!(
        why(&wide),
        "a layer sums more than 65535 products (its i32 sums could overflow)"
    );
}

#[test]
fn layer_sizes_past_memory_are_errors_even_behind_a_valid_crc() {
    for (kind, kernel, inputs, outputs) in [
        (2u8, 0u8, 12u32, u32::MAX),
        (2, 0, 12, 1 << 28 | 1),
        (2, 0, 70_000, 2),
        (1, 255, 1, 1 << 20),
        (1, 3, 1, u32::MAX),
    ] {
        let mut body = vec![kind, 1, kernel, 0];
        for v in [inputs, outputs, 0] {
            body.extend_from_slice(&v.to_le_bytes());
        }
        body.extend_from_slice(&[0; 64]);
        let mut image = b"ECBB".to_vec();
        let (c, h, w) = if kind == 2 { (1u16, 1u16, 12u16) } else { (1, 300, 300) };
        for v in [2u16, 1, c, h, w, 0] {
            image.extend_from_slice(&v.to_le_bytes());
        }
        for v in [outputs, body.len() as u32, device::crc32(&body)] {
            image.extend_from_slice(&v.to_le_bytes());
        }
        image.extend_from_slice(&body);
        assert!(Backbone::parse(&image).is_err(), "{kind} {inputs} x {outputs}");
    }
    // A stream whose width overflows a record.
    let mut stream = b"ECST".to_vec();
    for v in [1u16, 1, 2, 8] {
        stream.extend_from_slice(&v.to_le_bytes());
    }
    let body = [0u8, 1, 0, 0];
    for v in [u32::MAX, 1, 0, 4, device::crc32(&body)] {
        stream.extend_from_slice(&v.to_le_bytes());
    }
    stream.extend_from_slice(&body);
    assert!(Stream::parse(&stream).is_err());
}

#[test]
fn four_bit_pixels_decode_to_the_nearest_of_sixteen_levels() {
    let (train, test) = (small_dataset(40, 12, 4, 0), small_dataset(20, 12, 4, 5));
    let spec = |bits| StreamSpec {
        tasks: vec![vec![0, 1], vec![2, 3]],
        train_per_task: 6,
        test_per_task: 4,
        bits,
        seed: 3,
    };
    let (four, eight) = (
        stream_image(&train, &test, &spec(4)).unwrap(),
        stream_image(&train, &test, &spec(8)).unwrap(),
    );
    let (four, eight) = (Stream::parse(&four).unwrap(), Stream::parse(&eight).unwrap());
    let (mut a, mut b) = ([0u8; 12], [0u8; 12]);
    for t in 0..2 {
        for i in 0..6 {
            assert_eq!(
                four.train_sample(t, i, &mut a).unwrap(),
                eight.train_sample(t, i, &mut b).unwrap()
            );
            for (q, p) in a.iter().zip(&b) {
                assert_eq!(*q, ((u16::from(*p) + 8) / 17 * 17) as u8, "{a:?} from {b:?}");
            }
            // The 8-bit pixels are the dataset's values.
            assert!(b
                .iter()
                .all(|&p| train.x.iter().any(|&v| (v * 255.0).round() as u8 == p)));
        }
        assert!(four.train_sample(t, 6, &mut a).is_err() && four.test_sample(t, 4, &mut a).is_err());
    }
    assert_eq!((four.source_label(3), four.source_label(4)), (Some(3), None));
}

#[test]
fn the_shipped_int8_backbone_is_within_one_percent_of_tract() {
    let onnx = std::fs::read(root().join(SHIPPED_MODEL).join("backbone.onnx")).unwrap();
    let backbone = std::fs::read(root().join("boards/flash/backbone.bin")).unwrap();
    let stream = std::fs::read(root().join("boards/flash/stream.bin")).unwrap();
    let check = check_against_tract(&onnx, &backbone, &stream).unwrap();
    eprintln!("{check:?}");
    assert_eq!(check.samples, 5 * Stream::parse(&stream).unwrap().test_per_task());
    assert!(check.max_feature > 1.0);
    assert!(check.max_abs_difference < 0.01 * check.max_feature, "{check:?}");
}

#[test]
fn the_shipped_images_are_what_device_data_writes() {
    let (_, _, image) = model_backbone_image(&root().join(SHIPPED_MODEL)).unwrap();
    assert!(
        image == std::fs::read(root().join("boards/flash/backbone.bin")).unwrap(),
        "boards/flash/backbone.bin is stale: run edgecl device-data (README, Firmware)"
    );
    assert_eq!(read_calibration(&root().join(SHIPPED_MODEL)).unwrap().len(), 2);
    let data = root().join("data/mnist");
    let train = load_split(&data, Split::Train, None).unwrap();
    let test = load_split(&data, Split::Test, Some(train.classes)).unwrap();
    let shipped = std::fs::read(root().join("boards/flash/stream.bin")).unwrap();
    let parsed = Stream::parse(&shipped).unwrap();
    let spec = StreamSpec::split(parsed.train_per_task(), parsed.test_per_task(), 4, 1);
    let stream = stream_image(&train, &test, &spec).unwrap();
    assert!(
        stream == shipped,
        "boards/flash/stream.bin is stale: run edgecl device-data"
    );
}

#[test]
fn a_backbone_with_other_operators_is_refused_for_the_device() {
    let mut model = BackboneModel::random_dense(&[4, 2], 1);
    model.layers.insert(0, Layer::MaxPool2);
    assert!(backbone_image(&model, &[]).is_err());
    // A calibration of the wrong length, or a range that is not positive.
    let model = BackboneModel::random_dense(&[4, 3, 2], 1);
    assert!(backbone_image(&model, &[]).is_err());
    assert!(backbone_image(&model, &[0.0]).is_err());
    assert!(backbone_image(&model, &[f32::NAN]).is_err());
    backbone_image(&model, &[1.0]).unwrap();
}

#[test]
fn the_cnn_onnx_reads_back_as_the_model_written() {
    for model in model_zoo() {
        let back = BackboneModel::from_onnx(&model.to_onnx().unwrap(), "zoo.onnx").unwrap();
        assert_eq!(back, model);
    }
}

#[test]
fn the_config_text_is_parsed_with_defaults_and_line_numbered_errors() {
    let c = DeviceConfig::parse("# comment\n\nstrategy = \"si\"  # trailing\nlambda = 2.5\n").unwrap();
    assert_eq!(c.strategy, edgecl::Strategy::Penalty(edgecl::PenaltyKind::Si));
    assert_eq!((c.lambda, c.batch, c.repeats, c.classes), (2.5, 32, 8, 10));
    assert_eq!(c.fine_tune().strategy, edgecl::Strategy::Naive);
    let adam = DeviceConfig::parse("optimizer = \"adam\"").unwrap();
    assert!(matches!(adam.optimizer, edgecl::Optimizer::Adam { lr, .. } if lr == 1e-3));
    // Each refusal names its line (TOML's own errors, or the key out of range).
    for (text, line, says) in [
        ("colour = 3", 1, "unknown field `colour`"),
        ("\nbatch = 0", 2, "`batch` is 1 to 1024"),
        ("batch = many", 1, "batch = many"),
        ("strategy = replay", 1, "strategy = replay"),
        ("strategy = \"ewc\"", 1, "`strategy` is fine-tune, replay or si"),
        ("strategy = \"nope\"", 1, "unknown strategy `nope`"),
        ("lr = 0.1\nlr = 0.2", 2, "duplicate key"),
        ("lr = -1", 1, "`lr` is a finite number >= 0"),
        ("lr = inf", 1, "`lr` is a finite number >= 0"),
        ("just words", 1, "just words"),
    ] {
        let e = format!("{:#}", DeviceConfig::parse(text).unwrap_err());
        assert!(e.contains(&format!("line {line}")) && e.contains(says), "{text}: {e}");
    }
}

#[test]
fn an_image_carries_the_config_as_postcard_bytes_checked_like_the_text() {
    let c = DeviceConfig::parse("strategy = \"si\"\nhidden = 16\noptimizer = \"adam\"\nseed = 7").unwrap();
    let mut buf = [0u8; DeviceConfig::MAX_BYTES];
    let bytes = c.to_bytes(&mut buf).unwrap().to_vec();
    assert!(bytes.len() < 64, "{} bytes", bytes.len());
    assert_eq!(DeviceConfig::from_bytes(&bytes).unwrap(), c);
    // Bytes past the config, a config cut short, and values out of range are refused.
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        DeviceConfig::from_bytes(&longer),
        Err(DeviceError::Config { .. })
    ));
    for n in 0..bytes.len() {
        assert!(DeviceConfig::from_bytes(&bytes[..n]).is_err(), "cut at {n}");
    }
    let mut bad = c;
    bad.batch = 0;
    let bytes = bad.to_bytes(&mut buf).unwrap().to_vec();
    assert_eq!(
        DeviceConfig::from_bytes(&bytes),
        Err(DeviceError::ConfigKey {
            key: "batch",
            why: "is 1 to 1024"
        })
    );
    bad = DeviceConfig {
        strategy: edgecl::Strategy::PackNet(None),
        ..c
    };
    let bytes = bad.to_bytes(&mut buf).unwrap().to_vec();
    assert!(matches!(
        DeviceConfig::from_bytes(&bytes),
        Err(DeviceError::ConfigKey { key: "strategy", .. })
    ));
}

/// Plays fixed samples, with a held-out set of the same samples.
struct Script {
    samples: Vec<Event>,
    at: usize,
    lines: Vec<String>,
}

impl DeviceIo for Script {
    fn next(&mut self, pixels: &mut [u8]) -> Result<Event, DeviceError> {
        pixels
            .iter_mut()
            .enumerate()
            .for_each(|(i, p)| *p = (i * 3 + self.at) as u8);
        let e = self.samples.get(self.at).copied().unwrap_or(Event::End);
        self.at += 1;
        Ok(e)
    }
    fn print(&mut self, args: std::fmt::Arguments<'_>) {
        self.lines.push(args.to_string());
    }
}

#[test]
fn the_run_refuses_an_arena_too_small_a_bad_label_and_too_many_tasks() {
    let image = small_backbone();
    let backbone = Backbone::parse(&image).unwrap();
    let config = DeviceConfig::parse("classes = 4\ntasks = 2\nbatch = 4\nrepeats = 1").unwrap();
    let need = device::plan(&config, &backbone).unwrap().total;
    let script = |samples: Vec<Event>| Script {
        samples,
        at: 0,
        lines: Vec::new(),
    };
    let mut small = vec![0u8; need - 1];
    let mut io = script(vec![Event::Sample { label: 0 }]);
    assert_eq!(
        device::run(&config, &backbone, None, &mut small, &mut io),
        Err(DeviceError::OverBudget {
            needed: need,
            arena: need - 1
        })
    );
    assert!(io.lines.is_empty(), "nothing runs over budget");
    let mut arena = vec![0u8; need];
    let mut io = script(vec![Event::Sample { label: 4 }]);
    assert!(matches!(
        device::run(&config, &backbone, None, &mut arena, &mut io),
        Err(DeviceError::Learner(edgecl::Error::LabelOutOfRange { .. }))
    ));
    let s = Event::Sample { label: 1 };
    let mut io = script(vec![s, Event::TaskEnd, s, Event::TaskEnd, s]);
    assert!(matches!(
        device::run(&config, &backbone, None, &mut arena, &mut io),
        Err(DeviceError::Mismatch(_))
    ));
    let mut io = script(vec![
        s,
        Event::Sample { label: 0 },
        Event::TaskEnd,
        Event::Sample { label: 2 },
    ]);
    let summary = device::run(&config, &backbone, None, &mut arena, &mut io).unwrap();
    assert_eq!((summary.tasks, summary.samples), (2, 3), "End closes the open task");
}

#[test]
fn the_host_simulation_of_a_board_is_deterministic() {
    let fw = FirmwareDir::load(&root().join("boards/netduinoplus2"), None).unwrap();
    let (a, b) = (fw.simulate().unwrap(), fw.simulate().unwrap());
    assert_eq!(a, b);
    assert!(a.contains("replay over fine-tune: +"), "{a}");
}

mod mocks {
    use embedded_hal::digital::{self, InputPin, OutputPin};
    use embedded_hal::i2c::{self, I2c, Operation};
    use std::convert::Infallible;

    /// A sensor that answers a write of its frame register with a frame of one value per
    /// read, or fails once on read `fail_at`.
    pub struct Sensor {
        pub reads: usize,
        pub fail_at: Option<usize>,
    }

    impl i2c::ErrorType for Sensor {
        type Error = i2c::ErrorKind;
    }

    impl I2c for Sensor {
        fn transaction(&mut self, address: u8, operations: &mut [Operation<'_>]) -> Result<(), Self::Error> {
            assert_eq!(address, 0x42);
            for op in operations {
                match op {
                    Operation::Write(bytes) => assert_eq!(bytes, &[edgecl::device::hal::FRAME_REGISTER]),
                    Operation::Read(buf) => {
                        if self.fail_at == Some(self.reads) {
                            self.fail_at = None;
                            return Err(i2c::ErrorKind::Bus);
                        }
                        buf.fill(self.reads as u8);
                        self.reads += 1;
                    }
                }
            }
            Ok(())
        }
    }

    /// A button pressed on the samples listed.
    pub struct Button {
        pub reads: usize,
        pub pressed: Vec<usize>,
    }

    impl digital::ErrorType for Button {
        type Error = Infallible;
    }

    impl InputPin for Button {
        fn is_high(&mut self) -> Result<bool, Infallible> {
            self.reads += 1;
            Ok(self.pressed.contains(&(self.reads - 1)))
        }
        fn is_low(&mut self) -> Result<bool, Infallible> {
            self.is_high().map(|h| !h)
        }
    }

    /// A LED that remembers its states.
    #[derive(Default)]
    pub struct Led {
        pub states: Vec<bool>,
    }

    impl digital::ErrorType for Led {
        type Error = Infallible;
    }

    impl OutputPin for Led {
        fn set_low(&mut self) -> Result<(), Infallible> {
            self.states.push(false);
            Ok(())
        }
        fn set_high(&mut self) -> Result<(), Infallible> {
            self.states.push(true);
            Ok(())
        }
    }
}

#[test]
fn the_hal_io_labels_frames_by_the_button_and_ends_tasks() {
    use mocks::{Button, Led, Sensor};
    let sensor = Sensor {
        reads: 0,
        fail_at: None,
    };
    let button = Button {
        reads: 0,
        pressed: vec![1, 3],
    };
    let mut io = HalIo::new(sensor, 0x42, button, Led::default(), String::new(), 2, 2);
    let mut px = [0u8; 5];
    let mut events = Vec::new();
    loop {
        let e = io.next(&mut px).unwrap();
        events.push((e, px[0]));
        if e == Event::End {
            break;
        }
    }
    let s = |label, frame| (Event::Sample { label }, frame);
    assert_eq!(
        events,
        [
            s(0, 0),
            s(1, 1),
            (Event::TaskEnd, 1),
            s(2, 2),
            s(3, 3),
            (Event::TaskEnd, 3),
            (Event::End, 3)
        ]
    );
    io.status(Status::Learning);
    io.status(Status::Idle);
    io.print(format_args!("hello {}", 1));
    let (_, _, led, out) = io.release();
    assert_eq!(led.states, [true, false]);
    assert_eq!(out, "hello 1\n");
    // A bus error is the source's error, and the sample is not counted.
    let sensor = Sensor {
        reads: 0,
        fail_at: Some(0),
    };
    let button = Button {
        reads: 0,
        pressed: vec![],
    };
    let mut io = HalIo::new(sensor, 0x42, button, Led::default(), String::new(), 2, 1);
    assert!(matches!(io.next(&mut px), Err(DeviceError::Source(_))));
    // The failed frame does not count: the task still takes two samples.
    assert_eq!(io.next(&mut px).unwrap(), Event::Sample { label: 0 });
    assert_eq!(io.next(&mut px).unwrap(), Event::Sample { label: 0 });
    assert_eq!(io.next(&mut px).unwrap(), Event::TaskEnd);
}

#[test]
fn the_shipped_device_images_are_what_export_writes_from_the_firmware_configs() {
    use edgecl::host::device::{device_image, public_key, read_key_file, KeyKind};
    let secret = read_key_file(
        &std::fs::read_to_string(root().join("boards/dev-key")).unwrap(),
        KeyKind::Secret,
        "dev-key",
    )
    .unwrap();
    let public = read_key_file(
        &std::fs::read_to_string(root().join("boards/dev-key.pub")).unwrap(),
        KeyKind::Public,
        "dev-key.pub",
    )
    .unwrap();
    assert_eq!(public_key(&secret), public);
    let backbone = std::fs::read(root().join("boards/flash/backbone.bin")).unwrap();
    let features = Backbone::parse(&backbone).unwrap().output();
    for board in ["netduinoplus2", "rp-pico"] {
        let config = std::fs::read_to_string(root().join(format!("boards/{board}/firmware.toml"))).unwrap();
        let b = edgecl::host::board::Board::load(board).unwrap();
        let image = device_image(&b, &config, &backbone, features, &secret).unwrap();
        let shipped = std::fs::read(root().join(format!("boards/flash/{board}.img"))).unwrap();
        assert!(
            image == shipped,
            "boards/flash/{board}.img is stale: re-export it (README, Firmware)"
        );
        let v = device::signed::verify(&shipped, &public, board, b.budget()).unwrap();
        assert_eq!(v.config, DeviceConfig::parse(&config).unwrap());
    }
}

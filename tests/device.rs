#![cfg(feature = "onnx")]
//! The device loop's parts on the host: the images (every truncation and flipped bit is
//! an error, never a panic; each kind of damage its own error), the int8 kernels against a
//! float reference and against tract, the shipped images reproduced from their sources,
//! the config text, the run's refusals, and the embedded-hal I/O with hand-written mocks.

use edgecl::device::{self, hal::HalIo, Backbone, DeviceConfig, DeviceError, DeviceIo, Event, Status, Stream};
use edgecl::host::device::{backbone_image, check_against_tract, stream_image, FirmwareDir, StreamSpec};
use edgecl::host::idx::{load_split, Dataset, Split};
use edgecl::host::onnx::{BackboneModel, Layer};
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn small_backbone() -> Vec<u8> {
    backbone_image(&BackboneModel::random_dense(&[12, 8, 4], 7)).unwrap()
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
fn the_int8_kernels_equal_a_float_reference_of_the_quantised_weights() {
    for dims in [&[12, 4][..], &[12, 8, 4], &[12, 9, 6, 4]] {
        let model = BackboneModel::random_dense(dims, 7);
        let image = backbone_image(&model).unwrap();
        kernels_match(&model, &image);
    }
}

fn kernels_match(model: &BackboneModel, image: &[u8]) {
    let backbone = Backbone::parse(image).unwrap();
    // The same weights as the image holds, dequantised, run in f64.
    let mut quantised = model.clone();
    for layer in &mut quantised.layers {
        if let Layer::Dense { weights, inputs, .. } = layer {
            for row in weights.chunks_exact_mut(*inputs) {
                let scale = row.iter().fold(0.0f32, |m, w| m.max(w.abs())) / 127.0;
                for w in row {
                    *w = (*w / scale).round() * scale;
                }
            }
        }
    }
    let pixels: Vec<u8> = (0..12).map(|i| (i * 37 % 256) as u8).collect();
    let x = ndarray::Array2::from_shape_fn((1, 12), |(_, j)| f32::from(pixels[j]) / 255.0);
    let reference = quantised.forward(x.view()).unwrap();
    assert_eq!(reference.len(), backbone.output());
    let mut ours = vec![0.0f32; 4];
    let mut scratch = vec![0.0f32; backbone.scratch_len()];
    backbone.features(&pixels, &mut ours, &mut scratch).unwrap();
    for (a, b) in ours.iter().zip(reference.iter()) {
        assert!(
            (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
            "{ours:?} against {reference:?}"
        );
    }
    // Wrong buffer lengths are refused.
    assert!(backbone.features(&pixels[..11], &mut ours, &mut scratch).is_err());
}

#[test]
fn layer_sizes_past_memory_are_errors_even_behind_a_valid_crc() {
    for (inputs, outputs) in [(u32::MAX, u32::MAX), (8, 1 << 28 | 1), (70_000, 2), (12, 0)] {
        let mut body = Vec::new();
        for v in [inputs, outputs, 0, 0] {
            body.extend_from_slice(&v.to_le_bytes());
        }
        body.extend_from_slice(&[0; 64]);
        let mut image = b"ECBB".to_vec();
        image.extend_from_slice(&1u16.to_le_bytes());
        image.extend_from_slice(&1u16.to_le_bytes());
        for v in [inputs, outputs, body.len() as u32, device::crc32(&body)] {
            image.extend_from_slice(&v.to_le_bytes());
        }
        image.extend_from_slice(&body);
        assert!(Backbone::parse(&image).is_err(), "{inputs} x {outputs}");
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
    let onnx = std::fs::read(root().join("models/fashion-mlp/backbone.onnx")).unwrap();
    let backbone = std::fs::read(root().join("boards/flash/backbone.bin")).unwrap();
    let stream = std::fs::read(root().join("boards/flash/stream.bin")).unwrap();
    let check = check_against_tract(&onnx, &backbone, &stream).unwrap();
    eprintln!("{check:?}");
    assert_eq!(check.samples, 300);
    assert!(check.max_feature > 1.0);
    assert!(check.max_abs_difference < 0.01 * check.max_feature, "{check:?}");
}

#[test]
fn the_shipped_images_are_what_device_data_writes() {
    let onnx = std::fs::read(root().join("models/fashion-mlp/backbone.onnx")).unwrap();
    let model = BackboneModel::from_onnx(&onnx, "backbone.onnx").unwrap();
    assert_eq!(
        backbone_image(&model).unwrap(),
        std::fs::read(root().join("boards/flash/backbone.bin")).unwrap()
    );
    let data = root().join("data/mnist");
    let train = load_split(&data, Split::Train, None).unwrap();
    let test = load_split(&data, Split::Test, Some(train.classes)).unwrap();
    let stream = stream_image(&train, &test, &StreamSpec::split(200, 60, 4, 1)).unwrap();
    assert_eq!(stream, std::fs::read(root().join("boards/flash/stream.bin")).unwrap());
}

#[test]
fn a_backbone_with_other_operators_is_refused_for_the_device() {
    let mut model = BackboneModel::random_dense(&[4, 2], 1);
    model.layers.insert(0, Layer::MaxPool2);
    assert!(backbone_image(&model).is_err());
}

#[test]
fn the_config_text_is_parsed_with_defaults_and_line_numbered_errors() {
    let c = DeviceConfig::parse("# comment\n\nstrategy = \"si\"  # trailing\nlambda = 2.5\n").unwrap();
    assert_eq!(c.strategy, device::DeviceStrategy::Si);
    assert_eq!((c.lambda, c.batch, c.repeats, c.classes), (2.5, 32, 8, 10));
    assert_eq!(c.fine_tune().strategy, device::DeviceStrategy::FineTune);
    let adam = DeviceConfig::parse("optimizer = \"adam\"").unwrap();
    assert!(matches!(adam.optimizer, edgecl::Optimizer::Adam { lr, .. } if lr == 1e-3));
    for (text, line) in [
        ("colour = 3", 1),
        ("\nbatch = 0", 2),
        ("batch = many", 1),
        ("strategy = replay", 1),
        ("strategy = \"ewc\"", 1),
        ("lr = 0.1\nlr = 0.2", 2),
        ("lr = -1", 1),
        ("lr = inf", 1),
        ("just words", 1),
    ] {
        match DeviceConfig::parse(text) {
            Err(DeviceError::Config { line: l, .. }) => assert_eq!(l, line, "{text}"),
            other => panic!("{text}: {other:?}"),
        }
    }
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
    use edgecl::host::device::{device_image, from_hex32, public_key};
    let secret = from_hex32(&std::fs::read_to_string(root().join("boards/dev-key")).unwrap()).unwrap();
    let public = from_hex32(&std::fs::read_to_string(root().join("boards/dev-key.pub")).unwrap()).unwrap();
    assert_eq!(public_key(&secret), public);
    let backbone = std::fs::read(root().join("boards/flash/backbone.bin")).unwrap();
    for board in ["netduinoplus2", "rp-pico"] {
        let config = std::fs::read_to_string(root().join(format!("boards/{board}/firmware.toml"))).unwrap();
        let b = edgecl::host::board::Board::load(board).unwrap();
        let image = device_image(&b, &config, &backbone, 64, &secret).unwrap();
        let shipped = std::fs::read(root().join(format!("boards/flash/{board}.img"))).unwrap();
        assert!(
            image == shipped,
            "boards/flash/{board}.img is stale: re-export it (README, Firmware)"
        );
        let v = device::signed::verify(&shipped, &public, board, b.budget()).unwrap();
        assert_eq!(v.config_text, config);
    }
}

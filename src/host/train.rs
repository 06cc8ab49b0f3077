//! Host training of backbones with burn (feature `train`; CPU through burn's pure-Rust
//! `flex` device, or a GPU through wgpu with feature `gpu`): a small CNN or MLP is trained
//! as a classifier on a labelled IDX dataset, with a validation split held out of the
//! training data, then its feature layers are exported as an ONNX backbone
//! ([`crate::host::onnx::BackboneModel`]) and its classifier as the head's starting point.
//!
//! CNN: `1x28x28 -> conv3x3(C1) -> ReLU -> maxpool2 -> conv3x3(C2) -> ReLU -> maxpool2 ->
//! flatten(C2 x 7 x 7) -> dense(F) -> ReLU` (the features) `-> dense(classes)`, channels
//! `[16, 32]` by default (each convolution pads by 1 and halves the map with its pool).
//! MLP: `784 -> dense(H) -> ReLU -> dense(F) -> ReLU` (the features) `-> dense(classes)`.
//! Conv1d, for sensor windows `[T, C]` ([`Dataset::window`]): each channel normalised by
//! the training set's mean and spread (inside the exported graph, [`Layer::Window`]), then
//! `conv1d(C1, k5) -> ReLU -> maxpool2 -> ...` over time (channels `[16, 32, 32]` by
//! default, each convolution padded by 2 so only the pools shorten the window) `->
//! flatten -> dense(F) -> ReLU` (the features) `-> dense(classes)`.

use crate::host::idx::Dataset;
use crate::host::onnx::{BackboneModel, Layer};
use crate::learner::rng::Rng;
use anyhow::{ensure, Context, Result};
use burn::module::Module;
use burn::nn::conv::{Conv1d, Conv1dConfig, Conv2d, Conv2dConfig};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::pool::{MaxPool1d, MaxPool1dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig1d, PaddingConfig2d, Relu};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::TensorData;
use indicatif::{ProgressBar, ProgressStyle};

/// Which backbone family to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Arch {
    /// Two 3x3 convolutions with max pooling, then a dense feature layer.
    Cnn,
    /// Two dense layers.
    Mlp,
    /// Temporal convolutions with max pooling over sensor windows `[T, C]`, each channel
    /// normalised first, then a dense feature layer.
    Conv1d,
}

impl Arch {
    /// The convolutions' output channels when `--channels` is not given.
    pub fn default_channels(self) -> Vec<usize> {
        match self {
            Arch::Cnn | Arch::Mlp => vec![16, 32],
            Arch::Conv1d => vec![16, 32, 32],
        }
    }
}

/// Kernel length of [`Arch::Conv1d`]'s convolutions (0.1 s at 50 Hz).
pub const KERNEL_1D: usize = 5;

/// Where burn trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainDevice {
    /// burn's pure-Rust CPU device (`flex`): the tested default.
    Cpu,
    /// The default GPU adapter through wgpu (Vulkan, Metal or DirectX, whichever the
    /// machine offers); feature `gpu`.
    #[cfg(feature = "gpu")]
    Wgpu,
}

impl TrainDevice {
    /// Name in logs and `MODEL.md`.
    pub fn name(self) -> &'static str {
        match self {
            TrainDevice::Cpu => "cpu (burn flex)",
            #[cfg(feature = "gpu")]
            TrainDevice::Wgpu => "wgpu (default adapter)",
        }
    }

    fn device(self) -> Device {
        match self {
            TrainDevice::Cpu => Device::flex().autodiff(),
            #[cfg(feature = "gpu")]
            TrainDevice::Wgpu => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice).autodiff(),
        }
    }
}

/// What to train.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// Backbone family.
    pub arch: Arch,
    /// Width of the feature layer (what the device's head sees).
    pub features: usize,
    /// Hidden width of the MLP's first layer.
    pub hidden: usize,
    /// Output channels of the CNN's convolutions, input first (each 3x3, padding 1, then
    /// ReLU and a 2x2 max-pool).
    pub channels: Vec<usize>,
    /// Training samples the device image's activation ranges are calibrated on (the
    /// first ones of the training split, by index).
    pub calibration: usize,
    /// Passes over the training set.
    pub epochs: usize,
    /// Batch size.
    pub batch: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Seed of the initialisation, the validation split and the batch order.
    pub seed: u64,
    /// Training samples held out (drawn with the seed) to measure accuracy after each epoch.
    pub validation: usize,
    /// Where to train.
    pub device: TrainDevice,
    /// Training steps averaged into one point of [`Trained::loss_curve`].
    pub loss_every: usize,
    /// Show a progress bar.
    pub progress: bool,
    /// Conv1d: train on windows changed as a new wearer changes them (see [`augment`]).
    pub augment: bool,
}

/// Largest rotation [`augment`] turns a window's sensors by, in degrees.
pub const AUGMENT_DEGREES: f32 = 30.0;

/// One training window `[T, C]` changed as another wearer or another way of wearing the
/// watch would change it: each group of three channels (a triaxial sensor: accelerometer,
/// gyroscope) turned by the same random rotation (axis uniform on the sphere, up to
/// [`AUGMENT_DEGREES`]), the whole window scaled by a factor in `[0.9, 1.1]`, and rolled in
/// time by a random number of steps. Channels past the last full group of three are only
/// scaled and rolled.
pub fn augment(x: &mut [f32], window: (usize, usize), rng: &mut Rng) {
    let (t, c) = window;
    let (z, phi) = (
        rng.uniform_range(-1.0, 1.0),
        rng.uniform_range(0.0, std::f32::consts::TAU),
    );
    let r = (1.0 - z * z).max(0.0).sqrt();
    let (ux, uy, uz) = (r * phi.cos(), r * phi.sin(), z);
    let angle = rng.uniform_range(-AUGMENT_DEGREES, AUGMENT_DEGREES).to_radians();
    let (sn, cs) = angle.sin_cos();
    let k = 1.0 - cs;
    let rot = [
        [cs + ux * ux * k, ux * uy * k - uz * sn, ux * uz * k + uy * sn],
        [uy * ux * k + uz * sn, cs + uy * uy * k, uy * uz * k - ux * sn],
        [uz * ux * k - uy * sn, uz * uy * k + ux * sn, cs + uz * uz * k],
    ];
    let scale = rng.uniform_range(0.9, 1.1);
    let shift = rng.below(t as u32) as usize;
    let src = x.to_vec();
    for s in 0..t {
        let from = &src[((s + shift) % t) * c..][..c];
        let to = &mut x[s * c..][..c];
        for g in 0..c / 3 {
            for (i, row) in rot.iter().enumerate() {
                to[3 * g + i] = scale * (row[0] * from[3 * g] + row[1] * from[3 * g + 1] + row[2] * from[3 * g + 2]);
            }
        }
        for j in (c / 3) * 3..c {
            to[j] = scale * from[j];
        }
    }
}

/// The trained network, whichever family.
#[derive(Module, Debug)]
struct Net {
    convs: Vec<Conv2d>,
    pool: MaxPool2d,
    temporal: Vec<Conv1d>,
    pool1: MaxPool1d,
    /// `(steps, channels)` of a window (conv1d).
    window: (usize, usize),
    hidden: Option<Linear>,
    feature: Linear,
    classifier: Linear,
    relu: Relu,
}

impl Net {
    fn new(cfg: &TrainConfig, width: usize, window: (usize, usize), classes: usize, device: &Device) -> Net {
        let conv = |i, o| {
            Conv2dConfig::new([i, o], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        let mut temporal = Vec::new();
        let (convs, hidden, feature_in) = match cfg.arch {
            Arch::Conv1d => {
                let (mut steps, mut c) = (window.0, window.1);
                for &o in &cfg.channels {
                    let pad = KERNEL_1D / 2;
                    temporal.push(
                        Conv1dConfig::new(c, o, KERNEL_1D)
                            .with_padding(PaddingConfig1d::Explicit(pad, pad))
                            .init(device),
                    );
                    (c, steps) = (o, steps / 2);
                }
                (Vec::new(), None, c * steps)
            }
            Arch::Cnn => {
                let mut convs = Vec::new();
                let (mut c, mut side) = (1, 28);
                for &o in &cfg.channels {
                    convs.push(conv(c, o));
                    (c, side) = (o, side / 2);
                }
                (convs, None, c * side * side)
            }
            Arch::Mlp => (
                Vec::new(),
                Some(LinearConfig::new(width, cfg.hidden).init(device)),
                cfg.hidden,
            ),
        };
        Net {
            convs,
            pool: MaxPool2dConfig::new([2, 2]).init(),
            temporal,
            pool1: MaxPool1dConfig::new(2).init(),
            window,
            hidden,
            feature: LinearConfig::new(feature_in, cfg.features).init(device),
            classifier: LinearConfig::new(cfg.features, classes).init(device),
            relu: Relu::new(),
        }
    }

    /// Features of `x` (`n x 784`).
    fn features(&self, x: Tensor<2>) -> Tensor<2> {
        let [n, _] = x.dims();
        let h = match &self.hidden {
            Some(h) => self.relu.forward(h.forward(x)),
            None if !self.temporal.is_empty() => {
                let (t, c) = self.window;
                let mut x = x.reshape([n, t, c]).swap_dims(1, 2);
                for conv in &self.temporal {
                    x = self.pool1.forward(self.relu.forward(conv.forward(x)));
                }
                let [_, c, t] = x.dims();
                x.reshape([n, c * t])
            }
            None if self.convs.is_empty() => x,
            None => {
                let mut x = x.reshape([n, 1, 28, 28]);
                for c in &self.convs {
                    x = self.pool.forward(self.relu.forward(c.forward(x)));
                }
                let [_, c, h, w] = x.dims();
                x.reshape([n, c * h * w])
            }
        };
        self.relu.forward(self.feature.forward(h))
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.classifier.forward(self.features(x))
    }
}

/// A trained backbone and what was measured while training it.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The feature layers, ready for [`BackboneModel::to_onnx`].
    pub backbone: BackboneModel,
    /// The classifier on top of the features (`classes x features`, row-major).
    pub head_weights: Vec<f32>,
    /// Its biases.
    pub head_biases: Vec<f32>,
    /// Validation accuracy (percent) after each epoch (empty without a validation split).
    pub validation_accuracy: Vec<f64>,
    /// Test accuracy (percent) of the final network.
    pub test_accuracy: f64,
    /// Mean training loss of each epoch.
    pub train_loss: Vec<f64>,
    /// Mean training loss of each run of [`TrainConfig::loss_every`] steps.
    pub loss_curve: Vec<f64>,
    /// Training samples used (the rest of the training set was the validation split).
    pub train_samples: usize,
    /// Features of the first test samples computed by burn (to check the export).
    pub check_features: Vec<f32>,
    /// How many test samples `check_features` holds.
    pub check_samples: usize,
    /// The device image's ranges over the calibration samples
    /// ([`crate::host::device::calibrate`]): a window model's normalised input first, then
    /// the largest output of each device layer but the last.
    pub activation_max: Vec<f32>,
    /// Samples they were measured on.
    pub calibration_samples: usize,
}

fn values(t: Tensor<2>) -> Result<Vec<f32>> {
    let data = t.into_data();
    Ok(data
        .as_slice::<f32>()
        .map_err(|e| anyhow::anyhow!("reading a tensor: {e:?}"))?
        .to_vec())
}

fn param<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    let data = t.into_data();
    Ok(data
        .as_slice::<f32>()
        .map_err(|e| anyhow::anyhow!("reading a parameter: {e:?}"))?
        .to_vec())
}

/// burn's `Linear` keeps `[in, out]`; the backbone format keeps `[out, in]`.
fn dense(l: &Linear) -> Result<Layer> {
    let [inputs, outputs] = l.weight.val().dims();
    let w = param(l.weight.val())?;
    let mut weights = vec![0.0f32; inputs * outputs];
    for i in 0..inputs {
        for o in 0..outputs {
            weights[o * inputs + i] = w[i * outputs + o];
        }
    }
    let biases = match &l.bias {
        Some(b) => param(b.val())?,
        None => vec![0.0; outputs],
    };
    Ok(Layer::Dense {
        weights,
        biases,
        inputs,
        outputs,
    })
}

fn conv(c: &Conv2d) -> Result<Layer> {
    let [outputs, inputs, kernel, _] = c.weight.val().dims();
    let biases = match &c.bias {
        Some(b) => param(b.val())?,
        None => vec![0.0; outputs],
    };
    Ok(Layer::Conv {
        weights: param(c.weight.val())?,
        biases,
        inputs,
        outputs,
        kernel,
        pad: 1,
    })
}

fn conv1d(c: &Conv1d) -> Result<Layer> {
    let [outputs, inputs, kernel] = c.weight.val().dims();
    let biases = match &c.bias {
        Some(b) => param(b.val())?,
        None => vec![0.0; outputs],
    };
    Ok(Layer::Conv1d {
        weights: param(c.weight.val())?,
        biases,
        inputs,
        outputs,
        kernel,
        pad: kernel / 2,
    })
}

impl Net {
    fn export(&self, width: usize, norm: &Norm) -> Result<BackboneModel> {
        let mut layers = Vec::new();
        if !self.temporal.is_empty() {
            let (steps, channels) = self.window;
            layers.push(Layer::Window {
                steps,
                channels,
                mean: norm.mean.clone(),
                scale: norm.scale.clone(),
            });
            for c in &self.temporal {
                layers.extend([conv1d(c)?, Layer::Relu, Layer::MaxPool1d2]);
            }
            layers.push(Layer::Flatten);
        }
        if !self.convs.is_empty() {
            layers.push(Layer::Image {
                channels: 1,
                height: 28,
                width: 28,
            });
            for c in &self.convs {
                layers.extend([conv(c)?, Layer::Relu, Layer::MaxPool2]);
            }
            layers.push(Layer::Flatten);
        }
        if let Some(h) = &self.hidden {
            layers.extend([dense(h)?, Layer::Relu]);
        }
        layers.extend([dense(&self.feature)?, Layer::Relu]);
        Ok(BackboneModel {
            input_width: width,
            layers,
        })
    }
}

/// Per channel of a window, what the exported graph normalises with (empty: none).
#[derive(Debug, Clone, Default)]
struct Norm {
    mean: Vec<f32>,
    scale: Vec<f32>,
}

impl Norm {
    /// Each channel's mean and `1 / standard deviation` over `rows` of `data`.
    fn fit(data: &Dataset, rows: &[usize], channels: usize) -> Norm {
        let (mean, scale) = data.channel_stats(rows.iter().copied(), channels).into_iter().unzip();
        Norm { mean, scale }
    }

    /// `x` normalised in place (f32, as the exported graph's `Sub` then `Mul`).
    fn apply(&self, x: &mut [f32]) {
        let c = self.mean.len();
        if c == 0 {
            return;
        }
        for (j, v) in x.iter_mut().enumerate() {
            *v = (*v - self.mean[j % c]) * self.scale[j % c];
        }
    }
}

/// The samples `rows` of `data` as a batch, each window changed by [`augment`] first when
/// `augment` gives its shape and the generator, then normalised.
fn batch_tensor(
    data: &Dataset,
    rows: &[usize],
    norm: &Norm,
    device: &Device,
    mut augment_with: Option<((usize, usize), &mut Rng)>,
) -> Tensor<2> {
    let width = data.x.ncols();
    let mut x: Vec<f32> = Vec::with_capacity(rows.len() * width);
    for &r in rows {
        let at = x.len();
        x.extend(data.x.row(r).iter());
        if let Some((window, rng)) = augment_with.as_mut() {
            augment(&mut x[at..], *window, rng);
        }
    }
    norm.apply(&mut x);
    Tensor::<2>::from_data(TensorData::new(x, [rows.len(), width]), device)
}

fn accuracy(net: &Net, test: &Dataset, rows: &[usize], norm: &Norm, device: &Device) -> Result<f64> {
    let mut right = 0usize;
    for chunk in rows.chunks(500) {
        let logits = values(net.forward(batch_tensor(test, chunk, norm, device, None)))?;
        let classes = logits.len() / chunk.len();
        for (z, &r) in logits.chunks_exact(classes).zip(chunk) {
            let best = (0..classes).fold(0, |b, j| if z[j] > z[b] { j } else { b });
            right += usize::from(best == test.y[r] as usize);
        }
    }
    Ok(100.0 * right as f64 / rows.len().max(1) as f64)
}

/// Trains a backbone on `train` (less a seeded validation split of `cfg.validation`
/// samples) as a classifier, measuring validation accuracy after each epoch and test
/// accuracy at the end.
pub fn train(cfg: &TrainConfig, train: &Dataset, test: &Dataset) -> Result<Trained> {
    let window = match (cfg.arch, train.window()) {
        (Arch::Conv1d, Some(w)) => w,
        (Arch::Conv1d, None) => anyhow::bail!(
            "--arch conv1d takes sensor windows [time, channels] (at most {} channels, fewer than the steps); these samples have shape {:?}",
            crate::host::idx::MAX_WINDOW_CHANNELS,
            train.sample_shape
        ),
        (_, window) => {
            ensure!(
                train.x.ncols() == 784,
                "--arch {}: the backbone takes 28x28 images (784 values); these samples have shape {:?}{}",
                if cfg.arch == Arch::Cnn { "cnn" } else { "mlp" },
                train.sample_shape,
                if window.is_some() { " (sensor windows: use --arch conv1d)" } else { "" }
            );
            (0, 0)
        }
    };
    ensure!(
        cfg.arch != Arch::Conv1d
            || (1..=6).contains(&cfg.channels.len())
                && cfg.channels.iter().all(|&c| c >= 1)
                && window.0 >> cfg.channels.len() >= 1,
        "a conv1d backbone has 1 to 6 convolutions of at least one channel each, and each halves the window's {} steps; got {:?}",
        window.0,
        cfg.channels
    );
    ensure!(
        cfg.epochs >= 1 && cfg.batch >= 1 && cfg.features >= 1 && cfg.loss_every >= 1 && cfg.calibration >= 1,
        "epochs, batch, features, loss_every and calibration must be at least 1"
    );
    ensure!(
        cfg.arch != Arch::Cnn || (1..=4).contains(&cfg.channels.len()) && cfg.channels.iter().all(|&c| c >= 1),
        "a CNN has 1 to 4 convolutions of at least one channel each; got {:?}",
        cfg.channels
    );
    ensure!(
        cfg.validation < train.len(),
        "a validation split of {} leaves none of the {} training samples to train on",
        cfg.validation,
        train.len()
    );
    let classes = train.classes.max(test.classes);
    let device = cfg.device.device();
    device.seed(cfg.seed);
    let width = train.x.ncols();
    let mut net = Net::new(cfg, width, window, classes, &device);
    let mut optim = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut rng = Rng::new(cfg.seed);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let validation: Vec<usize> = if cfg.validation > 0 {
        rng.shuffle(&mut order);
        let mut v = order.split_off(train.len() - cfg.validation);
        v.sort_unstable();
        order.sort_unstable();
        v
    } else {
        Vec::new()
    };
    // Windows are normalised with what the training rows (validation excluded) hold.
    let norm = if cfg.arch == Arch::Conv1d {
        Norm::fit(train, &order, window.1)
    } else {
        Norm::default()
    };
    let steps = order.len().div_ceil(cfg.batch) * cfg.epochs;
    let bar = if cfg.progress {
        ProgressBar::new(steps as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("epoch {msg} [{bar:30}] {pos}/{len} steps, {eta} left")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let (mut validation_accuracy, mut train_loss, mut loss_curve) = (Vec::new(), Vec::new(), Vec::new());
    let (mut recent, mut in_window) = (0.0f64, 0usize);
    for epoch in 0..cfg.epochs {
        bar.set_message(format!("{}/{}", epoch + 1, cfg.epochs));
        rng.shuffle(&mut order);
        let (mut sum, mut count) = (0.0f64, 0usize);
        for rows in order.chunks(cfg.batch) {
            let augmenting = cfg.augment && cfg.arch == Arch::Conv1d;
            let x = batch_tensor(train, rows, &norm, &device, augmenting.then_some((window, &mut rng)));
            let y: Vec<i64> = rows.iter().map(|&r| i64::from(train.y[r])).collect();
            let y = Tensor::<1, Int>::from_data(TensorData::new(y, [rows.len()]), &device);
            let loss = loss_fn.forward(net.forward(x), y);
            let value = param(loss.clone())?.first().copied().unwrap_or(f32::NAN) as f64;
            ensure!(
                value.is_finite(),
                "training diverged at epoch {}: the loss is {value}",
                epoch + 1
            );
            sum += value;
            count += 1;
            recent += value;
            in_window += 1;
            if in_window == cfg.loss_every {
                loss_curve.push(recent / cfg.loss_every as f64);
                (recent, in_window) = (0.0, 0);
            }
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(cfg.lr, net, grads);
            bar.inc(1);
        }
        train_loss.push(sum / count.max(1) as f64);
        let mut line = format!("epoch {}: train loss {:.4}", epoch + 1, train_loss[epoch]);
        if !validation.is_empty() {
            let acc = accuracy(&net, train, &validation, &norm, &device)?;
            validation_accuracy.push(acc);
            line += &format!(", validation accuracy {acc:.2}%");
        }
        bar.println(line);
    }
    bar.finish_and_clear();
    let test_accuracy = accuracy(&net, test, &(0..test.len()).collect::<Vec<_>>(), &norm, &device)?;
    let backbone = net.export(width, &norm)?;
    let (head_weights, head_biases) = match dense(&net.classifier)? {
        Layer::Dense { weights, biases, .. } => (weights, biases),
        other => anyhow::bail!("internal: the classifier exported as {other:?}"),
    };
    let mut kept = order.clone();
    kept.sort_unstable();
    let calibration_rows = &kept[..cfg.calibration.min(kept.len())];
    let mut cx = ndarray::Array2::<f32>::zeros((calibration_rows.len(), train.x.ncols()));
    for (mut dst, &r) in cx.rows_mut().into_iter().zip(calibration_rows) {
        dst.assign(&train.x.row(r));
    }
    let activation_max = crate::host::device::calibrate(&backbone, cx.view())?;
    let check_samples = test.len().min(64);
    let rows: Vec<usize> = (0..check_samples).collect();
    let check_features = values(net.features(batch_tensor(test, &rows, &norm, &device, None)))
        .context("features for the export check")?;
    Ok(Trained {
        backbone,
        head_weights,
        head_biases,
        validation_accuracy,
        test_accuracy,
        train_loss,
        loss_curve,
        train_samples: order.len(),
        check_features,
        check_samples,
        activation_max,
        calibration_samples: calibration_rows.len(),
    })
}

//! `edgecl train`: its arguments and the run that trains a backbone on the host and
//! writes the model folder (backbone.onnx, head.json, calibration.json, train.json,
//! MODEL.md).

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use edgecl::host::idx::{load_split, Split};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DeviceArg {
    /// burn's pure-Rust CPU device.
    Cpu,
    /// The default GPU adapter through wgpu (build with --features gpu).
    Wgpu,
}

/// `edgecl train`'s arguments.
#[derive(Args)]
pub struct TrainArgs {
    /// Folder of IDX files to train on (default: Debian's dataset-fashion-mnist,
    /// /usr/share/datasets/fashion-mnist).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Backbone family.
    #[arg(long, value_enum, default_value = "cnn")]
    arch: edgecl::host::train::Arch,
    /// Width of the feature layer the device's head sees.
    #[arg(long, default_value_t = 256)]
    features: usize,
    /// Hidden width of the MLP's first layer.
    #[arg(long, default_value_t = 256)]
    hidden: usize,
    /// Output channels of the convolutions, each followed by ReLU and a max-pool: the
    /// CNN's 3x3 ones (default 16,32) or conv1d's kernels of 5 over time (default 16,32,32).
    #[arg(long, value_delimiter = ',')]
    channels: Option<Vec<usize>>,
    /// Training samples (the first ones of the training split) the device image's
    /// activation ranges are calibrated on (calibration.json).
    #[arg(long, default_value_t = 2000)]
    calibration: usize,
    /// Passes over the training set.
    #[arg(long, default_value_t = 8)]
    epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Seed of initialisation, validation split and batch order.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Train (and test) on these classes only, e.g. 0,1,2,3,4 (the device learns the rest).
    #[arg(long, value_delimiter = ',')]
    classes: Option<Vec<u16>>,
    /// Training samples held out to measure validation accuracy after each epoch.
    #[arg(long, default_value_t = 5000)]
    validation: usize,
    /// Where burn trains: `cpu` (pure Rust, the default) or `wgpu` (a GPU through
    /// Vulkan/Metal/DirectX; needs the `gpu` feature).
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
    /// Training steps averaged into one point of train.json's loss curve.
    #[arg(long, default_value_t = 50)]
    loss_every: usize,
    /// Conv1d: train on windows turned, scaled and shifted as another wearer would change
    /// them (each triaxial sensor rotated by up to 30 degrees, scaled by 0.9-1.1, rolled
    /// in time), for wearers it has not seen.
    #[arg(long)]
    augment: bool,
    /// Model folder to write (e.g. models/fashion-cnn).
    #[arg(long)]
    out: PathBuf,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

/// `edgecl train`: trains a backbone and writes its model folder.
pub fn train(args: TrainArgs) -> Result<()> {
    use edgecl::host::onnx::{max_abs_difference, Backbone};
    use edgecl::host::train::{self, Arch, TrainConfig};
    use sha2::{Digest, Sha256};
    use std::fmt::Write as _;
    let dir = match args.data.clone() {
        Some(d) => d,
        None => {
            let debian = PathBuf::from("/usr/share/datasets/fashion-mnist");
            if !debian.exists() {
                bail!(
                    "no --data given and Debian's dataset-fashion-mnist is not installed ({})",
                    debian.display()
                );
            }
            debian
        }
    };
    let mut train_set = load_split(&dir, Split::Train, None)?;
    let mut test_set = load_split(&dir, Split::Test, Some(train_set.classes))?;
    if let Some(classes) = &args.classes {
        if let Some(c) = classes.iter().find(|&&c| usize::from(c) >= train_set.classes) {
            bail!(
                "--classes: class {c} is not in {} (classes 0 to {})",
                dir.display(),
                train_set.classes - 1
            );
        }
        train_set = train_set.only_classes(classes);
        test_set = test_set.only_classes(classes);
    }
    let cfg = TrainConfig {
        arch: args.arch,
        features: args.features,
        hidden: args.hidden,
        channels: args.channels.clone().unwrap_or_else(|| args.arch.default_channels()),
        calibration: args.calibration,
        epochs: args.epochs,
        batch: args.batch,
        lr: args.lr,
        seed: args.seed,
        validation: args.validation,
        device: match args.device {
            DeviceArg::Cpu => train::TrainDevice::Cpu,
            #[cfg(feature = "gpu")]
            DeviceArg::Wgpu => train::TrainDevice::Wgpu,
            #[cfg(not(feature = "gpu"))]
            DeviceArg::Wgpu => bail!(
                "--device wgpu: this edgecl was built without the `gpu` feature (cargo build --release --features gpu)"
            ),
        },
        loss_every: args.loss_every,
        progress: !args.quiet && std::io::stderr().is_terminal(),
        augment: args.augment,
    };
    let started = std::time::Instant::now();
    let trained = train::train(&cfg, &train_set, &test_set)?;
    let seconds = started.elapsed().as_secs_f64();
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let onnx_path = args.out.join("backbone.onnx");
    std::fs::write(&onnx_path, trained.backbone.to_onnx()?)
        .with_context(|| format!("writing {}", onnx_path.display()))?;
    // The exported file, run by tract, must give the trainer's features.
    let check = test_set.x.slice(ndarray::s![..trained.check_samples, ..]);
    let tract = Backbone::load(&onnx_path)?.features(check)?;
    let err = max_abs_difference(&tract, &trained.check_features);
    let scale = trained
        .check_features
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()))
        .max(1.0);
    if err > 1e-5 * scale {
        bail!(
            "{}: tract's features differ from the trainer's by {err} (largest feature {scale})",
            onnx_path.display()
        );
    }
    let head = serde_json::json!({
        "classes": trained.head_biases.len(),
        "features": trained.head_weights.len() / trained.head_biases.len().max(1),
        "layout": "weights are classes x features, row-major",
        "weights": trained.head_weights,
        "biases": trained.head_biases,
    });
    let head_path = args.out.join("head.json");
    std::fs::write(&head_path, serde_json::to_string(&head)? + "\n")
        .with_context(|| format!("writing {}", head_path.display()))?;
    let mut md = String::new();
    let arch = match cfg.arch {
        Arch::Cnn => {
            let mut text = "CNN: 1x28x28".to_string();
            let side = 28usize >> cfg.channels.len();
            for c in &cfg.channels {
                text += &format!(" -> conv3x3({c}) -> ReLU -> maxpool2");
            }
            let last = cfg.channels.last().copied().unwrap_or(1);
            format!(
                "{text} -> flatten({}) -> dense({}) -> ReLU",
                last * side * side,
                cfg.features
            )
        }
        Arch::Conv1d => {
            let (mut steps, channels) = train_set.window().unwrap_or((0, 0));
            let mut text = format!("1D-CNN: window {steps}x{channels} (time x channels), each channel normalised");
            for c in &cfg.channels {
                text += &format!(" -> conv1d({c}, k{}) -> ReLU -> maxpool2", train::KERNEL_1D);
                steps /= 2;
            }
            let last = cfg.channels.last().copied().unwrap_or(1);
            format!("{text} -> flatten({}) -> dense({}) -> ReLU", last * steps, cfg.features)
        }
        Arch::Mlp => format!(
            "MLP: 784 -> dense({}) -> ReLU -> dense({}) -> ReLU",
            cfg.hidden, cfg.features
        ),
    };
    let _ = writeln!(
        md,
        "# {}\n",
        args.out.file_name().map_or("model".into(), |n| n.to_string_lossy())
    );
    let command: Vec<String> = std::env::args().skip(1).collect();
    let _ = writeln!(
        md,
        "Written by `edgecl {}` (edgecl {}).\n",
        command.join(" "),
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(
        md,
        "- backbone (`backbone.onnx`): {arch}; input float [N, {}], output float [N, {}]",
        train_set.x.ncols(),
        cfg.features
    );
    let _ = writeln!(
        md,
        "- head (`head.json`): the pretraining classifier, dense {} -> {}",
        cfg.features,
        trained.head_biases.len()
    );
    let _ = writeln!(
        md,
        "- data: {}{} ({} training samples, {} of them held out for validation; {} test samples)",
        dir.display(),
        args.classes.as_ref().map_or(String::new(), |c| format!(
            ", classes {} only",
            c.iter().map(u16::to_string).collect::<Vec<_>>().join(",")
        )),
        train_set.len(),
        train_set.len() - trained.train_samples,
        test_set.len()
    );
    let _ = writeln!(
        md,
        "- training: {} epochs, batch {}, Adam lr {}, seed {}, device {}, {:.0} s",
        cfg.epochs,
        cfg.batch,
        cfg.lr,
        cfg.seed,
        cfg.device.name(),
        seconds
    );
    let accs: Vec<String> = trained.validation_accuracy.iter().map(|a| format!("{a:.2}")).collect();
    let _ = writeln!(md, "- validation accuracy after each epoch (%): {}", accs.join(", "));
    let _ = writeln!(md, "- test accuracy (%): {:.2}", trained.test_accuracy);
    let _ = writeln!(
        md,
        "- export check: tract's features of {} test samples are within {err:.2e} of burn's (largest feature {scale:.2})",
        trained.check_samples
    );
    let calibration_path = args.out.join(edgecl::host::device::CALIBRATION_FILE);
    let window = matches!(
        trained.backbone.layers.first(),
        Some(edgecl::host::onnx::Layer::Window { .. })
    );
    let calibration = serde_json::json!({
        "about": if window {
            "largest |value| of the normalised window, then the largest output of each device layer but the last \
             (after ReLU and pool), f32: the i8 input step and the u8 activation ranges of the device image \
             (edgecl device-data, export)"
        } else {
            "largest output of each device layer but the last (after ReLU and pool), f32, \
             the u8 activation ranges of the device image (edgecl device-data, export)"
        },
        "data": dir.display().to_string(),
        "samples": trained.calibration_samples,
        "activation_max": trained.activation_max,
    });
    std::fs::write(&calibration_path, serde_json::to_string_pretty(&calibration)? + "\n")
        .with_context(|| format!("writing {}", calibration_path.display()))?;
    let files = vec![&onnx_path, &head_path, &calibration_path];
    let _ = writeln!(
        md,
        "- device calibration (`{}`): the largest {}output of each layer but the last over the first {} training \
         samples (by index, validation split excluded): {:?}",
        edgecl::host::device::CALIBRATION_FILE,
        if window {
            "|value| of the normalised window, then the largest "
        } else {
            ""
        },
        trained.calibration_samples,
        trained.activation_max
    );
    let _ = writeln!(md, "\n| file | bytes | sha256 |\n|---|---:|---|");
    for path in files {
        let bytes = std::fs::read(path)?;
        let _ = writeln!(
            md,
            "| {} | {} | `{:x}` |",
            path.file_name().map_or("".into(), |n| n.to_string_lossy()),
            bytes.len(),
            Sha256::digest(&bytes)
        );
    }
    std::fs::write(args.out.join("MODEL.md"), md)?;
    let metrics = serde_json::json!({
        "device": cfg.device.name(),
        "seconds": seconds,
        "epochs": cfg.epochs,
        "seed": cfg.seed,
        "train_samples": trained.train_samples,
        "validation_samples": train_set.len() - trained.train_samples,
        "train_loss": trained.train_loss,
        "loss_every": cfg.loss_every,
        "loss_curve": trained.loss_curve,
        "validation_accuracy": trained.validation_accuracy,
        "test_accuracy": trained.test_accuracy,
    });
    let metrics_path = args.out.join("train.json");
    std::fs::write(&metrics_path, serde_json::to_string_pretty(&metrics)? + "\n")
        .with_context(|| format!("writing {}", metrics_path.display()))?;
    println!(
        "{}: test accuracy {:.2}% after {} epochs ({:.0} s); features {}; export checked to {err:.2e}",
        args.out.display(),
        trained.test_accuracy,
        cfg.epochs,
        seconds,
        cfg.features
    );
    Ok(())
}

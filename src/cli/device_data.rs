//! `edgecl device-data`: the flash images the firmware embeds (the int8 backbone and
//! the labelled sample stream).

use super::default_data;
use anyhow::{Context, Result};
use clap::Args;
use edgecl::host::idx::{load_split, Split};
use std::path::PathBuf;

/// `edgecl device-data`'s arguments.
#[derive(Args)]
pub struct DeviceDataArgs {
    /// Model folder with a backbone.onnx and the calibration.json `edgecl train` writes
    /// beside it (convolutions, 2x2 max-pools, dense layers, ReLU).
    #[arg(long, default_value = "models/fashion-cnn8")]
    model: PathBuf,
    /// Folder of IDX files the stream is drawn from; default: the shipped MNIST.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Training samples per task (Split-MNIST's five tasks of two digits).
    #[arg(long, default_value_t = 300)]
    train_per_task: usize,
    /// Held-out test samples per task.
    #[arg(long, default_value_t = 60)]
    test_per_task: usize,
    /// Bits per stored pixel: 4 or 8.
    #[arg(long, default_value_t = 4)]
    bits: u8,
    /// Seed of the samples drawn and their order.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Folder to write backbone.bin and stream.bin to.
    #[arg(long, default_value = "boards/flash")]
    out: PathBuf,
}

/// `edgecl device-data`: writes backbone.bin and stream.bin.
pub fn device_data(args: DeviceDataArgs) -> Result<()> {
    use edgecl::host::device::{model_backbone_image, stream_image, StreamSpec};
    let (_, bytes, backbone) = model_backbone_image(&args.model)?;
    let dir = args.data.clone().unwrap_or_else(default_data);
    let train = load_split(&dir, Split::Train, None)?;
    let test = load_split(&dir, Split::Test, Some(train.classes))?;
    let spec = StreamSpec::split(args.train_per_task, args.test_per_task, args.bits, args.seed);
    let stream = stream_image(&train, &test, &spec)?;
    let check = edgecl::host::device::check_against_tract(&bytes, &backbone, &stream)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    for (name, image) in [("backbone.bin", &backbone), ("stream.bin", &stream)] {
        let path = args.out.join(name);
        std::fs::write(&path, image).with_context(|| format!("writing {}", path.display()))?;
        println!("{}: {} bytes", path.display(), image.len());
    }
    println!(
        "int8 backbone against tract (f32 ONNX) on the stream's {} held-out samples: largest difference {:.4}, largest feature {:.3}",
        check.samples, check.max_abs_difference, check.max_feature
    );
    Ok(())
}

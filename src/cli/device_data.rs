//! `edgecl device-data`: the flash images the firmware embeds (the int8 backbone and
//! the labelled sample stream: pixels, or sensor windows as the device quantises them).

use super::default_data;
use anyhow::{ensure, Context, Result};
use clap::Args;
use edgecl::host::idx::{load_split, Split};
use std::path::PathBuf;

/// `edgecl device-data`'s arguments.
#[derive(Args)]
pub struct DeviceDataArgs {
    /// Model folder with a backbone.onnx and the calibration.json `edgecl train` writes
    /// beside it (convolutions over images or over time, max-pools, dense layers, ReLU).
    #[arg(long, default_value = "models/fashion-cnn8")]
    model: PathBuf,
    /// Folder of IDX files the stream is drawn from; default: the shipped MNIST.
    #[arg(long)]
    data: Option<PathBuf>,
    /// The stream's tasks, each a list of classes, `/` between tasks (`0,1,2,3/4,5/6`);
    /// default: the data's classes two by two (Split-MNIST's five tasks on MNIST).
    #[arg(long)]
    tasks: Option<String>,
    /// Training samples per task.
    #[arg(long, default_value_t = 300)]
    train_per_task: usize,
    /// Held-out test samples per task.
    #[arg(long, default_value_t = 60)]
    test_per_task: usize,
    /// Bits per stored pixel: 4 or 8 (default 4); a sensor window's values take 8.
    #[arg(long)]
    bits: Option<u8>,
    /// Seed of the samples drawn and their order.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Folder to write backbone.bin and stream.bin to.
    #[arg(long, default_value = "boards/flash")]
    out: PathBuf,
}

/// The tasks of `--tasks` (`0,1/2,3`), each class below `classes` and in one task only.
fn parse_tasks(text: &str, classes: usize) -> Result<Vec<Vec<u16>>> {
    let tasks: Vec<Vec<u16>> = text
        .split('/')
        .map(|t| {
            t.split(',')
                .map(|c| c.trim().parse::<u16>())
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<_, _>>()
        .with_context(|| format!("--tasks `{text}` is not lists of classes like 0,1/2,3/4"))?;
    let mut seen: Vec<u16> = tasks.iter().flatten().copied().collect();
    if let Some(&c) = seen.iter().find(|&&c| usize::from(c) >= classes) {
        anyhow::bail!("--tasks names class {c}, the data has classes 0 to {}", classes - 1);
    }
    seen.sort_unstable();
    ensure!(
        seen.windows(2).all(|w| w[0] != w[1]),
        "--tasks `{text}` names a class twice"
    );
    Ok(tasks)
}

/// `edgecl device-data`: writes backbone.bin and stream.bin.
pub fn device_data(args: DeviceDataArgs) -> Result<()> {
    use edgecl::host::device::{model_backbone_image, stream_image, window_stream_image, StreamSpec};
    let model = super::shipped_path(&args.model.display().to_string());
    let (_, bytes, backbone) = model_backbone_image(&model)?;
    let parsed = edgecl::device::Backbone::parse(&backbone).map_err(|e| anyhow::anyhow!("{e}"))?;
    let dir = args.data.clone().unwrap_or_else(default_data);
    let train = load_split(&dir, Split::Train, None)?;
    let test = load_split(&dir, Split::Test, Some(train.classes))?;
    let tasks = match &args.tasks {
        Some(t) => parse_tasks(t, train.classes)?,
        None => (0..train.classes as u16)
            .collect::<Vec<_>>()
            .chunks(2)
            .map(<[u16]>::to_vec)
            .collect(),
    };
    let spec = StreamSpec {
        tasks,
        train_per_task: args.train_per_task,
        test_per_task: args.test_per_task,
        bits: args.bits.unwrap_or(if parsed.takes_windows() { 8 } else { 4 }),
        seed: args.seed,
    };
    let stream = if parsed.takes_windows() {
        window_stream_image(&train, &test, &spec, &parsed)?
    } else {
        stream_image(&train, &test, &spec)?
    };
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

//! `edgecl export`: a signed device image for a board.

use anyhow::{bail, Context, Result};
use clap::Args;
use edgecl::host::board::{Board, BoardKind};
use std::path::PathBuf;

/// `edgecl export`'s arguments.
#[derive(Args)]
pub struct ExportArgs {
    /// Board profile (its learner budget and kind: mcu images carry the backbone).
    #[arg(long)]
    board: String,
    /// Model folder with a backbone.onnx (for mcu boards also its calibration.json: the
    /// int8 image is made from both) [the shipped models/fashion-cnn8].
    #[arg(long)]
    model: Option<PathBuf>,
    /// Device config text [boards/BOARD/firmware.toml]; for a Linux board, the run config
    /// (TOML; see `edgecl run --help` and the README's deploy guide).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Secret key from `edgecl keygen`.
    #[arg(long)]
    sign: PathBuf,
    /// Image file to write.
    #[arg(long)]
    out: PathBuf,
}

/// `edgecl export`: writes a board's signed device image.
pub fn export(args: ExportArgs) -> Result<()> {
    use edgecl::host::device::{device_image, model_backbone_image, public_key, read_key_file, to_hex, KeyKind};
    let board = Board::load(&args.board)?;
    let config_path = match (&args.config, board.kind) {
        (Some(p), _) => p.clone(),
        (None, BoardKind::Linux) => bail!(
            "--config FILE is needed for {}: a run config (TOML: strategy, budget, hidden, ...; see edgecl run --help)",
            board.name
        ),
        (None, _) => {
            let shipped = super::shipped_path(&format!("boards/{}/firmware.toml", board.name));
            if !shipped.exists() {
                bail!(
                    "{} has no shipped firmware config ({} is not there): pass --config FILE, a device config \
                     (TOML, as boards/netduinoplus2/firmware.toml)",
                    board.name,
                    shipped.display()
                );
            }
            shipped
        }
    };
    let model = args
        .model
        .clone()
        .unwrap_or_else(|| super::shipped_path("models/fashion-cnn8"));
    let config = std::fs::read_to_string(&config_path).with_context(|| format!("reading {}", config_path.display()))?;
    let key_text = std::fs::read_to_string(&args.sign).with_context(|| format!("reading {}", args.sign.display()))?;
    let secret = read_key_file(&key_text, KeyKind::Secret, &args.sign.display().to_string())?;
    let onnx_path = model.join("backbone.onnx");
    let onnx = std::fs::read(&onnx_path).with_context(|| format!("reading {}", onnx_path.display()))?;
    let (backbone, image) = if board.kind == BoardKind::Mcu {
        let (model, _, backbone) = model_backbone_image(&model)?;
        let image = device_image(&board, &config, &backbone, model.feature_width()?, &secret)?;
        (backbone, image)
    } else {
        let image =
            edgecl::host::runtime::linux_image(&board, &config, &onnx, &onnx_path.display().to_string(), &secret)
                .with_context(|| format!("{}", config_path.display()))?;
        (Vec::new(), image)
    };
    std::fs::write(&args.out, &image).with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "{}: {} bytes for {} ({} config, {} backbone), signed by {}",
        args.out.display(),
        image.len(),
        board.name,
        config_path.display(),
        if backbone.is_empty() {
            "no".to_string()
        } else {
            format!("{} B", backbone.len())
        },
        to_hex(&public_key(&secret))
    );
    Ok(())
}

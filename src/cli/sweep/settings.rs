//! A sweep's `settings.txt`: what its cells share, written once and read back by each
//! cell, and the shape a cell runs with.

use super::{absolute, SweepArgs, SETTINGS_FILE};
use crate::cli::default_data;
use crate::cli::shape::Shape;
use crate::cli::strategy::StrategyArg;
use anyhow::{Context, Result};
use clap::ValueEnum;
use edgecl::host::scenario::{Kind, Setting};
use edgecl::host::sweep::Cell;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Everything a sweep's cells share: what `settings.txt` holds. The per-cell fields of
/// the shape (board, scenario, setting, strategy, budget, seed) are cleared: the cell
/// sets them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Settings {
    pub(super) shape: Shape,
    /// The IDX folder, absolute.
    pub(super) data: PathBuf,
    pub(super) iters: Option<usize>,
}

impl Settings {
    pub(super) fn new(args: &SweepArgs) -> Result<Settings> {
        let mut shape = args.shape.clone();
        (shape.strategy, shape.budget, shape.seed, shape.board) = (StrategyArg::unset(), None, 0, None);
        (shape.scenario, shape.setting) = (Kind::Split, Some(Setting::ClassIl));
        #[cfg(feature = "onnx")]
        {
            // A model folder or backbone file named relative to here is found from anywhere.
            if let Some(m) = &shape.model {
                if Path::new(m).is_dir() {
                    shape.model = Some(absolute(Path::new(m))?.display().to_string());
                }
            }
            if let Some(b) = &shape.backbone {
                shape.backbone = Some(absolute(b)?);
            }
        }
        let data = absolute(&args.data.clone().unwrap_or_else(default_data))?;
        #[cfg(feature = "onnx")]
        if shape.model.is_none() && shape.backbone.is_none() && shape.protocol == edgecl::host::simulate::Protocol::Edge
        {
            // Data of another shape than 28x28 images (sensor windows): the shipped
            // backbone that takes it, named, as `simulate` picks it.
            let train = edgecl::host::idx::load_split(&data, edgecl::host::idx::Split::Train, None)?;
            if let Some(m) = edgecl::host::onnx::shipped_for(&train.sample_shape) {
                if m.name != edgecl::host::onnx::DEFAULT_MODEL {
                    shape.model = Some(m.name.to_string());
                }
            }
        }
        Ok(Settings {
            shape,
            data,
            iters: args.iters,
        })
    }

    pub(super) fn text(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)? + "\n")
    }

    pub(super) fn read(dir: &Path) -> Result<Settings> {
        let path = dir.join(SETTINGS_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {} (is {} a sweep's folder?)", path.display(), dir.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not the settings of this edgecl version's sweeps", path.display()))
    }

    /// The shape `cell` runs with.
    pub(super) fn shape(&self, cell: &Cell) -> Result<Shape> {
        let mut shape = self.shape.clone();
        shape.board = cell.board.clone();
        shape.scenario = Kind::from_str(&cell.scenario, false)
            .map_err(|_| anyhow::anyhow!("cell scenario `{}` is not one this build knows", cell.scenario))?;
        shape.setting = Some(
            Setting::from_str(&cell.setting, false)
                .map_err(|_| anyhow::anyhow!("cell setting `{}` is not one this build knows", cell.setting))?,
        );
        shape.strategy = StrategyArg::parse(cell.strategy.split(':').next().unwrap_or_default())?;
        shape.budget = Some(cell.budget);
        shape.seed = cell.seed;
        // An MCU board's features come from the dense backbone its firmware ran
        // (models/fashion-mlp) unless a model is named.
        #[cfg(feature = "onnx")]
        if shape.model.is_none()
            && shape.backbone.is_none()
            && shape.board()?.kind == edgecl::host::board::BoardKind::Mcu
            && cell.board.is_some()
        {
            let mlp = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/fashion-mlp");
            shape.model = Some(mlp.display().to_string());
        }
        Ok(shape)
    }
}

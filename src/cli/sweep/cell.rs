//! Running a sweep's cells: the data and the scenario the cells of a group share, one
//! cell's run and its report, and `edgecl sweep-cell`.

use super::settings::Settings;
use super::SweepCellArgs;
use crate::cli::shape::{Shape, Source};
use anyhow::{bail, Result};
use edgecl::host::board::BoardKind;
use edgecl::host::idx::{load_split, Dataset, Split};
use edgecl::host::scenario::Scenario;
use edgecl::host::scenario::{Kind, Setting};
use edgecl::host::simulate::{self, GeneratorChoice, Length};
use edgecl::host::slurm;
use edgecl::host::sweep::{
    collect, fit_generator, flash_need, outcome, parse_label, read_cells, write_cell, Cell, Outcome, CELLS_FILE,
};
use serde_json::Value;
use std::path::Path;
#[cfg(feature = "onnx")]
use std::path::PathBuf;

/// The training and test sets of a sweep's data folder.
pub(super) struct Data {
    train: Dataset,
    test: Dataset,
}

impl Data {
    pub(super) fn load(dir: &Path) -> Result<Data> {
        let train = load_split(dir, Split::Train, None)?;
        let test = load_split(dir, Split::Test, Some(train.classes))?;
        Ok(Data { train, test })
    }
}

/// What makes two cells' scenarios the same: their features and the way tasks are cut.
#[derive(Debug, PartialEq)]
pub(super) struct ScenarioKey {
    #[cfg(feature = "onnx")]
    model: Option<String>,
    #[cfg(feature = "onnx")]
    backbone: Option<PathBuf>,
    scenario: Kind,
    setting: Setting,
    seed: u64,
}

impl ScenarioKey {
    pub(super) fn of(shape: &Shape) -> ScenarioKey {
        ScenarioKey {
            #[cfg(feature = "onnx")]
            model: shape.model.clone(),
            #[cfg(feature = "onnx")]
            backbone: shape.backbone.clone(),
            scenario: shape.scenario,
            setting: shape.setting(),
            seed: shape.seed,
        }
    }
}

/// A scenario built for a set of cells that share it, and what their board's flash
/// holds of the backbone.
pub(super) struct Prepared {
    scenario: Scenario,
    backbone: Option<String>,
    /// The device backbone image's bytes (or why the board cannot run it), made at the
    /// first cell on an MCU board: the cells that share the scenario share its backbone.
    device_image: std::sync::OnceLock<std::result::Result<std::result::Result<usize, String>, String>>,
}

impl Prepared {
    pub(super) fn new(settings: &Settings, cell: &Cell, data: &Data) -> Result<Prepared> {
        let shape = settings.shape(cell)?;
        #[allow(unused_mut)]
        let mut spec = shape.spec(None, None);
        let (scenario, backbone) = match shape.source_for(Some(&data.train.sample_shape))? {
            Source::Protocol => (Scenario::build(spec, data.train.clone(), data.test.clone())?, None),
            #[cfg(feature = "onnx")]
            Source::Backbone(b) => {
                spec.features = edgecl::host::scenario::Features::Pixels;
                let s = Scenario::build(spec, data.train.clone(), data.test.clone())?.with_backbone(&b)?;
                (s, Some(b.name().to_string()))
            }
        };
        Ok(Prepared {
            scenario,
            backbone,
            device_image: std::sync::OnceLock::new(),
        })
    }

    /// Runs `cell` (whose scenario this is): its report, `{"fits": false, ...}` when its
    /// learner does not fit the budget, or an error.
    pub(super) fn run(&self, settings: &Settings, cell: &Cell) -> Result<Value> {
        let shape = settings.shape(cell)?;
        let board = shape.board()?;
        let (strategy, generator) = parse_label(&cell.strategy)?;
        let (default_iters, ..) = shape.training();
        let length = Length::Iters(settings.iters.unwrap_or(default_iters));
        let mut opts = shape.options(length, false, settings.data.display().to_string())?;
        opts.strategy = strategy;
        if let Some(g) = generator {
            opts.replay.generator = g;
        }
        opts.backbone = self.backbone.clone();
        let scenario = &self.scenario;
        let (inputs, outputs, tasks) = (scenario.input_width(), scenario.outputs(), scenario.tasks.len());
        crate::cli::simulate::fit_slots(&mut opts, scenario);
        fit_generator(&mut opts, inputs, outputs, tasks);
        if let Err(e) = simulate::setup(&opts, inputs, outputs, tasks, scenario.spec.setting) {
            let over = e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<edgecl::Error>(),
                    Some(edgecl::Error::OverBudget { .. })
                )
            });
            return match over {
                true => Ok(serde_json::json!({ "fits": false, "error": format!("{e:#}") })),
                false => Err(e),
            };
        }
        let started = std::time::Instant::now();
        let report = simulate::run(&opts, scenario)?;
        let seconds = started.elapsed().as_secs_f64();
        // Bytes of the backbone image an MCU board's flash holds (0 on Linux boards), or
        // why the board cannot run it; none without a board.
        let flash_backbone = match (cell.board.is_some(), board.kind) {
            (false, _) => None,
            (true, BoardKind::Mcu) => Some(
                self.device_image
                    .get_or_init(|| device_backbone(&shape).map_err(|e| format!("{e:#}")))
                    .clone()
                    .map_err(anyhow::Error::msg)?,
            ),
            (true, _) => Some(Ok(0)),
        };
        // The firmware runs its config's strategies, replay with the Gaussian only.
        let on_firmware = edgecl::device::runs(strategy)
            && (!strategy.replays() || opts.replay.generator == GeneratorChoice::Gaussian);
        let flash = flash_backbone.as_ref().map(|b| match b {
            Ok(_) if board.kind == BoardKind::Mcu && !on_firmware => serde_json::json!({
                "fits": null,
                "error": format!("the firmware does not run {}", cell.strategy),
            }),
            Ok(_) if board.kind == BoardKind::Mcu && board.firmware_base_bytes.is_none() => serde_json::json!({
                "fits": null,
                "error": format!("{} has no measured firmware", board.name),
            }),
            Ok(bytes) => serde_json::to_value(flash_need(
                &board,
                report.learner.parameters,
                report.arena_bytes,
                *bytes,
            ))
            .unwrap_or_default(),
            Err(why) => serde_json::json!({ "fits": false, "error": why }),
        });
        Ok(serde_json::json!({ "fits": true, "seconds": seconds, "flash": flash, "report": report }))
    }
}

/// The device backbone image of a shape's backbone for an MCU board: its bytes, or why
/// the board cannot run it.
fn device_backbone(shape: &Shape) -> Result<std::result::Result<usize, String>> {
    #[cfg(feature = "onnx")]
    {
        let Some((bytes, name)) = shape.onnx_bytes()? else {
            return Ok(Err("pooled pixels have no device backbone".into()));
        };
        let image = edgecl::host::onnx::BackboneModel::from_onnx(&bytes, &name)
            .and_then(|m| edgecl::host::device::backbone_image_bytes(&m));
        Ok(image.map_err(|e| {
            format!(
                "{name} is not a device backbone ({e:#}); MCU firmware runs convolutional and dense int8 backbones \
                 such as models/fashion-cnn8"
            )
        }))
    }
    #[cfg(not(feature = "onnx"))]
    {
        let _ = shape;
        Ok(Err("built without ONNX".into()))
    }
}

/// `edgecl sweep-cell DIR INDEX`: runs one cell of the sweep in DIR (unless it has its
/// report) and writes its report; exits non-zero when the run failed.
pub fn sweep_cell(args: SweepCellArgs) -> Result<bool> {
    let dir = &args.dir;
    let cells = read_cells(dir)?;
    let Some(cell) = cells.get(args.index) else {
        bail!(
            "cell {} of {}: {} lists {} cells (0 to {})",
            args.index,
            dir.display(),
            CELLS_FILE,
            cells.len(),
            cells.len().saturating_sub(1)
        );
    };
    let name = cell.file_name();
    let current = collect(dir, std::slice::from_ref(cell))?.pop().and_then(|(_, v)| v);
    if let Some(status) = args.exit_status {
        match outcome(current.as_ref()) {
            Outcome::Done => println!(
                "cell {} ({name}) has its report; exit status {status} not recorded",
                args.index
            ),
            Outcome::Failed(e) => println!("cell {} ({name}) already failed: {e}", args.index),
            Outcome::Missing => {
                let why = format!(
                    "the cell's process ended without a report: {}",
                    slurm::exit_reason(status)
                );
                let record = serde_json::json!({ "error": why, "exit_status": status });
                write_cell(dir, cell, &record, "exit")?;
                println!("cell {} ({name}) failed: {why}", args.index);
            }
        }
        return Ok(true);
    }
    if let Outcome::Done = outcome(current.as_ref()) {
        println!("cell {} ({name}) has its report: not run again", args.index);
        return Ok(true);
    }
    let settings = Settings::read(dir)?;
    let result = Data::load(&settings.data)
        .and_then(|data| Prepared::new(&settings, cell, &data))
        .and_then(|p| p.run(&settings, cell));
    let (report, ok) = match result {
        Ok(v) => (v, true),
        Err(e) => (serde_json::json!({ "error": format!("{e:#}") }), false),
    };
    write_cell(dir, cell, &report, "cell")?;
    match outcome(Some(&report)) {
        Outcome::Failed(e) => eprintln!("edgecl: cell {} ({name}) failed: {e}", args.index),
        _ => println!("cell {} ({name}) done", args.index),
    }
    Ok(ok)
}

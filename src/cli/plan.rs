//! `edgecl plan`: its arguments, the `--config` file it reads, and the plan printed
//! against a board's budget.

use super::shape::{Shape, Source};
use anyhow::{bail, Context, Result};
use clap::Args;
use edgecl::host::report::{memory_table, ComponentBytes};
use edgecl::host::scenario::{Kind, Setting};
use edgecl::host::simulate::{self, Length, Protocol, Strategy};
use edgecl::{Kernels, LayerDims, LearnerConfig, Optimizer, Plan};
use serde::Deserialize;
use std::path::PathBuf;

/// `edgecl plan`'s arguments.
#[derive(Args)]
pub struct PlanArgs {
    #[command(flatten)]
    shape: Shape,
    /// A learner config TOML (dims, optimizer, lr, momentum, batch_size, kernels,
    /// max_tasks) instead of the protocol's network.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// `--config` file for `plan`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    dims: Vec<usize>,
    #[serde(default = "default_optimizer")]
    optimizer: String,
    #[serde(default = "default_lr")]
    lr: f32,
    #[serde(default = "default_momentum")]
    momentum: f32,
    #[serde(default = "default_batch")]
    batch_size: usize,
    #[serde(default = "default_kernels")]
    kernels: String,
    #[serde(default = "default_max_tasks")]
    max_tasks: usize,
}

fn default_optimizer() -> String {
    "sgd".into()
}
fn default_lr() -> f32 {
    0.05
}
fn default_momentum() -> f32 {
    0.9
}
fn default_batch() -> usize {
    32
}
fn default_kernels() -> String {
    "reference".into()
}
fn default_max_tasks() -> usize {
    edgecl::host::scenario::MAX_TASKS
}

/// `edgecl plan`: prints the learner's bytes per component against the budget; `false`
/// when it does not fit.
pub fn plan(args: PlanArgs) -> Result<bool> {
    let shape = &args.shape;
    let board = shape.board()?;
    let budget = shape.budget.unwrap_or(board.budget());
    let config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let f: ConfigFile = toml::from_str(&text).with_context(|| format!("learner config {}", path.display()))?;
            let optimizer = match f.optimizer.as_str() {
                "adam" => Optimizer::adam(f.lr),
                "sgd" => Optimizer::Sgd {
                    lr: f.lr,
                    momentum: f.momentum,
                },
                o => bail!("{}: optimizer `{o}` is not `sgd` or `adam`", path.display()),
            };
            let kernels = match f.kernels.as_str() {
                "reference" => Kernels::Reference,
                "fast" => Kernels::Fast,
                k => bail!("{}: kernels `{k}` is not `reference` or `fast`", path.display()),
            };
            LearnerConfig {
                dims: LayerDims::new(&f.dims)?,
                optimizer,
                batch_size: f.batch_size,
                max_tasks: f.max_tasks,
                seed: 0,
                kernels,
                penalty: None,
                packnet: None,
                generator: None,
            }
        }
        None => {
            let strategy = shape.strategy.get();
            // The shipped data's shape: 28x28 images of 10 classes.
            let p = shape.protocol();
            let inputs = match shape.source()? {
                Source::Protocol if p == Protocol::Edge => 14 * 14,
                Source::Protocol => 28 * 28,
                #[cfg(feature = "onnx")]
                Source::Backbone(b) => b.feature_width(),
            };
            let spec = shape.spec(None, None);
            let k = if spec.kind == Kind::Split {
                spec.classes_per_task
            } else {
                10
            };
            let tasks = spec.tasks.unwrap_or(match spec.kind {
                Kind::Split => 10 / k.max(1),
                Kind::Permuted => 10,
                Kind::Rotated => 5,
            });
            let max = edgecl::host::scenario::MAX_TASKS;
            if !(1..=max).contains(&tasks) || k == 0 || k > 10 {
                bail!("{tasks} tasks of {k} classes: give 1 to {max} tasks of 1 to 10 classes");
            }
            let outputs = if spec.setting == Setting::DomainIl {
                k
            } else {
                tasks * k
            };
            let (iters, ..) = shape.training();
            let opts = shape.options(Length::Iters(iters), false, String::new())?;
            if strategy == Strategy::Progressive {
                let c = simulate::columns_config(&opts, inputs, outputs, tasks)?;
                let plan = Plan::columns(&c)?;
                println!(
                    "plan for board {} ({}), progressive columns of {:?} (input, {} hidden layer(s) of {}, \
                     classes) with lateral connections, batch {}, {:?}, {:?} kernels\n",
                    board.name,
                    board.chip,
                    [c.input, c.width, c.classes],
                    c.hidden,
                    c.width,
                    c.batch_size,
                    c.optimizer,
                    c.kernels
                );
                println!("{}", memory_table(&ComponentBytes::of_plan(&plan), budget));
                println!(
                    "progressive: the plan reserves {} columns (the most that fit), {tasks} task(s) need {tasks}; \
                     parameters per column {:?}",
                    c.max_columns,
                    (0..c.max_columns).map(|k| c.column_params(k)).collect::<Vec<_>>()
                );
                return Ok(plan.check(budget).is_ok() && tasks <= c.max_columns);
            }
            simulate::learner_config(&opts, inputs, outputs, tasks)?
        }
    };
    let plan = Plan::new(&config)?;
    let comps = ComponentBytes::of_plan(&plan);
    println!(
        "plan for board {} ({}), learner {:?}, batch {}, {:?}, {:?} kernels\n",
        board.name,
        board.chip,
        config.dims.as_slice(),
        config.batch_size,
        config.optimizer,
        config.kernels
    );
    println!("{}", memory_table(&comps, budget));
    if let Some(p) = &config.packnet {
        let bits = edgecl::learner::packnet::owner_bits(config.max_tasks)?;
        println!(
            "PackNet: a {bits}-bit owner per weight ({} bytes for {} weights); at prune ratio {} each \
             layer keeps weights for {} of the {} tasks planned ({} tasks before a layer runs out of \
             free weights)",
            plan.bytes_of(edgecl::learner::plan::names::OWNERS),
            config.dims.weight_count(),
            p.prune_ratio,
            p.tasks_that_fit(&config.dims, config.max_tasks),
            config.max_tasks,
            p.tasks_that_fit(&config.dims, 255),
        );
    }
    match plan.check(budget) {
        Ok(()) => Ok(true),
        Err(e) => {
            eprintln!("edgecl: {e}");
            Ok(false)
        }
    }
}

//! The learner a run plans before it starts: the dense network or progressive columns, its
//! replay generator, each sized to the board's budget, and [`setup`], which checks the plan fits.

use super::options::{GeneratorChoice, Options, Protocol, ReplayRatio, Strategy};
use crate::host::report::ReplaySummary;
use crate::host::scenario::{Setting, MAX_TASKS};
use crate::learner;
use crate::learner::plan;
use crate::learner::{
    ColumnsConfig, GeneratorConfig, GeneratorKind, Kernels, LayerDims, LearnerConfig, Likelihood, Optimizer,
    PackNetConfig, Plan, VaeConfig,
};
use anyhow::{bail, Context, Result};

/// The generator a run's learner keeps, for `inputs` features and `outputs` classes.
pub fn generator_config(opts: &Options, inputs: usize, outputs: usize) -> Result<GeneratorConfig> {
    let r = &opts.replay;
    let gaussian = GeneratorConfig {
        classes: outputs,
        kind: GeneratorKind::Gaussian {
            rank: r.rank,
            slots: r.slots.unwrap_or(outputs).clamp(1, outputs),
        },
        distill: None,
    };
    let kind = match r.generator {
        GeneratorChoice::Gaussian => gaussian.kind,
        GeneratorChoice::Buffer => {
            let capacity = match r.buffer_rows {
                Some(n) => n,
                None => {
                    // The Gaussian's bytes, counts included, over a row's i8 features,
                    // f32 scale and u16 label.
                    let bytes = generator_bytes(&gaussian, inputs)?;
                    let counts = plan::checked_padded(outputs * 4).unwrap_or(0);
                    (bytes.saturating_sub(counts + 3 * plan::ALIGN) / (inputs + 6)).max(1)
                }
            };
            GeneratorKind::Buffer { capacity }
        }
        GeneratorChoice::Vae => {
            let literature = opts.protocol == Protocol::Literature;
            GeneratorKind::Vae(VaeConfig {
                hidden: r.vae_hidden.unwrap_or(if literature { 400 } else { 32 }),
                latent: r.vae_latent.unwrap_or(if literature { 100 } else { 8 }),
                likelihood: if literature {
                    Likelihood::Bernoulli
                } else {
                    Likelihood::Gaussian
                },
                optimizer: opts.optimizer,
            })
        }
    };
    Ok(GeneratorConfig {
        classes: outputs,
        kind,
        distill: r.distill,
    })
}

/// What the report says of a run's generator.
pub(super) fn replay_summary(opts: &Options, g: &GeneratorConfig, plan: &Plan) -> ReplaySummary {
    let bytes = plan
        .components()
        .iter()
        .filter(|c| ["generator", "buffer", "vae"].iter().any(|p| c.name.starts_with(p)))
        .map(|c| c.bytes)
        .sum();
    let mut summary = ReplaySummary {
        generator: opts.replay.generator.name().to_string(),
        bytes,
        ratio: match opts.replay.ratio {
            ReplayRatio::Fixed(r) => r.to_string(),
            ReplayRatio::Balanced => "balanced".to_string(),
        },
        rank: None,
        slots: None,
        rows: None,
        vae_hidden: None,
        vae_latent: None,
        likelihood: None,
        distill: g.distill,
    };
    match g.kind {
        GeneratorKind::Gaussian { rank, slots } => {
            summary.rank = Some(rank);
            summary.slots = Some(slots);
        }
        GeneratorKind::Buffer { capacity } => summary.rows = Some(capacity),
        GeneratorKind::Vae(v) => {
            summary.vae_hidden = Some(v.hidden);
            summary.vae_latent = Some(v.latent);
            summary.likelihood = Some(format!("{:?}", v.likelihood).to_lowercase());
        }
    }
    summary
}

/// The bytes a generator takes in the arena: the plan of a one-layer learner with it,
/// less the same plan without it.
pub fn generator_bytes(g: &GeneratorConfig, inputs: usize) -> Result<usize> {
    let mut c = LearnerConfig {
        dims: LayerDims::new(&[inputs, g.classes])?,
        optimizer: Optimizer::Sgd { lr: 0.1, momentum: 0.0 },
        batch_size: 1,
        max_tasks: 1,
        seed: 0,
        kernels: Kernels::Reference,
        penalty: None,
        packnet: None,
        generator: Some(*g),
    };
    let with = Plan::new(&c)?.total();
    c.generator = None;
    Ok(with - Plan::new(&c)?.total())
}

/// The learner for a run: the literature MLP, or for the edge protocol a
/// `features -> H -> outputs` head with the largest `H` (at most 4096) whose plan fits
/// the budget.
///
/// `tasks` sizes per-task state (EWC's slots).
pub fn learner_config(opts: &Options, inputs: usize, outputs: usize, tasks: usize) -> Result<LearnerConfig> {
    let penalty = opts.strategy.penalty().map(|kind| opts.penalty.config(kind));
    let packnet = opts.strategy.packnet().then_some(PackNetConfig {
        prune_ratio: opts.packnet.prune_ratio,
    });
    // Per-task state (EWC's slots, PackNet's owner ids) is sized for the run's tasks.
    let max_tasks = if penalty.is_some() || packnet.is_some() {
        tasks.max(1)
    } else {
        MAX_TASKS
    };
    let generator = match opts.strategy.replays() {
        true => Some(generator_config(opts, inputs, outputs)?),
        false => None,
    };
    let make = |dims: &[usize]| -> Result<LearnerConfig> {
        Ok(LearnerConfig {
            dims: LayerDims::new(dims)?,
            optimizer: opts.optimizer,
            batch_size: opts.batch,
            max_tasks,
            seed: opts.seed,
            kernels: opts.kernels,
            penalty,
            packnet,
            generator,
        })
    };
    let fits = |h: usize| -> Result<bool> {
        let c = make(&[inputs, h, outputs])?;
        Ok(Plan::new(&c)?.total() <= opts.budget)
    };
    let hidden = match (opts.protocol, opts.hidden) {
        (Protocol::Literature, None) => return make(&[inputs, 400, 400, outputs]),
        (Protocol::Literature, Some(0)) => {
            bail!("--hidden 0: the literature network has two hidden layers of at least one unit")
        }
        (Protocol::Literature, Some(h)) => return make(&[inputs, h, h, outputs]),
        (Protocol::Edge, Some(0)) => return make(&[inputs, outputs]),
        (Protocol::Edge, Some(h)) => h,
        (Protocol::Edge, None) => largest_fitting(4096, fits)?,
    };
    make(&[inputs, hidden, outputs])
}

/// The largest width in `1..=cap` for which `fits` holds (widths are monotone: a wider
/// one never fits when a narrower one does not), or 1 when none does, so the plan check
/// that follows reports what does not fit.
fn largest_fitting(cap: usize, fits: impl Fn(usize) -> Result<bool>) -> Result<usize> {
    if !fits(1)? {
        return Ok(1);
    }
    let (mut lo, mut hi) = (1usize, cap);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if fits(mid)? {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Ok(lo)
}

/// Progressive columns for a run (task-IL only): `hidden` layers as the protocol's network
/// has (2 literature, 1 edge), each `--column-width` wide, or else the widest (at most
/// the dense network's 400 or 4096) at which one column per task fits the budget; the
/// plan then reserves every column that fits.
pub fn columns_config(opts: &Options, inputs: usize, outputs: usize, tasks: usize) -> Result<ColumnsConfig> {
    let hidden = match opts.protocol {
        Protocol::Literature => 2,
        Protocol::Edge => 1,
    };
    let make = |width: usize, max_columns: usize| ColumnsConfig {
        input: inputs,
        width,
        hidden,
        classes: outputs,
        max_columns,
        optimizer: opts.optimizer,
        batch_size: opts.batch,
        seed: opts.seed,
        kernels: opts.kernels,
    };
    let fits = |width: usize, columns: usize| -> Result<bool> {
        Ok(Plan::columns(&make(width, columns))?.total() <= opts.budget)
    };
    let width = match opts.column_width {
        Some(0) => bail!("--column-width 0: a column needs at least one unit"),
        Some(w) => w,
        None => {
            let cap = match opts.protocol {
                Protocol::Literature => 400,
                Protocol::Edge => 4096,
            };
            largest_fitting(cap, |w| fits(w, tasks))?
        }
    };
    let mut columns = 1;
    while columns < MAX_COLUMNS && fits(width, columns + 1)? {
        columns += 1;
    }
    Ok(make(width, columns))
}

/// Most columns a run's plan reserves.
pub const MAX_COLUMNS: usize = 64;

/// The learner a run plans: the dense network, or progressive columns.
#[derive(Debug, Clone, Copy)]
pub enum Planned {
    /// The dense [`Learner`](crate::learner::Learner) (every strategy but progressive).
    Dense(LearnerConfig),
    /// Progressive [`Columns`](crate::learner::Columns).
    Columns(ColumnsConfig),
}

impl Planned {
    /// Optimizer, batch size and kernels.
    pub(super) fn training(&self) -> (Optimizer, usize, Kernels) {
        match self {
            Planned::Dense(c) => (c.optimizer, c.batch_size, c.kernels),
            Planned::Columns(c) => (c.optimizer, c.batch_size, c.kernels),
        }
    }

    /// Layer widths (one column's for progressive).
    pub fn shape(&self) -> Vec<usize> {
        match self {
            Planned::Dense(c) => c.dims.as_slice().to_vec(),
            Planned::Columns(c) => {
                let mut dims = vec![c.input];
                dims.extend(std::iter::repeat_n(c.width, c.hidden));
                dims.push(c.classes);
                dims
            }
        }
    }
}

/// Plans the learner `opts` asks for over `inputs` features, `outputs` classes and
/// `tasks` tasks, and checks it fits the budget and takes that many tasks (so a run is
/// refused before any feature is computed).
pub fn setup(opts: &Options, inputs: usize, outputs: usize, tasks: usize, setting: Setting) -> Result<(Planned, Plan)> {
    let planned = if opts.strategy == Strategy::Progressive {
        if setting != Setting::TaskIl {
            bail!("progressive columns need task labels: use --setting task-il");
        }
        Planned::Columns(columns_config(opts, inputs, outputs, tasks)?)
    } else {
        Planned::Dense(learner_config(opts, inputs, outputs, tasks)?)
    };
    let plan = match &planned {
        Planned::Dense(c) => Plan::new(c)?,
        Planned::Columns(c) => Plan::columns(c)?,
    };
    plan.check(opts.budget)
        .with_context(|| format!("learner {:?} on board {}", planned.shape(), opts.board.name))?;
    match &planned {
        Planned::Dense(c) if tasks > c.max_tasks => {
            bail!("{tasks} tasks: the learner plans for at most {}", c.max_tasks)
        }
        Planned::Columns(c) if tasks > c.max_columns => {
            return Err(learner::Error::ColumnsExhausted {
                task: c.max_columns + 1,
                max: c.max_columns,
            })
            .with_context(|| {
                format!(
                    "{tasks} tasks with progressive columns of width {} in {} bytes",
                    c.width, opts.budget
                )
            })
        }
        _ => {}
    }
    Ok((planned, plan))
}

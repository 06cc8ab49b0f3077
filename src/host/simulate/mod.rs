//! The simulator: runs the core's [`Learner`] over a scenario under a board's budget and
//! measures forgetting.
//!
//! The learner's plan is checked against the budget, and the learner is built in a
//! `Vec<u8>` arena of the plan's bytes: the same core code the firmware runs. Per task: train for a fixed number of updates on batches drawn
//! from shuffled epochs, then test on every task's test set (a row of the accuracy
//! matrix). Everything random comes from the seed: weight init, permutations, batch
//! order; the same seed gives the same matrix to the last bit.

mod batch;
mod config;
mod eval;
mod options;

pub use batch::{real_rows, real_rows_of, BATCH_SEED};
pub use config::{columns_config, generator_bytes, generator_config, learner_config, setup, Planned, MAX_COLUMNS};
pub use options::{
    default_lambda, default_lr, storage_name, GeneratorChoice, Length, Observe, Options, PackNetOptions, PenaltyKind,
    PenaltyOptions, Protocol, ReplayOptions, ReplayRatio, Strategy, MAX_UPDATES,
};

use crate::host::report::{
    self, ComponentBytes, LearnerSummary, PackNetSummary, PenaltySummary, ProgressiveSummary, Report, TaskStats,
};
use crate::host::scenario::{Part, Scenario, Setting};
use crate::learner;
use crate::learner::classifier::Classifier;
use crate::learner::learner::ClassRange;
use crate::learner::protocol::{Need, TaskEnd};
use crate::learner::rng::Rng;
use crate::learner::{Active, Columns, FisherLabels, Learner, LearnerConfig, Method, Optimizer};
use anyhow::{Context, Result};
use batch::Batcher;
use config::replay_summary;
use eval::evaluate;
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Instant;

/// The learner a run builds: the dense [`Learner`] or progressive [`Columns`].
enum Model<'a> {
    Dense(Box<Learner<'a>>),
    Columns(Box<Columns<'a>>),
}

impl<'a> Model<'a> {
    /// The head, whichever shape it has.
    fn head(&mut self) -> &mut dyn Classifier {
        match self {
            Model::Dense(l) => &mut **l,
            Model::Columns(c) => &mut **c,
        }
    }

    /// The head, to read.
    fn head_ref(&self) -> &dyn Classifier {
        match self {
            Model::Dense(l) => &**l,
            Model::Columns(c) => &**c,
        }
    }
}

/// Runs `scenario` with `opts` and reports what it measured.
pub fn run(opts: &Options, scenario: &Scenario) -> Result<Report> {
    let started = Instant::now();
    let tasks = scenario.tasks.len();
    let (planned, plan) = setup(
        opts,
        scenario.input_width(),
        scenario.outputs(),
        tasks,
        scenario.spec.setting,
    )?;
    // The plan fits the budget; the arena is the plan's bytes (the rest of the budget
    // would stay untouched).
    let mut arena = vec![0u8; plan.total()];
    let mut model = match &planned {
        Planned::Dense(c) => Model::Dense(Box::new(Learner::new(c, &mut arena)?)),
        Planned::Columns(c) => {
            let mut m = Columns::new(c, &mut arena)?;
            m.add_column()?; // the first task's (also the untrained network evaluated first)
            Model::Columns(Box::new(m))
        }
    };
    // The (task, row) pairs each task trains on, and its number of updates.
    let pools: Vec<Vec<(u32, u32)>> = (0..tasks)
        .map(|t| {
            let seen = match opts.strategy {
                Strategy::Joint => 0..t + 1,
                _ => t..t + 1,
            };
            seen.flat_map(|s| scenario.tasks[s].train.iter().map(move |&i| (s as u32, i)))
                .collect()
        })
        .collect();
    let updates: Vec<usize> = pools
        .iter()
        .map(|p| opts.length.updates(p.len(), opts.batch))
        .collect::<Result<_>>()?;

    let tests: Vec<(Vec<f32>, Vec<u16>)> = (0..tasks).map(|t| scenario.test_set(t)).collect();
    let packnet = opts.strategy.packnet();
    // PackNet alone trains each task's own outputs; with replay, every class seen.
    let own_only = matches!(opts.strategy, Strategy::PackNet(_));
    let random_accuracy = evaluate(&mut model, scenario, &tests, 0, !own_only)?.0;

    let retrain = if packnet { opts.packnet.retrain_iters } else { 0 };
    let bar = if opts.progress {
        let b = ProgressBar::new(updates.iter().map(|&u| (u + retrain) as u64).sum());
        b.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} updates, {eta} left")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        b
    } else {
        ProgressBar::hidden()
    };

    let width = scenario.input_width();
    let mut rng = Rng::new(opts.seed ^ BATCH_SEED);
    let mut batcher = Batcher {
        xb: vec![0.0f32; opts.batch * width],
        yb: vec![0u16; opts.batch],
        ranges: vec![ClassRange { start: 0, end: 1 }; opts.batch],
        scratch: Vec::new(),
        pool: Vec::new(),
        cursor: 0,
    };
    let replaying = opts.strategy.replays();
    let online = opts.observe == Observe::Online;
    // Online, what each real row is shown to as its batch is drawn: the generator, and an
    // importance estimate that needs samples (EWC, online EWC, MAS).
    let estimates = opts.strategy.penalty().is_some_and(|k| k != PenaltyKind::Si);
    let observe_rows = |l: &mut Learner<'_>, b: &Batcher, rows: usize, width: usize, t: usize| -> Result<()> {
        let active = match scenario.spec.setting {
            Setting::DomainIl => Active::All,
            Setting::TaskIl | Setting::ClassIl => Active::Classes(scenario.train_active(t)),
        };
        for (x, &y) in b.xb[..rows * width].chunks_exact(width).zip(&b.yb[..rows]) {
            if let (true, Some(mut r)) = (replaying, l.replaying()) {
                r.observe(x, y)
                    .with_context(|| format!("the generator observing task {}", t + 1))?;
            }
            if let (true, Some(mut p)) = (estimates, l.penalised()) {
                p.accumulate_importance(x, y, active)
                    .with_context(|| format!("estimating the importance of task {}", t + 1))?;
            }
        }
        Ok(())
    };
    let vae = replaying && opts.replay.generator == GeneratorChoice::Vae;
    let mut matrix = Vec::with_capacity(tasks);
    let mut task_inference = Vec::new();
    let mut stats = Vec::with_capacity(tasks);
    for t in 0..tasks {
        match &mut model {
            Model::Dense(l) if opts.reset_optimizer && t > 0 => l.reset_optimizer(),
            Model::Columns(c) if c.columns() <= t => {
                c.add_column().with_context(|| format!("task {}", t + 1))?;
            }
            _ => {}
        }
        bar.set_message(format!("task {}/{}", t + 1, tasks));
        batcher.pool = pools[t].clone();
        batcher.cursor = batcher.pool.len();
        // PackNet trains each task's own outputs and infers the task at test time; with
        // replay it trains, and keeps weights in, every output the task sees.
        let own = packnet.then(|| {
            if own_only {
                scenario.task_outputs(t)
            } else {
                scenario.train_active(t)
            }
        });
        let start = Instant::now();
        let mut recent = Vec::with_capacity(50);
        // Replay: real rows per batch, the rest replayed samples of old classes (none
        // before an old class has been observed).
        let own_outputs = scenario.task_outputs(t);
        let replay_real = match &model {
            Model::Dense(l) if replaying => l
                .generator()
                .and_then(|g| real_rows(g, own_outputs, opts.replay.ratio, opts.batch)),
            _ => None,
        };
        let mut train = |learner: &mut Model<'_>, batcher: &mut Batcher, n: usize, rng: &mut Rng| -> Result<()> {
            for _ in 0..n {
                let rows = batcher.yb.len();
                // Replayed rows in this batch (0 when the generator had nothing to give:
                // the batch is then all real).
                let mut replayed = 0;
                match (replay_real, &mut *learner) {
                    (Some(real), Model::Dense(l)) => {
                        batcher.next(scenario, rng, real);
                        if online {
                            observe_rows(l, batcher, real, width, t)?;
                        }
                        let (x, y) = (&mut batcher.xb[real * width..], &mut batcher.yb[real..]);
                        let filled = l
                            .replaying()
                            .context("replay without a generator")?
                            .fill(x, y, own_outputs)
                            .with_context(|| format!("replaying during task {}", t + 1))?;
                        if filled == 0 {
                            batcher.next(scenario, rng, rows);
                            if online {
                                observe_rows(l, batcher, rows, width, t)?;
                            }
                        } else {
                            replayed = rows - real;
                            for (r, &y) in batcher.ranges.iter_mut().zip(&batcher.yb).skip(real) {
                                *r = scenario.task_outputs(scenario.task_of_output(y));
                            }
                        }
                    }
                    (_, learner) => {
                        batcher.next(scenario, rng, rows);
                        if let (true, Model::Dense(l)) = (online, learner) {
                            observe_rows(l, batcher, rows, width, t)?;
                        }
                    }
                }
                let active = match (own.filter(|_| own_only), scenario.spec.setting) {
                    (Some(r), _) => Active::Classes(r),
                    (None, Setting::TaskIl) => Active::PerSample(&batcher.ranges),
                    (None, Setting::DomainIl) => Active::All,
                    (None, Setting::ClassIl) => Active::Classes(scenario.train_active(t)),
                };
                let loss = match &mut *learner {
                    Model::Dense(l) if replayed > 0 => l.replaying().map_or(
                        Err(learner::Error::Internal("replayed rows without a generator")),
                        |mut r| r.train_step(&batcher.xb, &batcher.yb, active, replayed),
                    ),
                    learner => learner.head().train_step(&batcher.xb, &batcher.yb, active),
                }
                .with_context(|| format!("training task {}", t + 1))?;
                if let (true, Model::Dense(l)) = (vae, &mut *learner) {
                    l.replaying()
                        .map_or(
                            Err(learner::Error::Internal("replayed rows without a generator")),
                            |mut r| r.train_generator(&batcher.xb, &batcher.yb),
                        )
                        .with_context(|| format!("training the generator on task {}", t + 1))?;
                }
                if recent.len() == 50 {
                    recent.remove(0);
                }
                recent.push(loss as f64);
                bar.inc(1);
            }
            Ok(())
        };
        train(&mut model, &mut batcher, updates[t], &mut rng)?;
        if let Model::Dense(_) = &model {
            // The defences' end of the task (the core's protocol), fed from the task's
            // training samples: PackNet's retraining, the generator's one pass over them
            // (unless it observed them online), the importance on a seeded subset of them
            // (unless estimated online; SI measured it while training).
            let mut end = TaskEnd::new(own.unwrap_or(own_outputs))
                .retrain(retrain)
                .observed(online)
                .estimated(online)
                .importance_samples(opts.penalty.samples);
            while let Model::Dense(learner) = &mut model {
                let need = end
                    .next(learner)
                    .with_context(|| format!("task {}: {}", t + 1, end.stage().doing()))?;
                let Some(need) = need else { break };
                let doing = || format!("task {}: {}", t + 1, end.stage().doing());
                match need {
                    Need::Retrain { updates } => train(&mut model, &mut batcher, updates, &mut rng)?,
                    Need::Observe => {
                        let mut r = learner.replaying().context("a replay step without a generator")?;
                        let xb = &mut batcher.xb[..width];
                        for &i in &scenario.tasks[t].train {
                            scenario.fill(Part::Train, t, i, xb, &mut batcher.scratch);
                            let y = scenario.target(t, scenario.train.y[i as usize]);
                            r.observe(xb, y).with_context(doing)?;
                        }
                    }
                    Need::Importance { samples } => {
                        let mut p = learner.penalised().context("an importance step without a penalty")?;
                        let mut rows = scenario.tasks[t].train.clone();
                        rng.shuffle(&mut rows);
                        let active = match scenario.spec.setting {
                            Setting::DomainIl => Active::All,
                            Setting::TaskIl | Setting::ClassIl => Active::Classes(scenario.train_active(t)),
                        };
                        let xb = &mut batcher.xb[..width];
                        for &i in rows.iter().take(samples) {
                            scenario.fill(Part::Train, t, i, xb, &mut batcher.scratch);
                            let y = scenario.target(t, scenario.train.y[i as usize]);
                            p.accumulate_importance(xb, y, active).with_context(doing)?;
                        }
                    }
                }
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        let (row, inferred) = evaluate(&mut model, scenario, &tests, t + 1, !own_only)?;
        matrix.push(row);
        if let Some(inferred) = inferred {
            task_inference.push(inferred);
        }
        stats.push(TaskStats {
            seconds,
            updates: updates[t] + retrain,
            updates_per_second: (updates[t] + retrain) as f64 / seconds.max(1e-9),
            final_loss: recent.iter().sum::<f64>() / recent.len().max(1) as f64,
            arena_bytes: model.head_ref().arena_used(),
        });
    }
    bar.finish_and_clear();

    let components = ComponentBytes::of_plan(&plan);
    let first = stats.first().map_or(0, |s| s.arena_bytes);
    let last = stats.last().map_or(0, |s| s.arena_bytes);
    let (opt, batch_size, kernels) = planned.training();
    let optimizer = match opt {
        Optimizer::Sgd { momentum, .. } => format!("sgd(momentum {momentum})"),
        Optimizer::Adam { beta1, beta2, eps, .. } => format!("adam(betas {beta1}, {beta2}; eps {eps:e})"),
    };
    let parameters = model.head_ref().parameters();
    let packnet = match (&planned, &model) {
        (Planned::Dense(config), Model::Dense(learner)) => config.packnet.map(|p| PackNetSummary {
            prune_ratio: p.prune_ratio,
            retrain_iters: opts.packnet.retrain_iters,
            mask_bits: learner::packnet::owner_bits(config.max_tasks).unwrap_or(0),
            mask_bytes: plan.bytes_of(learner::plan::names::OWNERS),
            tasks_that_fit: p.tasks_that_fit(&config.dims, config.max_tasks),
            weights_per_task: (1..=tasks)
                .map(|t| {
                    (0..config.dims.weight_count())
                        .filter(|&i| learner.packnet_owner(i) == Some(t as u8))
                        .count()
                })
                .collect(),
        }),
        _ => None,
    };
    let columns = match planned {
        Planned::Columns(c) => Some(c),
        Planned::Dense(_) => None,
    };
    let progressive = columns.map(|c| ProgressiveSummary {
        column_width: c.width,
        hidden_layers: c.hidden,
        max_columns: c.max_columns,
        columns_used: tasks,
        column_parameters: (0..tasks).map(|k| c.column_params(k)).collect(),
    });
    Ok(Report {
        scenario: scenario.spec.kind.to_string(),
        setting: scenario.spec.setting.to_string(),
        strategy: opts.strategy.name().to_string(),
        board: opts.board.name.clone(),
        seed: opts.seed,
        protocol: opts.protocol.name().to_string(),
        data: opts.data.clone(),
        side_files: scenario.train.side.iter().map(|f| f.name.clone()).collect(),
        channel_norm: scenario.channel_norm(),
        backbone: opts.backbone.clone(),
        avg_accuracy: report::average_accuracy(&matrix),
        bwt: report::bwt(&matrix),
        fwt: report::fwt(&matrix, &random_accuracy),
        forgetting: report::forgetting(&matrix),
        task_classes: scenario.tasks.iter().map(|t| t.classes.clone()).collect(),
        left_out_classes: scenario.left_out.clone(),
        tasks_by: scenario.tasks_by.clone(),
        accuracy_matrix: matrix,
        task_inference_accuracy: task_inference,
        evaluation: "test".to_string(),
        lambda_sweep: Vec::new(),
        random_accuracy,
        arena_bytes: plan.total(),
        budget_bytes: opts.budget,
        components,
        peak_bytes: stats.iter().map(|s| s.arena_bytes).max().unwrap_or(0),
        growth_bytes: last as i64 - first as i64,
        tasks: stats,
        learner: LearnerSummary {
            dims: planned.shape(),
            optimizer,
            lr: opt.lr(),
            batch_size,
            iters_per_task: updates.first().copied().unwrap_or(0),
            kernels: format!("{kernels:?}").to_lowercase(),
            parameters,
            packnet,
            progressive,
            replay: match planned {
                Planned::Dense(LearnerConfig { generator: Some(g), .. }) => Some(replay_summary(opts, &g, &plan)),
                _ => None,
            },
            penalty: match planned {
                Planned::Dense(c) => c.penalty,
                Planned::Columns(_) => None,
            }
            .map(|p| {
                let o = &opts.penalty;
                let (gamma, xi, fisher) = match p.method {
                    Method::OnlineEwc { gamma, fisher } => (Some(gamma), None, Some(fisher)),
                    Method::Ewc { fisher } => (None, None, Some(fisher)),
                    Method::Si { xi } => (None, Some(xi), None),
                    Method::Mas => (None, None, None),
                };
                PenaltySummary {
                    method: opts.strategy.penalty().map_or("", PenaltyKind::name).to_string(),
                    lambda: p.lambda,
                    gamma,
                    xi,
                    storage: storage_name(p.storage).to_string(),
                    fisher: fisher.map(|f| if f == FisherLabels::True { "true" } else { "sampled" }.to_string()),
                    samples: (xi.is_none()).then_some(o.samples),
                }
            }),
        },
        seconds: started.elapsed().as_secs_f64(),
    })
}

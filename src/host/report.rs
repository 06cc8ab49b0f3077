//! What a simulation measured: the accuracy matrix and the forgetting metrics derived
//! from it, timings, and the arena's bytes per component. Printed as tables and written
//! as JSON (`--json FILE`).
//!
//! Metrics, for `T` tasks and `R[i][j]` the accuracy (percent) on task `j` after training
//! task `i`, and `b[j]` the accuracy of the untrained (randomly initialised) network:
//! - average accuracy: `mean_j R[T-1][j]`;
//! - BWT (backward transfer): `mean_{j<T-1} (R[T-1][j] - R[j][j])`;
//! - FWT (forward transfer): `mean_{j>0} (R[j-1][j] - b[j])`;
//! - forgetting: `mean_{j<T-1} (max_{l<T-1} R[l][j] - R[T-1][j])`.
//!
//! With one task BWT, FWT and forgetting are 0.

use serde::Serialize;
use std::fmt::Write as _;

/// One line of the memory table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentBytes {
    /// Component name, as in the plan.
    pub name: String,
    /// Bytes.
    pub bytes: usize,
}

impl ComponentBytes {
    /// The lines of a plan, in carving order.
    pub fn of_plan(plan: &crate::learner::Plan) -> Vec<ComponentBytes> {
        plan.components()
            .iter()
            .map(|c| ComponentBytes {
                name: c.name.to_string(),
                bytes: c.bytes,
            })
            .collect()
    }
}

/// Per-task training figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskStats {
    /// Wall-clock seconds spent training the task (evaluation excluded).
    pub seconds: f64,
    /// Optimizer updates.
    pub updates: usize,
    /// Updates per second.
    pub updates_per_second: f64,
    /// Mean loss over the task's last 50 updates.
    pub final_loss: f64,
    /// Arena bytes in use after the task.
    pub arena_bytes: usize,
}

/// The learner that ran.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LearnerSummary {
    /// Layer widths, input first.
    pub dims: Vec<usize>,
    /// Optimizer name.
    pub optimizer: String,
    /// Learning rate.
    pub lr: f32,
    /// Batch size.
    pub batch_size: usize,
    /// Updates of the first task (every task's are in `tasks[].updates`).
    pub iters_per_task: usize,
    /// `reference` or `fast`.
    pub kernels: String,
    /// Trainable parameters.
    pub parameters: usize,
    /// The importance penalty, when the strategy has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub penalty: Option<PenaltySummary>,
    /// PackNet's masks, when the strategy uses them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packnet: Option<PackNetSummary>,
    /// Progressive columns, when the strategy uses them (`dims` is then one column's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progressive: Option<ProgressiveSummary>,
    /// The replay generator, when the strategy replays.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplaySummary>,
}

/// The replay generator of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplaySummary {
    /// `gaussian`, `vae` or `buffer`.
    pub generator: String,
    /// Bytes of the generator in the arena (every `generator`, `buffer` or `vae`
    /// component of the plan).
    pub bytes: usize,
    /// Replayed samples per real one: a number, or `balanced`.
    pub ratio: String,
    /// Gaussian: principal directions per class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rank: Option<usize>,
    /// Gaussian: working slots (classes observed at once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slots: Option<usize>,
    /// Buffer: rows kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<usize>,
    /// VAE: hidden units, code width, likelihood (`bernoulli`, `gaussian`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vae_hidden: Option<usize>,
    /// VAE: code width.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vae_latent: Option<usize>,
    /// VAE: the decoder's output distribution.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub likelihood: Option<String>,
    /// Distillation's temperature, when replayed samples learn the committed head's
    /// outputs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distill: Option<f32>,
}

/// Progressive columns in a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProgressiveSummary {
    /// Units of each hidden layer of a column.
    pub column_width: usize,
    /// Hidden layers per column.
    pub hidden_layers: usize,
    /// Columns the plan reserved: the most that fit the budget.
    pub max_columns: usize,
    /// Columns the run used (one per task).
    pub columns_used: usize,
    /// Parameters of each column used (lateral weights included).
    pub column_parameters: Vec<usize>,
}

/// PackNet's settings and masks in a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PackNetSummary {
    /// Fraction of each layer's free weights freed again after each task.
    pub prune_ratio: f32,
    /// Updates retraining each task's kept weights after pruning.
    pub retrain_iters: usize,
    /// Bits of each weight's owner field: `ceil(log2(max_tasks + 1))`.
    pub mask_bits: u32,
    /// Bytes of the owner masks in the arena (the plan's `packnet owners`).
    pub mask_bytes: usize,
    /// Tasks that get at least one weight of their own in every layer at this prune ratio
    /// (at most the tasks planned for).
    pub tasks_that_fit: usize,
    /// Weights each task owns at the end of the run.
    pub weights_per_task: Vec<usize>,
}

/// One strength tried by a `--lambda` list, on the validation split.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LambdaTrial {
    /// The strength.
    pub lambda: f32,
    /// Average accuracy on the validation split carved from the training data.
    pub validation_avg_accuracy: f64,
}

/// The penalty a run trained under.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PenaltySummary {
    /// `ewc`, `online-ewc`, `si` or `mas`.
    pub method: String,
    /// Strength.
    pub lambda: f32,
    /// Online EWC's decay (others: absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gamma: Option<f32>,
    /// SI's damping (others: absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xi: Option<f32>,
    /// `compact-log`, `compact-linear` or `f32`.
    pub storage: String,
    /// Fisher labels, `true` or `sampled` (EWC, online EWC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fisher: Option<String>,
    /// Samples per task the importance was estimated on (EWC, online EWC, MAS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samples: Option<usize>,
}

impl PenaltySummary {
    /// One line for the table.
    pub fn line(&self) -> String {
        let mut s = format!("penalty {} lambda {}", self.method, self.lambda);
        if let Some(g) = self.gamma {
            s += &format!(" gamma {g}");
        }
        if let Some(x) = self.xi {
            s += &format!(" xi {x}");
        }
        s += &format!(", storage {}", self.storage);
        if let Some(f) = &self.fisher {
            s += &format!(", fisher {f}");
        }
        if let Some(n) = self.samples {
            s += &format!(", importance from {n} samples per task");
        }
        s
    }
}

/// Everything one simulation measured (the `--json` contract; fields are only added).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// `split`, `permuted` or `rotated`.
    pub scenario: String,
    /// `task-il`, `domain-il` or `class-il`.
    pub setting: String,
    /// Strategy, e.g. `naive`, `joint`.
    pub strategy: String,
    /// Board whose budget was used.
    pub board: String,
    /// Seed of the run.
    pub seed: u64,
    /// `literature` or `edge`.
    pub protocol: String,
    /// Where the data came from.
    pub data: String,
    /// The folder's side files (per-sample metadata such as `subjects`, never features).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub side_files: Vec<String>,
    /// Sensor windows without a backbone: each channel's `[mean, standard deviation]`,
    /// fitted on the first task's training samples, that normalise it before it is pooled
    /// over time.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub channel_norm: Vec<(f32, f32)>,
    /// The ONNX backbone whose features the head saw, if any.
    pub backbone: Option<String>,
    /// The dataset classes of each task, in presentation order.
    pub task_classes: Vec<Vec<u16>>,
    /// Classes of the data that no task holds (a `--tasks` or `--class-order` that leaves
    /// them out): never trained on, never tested.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub left_out_classes: Vec<u16>,
    /// The side file each task is a value of (`--tasks-by`), its values in task order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks_by: Option<crate::host::scenario::TasksBy>,
    /// `R[i][j]`: accuracy (percent) on task `j` after training task `i`.
    pub accuracy_matrix: Vec<Vec<f64>>,
    /// Accuracy (percent) of the untrained network on each task (FWT's baseline).
    pub random_accuracy: Vec<f64>,
    /// Mean of the last row of the matrix.
    pub avg_accuracy: f64,
    /// Backward transfer (negative: forgetting).
    pub bwt: f64,
    /// Forward transfer.
    pub fwt: f64,
    /// Average forgetting.
    pub forgetting: f64,
    /// Arena bytes the learner carved (its plan's total).
    pub arena_bytes: usize,
    /// The budget the arena was given.
    pub budget_bytes: usize,
    /// Bytes per component of the plan.
    pub components: Vec<ComponentBytes>,
    /// Most arena bytes in use at any point.
    pub peak_bytes: usize,
    /// Arena bytes after the last task minus after the first.
    pub growth_bytes: i64,
    /// Per-task training figures.
    pub tasks: Vec<TaskStats>,
    /// PackNet in class- or domain-IL: after each task, per task, the % of its test samples
    /// whose task the most confident mask inferred right (empty otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub task_inference_accuracy: Vec<Vec<f64>>,
    /// What the accuracies were measured on: `test` (the test set) or `validation` (a split
    /// carved from the training data, `--validation`).
    pub evaluation: String,
    /// The strengths a `--lambda` list tried on the validation split (empty otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lambda_sweep: Vec<LambdaTrial>,
    /// The learner.
    pub learner: LearnerSummary,
    /// Wall-clock seconds of the whole run.
    pub seconds: f64,
}

/// Mean of the last row.
pub fn average_accuracy(r: &[Vec<f64>]) -> f64 {
    r.last().map_or(0.0, |row| mean(row.iter().copied()))
}

/// Backward transfer.
pub fn bwt(r: &[Vec<f64>]) -> f64 {
    let t = r.len();
    if t < 2 {
        return 0.0;
    }
    mean((0..t - 1).map(|j| r[t - 1][j] - r[j][j]))
}

/// Forward transfer against the untrained network's accuracies `b`.
pub fn fwt(r: &[Vec<f64>], b: &[f64]) -> f64 {
    let t = r.len();
    if t < 2 {
        return 0.0;
    }
    mean((1..t).map(|j| r[j - 1][j] - b[j]))
}

/// Average forgetting.
pub fn forgetting(r: &[Vec<f64>]) -> f64 {
    let t = r.len();
    if t < 2 {
        return 0.0;
    }
    mean((0..t - 1).map(|j| {
        let best = (0..t - 1).map(|l| r[l][j]).fold(f64::NEG_INFINITY, f64::max);
        best - r[t - 1][j]
    }))
}

fn mean(it: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = it.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        0.0
    } else {
        s / n as f64
    }
}

impl Report {
    /// The accuracy matrix, metrics, per-task figures and memory table, for a terminal.
    pub fn to_table(&self) -> String {
        let mut s = String::new();
        let t = self.accuracy_matrix.len();
        let _ = writeln!(
            s,
            "edgecl simulate: {} {} {}, strategy {}, protocol {}, board {}, seed {}{}",
            self.scenario,
            self.setting,
            self.data,
            self.strategy,
            self.protocol,
            self.board,
            self.seed,
            if self.evaluation == "test" {
                ""
            } else {
                ", accuracies on the validation split"
            }
        );
        let _ = writeln!(
            s,
            "learner {:?}, {} parameters, {} lr {}, batch {}, {} updates per task, {} kernels\n",
            self.learner.dims,
            self.learner.parameters,
            self.learner.optimizer,
            self.learner.lr,
            self.learner.batch_size,
            self.learner.iters_per_task,
            self.learner.kernels
        );
        if let Some(p) = &self.learner.penalty {
            let _ = writeln!(s, "{}\n", p.line());
        }
        let classes: Vec<String> = self
            .task_classes
            .iter()
            .map(|c| c.iter().map(u16::to_string).collect::<Vec<_>>().join(","))
            .collect();
        match &self.tasks_by {
            Some(by) => {
                let values: Vec<String> = by.values.iter().map(u32::to_string).collect();
                let _ = writeln!(s, "tasks ({} values): {}", by.side, values.join(" | "));
                if !by.cut.is_empty() {
                    let cut: Vec<String> = by.cut.iter().map(u32::to_string).collect();
                    let _ = writeln!(
                        s,
                        "  {} {} in one split only: the last quarter of each class's samples tested",
                        by.side,
                        cut.join(",")
                    );
                }
                let _ = writeln!(s);
            }
            None if self.scenario == "split" => {
                let _ = writeln!(s, "tasks (classes): {}\n", classes.join(" | "));
            }
            None => {}
        }
        if !self.left_out_classes.is_empty() {
            let out: Vec<String> = self.left_out_classes.iter().map(u16::to_string).collect();
            let _ = writeln!(
                s,
                "classes left out (no task holds them, never trained or tested): {}\n",
                out.join(",")
            );
        }
        let _ = write!(s, "accuracy (%)   ");
        for j in 0..t {
            let _ = write!(s, "{:>7}", format!("T{}", j + 1));
        }
        let _ = writeln!(s);
        let _ = write!(s, "untrained      ");
        for v in &self.random_accuracy {
            let _ = write!(s, "{v:>7.2}");
        }
        let _ = writeln!(s);
        for (i, row) in self.accuracy_matrix.iter().enumerate() {
            let _ = write!(s, "after T{:<7} ", i + 1);
            for v in row {
                let _ = write!(s, "{v:>7.2}");
            }
            let st = &self.tasks[i];
            let _ = writeln!(s, "   {:>6.2} s {:>9.0} upd/s", st.seconds, st.updates_per_second);
        }
        if let Some(last) = self.task_inference_accuracy.last() {
            let _ = write!(s, "task inferred  ");
            for v in last {
                let _ = write!(s, "{v:>7.2}");
            }
            let _ = writeln!(s, "   (% of test samples whose task the most confident mask picked)");
        }
        let _ = writeln!(
            s,
            "\naverage accuracy {:.2}   BWT {:+.2}   FWT {:+.2}   forgetting {:.2}\n",
            self.avg_accuracy, self.bwt, self.fwt, self.forgetting
        );
        if let Some(p) = &self.learner.progressive {
            let _ = writeln!(
                s,
                "progressive: {} of at most {} columns, width {}, {} hidden layer(s), parameters per column {:?}\n",
                p.columns_used, p.max_columns, p.column_width, p.hidden_layers, p.column_parameters
            );
        }
        if let Some(p) = &self.learner.packnet {
            let _ = writeln!(
                s,
                "PackNet: prune ratio {}, {} retraining updates per task, {}-bit owners ({} bytes); weights per task {:?}\n",
                p.prune_ratio, p.retrain_iters, p.mask_bits, p.mask_bytes, p.weights_per_task
            );
        }
        let _ = writeln!(s, "{}", memory_table(&self.components, self.budget_bytes));
        let _ = writeln!(
            s,
            "peak {} bytes, growth from task 1 to task {} {} bytes, {:.1} s in all",
            self.peak_bytes, t, self.growth_bytes, self.seconds
        );
        s
    }
}

/// The per-component table of a plan against a budget.
pub fn memory_table(components: &[ComponentBytes], budget: usize) -> String {
    let mut s = String::new();
    let total: usize = components.iter().map(|c| c.bytes).sum();
    // Names pad to 18 columns, or one past the longest.
    let w = components.iter().map(|c| c.name.len() + 1).max().unwrap_or(0).max(18);
    let _ = writeln!(s, "{:<w$}{:>12}{:>9}", "component", "bytes", "share");
    for c in components {
        let share = 100.0 * c.bytes as f64 / budget.max(1) as f64;
        let _ = writeln!(s, "{:<w$}{:>12}{:>8.1}%", c.name, c.bytes, share);
    }
    let _ = writeln!(
        s,
        "{:<w$}{:>12}{:>8.1}%",
        "total",
        total,
        100.0 * total as f64 / budget.max(1) as f64
    );
    let _ = write!(s, "{:<w$}{:>12}", "budget", budget);
    if total > budget {
        let _ = write!(s, "   (over by {} bytes)", total - budget);
    } else {
        let _ = write!(s, "   ({} bytes free)", budget - total);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_of_a_hand_computed_matrix() {
        let r = vec![vec![90.0, 10.0, 20.0], vec![60.0, 80.0, 30.0], vec![50.0, 70.0, 85.0]];
        let b = [10.0, 12.0, 25.0];
        assert!((average_accuracy(&r) - 205.0 / 3.0).abs() < 1e-12);
        // (50-90 + 70-80) / 2
        assert!((bwt(&r) - (-25.0)).abs() < 1e-12);
        // (10-12 + 30-25) / 2
        assert!((fwt(&r, &b) - 1.5).abs() < 1e-12);
        // (max(90,60)-50 + max(10,80)-70) / 2
        assert!((forgetting(&r) - 25.0).abs() < 1e-12);
        assert_eq!(bwt(&r[..1]), 0.0);
    }

    #[test]
    fn memory_table_flags_an_overrun() {
        let c = vec![ComponentBytes {
            name: "weights".into(),
            bytes: 120,
        }];
        assert!(memory_table(&c, 100).contains("over by 20 bytes"));
        assert!(memory_table(&c, 200).contains("80 bytes free"));
        assert!(memory_table(&c, usize::MAX).contains(" bytes free"));
    }
}

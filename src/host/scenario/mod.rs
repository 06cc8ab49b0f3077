//! Continual-learning scenarios: a dataset cut into a sequence of tasks.
//!
//! - **Split**: the classes are grouped into tasks of `k` (default 2; `ceil(C/k)` tasks,
//!   the last one smaller when `k` does not divide the `C` classes), in sorted order, a
//!   seeded random order, or an order given; or the tasks are listed (`0,1,2,3/4,5/6`).
//!   A class no task holds is named in [`Scenario::left_out`], never dropped silently.
//!   With `tasks_by`, each value of a side file (a wearer) is a task holding every class.
//! - **Permuted**: every task is the whole dataset under its own seeded pixel
//!   permutation; the first task is unpermuted.
//! - **Rotated**: every task is the whole dataset rotated by `t * 180 / T` degrees.
//!
//! Each runs in one of three settings, which decide the output layer and which outputs
//! a sample may choose from (van de Ven & Tolias 2019):
//!
//! | setting   | outputs | active while training task `t` | active when testing task `j` |
//! |-----------|---------|--------------------------------|------------------------------|
//! | task-IL   | `T * k` | task `t`'s `k` outputs         | task `j`'s `k` outputs       |
//! | domain-IL | `k`     | all                            | all                          |
//! | class-IL  | `T * k` | outputs of tasks `0..=t`       | all                          |
//!
//! where `k` is the classes per task (tasks of different sizes: task `t`'s outputs follow
//! the outputs of the tasks before it, [`Scenario::task_outputs`]). Samples are transformed (permuted, rotated) and
//! turned into features (raw pixels, or 2x2-average-pooled pixels for the edge
//! protocol) when a training batch is filled, so no per-task copy of the training data is
//! kept; [`Scenario::test_set`] materialises one task's test features at a time.

mod tasks;

use crate::host::idx::Dataset;
use crate::learner::learner::ClassRange;
use crate::learner::rng::Rng;
use anyhow::{bail, ensure, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Time steps [`Features::PoolTime`] averages.
pub const TIME_POOL: usize = 4;

/// Most tasks a scenario may have.
pub const MAX_TASKS: usize = 32;

/// How tasks are cut from the dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Classes grouped into tasks.
    #[value(alias = "split-mnist")]
    Split,
    /// Seeded pixel permutations (first task unpermuted).
    #[value(alias = "permuted-mnist")]
    Permuted,
    /// Rotations by t*180/T degrees.
    #[value(alias = "rotated-mnist")]
    Rotated,
}

/// Which outputs exist and which a sample may choose from.
// The variant names are the CLI values (task-il, domain-il, class-il).
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Setting {
    /// Task identity given: a head per task.
    TaskIl,
    /// Same outputs for every task; task identity not given.
    DomainIl,
    /// Every class its own output; task identity not given.
    ClassIl,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Split => "split",
            Kind::Permuted => "permuted",
            Kind::Rotated => "rotated",
        })
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Setting::TaskIl => "task-il",
            Setting::DomainIl => "domain-il",
            Setting::ClassIl => "class-il",
        })
    }
}

/// What the learner sees of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Features {
    /// The (transformed) sample itself, flattened.
    Pixels,
    /// 2x2 average pooling of a 2-D sample (28x28 becomes 14x14).
    Pool2x2,
    /// A sensor window `[T, C]`, each channel normalised (the mean and spread of the first
    /// task's training samples: what a device has when it is flashed), then averaged over
    /// [`TIME_POOL`] steps, never across channels (`[100, 6]` becomes `[25, 6]`, time-major).
    /// What [`Features::Pool2x2`] becomes on windows.
    PoolTime,
    /// The features of a frozen ONNX backbone, computed once per task transform
    /// (`Scenario::with_backbone`, feature `onnx`).
    Backbone,
}

/// The order of the classes that split cuts into consecutive groups of `k`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassOrder {
    /// `0, 1, 2, ...`: tasks are {0,1}, {2,3}, ...
    Sorted,
    /// A permutation drawn from the seed, so each seed pairs the digits differently (as
    /// the published Split-MNIST protocol does, averaging over seeds).
    Random,
    /// Exactly these classes in this order (a permutation of some of the classes).
    Given(Vec<u16>),
    /// The tasks themselves, each its classes in output order (`0,1,2,3/4,5/6`).
    Tasks(Vec<Vec<u16>>),
}

impl ClassOrder {
    /// `sorted`, `random`, a list of classes (`1,0,3,2`) or a list of tasks separated by
    /// `/` (`0,1,2,3/4,5/6`).
    pub fn parse(s: &str) -> std::result::Result<ClassOrder, String> {
        let list = |l: &str| {
            l.split(',')
                .map(|c| c.trim().parse::<u16>())
                .collect::<std::result::Result<Vec<_>, _>>()
        };
        let bad = || {
            format!("`{s}` is not `sorted`, `random`, a list of classes like 1,0,3,2 or of tasks like 0,1,2,3/4,5/6")
        };
        match s.trim() {
            "sorted" => Ok(ClassOrder::Sorted),
            "random" => Ok(ClassOrder::Random),
            l if l.contains('/') => l
                .split('/')
                .map(list)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map(ClassOrder::Tasks)
                .map_err(|_| bad()),
            l => list(l).map(ClassOrder::Given).map_err(|_| bad()),
        }
    }
}

/// What `--tasks-by` made of a side file: a task per value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TasksBy {
    /// The side file (`subjects`).
    pub side: String,
    /// Its values, one task each, in task order before any `--task-order`.
    pub values: Vec<u32>,
    /// The values found in one split only, whose test samples are the last quarter of
    /// each class's samples of that value (in file order), held out of training.
    pub cut: Vec<u32>,
}

/// A sample transform of one task.
#[derive(Debug, Clone, PartialEq)]
pub enum Transform {
    /// The sample as it is.
    Identity,
    /// `out[i] = in[perm[i]]`.
    Permute(Vec<u32>),
    /// Rotation about the image centre, bilinear, zero outside.
    Rotate {
        /// Angle, counter-clockwise.
        degrees: f32,
    },
}

/// What to build.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// Split, permuted or rotated.
    pub kind: Kind,
    /// Task-, domain- or class-incremental.
    pub setting: Setting,
    /// Number of tasks (default: all classes for split, 10 permuted, 5 rotated).
    pub tasks: Option<usize>,
    /// Classes per task for split.
    pub classes_per_task: usize,
    /// Order in which the tasks are presented (a permutation of `0..tasks`).
    pub task_order: Option<Vec<usize>>,
    /// How split groups the classes into tasks.
    pub class_order: ClassOrder,
    /// Seed of the permutations.
    pub seed: u64,
    /// Features the learner sees.
    pub features: Features,
    /// One task per value of this side file, each holding every class (split only).
    pub tasks_by: Option<String>,
}

/// One task: its classes, transform and sample indices.
#[derive(Debug, Clone)]
pub struct Task {
    /// Dataset labels this task holds, in output order.
    pub classes: Vec<u16>,
    /// Applied to each sample before features are taken.
    pub transform: Transform,
    /// Rows of the training set.
    pub train: Vec<u32>,
    /// Rows of the test set.
    pub test: Vec<u32>,
}

/// A built scenario over a train and a test set.
#[derive(Debug)]
pub struct Scenario {
    /// What it was built from.
    pub spec: Spec,
    /// The tasks, in presentation order.
    pub tasks: Vec<Task>,
    /// Classes of the largest task (`k`).
    pub per_task: usize,
    /// The first output of each task (task- and class-IL), and the outputs in all last.
    offsets: Vec<u16>,
    /// Classes of the data no task holds (named in the report).
    pub left_out: Vec<u16>,
    /// The side file the tasks were made from (`--tasks-by`).
    pub tasks_by: Option<TasksBy>,
    /// Training samples.
    pub train: Dataset,
    /// Test samples.
    pub test: Dataset,
    image: (usize, usize),
    /// Per channel of a window, `(mean, 1 / spread)` ([`Features::PoolTime`]).
    norm: Vec<(f32, f32)>,
    /// Backbone features per task (tasks with the same transform share one entry).
    cached: Vec<std::sync::Arc<Cached>>,
}

/// A backbone's features of every train and test sample, as one task sees them.
#[derive(Debug)]
struct Cached {
    train: ndarray::Array2<f32>,
    test: ndarray::Array2<f32>,
}

/// Which set a sample comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The training set.
    Train,
    /// The test set.
    Test,
}

impl Scenario {
    /// Cuts `train` and `test` into tasks as `spec` says.
    pub fn build(spec: Spec, train: Dataset, test: Dataset) -> Result<Scenario> {
        ensure!(
            train.x.ncols() == test.x.ncols(),
            "train and test samples differ in size"
        );
        let classes = train.classes.max(test.classes);
        let width = train.x.ncols();
        let image = match train.sample_shape.as_slice() {
            [h, w] => (*h, *w),
            _ => (0, 0),
        };
        ensure!(width >= 1, "the samples are empty (shape {:?})", train.sample_shape);
        ensure!(
            train.sample_shape == test.sample_shape,
            "train samples have shape {:?} but test samples {:?}",
            train.sample_shape,
            test.sample_shape
        );
        if let Some(n) = spec.tasks {
            ensure!(
                (1..=MAX_TASKS).contains(&n),
                "--tasks {n}: a scenario has 1 to {MAX_TASKS} tasks"
            );
        }
        let mut spec = spec;
        let window = train.window();
        if spec.features == Features::Pool2x2 && window.is_some() {
            spec.features = Features::PoolTime;
        }
        let needs_image = spec.features == Features::Pool2x2 || spec.kind == Kind::Rotated;
        if needs_image && (image.0 < 2 || image.1 < 2) {
            bail!(
                "this needs 2-D image samples of at least 2x2 but the samples have shape {:?}; use --protocol literature with a split or permuted scenario",
                train.sample_shape
            );
        }
        let mut rng = Rng::new(spec.seed ^ 0x5eed_7a5c);
        let mut left_out = Vec::new();
        let (train, test, by) = match (&spec.tasks_by, spec.kind) {
            (None, _) => (train, test, None),
            (Some(name), Kind::Split) => {
                ensure!(
                    matches!(spec.class_order, ClassOrder::Sorted | ClassOrder::Random),
                    "--class-order groups the classes into tasks; --tasks-by {name} makes a task of each of its values"
                );
                ensure!(
                    spec.setting != Setting::ClassIl,
                    "--tasks-by {name} gives every task every class, so there is no new class to learn: use --setting domain-il (one head for every task) or task-il"
                );
                let (train, test, by) = tasks::regroup(&train, &test, name)?;
                (train, test, Some(by))
            }
            (Some(name), kind) => bail!("--tasks-by {name} cuts a split scenario into tasks, not a {kind} one"),
        };
        let all = |d: &Dataset| (0..d.len() as u32).collect::<Vec<_>>();
        let all_classes: Vec<u16> = (0..classes as u16).collect();
        let (mut tasks, per_task) = match spec.kind {
            Kind::Split => {
                let groups = match &by {
                    Some(b) => vec![all_classes.clone(); b.values.len().min(spec.tasks.unwrap_or(usize::MAX))],
                    None => {
                        let (groups, out) = tasks::split_groups(&spec, classes, &mut rng)?;
                        left_out = out;
                        groups
                    }
                };
                // With --tasks-by, task t is the rows of the side file's t-th value;
                // otherwise the rows of its classes.
                fn value<'d>(by: Option<&TasksBy>, d: &'d Dataset, t: usize) -> Option<(&'d [u32], u32)> {
                    let b = by?;
                    Some((&d.side.iter().find(|f| f.name == b.side)?.values, b.values[t]))
                }
                let k = groups.iter().map(Vec::len).max().unwrap_or(1);
                let tasks = groups
                    .into_iter()
                    .enumerate()
                    .map(|(t, cls)| {
                        let pick = |d: &Dataset| -> Vec<u32> {
                            let of = value(by.as_ref(), d, t);
                            (0..d.len() as u32)
                                .filter(|&i| match of {
                                    Some((values, v)) => values[i as usize] == v,
                                    None => cls.contains(&d.y[i as usize]),
                                })
                                .collect()
                        };
                        Task {
                            train: pick(&train),
                            test: pick(&test),
                            classes: cls,
                            transform: Transform::Identity,
                        }
                    })
                    .collect::<Vec<_>>();
                (tasks, k)
            }
            Kind::Permuted | Kind::Rotated => {
                let n = spec.tasks.unwrap_or(if spec.kind == Kind::Permuted { 10 } else { 5 });
                ensure!(n >= 1, "at least one task");
                let tasks = (0..n)
                    .map(|t| {
                        let transform = match spec.kind {
                            Kind::Permuted if t == 0 => Transform::Identity,
                            Kind::Permuted => {
                                let mut p: Vec<u32> = (0..width as u32).collect();
                                rng.shuffle(&mut p);
                                Transform::Permute(p)
                            }
                            _ => Transform::Rotate {
                                degrees: t as f32 * 180.0 / n as f32,
                            },
                        };
                        Task {
                            classes: all_classes.clone(),
                            transform,
                            train: all(&train),
                            test: all(&test),
                        }
                    })
                    .collect::<Vec<_>>();
                (tasks, classes)
            }
        };
        for (t, task) in tasks.iter().enumerate() {
            if task.train.is_empty() || task.test.is_empty() {
                return Err(tasks::empty_task(
                    t,
                    &task.classes,
                    &train,
                    &test,
                    task.train.is_empty(),
                ));
            }
        }
        ensure!(
            tasks.len() <= MAX_TASKS,
            "{} tasks: a scenario has at most {MAX_TASKS} (--tasks, --classes-per-task or --class-order)",
            tasks.len()
        );
        if let Some(order) = &spec.task_order {
            let mut seen = order.clone();
            seen.sort_unstable();
            ensure!(
                seen == (0..tasks.len()).collect::<Vec<_>>(),
                "task order {order:?} is not a permutation of 0..{}",
                tasks.len()
            );
            let mut old: Vec<Option<Task>> = tasks.into_iter().map(Some).collect();
            tasks = order.iter().filter_map(|&i| old[i].take()).collect();
        }
        let mut offsets = vec![0u16];
        for task in &tasks {
            let size = if spec.kind == Kind::Split {
                task.classes.len()
            } else {
                per_task
            };
            offsets.push(offsets[offsets.len() - 1] + size as u16);
        }
        let norm = match (spec.features, window) {
            (Features::PoolTime, Some((_, c))) => train.channel_stats(tasks[0].train.iter().map(|&i| i as usize), c),
            _ => Vec::new(),
        };
        Ok(Scenario {
            spec,
            tasks,
            per_task,
            norm,
            offsets,
            left_out,
            tasks_by: by,
            train,
            test,
            image,
            cached: Vec::new(),
        })
    }

    /// Width of the learner's output layer.
    pub fn outputs(&self) -> usize {
        match self.spec.setting {
            Setting::DomainIl => self.per_task,
            Setting::TaskIl | Setting::ClassIl => usize::from(self.offsets[self.tasks.len()]),
        }
    }

    /// Outputs of the tasks before task `t` (task- and class-IL: the classes seen before).
    pub fn outputs_before(&self, t: usize) -> usize {
        usize::from(self.offsets[t.min(self.tasks.len())])
    }

    /// Width of a feature vector.
    pub fn input_width(&self) -> usize {
        match self.spec.features {
            Features::Pixels => self.train.x.ncols(),
            Features::Pool2x2 => (self.image.0 / 2) * (self.image.1 / 2),
            Features::PoolTime => (self.image.0 / TIME_POOL) * self.image.1,
            Features::Backbone => self.cached.first().map_or(0, |c| c.train.ncols()),
        }
    }

    /// Runs `backbone` once over the train and test samples as each task transforms
    /// them (once in all for tasks without a transform) and makes its features what the
    /// learner sees.
    #[cfg(feature = "onnx")]
    pub fn with_backbone(mut self, backbone: &crate::host::onnx::Backbone) -> Result<Scenario> {
        use std::sync::Arc;
        ensure!(
            backbone.input_width() == self.train.x.ncols(),
            "the backbone takes samples of {} values but the data's have {}",
            backbone.input_width(),
            self.train.x.ncols()
        );
        let mut identity: Option<Arc<Cached>> = None;
        let mut cached = Vec::with_capacity(self.tasks.len());
        for t in 0..self.tasks.len() {
            let shared = self.tasks[t].transform == Transform::Identity;
            let entry = match (&identity, shared) {
                (Some(c), true) => c.clone(),
                _ => {
                    let run = |part: Part, data: &Dataset| -> Result<ndarray::Array2<f32>> {
                        let mut raw = ndarray::Array2::<f32>::zeros((data.len(), data.x.ncols()));
                        let mut scratch = Vec::new();
                        for (i, mut row) in raw.rows_mut().into_iter().enumerate() {
                            self.raw(part, t, i as u32, &mut scratch);
                            row.iter_mut().zip(&scratch).for_each(|(d, &s)| *d = s);
                        }
                        backbone.features(raw.view())
                    };
                    let c = Arc::new(Cached {
                        train: run(Part::Train, &self.train)?,
                        test: run(Part::Test, &self.test)?,
                    });
                    if shared {
                        identity = Some(c.clone());
                    }
                    c
                }
            };
            cached.push(entry);
        }
        self.cached = cached;
        self.spec.features = Features::Backbone;
        Ok(self)
    }

    /// Per channel of a window, the `(mean, standard deviation)` the features are
    /// normalised with (empty unless [`Features::PoolTime`]).
    pub fn channel_norm(&self) -> Vec<(f32, f32)> {
        self.norm.iter().map(|&(m, inv)| (m, 1.0 / inv)).collect()
    }

    /// Output unit of dataset label `y` in task `t`.
    pub fn target(&self, t: usize, y: u16) -> u16 {
        let pos = self.tasks[t].classes.iter().position(|&c| c == y).unwrap_or(0);
        match self.spec.setting {
            Setting::DomainIl => pos as u16,
            Setting::TaskIl | Setting::ClassIl => self.offsets[t] + pos as u16,
        }
    }

    /// Outputs a sample of task `t` may choose from while `t` is trained.
    pub fn train_active(&self, t: usize) -> ClassRange {
        match self.spec.setting {
            Setting::TaskIl => self.task_outputs(t),
            Setting::DomainIl => ClassRange {
                start: 0,
                end: self.per_task as u16,
            },
            Setting::ClassIl => ClassRange {
                start: 0,
                end: self.offsets[t + 1],
            },
        }
    }

    /// Task `t`'s own outputs: its classes (task- and class-IL) or the shared outputs
    /// (domain-IL).
    pub fn task_outputs(&self, t: usize) -> ClassRange {
        match self.spec.setting {
            Setting::DomainIl => ClassRange {
                start: 0,
                end: self.per_task as u16,
            },
            Setting::TaskIl | Setting::ClassIl => ClassRange {
                start: self.offsets[t],
                end: self.offsets[t + 1],
            },
        }
    }

    /// The task whose own outputs hold output `y` (domain-IL: the current one is unknown,
    /// so 0; every task shares the outputs).
    pub fn task_of_output(&self, y: u16) -> usize {
        match self.spec.setting {
            Setting::DomainIl => 0,
            Setting::TaskIl | Setting::ClassIl => self.offsets[1..].partition_point(|&end| end <= y),
        }
    }

    /// Outputs a test sample of task `t` may choose from.
    pub fn eval_active(&self, t: usize) -> ClassRange {
        match self.spec.setting {
            Setting::TaskIl => self.train_active(t),
            Setting::DomainIl | Setting::ClassIl => ClassRange {
                start: 0,
                end: self.outputs() as u16,
            },
        }
    }

    /// Writes the features of row `i` of `part`, as task `t` sees it, into `out`
    /// (`input_width()` values). `scratch` holds one raw sample.
    pub fn fill(&self, part: Part, t: usize, i: u32, out: &mut [f32], scratch: &mut Vec<f32>) {
        if self.spec.features == Features::Backbone {
            let c = &self.cached[t];
            let rows = match part {
                Part::Train => &c.train,
                Part::Test => &c.test,
            };
            out.iter_mut().zip(rows.row(i as usize)).for_each(|(d, &s)| *d = s);
            return;
        }
        self.raw(part, t, i, scratch);
        match self.spec.features {
            Features::Pixels | Features::Backbone => out.copy_from_slice(scratch),
            Features::PoolTime => {
                let c = self.image.1;
                let scale = 1.0 / TIME_POOL as f32;
                for (s, step) in out.chunks_exact_mut(c).enumerate() {
                    for (ch, v) in step.iter_mut().enumerate() {
                        let (mean, inv) = self.norm[ch];
                        *v = (0..TIME_POOL)
                            .map(|k| (scratch[(s * TIME_POOL + k) * c + ch] - mean) * inv * scale)
                            .sum();
                    }
                }
            }
            Features::Pool2x2 => {
                let (h, w) = self.image;
                let (oh, ow) = (h / 2, w / 2);
                for r in 0..oh {
                    for q in 0..ow {
                        let at = |y: usize, x: usize| scratch[y * w + x];
                        // Scaled before adding (exact: a power of two), so finite inputs
                        // give finite means.
                        out[r * ow + q] = 0.25 * at(2 * r, 2 * q)
                            + 0.25 * at(2 * r, 2 * q + 1)
                            + 0.25 * at(2 * r + 1, 2 * q)
                            + 0.25 * at(2 * r + 1, 2 * q + 1);
                    }
                }
            }
        }
    }

    /// Row `i` of `part` with task `t`'s transform applied, into `scratch`.
    fn raw(&self, part: Part, t: usize, i: u32, scratch: &mut Vec<f32>) {
        let data = match part {
            Part::Train => &self.train,
            Part::Test => &self.test,
        };
        let row = data.x.row(i as usize);
        scratch.clear();
        match &self.tasks[t].transform {
            Transform::Identity => scratch.extend(row.iter()),
            Transform::Permute(p) => scratch.extend(p.iter().map(|&j| row[j as usize])),
            Transform::Rotate { degrees } => {
                let (h, w) = self.image;
                let (s, c) = (-degrees.to_radians()).sin_cos();
                let (cy, cx) = ((h as f32 - 1.0) / 2.0, (w as f32 - 1.0) / 2.0);
                let px = |y: isize, x: isize| {
                    if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
                        0.0
                    } else {
                        row[y as usize * w + x as usize]
                    }
                };
                for r in 0..h {
                    for q in 0..w {
                        let (dy, dx) = (r as f32 - cy, q as f32 - cx);
                        let sy = c * dy - s * dx + cy;
                        let sx = s * dy + c * dx + cx;
                        let (y0, x0) = (sy.floor(), sx.floor());
                        let (fy, fx) = (sy - y0, sx - x0);
                        let (y0, x0) = (y0 as isize, x0 as isize);
                        let v = (1.0 - fy) * ((1.0 - fx) * px(y0, x0) + fx * px(y0, x0 + 1))
                            + fy * ((1.0 - fx) * px(y0 + 1, x0) + fx * px(y0 + 1, x0 + 1));
                        scratch.push(v);
                    }
                }
            }
        }
    }

    /// Features and output targets of every test sample of task `t`.
    pub fn test_set(&self, t: usize) -> (Vec<f32>, Vec<u16>) {
        let d = self.input_width();
        let idx = &self.tasks[t].test;
        let mut x = vec![0.0f32; idx.len() * d];
        let mut scratch = Vec::new();
        for (row, &i) in x.chunks_exact_mut(d).zip(idx) {
            self.fill(Part::Test, t, i, row, &mut scratch);
        }
        let y = idx.iter().map(|&i| self.target(t, self.test.y[i as usize])).collect();
        (x, y)
    }
}

#[cfg(test)]
mod tests;

//! Continual-learning scenarios: a dataset cut into a sequence of tasks.
//!
//! - **Split**: the classes are grouped into tasks (default 5 tasks of 2 classes), in
//!   sorted order, a seeded random order, or an order given.
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
//! where `k` is the classes per task. Samples are transformed (permuted, rotated) and
//! turned into features (raw pixels, or 2x2-average-pooled pixels for the edge
//! protocol) when a training batch is filled, so no per-task copy of the training data is
//! kept; [`Scenario::test_set`] materialises one task's test features at a time.

use crate::host::idx::Dataset;
use crate::learner::learner::ClassRange;
use crate::learner::rng::Rng;
use anyhow::{bail, ensure, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

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
    /// Classes per task (`k`).
    pub per_task: usize,
    /// Training samples.
    pub train: Dataset,
    /// Test samples.
    pub test: Dataset,
    image: (usize, usize),
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
        let needs_image = spec.features == Features::Pool2x2 || spec.kind == Kind::Rotated;
        if needs_image && (image.0 < 2 || image.1 < 2) {
            bail!(
                "this needs 2-D image samples of at least 2x2 but the samples have shape {:?}; use --protocol literature with a split or permuted scenario",
                train.sample_shape
            );
        }
        let mut rng = Rng::new(spec.seed ^ 0x5eed_7a5c);
        let all = |d: &Dataset| (0..d.len() as u32).collect::<Vec<_>>();
        let all_classes: Vec<u16> = (0..classes as u16).collect();
        let (mut tasks, per_task) = match spec.kind {
            Kind::Split => {
                let k = spec.classes_per_task;
                ensure!(k >= 1, "classes per task must be at least 1");
                let n = spec.tasks.unwrap_or(classes / k);
                ensure!(
                    n >= 1 && n * k <= classes,
                    "{n} tasks of {k} classes need {} classes; the data has {classes}",
                    n * k
                );
                let order: Vec<u16> = match &spec.class_order {
                    ClassOrder::Sorted => all_classes.clone(),
                    ClassOrder::Random => {
                        let mut o = all_classes.clone();
                        rng.shuffle(&mut o);
                        o
                    }
                    ClassOrder::Given(o) => {
                        let mut seen = vec![false; classes];
                        for &c in o {
                            ensure!(
                                (c as usize) < classes,
                                "class order names class {c}; the data has {classes} classes"
                            );
                            ensure!(
                                !std::mem::replace(&mut seen[c as usize], true),
                                "class order names class {c} twice"
                            );
                        }
                        o.clone()
                    }
                };
                ensure!(
                    n >= 1 && n * k <= order.len(),
                    "{n} tasks of {k} classes need {} classes; the class order has {}",
                    n * k,
                    order.len()
                );
                let tasks = (0..n)
                    .map(|t| {
                        let cls: Vec<u16> = order[t * k..(t + 1) * k].to_vec();
                        let pick = |d: &Dataset| {
                            (0..d.len() as u32)
                                .filter(|&i| cls.contains(&d.y[i as usize]))
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
            ensure!(
                !task.train.is_empty() && !task.test.is_empty(),
                "task {t} has no training or no test samples"
            );
        }
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
        Ok(Scenario {
            spec,
            tasks,
            per_task,
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
            Setting::TaskIl | Setting::ClassIl => self.tasks.len() * self.per_task,
        }
    }

    /// Width of a feature vector.
    pub fn input_width(&self) -> usize {
        match self.spec.features {
            Features::Pixels => self.train.x.ncols(),
            Features::Pool2x2 => (self.image.0 / 2) * (self.image.1 / 2),
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

    /// Output unit of dataset label `y` in task `t`.
    pub fn target(&self, t: usize, y: u16) -> u16 {
        let pos = self.tasks[t].classes.iter().position(|&c| c == y).unwrap_or(0);
        match self.spec.setting {
            Setting::DomainIl => pos as u16,
            Setting::TaskIl | Setting::ClassIl => (t * self.per_task + pos) as u16,
        }
    }

    /// Outputs a sample of task `t` may choose from while `t` is trained.
    pub fn train_active(&self, t: usize) -> ClassRange {
        let k = self.per_task as u16;
        let t = t as u16;
        match self.spec.setting {
            Setting::TaskIl => ClassRange {
                start: t * k,
                end: (t + 1) * k,
            },
            Setting::DomainIl => ClassRange { start: 0, end: k },
            Setting::ClassIl => ClassRange {
                start: 0,
                end: (t + 1) * k,
            },
        }
    }

    /// Task `t`'s own outputs: its classes (task- and class-IL) or the shared outputs
    /// (domain-IL).
    pub fn task_outputs(&self, t: usize) -> ClassRange {
        let k = self.per_task as u16;
        match self.spec.setting {
            Setting::DomainIl => ClassRange { start: 0, end: k },
            Setting::TaskIl | Setting::ClassIl => ClassRange {
                start: t as u16 * k,
                end: (t as u16 + 1) * k,
            },
        }
    }

    /// The task whose own outputs hold output `y` (domain-IL: the current one is unknown,
    /// so 0; every task shares the outputs).
    pub fn task_of_output(&self, y: u16) -> usize {
        match self.spec.setting {
            Setting::DomainIl => 0,
            Setting::TaskIl | Setting::ClassIl => y as usize / self.per_task.max(1),
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
mod tests {
    use super::*;
    use ndarray::Array2;

    fn tiny(n: usize) -> Dataset {
        let x = Array2::from_shape_fn((n, 16), |(i, j)| ((i * 16 + j) % 7) as f32 / 7.0);
        Dataset {
            x,
            y: (0..n).map(|i| (i % 4) as u16).collect(),
            sample_shape: vec![4, 4],
            classes: 4,
            side: Vec::new(),
        }
    }

    fn spec(kind: Kind, setting: Setting) -> Spec {
        Spec {
            kind,
            setting,
            tasks: None,
            classes_per_task: 2,
            task_order: None,
            class_order: ClassOrder::Sorted,
            seed: 1,
            features: Features::Pixels,
        }
    }

    #[test]
    fn split_targets_and_active_outputs_follow_the_setting() {
        for (setting, outputs, target_of_3, train1, eval0) in [
            (Setting::TaskIl, 4, 3, (2, 4), (0, 2)),
            (Setting::DomainIl, 2, 1, (0, 2), (0, 2)),
            (Setting::ClassIl, 4, 3, (0, 4), (0, 4)),
        ] {
            let s = Scenario::build(spec(Kind::Split, setting), tiny(40), tiny(8)).unwrap();
            assert_eq!(s.tasks.len(), 2);
            assert_eq!(s.outputs(), outputs);
            assert_eq!(s.target(1, 3), target_of_3);
            let a = s.train_active(1);
            assert_eq!((a.start as usize, a.end as usize), train1);
            let e = s.eval_active(0);
            assert_eq!((e.start as usize, e.end as usize), eval0);
            assert!(s.tasks[1].train.iter().all(|&i| s.train.y[i as usize] >= 2));
        }
    }

    #[test]
    fn permuted_first_task_is_the_identity_and_others_are_permutations() {
        let mut sp = spec(Kind::Permuted, Setting::DomainIl);
        sp.tasks = Some(3);
        let s = Scenario::build(sp, tiny(10), tiny(4)).unwrap();
        assert_eq!(s.tasks[0].transform, Transform::Identity);
        let (mut a, mut b, mut scratch) = (vec![0.0; 16], vec![0.0; 16], Vec::new());
        s.fill(Part::Train, 0, 3, &mut a, &mut scratch);
        s.fill(Part::Train, 2, 3, &mut b, &mut scratch);
        assert_ne!(a, b);
        let (mut sa, mut sb) = (a.clone(), b.clone());
        sa.sort_by(f32::total_cmp);
        sb.sort_by(f32::total_cmp);
        assert_eq!(sa, sb);
    }

    #[test]
    fn rotation_by_zero_is_the_identity_and_pooling_averages() {
        let mut sp = spec(Kind::Rotated, Setting::DomainIl);
        sp.tasks = Some(2);
        sp.features = Features::Pool2x2;
        let s = Scenario::build(sp, tiny(10), tiny(4)).unwrap();
        assert_eq!(s.input_width(), 4);
        let mut out = vec![0.0; 4];
        let mut scratch = Vec::new();
        s.fill(Part::Test, 0, 1, &mut out, &mut scratch);
        let row = s.test.x.row(1);
        let want = 0.25 * row[0] + 0.25 * row[1] + 0.25 * row[4] + 0.25 * row[5];
        assert!((out[0] - want).abs() < 1e-6);
    }

    #[test]
    fn bad_task_order_and_too_many_tasks_are_errors() {
        let mut sp = spec(Kind::Split, Setting::ClassIl);
        sp.task_order = Some(vec![0, 0]);
        assert!(Scenario::build(sp.clone(), tiny(40), tiny(8)).is_err());
        sp.task_order = Some(vec![1, 0]);
        let s = Scenario::build(sp.clone(), tiny(40), tiny(8)).unwrap();
        assert_eq!(s.tasks[0].classes, vec![2, 3]);
        sp.tasks = Some(3);
        sp.task_order = None;
        assert!(Scenario::build(sp.clone(), tiny(40), tiny(8)).is_err());
        sp.tasks = None;
        sp.class_order = ClassOrder::Given(vec![3, 1, 3, 0]);
        assert!(Scenario::build(sp.clone(), tiny(40), tiny(8)).is_err());
        sp.class_order = ClassOrder::Sorted;
        sp.kind = Kind::Permuted;
        sp.tasks = Some(MAX_TASKS + 1);
        assert!(Scenario::build(sp.clone(), tiny(40), tiny(8)).is_err());
        sp.tasks = Some(2);
        let mut other = tiny(8);
        other.sample_shape = vec![2, 8];
        assert!(Scenario::build(sp.clone(), tiny(40), other).is_err());
        let mut flat = tiny(8);
        flat.sample_shape = vec![1, 16];
        let mut flat_train = tiny(40);
        flat_train.sample_shape = vec![1, 16];
        sp.features = Features::Pool2x2;
        assert!(Scenario::build(sp, flat_train, flat).is_err());
    }

    #[test]
    fn class_orders_group_the_classes_they_name() {
        let mut sp = spec(Kind::Split, Setting::ClassIl);
        sp.class_order = ClassOrder::Given(vec![3, 1, 0, 2]);
        let s = Scenario::build(sp.clone(), tiny(40), tiny(8)).unwrap();
        assert_eq!(s.tasks[0].classes, vec![3, 1]);
        assert_eq!(s.target(0, 1), 1);
        assert_eq!(s.target(1, 0), 2);
        sp.class_order = ClassOrder::Random;
        let a = Scenario::build(sp.clone(), tiny(40), tiny(8)).unwrap();
        let mut all: Vec<u16> = a.tasks.iter().flat_map(|t| t.classes.clone()).collect();
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2, 3]);
        let orders: std::collections::HashSet<Vec<u16>> = (0..20)
            .map(|seed| {
                sp.seed = seed;
                let s = Scenario::build(sp.clone(), tiny(40), tiny(8)).unwrap();
                s.tasks.iter().flat_map(|t| t.classes.clone()).collect()
            })
            .collect();
        assert!(orders.len() > 3, "seeds should pair the classes differently");
    }
}

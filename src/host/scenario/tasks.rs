//! How a split's classes become tasks (groups of `k`, the last one smaller, or groups
//! given), and how `--tasks-by` makes one task per value of a side file.

use super::{ClassOrder, Spec, TasksBy};
use crate::host::idx::{Dataset, SideFile};
use crate::learner::rng::Rng;
use anyhow::{bail, ensure, Result};

/// The classes of each task of a split, in output order, and the classes no task holds.
pub(super) fn split_groups(spec: &Spec, classes: usize, rng: &mut Rng) -> Result<(Vec<Vec<u16>>, Vec<u16>)> {
    let k = spec.classes_per_task;
    ensure!(k >= 1, "--classes-per-task must be at least 1");
    let all: Vec<u16> = (0..classes as u16).collect();
    let check = |c: u16, seen: &mut [bool]| -> Result<()> {
        ensure!(
            usize::from(c) < classes,
            "the class order names class {c}; the data has {classes} classes (0..{})",
            classes - 1
        );
        ensure!(
            !std::mem::replace(&mut seen[usize::from(c)], true),
            "the class order names class {c} twice"
        );
        Ok(())
    };
    let mut seen = vec![false; classes];
    let groups: Vec<Vec<u16>> = match &spec.class_order {
        ClassOrder::Tasks(groups) => {
            for (t, g) in groups.iter().enumerate() {
                ensure!(!g.is_empty(), "the class order's task {} holds no class", t + 1);
                for &c in g {
                    check(c, &mut seen)?;
                }
            }
            if let Some(n) = spec.tasks.filter(|&n| n != groups.len()) {
                bail!(
                    "--tasks {n} but the class order lists {} tasks; give one or the other",
                    groups.len()
                );
            }
            groups.clone()
        }
        order => {
            ensure!(
                k <= classes,
                "--classes-per-task {k}: the data has {classes} classes, so a task holds at most {classes}"
            );
            let order: Vec<u16> = match order {
                ClassOrder::Sorted => all.clone(),
                ClassOrder::Random => {
                    let mut o = all.clone();
                    rng.shuffle(&mut o);
                    o
                }
                ClassOrder::Given(o) => {
                    for &c in o {
                        check(c, &mut seen)?;
                    }
                    o.clone()
                }
                ClassOrder::Tasks(_) => unreachable!("matched above"),
            };
            let most = order.len().div_ceil(k);
            let n = spec.tasks.unwrap_or(most);
            ensure!(
                (1..=most).contains(&n),
                "--tasks {n} of {k} classes: the class order has {} classes, which make at most {most} tasks",
                order.len()
            );
            order.chunks(k).take(n).map(<[u16]>::to_vec).collect()
        }
    };
    let held: Vec<u16> = groups.iter().flatten().copied().collect();
    let left_out = all.into_iter().filter(|c| !held.contains(c)).collect();
    Ok((groups, left_out))
}

/// A task of a split or of `--tasks-by` has no training or no test samples: the error,
/// naming its classes and, when a stray label made the class count, that label.
pub(super) fn empty_task(t: usize, classes: &[u16], train: &Dataset, test: &Dataset, no_train: bool) -> anyhow::Error {
    let names = classes.iter().map(u16::to_string).collect::<Vec<_>>().join(",");
    let part = if no_train { "training" } else { "test" };
    let data = if no_train { train } else { test };
    let missing: Vec<u16> = classes.iter().copied().filter(|c| !data.y.contains(c)).collect();
    let mut msg = format!("task {} (classes {names}) has no {part} samples", t + 1);
    if !missing.is_empty() && missing.len() == classes.len() {
        msg += &format!(
            ": no {part} label is {}",
            missing.iter().map(u16::to_string).collect::<Vec<_>>().join(" or ")
        );
    }
    // The class count is one more than the largest label: name it when classes below it
    // have no samples at all (a stray label such as 255 among labels 0..9).
    if let Some((index, &top)) = train
        .y
        .iter()
        .enumerate()
        .max_by_key(|(i, &y)| (y, std::cmp::Reverse(*i)))
    {
        let absent = (0..top).filter(|c| !train.y.contains(c)).count();
        if absent > 0 {
            msg += &format!(
                ". The class count is {} because training label {index} is {top}, and {absent} classes below it have no \
                 training samples: fix that label, or pass --num-classes N to say how many classes there are",
                train.classes
            );
        }
    }
    anyhow::anyhow!(msg)
}

/// `train` and `test` regrouped by the values of side file `name`: a value with samples
/// in both splits keeps them as they are; a value found in one split only (a split by
/// wearer) has the last quarter of each class's samples there, in file order, held out
/// as its test samples. Returns the new splits and what `--tasks-by` reports.
pub(super) fn regroup(train: &Dataset, test: &Dataset, name: &str) -> Result<(Dataset, Dataset, TasksBy)> {
    let names = |d: &Dataset| d.side.iter().map(|f| f.name.clone()).collect::<Vec<_>>();
    let side = |d: &Dataset| -> Result<Vec<u32>> {
        match d.side.iter().find(|f| f.name == name) {
            Some(f) => Ok(f.values.clone()),
            None if d.side.is_empty() => bail!("--tasks-by {name}: the data has no side files"),
            None => bail!(
                "--tasks-by {name}: no such side file (the data has {})",
                names(d).join(", ")
            ),
        }
    };
    let (a, b) = (side(train)?, side(test)?);
    ensure!(
        names(train) == names(test),
        "--tasks-by {name}: the train split has side files {:?} but the test split {:?}",
        names(train),
        names(test)
    );
    let mut values: Vec<u32> = a.iter().chain(&b).copied().collect();
    values.sort_unstable();
    values.dedup();
    if let [only] = values.as_slice() {
        bail!(
            "--tasks-by {name}: every sample has the value {only}, which makes one task; a sequence needs two or more"
        );
    }
    ensure!(
        values.len() <= super::MAX_TASKS,
        "--tasks-by {name}: {} values make {} tasks; a scenario has at most {}",
        values.len(),
        values.len(),
        super::MAX_TASKS
    );
    let (mut fit, mut held) = (Vec::new(), Vec::new());
    let mut cut = Vec::new();
    for &v in &values {
        let rows = |vals: &[u32]| (0..vals.len()).filter(|&i| vals[i] == v).collect::<Vec<_>>();
        let (tr, te) = (rows(&a), rows(&b));
        if !tr.is_empty() && !te.is_empty() {
            fit.extend(tr.into_iter().map(|i| (false, i)));
            held.extend(te.into_iter().map(|i| (true, i)));
            continue;
        }
        cut.push(v);
        let (from_test, rows, data) = if tr.is_empty() {
            (true, te, test)
        } else {
            (false, tr, train)
        };
        for c in 0..data.classes as u16 {
            let of: Vec<usize> = rows.iter().copied().filter(|&i| data.y[i] == c).collect();
            let keep = of.len() - of.len() / 4;
            fit.extend(of[..keep].iter().map(|&i| (from_test, i)));
            held.extend(of[keep..].iter().map(|&i| (from_test, i)));
        }
    }
    // Each task's rows in file order: by value, then train before test, then row.
    let value = |t: bool, i: usize| if t { b[i] } else { a[i] };
    fit.sort_by_key(|&(t, i)| (value(t, i), t, i));
    held.sort_by_key(|&(t, i)| (value(t, i), t, i));
    Ok((
        join(train, test, &fit),
        join(train, test, &held),
        TasksBy {
            side: name.to_string(),
            values,
            cut,
        },
    ))
}

/// The rows `(from_test, row)` of `train` and `test` as one dataset, in that order.
fn join(train: &Dataset, test: &Dataset, rows: &[(bool, usize)]) -> Dataset {
    let of = |from_test: bool| if from_test { test } else { train };
    let mut x = ndarray::Array2::<f32>::zeros((rows.len(), train.x.ncols()));
    for (mut out, &(t, i)) in x.rows_mut().into_iter().zip(rows) {
        out.assign(&of(t).x.row(i));
    }
    Dataset {
        x,
        y: rows.iter().map(|&(t, i)| of(t).y[i]).collect(),
        sample_shape: train.sample_shape.clone(),
        classes: train.classes.max(test.classes),
        side: (0..train.side.len())
            .map(|f| SideFile {
                name: train.side[f].name.clone(),
                values: rows.iter().map(|&(t, i)| of(t).side[f].values[i]).collect(),
            })
            .collect(),
    }
}

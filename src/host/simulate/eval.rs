//! Testing: the accuracy of the learner on every task's test set, a row of the matrix.

use super::Model;
use crate::host::scenario::{Scenario, Setting};
use crate::learner::classifier::Classifier;
use crate::learner::Active;
use anyhow::{Context, Result};

/// Accuracy (%) on every task's test set after `learned` tasks; with PackNet also, when
/// the task must be inferred (class- and domain-IL), the % of test samples whose task the
/// most confident mask picked right.
///
/// Progressive columns: task `t` by its own column (tasks not learned yet by the newest).
/// PackNet: in task-IL, task `t` is evaluated with the weights of tasks `1..=t` (tasks not
/// learned yet with all learned ones); otherwise each sample goes to the learned task whose
/// masked network is most confident over that task's own outputs.
pub(super) fn evaluate(
    model: &mut Model<'_>,
    scenario: &Scenario,
    tests: &[(Vec<f32>, Vec<u16>)],
    learned: usize,
    single_head: bool,
) -> Result<(Vec<f64>, Option<Vec<f64>>)> {
    // One accuracy per task's test set, `predict` writing task t's predictions.
    let row = |predict: &mut Predict<'_>| {
        tests
            .iter()
            .enumerate()
            .map(|(t, (x, y))| {
                let mut out = vec![0u16; y.len()];
                predict(t, x, Active::Classes(scenario.eval_active(t)), &mut out)?;
                Ok(pct(out.iter().zip(y).filter(|(a, b)| a == b).count(), y.len()))
            })
            .collect::<Result<Vec<f64>>>()
    };
    let learner = match model {
        Model::Dense(l) => l,
        Model::Columns(c) => {
            // Task t by its own column; tasks not learned yet by the newest column.
            let row = row(&mut |t, x, active, out| Ok(c.predict_for(x, t, active, out)?))?;
            return Ok((row, None));
        }
    };
    if learner.config().packnet.is_none() || learned == 0 {
        return Ok((
            row(&mut |_, x, active, out| Ok(learner.predict(x, active, out)?))?,
            None,
        ));
    }
    let mut learner = learner
        .packnet()
        .context("PackNet's evaluation of a learner without PackNet")?;
    if scenario.spec.setting == Setting::TaskIl {
        let row =
            row(&mut |t, x, active, out| Ok(learner.predict_task(x, (t + 1).min(learned), active, out, None)?))?;
        return Ok((row, None));
    }
    if single_head {
        // PackNet with replay: the newest mask holds every task's weights and has learned
        // to tell every class seen apart; over those classes (an unlearned class's row is
        // masked out whole, its bias alone is no output).
        let seen = match scenario.spec.setting {
            Setting::ClassIl => Active::Classes(scenario.train_active(learned - 1)),
            _ => Active::All,
        };
        let row = row(&mut |_, x, _, out| Ok(learner.predict_task(x, learned, seen, out, None)?))?;
        return Ok((row, None));
    }
    let mut row = Vec::with_capacity(tests.len());
    let mut inferred = Vec::with_capacity(tests.len());
    for (t, (x, y)) in tests.iter().enumerate() {
        let mut best = vec![(f32::NEG_INFINITY, 0u16, 0usize); y.len()];
        let mut out = vec![0u16; y.len()];
        let mut conf = vec![0f32; y.len()];
        for s in 1..=learned {
            let active = Active::Classes(scenario.task_outputs(s - 1));
            learner.predict_task(x, s, active, &mut out, Some(&mut conf))?;
            for (b, (&c, &o)) in best.iter_mut().zip(conf.iter().zip(&out)) {
                if c > b.0 {
                    *b = (c, o, s - 1);
                }
            }
        }
        row.push(pct(best.iter().zip(y).filter(|(b, &y)| b.1 == y).count(), y.len()));
        inferred.push(pct(best.iter().filter(|b| b.2 == t).count(), y.len()));
    }
    Ok((row, Some(inferred)))
}

/// Writes task `t`'s predictions of `x` under `active` into `out`.
type Predict<'p> = dyn FnMut(usize, &[f32], Active<'_>, &mut [u16]) -> Result<()> + 'p;

/// `right` out of `n`, in percent.
fn pct(right: usize, n: usize) -> f64 {
    100.0 * right as f64 / n.max(1) as f64
}

//! The importance penalty's side of the learner (EWC, online EWC, SI, MAS): importance
//! sums over a task's samples, consolidation at a task's end, and the penalty's values
//! (its gradient and SI's path integral are its hooks, in `consolidation`).

use super::*;

/// What a penalty call finds without a penalty (never: only [`Penalised`] makes them).
const NO_PENALTY: Error = Error::Internal("a penalty call on a learner without a penalty");

/// A learner built with an importance penalty, seen through it ([`Learner::penalised`]).
/// Estimating and consolidating importance exist only here: a learner built without a
/// penalty has no way to call them.
///
/// ```compile_fail
/// fn no_such_call(learner: &mut edgecl::Learner<'_>) {
///     learner.consolidate().unwrap(); // consolidating is `Penalised`'s call only
/// }
/// ```
///
/// ```
/// fn the_call(learner: &mut edgecl::Learner<'_>) -> Result<(), edgecl::Error> {
///     match learner.penalised() {
///         Some(mut p) => p.consolidate(),
///         None => Ok(()), // built without a penalty: nothing to consolidate
///     }
/// }
/// ```
#[derive(Debug)]
pub struct Penalised<'l, 'a>(&'l mut Learner<'a>);

impl<'a> Learner<'a> {
    /// The learner through its penalty; `None` when it was built without one.
    pub fn penalised(&mut self) -> Option<Penalised<'_, 'a>> {
        self.defences.penalty.is_some().then_some(Penalised(self))
    }

    /// Adds one labelled sample's contribution to the importance being estimated for the
    /// current task: its squared log-likelihood gradient (EWC, online EWC; with the true
    /// label or one drawn from the model's prediction, as configured) or the absolute
    /// gradient of the squared L2 norm of its active logits (MAS; the label is then only
    /// checked, not used). SI needs no samples: for SI this does nothing. A non-finite
    /// gradient is refused and adds nothing.
    fn accumulate_importance(&mut self, x: &[f32], label: u16, active: Active<'_>) -> Result<(), Error> {
        let method = match &self.defences.penalty {
            None => return Err(NO_PENALTY),
            Some(c) => c.config.method,
        };
        if matches!(method, Method::Si { .. }) {
            return Ok(());
        }
        let n = self.check_batch(x, &[label], &active)?;
        if n != 1 {
            return Err(Error::BatchSize { got: n, max: 1 });
        }
        self.forward(x, 1)?;
        let classes = self.config.dims.classes();
        let at = network::act_offset(&self.config.dims, self.config.batch_size, self.config.dims.layers() - 1);
        let logits = &self.acts[at..at + classes];
        let (lo, hi) = active.range(0, classes);
        let dlogits = &mut self.deltas[..classes];
        let fisher = match method {
            Method::Ewc { fisher } | Method::OnlineEwc { fisher, .. } => Some(fisher),
            _ => None,
        };
        match fisher {
            Some(fisher) => {
                let y = match fisher {
                    FisherLabels::True => label,
                    FisherLabels::Sampled => sample_softmax(&logits[lo..hi], &mut self.rng) + lo as u16,
                };
                let loss = network::softmax_xent(logits, &[y], &active, classes, dlogits);
                if !loss.is_finite() {
                    return Err(Error::Diverged);
                }
            }
            None => {
                dlogits.fill(0.0);
                for (d, &z) in dlogits[lo..hi].iter_mut().zip(&logits[lo..hi]) {
                    *d = 2.0 * z;
                }
            }
        }
        self.backward(x, 1)?;
        if let Some(index) = self.grads.iter().position(|g| !g.is_finite()) {
            return Err(Error::NonFiniteGradient { index });
        }
        if let Some(c) = &mut self.defences.penalty {
            let square = fisher.is_some();
            for (a, &g) in c.acc.iter_mut().zip(self.grads.iter()) {
                *a += if square { g * g } else { g.abs() };
            }
            c.samples = c.samples.saturating_add(1);
        }
        Ok(())
    }

    /// Ends the current task for the penalty: the importance estimated since the last
    /// consolidation joins the stored importance (a new slot for EWC), the anchors become
    /// the current parameters. Nothing changes on error.
    fn consolidate(&mut self) -> Result<(), Error> {
        match &mut self.defences.penalty {
            None => Err(NO_PENALTY),
            Some(c) => c.consolidate(self.weights, self.biases),
        }
    }

    /// The penalty `lambda/2 * sum b_i (theta_i - theta*_i)^2` at the current parameters
    /// (0 before the first consolidation or without a penalty).
    pub fn penalty(&self) -> f64 {
        self.defences
            .penalty
            .as_ref()
            .map_or(0.0, |c| c.penalty(self.weights, self.biases))
    }

    /// Stored importance of parameter `i` (weights, then biases) in `slot` (0 unless EWC),
    /// as the penalty uses it (dequantised).
    pub fn importance(&self, slot: usize, i: usize) -> Option<f32> {
        let c = self.defences.penalty.as_ref()?;
        (slot < c.slots && i < c.params).then(|| c.importance(slot, i))
    }

    /// Stored anchor of parameter `i` in `slot`.
    pub fn anchor(&self, slot: usize, i: usize) -> Option<f32> {
        let c = self.defences.penalty.as_ref()?;
        (slot < c.slots && i < c.params).then(|| c.anchor(slot, i))
    }

    /// The running importance sums of the current task (EWC, MAS: sums over samples;
    /// SI: the path integral).
    pub fn importance_accumulator(&self) -> Option<&[f32]> {
        self.defences.penalty.as_ref().map(|c| &*c.acc)
    }

    /// Tasks consolidated so far.
    pub fn consolidated_tasks(&self) -> u32 {
        self.defences.penalty.as_ref().map_or(0, |c| c.tasks)
    }
}

impl<'a> Penalised<'_, 'a> {
    /// Adds one labelled sample's contribution to the importance being estimated for the
    /// current task: its squared log-likelihood gradient (EWC, online EWC; with the true
    /// label or one drawn from the model's prediction, as configured) or the absolute
    /// gradient of the squared L2 norm of its active logits (MAS; the label is then only
    /// checked, not used). SI needs no samples: for SI this does nothing. A non-finite
    /// gradient is refused and adds nothing.
    pub fn accumulate_importance(&mut self, x: &[f32], label: u16, active: Active<'_>) -> Result<(), Error> {
        self.0.accumulate_importance(x, label, active)
    }

    /// Ends the current task for the penalty: the importance estimated since the last
    /// consolidation joins the stored importance (a new slot for EWC), the anchors become
    /// the current parameters. Nothing changes on error.
    pub fn consolidate(&mut self) -> Result<(), Error> {
        self.0.consolidate()
    }

    /// The learner itself.
    pub fn learner(&mut self) -> &mut Learner<'a> {
        self.0
    }
}

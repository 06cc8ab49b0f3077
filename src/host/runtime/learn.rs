//! How the runtime learns from a sample: checked, features through tract, the head's
//! prediction, the row gathered into the batch, the update (observe, replay, train) and
//! the task-end steps and evaluation.

use super::step::{Holdout, Prediction, Refused, StepError};
use super::Runtime;
use crate::learner::learner::ClassRange;
use crate::learner::protocol::TaskEnd;
use crate::learner::Active;
use anyhow::{Context, Result};

impl<'a> Runtime<'a> {
    /// Checks a sample, takes its features and the head's prediction, and learns from it
    /// when labelled. Refusals change nothing but the skipped count.
    pub(super) fn sample(&mut self, x: &[f32], label: Option<i64>) -> std::result::Result<Prediction, StepError> {
        let refused = self.check(x, label).err();
        let features = match refused {
            Some(r) => Err(r),
            None => self.features(x),
        };
        if let Err(r) = features {
            self.state.skipped += 1;
            return Err(StepError::Refused(r));
        }
        let prediction = self.head()?;
        if let Some(label) = label {
            self.add_row(label as u16)?;
        }
        self.state.samples += 1;
        Ok(prediction)
    }

    fn check(&self, x: &[f32], label: Option<i64>) -> std::result::Result<(), Refused> {
        let expected = self.dep.backbone.input_width();
        if x.len() != expected {
            return Err(Refused::Width { got: x.len(), expected });
        }
        if let Some(index) = x.iter().position(|v| !v.is_finite()) {
            return Err(Refused::NonFinite { index, value: x[index] });
        }
        let classes = self.dep.config.classes;
        match label {
            Some(l) if l < 0 || l >= classes as i64 => Err(Refused::Label { label: l, classes }),
            _ => Ok(()),
        }
    }

    fn features(&mut self, x: &[f32]) -> std::result::Result<(), Refused> {
        if self.dep.backbone.sample(x, &mut self.feat).is_err() || self.feat.iter().any(|v| !v.is_finite()) {
            return Err(Refused::NonFiniteFeatures);
        }
        Ok(())
    }

    /// The head over the features in `feat`: the best class of all, and the softmax.
    fn head(&mut self) -> Result<Prediction> {
        let learned = self.learner.packnet_tasks();
        if let (Some(own_only), true) = (self.dep.packnet, learned > 0) {
            return self.head_packnet(own_only, learned);
        }
        let logits = self.learner.logits(&self.feat)?;
        let best = logits
            .iter()
            .enumerate()
            .fold(0, |b, (j, &z)| if z > logits[b] { j } else { b });
        let top = logits[best];
        let mut scores: Vec<f32> = logits.iter().map(|&z| crate::learner::math::exp(z - top)).collect();
        let sum: f32 = scores.iter().sum();
        scores.iter_mut().for_each(|s| *s /= sum);
        Ok(Prediction {
            class: best as u16,
            scores,
        })
    }

    /// PackNet's prediction after `learned` tasks: with replay, the newest mask over the
    /// classes seen; alone, the mask most confident over its own task's classes (scores
    /// are that mask's softmax over them, 0 elsewhere).
    fn head_packnet(&mut self, own_only: bool, learned: usize) -> Result<Prediction> {
        let classes = self.dep.config.classes;
        let tasks: Vec<(usize, (u16, u16))> = match own_only {
            true => (1..=learned).zip(self.state.task_classes.iter().copied()).collect(),
            false => vec![(learned, (0, self.state.hi))],
        };
        // (confidence, class, softmax over the task's classes) of the most confident mask.
        let mut best: Option<(f32, usize, Vec<f32>)> = None;
        let mut packing = self.learner.packnet().context("PackNet's prediction without PackNet")?;
        for &(s, (lo, hi)) in &tasks {
            let z = packing.logits_task(&self.feat, s)?;
            let (lo, hi) = (usize::from(lo), usize::from(hi).min(classes));
            let b = (lo..hi).fold(lo, |b, j| if z[j] > z[b] { j } else { b });
            let mut scores = vec![0.0f32; classes];
            for j in lo..hi {
                scores[j] = crate::learner::math::exp(z[j] - z[b]);
            }
            let sum: f32 = scores.iter().sum();
            if best.as_ref().is_none_or(|(c, ..)| 1.0 / sum > *c) {
                scores.iter_mut().for_each(|v| *v /= sum);
                best = Some((1.0 / sum, b, scores));
            }
        }
        let (_, class, scores) = best.context("no PackNet task to predict with")?;
        Ok(Prediction {
            class: class as u16,
            scores,
        })
    }

    /// Clears what a task keeps of itself and applies a pending optimizer reset.
    pub(super) fn start_task(&mut self) {
        self.clear_task();
        if self.state.pending_reset {
            self.learner.reset_optimizer();
            self.state.pending_reset = false;
        }
    }

    /// Forgets the running task's classes, batch composition and count.
    fn clear_task(&mut self) {
        self.state.own = (0, 0);
        self.state.own_given = false;
        self.state.real = None;
        self.state.task_labelled = 0;
    }

    /// The features in `feat` with `label` join the batch; task-free boundaries first.
    fn add_row(&mut self, label: u16) -> Result<()> {
        let c = &self.dep.config;
        let new_class = !self.state.seen[usize::from(label)];
        if self.state.task_labelled > 0
            && ((c.end_task_on_new_class && new_class)
                || (c.end_task_every > 0 && self.state.task_labelled >= c.end_task_every))
        {
            self.finish_task()?;
        }
        if self.state.task_labelled == 0 && !self.state.own_given {
            self.start_task();
        }
        if self.k == 0 {
            self.pending = Some(self.state.clone());
        }
        let s = &mut self.state;
        s.seen[usize::from(label)] = true;
        if !s.own_given {
            s.own = match s.own {
                (_, 0) => (label, label + 1),
                (lo, hi) => (lo.min(label), hi.max(label + 1)),
            };
        }
        s.hi = s.hi.max(label + 1);
        s.labelled += 1;
        s.task_labelled += 1;
        let f = self.feat.len();
        self.xb[self.k * f..(self.k + 1) * f].copy_from_slice(&self.feat);
        self.yb[self.k] = label;
        self.k += 1;
        let target = self.real_rows().unwrap_or(self.yb.len());
        if self.k >= target {
            self.update(false)?;
        }
        Ok(())
    }

    /// One update on the `k` real rows gathered: each is observed (generator, importance),
    /// replayed rows of old classes fill the batch, the head steps, the VAE steps on the
    /// same batch. A partial batch (`flush`) replays in proportion to its real rows.
    fn update(&mut self, flush: bool) -> Result<()> {
        let (k, f, batch) = (self.k, self.feat.len(), self.yb.len());
        let seen = ClassRange {
            start: 0,
            end: self.state.hi,
        };
        let own = ClassRange {
            start: self.state.own.0,
            end: self.state.own.1,
        };
        let active = Active::Classes(seen);
        // PackNet alone trains each task's own outputs.
        let step_active = Active::Classes(if self.dep.packnet == Some(true) { own } else { seen });
        let estimates = self.dep.estimates;
        for (x, &y) in self.xb[..k * f].chunks_exact(f).zip(&self.yb[..k]) {
            if let Some(mut r) = self.learner.replaying() {
                r.observe(x, y).context("the generator observing a sample")?;
            }
            if let (true, Some(mut p)) = (estimates, self.learner.penalised()) {
                p.accumulate_importance(x, y, active).context("estimating importance")?;
            }
        }
        let mut replayed = 0;
        if let Some(real) = self.real_rows() {
            let extra = match flush {
                false => batch - k,
                true => ((k * (batch - real)) as f64 / real as f64).round() as usize,
            }
            .min(batch - k);
            if extra > 0 {
                replayed = self
                    .learner
                    .replaying()
                    .context("replay without a generator")?
                    .fill(&mut self.xb[k * f..(k + extra) * f], &mut self.yb[k..k + extra], own)
                    .context("replaying old classes")?;
            }
        }
        let n = k + replayed;
        let (x, y) = (&self.xb[..n * f], &self.yb[..n]);
        match (replayed, self.learner.replaying()) {
            (r @ 1.., Some(mut replaying)) => replaying.train_step(x, y, step_active, r),
            _ => self.learner.train_step(x, y, step_active),
        }
        .context("updating the head")?;
        if let (true, Some(mut r)) = (self.dep.vae, self.learner.replaying()) {
            r.train_generator(x, y).context("updating the generator")?;
        }
        self.state.updates += 1;
        self.k = 0;
        self.pending = None;
        self.since_checkpoint += 1;
        if self.dep.checkpoint_every > 0 && self.since_checkpoint >= self.dep.checkpoint_every {
            self.checkpoint_due = true;
        }
        Ok(())
    }

    /// Ends the running task (it learned something): see [`Runtime::end_task`].
    pub(super) fn finish_task(&mut self) -> Result<()> {
        if self.k > 0 {
            self.update(true)?;
        }
        let own = (self.state.own.0, self.state.own.1);
        // The defences' end of the task (the core's protocol). PackNet keeps the task's
        // largest free weights with no retraining after (the device has not kept the
        // task's samples); the generator observed each row and the importance was
        // estimated as its batch updated.
        let outputs = match self.dep.packnet {
            Some(true) => ClassRange {
                start: own.0,
                end: own.1,
            },
            _ => ClassRange {
                start: 0,
                end: self.state.hi,
            },
        };
        let mut end = TaskEnd::new(outputs).observed(true).estimated(self.dep.estimates);
        if let Some(need) = end.next(&mut self.learner).context(end.stage().doing())? {
            anyhow::bail!("ending the task: {need:?} needs samples the runtime does not keep");
        }
        self.state.task_classes.push(own);
        self.state.task += 1;
        self.state.pending_reset = self.dep.config.reset_optimizer;
        self.clear_task();
        if self.holdout.is_some() {
            let row = self.evaluate()?;
            self.state.matrix.push(row);
        }
        self.checkpoint_due = true;
        Ok(())
    }

    /// Accuracy (%) on each held-out task over every class of the head.
    pub(super) fn evaluate(&mut self) -> Result<Vec<f64>> {
        let Some(h) = self.holdout.take() else {
            return Ok(Vec::new());
        };
        let row = self.evaluate_on(&h);
        self.holdout = Some(h);
        row
    }

    fn evaluate_on(&mut self, h: &Holdout) -> Result<Vec<f64>> {
        let active = Active::Classes(ClassRange {
            start: 0,
            end: self.dep.config.classes as u16,
        });
        let learned = self.learner.packnet_tasks();
        let mut row = Vec::with_capacity(h.tasks.len());
        for (x, y) in &h.tasks {
            let mut out = vec![0u16; y.len()];
            let mut packing = match (self.dep.packnet, learned) {
                (None, _) | (_, 0) => None,
                (Some(own_only), _) => Some((
                    own_only,
                    self.learner.packnet().context("PackNet's prediction without PackNet")?,
                )),
            };
            match &mut packing {
                None => self.learner.predict(x, active, &mut out)?,
                Some((false, p)) => {
                    let seen = Active::Classes(ClassRange {
                        start: 0,
                        end: self.state.hi,
                    });
                    p.predict_task(x, learned, seen, &mut out, None)?;
                }
                Some((true, p)) => {
                    // Each sample to the task whose mask is most confident over its own
                    // classes (the first such task on a tie), as the simulator does.
                    let mut best = vec![(f32::NEG_INFINITY, 0u16); y.len()];
                    let mut conf = vec![0f32; y.len()];
                    for (s, &(lo, hi)) in self.state.task_classes.iter().enumerate().take(learned) {
                        let own = Active::Classes(ClassRange { start: lo, end: hi });
                        p.predict_task(x, s + 1, own, &mut out, Some(&mut conf))?;
                        for (b, (&c, &o)) in best.iter_mut().zip(conf.iter().zip(&out)) {
                            if c > b.0 {
                                *b = (c, o);
                            }
                        }
                    }
                    out.iter_mut().zip(&best).for_each(|(o, b)| *o = b.1);
                }
            }
            let right = out.iter().zip(y).filter(|(a, b)| a == b).count();
            row.push(100.0 * right as f64 / y.len().max(1) as f64);
        }
        Ok(row)
    }
}

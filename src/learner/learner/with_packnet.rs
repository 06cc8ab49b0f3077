//! PackNet's side of the learner: a task's free weights are pruned at its end, and
//! inference is masked per task (freezing owned weights is its hook, in `packnet`).

use super::*;

/// What a PackNet call finds without PackNet (never: only [`Packing`] makes them).
const NO_PACKNET: Error = Error::Internal("a PackNet call on a learner without PackNet");

/// A learner built with PackNet, seen through its masks ([`Learner::packnet`]). PackNet's
/// operations exist only here: a learner built without it has no way to call them.
#[derive(Debug)]
pub struct Packing<'l, 'a>(&'l mut Learner<'a>);

impl<'a> Learner<'a> {
    /// The learner through its PackNet masks; `None` when it was built without PackNet.
    pub fn packnet(&mut self) -> Option<Packing<'_, 'a>> {
        self.defences.packnet.is_some().then_some(Packing(self))
    }

    /// PackNet, after the current task has trained: in every layer, keeps the
    /// largest-magnitude `1 - prune_ratio` of the free weights for this task, zeroes the
    /// others and leaves them free; from now on only this task's weights train (retraining)
    /// until [`Packing::end_task`]. In the output layer only the rows of `outputs`
    /// (the task's classes) are candidates, so other tasks' classifier rows stay free. Ties
    /// at the threshold go to the lower index. Returns the number of weights kept.
    fn packnet_prune(&mut self, outputs: ClassRange) -> Result<usize, Error> {
        let d = self.config.dims;
        let classes = d.classes();
        Active::Classes(outputs).validate(1, classes)?;
        let p = self.defences.packnet.as_ref().ok_or(NO_PACKNET)?;
        if p.retraining {
            return Err(Error::OutOfOrder("this task is already pruned; end it first"));
        }
        if p.packed >= p.max_tasks {
            return Err(Error::TasksExhausted { max: p.max_tasks });
        }
        let task = p.current();
        let last = d.layers() - 1;
        // Candidates of layer l: free weights (and in the output layer, rows of `outputs`).
        let candidate = |p: &PackState<'_>, l: usize, at: usize, i: usize| {
            let (d_in, _) = d.layer(l);
            let row = (i - at) / d_in;
            p.owners.get(i) == 0 && (l != last || (outputs.start as usize..outputs.end as usize).contains(&row))
        };
        // Check every layer before changing anything.
        for l in 0..d.layers() {
            let at = d.weight_offset(l);
            let (i, o) = d.layer(l);
            if !(at..at + i * o).any(|w| candidate(p, l, at, w)) {
                return Err(Error::NoFreeWeights { task, layer: l });
            }
        }
        let mut kept_total = 0;
        for l in 0..d.layers() {
            let at = d.weight_offset(l);
            let (i, o) = d.layer(l);
            let range = at..at + i * o;
            let (p, weights) = (self.defences.packnet.as_ref().ok_or(NO_PACKNET)?, &*self.weights);
            let free = range.clone().filter(|&w| candidate(p, l, at, w)).count();
            let keep = p.config.kept(free);
            let threshold = packnet::magnitude_threshold(
                |f: &mut dyn FnMut(u32)| {
                    for w in range.clone().filter(|&w| candidate(p, l, at, w)) {
                        f(weights[w].abs().to_bits());
                    }
                },
                keep,
            );
            let above = range
                .clone()
                .filter(|&w| candidate(p, l, at, w) && weights[w].abs().to_bits() > threshold)
                .count();
            let mut ties = keep - above;
            let p = self.defences.packnet.as_mut().ok_or(NO_PACKNET)?;
            for w in range {
                if !candidate(p, l, at, w) {
                    continue;
                }
                let bits = self.weights[w].abs().to_bits();
                let own = bits > threshold
                    || (bits == threshold && ties > 0 && {
                        ties -= 1;
                        true
                    });
                if own {
                    p.owners.set(w, task as u8);
                } else {
                    self.weights[w] = 0.0;
                }
            }
            kept_total += keep;
        }
        if let Some(p) = &mut self.defences.packnet {
            p.retraining = true;
        }
        Ok(kept_total)
    }

    /// PackNet: ends the current task (after [`Packing::prune`] and any
    /// retraining); its weights are frozen from now on.
    fn packnet_end_task(&mut self) -> Result<(), Error> {
        let p = self.defences.packnet.as_mut().ok_or(NO_PACKNET)?;
        if !p.retraining {
            return Err(Error::OutOfOrder("prune the task before ending it"));
        }
        p.retraining = false;
        p.packed += 1;
        Ok(())
    }

    /// PackNet: tasks pruned and ended so far.
    pub fn packnet_tasks(&self) -> usize {
        self.defences.packnet.as_ref().map_or(0, |p| p.packed)
    }

    /// PackNet: the owner task of weight `i` (0: free), `None` without PackNet or past the
    /// weights.
    pub fn packnet_owner(&self, i: usize) -> Option<u8> {
        let p = self.defences.packnet.as_ref()?;
        (i < self.weights.len()).then(|| p.owners.get(i))
    }

    /// Runs `f` with only the weights of PackNet tasks `1..=task` (the others are kept in
    /// the gradient buffer meanwhile, and restored after).
    pub(super) fn masked<R>(&mut self, task: usize, f: impl FnOnce(&mut Self) -> R) -> Result<R, Error> {
        let p = self.defences.packnet.as_ref().ok_or(NO_PACKNET)?;
        if task == 0 || task > p.packed {
            return Err(Error::NoSuchTask { task, tasks: p.packed });
        }
        for (i, (w, g)) in self.weights.iter_mut().zip(self.grads.iter_mut()).enumerate() {
            if !p.used_by(i, task) {
                *g = *w;
                *w = 0.0;
            }
        }
        let result = f(self);
        if let Some(p) = &self.defences.packnet {
            for (i, (w, g)) in self.weights.iter_mut().zip(self.grads.iter()).enumerate() {
                if !p.used_by(i, task) {
                    *w = *g;
                }
            }
        }
        Ok(result)
    }
}

impl<'a> Packing<'_, 'a> {
    /// After the current task has trained: in every layer, keeps the largest-magnitude
    /// `1 - prune_ratio` of the free weights for this task, zeroes the others and leaves
    /// them free; from now on only this task's weights train (retraining) until
    /// [`Packing::end_task`]. In the output layer only the rows of `outputs` (the task's
    /// classes) are candidates, so other tasks' classifier rows stay free. Ties at the
    /// threshold go to the lower index. Returns the number of weights kept.
    pub fn prune(&mut self, outputs: ClassRange) -> Result<usize, Error> {
        self.0.packnet_prune(outputs)
    }

    /// Ends the current task (after [`Packing::prune`] and any retraining); its weights
    /// are frozen from now on.
    pub fn end_task(&mut self) -> Result<(), Error> {
        self.0.packnet_end_task()
    }

    /// Inference for `task` (1-based, at most the tasks ended so far): like
    /// [`Learner::predict_with_confidence`], with only the weights of tasks `1..=task`
    /// (the others are zeroed for the call and restored after it, through the gradient
    /// buffer; gradients are scratch after this).
    pub fn predict_task(
        &mut self,
        x: &[f32],
        task: usize,
        active: Active<'_>,
        out: &mut [u16],
        confidence: Option<&mut [f32]>,
    ) -> Result<(), Error> {
        self.0
            .masked(task, |l| l.predict_with_confidence(x, active, out, confidence))?
    }

    /// Logits (`n x classes`) of up to `batch_size` samples for `task`, with only the
    /// weights of tasks `1..=task`, as [`Packing::predict_task`] masks them.
    pub fn logits_task(&mut self, x: &[f32], task: usize) -> Result<&[f32], Error> {
        let l = &mut *self.0;
        let n = l.check_input(x, l.config.batch_size)?;
        l.masked(task, |l| l.forward(x, n))??;
        let c = &l.config;
        let at = network::act_offset(&c.dims, c.batch_size, c.dims.layers() - 1);
        Ok(&l.acts[at..at + n * c.dims.classes()])
    }

    /// The learner itself.
    pub fn learner(&mut self) -> &mut Learner<'a> {
        self.0
    }
}

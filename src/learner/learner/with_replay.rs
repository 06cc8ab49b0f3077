//! Replay's side of the learner: the generator observes real rows, commits them at a
//! task's end, and fills batches with replayed rows of old classes (with distillation
//! from the teacher head when configured).

use super::*;

/// What a generator call finds without a generator (never: only [`Replaying`] makes them).
const NO_GENERATOR: Error = Error::Internal("a generator call on a learner without a generator");

/// A learner built with a replay generator, seen through it ([`Learner::replaying`]).
/// Observing, committing, replaying and training the generator exist only here: a
/// learner built without one has no way to call them.
#[derive(Debug)]
pub struct Replaying<'l, 'a>(&'l mut Learner<'a>);

impl<'a> Learner<'a> {
    /// The learner through its generator; `None` when it was built without one.
    pub fn replaying(&mut self) -> Option<Replaying<'_, 'a>> {
        self.defences.generator.is_some().then_some(Replaying(self))
    }

    /// Adds one labelled sample (its input features) to the replay generator: the
    /// Gaussian's statistics of its class, the buffer's reservoir, the VAE's count of the
    /// class (the VAE itself learns in [`Replaying::train_generator`]). Checked like a
    /// training sample; nothing changes on error.
    fn observe(&mut self, x: &[f32], label: u16) -> Result<(), Error> {
        if self.defences.generator.is_none() {
            return Err(NO_GENERATOR);
        }
        let n = self.check_input(x, 1)?;
        check_labels(&[label], n, &Active::All, self.config.dims.classes())?;
        match &mut self.defences.generator {
            Some(Generator::Gaussian(g)) => g.observe(x, label as usize)?,
            Some(Generator::Buffer(b)) => b.observe(x, label as usize, &mut self.replay_rng),
            Some(Generator::Vae(v)) => {
                let c = &mut v.counts[label as usize];
                *c = c.saturating_add(1);
            }
            None => {}
        }
        Ok(())
    }

    /// Ends a task for the generator: the Gaussian compresses its working slots into the
    /// classes' compact records, the VAE freezes its decoder as the one replayed from
    /// until the next commit; the buffer has nothing to do.
    fn commit_generator(&mut self) -> Result<(), Error> {
        match &mut self.defences.generator {
            Some(Generator::Gaussian(g)) => g.commit(),
            Some(Generator::Vae(v)) => v.commit(),
            Some(Generator::Buffer(_)) => {}
            None => return Err(NO_GENERATOR),
        }
        if let (Some(Teacher(params, _, known)), Some(g)) = (&mut self.defences.teacher, &self.defences.generator) {
            let nw = self.weights.len();
            params[..nw].copy_from_slice(self.weights);
            params[nw..].copy_from_slice(self.biases);
            for (k, m) in known.iter_mut().enumerate() {
                *m = u8::from(g.count(k) > 0);
            }
            self.teacher_ready = true;
        }
        Ok(())
    }

    /// One update on a batch whose last `replayed` rows are replayed samples
    /// ([`Replaying::fill`]). With distillation configured and a commit behind it,
    /// those rows learn the committed head's outputs softened by the temperature over
    /// the classes the generator has observed, zero on the row's other active classes
    /// (loss `T^2 * KL`); otherwise this is [`Learner::train_step`]. The loss returned is
    /// the batch's cross-entropy against its labels either way.
    fn train_step_replay(
        &mut self,
        x: &[f32],
        labels: &[u16],
        active: Active<'_>,
        replayed: usize,
    ) -> Result<f32, Error> {
        let n = self.check_batch(x, labels, &active)?;
        if replayed > n {
            return Err(Error::OutputShape {
                got: replayed,
                expected: n,
            });
        }
        let Some(t) = self.config.generator.and_then(|g| g.distill) else {
            return self.train_step(x, labels, active);
        };
        if !self.teacher_ready || replayed == 0 {
            return self.train_step(x, labels, active);
        }
        let c = self.config;
        let (classes, w) = (c.dims.classes(), c.dims.input());
        let first = n - replayed;
        let logits_at = network::act_offset(&c.dims, c.batch_size, c.dims.layers() - 1);
        // The teacher's logits of the replayed rows, kept aside.
        if let Some(Teacher(params, logits, _)) = &mut self.defences.teacher {
            let (tw, tb) = params.split_at(self.weights.len());
            network::forward(
                c.kernels,
                &c.dims,
                tw,
                tb,
                &x[first * w..n * w],
                replayed,
                c.batch_size,
                self.acts,
                self.pack,
            )?;
            logits[..replayed * classes].copy_from_slice(&self.acts[logits_at..logits_at + replayed * classes]);
        }
        self.distill = Some((first, t));
        let loss = self.train_step(x, labels, active);
        self.distill = None;
        loss
    }

    /// Fills every row of `x` (`labels.len()` rows of the input width) with a replayed
    /// sample of an old class and its label: a class drawn among those observed outside
    /// `exclude` (the task being learned) in proportion to their samples seen, then a
    /// sample of it from the Gaussian or the VAE; for the buffer, a uniformly chosen
    /// kept row of such a class. Returns the rows filled: 0 when there is no old class
    /// to replay (nothing is written).
    fn fill_replay(&mut self, x: &mut [f32], labels: &mut [u16], exclude: ClassRange) -> Result<usize, Error> {
        let width = self.config.dims.input();
        if x.len() != labels.len() * width {
            return Err(Error::InputShape {
                got: x.len(),
                expected: labels.len() * width,
            });
        }
        let g = self.defences.generator.as_mut().ok_or(NO_GENERATOR)?;
        let exclude = (exclude.start as usize, exclude.end as usize);
        if !g.has_class_outside(exclude) {
            return Ok(0);
        }
        let rng = &mut self.replay_rng;
        match g {
            Generator::Buffer(b) => {
                for (row, y) in x.chunks_exact_mut(width).zip(labels.iter_mut()) {
                    match b.draw(|y| !(exclude.0..exclude.1).contains(&(y as usize)), rng, row) {
                        Some(label) => *y = label,
                        None => return Ok(0),
                    }
                }
            }
            Generator::Gaussian(_) | Generator::Vae(_) => {
                for y in labels.iter_mut() {
                    *y = g
                        .draw_class(exclude, rng)
                        .ok_or(Error::Internal("replay classes vanished"))? as u16;
                }
                match g {
                    Generator::Gaussian(gs) => {
                        for (row, &y) in x.chunks_exact_mut(width).zip(labels.iter()) {
                            gs.sample(y as usize, rng, row)?;
                        }
                    }
                    Generator::Vae(v) => v.generate(labels, x, rng, self.config.kernels, self.pack)?,
                    Generator::Buffer(_) => {}
                }
            }
        }
        Ok(labels.len())
    }

    /// Writes `out.len() / input width` samples of `class` from the generator (the
    /// Gaussian's or the VAE's; a buffer row of the class for the buffer). A class never
    /// observed is [`Error::UnknownClass`], and nothing is written.
    fn generate(&mut self, class: u16, out: &mut [f32]) -> Result<(), Error> {
        let width = self.config.dims.input();
        if out.is_empty() || !out.len().is_multiple_of(width) {
            return Err(Error::InputShape {
                got: out.len(),
                expected: width * (out.len() / width).max(1),
            });
        }
        let c = class as usize;
        let g = self.defences.generator.as_mut().ok_or(NO_GENERATOR)?;
        if g.count(c) == 0 {
            return Err(Error::UnknownClass { class: c });
        }
        let rng = &mut self.replay_rng;
        match g {
            Generator::Gaussian(gs) => {
                for row in out.chunks_exact_mut(width) {
                    gs.sample(c, rng, row)?;
                }
            }
            Generator::Buffer(b) => {
                for row in out.chunks_exact_mut(width) {
                    b.draw(|y| y as usize == c, rng, row)
                        .ok_or(Error::UnknownClass { class: c })?;
                }
            }
            Generator::Vae(v) => {
                let mut labels = [0u16; 64];
                for chunk in out.chunks_mut(width * 64) {
                    let n = chunk.len() / width;
                    labels[..n].fill(class);
                    v.generate(&labels[..n], chunk, rng, self.config.kernels, self.pack)?;
                }
            }
        }
        Ok(())
    }

    /// Deep generative replay: one update of the VAE on a batch (the task's real samples
    /// and the replayed ones, as the head sees them). Returns the batch's mean negative
    /// ELBO before the update. Checked like a training batch.
    fn train_generator(&mut self, x: &[f32], labels: &[u16]) -> Result<f32, Error> {
        let loss = self.generator_gradients(x, labels, None)?;
        if let Some(Generator::Vae(v)) = &mut self.defences.generator {
            v.apply_gradients();
        }
        Ok(loss)
    }

    /// The VAE's negative ELBO on a batch and its gradient (in the VAE's
    /// [`Vae::gradients`](crate::learner::vae::Vae::gradients)), without an update: with the reparameterisation noise `eps`
    /// (`n x latent`) when given, else drawn. [`Error::NotVae`] unless the generator is a
    /// VAE.
    fn generator_gradients(&mut self, x: &[f32], labels: &[u16], eps: Option<&[f32]>) -> Result<f32, Error> {
        let n = self.check_batch(x, labels, &Active::All)?;
        let Some(Generator::Vae(v)) = &mut self.defences.generator else {
            return Err(Error::NotVae);
        };
        let noise = match eps {
            Some(e) => Noise::Fixed(e),
            None => Noise::Draw(&mut self.replay_rng),
        };
        v.compute_gradients(
            &x[..n * self.config.dims.input()],
            labels,
            noise,
            self.config.kernels,
            self.pack,
        )
    }

    /// The replay generator, when configured.
    pub fn generator(&self) -> Option<&Generator<'a>> {
        self.defences.generator.as_ref()
    }

    /// The replay generator, mutable (the VAE's parameters, for checks).
    pub fn generator_mut(&mut self) -> Option<&mut Generator<'a>> {
        self.defences.generator.as_mut()
    }
}

impl<'a> Replaying<'_, 'a> {
    /// Adds one labelled sample (its input features) to the generator: the Gaussian's
    /// statistics of its class, the buffer's reservoir, the VAE's count of the class (the
    /// VAE itself learns in [`Replaying::train_generator`]). Checked like a training
    /// sample; nothing changes on error.
    pub fn observe(&mut self, x: &[f32], label: u16) -> Result<(), Error> {
        self.0.observe(x, label)
    }

    /// Ends a task for the generator: the Gaussian compresses its working slots into the
    /// classes' compact records, the VAE freezes its decoder as the one replayed from
    /// until the next commit; the buffer has nothing to do. The distillation teacher, when
    /// configured, becomes the current head.
    pub fn commit(&mut self) -> Result<(), Error> {
        self.0.commit_generator()
    }

    /// One update on a batch whose last `replayed` rows are replayed samples
    /// ([`Replaying::fill`]). With distillation configured and a commit behind it, those
    /// rows learn the committed head's outputs softened by the temperature over the
    /// classes the generator has observed, zero on the row's other active classes (loss
    /// `T^2 * KL`); otherwise this is [`Learner::train_step`]. The loss returned is the
    /// batch's cross-entropy against its labels either way.
    pub fn train_step(&mut self, x: &[f32], labels: &[u16], active: Active<'_>, replayed: usize) -> Result<f32, Error> {
        self.0.train_step_replay(x, labels, active, replayed)
    }

    /// Fills every row of `x` (`labels.len()` rows of the input width) with a replayed
    /// sample of an old class and its label: a class drawn among those observed outside
    /// `exclude` (the task being learned) in proportion to their samples seen, then a
    /// sample of it from the Gaussian or the VAE; for the buffer, a uniformly chosen kept
    /// row of such a class. Returns the rows filled: 0 when there is no old class to
    /// replay (nothing is written).
    pub fn fill(&mut self, x: &mut [f32], labels: &mut [u16], exclude: ClassRange) -> Result<usize, Error> {
        self.0.fill_replay(x, labels, exclude)
    }

    /// Writes `out.len() / input width` samples of `class` from the generator (the
    /// Gaussian's or the VAE's; a buffer row of the class for the buffer). A class never
    /// observed is [`Error::UnknownClass`], and nothing is written.
    pub fn generate(&mut self, class: u16, out: &mut [f32]) -> Result<(), Error> {
        self.0.generate(class, out)
    }

    /// Deep generative replay: one update of the VAE on a batch (the task's real samples
    /// and the replayed ones, as the head sees them). Returns the batch's mean negative
    /// ELBO before the update. Checked like a training batch; [`Error::NotVae`]
    /// unless the generator is a VAE.
    pub fn train_generator(&mut self, x: &[f32], labels: &[u16]) -> Result<f32, Error> {
        self.0.train_generator(x, labels)
    }

    /// The VAE's negative ELBO on a batch and its gradient (in the VAE's
    /// [`Vae::gradients`](crate::learner::vae::Vae::gradients)), without an update: with
    /// the reparameterisation noise `eps` (`n x latent`) when given, else drawn.
    /// [`Error::NotVae`] unless the generator is a VAE.
    pub fn generator_gradients(&mut self, x: &[f32], labels: &[u16], eps: Option<&[f32]>) -> Result<f32, Error> {
        self.0.generator_gradients(x, labels, eps)
    }

    /// The learner itself.
    pub fn learner(&mut self) -> &mut Learner<'a> {
        self.0
    }
}

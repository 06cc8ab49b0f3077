//! The [`Learner`]: a dense network, its optimizer and its scratch, all inside one arena.
//!
//! ```
//! use edgecl::{Active, Kernels, LayerDims, Learner, LearnerConfig, Optimizer, Plan};
//!
//! let config = LearnerConfig {
//!     dims: LayerDims::new(&[4, 8, 3]).unwrap(),
//!     optimizer: Optimizer::adam(0.01),
//!     batch_size: 2,
//!     max_tasks: 1,
//!     seed: 1,
//!     kernels: Kernels::Reference,
//!     penalty: None,
//!     packnet: None,
//!     generator: None,
//! };
//! let mut arena = vec![0u8; Plan::new(&config).unwrap().total()];
//! let mut learner = Learner::new(&config, &mut arena).unwrap();
//! let loss = learner.train_step(&[0.1, 0.2, 0.3, 0.4, 1.0, 0.0, 0.0, 1.0], &[0, 2], Active::All).unwrap();
//! assert!(loss > 0.0);
//! ```

use crate::learner::consolidation::{self, Consolidation};
use crate::learner::dims::{best_class, check_input, check_labels};
pub use crate::learner::dims::{Active, ClassRange};
use crate::learner::optim;
use crate::learner::packnet::{self, PackState};
use crate::learner::replay::Generator;
use crate::learner::rng::Rng;
use crate::learner::state::StateVisitor;
use crate::learner::vae::Noise;
use crate::learner::{layout, FisherLabels, Method};
use crate::learner::{math, network, Arena, Error, LearnerConfig, Plan};

/// Mixed into the seed for the stream of labels the sampled Fisher draws.
const FISHER_STREAM: u64 = 0x5EED_F15E_u64;

/// Mixed into the seed for the stream the replay generator samples from.
const REPLAY_STREAM: u64 = 0x5EED_0EB1_A7ED_u64;

/// Mixed into the seed for the VAE's weight initialisation.
const VAE_STREAM: u64 = 0x0FAE_1A7E_u64;

/// Draws an index from the softmax of `z` with `rng`.
fn sample_softmax(z: &[f32], rng: &mut Rng) -> u16 {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = z.iter().map(|&v| crate::learner::math::exp(v - max)).sum();
    let mut u = rng.uniform() * sum;
    for (j, &v) in z.iter().enumerate() {
        u -= crate::learner::math::exp(v - max);
        if u < 0.0 {
            return j as u16;
        }
    }
    (z.len() - 1) as u16
}

/// A trainable dense network whose whole state lives in a caller-given arena.
///
/// Built once by [`Learner::new`]; after that no call allocates.
#[derive(Debug)]
pub struct Learner<'a> {
    config: LearnerConfig,
    plan: Plan,
    arena_used: usize,
    weights: &'a mut [f32],
    biases: &'a mut [f32],
    grads: &'a mut [f32],
    opt_state: &'a mut [f32],
    acts: &'a mut [f32],
    deltas: &'a mut [f32],
    pack: &'a mut [f32],
    cons: Option<Consolidation<'a>>,
    packnet: Option<PackState<'a>>,
    generator: Option<Generator<'a>>,
    /// Distillation: the head's parameters at the last commit, one batch of its logits,
    /// and the classes it had learned (1 or 0 each); `teacher_ready` once a commit has
    /// filled them.
    teacher: Option<(&'a mut [f32], &'a mut [f32], &'a mut [u8])>,
    teacher_ready: bool,
    /// Set by [`Learner::train_step_replay`] for one step: the first replayed row and
    /// the temperature.
    distill: Option<(usize, f32)>,
    rng: Rng,
    replay_rng: Rng,
    steps: u32,
}

impl<'a> Learner<'a> {
    /// Visits every part of the persistent state as bytes, in the checkpoint's order
    /// ([`crate::learner::checkpoint`]); scratch is not visited.
    pub(crate) fn state_parts(&mut self, f: &mut StateVisitor<'_>) -> Result<(), Error> {
        use crate::learner::state::Part;
        use bytemuck::cast_slice_mut as bytes;
        f(Part::Plain, bytes(&mut *self.weights))?;
        f(Part::Plain, bytes(&mut *self.biases))?;
        f(Part::Plain, bytes(&mut *self.opt_state))?;
        if let Some(c) = &mut self.cons {
            c.state_parts(f)?;
        }
        if let Some(p) = &mut self.packnet {
            f(Part::Plain, p.owners.bytes_mut())?;
        }
        if let Some(g) = &mut self.generator {
            g.state_parts(f)?;
        }
        if let Some((params, _, known)) = &mut self.teacher {
            f(Part::Plain, bytes(params))?;
            f(Part::Plain, known)?;
        }
        Ok(())
    }

    /// The scalars a checkpoint carries besides the parts.
    pub(crate) fn meta(&self, task: u32, state: usize) -> crate::learner::state::Meta {
        crate::learner::state::Meta {
            config_hash: crate::learner::state::config_hash(&self.config),
            state_bytes: u32::try_from(state).unwrap_or(u32::MAX),
            task,
            steps: self.steps,
            teacher_ready: self.teacher_ready,
            rng: self.rng.state(),
            replay_rng: self.replay_rng.state(),
            penalty: self.cons.as_ref().map(|c| (c.samples, c.tasks)),
            packnet: self.packnet.as_ref().map(|p| (p.packed as u32, p.retraining)),
            reservoir_seen: match &self.generator {
                Some(Generator::Buffer(b)) => Some(b.seen),
                _ => None,
            },
            vae_steps: match &self.generator {
                Some(Generator::Vae(v)) => Some(v.steps),
                _ => None,
            },
            caller: 0,
        }
    }

    /// Sets the scalars of a checked checkpoint.
    pub(crate) fn set_meta(&mut self, m: &crate::learner::state::Meta, rng: Rng, replay_rng: Rng) {
        self.steps = m.steps;
        self.teacher_ready = m.teacher_ready;
        self.rng = rng;
        self.replay_rng = replay_rng;
        if let (Some(c), Some((samples, tasks))) = (&mut self.cons, m.penalty) {
            (c.samples, c.tasks) = (samples, tasks);
        }
        if let (Some(p), Some((packed, retraining))) = (&mut self.packnet, m.packnet) {
            (p.packed, p.retraining) = (packed as usize, retraining);
        }
        match (&mut self.generator, m.reservoir_seen, m.vae_steps) {
            (Some(Generator::Buffer(b)), Some(seen), _) => b.seen = seen,
            (Some(Generator::Vae(v)), _, Some(steps)) => v.steps = steps,
            _ => {}
        }
    }

    /// Plans `config`, checks the plan against `arena.len()`, carves every component and
    /// initialises the weights from `config.seed` (PyTorch's `Linear` init:
    /// `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` for weights and biases).
    pub fn new(config: &LearnerConfig, arena: &'a mut [u8]) -> Result<Self, Error> {
        let plan = Plan::new(config)?;
        plan.check(arena.len())?;
        let mut arena = Arena::new(arena);
        let layout::Parts {
            weights,
            biases,
            grads,
            opt_state,
            acts,
            deltas,
            pack,
            cons,
            mut generator,
            teacher,
            packnet,
        } = layout::learner(config, &mut arena)?;
        match &mut generator {
            Some(Generator::Gaussian(g)) => g.mark_free(),
            Some(Generator::Vae(v)) => v.init(&mut Rng::new(config.seed ^ VAE_STREAM)),
            _ => {}
        }
        let mut learner = Learner {
            config: *config,
            plan,
            arena_used: arena.used(),
            weights,
            biases,
            grads,
            opt_state,
            acts,
            deltas,
            pack,
            cons,
            packnet,
            generator,
            teacher,
            teacher_ready: false,
            distill: None,
            rng: Rng::new(config.seed ^ FISHER_STREAM),
            replay_rng: Rng::new(config.seed ^ REPLAY_STREAM),
            steps: 0,
        };
        learner.init_weights();
        if let Some(c) = &mut learner.cons {
            // SI measures each parameter's travel from here.
            c.set_anchors(0, learner.weights, learner.biases);
        }
        Ok(learner)
    }

    fn init_weights(&mut self) {
        let d = self.config.dims;
        let mut rng = Rng::new(self.config.seed);
        for l in 0..d.layers() {
            let (d_in, d_out) = d.layer(l);
            let bound = 1.0 / crate::learner::math::sqrt(d_in as f32);
            let w = &mut self.weights[d.weight_offset(l)..d.weight_offset(l) + d_in * d_out];
            w.iter_mut().for_each(|v| *v = rng.uniform_range(-bound, bound));
            let b = &mut self.biases[d.bias_offset(l)..d.bias_offset(l) + d_out];
            b.iter_mut().for_each(|v| *v = rng.uniform_range(-bound, bound));
        }
    }

    /// The config this learner was built from.
    pub fn config(&self) -> &LearnerConfig {
        &self.config
    }

    /// The plan it was carved by.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Bytes of the arena actually carved (at most the plan's total).
    pub fn arena_used(&self) -> usize {
        self.arena_used
    }

    /// Optimizer updates applied so far.
    pub fn steps(&self) -> u32 {
        self.steps
    }

    /// All weights, layer after layer (`W_l` is `d_{l+1} x d_l`, row-major).
    pub fn weights(&self) -> &[f32] {
        self.weights
    }

    /// All biases, layer after layer.
    pub fn biases(&self) -> &[f32] {
        self.biases
    }

    /// Mutable weights and biases (for loading a trained head).
    pub fn params_mut(&mut self) -> (&mut [f32], &mut [f32]) {
        (self.weights, self.biases)
    }

    /// Gradients of the last [`Learner::compute_gradients`] or training step: weights,
    /// then biases.
    pub fn gradients(&self) -> &[f32] {
        self.grads
    }

    /// Clears the optimizer state (momentum, Adam moments and step count).
    pub fn reset_optimizer(&mut self) {
        self.opt_state.fill(0.0);
        self.steps = 0;
    }

    /// Number of samples in `x`, after checking its shape and values.
    fn check_input(&self, x: &[f32], max: usize) -> Result<usize, Error> {
        check_input(x, self.config.dims.input(), max)
    }

    fn check_batch(&self, x: &[f32], labels: &[u16], active: &Active<'_>) -> Result<usize, Error> {
        let n = self.check_input(x, self.config.batch_size)?;
        check_labels(labels, n, active, self.config.dims.classes())?;
        Ok(n)
    }

    fn forward(&mut self, x: &[f32], n: usize) -> Result<(), Error> {
        let c = &self.config;
        network::forward(
            c.kernels,
            &c.dims,
            self.weights,
            self.biases,
            x,
            n,
            c.batch_size,
            self.acts,
            self.pack,
        )
    }

    /// Forward and backward over one batch: fills [`Learner::gradients`] and returns the
    /// mean loss, without changing any weight. A NaN or infinite loss is
    /// [`Error::Diverged`].
    ///
    /// `x` is `n x input` row-major with `1 <= n <= batch_size`; `labels` has `n` entries.
    pub fn compute_gradients(&mut self, x: &[f32], labels: &[u16], active: Active<'_>) -> Result<f32, Error> {
        let n = self.check_batch(x, labels, &active)?;
        self.forward(x, n)?;
        let c = &self.config;
        let classes = c.dims.classes();
        let logits_at = network::act_offset(&c.dims, c.batch_size, c.dims.layers() - 1);
        let logits = &self.acts[logits_at..logits_at + n * classes];
        let loss = network::softmax_xent(logits, labels, &active, classes, &mut self.deltas[..n * classes]);
        if !loss.is_finite() {
            return Err(Error::Diverged);
        }
        if let (Some((first, t)), Some((_, teacher, learned))) = (self.distill, &self.teacher) {
            // Replayed rows: the gradient of T^2 KL(q_T || p_T), T (p_T - q_T) / n, in place
            // of the label's: p_T the student's softened outputs over the row's active
            // classes, q_T the teacher's over the classes it had learned at its commit
            // (zero on the others, so replay also teaches the new classes' outputs to stay
            // low on old samples). A row whose active classes hold none the teacher learned
            // keeps its label's gradient.
            let inv_n = 1.0 / n as f32;
            let known = |k: usize| learned[k] != 0;
            for i in first..n {
                let (lo, hi) = active.range(i, classes);
                let z = &logits[i * classes..(i + 1) * classes];
                let zt = &teacher[(i - first) * classes..(i - first + 1) * classes];
                let max_t = (lo..hi)
                    .filter(|&k| known(k))
                    .map(|k| zt[k])
                    .fold(f32::NEG_INFINITY, f32::max);
                if max_t == f32::NEG_INFINITY {
                    continue;
                }
                let max_s = z[lo..hi].iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let sum_s: f32 = z[lo..hi].iter().map(|&v| math::exp((v - max_s) / t)).sum();
                let sum_t: f32 = (lo..hi)
                    .filter(|&k| known(k))
                    .map(|k| math::exp((zt[k] - max_t) / t))
                    .sum();
                let d = &mut self.deltas[i * classes..(i + 1) * classes];
                d.fill(0.0);
                for k in lo..hi {
                    let p = math::exp((z[k] - max_s) / t) / sum_s;
                    let q = if known(k) {
                        math::exp((zt[k] - max_t) / t) / sum_t
                    } else {
                        0.0
                    };
                    d[k] = t * (p - q) * inv_n;
                }
            }
        }
        self.backward(x, n)?;
        if let Some(cons) = &self.cons {
            if cons.used_slots() > 0 {
                cons.add_penalty_gradient(self.weights, self.biases, self.grads);
            }
        }
        if let Some(index) = self.grads.iter().position(|g| !g.is_finite()) {
            return Err(Error::NonFiniteGradient { index });
        }
        Ok(loss)
    }

    fn backward(&mut self, x: &[f32], n: usize) -> Result<(), Error> {
        let c = &self.config;
        network::backward(
            c.kernels,
            &c.dims,
            self.weights,
            x,
            n,
            c.batch_size,
            self.acts,
            self.grads,
            self.deltas,
            self.pack,
        )
    }

    /// One optimizer update on one batch; returns the batch's mean data loss before the
    /// update. With a penalty, the gradient is the data loss's plus the penalty's
    /// ([`Learner::penalty`]); a non-finite gradient refuses the update and changes
    /// nothing. SI's path integral is accumulated here.
    ///
    /// With PackNet, only the weights the current phase may change learn (free ones while
    /// a task trains, the task's own after [`Learner::packnet_prune`]; biases with the
    /// first task only): the others' gradients and first moments are zeroed, so neither
    /// momentum nor Adam moves them.
    pub fn train_step(&mut self, x: &[f32], labels: &[u16], active: Active<'_>) -> Result<f32, Error> {
        if let Some(p) = &self.packnet {
            if p.packed >= p.max_tasks {
                return Err(Error::TasksExhausted { max: p.max_tasks });
            }
            if !p.retraining {
                let d = self.config.dims;
                if let Some(layer) = (0..d.layers()).find(|&l| {
                    let at = d.weight_offset(l);
                    let (i, o) = d.layer(l);
                    (at..at + i * o).all(|w| p.owners.get(w) != 0)
                }) {
                    return Err(Error::NoFreeWeights {
                        task: p.current(),
                        layer,
                    });
                }
            }
        }
        let loss = self.compute_gradients(x, labels, active)?;
        self.freeze_owned();
        let si = matches!(&self.cons, Some(c) if matches!(c.config.method, Method::Si { .. }));
        if si {
            self.path_integral(1.0);
        }
        self.apply_gradients();
        if si {
            self.path_integral(-1.0);
        }
        Ok(loss)
    }

    /// SI: `omega += sign * g * theta`; called with +1 before an update and -1 after it,
    /// it adds `-g * (theta_after - theta_before)` without a copy of the parameters.
    fn path_integral(&mut self, sign: f32) {
        if let Some(c) = &mut self.cons {
            consolidation::path_integral(c.acc, self.grads, self.weights.iter().chain(self.biases.iter()), sign);
        }
    }

    /// Adds one labelled sample's contribution to the importance being estimated for the
    /// current task: its squared log-likelihood gradient (EWC, online EWC; with the true
    /// label or one drawn from the model's prediction, as configured) or the absolute
    /// gradient of the squared L2 norm of its active logits (MAS; the label is then only
    /// checked, not used). SI needs no samples: for SI this does nothing. A non-finite
    /// gradient is refused and adds nothing.
    pub fn accumulate_importance(&mut self, x: &[f32], label: u16, active: Active<'_>) -> Result<(), Error> {
        let method = match &self.cons {
            None => return Err(Error::NoPenalty),
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
        if let Some(c) = &mut self.cons {
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
    pub fn consolidate(&mut self) -> Result<(), Error> {
        match &mut self.cons {
            None => Err(Error::NoPenalty),
            Some(c) => c.consolidate(self.weights, self.biases),
        }
    }

    /// The penalty `lambda/2 * sum b_i (theta_i - theta*_i)^2` at the current parameters
    /// (0 before the first consolidation or without a penalty).
    pub fn penalty(&self) -> f64 {
        self.cons.as_ref().map_or(0.0, |c| c.penalty(self.weights, self.biases))
    }

    /// Stored importance of parameter `i` (weights, then biases) in `slot` (0 unless EWC),
    /// as the penalty uses it (dequantised).
    pub fn importance(&self, slot: usize, i: usize) -> Option<f32> {
        let c = self.cons.as_ref()?;
        (slot < c.slots && i < c.params).then(|| c.importance(slot, i))
    }

    /// Stored anchor of parameter `i` in `slot`.
    pub fn anchor(&self, slot: usize, i: usize) -> Option<f32> {
        let c = self.cons.as_ref()?;
        (slot < c.slots && i < c.params).then(|| c.anchor(slot, i))
    }

    /// The running importance sums of the current task (EWC, MAS: sums over samples;
    /// SI: the path integral).
    pub fn importance_accumulator(&self) -> Option<&[f32]> {
        self.cons.as_ref().map(|c| &*c.acc)
    }

    /// Tasks consolidated so far.
    pub fn consolidated_tasks(&self) -> u32 {
        self.cons.as_ref().map_or(0, |c| c.tasks)
    }

    /// Adds one labelled sample (its input features) to the replay generator: the
    /// Gaussian's statistics of its class, the buffer's reservoir, the VAE's count of the
    /// class (the VAE itself learns in [`Learner::train_generator`]). Checked like a
    /// training sample; nothing changes on error.
    pub fn observe(&mut self, x: &[f32], label: u16) -> Result<(), Error> {
        if self.generator.is_none() {
            return Err(Error::NoGenerator);
        }
        let n = self.check_input(x, 1)?;
        check_labels(&[label], n, &Active::All, self.config.dims.classes())?;
        match &mut self.generator {
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
    pub fn commit_generator(&mut self) -> Result<(), Error> {
        match &mut self.generator {
            Some(Generator::Gaussian(g)) => g.commit(),
            Some(Generator::Vae(v)) => v.commit(),
            Some(Generator::Buffer(_)) => {}
            None => return Err(Error::NoGenerator),
        }
        if let (Some((params, _, known)), Some(g)) = (&mut self.teacher, &self.generator) {
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
    /// ([`Learner::fill_replay`]). With distillation configured and a commit behind it,
    /// those rows learn the committed head's outputs softened by the temperature over
    /// the classes the generator has observed, zero on the row's other active classes
    /// (loss `T^2 * KL`); otherwise this is [`Learner::train_step`]. The loss returned is
    /// the batch's cross-entropy against its labels either way.
    pub fn train_step_replay(
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
        if let Some((params, logits, _)) = &mut self.teacher {
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
    pub fn fill_replay(&mut self, x: &mut [f32], labels: &mut [u16], exclude: ClassRange) -> Result<usize, Error> {
        let width = self.config.dims.input();
        if x.len() != labels.len() * width {
            return Err(Error::InputShape {
                got: x.len(),
                expected: labels.len() * width,
            });
        }
        let g = self.generator.as_mut().ok_or(Error::NoGenerator)?;
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
    pub fn generate(&mut self, class: u16, out: &mut [f32]) -> Result<(), Error> {
        let width = self.config.dims.input();
        if out.is_empty() || !out.len().is_multiple_of(width) {
            return Err(Error::InputShape {
                got: out.len(),
                expected: width * (out.len() / width).max(1),
            });
        }
        let c = class as usize;
        let g = self.generator.as_mut().ok_or(Error::NoGenerator)?;
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
    pub fn train_generator(&mut self, x: &[f32], labels: &[u16]) -> Result<f32, Error> {
        let loss = self.generator_gradients(x, labels, None)?;
        if let Some(Generator::Vae(v)) = &mut self.generator {
            v.apply_gradients();
        }
        Ok(loss)
    }

    /// The VAE's negative ELBO on a batch and its gradient (in the VAE's
    /// [`Vae::gradients`]), without an update: with the reparameterisation noise `eps`
    /// (`n x latent`) when given, else drawn. [`Error::NoGenerator`] unless the generator
    /// is a VAE.
    pub fn generator_gradients(&mut self, x: &[f32], labels: &[u16], eps: Option<&[f32]>) -> Result<f32, Error> {
        let n = self.check_batch(x, labels, &Active::All)?;
        let Some(Generator::Vae(v)) = &mut self.generator else {
            return Err(Error::NoGenerator);
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
        self.generator.as_ref()
    }

    /// The replay generator, mutable (the VAE's parameters, for checks).
    pub fn generator_mut(&mut self) -> Option<&mut Generator<'a>> {
        self.generator.as_mut()
    }

    /// PackNet: zeroes the gradient and the first optimizer moment (momentum, Adam's `m`)
    /// of every parameter the current phase may not change.
    fn freeze_owned(&mut self) {
        let Some(p) = &self.packnet else { return };
        let nw = self.weights.len();
        let params = nw + self.biases.len();
        let moments = if self.config.optimizer.state_vectors() > 0 {
            &mut self.opt_state[..params]
        } else {
            &mut []
        };
        for i in 0..nw {
            if !p.weight_trainable(i) {
                self.grads[i] = 0.0;
                if let Some(m) = moments.get_mut(i) {
                    *m = 0.0;
                }
            }
        }
        if !p.biases_trainable() {
            self.grads[nw..params].fill(0.0);
            if let Some(m) = moments.get_mut(nw..params) {
                m.fill(0.0);
            }
        }
    }

    /// PackNet, after the current task has trained: in every layer, keeps the
    /// largest-magnitude `1 - prune_ratio` of the free weights for this task, zeroes the
    /// others and leaves them free; from now on only this task's weights train (retraining)
    /// until [`Learner::packnet_end_task`]. In the output layer only the rows of `outputs`
    /// (the task's classes) are candidates, so other tasks' classifier rows stay free. Ties
    /// at the threshold go to the lower index. Returns the number of weights kept.
    pub fn packnet_prune(&mut self, outputs: ClassRange) -> Result<usize, Error> {
        let d = self.config.dims;
        let classes = d.classes();
        Active::Classes(outputs).validate(1, classes)?;
        let p = self.packnet.as_ref().ok_or(Error::NoPackNet)?;
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
            let (p, weights) = (self.packnet.as_ref().ok_or(Error::NoPackNet)?, &*self.weights);
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
            let p = self.packnet.as_mut().ok_or(Error::NoPackNet)?;
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
        if let Some(p) = &mut self.packnet {
            p.retraining = true;
        }
        Ok(kept_total)
    }

    /// PackNet: ends the current task (after [`Learner::packnet_prune`] and any
    /// retraining); its weights are frozen from now on.
    pub fn packnet_end_task(&mut self) -> Result<(), Error> {
        let p = self.packnet.as_mut().ok_or(Error::NoPackNet)?;
        if !p.retraining {
            return Err(Error::OutOfOrder("prune the task before ending it"));
        }
        p.retraining = false;
        p.packed += 1;
        Ok(())
    }

    /// PackNet: tasks pruned and ended so far.
    pub fn packnet_tasks(&self) -> usize {
        self.packnet.as_ref().map_or(0, |p| p.packed)
    }

    /// PackNet: the owner task of weight `i` (0: free), `None` without PackNet or past the
    /// weights.
    pub fn packnet_owner(&self, i: usize) -> Option<u8> {
        let p = self.packnet.as_ref()?;
        (i < self.weights.len()).then(|| p.owners.get(i))
    }

    /// PackNet inference for `task` (1-based, at most the tasks ended so far): like
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
        self.masked(task, |l| l.predict_with_confidence(x, active, out, confidence))?
    }

    /// PackNet's logits (`n x classes`) of up to `batch_size` samples for `task`, with only
    /// the weights of tasks `1..=task`, as [`Learner::predict_task`] masks them.
    pub fn logits_task(&mut self, x: &[f32], task: usize) -> Result<&[f32], Error> {
        let n = self.check_input(x, self.config.batch_size)?;
        self.masked(task, |l| l.forward(x, n))??;
        let c = &self.config;
        let at = network::act_offset(&c.dims, c.batch_size, c.dims.layers() - 1);
        Ok(&self.acts[at..at + n * c.dims.classes()])
    }

    /// Runs `f` with only the weights of PackNet tasks `1..=task` (the others are kept in
    /// the gradient buffer meanwhile, and restored after).
    fn masked<R>(&mut self, task: usize, f: impl FnOnce(&mut Self) -> R) -> Result<R, Error> {
        let p = self.packnet.as_ref().ok_or(Error::NoPackNet)?;
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
        if let Some(p) = &self.packnet {
            for (i, (w, g)) in self.weights.iter_mut().zip(self.grads.iter()).enumerate() {
                if !p.used_by(i, task) {
                    *w = *g;
                }
            }
        }
        Ok(result)
    }

    /// Applies the current gradients with the configured optimizer.
    fn apply_gradients(&mut self) {
        self.steps = self.steps.saturating_add(1);
        let nw = self.weights.len();
        let (gw, gb) = self.grads.split_at(nw);
        let params = nw + self.biases.len();
        let (first, second) = self.opt_state.split_at_mut(params.min(self.opt_state.len()));
        let (mw, mb) = first.split_at_mut(nw.min(first.len()));
        let (vw, vb) = second.split_at_mut(nw.min(second.len()));
        let o = self.config.optimizer;
        optim::update(o, self.weights, gw, mw, vw, self.steps);
        optim::update(o, self.biases, gb, mb, vb, self.steps);
    }

    /// Logits (`n x classes`) of up to `batch_size` samples.
    pub fn logits(&mut self, x: &[f32]) -> Result<&[f32], Error> {
        let n = self.check_input(x, self.config.batch_size)?;
        self.forward(x, n)?;
        let c = &self.config;
        let at = network::act_offset(&c.dims, c.batch_size, c.dims.layers() - 1);
        Ok(&self.acts[at..at + n * c.dims.classes()])
    }

    /// The most likely active class of each sample of `x` (any number of samples; they
    /// are run `batch_size` at a time). `out` has one slot per sample.
    pub fn predict(&mut self, x: &[f32], active: Active<'_>, out: &mut [u16]) -> Result<(), Error> {
        self.predict_with_confidence(x, active, out, None)
    }

    /// [`Learner::predict`], and the softmax probability (over the active classes) of
    /// each predicted class in `confidence`, when given (one slot per sample).
    pub fn predict_with_confidence(
        &mut self,
        x: &[f32],
        active: Active<'_>,
        out: &mut [u16],
        mut confidence: Option<&mut [f32]>,
    ) -> Result<(), Error> {
        let c = self.config;
        let width = c.dims.input();
        if x.len() != out.len() * width {
            return Err(Error::InputShape {
                got: x.len(),
                expected: out.len() * width,
            });
        }
        if let Some(conf) = &confidence {
            if conf.len() != out.len() {
                return Err(Error::OutputShape {
                    got: conf.len(),
                    expected: out.len(),
                });
            }
        }
        let classes = c.dims.classes();
        active.validate(out.len(), classes)?;
        if let Some(index) = x.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFiniteInput { index });
        }
        for (chunk, (xs, ys)) in x
            .chunks(c.batch_size * width)
            .zip(out.chunks_mut(c.batch_size))
            .enumerate()
        {
            let logits = self.logits(xs)?;
            for (i, (z, y)) in logits.chunks_exact(classes).zip(ys.iter_mut()).enumerate() {
                let sample = chunk * c.batch_size + i;
                let (lo, hi) = active.range(sample, classes);
                let best = best_class(z, lo, hi);
                *y = best as u16;
                if let Some(conf) = confidence.as_deref_mut() {
                    let sum: f32 = z[lo..hi].iter().map(|&v| crate::learner::math::exp(v - z[best])).sum();
                    conf[sample] = 1.0 / sum;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learner::{Kernels, LayerDims, Optimizer};

    fn config(dims: &[usize], batch: usize, kernels: Kernels, optimizer: Optimizer) -> LearnerConfig {
        LearnerConfig {
            dims: LayerDims::new(dims).unwrap(),
            optimizer,
            batch_size: batch,
            max_tasks: 1,
            seed: 42,
            kernels,
            penalty: None,
            packnet: None,
            generator: None,
        }
    }

    fn inputs(n: usize, seed: u64) -> [f32; 256] {
        let mut r = Rng::new(seed);
        core::array::from_fn(|i| if i < n { r.uniform_range(-1.0, 1.0) } else { 0.0 })
    }

    fn loss_at(cfg: &LearnerConfig, weights: &[f32], biases: &[f32], x: &[f32], y: &[u16], active: Active<'_>) -> f64 {
        let mut buf = [0u8; 16384];
        let mut l = Learner::new(cfg, &mut buf).unwrap();
        l.weights.copy_from_slice(weights);
        l.biases.copy_from_slice(biases);
        l.compute_gradients(x, y, active).unwrap() as f64
    }

    /// Central finite differences of the loss against the analytic gradient of every
    /// weight and bias of every layer (two ReLU layers and the softmax head), with a
    /// masked class range so the masking's gradient is covered too.
    #[test]
    fn every_layer_backward_matches_finite_differences() {
        for kernels in [Kernels::Reference, Kernels::Fast] {
            let cfg = config(&[5, 7, 6, 4], 3, kernels, Optimizer::adam(1e-3));
            let x = inputs(15, 5);
            let x = &x[..15];
            let y = [1u16, 3, 2];
            let ranges = [
                ClassRange { start: 0, end: 2 },
                ClassRange { start: 2, end: 4 },
                ClassRange { start: 1, end: 4 },
            ];
            let active = Active::PerSample(&ranges);
            let mut buf = [0u8; 16384];
            let mut l = Learner::new(&cfg, &mut buf).unwrap();
            l.compute_gradients(x, &y, active).unwrap();
            let grads: [f32; 128] = core::array::from_fn(|i| l.grads.get(i).copied().unwrap_or(0.0));
            let (w0, b0) = (l.weights.to_owned(), l.biases.to_owned());
            let nw = w0.len();
            let eps = 1e-2f32;
            for i in 0..nw + b0.len() {
                let (mut wp, mut bp) = (w0.clone(), b0.clone());
                let (mut wm, mut bm) = (w0.clone(), b0.clone());
                if i < nw {
                    wp[i] += eps;
                    wm[i] -= eps;
                } else {
                    bp[i - nw] += eps;
                    bm[i - nw] -= eps;
                }
                let numeric = (loss_at(&cfg, &wp, &bp, x, &y, active) - loss_at(&cfg, &wm, &bm, x, &y, active))
                    / (2.0 * eps as f64);
                let analytic = grads[i] as f64;
                assert!(
                    (numeric - analytic).abs() < 2e-3 + 2e-2 * analytic.abs(),
                    "{kernels:?} param {i}: numeric {numeric} analytic {analytic}"
                );
            }
        }
    }

    #[test]
    fn reference_and_fast_learners_follow_the_same_trajectory() {
        let mut bufs = ([0u8; 16384], [0u8; 16384]);
        let opt = Optimizer::Sgd { lr: 0.1, momentum: 0.9 };
        let mut a = Learner::new(&config(&[6, 9, 3], 4, Kernels::Reference, opt), &mut bufs.0).unwrap();
        let mut b = Learner::new(&config(&[6, 9, 3], 4, Kernels::Fast, opt), &mut bufs.1).unwrap();
        for s in 0..50 {
            let x = inputs(24, s);
            let y = [(s % 3) as u16, 0, 1, 2];
            let la = a.train_step(&x[..24], &y, Active::All).unwrap();
            let lb = b.train_step(&x[..24], &y, Active::All).unwrap();
            assert!((la - lb).abs() < 1e-4, "step {s}: {la} vs {lb}");
        }
        for (wa, wb) in a.weights().iter().zip(b.weights()) {
            assert!((wa - wb).abs() < 1e-4);
        }
    }

    #[test]
    fn training_fits_a_separable_problem_and_predict_masks_classes() {
        let cfg = config(&[2, 16, 3], 8, Kernels::Reference, Optimizer::adam(0.05));
        let mut buf = [0u8; 8192];
        let mut l = Learner::new(&cfg, &mut buf).unwrap();
        let x = [
            1.0f32, 0.0, 0.0, 1.0, -1.0, -1.0, 0.9, 0.1, 0.1, 0.9, -0.8, -1.0, 1.0, 0.2, 0.0, 0.8,
        ];
        let y = [0u16, 1, 2, 0, 1, 2, 0, 1];
        let first = l.train_step(&x, &y, Active::All).unwrap();
        let mut last = first;
        for _ in 0..200 {
            last = l.train_step(&x, &y, Active::All).unwrap();
        }
        assert!(last < first * 0.1, "loss {first} -> {last}");
        let mut out = [9u16; 8];
        l.predict(&x, Active::All, &mut out).unwrap();
        assert_eq!(out, y);
        l.predict(&x, Active::Classes(ClassRange { start: 1, end: 3 }), &mut out)
            .unwrap();
        assert!(out.iter().all(|&c| c == 1 || c == 2));
    }

    #[test]
    fn bad_inputs_are_errors_that_change_nothing() {
        let cfg = config(&[2, 4, 3], 2, Kernels::Reference, Optimizer::adam(0.01));
        let mut buf = [0u8; 4096];
        let mut l = Learner::new(&cfg, &mut buf).unwrap();
        let before = l.weights().to_owned();
        let all = Active::All;
        assert_eq!(
            l.train_step(&[0.0; 3], &[0], all),
            Err(Error::InputShape { got: 3, expected: 2 })
        );
        assert_eq!(
            l.train_step(&[0.0; 6], &[0, 0, 0], all),
            Err(Error::BatchSize { got: 3, max: 2 })
        );
        assert_eq!(
            l.train_step(&[0.0, f32::NAN], &[0], all),
            Err(Error::NonFiniteInput { index: 1 })
        );
        assert_eq!(
            l.train_step(&[0.0, 1.0], &[3], all),
            Err(Error::LabelOutOfRange { label: 3, classes: 3 })
        );
        let task = Active::Classes(ClassRange { start: 0, end: 2 });
        assert_eq!(
            l.train_step(&[0.0, 1.0], &[2], task),
            Err(Error::LabelInactive { label: 2 })
        );
        let bad = Active::Classes(ClassRange { start: 2, end: 5 });
        assert!(matches!(
            l.train_step(&[0.0, 1.0], &[2], bad),
            Err(Error::BadActiveClasses { .. })
        ));
        assert_eq!(l.weights(), &before[..]);
        assert_eq!(l.steps(), 0);
        let mut out = [7u16; 2];
        assert_eq!(
            l.predict(&[0.0, 1.0, 0.0, f32::INFINITY], all, &mut out),
            Err(Error::NonFiniteInput { index: 3 })
        );
        assert_eq!(out, [7, 7], "predict wrote before finding the bad value");
    }

    #[test]
    fn a_diverging_step_is_an_error_and_is_not_applied() {
        let cfg = config(
            &[2, 4, 3],
            1,
            Kernels::Reference,
            Optimizer::Sgd { lr: 0.1, momentum: 0.0 },
        );
        let mut buf = [0u8; 4096];
        let mut l = Learner::new(&cfg, &mut buf).unwrap();
        l.params_mut().0.fill(1e30);
        let before = l.weights().to_owned();
        assert_eq!(l.train_step(&[1e10, 1e10], &[0], Active::All), Err(Error::Diverged));
        assert_eq!(l.weights(), &before[..]);
        assert_eq!(l.steps(), 0);
    }

    #[test]
    fn an_arena_one_byte_short_is_refused_with_the_shortfall() {
        let cfg = config(&[8, 8, 2], 4, Kernels::Fast, Optimizer::adam(0.01));
        let total = Plan::new(&cfg).unwrap().total();
        let mut buf = [0u8; 4096];
        assert!(Learner::new(&cfg, &mut buf[..total]).is_ok());
        match Learner::new(&cfg, &mut buf[..total - 1]) {
            Err(Error::OverBudget { missing: 1, .. }) => {}
            other => panic!("{other:?}"),
        }
    }
}

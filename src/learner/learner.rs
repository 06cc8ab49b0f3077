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

use crate::learner::dims::{best_class, check_input, check_labels};
mod persist;
#[cfg(test)]
mod tests;
mod with_packnet;
mod with_penalty;
mod with_replay;
pub use with_packnet::Packing;
pub use with_penalty::Penalised;
pub use with_replay::Replaying;

use crate::learner::defence::Head;
pub use crate::learner::dims::{Active, ClassRange};
use crate::learner::layout::Defences;
use crate::learner::optim;
use crate::learner::packnet::{self, PackState};
use crate::learner::replay::{Generator, Teacher};
use crate::learner::rng::Rng;
use crate::learner::state::StateVisitor;
use crate::learner::vae::Noise;
use crate::learner::{layout, FisherLabels, Method};
use crate::learner::{math, network, Arena, Error, LearnerConfig, Plan};

/// Mixed into the seed for the stream of labels the sampled Fisher draws.
const FISHER_STREAM: u64 = 0x5EED_F15E_u64;

/// Mixed into the seed for the stream the replay generator samples from.
const REPLAY_STREAM: u64 = 0x5EED_0EB1_A7ED_u64;

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
    /// The defences present, in registry order ([`crate::learner::layout`]).
    defences: Defences<'a>,
    /// The distillation teacher holds a commit.
    teacher_ready: bool,
    /// Set by [`Replaying::train_step`] for one step: the first replayed row and
    /// the temperature.
    distill: Option<(usize, f32)>,
    rng: Rng,
    replay_rng: Rng,
    steps: u32,
}

impl<'a> Learner<'a> {
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
            defences,
        } = layout::learner(config, &mut arena)?;
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
            defences,
            teacher_ready: false,
            distill: None,
            rng: Rng::new(config.seed ^ FISHER_STREAM),
            replay_rng: Rng::new(config.seed ^ REPLAY_STREAM),
            steps: 0,
        };
        learner.init_weights();
        let shape = layout::head_shape(config);
        let (defences, mut head) = learner.split();
        defences.for_each(|d| d.init(&shape, &mut head));
        Ok(learner)
    }

    /// The defences, and a view of the head their hooks act on.
    fn split(&mut self) -> (&mut Defences<'a>, Head<'_>) {
        let head = Head {
            optimizer: self.config.optimizer,
            weights: &mut *self.weights,
            biases: &mut *self.biases,
            grads: &mut *self.grads,
            opt_state: &mut *self.opt_state,
        };
        (&mut self.defences, head)
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
        if let (Some((first, t)), Some(Teacher(_, teacher, learned))) = (self.distill, &self.defences.teacher) {
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
        let (defences, mut head) = self.split();
        defences.for_each(|d| d.on_gradients(&mut head));
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
    /// a task trains, the task's own after [`Packing::prune`]; biases with the
    /// first task only): the others' gradients and first moments are zeroed, so neither
    /// momentum nor Adam moves them.
    pub fn train_step(&mut self, x: &[f32], labels: &[u16], active: Active<'_>) -> Result<f32, Error> {
        let dims = self.config.dims;
        self.defences.each(|d| d.before_step(&dims))?;
        let loss = self.compute_gradients(x, labels, active)?;
        let (defences, mut head) = self.split();
        defences.for_each(|d| d.mask_gradients(&mut head));
        defences.for_each(|d| d.before_update(&mut head));
        self.apply_gradients();
        let (defences, mut head) = self.split();
        defences.for_each(|d| d.after_update(&mut head));
        Ok(loss)
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

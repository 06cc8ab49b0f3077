//! Replay generators: what the device keeps of old classes, in fixed bytes of the arena,
//! to replay them while new classes are learned.
//!
//! Three kinds, all class-conditional and all sized by the plan whatever the number of
//! tasks ([`GeneratorKind`]):
//! - [`Gaussian`]: per class a mean and a low-rank-plus-diagonal covariance of the
//!   features. The classes being observed live in f32 *working slots*: Welford's running
//!   mean and sum of squared deviations (Welford 1962), and the leading principal
//!   directions of the deviations by candid covariance-free incremental PCA (CCIPCA, Weng,
//!   Zhang & Hwang 2003), one pass, no covariance matrix. The commit
//!   ([`Replaying::commit`](crate::learner::learner::Replaying::commit)) compresses each
//!   slot into the class's compact record: mean and residual standard deviation as f16,
//!   the `rank` factors as i8 with one f32 scale each. A sample is
//!   `mean + F z + sd * e` with `z`, `e` standard normal from the core's seeded generator.
//!   With rank 0 it is the diagonal Gaussian.
//! - [`Reservoir`]: a reservoir sample (Vitter's algorithm R) of the observed inputs,
//!   each row i8 with one f32 scale: the plain reference point every generator is
//!   compared against at the same bytes.
//! - [`crate::learner::vae::Vae`]: a conditional variational autoencoder trained on the
//!   device (deep generative replay, Shin et al. 2017).

use crate::learner::arena::Space;
use crate::learner::defence::{Carve, Defence, Head, HeadShape};
use crate::learner::state::{Part, StateVisitor};
mod buffer;

/// Mixed into the learner's seed for the VAE's weight initialisation.
const VAE_STREAM: u64 = 0x0FAE_1A7E_u64;

impl<'a> Carve<'a> for Generator<'a> {
    type Config = GeneratorConfig;

    fn layout(config: &GeneratorConfig, head: &HeadShape, space: &mut impl Space<'a>) -> Result<Self, Error> {
        layout(config, &head.dims, head.batch, space)
    }
}

impl Defence for Generator<'_> {
    /// Every Gaussian working slot starts free; the VAE's weights start at their init.
    fn init(&mut self, shape: &HeadShape, _head: &mut Head<'_>) {
        match self {
            Generator::Gaussian(g) => g.mark_free(),
            Generator::Vae(v) => v.init(&mut Rng::new(shape.seed ^ VAE_STREAM)),
            Generator::Buffer(_) => {}
        }
    }

    fn visit_state(&mut self, f: &mut StateVisitor<'_>) -> Result<(), Error> {
        self.state_parts(f)
    }
}

/// Distillation's teacher: the head's parameters at the last commit and the classes it
/// had learned are kept; its logits are scratch.
impl<'a> Carve<'a> for Teacher<'a> {
    type Config = f32;

    fn layout(_temperature: &f32, head: &HeadShape, space: &mut impl Space<'a>) -> Result<Self, Error> {
        teacher_layout(&head.dims, head.batch, space)
    }
}

impl Defence for Teacher<'_> {
    fn visit_state(&mut self, f: &mut StateVisitor<'_>) -> Result<(), Error> {
        f(Part::Plain, bytemuck::cast_slice_mut(&mut *self.0))?;
        f(Part::Plain, self.2)
    }
}

use crate::learner::arena::{mul, OVERFLOW};
use crate::learner::math;
use crate::learner::rng::Rng;
use crate::learner::vae::{Vae, VaeConfig, VaeSizes};
use crate::learner::Error;
use crate::learner::{names, LayerDims};
pub use buffer::Reservoir;
use half::f16;

/// Most principal directions a Gaussian generator keeps per class.
pub const MAX_RANK: usize = 16;

/// CCIPCA's amnesic parameter: how much more the newest samples weigh than the mean of
/// the older ones (2 is the value Weng et al. recommend; it forgets the first samples'
/// deviations, measured against a mean that was still moving).
const AMNESIA: f32 = 2.0;

/// Marks a free working slot.
pub(crate) const FREE: u16 = u16::MAX;

/// What the generator keeps.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum GeneratorKind {
    /// Class-conditional Gaussian with `rank` principal directions per class (0: diagonal)
    /// and `slots` classes observed at once in f32 before each commit
    /// ([`Replaying::commit`](crate::learner::learner::Replaying::commit)).
    Gaussian {
        /// Principal directions per class, at most [`MAX_RANK`].
        rank: usize,
        /// Classes that can be observed between two commits (a task's classes).
        slots: usize,
    },
    /// Reservoir of `capacity` observed inputs, i8 with a scale per row.
    Buffer {
        /// Rows kept.
        capacity: usize,
    },
    /// Conditional VAE trained with the head.
    Vae(VaeConfig),
}

/// The generator's shape.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct GeneratorConfig {
    /// Classes it can keep (the head's outputs).
    pub classes: usize,
    /// What it keeps of them.
    pub kind: GeneratorKind,
    /// Distillation (Hinton et al. 2015), with this temperature: replayed samples are
    /// learned from a copy of the head taken at each commit, its softened outputs over
    /// the classes observed so far, instead of their labels (DGR+distill in van de Ven &
    /// Tolias 2019). The copy costs the head's parameters again.
    pub distill: Option<f32>,
}

impl GeneratorConfig {
    /// A diagonal Gaussian with a working slot per class (the simplest configuration).
    pub fn diagonal(classes: usize) -> Self {
        GeneratorConfig {
            classes,
            kind: GeneratorKind::Gaussian {
                rank: 0,
                slots: classes,
            },
            distill: None,
        }
    }

    /// Checks the parts the plan does not.
    pub fn validate(&self) -> Result<(), Error> {
        if self.classes == 0 || self.classes >= FREE as usize {
            return Err(Error::BadConfig("the generator needs 1 to 65534 classes"));
        }
        if self.distill.is_some_and(|t| !(t.is_finite() && t > 0.0)) {
            return Err(Error::BadConfig(
                "the distillation temperature must be a positive number",
            ));
        }
        match self.kind {
            GeneratorKind::Gaussian { rank, slots } => {
                if rank > MAX_RANK {
                    return Err(Error::BadConfig(
                        "a Gaussian generator keeps at most 16 directions per class",
                    ));
                }
                if slots == 0 || slots > self.classes {
                    return Err(Error::BadConfig(
                        "a Gaussian generator needs 1 to `classes` working slots",
                    ));
                }
            }
            GeneratorKind::Buffer { capacity } => {
                if capacity == 0 {
                    return Err(Error::BadConfig("a replay buffer needs at least one row"));
                }
            }
            GeneratorKind::Vae(v) => v.validate()?,
        }
        Ok(())
    }
}

/// A configured generator over its slices of the arena.
// One per learner and the core has no heap to box into: the VAE's slice handles make it
// the largest variant, a few hundred bytes of the learner struct.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Generator<'a> {
    /// Low-rank-plus-diagonal Gaussian per class.
    Gaussian(Gaussian<'a>),
    /// Reservoir of quantised inputs.
    Buffer(Reservoir<'a>),
    /// Conditional VAE.
    Vae(Vae<'a>),
}

/// The generator's part of the layout ([`crate::learner::layout`]): its per-class
/// counts, then the Gaussian's statistics and working slots, the buffer's rows, or the
/// VAE's parameters, moments, replay decoder and one batch's scratch. The caller
/// initialises what needs it once carved (the Gaussian's free slots, the VAE's weights).
pub(crate) fn layout<'a>(
    g: &GeneratorConfig,
    d: &LayerDims,
    batch: usize,
    space: &mut impl Space<'a>,
) -> Result<Generator<'a>, Error> {
    let counts = space.take(names::GENERATOR_COUNTS, g.classes)?;
    let f = d.input();
    let stats = mul(g.classes, f)?;
    Ok(match g.kind {
        GeneratorKind::Gaussian { rank, slots } => {
            let words = Gaussian::slot_words(f, rank).ok_or(OVERFLOW)?;
            let means = space.take(names::GENERATOR_MEANS, stats)?;
            let spreads = space.take(names::GENERATOR_SPREADS, stats)?;
            let (factors, scales): (&mut [i8], &mut [f32]) = if rank > 0 {
                (
                    space.take(names::GENERATOR_FACTORS, mul(stats, rank)?)?,
                    space.take(names::GENERATOR_SCALES, mul(g.classes, rank)?)?,
                )
            } else {
                (&mut [], &mut [])
            };
            Generator::Gaussian(Gaussian {
                counts,
                means,
                spreads,
                factors,
                scales,
                slot_class: space.take(names::GENERATOR_SLOT_CLASSES, slots)?,
                work: space.take(names::GENERATOR_SLOTS, mul(slots, words)?)?,
                scratch: space.take(names::GENERATOR_SCRATCH, f)?,
                features: f,
                rank,
            })
        }
        GeneratorKind::Buffer { capacity } => Generator::Buffer(Reservoir {
            counts,
            rows: space.take(names::BUFFER_ROWS, mul(capacity, f)?)?,
            scales: space.take(names::BUFFER_SCALES, capacity)?,
            labels: space.take(names::BUFFER_LABELS, capacity)?,
            seen: 0,
            features: f,
        }),
        GeneratorKind::Vae(v) => {
            let s = VaeSizes::of(&v, f, g.classes, batch)?.ok_or(OVERFLOW)?;
            let acts = names::VAE_ACTIVATIONS;
            let params = space.take(names::VAE_PARAMS, s.params)?;
            let grads = space.take(names::VAE_GRADIENTS, s.params)?;
            // One component for the optimizer's state; Adam's two moments are its halves.
            let state = space.take(names::VAE_OPTIMIZER, mul(v.optimizer.state_vectors(), s.params)?)?;
            let (first, second) = match v.optimizer.state_vectors() {
                2 => state.split_at_mut(s.params.min(state.len())),
                _ => (state, &mut [][..]),
            };
            Generator::Vae(Vae {
                config: v,
                enc: v.encoder(f, g.classes)?,
                dec: v.decoder(f, g.classes)?,
                classes: g.classes,
                features: f,
                batch,
                counts,
                params,
                grads,
                first,
                second,
                replay: space.take(names::VAE_REPLAY, s.decoder)?,
                committed: space.take(names::VAE_COMMITTED, g.classes)?,
                enc_in: space.take(acts, s.enc_in)?,
                enc_acts: space.take(acts, s.enc_acts)?,
                eps: space.take(acts, s.eps)?,
                dec_in: space.take(acts, s.dec_in)?,
                dec_acts: space.take(acts, s.dec_acts)?,
                dz: space.take(acts, s.dec_in)?,
                deltas: space.take(acts, s.deltas)?,
                steps: 0,
            })
        }
    })
}

/// The distillation teacher: the head's parameters at the last commit, one batch of its
/// logits, and the classes it had learned (1 or 0 each).
#[derive(Debug)]
pub(crate) struct Teacher<'a>(pub &'a mut [f32], pub &'a mut [f32], pub &'a mut [u8]);

/// Distillation's part of the layout: a copy of the head's parameters, one batch of its
/// logits and a byte per class it had learned.
pub(crate) fn teacher_layout<'a>(
    d: &LayerDims,
    batch: usize,
    space: &mut impl Space<'a>,
) -> Result<Teacher<'a>, Error> {
    let params = d.checked_params().ok_or(OVERFLOW)?;
    Ok(Teacher(
        space.take(names::TEACHER, params)?,
        space.take(names::TEACHER_LOGITS, mul(batch, d.classes())?)?,
        space.take(names::TEACHER_CLASSES, d.classes())?,
    ))
}

impl Generator<'_> {
    /// Visits the persistent parts as bytes, in a fixed order (for a checkpoint).
    pub(crate) fn state_parts(&mut self, f: &mut crate::learner::state::StateVisitor<'_>) -> Result<(), Error> {
        use crate::learner::state::Part::{BufferLabels, Plain, SlotClasses};
        use bytemuck::cast_slice_mut as bytes;
        match self {
            Generator::Gaussian(g) => {
                f(Plain, bytes(&mut *g.counts))?;
                f(Plain, bytes(&mut *g.means))?;
                f(Plain, bytes(&mut *g.spreads))?;
                f(Plain, bytes(&mut *g.factors))?;
                f(Plain, bytes(&mut *g.scales))?;
                f(SlotClasses, bytes(&mut *g.slot_class))?;
                f(Plain, bytes(&mut *g.work))
            }
            Generator::Buffer(b) => {
                f(Plain, bytes(&mut *b.counts))?;
                f(Plain, bytes(&mut *b.rows))?;
                f(Plain, bytes(&mut *b.scales))?;
                f(BufferLabels, bytes(&mut *b.labels))
            }
            Generator::Vae(v) => {
                f(Plain, bytes(&mut *v.counts))?;
                f(Plain, bytes(&mut *v.committed))?;
                f(Plain, bytes(&mut *v.params))?;
                f(Plain, bytes(&mut *v.first))?;
                f(Plain, bytes(&mut *v.second))?;
                f(Plain, bytes(&mut *v.replay))
            }
        }
    }
}

impl Generator<'_> {
    /// Samples observed of each class.
    pub fn counts(&self) -> &[u32] {
        match self {
            Generator::Gaussian(g) => g.counts,
            Generator::Buffer(b) => b.counts,
            Generator::Vae(v) => v.replayable(),
        }
    }

    /// Samples observed of `class` (0 for a class out of range).
    pub fn count(&self, class: usize) -> u32 {
        self.counts().get(class).copied().unwrap_or(0)
    }

    /// Whether any class outside `exclude` (`start..end`) has been observed.
    pub fn has_class_outside(&self, exclude: (usize, usize)) -> bool {
        let counts = self.counts();
        (0..counts.len()).any(|c| !(exclude.0..exclude.1).contains(&c) && counts[c] > 0)
    }

    /// Draws a class among those observed outside `exclude` (`start..end`), in proportion
    /// to the samples seen of each; `None` when there is none.
    pub fn draw_class(&self, exclude: (usize, usize), rng: &mut Rng) -> Option<usize> {
        let counts = self.counts();
        let weight = |c: usize| {
            if (exclude.0..exclude.1).contains(&c) {
                0u64
            } else {
                u64::from(counts[c])
            }
        };
        let total: u64 = (0..counts.len()).map(weight).sum();
        if total == 0 {
            return None;
        }
        let r = rng.below_u64(total);
        let mut acc = 0u64;
        (0..counts.len()).find(|&c| {
            acc += weight(c);
            r < acc
        })
    }
}

/// Per-class Gaussians over slices of the arena (see the module docs).
#[derive(Debug)]
pub struct Gaussian<'a> {
    pub(crate) counts: &'a mut [u32],
    /// Committed means, f16 bits, `classes x features`.
    pub(crate) means: &'a mut [u16],
    /// Committed residual standard deviations, f16 bits.
    pub(crate) spreads: &'a mut [u16],
    /// Committed factors, `classes x rank x features`, i8.
    pub(crate) factors: &'a mut [i8],
    /// One scale per committed factor, `classes x rank`.
    pub(crate) scales: &'a mut [f32],
    /// The class each working slot holds, [`FREE`] when none.
    pub(crate) slot_class: &'a mut [u16],
    /// Per slot: mean, M2, then `rank` CCIPCA vectors, `features` f32 each.
    pub(crate) work: &'a mut [f32],
    /// One row of `features` f32: the CCIPCA residual, a factor being quantised.
    pub(crate) scratch: &'a mut [f32],
    pub(crate) features: usize,
    pub(crate) rank: usize,
}

/// `sum a_i b_i`.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Symmetric i8 quantisation of `src` into `dst`: levels `round(v / scale)` with
/// `scale = max |v| / 127`, which is returned (0 for an all-zero row).
fn quantise_i8(src: &[f32], dst: &mut [i8]) -> f32 {
    let max = src.iter().fold(0.0f32, |a, &b| a.max(b.abs()));
    let scale = max / 127.0;
    for (o, &v) in dst.iter_mut().zip(src) {
        let level = if scale > 0.0 { libm::roundf(v / scale) } else { 0.0 };
        *o = level.clamp(-127.0, 127.0) as i8;
    }
    scale
}

fn f16_bits(x: f32) -> u16 {
    f16::from_f32(x).to_bits()
}

fn from_f16(bits: u16) -> f32 {
    f16::from_bits(bits).to_f32()
}

impl Gaussian<'_> {
    /// f32 words per working slot: mean, M2 and `rank` directions.
    pub(crate) fn slot_words(features: usize, rank: usize) -> Option<usize> {
        features.checked_mul(rank.checked_add(2)?)
    }

    pub(crate) fn mark_free(&mut self) {
        self.slot_class.fill(FREE);
    }

    fn slot_of(&self, class: usize) -> Option<usize> {
        self.slot_class.iter().position(|&c| c as usize == class)
    }

    fn slot(&mut self, s: usize) -> (&mut [f32], &mut [f32], &mut [f32]) {
        let d = self.features;
        let words = d * (self.rank + 2);
        let work = &mut self.work[s * words..(s + 1) * words];
        let (mean, rest) = work.split_at_mut(d);
        let (m2, vectors) = rest.split_at_mut(d);
        (mean, m2, vectors)
    }

    /// Classes in working slots (observed since the last commit).
    pub fn working(&self) -> usize {
        self.slot_class.iter().filter(|&&c| c != FREE).count()
    }

    /// Takes a free slot for `class`, restoring its committed record when it has one.
    fn open(&mut self, class: usize) -> Result<usize, Error> {
        let slot = self
            .slot_class
            .iter()
            .position(|&c| c == FREE)
            .ok_or(Error::GeneratorSlotsFull {
                slots: self.slot_class.len(),
                class,
            })?;
        let (d, rank) = (self.features, self.rank);
        let n = self.counts[class] as f32;
        if n > 0.0 {
            // Reopen: mean and M2 from the record, direction q as f_q * |f_q| (its norm
            // is the direction's variance, as CCIPCA keeps it).
            let at = class * d;
            let (means, spreads) = (&self.means[at..at + d], &self.spreads[at..at + d]);
            let factors = &self.factors[class * rank * d..(class + 1) * rank * d];
            let scales = &self.scales[class * rank..(class + 1) * rank];
            let words = d * (rank + 2);
            let work = &mut self.work[slot * words..(slot + 1) * words];
            let (mean, rest) = work.split_at_mut(d);
            let (m2, vectors) = rest.split_at_mut(d);
            for j in 0..d {
                mean[j] = from_f16(means[j]);
                let sd = from_f16(spreads[j]);
                m2[j] = n * sd * sd;
            }
            for q in 0..rank {
                let f = &factors[q * d..(q + 1) * d];
                let norm = scales[q] * math::sqrt(f.iter().map(|&v| (v as f32) * (v as f32)).sum());
                for j in 0..d {
                    let fj = scales[q] * f[j] as f32;
                    m2[j] += n * fj * fj;
                    vectors[q * d + j] = fj * norm;
                }
            }
        }
        self.slot_class[slot] = class as u16;
        Ok(slot)
    }

    /// Adds one sample of `class` to its working slot: Welford's update, then one CCIPCA
    /// step on the deviation from the updated mean. A committed class is reopened into a
    /// free slot from its compact record; with every slot taken by other classes it is
    /// [`Error::GeneratorSlotsFull`] and nothing changes. The caller has checked the
    /// sample's width, finiteness and the class range.
    pub(crate) fn observe(&mut self, x: &[f32], class: usize) -> Result<(), Error> {
        let slot = match self.slot_of(class) {
            Some(s) => s,
            None => self.open(class)?,
        };
        let (d, rank) = (self.features, self.rank);
        let n = self.counts[class].saturating_add(1);
        self.counts[class] = n;
        let u = core::mem::take(&mut self.scratch);
        let (mean, m2, vectors) = self.slot(slot);
        let inv = 1.0 / n as f32;
        for (((m, s), &v), r) in mean.iter_mut().zip(m2.iter_mut()).zip(x).zip(u.iter_mut()) {
            let delta = v - *m;
            *m += delta * inv;
            *s += delta * (v - *m);
            *r = v - *m;
        }
        // Direction q starts with the residual of the class's (q + 2)-th sample, then
        // learns from every later one (its own count is n - q - 1).
        for q in 0..rank.min(n.saturating_sub(1) as usize) {
            let v = &mut vectors[q * d..(q + 1) * d];
            let own = (n as usize - q - 1) as f32;
            if own <= 1.0 {
                v.copy_from_slice(u);
                break;
            }
            let norm = math::sqrt(dot(v, v));
            if norm == 0.0 {
                // A direction that started from a zero residual (or a zero record) starts
                // again from this one.
                v.copy_from_slice(u);
            } else {
                let proj = dot(u, v) / norm;
                let keep = ((own - 1.0 - AMNESIA) / own).max(0.0);
                let take = (1.0 + AMNESIA) / own * proj;
                for (vj, &uj) in v.iter_mut().zip(u.iter()) {
                    *vj = keep * *vj + take * uj;
                }
            }
            let nn = dot(v, v);
            if nn > 0.0 {
                let c = dot(u, v) / nn;
                for (uj, &vj) in u.iter_mut().zip(v.iter()) {
                    *uj -= c * vj;
                }
            }
        }
        self.scratch = u;
        Ok(())
    }

    /// Compresses every working slot into its class's compact record (f16 mean and
    /// residual spread, i8 factors with a scale each) and frees the slots.
    pub(crate) fn commit(&mut self) {
        let (d, rank) = (self.features, self.rank);
        for s in 0..self.slot_class.len() {
            let class = self.slot_class[s];
            if class == FREE {
                continue;
            }
            let class = class as usize;
            let n = self.counts[class].max(1) as f32;
            let words = d * (rank + 2);
            let work = &mut self.work[s * words..(s + 1) * words];
            let (mean, rest) = work.split_at_mut(d);
            let (m2, vectors) = rest.split_at_mut(d);
            // Residual variance: the diagonal minus what the factors explain.
            for v in m2.iter_mut() {
                *v /= n;
            }
            for q in 0..rank {
                let v = &vectors[q * d..(q + 1) * d];
                let norm = math::sqrt(dot(v, v));
                let f = &mut self.scratch[..d];
                let root = math::sqrt(norm);
                for (fj, &vj) in f.iter_mut().zip(v) {
                    *fj = if norm > 0.0 { vj / root } else { 0.0 };
                }
                let out = &mut self.factors[(class * rank + q) * d..(class * rank + q + 1) * d];
                let scale = quantise_i8(f, out);
                self.scales[class * rank + q] = scale;
                for (var, o) in m2.iter_mut().zip(out.iter()) {
                    let fj = scale * *o as f32;
                    *var -= fj * fj;
                }
            }
            for j in 0..d {
                self.means[class * d + j] = f16_bits(mean[j]);
                self.spreads[class * d + j] = f16_bits(math::sqrt(m2[j].max(0.0)));
            }
            work.fill(0.0);
            self.slot_class[s] = FREE;
        }
    }

    /// Samples observed of `class`.
    pub fn count(&self, class: usize) -> u32 {
        self.counts.get(class).copied().unwrap_or(0)
    }

    /// Element `j` of committed factor `q` of `class` (0 while the class is in a working
    /// slot); `None` out of range.
    pub fn factor(&self, class: usize, q: usize, j: usize) -> Option<f32> {
        let (d, rank) = (self.features, self.rank);
        if q >= rank || j >= d || class >= self.counts.len() {
            return None;
        }
        if self.slot_of(class).is_some() {
            return Some(0.0);
        }
        Some(self.scales[class * rank + q] * self.factors[(class * rank + q) * d + j] as f32)
    }

    /// The mean of feature `j` of `class`; `None` out of range.
    pub fn mean(&self, class: usize, j: usize) -> Option<f32> {
        let d = self.features;
        if j >= d || class >= self.counts.len() {
            return None;
        }
        Some(match self.slot_of(class) {
            Some(s) => self.work[s * d * (self.rank + 2) + j],
            None => from_f16(self.means[class * d + j]),
        })
    }

    /// The (population) variance of feature `j` of `class`: the covariance's diagonal;
    /// `None` out of range.
    pub fn variance(&self, class: usize, j: usize) -> Option<f32> {
        let (d, rank) = (self.features, self.rank);
        if j >= d || class >= self.counts.len() {
            return None;
        }
        let n = self.counts[class].max(1) as f32;
        Some(match self.slot_of(class) {
            Some(s) => (self.work[s * d * (rank + 2) + d + j] / n).max(0.0),
            None => {
                let sd = from_f16(self.spreads[class * d + j]);
                let explained: f32 = (0..rank)
                    .map(|q| {
                        let f = self.scales[class * rank + q] * self.factors[(class * rank + q) * d + j] as f32;
                        f * f
                    })
                    .sum();
                sd * sd + explained
            }
        })
    }

    /// Writes one sample of `class` into `out` (`features` long); a class never observed
    /// is [`Error::UnknownClass`].
    pub(crate) fn sample(&self, class: usize, rng: &mut Rng, out: &mut [f32]) -> Result<(), Error> {
        let n = self.counts.get(class).copied().unwrap_or(0);
        if n == 0 {
            return Err(Error::UnknownClass { class });
        }
        let (d, rank) = (self.features, self.rank);
        let mut z = [0.0f32; MAX_RANK];
        for zq in z.iter_mut().take(rank) {
            *zq = rng.normal();
        }
        let out = &mut out[..d];
        match self.slot_of(class) {
            Some(s) => {
                let words = d * (rank + 2);
                let work = &self.work[s * words..(s + 1) * words];
                let (mean, rest) = work.split_at(d);
                let (m2, vectors) = rest.split_at(d);
                // Factor q is v_q / sqrt|v_q|; the coefficient folds z_q in.
                let mut coef = [0.0f32; MAX_RANK];
                for q in 0..rank {
                    let v = &vectors[q * d..(q + 1) * d];
                    let norm = math::sqrt(dot(v, v));
                    coef[q] = if norm > 0.0 { 1.0 / math::sqrt(norm) } else { 0.0 };
                }
                for (j, o) in out.iter_mut().enumerate() {
                    let mut x = mean[j];
                    let mut explained = 0.0f32;
                    for q in 0..rank {
                        let f = vectors[q * d + j] * coef[q];
                        x += f * z[q];
                        explained += f * f;
                    }
                    let sd = math::sqrt((m2[j] / n as f32 - explained).max(0.0));
                    *o = x + sd * rng.normal();
                }
            }
            None => {
                let at = class * d;
                let factors = &self.factors[class * rank * d..(class + 1) * rank * d];
                let scales = &self.scales[class * rank..(class + 1) * rank];
                let mut coef = [0.0f32; MAX_RANK];
                for q in 0..rank {
                    coef[q] = scales[q] * z[q];
                }
                for (j, o) in out.iter_mut().enumerate() {
                    let mut x = from_f16(self.means[at + j]);
                    for q in 0..rank {
                        x += coef[q] * factors[q * d + j] as f32;
                    }
                    *o = x + from_f16(self.spreads[at + j]) * rng.normal();
                }
            }
        }
        Ok(())
    }
}

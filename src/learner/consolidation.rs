//! Selective synaptic plasticity: a per-parameter importance `b_i`, an anchor `theta*_i`
//! (the parameter's value when a task ended), and the penalty
//! `lambda/2 * sum_i b_i (theta_i - theta*_i)^2` that later tasks train under.
//!
//! Importance estimators ([`Method`]):
//! - **EWC** (Kirkpatrick et al. 2017), as the literature runs it: one importance and
//!   anchor *slot per task*, the diagonal Fisher information `F_i = mean_x (d log p(y|x) /
//!   d theta_i)^2` over the task's samples (`y` the true label, or drawn from the model's
//!   own prediction). Its memory is the plan's `max_tasks` slots, reserved up front.
//! - **Online EWC** (Schwarz et al. 2018): one running Fisher `F <- gamma F + F_task` and one
//!   anchor, whatever the number of tasks.
//! - **SI** (Zenke et al. 2017): the path integral `omega_i += -g_i * delta_theta_i` summed
//!   over a task's updates, `g` the data loss's gradient (as in Zenke's code): the sum runs
//!   over the applied gradient, and the penalty's share, the integral of a conservative
//!   field, `lambda/2 b_i (theta_i - theta*_i)^2`, is added back at consolidation; then
//!   `Omega_i += max(omega_i, 0) / ((theta_i(end) - theta_i(start))^2 + xi)`; the anchor
//!   doubles as `theta(start)`. Zenke's surrogate loss `c * sum Omega (theta - theta*)^2` is
//!   this penalty with `lambda = 2c`. Negative path integrals are clamped at 0 (the
//!   compact store holds non-negative values; a negative importance would push weights
//!   away from the old task).
//! - **MAS** (Aljundi et al. 2018): `Omega_i += mean_x |d ||f(x)||^2 / d theta_i|`, `f(x)` the
//!   active logits; it needs no labels.
//!
//! Storage ([`Storage`]): `Compact` keeps each importance as a `u8` with one scale per
//! tensor (each layer's weights and its biases are separate tensors) and each anchor as an
//! IEEE half float (`half::f16`); `F32` keeps both as `f32`. Quantisation ([`Quant`]):
//! - `Linear`: `b = q * max / 255`: absolute error at most `max / 510`; everything below
//!   `max / 510` becomes 0.
//! - `Log`: `q = 0` is 0, otherwise `b = max * 2^(-(255 - q) / 8)`: 254 steps of 2^(1/8)
//!   spanning 2^-31.75 below the tensor's largest value, relative error at most
//!   `2^(1/16) - 1` (4.4%). Importances span many orders of magnitude, which is what this
//!   keeps.
//!
//! Arena components (after the learner's own): `importance` (`slots x params` bytes, or
//! 4x that), `importance scales` (`slots x tensors` f32), `anchors` (`slots x params`
//! halves or floats) and `importance sums` (`params` f32: the Fisher or MAS sums
//! while a task's samples are seen, SI's path integral while it trains).
//!
//! The penalty's gradient `lambda * b_i * (theta_i - theta*_i)` is added to the gradient
//! buffer in place after the backward pass, tensor by tensor, so it needs no buffer of the
//! parameters' size and works with any optimizer.

use crate::learner::arena::Space;
use crate::learner::arena::{mul, OVERFLOW};
use crate::learner::defence::{Carve, Defence, Head, HeadShape};
use crate::learner::state::StateVisitor;
use crate::learner::{names, Error, LayerDims};
use half::f16;

/// How importance is estimated.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum Method {
    /// EWC with a slot per task (up to the config's `max_tasks`).
    Ewc {
        /// Which label the Fisher's log-likelihood uses.
        fisher: FisherLabels,
    },
    /// Online EWC: one running Fisher, decayed by `gamma` at each new task.
    OnlineEwc {
        /// Decay of the old Fisher, in `[0, 1]`.
        gamma: f32,
        /// Which label the Fisher's log-likelihood uses.
        fisher: FisherLabels,
    },
    /// Synaptic intelligence.
    Si {
        /// Damping `xi > 0` of the consolidation's denominator.
        xi: f32,
    },
    /// Memory aware synapses.
    Mas,
}

/// The label whose log-likelihood gradient the Fisher squares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "std", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum FisherLabels {
    /// The sample's true label (the "empirical" Fisher).
    True,
    /// A label drawn from the model's own predictive distribution (the true Fisher's
    /// one-sample estimate), with the learner's seeded generator.
    Sampled,
}

/// How an importance `u8` maps back to a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "std", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Quant {
    /// `q * max / 255`.
    Linear,
    /// `max * 2^(-(255 - q) / 8)`, 0 for `q = 0`.
    Log,
}

/// How importance and anchors are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Storage {
    /// `u8` importance with a per-tensor scale, `f16` anchors.
    Compact(Quant),
    /// `f32` importance and anchors.
    F32,
}

impl Storage {
    /// Bytes per importance value.
    pub fn importance_bytes(self) -> usize {
        match self {
            Storage::Compact(_) => 1,
            Storage::F32 => 4,
        }
    }

    /// Bytes per anchor.
    pub fn anchor_bytes(self) -> usize {
        match self {
            Storage::Compact(_) => 2,
            Storage::F32 => 4,
        }
    }
}

/// The penalty a learner trains under.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PenaltyConfig {
    /// Importance estimator.
    pub method: Method,
    /// Strength `lambda >= 0`.
    pub lambda: f32,
    /// Storage of importance and anchors.
    pub storage: Storage,
}

impl PenaltyConfig {
    /// Importance and anchor slots: one per task for EWC, one otherwise.
    pub fn slots(&self, max_tasks: usize) -> usize {
        match self.method {
            Method::Ewc { .. } => max_tasks,
            _ => 1,
        }
    }

    /// Checks the hyper-parameters.
    pub fn validate(&self) -> Result<(), Error> {
        if !(self.lambda.is_finite() && self.lambda >= 0.0) {
            return Err(Error::BadConfig("penalty: lambda must be finite and >= 0"));
        }
        match self.method {
            Method::OnlineEwc { gamma, .. } if !(0.0..=1.0).contains(&gamma) => {
                Err(Error::BadConfig("online EWC: gamma must be in [0, 1]"))
            }
            Method::Si { xi } if !(xi.is_finite() && xi > 0.0) => Err(Error::BadConfig("SI: xi must be > 0")),
            _ => Ok(()),
        }
    }
}

/// Most tensors a network has (a weight and a bias tensor per layer).
pub const MAX_TENSORS: usize = 2 * (crate::learner::dims::MAX_DIMS - 1);

/// One tensor: where its values are in the parameter vector (weights, then biases).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tensor {
    /// First index in the parameter vector.
    pub start: usize,
    /// Values.
    pub len: usize,
}

/// The tensors of `dims`, weights first (layer by layer), then biases.
pub fn tensors(dims: &LayerDims) -> ([Tensor; MAX_TENSORS], usize) {
    let mut out = [Tensor::default(); MAX_TENSORS];
    let layers = dims.layers();
    let nw = dims.weight_count();
    for l in 0..layers {
        let (i, o) = dims.layer(l);
        out[l] = Tensor {
            start: dims.weight_offset(l),
            len: i * o,
        };
        out[layers + l] = Tensor {
            start: nw + dims.bias_offset(l),
            len: o,
        };
    }
    (out, 2 * layers)
}

/// `2^(-k/8)` for `k` in `0..8`.
const EIGHTHS: [f32; 8] = [
    1.0,
    0.917_004_04,
    0.840_896_4,
    0.771_105_4,
    0.707_106_77,
    0.648_419_8,
    0.594_603_55,
    0.545_253_9,
];

/// The value of code `q` in a tensor whose scale is `scale` (`max / 255` for linear,
/// `max` for log).
#[inline]
pub fn dequantise(quant: Quant, q: u8, scale: f32) -> f32 {
    match quant {
        Quant::Linear => q as f32 * scale,
        Quant::Log => {
            if q == 0 {
                0.0
            } else {
                let k = 255 - q as u32; // 0..=254
                                        // 2^-(k >> 3) built from its exponent bits: k >> 3 <= 31, a normal float.
                scale * EIGHTHS[(k & 7) as usize] * f32::from_bits((127 - (k >> 3)) << 23)
            }
        }
    }
}

/// The scale of a tensor whose largest value is `max`.
pub fn scale_for(quant: Quant, max: f32) -> f32 {
    match quant {
        Quant::Linear => max / 255.0,
        Quant::Log => max,
    }
}

/// The code of `b >= 0` in a tensor whose largest value is `max` (`b <= max`).
pub fn quantise(quant: Quant, b: f32, max: f32) -> u8 {
    if b <= 0.0 || max <= 0.0 {
        return 0;
    }
    match quant {
        Quant::Linear => {
            let q = libm::roundf(b / max * 255.0);
            q.clamp(0.0, 255.0) as u8
        }
        Quant::Log => {
            let k = libm::roundf(-8.0 * libm::log2f(b / max));
            if k > 254.0 {
                0
            } else {
                255 - k.max(0.0) as u8
            }
        }
    }
}

/// SI's path integral: `omega_i += sign * g_i * theta_i`. Called with `+1` before an
/// update and `-1` after it (the same `g`), it adds `-g_i * (theta_i(after) -
/// theta_i(before))` without keeping a copy of the parameters.
pub fn path_integral<'t>(omega: &mut [f32], grads: &[f32], theta: impl Iterator<Item = &'t f32>, sign: f32) {
    for ((w, &g), &t) in omega.iter_mut().zip(grads).zip(theta) {
        *w += sign * g * t;
    }
}

/// Importance and anchors, in one of the two storages.
#[derive(Debug)]
pub(crate) enum Store<'a> {
    /// `u8` importance with a scale per slot and tensor, `f16` anchors (as bits).
    Compact {
        q: &'a mut [u8],
        scales: &'a mut [f32],
        quant: Quant,
        anchors: &'a mut [u16],
    },
    /// `f32` importance and anchors.
    F32 {
        importance: &'a mut [f32],
        anchors: &'a mut [f32],
    },
}

/// The plasticity state of a learner, all of it in the arena.
#[derive(Debug)]
pub(crate) struct Consolidation<'a> {
    pub(crate) config: PenaltyConfig,
    pub(crate) slots: usize,
    pub(crate) params: usize,
    pub(crate) tensors: [Tensor; MAX_TENSORS],
    pub(crate) ntensors: usize,
    pub(crate) store: Store<'a>,
    /// Fisher / MAS sums, or SI's path integral.
    pub(crate) acc: &'a mut [f32],
    /// Samples summed into `acc` (EWC, MAS).
    pub(crate) samples: u32,
    /// Tasks consolidated so far.
    pub(crate) tasks: u32,
}

/// The penalty's part of the layout ([`crate::learner::layout`]): importance and
/// anchors (a slot per task for EWC; compact u8 + per-tensor scales + f16, or f32), then
/// the accumulator.
pub(crate) fn layout<'a>(
    p: &PenaltyConfig,
    d: &LayerDims,
    max_tasks: usize,
    space: &mut impl Space<'a>,
) -> Result<Consolidation<'a>, Error> {
    let params = d.checked_params().ok_or(OVERFLOW)?;
    let slots = p.slots(max_tasks);
    let values = mul(slots, params)?;
    let (tensors, ntensors) = tensors(d);
    let store = match p.storage {
        Storage::Compact(quant) => Store::Compact {
            q: space.take(names::IMPORTANCE, values)?,
            scales: space.take(names::SCALES, mul(slots, ntensors)?)?,
            quant,
            anchors: space.take(names::ANCHORS, values)?,
        },
        Storage::F32 => Store::F32 {
            importance: space.take(names::IMPORTANCE, values)?,
            anchors: space.take(names::ANCHORS, values)?,
        },
    };
    Ok(Consolidation {
        config: *p,
        slots,
        params,
        tensors,
        ntensors,
        store,
        acc: space.take(names::ACCUMULATOR, params)?,
        samples: 0,
        tasks: 0,
    })
}

impl Consolidation<'_> {
    /// Visits the persistent parts as bytes (importance, scales, anchors, accumulator).
    pub(crate) fn state_parts(&mut self, f: &mut crate::learner::state::StateVisitor<'_>) -> Result<(), Error> {
        use crate::learner::state::Part::Plain;
        use bytemuck::cast_slice_mut as bytes;
        match &mut self.store {
            Store::Compact { q, scales, anchors, .. } => {
                f(Plain, q)?;
                f(Plain, bytes(scales))?;
                f(Plain, bytes(anchors))?;
            }
            Store::F32 { importance, anchors } => {
                f(Plain, bytes(importance))?;
                f(Plain, bytes(anchors))?;
            }
        }
        f(Plain, bytes(&mut *self.acc))
    }

    /// Slots holding a consolidated task.
    pub(crate) fn used_slots(&self) -> usize {
        match self.config.method {
            Method::Ewc { .. } => (self.tasks as usize).min(self.slots),
            _ => usize::from(self.tasks > 0),
        }
    }

    /// Importance of parameter `i` in `slot`.
    pub(crate) fn importance(&self, slot: usize, i: usize) -> f32 {
        self.stored(slot, self.tensor_of(i), i)
    }

    /// Importance of parameter `i`, which is in tensor `t`, in `slot`.
    fn stored(&self, slot: usize, t: usize, i: usize) -> f32 {
        let at = slot * self.params + i;
        match &self.store {
            Store::F32 { importance, .. } => importance[at],
            Store::Compact { q, scales, quant, .. } => dequantise(*quant, q[at], scales[slot * self.ntensors + t]),
        }
    }

    /// Anchor of parameter `i` in `slot`.
    pub(crate) fn anchor(&self, slot: usize, i: usize) -> f32 {
        let at = slot * self.params + i;
        match &self.store {
            Store::Compact { anchors, .. } => f16::from_bits(anchors[at]).to_f32(),
            Store::F32 { anchors, .. } => anchors[at],
        }
    }

    fn tensor_of(&self, i: usize) -> usize {
        self.tensors[..self.ntensors]
            .iter()
            .position(|t| i >= t.start && i < t.start + t.len)
            .unwrap_or(0)
    }

    /// Sets every slot's anchors to the parameters `theta` (weights, then biases).
    pub(crate) fn set_anchors(&mut self, slot: usize, weights: &[f32], biases: &[f32]) {
        let base = slot * self.params;
        let theta = weights.iter().chain(biases.iter());
        match &mut self.store {
            Store::Compact { anchors: a, .. } => a[base..base + self.params]
                .iter_mut()
                .zip(theta)
                .for_each(|(a, &t)| *a = f16::from_f32(t).to_bits()),
            Store::F32 { anchors: a, .. } => a[base..base + self.params]
                .iter_mut()
                .zip(theta)
                .for_each(|(a, &t)| *a = t),
        }
    }

    /// `lambda/2 * sum_slots sum_i b_i (theta_i - theta*_i)^2`.
    pub(crate) fn penalty(&self, weights: &[f32], biases: &[f32]) -> f64 {
        let mut sum = 0.0f64;
        for slot in 0..self.used_slots() {
            for (i, &t) in weights.iter().chain(biases.iter()).enumerate() {
                let d = (t - self.anchor(slot, i)) as f64;
                sum += self.importance(slot, i) as f64 * d * d;
            }
        }
        0.5 * self.config.lambda as f64 * sum
    }

    /// Adds the penalty's gradient `lambda * b_i * (theta_i - theta*_i)` to `grads`
    /// (weights' gradients, then biases'), tensor by tensor.
    pub(crate) fn add_penalty_gradient(&self, weights: &[f32], biases: &[f32], grads: &mut [f32]) {
        let lambda = self.config.lambda;
        let nw = weights.len();
        for slot in 0..self.used_slots() {
            for (t, tensor) in self.tensors[..self.ntensors].iter().enumerate() {
                let range = tensor.start..tensor.start + tensor.len;
                let theta = if tensor.start < nw {
                    &weights[range.clone()]
                } else {
                    &biases[tensor.start - nw..tensor.start - nw + tensor.len]
                };
                let g = &mut grads[range.clone()];
                let at = slot * self.params + tensor.start;
                let anchors = at..at + tensor.len;
                match &self.store {
                    Store::Compact {
                        q,
                        scales,
                        quant,
                        anchors: a,
                    } => {
                        let scale = scales[slot * self.ntensors + t];
                        let (q, a) = (&q[anchors.clone()], &a[anchors]);
                        for (((g, &th), &q), &a) in g.iter_mut().zip(theta).zip(q).zip(a) {
                            if q != 0 {
                                let b = dequantise(*quant, q, scale);
                                *g += lambda * b * (th - f16::from_bits(a).to_f32());
                            }
                        }
                    }
                    Store::F32 {
                        importance: b,
                        anchors: a,
                    } => {
                        let (b, a) = (&b[anchors.clone()], &a[anchors]);
                        for (((g, &th), &b), &a) in g.iter_mut().zip(theta).zip(b).zip(a) {
                            *g += lambda * b * (th - a);
                        }
                    }
                }
            }
        }
    }

    /// The new importance of parameter `i` (in tensor `t`; before storage) from the
    /// accumulator.
    fn fresh(&self, t: usize, i: usize, theta: f32) -> f32 {
        let mean = |acc: f32| {
            if self.samples == 0 {
                0.0
            } else {
                acc / self.samples as f32
            }
        };
        let old = |slot: usize| {
            if self.tasks == 0 {
                0.0
            } else {
                self.stored(slot, t, i)
            }
        };
        match self.config.method {
            Method::Ewc { .. } => mean(self.acc[i]),
            Method::OnlineEwc { gamma, .. } => gamma * old(0) + mean(self.acc[i]),
            Method::Mas => old(0) + mean(self.acc[i]),
            Method::Si { xi } => {
                // The anchor is where this task started. The path integral ran over the
                // applied (penalised) gradient; the penalty's share is a conservative
                // field, so its integral is lambda/2 b (theta - anchor)^2 (exact up to the
                // steps' second order), added back to leave the data loss's share.
                let delta = theta - self.anchor(0, i);
                let omega = self.acc[i] + 0.5 * self.config.lambda * old(0) * delta * delta;
                old(0) + omega.max(0.0) / (delta * delta + xi)
            }
        }
    }

    /// Ends a task: turns the accumulator into importance (into the next slot for EWC),
    /// sets the anchors to `theta`, clears the accumulator. Nothing changes on error.
    pub(crate) fn consolidate(&mut self, weights: &[f32], biases: &[f32]) -> Result<(), Error> {
        let slot = match self.config.method {
            Method::Ewc { .. } => {
                if self.tasks as usize >= self.slots {
                    return Err(Error::TasksExhausted { max: self.slots });
                }
                self.tasks as usize
            }
            _ => 0,
        };
        if matches!(
            self.config.method,
            Method::Ewc { .. } | Method::OnlineEwc { .. } | Method::Mas
        ) && self.samples == 0
        {
            return Err(Error::NoImportanceSamples);
        }
        let nw = weights.len();
        let theta = |i: usize| if i < nw { weights[i] } else { biases[i - nw] };
        // Pass 1: every new value finite, and each tensor's largest.
        let mut max = [0.0f32; MAX_TENSORS];
        for (t, tensor) in self.tensors[..self.ntensors].iter().enumerate() {
            for i in tensor.start..tensor.start + tensor.len {
                let b = self.fresh(t, i, theta(i));
                if !b.is_finite() {
                    return Err(Error::NonFiniteImportance { index: i });
                }
                max[t] = max[t].max(b);
            }
        }
        // Pass 2: store. Each value reads only its own old value, so in place is safe.
        let base = slot * self.params;
        for (t, tensor) in self.tensors[..self.ntensors].iter().enumerate() {
            for i in tensor.start..tensor.start + tensor.len {
                let b = self.fresh(t, i, theta(i)).max(0.0);
                match &mut self.store {
                    Store::F32 { importance, .. } => importance[base + i] = b,
                    Store::Compact { q, quant, .. } => q[base + i] = quantise(*quant, b, max[t]),
                }
            }
            if let Store::Compact { scales, quant, .. } = &mut self.store {
                scales[slot * self.ntensors + t] = scale_for(*quant, max[t]);
            }
        }
        self.set_anchors(slot, weights, biases);
        self.acc.fill(0.0);
        self.samples = 0;
        self.tasks = self.tasks.saturating_add(1);
        Ok(())
    }
}

impl<'a> Carve<'a> for Consolidation<'a> {
    type Config = PenaltyConfig;

    fn layout(config: &PenaltyConfig, head: &HeadShape, space: &mut impl Space<'a>) -> Result<Self, Error> {
        layout(config, &head.dims, head.max_tasks, space)
    }
}

impl Defence for Consolidation<'_> {
    /// SI measures each parameter's travel from the initial head.
    fn init(&mut self, _shape: &HeadShape, head: &mut Head<'_>) {
        self.set_anchors(0, head.weights, head.biases);
    }

    fn on_gradients(&self, head: &mut Head<'_>) {
        if self.used_slots() > 0 {
            self.add_penalty_gradient(head.weights, head.biases, head.grads);
        }
    }

    fn before_update(&mut self, head: &mut Head<'_>) {
        if matches!(self.config.method, Method::Si { .. }) {
            path_integral(self.acc, head.grads, head.weights.iter().chain(head.biases.iter()), 1.0);
        }
    }

    fn after_update(&mut self, head: &mut Head<'_>) {
        if matches!(self.config.method, Method::Si { .. }) {
            path_integral(
                self.acc,
                head.grads,
                head.weights.iter().chain(head.biases.iter()),
                -1.0,
            );
        }
    }

    fn visit_state(&mut self, f: &mut StateVisitor<'_>) -> Result<(), Error> {
        self.state_parts(f)
    }
}

#[cfg(test)]
mod tests;

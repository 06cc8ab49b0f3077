//! PackNet (Mallya & Lazebnik 2018): each task owns a part of the weights.
//!
//! An owner field per weight, `ceil(log2(max_tasks + 1))` bits, bit-packed in the arena
//! (0: free; `t`: owned by task `t`). Its bytes are fixed by the plan whatever the number of
//! tasks seen. While task `t` trains, only free weights learn (the learner zeroes the
//! gradient and the optimizer's first moment of the others, so neither SGD with momentum
//! nor Adam moves them); biases learn with the first task only. After training, [`crate::learner::learner::Packing::prune`]
//! keeps the largest-magnitude `1 - prune_ratio` of the free weights of each layer for
//! task `t`, zeroes the rest and leaves them free; then only task `t`'s weights retrain.
//! Inference for task `t` zeroes every weight not owned by tasks `1..=t` for the duration
//! of the call (their values wait in the gradient buffer, which inference does not use).

use crate::learner::arena::Space;
use crate::learner::arena::OVERFLOW;
use crate::learner::defence::{Carve, Defence, Head, HeadShape};
use crate::learner::state::{Part, StateVisitor};
use crate::learner::{names, Error, LayerDims};

/// PackNet's settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PackNetConfig {
    /// Fraction of a layer's free weights freed again after each task (the rest are kept
    /// by the task), in `(0, 1)`.
    pub prune_ratio: f32,
}

impl PackNetConfig {
    /// Checks the prune ratio.
    pub fn validate(&self) -> Result<(), Error> {
        if self.prune_ratio.is_finite() && self.prune_ratio > 0.0 && self.prune_ratio < 1.0 {
            Ok(())
        } else {
            Err(Error::BadConfig("PackNet's prune ratio must be in (0, 1)"))
        }
    }

    /// Weights a task keeps out of `free` candidates: all but `floor(free * prune_ratio)`.
    pub fn kept(&self, free: usize) -> usize {
        free - ((free as f64 * self.prune_ratio as f64) as usize).min(free)
    }

    /// How many tasks in a row get at least one weight of their own in every layer of
    /// `dims` (the output layer counted whole), at most `max_tasks`.
    pub fn tasks_that_fit(&self, dims: &LayerDims, max_tasks: usize) -> usize {
        (0..dims.layers())
            .map(|l| {
                let (i, o) = dims.layer(l);
                let mut free = i * o;
                let mut tasks = 0;
                while tasks < max_tasks {
                    let keep = self.kept(free);
                    if keep == 0 {
                        break;
                    }
                    free -= keep;
                    tasks += 1;
                }
                tasks
            })
            .min()
            .unwrap_or(0)
    }
}

/// Bits of one owner field for `max_tasks` tasks: `ceil(log2(max_tasks + 1))`, at most 8.
pub fn owner_bits(max_tasks: usize) -> Result<u32, Error> {
    let bits = usize::BITS - max_tasks.leading_zeros();
    if max_tasks == 0 || bits > 8 {
        return Err(Error::BadConfig("PackNet handles 1 to 255 tasks"));
    }
    Ok(bits)
}

/// Bytes of the bit-packed owner fields of `weights` weights, or `None` on overflow.
pub fn mask_bytes(weights: usize, max_tasks: usize) -> Result<Option<usize>, Error> {
    let bits = owner_bits(max_tasks)? as usize;
    Ok(weights.checked_mul(bits).map(|b| b.div_ceil(8)))
}

/// Bit-packed owner fields over a byte slice.
#[derive(Debug)]
pub struct Owners<'a> {
    bytes: &'a mut [u8],
    bits: u32,
}

impl<'a> Owners<'a> {
    /// Fields of `bits` bits (1 to 8) over `bytes`.
    pub fn new(bytes: &'a mut [u8], bits: u32) -> Self {
        Owners { bytes, bits }
    }

    /// The packed fields as bytes (for a checkpoint).
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        self.bytes
    }

    fn window(&self, i: usize) -> (usize, u32) {
        let bit = i * self.bits as usize;
        (bit / 8, (bit % 8) as u32)
    }

    /// The owner of weight `i` (0: free).
    pub fn get(&self, i: usize) -> u8 {
        let (byte, shift) = self.window(i);
        let lo = self.bytes[byte] as u16;
        let hi = self.bytes.get(byte + 1).copied().unwrap_or(0) as u16;
        (((lo | hi << 8) >> shift) & ((1u16 << self.bits) - 1)) as u8
    }

    /// Sets the owner of weight `i` (`v` fits the field: the caller checks the task count).
    pub fn set(&mut self, i: usize, v: u8) {
        let (byte, shift) = self.window(i);
        let mask = ((1u16 << self.bits) - 1) << shift;
        let lo = self.bytes[byte] as u16;
        let hi = self.bytes.get(byte + 1).copied().unwrap_or(0) as u16;
        let word = ((lo | hi << 8) & !mask) | ((v as u16) << shift & mask);
        self.bytes[byte] = word as u8;
        if let Some(h) = self.bytes.get_mut(byte + 1) {
            *h = (word >> 8) as u8;
        }
    }
}

/// PackNet's state in a learner.
#[derive(Debug)]
pub(crate) struct PackState<'a> {
    pub config: PackNetConfig,
    pub owners: Owners<'a>,
    /// Tasks pruned and finished.
    pub packed: usize,
    /// The current task was pruned and its kept weights are retraining.
    pub retraining: bool,
    pub max_tasks: usize,
}

/// PackNet's part of the layout ([`crate::learner::layout`]): the bit-packed owner task
/// of every weight.
pub(crate) fn layout<'a>(
    p: &PackNetConfig,
    d: &LayerDims,
    max_tasks: usize,
    space: &mut impl Space<'a>,
) -> Result<PackState<'a>, Error> {
    let bits = owner_bits(max_tasks)?;
    let bytes = mask_bytes(d.weight_count(), max_tasks)?.ok_or(OVERFLOW)?;
    Ok(PackState {
        config: *p,
        owners: Owners::new(space.take(names::OWNERS, bytes)?, bits),
        packed: 0,
        retraining: false,
        max_tasks,
    })
}

impl PackState<'_> {
    /// The task being trained (1-based).
    pub fn current(&self) -> usize {
        self.packed + 1
    }

    /// Whether weight `i` may change now.
    pub fn weight_trainable(&self, i: usize) -> bool {
        let o = self.owners.get(i) as usize;
        if self.retraining {
            o == self.current()
        } else {
            o == 0
        }
    }

    /// Whether biases may change now (with the first task only, as PackNet does).
    pub fn biases_trainable(&self) -> bool {
        self.packed == 0
    }

    /// Whether weight `i` takes part in inference for `task`.
    pub fn used_by(&self, i: usize, task: usize) -> bool {
        let o = self.owners.get(i) as usize;
        o != 0 && o <= task
    }
}

/// Index of the largest-magnitude candidates' threshold: the largest bit pattern `t` of
/// `|w|` with at least `keep` candidates at or above it (`keep >= 1`, and at least `keep`
/// candidates exist). Non-negative floats order like their bit patterns.
pub(crate) fn magnitude_threshold(values: impl Fn(&mut dyn FnMut(u32)), keep: usize) -> u32 {
    let count_at_least = |t: u32| {
        let mut n = 0usize;
        values(&mut |bits| {
            if bits >= t {
                n += 1
            }
        });
        n
    };
    let (mut lo, mut hi) = (0u32, 0x7F80_0000u32); // count(lo) >= keep; hi: +inf
    if count_at_least(hi) >= keep {
        return hi;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if count_at_least(mid) >= keep {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

impl<'a> Carve<'a> for PackState<'a> {
    type Config = PackNetConfig;

    fn layout(config: &PackNetConfig, head: &HeadShape, space: &mut impl Space<'a>) -> Result<Self, Error> {
        layout(config, &head.dims, head.max_tasks, space)
    }
}

impl Defence for PackState<'_> {
    /// A step needs a task left and, while a task trains, a free weight in every layer.
    fn before_step(&self, d: &LayerDims) -> Result<(), Error> {
        if self.packed >= self.max_tasks {
            return Err(Error::TasksExhausted { max: self.max_tasks });
        }
        if !self.retraining {
            if let Some(layer) = (0..d.layers()).find(|&l| {
                let at = d.weight_offset(l);
                let (i, o) = d.layer(l);
                (at..at + i * o).all(|w| self.owners.get(w) != 0)
            }) {
                return Err(Error::NoFreeWeights {
                    task: self.current(),
                    layer,
                });
            }
        }
        Ok(())
    }

    /// Zeroes the gradients and first moments of the weights (and biases) this phase may
    /// not change, so neither momentum nor Adam moves them.
    fn mask_gradients(&self, head: &mut Head<'_>) {
        let nw = head.weights.len();
        let params = nw + head.biases.len();
        let moments = if head.optimizer.state_vectors() > 0 {
            &mut head.opt_state[..params]
        } else {
            &mut []
        };
        for i in 0..nw {
            if !self.weight_trainable(i) {
                head.grads[i] = 0.0;
                if let Some(m) = moments.get_mut(i) {
                    *m = 0.0;
                }
            }
        }
        if !self.biases_trainable() {
            head.grads[nw..params].fill(0.0);
            if let Some(m) = moments.get_mut(nw..params) {
                m.fill(0.0);
            }
        }
    }

    fn visit_state(&mut self, f: &mut StateVisitor<'_>) -> Result<(), Error> {
        f(Part::Plain, self.owners.bytes_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_fields_round_trip_at_every_width() {
        for bits in 1..=8u32 {
            let n = 37;
            let mut buf = [0u8; 64];
            let len = (n * bits as usize).div_ceil(8);
            let mut o = Owners::new(&mut buf[..len], bits);
            let max = (1u16 << bits) - 1;
            for i in 0..n {
                o.set(i, ((i as u16 * 7 + 3) % (max + 1)) as u8);
            }
            for i in 0..n {
                assert_eq!(o.get(i) as u16, (i as u16 * 7 + 3) % (max + 1), "bits {bits} field {i}");
            }
            // Setting one field leaves its neighbours alone.
            o.set(5, 0);
            assert_eq!(o.get(4) as u16, (4 * 7 + 3) % (max + 1));
            assert_eq!(o.get(6) as u16, (6 * 7 + 3) % (max + 1));
        }
    }

    #[test]
    fn owner_bits_are_the_ceiling_log_of_tasks_plus_one() {
        assert_eq!(owner_bits(1).unwrap(), 1);
        assert_eq!(owner_bits(3).unwrap(), 2);
        assert_eq!(owner_bits(4).unwrap(), 3);
        assert_eq!(owner_bits(10).unwrap(), 4);
        assert_eq!(owner_bits(15).unwrap(), 4);
        assert_eq!(owner_bits(16).unwrap(), 5);
        assert_eq!(owner_bits(255).unwrap(), 8);
        assert!(owner_bits(256).is_err());
        assert_eq!(mask_bytes(1001, 10).unwrap(), Some(501));
    }

    #[test]
    fn threshold_keeps_exactly_the_largest() {
        let w = [0.5f32, -3.0, 0.1, 2.0, -0.7, 0.0, 2.0, 1.5];
        let vals = |f: &mut dyn FnMut(u32)| w.iter().for_each(|v| f(v.abs().to_bits()));
        assert_eq!(f32::from_bits(magnitude_threshold(vals, 1)), 3.0);
        assert_eq!(f32::from_bits(magnitude_threshold(vals, 3)), 2.0);
        assert_eq!(f32::from_bits(magnitude_threshold(vals, 2)), 2.0);
        assert_eq!(f32::from_bits(magnitude_threshold(vals, 4)), 1.5);
        assert_eq!(f32::from_bits(magnitude_threshold(vals, 8)), 0.0);
    }

    #[test]
    fn tasks_that_fit_follow_the_prune_ratio() {
        let d = LayerDims::new(&[4, 2]).unwrap(); // 8 weights
        let half = PackNetConfig { prune_ratio: 0.5 };
        // keeps 4, 2, 1, 1 then nothing
        assert_eq!(half.tasks_that_fit(&d, 10), 4);
        assert_eq!(half.tasks_that_fit(&d, 3), 3);
        assert!(PackNetConfig { prune_ratio: 1.0 }.validate().is_err());
        assert!(PackNetConfig { prune_ratio: f32::NAN }.validate().is_err());
    }
}

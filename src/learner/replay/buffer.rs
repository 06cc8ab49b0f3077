//! The replay buffer: a reservoir sample of real rows, kept as i8 with a scale each.

use super::*;

/// A reservoir sample of observed inputs over slices of the arena: each row i8 with a
/// symmetric f32 scale, and its label.
#[derive(Debug)]
pub struct Reservoir<'a> {
    pub(crate) counts: &'a mut [u32],
    pub(crate) rows: &'a mut [i8],
    pub(crate) scales: &'a mut [f32],
    pub(crate) labels: &'a mut [u16],
    /// Samples offered so far.
    pub(crate) seen: u64,
    pub(crate) features: usize,
}

impl Reservoir<'_> {
    /// Rows held.
    pub fn len(&self) -> usize {
        (self.seen.min(self.labels.len() as u64)) as usize
    }

    /// Whether no row is held.
    pub fn is_empty(&self) -> bool {
        self.seen == 0
    }

    /// Rows it can hold.
    pub fn capacity(&self) -> usize {
        self.labels.len()
    }

    /// Offers one sample: kept while the buffer fills, then with probability
    /// `capacity / seen`, replacing a uniformly chosen row (algorithm R).
    pub(crate) fn observe(&mut self, x: &[f32], class: usize, rng: &mut Rng) {
        self.counts[class] = self.counts[class].saturating_add(1);
        self.seen = self.seen.saturating_add(1);
        let cap = self.labels.len() as u64;
        let slot = if self.seen <= cap {
            self.seen - 1
        } else {
            let r = rng.below_u64(self.seen);
            if r >= cap {
                return;
            }
            r
        } as usize;
        let d = self.features;
        self.scales[slot] = quantise_i8(&x[..d], &mut self.rows[slot * d..(slot + 1) * d]);
        self.labels[slot] = class as u16;
    }

    /// Copies a uniformly chosen held row whose label `keep` accepts into `out` and
    /// returns its label; `None` when no held row qualifies.
    pub(crate) fn draw(&self, keep: impl Fn(u16) -> bool, rng: &mut Rng, out: &mut [f32]) -> Option<u16> {
        let held = &self.labels[..self.len()];
        let k = held.iter().filter(|&&y| keep(y)).count();
        if k == 0 {
            return None;
        }
        let pick = rng.below(k as u32) as usize;
        let row = held.iter().enumerate().filter(|&(_, &y)| keep(y)).nth(pick)?.0;
        let d = self.features;
        let scale = self.scales[row];
        for (o, &q) in out[..d].iter_mut().zip(&self.rows[row * d..(row + 1) * d]) {
            *o = scale * q as f32;
        }
        Some(held[row])
    }
}

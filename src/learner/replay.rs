//! Feature-space replay: a class-conditional Gaussian generator of the features the head
//! sees, kept with Welford's streaming method (Welford 1962) inside the arena.
//!
//! Per class: the number of samples seen, the running mean and the running sum of squared
//! deviations (`M2`) of every feature, so the diagonal covariance is `M2 / count`. Its bytes
//! are `classes * (1 + 2 * features)` words whatever the number of tasks, and a sample of
//! class `c` is `mean_c + sqrt(var_c) * z` with `z` standard normal from the core's seeded
//! generator. Replayed samples stand in for the data of old classes while new ones train.

use crate::learner::rng::Rng;
use crate::learner::Error;

/// The generator's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GeneratorConfig {
    /// Classes it can keep statistics of (the head's outputs).
    pub classes: usize,
}

/// The per-class statistics, over slices of the arena.
#[derive(Debug)]
pub struct Gaussian<'a> {
    pub(crate) counts: &'a mut [u32],
    pub(crate) mean: &'a mut [f32],
    pub(crate) m2: &'a mut [f32],
    pub(crate) features: usize,
}

impl Gaussian<'_> {
    /// Adds one sample of `class` to its statistics (Welford's update, in place). The
    /// caller has checked the sample's width, finiteness and the class range.
    pub fn observe(&mut self, x: &[f32], class: usize) {
        let d = self.features;
        let n = self.counts[class].saturating_add(1);
        self.counts[class] = n;
        let inv = 1.0 / n as f32;
        let mean = &mut self.mean[class * d..(class + 1) * d];
        let m2 = &mut self.m2[class * d..(class + 1) * d];
        for ((m, s), &v) in mean.iter_mut().zip(m2.iter_mut()).zip(x) {
            let delta = v - *m;
            *m += delta * inv;
            *s += delta * (v - *m);
        }
    }

    /// Samples seen of `class`.
    pub fn count(&self, class: usize) -> u32 {
        self.counts.get(class).copied().unwrap_or(0)
    }

    /// The mean of `class`'s features.
    pub fn mean(&self, class: usize) -> &[f32] {
        &self.mean[class * self.features..(class + 1) * self.features]
    }

    /// The (population) variance of feature `j` of `class`: `M2 / count`.
    pub fn variance(&self, class: usize, j: usize) -> f32 {
        let n = self.count(class).max(1) as f32;
        (self.m2[class * self.features + j] / n).max(0.0)
    }

    /// Writes one sample of `class` into `out`; a class never observed is
    /// [`Error::UnknownClass`].
    pub fn sample(&self, class: usize, rng: &mut Rng, out: &mut [f32]) -> Result<(), Error> {
        if self.count(class) == 0 {
            return Err(Error::UnknownClass { class });
        }
        for (j, o) in out.iter_mut().enumerate().take(self.features) {
            let sd = crate::learner::math::sqrt(self.variance(class, j));
            *o = self.mean[class * self.features + j] + sd * rng.normal();
        }
        Ok(())
    }

    /// Whether any class outside `exclude` (`start..end`) has been observed.
    pub fn has_class_outside(&self, exclude: (usize, usize)) -> bool {
        (0..self.counts.len()).any(|c| !(exclude.0..exclude.1).contains(&c) && self.count(c) > 0)
    }

    /// Draws a class among those observed outside `exclude` (`start..end`), in proportion
    /// to the samples seen of each; `None` when there is none.
    pub fn draw_class(&self, exclude: (usize, usize), rng: &mut Rng) -> Option<usize> {
        let weight = |c: usize| {
            if (exclude.0..exclude.1).contains(&c) {
                0u64
            } else {
                self.count(c) as u64
            }
        };
        let total: u64 = (0..self.counts.len()).map(weight).sum();
        if total == 0 {
            return None;
        }
        // Two 32-bit draws make a 64-bit uniform pick without modulo bias worth noting.
        let r = ((u64::from(rng.next_u32()) << 32) | u64::from(rng.next_u32())) % total;
        let mut acc = 0u64;
        (0..self.counts.len()).find(|&c| {
            acc += weight(c);
            r < acc
        })
    }
}

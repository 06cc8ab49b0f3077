//! Training batches: how many rows of a batch are real samples and how many replayed, and
//! the batcher that draws them from shuffled epochs.

use super::options::ReplayRatio;
use crate::host::scenario::{Part, Scenario};
use crate::learner::learner::ClassRange;
use crate::learner::rng::Rng;

/// Real rows of a batch of `batch` while the classes `own` are learned: the rest are
/// replayed samples of the old classes `generator` has seen, `ratio` of them per real row
/// (balanced: old classes over own ones); `None` while there is no old class to replay.
pub fn real_rows(
    generator: &crate::learner::Generator<'_>,
    own: ClassRange,
    ratio: ReplayRatio,
    batch: usize,
) -> Option<usize> {
    let exclude = own.start as usize..own.end as usize;
    let old = (0..generator.counts().len())
        .filter(|&c| !exclude.contains(&c) && generator.count(c) > 0)
        .count();
    real_rows_of(old, exclude.len(), ratio, batch)
}

/// [`real_rows`] from the number of old classes seen and of the task's own classes.
pub fn real_rows_of(old: usize, own: usize, ratio: ReplayRatio, batch: usize) -> Option<usize> {
    let ratio = match ratio {
        ReplayRatio::Fixed(r) => r.max(0.0) as f64,
        ReplayRatio::Balanced => old as f64 / own.max(1) as f64,
    };
    let real = (batch as f64 / (1.0 + ratio)).round() as usize;
    (old > 0).then_some(real.clamp(1, batch))
}

/// Mixed into the seed of the generator that shuffles each task's training rows.
pub const BATCH_SEED: u64 = 0xba7c_4e5d;

/// Fills training batches from a task's pool of `(task, row)` pairs, reshuffled each pass.
pub(super) struct Batcher {
    pub(super) xb: Vec<f32>,
    pub(super) yb: Vec<u16>,
    pub(super) ranges: Vec<ClassRange>,
    pub(super) scratch: Vec<f32>,
    pub(super) pool: Vec<(u32, u32)>,
    pub(super) cursor: usize,
}

impl Batcher {
    /// Fills the first `rows` rows with the pool's next samples.
    pub(super) fn next(&mut self, scenario: &Scenario, rng: &mut Rng, rows: usize) {
        let width = scenario.input_width();
        for b in 0..rows.min(self.yb.len()) {
            if self.cursor == self.pool.len() {
                rng.shuffle(&mut self.pool);
                self.cursor = 0;
            }
            let (s, i) = self.pool[self.cursor];
            self.cursor += 1;
            let s = s as usize;
            scenario.fill(
                Part::Train,
                s,
                i,
                &mut self.xb[b * width..(b + 1) * width],
                &mut self.scratch,
            );
            self.yb[b] = scenario.target(s, scenario.train.y[i as usize]);
            self.ranges[b] = scenario.train_active(s);
        }
    }
}

//! The firmware's learner fed one seeded task at a time, shared by the checkpoint tests,
//! the fuzz corpus and the checkpoint benchmark.

use edgecl::learner::learner::ClassRange;
use edgecl::learner::rng::Rng;
use edgecl::{Active, Learner};

/// Task `t` for a learner of 64 features with a generator: 32 seeded samples of classes
/// `2t` and `2t + 1`, observed, one update over the classes so far, then a commit.
pub fn edge_task(l: &mut Learner<'_>, t: u16) {
    let mut r = Rng::new(u64::from(t));
    let x: Vec<f32> = (0..32 * 64).map(|_| r.normal()).collect();
    let y: Vec<u16> = (0..32).map(|i| 2 * t + i % 2).collect();
    for (row, &label) in x.chunks_exact(64).zip(&y) {
        l.replaying().unwrap().observe(row, label).unwrap();
    }
    let active = Active::Classes(ClassRange {
        start: 0,
        end: 2 * t + 2,
    });
    l.train_step(&x, &y, active).unwrap();
    l.replaying().unwrap().commit().unwrap();
}

/// `l`'s checkpoint numbered `sequence`, carrying the caller's `task` counter.
pub fn image(l: &mut Learner<'_>, sequence: u32, task: u32) -> Vec<u8> {
    let mut out = vec![0u8; l.checkpoint_capacity()];
    let n = l.write_checkpoint(sequence, task, &mut out).unwrap();
    out.truncate(n);
    out
}

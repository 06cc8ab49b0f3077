//! The plan: every component's bytes, decided before anything is carved.
//!
//! Components are carved in the order listed here, each on a 16-byte boundary. The
//! first line, `alignment`, reserves the up to 15 bytes the arena may skip to align
//! its start. The plan's total is what a learner needs; the simulator reports the same
//! numbers.

use crate::learner::consolidation::{self, Storage};
use crate::learner::kernels::fast;
use crate::learner::packnet;
use crate::learner::progressive::ColumnsConfig;
use crate::learner::replay::{Gaussian, GeneratorKind};
use crate::learner::vae::VaeSizes;
use crate::learner::{Error, Kernels, LearnerConfig};

/// Alignment of every component's start, in bytes.
pub const ALIGN: usize = 16;

/// Most components a plan holds.
pub const MAX_COMPONENTS: usize = 24;

/// One line of the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Component {
    /// Name, as the error and the table print it.
    pub name: &'static str,
    /// Bytes carved for it, padding to [`ALIGN`] included.
    pub bytes: usize,
}

/// Bytes per component for one [`LearnerConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    components: [Component; MAX_COMPONENTS],
    len: usize,
    /// A component did not fit the table (a bug: raise [`MAX_COMPONENTS`]).
    dropped: bool,
}

/// Names of the components, as they appear in plans, errors and reports.
pub mod names {
    /// Bytes the arena may skip to align its start.
    pub const ALIGNMENT: &str = "alignment";
    /// Dense weights of every layer.
    pub const WEIGHTS: &str = "weights";
    /// Biases of every layer.
    pub const BIASES: &str = "biases";
    /// Gradients of weights and biases.
    pub const GRADIENTS: &str = "gradients";
    /// Momentum or Adam moments.
    pub const OPTIMIZER: &str = "optimizer state";
    /// Hidden activations and logits of one batch.
    pub const ACTIVATIONS: &str = "activations";
    /// Two back-propagated error buffers of one batch.
    pub const DELTAS: &str = "deltas";
    /// Packing buffer of the fast matrix kernels.
    pub const PACKING: &str = "gemm packing";
    /// Importance per parameter (a slot per task for EWC).
    pub const IMPORTANCE: &str = "importance";
    /// Per-tensor scales of the quantised importance.
    pub const SCALES: &str = "importance scales";
    /// Parameter values at the end of the last task (a slot per task for EWC).
    pub const ANCHORS: &str = "anchors";
    /// Fisher / MAS sums over a task's samples, or SI's path integral over its updates.
    pub const ACCUMULATOR: &str = "importance sums";
    /// The replay generator's samples seen per class.
    pub const GENERATOR_COUNTS: &str = "generator counts";
    /// Gaussian generator: committed per-class means (f16).
    pub const GENERATOR_MEANS: &str = "generator means";
    /// Gaussian generator: committed per-class residual standard deviations (f16).
    pub const GENERATOR_SPREADS: &str = "generator spreads";
    /// Gaussian generator: committed per-class principal factors (i8).
    pub const GENERATOR_FACTORS: &str = "generator factors";
    /// Gaussian generator: one scale per committed factor.
    pub const GENERATOR_SCALES: &str = "generator factor scales";
    /// Gaussian generator: the class each working slot holds.
    pub const GENERATOR_SLOT_CLASSES: &str = "generator slot classes";
    /// Gaussian generator: per working slot, Welford's mean and M2 and the CCIPCA
    /// directions (f32).
    pub const GENERATOR_SLOTS: &str = "generator working slots";
    /// Gaussian generator: one row of scratch.
    pub const GENERATOR_SCRATCH: &str = "generator scratch";
    /// Replay buffer: the kept rows (i8).
    pub const BUFFER_ROWS: &str = "buffer rows";
    /// Replay buffer: one scale per row.
    pub const BUFFER_SCALES: &str = "buffer scales";
    /// Replay buffer: one label per row.
    pub const BUFFER_LABELS: &str = "buffer labels";
    /// VAE: encoder and decoder weights and biases.
    pub const VAE_PARAMS: &str = "vae parameters";
    /// VAE: their gradients.
    pub const VAE_GRADIENTS: &str = "vae gradients";
    /// VAE: its optimizer's state.
    pub const VAE_OPTIMIZER: &str = "vae optimizer state";
    /// VAE: the decoder replayed from (a copy taken at the end of the last task).
    pub const VAE_REPLAY: &str = "vae replay decoder";
    /// VAE: one batch's inputs, activations, noise and deltas.
    pub const VAE_ACTIVATIONS: &str = "vae activations";
    /// Distillation: the copy of the head taken at the last commit.
    pub const TEACHER: &str = "teacher head";
    /// Distillation: the teacher's logits of one batch.
    pub const TEACHER_LOGITS: &str = "teacher logits";
    /// Distillation: which classes the teacher had learned at its commit (a byte each).
    pub const TEACHER_CLASSES: &str = "teacher classes";
    /// VAE: samples per class the replay decoder had seen at its commit.
    pub const VAE_COMMITTED: &str = "vae committed counts";
    /// Progressive columns: the parameters of every column the plan reserves.
    pub const COLUMNS: &str = "columns";
    /// PackNet's bit-packed owner task of every weight.
    pub const OWNERS: &str = "packnet owners";
}

/// Bytes of `n` f32 values rounded up to [`ALIGN`] (for counts a [`Plan`] has checked).
pub const fn f32_bytes(n: usize) -> usize {
    (n * 4).div_ceil(ALIGN) * ALIGN
}

/// `n` bytes rounded up to [`ALIGN`], or `None` when that overflows `usize`.
pub fn checked_padded(n: usize) -> Option<usize> {
    Some(n.checked_add(ALIGN - 1)? / ALIGN * ALIGN)
}

/// [`f32_bytes`], or `None` when it overflows `usize`.
pub fn checked_f32_bytes(n: usize) -> Option<usize> {
    Some(n.checked_mul(4)?.checked_add(ALIGN - 1)? / ALIGN * ALIGN)
}

impl Plan {
    /// The plan of a config: its components and their bytes.
    pub fn new(config: &LearnerConfig) -> Result<Plan, Error> {
        config.validate()?;
        const OVERFLOW: Error = Error::BadConfig("the plan's sizes overflow this target's address space");
        let d = &config.dims;
        let b = config.batch_size;
        let params = d.checked_params().ok_or(OVERFLOW)?;
        let mul = |a: usize, c: usize| a.checked_mul(c).ok_or(OVERFLOW);
        let bytes = |n: usize| checked_f32_bytes(n).ok_or(OVERFLOW);
        let padded = |n: usize| checked_padded(n).ok_or(OVERFLOW);
        // Every other count of the config is at most `params` (or a product bounded by
        // the ones checked here), so later unchecked arithmetic on it cannot overflow.
        let mut plan = Plan {
            components: [Component { name: "", bytes: 0 }; MAX_COMPONENTS],
            len: 0,
            dropped: false,
        };
        plan.push(names::ALIGNMENT, ALIGN - 1);
        plan.push(names::WEIGHTS, bytes(d.weight_count())?);
        plan.push(names::BIASES, bytes(d.bias_count())?);
        plan.push(names::GRADIENTS, bytes(params)?);
        plan.push(names::OPTIMIZER, bytes(mul(config.optimizer.state_vectors(), params)?)?);
        plan.push(names::ACTIVATIONS, bytes(mul(b, d.hidden_sum() + d.classes())?)?);
        plan.push(names::DELTAS, bytes(mul(2 * b, d.widest_output())?)?);
        if config.kernels == Kernels::Fast {
            let vae = match config.generator.map(|g| (g, g.kind)) {
                Some((g, GeneratorKind::Vae(v))) => VaeSizes::of(&v, d.input(), g.classes, b)?.ok_or(OVERFLOW)?.widest,
                _ => 0,
            };
            let largest = d.as_slice().iter().copied().max().unwrap_or(1).max(b).max(vae);
            plan.push(names::PACKING, bytes(fast::packing_len(largest))?);
        }
        if let Some(p) = &config.penalty {
            let slots = p.slots(config.max_tasks);
            let values = mul(slots, params)?;
            let (_, tensors) = consolidation::tensors(d);
            plan.push(names::IMPORTANCE, padded(mul(values, p.storage.importance_bytes())?)?);
            if let Storage::Compact(_) = p.storage {
                plan.push(names::SCALES, bytes(mul(slots, tensors)?)?);
            }
            plan.push(names::ANCHORS, padded(mul(values, p.storage.anchor_bytes())?)?);
            plan.push(names::ACCUMULATOR, bytes(params)?);
        }
        if let Some(g) = &config.generator {
            plan.push(names::GENERATOR_COUNTS, padded(mul(g.classes, 4)?)?);
            match g.kind {
                GeneratorKind::Gaussian { rank, slots } => {
                    let stats = mul(g.classes, d.input())?;
                    plan.push(names::GENERATOR_MEANS, padded(mul(stats, 2)?)?);
                    plan.push(names::GENERATOR_SPREADS, padded(mul(stats, 2)?)?);
                    if rank > 0 {
                        plan.push(names::GENERATOR_FACTORS, padded(mul(stats, rank)?)?);
                        plan.push(names::GENERATOR_SCALES, bytes(mul(g.classes, rank)?)?);
                    }
                    plan.push(names::GENERATOR_SLOT_CLASSES, padded(mul(slots, 2)?)?);
                    let words = Gaussian::slot_words(d.input(), rank).ok_or(OVERFLOW)?;
                    plan.push(names::GENERATOR_SLOTS, bytes(mul(slots, words)?)?);
                    plan.push(names::GENERATOR_SCRATCH, bytes(d.input())?);
                }
                GeneratorKind::Buffer { capacity } => {
                    plan.push(names::BUFFER_ROWS, padded(mul(capacity, d.input())?)?);
                    plan.push(names::BUFFER_SCALES, bytes(capacity)?);
                    plan.push(names::BUFFER_LABELS, padded(mul(capacity, 2)?)?);
                }
                GeneratorKind::Vae(v) => {
                    let s = VaeSizes::of(&v, d.input(), g.classes, b)?.ok_or(OVERFLOW)?;
                    plan.push(names::VAE_PARAMS, bytes(s.params)?);
                    plan.push(names::VAE_GRADIENTS, bytes(s.params)?);
                    plan.push(
                        names::VAE_OPTIMIZER,
                        bytes(mul(v.optimizer.state_vectors(), s.params)?)?,
                    );
                    plan.push(names::VAE_REPLAY, bytes(s.decoder)?);
                    plan.push(names::VAE_COMMITTED, padded(mul(g.classes, 4)?)?);
                    let acts = [s.enc_in, s.enc_acts, s.eps, s.dec_in, s.dec_acts, s.dec_in, s.deltas]
                        .iter()
                        .try_fold(0usize, |acc, &n| acc.checked_add(checked_f32_bytes(n)?))
                        .ok_or(OVERFLOW)?;
                    plan.push(names::VAE_ACTIVATIONS, acts);
                }
            }
            if g.distill.is_some() {
                plan.push(names::TEACHER, bytes(params)?);
                plan.push(names::TEACHER_LOGITS, bytes(mul(b, d.classes())?)?);
                plan.push(names::TEACHER_CLASSES, padded(g.classes)?);
            }
        }
        if config.packnet.is_some() {
            let mask = packnet::mask_bytes(d.weight_count(), config.max_tasks)?.ok_or(OVERFLOW)?;
            plan.push(names::OWNERS, padded(mask)?);
        }
        if plan.dropped {
            return Err(Error::Internal("the plan has more components than its table holds"));
        }
        plan.components()
            .iter()
            .try_fold(0usize, |acc, c| acc.checked_add(c.bytes))
            .ok_or(OVERFLOW)?;
        Ok(plan)
    }

    /// The plan of a progressive-columns learner: every column the config reserves, the
    /// largest column's gradients and optimizer state, one batch's activations (every
    /// column's hidden layers and one column's logits) and deltas.
    pub fn columns(config: &ColumnsConfig) -> Result<Plan, Error> {
        config.validate()?;
        const OVERFLOW: Error = Error::BadConfig("the plan's sizes overflow this target's address space");
        let c = config;
        let mut total = 0usize;
        for k in 0..c.max_columns {
            total = total
                .checked_add(c.checked_column_params(k).ok_or(OVERFLOW)?)
                .ok_or(OVERFLOW)?;
        }
        let largest = c.checked_column_params(c.max_columns - 1).ok_or(OVERFLOW)?;
        let mul = |a: usize, b: usize| a.checked_mul(b).ok_or(OVERFLOW);
        let bytes = |n: usize| checked_f32_bytes(n).ok_or(OVERFLOW);
        let acts = mul(mul(mul(c.hidden, c.max_columns)?, c.batch_size)?, c.width)?
            .checked_add(mul(c.batch_size, c.classes)?)
            .ok_or(OVERFLOW)?;
        let mut plan = Plan {
            components: [Component { name: "", bytes: 0 }; MAX_COMPONENTS],
            len: 0,
            dropped: false,
        };
        plan.push(names::ALIGNMENT, ALIGN - 1);
        plan.push(names::COLUMNS, bytes(total)?);
        plan.push(names::GRADIENTS, bytes(largest)?);
        plan.push(names::OPTIMIZER, bytes(mul(c.optimizer.state_vectors(), largest)?)?);
        plan.push(names::ACTIVATIONS, bytes(acts)?);
        plan.push(names::DELTAS, bytes(mul(2 * c.batch_size, c.width.max(c.classes))?)?);
        if c.kernels == Kernels::Fast {
            let widest = c.input.max(c.width).max(c.classes).max(c.batch_size);
            plan.push(names::PACKING, bytes(fast::packing_len(widest))?);
        }
        if plan.dropped {
            return Err(Error::Internal("the plan has more components than its table holds"));
        }
        plan.components()
            .iter()
            .try_fold(0usize, |acc, c| acc.checked_add(c.bytes))
            .ok_or(OVERFLOW)?;
        Ok(plan)
    }

    fn push(&mut self, name: &'static str, bytes: usize) {
        match self.components.get_mut(self.len) {
            Some(slot) => {
                *slot = Component { name, bytes };
                self.len += 1;
            }
            None => self.dropped = true,
        }
    }

    /// The components, in carving order.
    pub fn components(&self) -> &[Component] {
        &self.components[..self.len]
    }

    /// Bytes of the named component (0 when the plan has none).
    pub fn bytes_of(&self, name: &str) -> usize {
        self.components()
            .iter()
            .filter(|c| c.name == name)
            .map(|c| c.bytes)
            .sum()
    }

    /// Bytes the whole plan needs.
    pub fn total(&self) -> usize {
        self.components().iter().map(|c| c.bytes).sum()
    }

    /// `Ok` when the plan fits `budget` bytes; otherwise the first component that does
    /// not fit, with the bytes it requested, those left for it, and the total shortfall.
    pub fn check(&self, budget: usize) -> Result<(), Error> {
        let mut used = 0usize;
        for c in self.components() {
            if used + c.bytes > budget {
                return Err(Error::OverBudget {
                    component: c.name,
                    requested: c.bytes,
                    available: budget.saturating_sub(used),
                    missing: self.total() - budget,
                });
            }
            used += c.bytes;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learner::{LayerDims, Optimizer};

    fn config(dims: &[usize], kernels: Kernels) -> LearnerConfig {
        LearnerConfig {
            dims: LayerDims::new(dims).unwrap(),
            optimizer: Optimizer::adam(1e-3),
            batch_size: 128,
            max_tasks: 5,
            seed: 0,
            kernels,
            penalty: None,
            packnet: None,
            generator: None,
        }
    }

    #[test]
    fn literature_network_bytes_are_the_parameter_count_times_four() {
        let plan = Plan::new(&config(&[784, 400, 400, 10], Kernels::Reference)).unwrap();
        let params = 784 * 400 + 400 * 400 + 400 * 10 + 400 + 400 + 10;
        assert_eq!(params, 478_410);
        assert_eq!(plan.bytes_of(names::WEIGHTS), (784 * 400 + 400 * 400 + 4000) * 4);
        assert_eq!(plan.bytes_of(names::BIASES), 810 * 4 + 8); // 3240 rounded to 3248
        assert_eq!(plan.bytes_of(names::GRADIENTS), f32_bytes(params));
        assert_eq!(plan.bytes_of(names::OPTIMIZER), f32_bytes(2 * params));
        assert_eq!(plan.bytes_of(names::ACTIVATIONS), 128 * 810 * 4);
        assert_eq!(plan.bytes_of(names::DELTAS), 2 * 128 * 400 * 4);
        assert_eq!(plan.bytes_of(names::PACKING), 0);
        assert!(plan.components().iter().all(|c| c.bytes % ALIGN == 0 || c.bytes == 15));
    }

    #[test]
    fn over_budget_names_the_component_and_the_shortfall() {
        let plan = Plan::new(&config(&[784, 400, 400, 10], Kernels::Fast)).unwrap();
        assert!(plan.check(plan.total()).is_ok());
        let budget = 15 + plan.bytes_of(names::WEIGHTS) + 100;
        match plan.check(budget) {
            Err(Error::OverBudget {
                component,
                requested,
                available,
                missing,
            }) => {
                assert_eq!(component, names::BIASES);
                assert_eq!(requested, plan.bytes_of(names::BIASES));
                assert_eq!(available, 100);
                assert_eq!(missing, plan.total() - budget);
            }
            other => panic!("expected OverBudget, got {other:?}"),
        }
        match plan.check(plan.total() - 1) {
            Err(Error::OverBudget { component, missing, .. }) => {
                assert_eq!(component, names::PACKING);
                assert_eq!(missing, 1);
            }
            other => panic!("expected OverBudget, got {other:?}"),
        }
    }

    #[test]
    fn sizes_that_overflow_are_config_errors_not_panics() {
        let mut c = config(
            &[65_535, 65_535, 65_535, 65_535, 65_535, 65_535, 65_535, 65_535],
            Kernels::Fast,
        );
        c.batch_size = 65_535;
        let r = Plan::new(&c);
        if usize::BITS == 32 {
            assert!(matches!(r, Err(Error::BadConfig(_))), "{r:?}");
        } else {
            assert!(r.unwrap().total() > 1 << 32);
        }
        assert_eq!(checked_f32_bytes(usize::MAX / 2), None);
        c.batch_size = 65_536;
        assert!(matches!(Plan::new(&c), Err(Error::BadConfig(_))));
    }

    #[test]
    fn sgd_without_momentum_keeps_no_state() {
        let mut c = config(&[10, 4, 2], Kernels::Reference);
        c.optimizer = Optimizer::Sgd { lr: 0.1, momentum: 0.0 };
        assert_eq!(Plan::new(&c).unwrap().bytes_of(names::OPTIMIZER), 0);
        c.optimizer = Optimizer::Sgd { lr: 0.1, momentum: 0.9 };
        assert_eq!(
            Plan::new(&c).unwrap().bytes_of(names::OPTIMIZER),
            f32_bytes(10 * 4 + 4 * 2 + 6)
        );
    }
}

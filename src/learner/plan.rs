//! The plan: every component's bytes, decided before anything is carved.
//!
//! A [`Plan`] is the byte counter of the layout ([`crate::learner::layout`]): the layout
//! takes its components from a [`Space`], which the plan counts and the arena carves, in
//! the same order, each on a 16-byte boundary. The first line, `alignment`, reserves the
//! up to 15 bytes the arena may skip to align its start. The plan's total is what a
//! learner needs; the simulator reports the same numbers.

use crate::learner::arena::Space;
use crate::learner::arena::OVERFLOW;
pub use crate::learner::arena::{checked_f32_bytes, checked_padded, f32_bytes, ALIGN};
use crate::learner::layout;
pub use crate::learner::names;
use crate::learner::{Error, LearnerConfig};

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    components: heapless::Vec<Component, MAX_COMPONENTS>,
    /// A component did not fit the table (a bug: raise [`MAX_COMPONENTS`]).
    dropped: bool,
}

impl<'a> Space<'a> for Plan {
    fn take<T: bytemuck::Pod>(&mut self, component: &'static str, n: usize) -> Result<&'a mut [T], Error> {
        let bytes = n
            .checked_mul(core::mem::size_of::<T>())
            .and_then(checked_padded)
            .ok_or(OVERFLOW)?;
        self.push(component, bytes);
        Ok(&mut [])
    }
}

impl Plan {
    /// The plan of a config: its components and their bytes, counted by the same
    /// layout [`crate::learner::Learner::new`] carves ([`crate::learner::layout`]).
    pub fn new(config: &LearnerConfig) -> Result<Plan, Error> {
        config.validate()?;
        let mut plan = Plan::empty();
        layout::learner(config, &mut plan)?;
        plan.finish()
    }

    /// A plan holding only the arena's alignment line, to count a layout into.
    pub(crate) fn empty() -> Plan {
        let mut plan = Plan {
            components: heapless::Vec::new(),
            dropped: false,
        };
        plan.push(names::ALIGNMENT, ALIGN - 1);
        plan
    }

    /// The counted plan, once it is checked: every component recorded, the total
    /// representable.
    pub(crate) fn finish(self) -> Result<Plan, Error> {
        if self.dropped {
            return Err(Error::Internal("the plan has more components than its table holds"));
        }
        self.components()
            .iter()
            .try_fold(0usize, |acc, c| acc.checked_add(c.bytes))
            .ok_or(OVERFLOW)?;
        Ok(self)
    }

    /// Records `bytes` for `name`; a component carved in several pieces under one name
    /// (the VAE's activations) is one line.
    fn push(&mut self, name: &'static str, bytes: usize) {
        if let Some(last) = self.components.last_mut() {
            if last.name == name {
                last.bytes += bytes;
                return;
            }
        }
        if self.components.push(Component { name, bytes }).is_err() {
            self.dropped = true;
        }
    }

    /// The components, in carving order.
    pub fn components(&self) -> &[Component] {
        &self.components
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
    use crate::learner::{Kernels, LayerDims, Optimizer};

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

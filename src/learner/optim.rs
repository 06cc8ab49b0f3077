//! Optimizer updates, with PyTorch's rules so figures compare with published runs.
//!
//! The state (momentum, or Adam's two moments) lives in the arena as vectors of the
//! parameters' size; each update is one pass over parameters, gradients and state.

pub use crate::learner::kernels::reference::{adam, AdamStep};
use crate::learner::{kernels, Error};

/// The optimizer and its hyper-parameters (PyTorch's update rules).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Optimizer {
    /// `v = momentum * v + g; theta -= lr * v` (no state when momentum is 0).
    Sgd {
        /// Learning rate.
        lr: f32,
        /// Momentum factor in `[0, 1)`.
        momentum: f32,
    },
    /// Adam (Kingma & Ba) with bias correction, two state vectors.
    Adam {
        /// Learning rate.
        lr: f32,
        /// First-moment decay.
        beta1: f32,
        /// Second-moment decay.
        beta2: f32,
        /// Added to the denominator.
        eps: f32,
    },
}

impl Optimizer {
    /// Adam with PyTorch's defaults and the given learning rate.
    pub fn adam(lr: f32) -> Self {
        Optimizer::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }

    /// State vectors of the parameters' size this optimizer keeps.
    pub fn state_vectors(&self) -> usize {
        match *self {
            Optimizer::Sgd { momentum: 0.0, .. } => 0,
            Optimizer::Sgd { .. } => 1,
            Optimizer::Adam { .. } => 2,
        }
    }

    /// Checks the hyper-parameters: lr > 0, momentum and betas in `[0, 1)`, eps > 0.
    pub fn validate(&self) -> Result<(), Error> {
        let ok = match *self {
            Optimizer::Sgd { lr, momentum } => lr.is_finite() && lr > 0.0 && (0.0..1.0).contains(&momentum),
            Optimizer::Adam { lr, beta1, beta2, eps } => {
                lr.is_finite()
                    && lr > 0.0
                    && (0.0..1.0).contains(&beta1)
                    && (0.0..1.0).contains(&beta2)
                    && eps.is_finite()
                    && eps > 0.0
            }
        };
        if ok {
            Ok(())
        } else {
            Err(Error::BadConfig(
                "optimizer: lr must be > 0, momentum and betas in [0, 1), eps > 0",
            ))
        }
    }

    /// The learning rate.
    pub fn lr(&self) -> f32 {
        match *self {
            Optimizer::Sgd { lr, .. } | Optimizer::Adam { lr, .. } => lr,
        }
    }
}

/// One update of `params` by `grads` with `optimizer` at step `t` (from 1). `first` is the
/// momentum or Adam's first moment (absent for SGD without momentum), `second` Adam's
/// second moment; each as long as `params`.
pub fn update(optimizer: Optimizer, params: &mut [f32], grads: &[f32], first: &mut [f32], second: &mut [f32], t: u32) {
    match optimizer {
        Optimizer::Sgd { lr, momentum } => {
            let v = (!first.is_empty()).then_some(first);
            sgd(params, grads, v, lr, momentum)
        }
        Optimizer::Adam { lr, beta1, beta2, eps } => {
            kernels::fast::adam(params, grads, first, second, AdamStep::new(lr, beta1, beta2, eps, t))
        }
    }
}

/// SGD: `v = momentum * v + g; theta -= lr * v`, or `theta -= lr * g` without state.
pub fn sgd(params: &mut [f32], grads: &[f32], velocity: Option<&mut [f32]>, lr: f32, momentum: f32) {
    match velocity {
        Some(v) => {
            for ((p, &g), v) in params.iter_mut().zip(grads).zip(v.iter_mut()) {
                *v = momentum * *v + g;
                *p -= lr * *v;
            }
        }
        None => {
            for (p, &g) in params.iter_mut().zip(grads) {
                *p -= lr * g;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgd_with_momentum_matches_the_recurrence() {
        let mut p = [1.0f32, -2.0];
        let mut v = [0.0f32; 2];
        sgd(&mut p, &[0.5, 1.0], Some(&mut v), 0.1, 0.9);
        assert_eq!(p, [0.95, -2.1]);
        sgd(&mut p, &[0.5, 1.0], Some(&mut v), 0.1, 0.9);
        // v = 0.9 * 0.5 + 0.5 = 0.95 -> p = 0.95 - 0.095
        assert!((p[0] - 0.855).abs() < 1e-6 && (p[1] - (-2.29)).abs() < 1e-6);
    }

    #[test]
    fn adam_first_step_moves_each_parameter_by_about_lr() {
        let mut p = [0.0f32, 0.0, 0.0];
        let (mut m, mut v) = ([0.0f32; 3], [0.0f32; 3]);
        adam(
            &mut p,
            &[3.0, -0.01, 0.0],
            &mut m,
            &mut v,
            AdamStep::new(0.001, 0.9, 0.999, 1e-8, 1),
        );
        assert!((p[0] + 0.001).abs() < 1e-7, "{p:?}");
        assert!((p[1] - 0.001).abs() < 1e-6, "{p:?}");
        assert_eq!(p[2], 0.0);
    }

    #[test]
    fn vectorised_adam_gives_the_same_bits_as_the_scalar_loop() {
        let mut r = crate::learner::rng::Rng::new(9);
        let mut a: [f32; 1003] = core::array::from_fn(|_| r.uniform_range(-1.0, 1.0));
        let g: [f32; 1003] = core::array::from_fn(|_| r.uniform_range(-1.0, 1.0));
        let mut b = a;
        let (mut ma, mut va, mut mb, mut vb) = ([0.0f32; 1003], [0.0f32; 1003], [0.0f32; 1003], [0.0f32; 1003]);
        for t in 1..5 {
            let s = AdamStep::new(0.01, 0.9, 0.999, 1e-8, t);
            adam(&mut a, &g, &mut ma, &mut va, s);
            crate::learner::kernels::fast::adam(&mut b, &g, &mut mb, &mut vb, s);
        }
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
        assert!(va.iter().zip(&vb).all(|(x, y)| x.to_bits() == y.to_bits()));
    }
}

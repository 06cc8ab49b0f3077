//! Optimizer updates, with PyTorch's rules so figures compare with published runs.
//!
//! The state (momentum, or Adam's two moments) lives in the arena as vectors of the
//! parameters' size; each update is one pass over parameters, gradients and state.

use crate::learner::{kernels, math, Optimizer};

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

/// Hyper-parameters of one Adam step, bias corrections included.
#[derive(Debug, Clone, Copy)]
pub struct AdamStep {
    /// `lr / (1 - beta1^t)`.
    pub step_size: f32,
    /// `sqrt(1 - beta2^t)`.
    pub bias2_sqrt: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Denominator term.
    pub eps: f32,
}

impl AdamStep {
    /// The constants of step `t` (counting from 1).
    pub fn new(lr: f32, beta1: f32, beta2: f32, eps: f32, t: u32) -> Self {
        let bias1 = 1.0 - math::powi(beta1, t);
        let bias2 = 1.0 - math::powi(beta2, t);
        AdamStep {
            step_size: lr / bias1,
            bias2_sqrt: math::sqrt(bias2),
            beta1,
            beta2,
            eps,
        }
    }
}

/// Adam (scalar; [`crate::learner::kernels::fast::adam`] runs it vectorised where it can):
/// `m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
/// theta -= step_size * m / (sqrt(v) / sqrt(1-b2^t) + eps)`.
#[inline(always)]
pub fn adam(params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32], s: AdamStep) {
    let (b1, b2) = (s.beta1, s.beta2);
    for (((p, &g), m), v) in params.iter_mut().zip(grads).zip(m.iter_mut()).zip(v.iter_mut()) {
        *m = b1 * *m + (1.0 - b1) * g;
        *v = b2 * *v + (1.0 - b2) * g * g;
        let denom = math::sqrt(*v) / s.bias2_sqrt + s.eps;
        *p -= s.step_size * *m / denom;
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

//! Reference kernel: the textbook triple loop, summing over `k` in order from zero.
//! Slow and obviously right; the same bits on every target.

use super::MatRef;
use crate::learner::math;

/// `C = A·B` or `C += A·B`; shapes are checked by the caller ([`super::gemm`]).
pub fn gemm(a: MatRef<'_>, b: MatRef<'_>, c: &mut [f32], accumulate: bool) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f32;
            for p in 0..k {
                s += a.at(i, p) * b.at(p, j);
            }
            let cij = &mut c[i * n + j];
            *cij = if accumulate { *cij + s } else { s };
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

/// Adam (scalar; [`super::fast::adam`] runs it vectorised where it can):
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

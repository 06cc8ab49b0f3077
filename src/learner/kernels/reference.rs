//! Reference kernel: the textbook triple loop, summing over `k` in order from zero.
//! Slow and obviously right; the same bits on every target.

use super::MatRef;

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

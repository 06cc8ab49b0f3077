//! Matrix products for the dense layers.
//!
//! One operation, `C = A·B` or `C += A·B` with `C` row-major and contiguous and `A`, `B`
//! strided views ([`MatRef`]), in two implementations: [`reference`](mod@reference), plain loops in a
//! fixed summation order (the same bits on every target), and [`fast`], packed and
//! register-blocked. Every fast path is tested against the reference.

pub mod fast;
pub mod reference;

use crate::learner::Kernels;

/// A read-only strided matrix: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> MatRef<'a> {
    /// A view of `rows x cols` elements; `None` when an element would lie past `data`
    /// or a dimension is zero.
    pub fn new(data: &'a [f32], rows: usize, cols: usize, rs: usize, cs: usize) -> Option<Self> {
        if rows == 0 || cols == 0 {
            return None;
        }
        let last = (rows - 1).checked_mul(rs)?.checked_add((cols - 1).checked_mul(cs)?)?;
        (last < data.len()).then_some(MatRef {
            data,
            rows,
            cols,
            rs,
            cs,
        })
    }

    /// A row-major `rows x cols` view of `data`.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Option<Self> {
        Self::new(data, rows, cols, cols, 1)
    }

    /// The transposed view (no copy).
    pub fn t(self) -> Self {
        MatRef {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Element `(i, j)`; the caller keeps `i < rows`, `j < cols`.
    #[inline(always)]
    pub fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.rs + j * self.cs]
    }

    /// Row `i` as a contiguous slice, when columns are contiguous.
    pub fn row(&self, i: usize) -> Option<&'a [f32]> {
        (self.cs == 1).then(|| &self.data[i * self.rs..i * self.rs + self.cols])
    }

    /// Column `j` as a contiguous slice, when rows are contiguous.
    pub fn col(&self, j: usize) -> Option<&'a [f32]> {
        (self.rs == 1).then(|| &self.data[j * self.cs..j * self.cs + self.rows])
    }
}

/// `C = A·B` (`accumulate == false`) or `C += A·B`, with `C` row-major `A.rows x B.cols`.
///
/// Returns `false` (and leaves `C` alone) when the shapes disagree or `pack` is too small
/// for the fast kernels; the learner sizes both from its plan, so that is a logic bug.
pub fn gemm(kernels: Kernels, a: MatRef<'_>, b: MatRef<'_>, c: &mut [f32], accumulate: bool, pack: &mut [f32]) -> bool {
    if a.cols != b.rows || c.len() != a.rows * b.cols {
        return false;
    }
    match kernels {
        Kernels::Reference => {
            reference::gemm(a, b, c, accumulate);
            true
        }
        Kernels::Fast => fast::gemm(a, b, c, accumulate, pack),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learner::rng::Rng;

    fn random(rng: &mut Rng, n: usize) -> [f32; 4096] {
        let mut v = [0.0f32; 4096];
        for x in v.iter_mut().take(n) {
            *x = rng.uniform_range(-1.0, 1.0);
        }
        v
    }

    /// Every layout the learner uses (plain, transposed A, transposed B) and awkward sizes
    /// that leave partial register tiles and partial cache blocks: the fast kernels agree
    /// with the reference to within float reassociation error.
    #[test]
    fn fast_matches_reference_on_every_layout_and_edge_size() {
        let mut rng = Rng::new(11);
        let mut pack = [0.0f32; 40_000];
        let sizes = [1usize, 2, 3, 5, 7, 13, 17, 31, 33, 64];
        for &m in &sizes {
            for &k in &[1usize, 3, 16, 29, 63] {
                for &n in &sizes {
                    let ad = random(&mut rng, m * k);
                    let bd = random(&mut rng, k * n);
                    let init = random(&mut rng, m * n);
                    // A row-major or stored transposed; B row-major or stored transposed.
                    let layouts = [
                        (MatRef::new(&ad, m, k, k, 1), MatRef::new(&bd, k, n, n, 1)),
                        (MatRef::new(&ad, m, k, 1, m), MatRef::new(&bd, k, n, 1, k)),
                        (MatRef::new(&ad, m, k, k, 1), MatRef::new(&bd, k, n, 1, k)),
                        (MatRef::new(&ad, m, k, 1, m), MatRef::new(&bd, k, n, n, 1)),
                    ];
                    for (a, b) in layouts {
                        let (a, b) = (a.unwrap(), b.unwrap());
                        for accumulate in [false, true] {
                            let mut want = [0.0f32; 4096];
                            let mut got = [0.0f32; 4096];
                            want[..m * n].copy_from_slice(&init[..m * n]);
                            got[..m * n].copy_from_slice(&init[..m * n]);
                            assert!(gemm(Kernels::Reference, a, b, &mut want[..m * n], accumulate, &mut []));
                            assert!(gemm(Kernels::Fast, a, b, &mut got[..m * n], accumulate, &mut pack));
                            for (i, (w, g)) in want[..m * n].iter().zip(&got[..m * n]).enumerate() {
                                let tol = 1e-5 * (k as f32 + 1.0);
                                assert!((w - g).abs() <= tol, "m{m} k{k} n{n} acc{accumulate} [{i}]: {w} vs {g}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn shape_mismatch_and_small_pack_are_refused() {
        let d = [1.0f32; 16];
        let a = MatRef::row_major(&d, 2, 3).unwrap();
        let b = MatRef::row_major(&d, 4, 2).unwrap();
        let mut c = [0.0f32; 4];
        assert!(!gemm(Kernels::Reference, a, b, &mut c, false, &mut []));
        let b = MatRef::row_major(&d, 3, 2).unwrap();
        assert!(!gemm(Kernels::Fast, a, b, &mut c[..3], false, &mut []));
        assert!(MatRef::row_major(&d, 5, 4).is_none());
    }
}

//! Matrix products for the dense layers.
//!
//! One operation, `C = A·B` or `C += A·B` with `C` row-major and contiguous and `A`, `B`
//! strided views ([`MatRef`]), in two implementations: [`reference`](mod@reference), plain loops in a
//! fixed summation order (the same bits on every target), and [`fast`], packed and
//! register-blocked. Every fast path is tested against the reference.

pub mod fast;
pub mod reference;

/// Which matrix kernels the learner runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "std", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Kernels {
    /// Plain loops in a fixed order: the same bits on every target. Needs no packing buffer.
    Reference,
    /// Packed, register-blocked kernels (FMA where the CPU has it). Needs a packing buffer.
    Fast,
}

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

    /// Sizes past one cache block in every dimension (`MC`, `KC`, `NC`), as the literature
    /// network's products are, on the plain and transposed layouts, with the dispatched
    /// fast path and with the portable tile that CPUs without AVX2 and FMA run.
    #[test]
    fn fast_matches_reference_across_cache_blocks() {
        let mut rng = Rng::new(5);
        for (m, k, n) in [
            (80, 300, 530),
            (145, 513, 20),
            (3, 700, 1030),
            (73, 257, 513),
            (1, 785, 401),
        ] {
            let a: Vec<f32> = (0..m * k).map(|_| rng.uniform_range(-1.0, 1.0)).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.uniform_range(-1.0, 1.0)).collect();
            let mut pack = vec![0.0f32; fast::packing_len(m.max(k).max(n))];
            for (am, bm) in [
                (MatRef::new(&a, m, k, k, 1), MatRef::new(&b, k, n, n, 1)),
                (MatRef::new(&a, m, k, 1, m), MatRef::new(&b, k, n, 1, k)),
            ] {
                let (am, bm) = (am.unwrap(), bm.unwrap());
                let mut want = vec![0.5f32; m * n];
                assert!(gemm(Kernels::Reference, am, bm, &mut want, true, &mut []));
                let mut got = vec![0.5f32; m * n];
                assert!(gemm(Kernels::Fast, am, bm, &mut got, true, &mut pack));
                let mut portable = vec![0.5f32; m * n];
                fast::portable_for_tests(am, bm, &mut portable, true, &mut pack);
                for ((w, g), p) in want.iter().zip(&got).zip(&portable) {
                    assert!((w - g).abs() < 1e-3 && (w - p).abs() < 1e-3, "{m}x{k}x{n}: {w} {g} {p}");
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

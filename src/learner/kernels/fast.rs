//! Packed, register-blocked matrix product (the Goto/BLIS scheme, in safe Rust).
//!
//! `B` is packed into `KC x NR` column panels and `A` into `MC x KC` blocks of `MR`-row
//! panels, both in a buffer the plan reserves in the arena (`gemm packing`); a
//! micro-kernel keeps an `MR x NR` tile of `C` in registers over the `KC` loop. Nothing is
//! allocated. One-row products (inference at batch 1) skip packing and run dot products
//! or row updates on the contiguous side.
//!
//! On x86_64 with `std`, CPUs with AVX2 and FMA get the same code compiled for those
//! features (6 x 16 tiles, fused multiply-add), picked at run time, and Adam's
//! element-wise update is compiled for AVX2 the same way; those two calls are the crate's
//! only `unsafe`. Elsewhere a portable 4 x 8 tile. Fused multiply-add rounds
//! differently from the reference kernel, so results agree to float tolerance, not bits;
//! use [`Kernels::Reference`](crate::learner::Kernels::Reference) for bit-exact runs.

use super::{reference, MatRef};

/// Rows of `A` packed per block.
pub const MC: usize = 72;
/// Depth of a packed block.
pub const KC: usize = 256;
/// Columns of `B` packed per block.
pub const NC: usize = 512;
/// Packing rounds rows to this (a multiple of every tile height used).
const MR_ROUND: usize = 12;
/// Packing rounds columns to this (a multiple of every tile width used).
const NR_ROUND: usize = 16;

const fn round_up(x: usize, to: usize) -> usize {
    x.div_ceil(to) * to
}

const fn min(a: usize, b: usize) -> usize {
    if a < b {
        a
    } else {
        b
    }
}

fn split_len(m: usize, k: usize) -> usize {
    round_up(min(MC, m), MR_ROUND) * min(KC, k)
}

fn need(m: usize, k: usize, n: usize) -> usize {
    split_len(m, k) + min(KC, k) * round_up(min(NC, n), NR_ROUND)
}

/// Packing floats needed for products whose every dimension is at most `largest`.
pub const fn packing_len(largest: usize) -> usize {
    let k = min(KC, largest);
    k * (round_up(min(MC, largest), MR_ROUND) + round_up(min(NC, largest), NR_ROUND))
}

/// `C = A·B` or `C += A·B` (shapes checked by [`super::gemm`]); `false` when `pack` is
/// smaller than [`packing_len`] of the largest dimension.
pub fn gemm(a: MatRef<'_>, b: MatRef<'_>, c: &mut [f32], accumulate: bool, pack: &mut [f32]) -> bool {
    if a.rows() > 1 && pack.len() < need(a.rows(), a.cols(), b.cols()) {
        return false;
    }
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: `gemm_avx2_fma` only requires the CPU to support AVX2 and FMA, which
        // was checked on the line above.
        #[allow(unsafe_code)]
        unsafe {
            gemm_avx2_fma(a, b, c, accumulate, pack)
        };
        return true;
    }
    gemm_with::<4, 8, false>(a, b, c, accumulate, pack);
    true
}

/// The portable 4 x 8 tile, whatever the CPU has (so tests on AVX2 machines cover it).
#[cfg(test)]
pub(crate) fn portable_for_tests(a: MatRef<'_>, b: MatRef<'_>, c: &mut [f32], accumulate: bool, pack: &mut [f32]) {
    gemm_with::<4, 8, false>(a, b, c, accumulate, pack)
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
#[target_feature(enable = "avx2,fma")]
fn gemm_avx2_fma(a: MatRef<'_>, b: MatRef<'_>, c: &mut [f32], accumulate: bool, pack: &mut [f32]) {
    gemm_with::<6, 16, true>(a, b, c, accumulate, pack)
}

/// Adam's element-wise update ([`reference::adam`]) compiled for AVX2 where the CPU has it.
///
/// The update is element-wise IEEE arithmetic (no fused multiply-add, no reordering), so
/// the 8-wide build gives the same bits as the scalar one; it only runs faster.
pub fn adam(params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32], s: reference::AdamStep) {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: `adam_avx2` only requires AVX2, checked on the line above.
        #[allow(unsafe_code)]
        unsafe {
            adam_avx2(params, grads, m, v, s)
        };
        return;
    }
    reference::adam(params, grads, m, v, s)
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
#[target_feature(enable = "avx2")]
fn adam_avx2(params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32], s: reference::AdamStep) {
    reference::adam(params, grads, m, v, s)
}

/// `a * b + c`, fused when `FMA` (only compiled in where the CPU has it).
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    #[cfg(feature = "std")]
    if FMA {
        return a.mul_add(b, c);
    }
    a * b + c
}

#[inline(always)]
fn gemm_with<const MR: usize, const NR: usize, const FMA: bool>(
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [f32],
    accumulate: bool,
    pack: &mut [f32],
) {
    if a.rows() == 1 {
        one_row::<FMA>(a, b, c, accumulate);
    } else {
        packed::<MR, NR, FMA>(a, b, c, accumulate, pack);
    }
}

/// One row of `A`: dot products when `B`'s columns are contiguous, row updates when its
/// rows are, the reference loop otherwise.
#[inline(always)]
fn one_row<const FMA: bool>(a: MatRef<'_>, b: MatRef<'_>, c: &mut [f32], accumulate: bool) {
    let Some(x) = a.row(0) else {
        reference::gemm(a, b, c, accumulate);
        return;
    };
    if b.col(0).is_some() {
        for (j, cj) in c.iter_mut().enumerate() {
            let s = b.col(j).map_or(0.0, |col| dot::<FMA>(x, col));
            *cj = if accumulate { *cj + s } else { s };
        }
    } else if b.row(0).is_some() {
        if !accumulate {
            c.fill(0.0);
        }
        for (p, &xp) in x.iter().enumerate() {
            if let Some(row) = b.row(p) {
                for (cj, &bj) in c.iter_mut().zip(row) {
                    *cj = madd::<FMA>(xp, bj, *cj);
                }
            }
        }
    } else {
        reference::gemm(a, b, c, accumulate);
    }
}

#[inline(always)]
fn dot<const FMA: bool>(x: &[f32], y: &[f32]) -> f32 {
    let (xc, xt) = x.as_chunks::<8>();
    let (yc, yt) = y.as_chunks::<8>();
    let mut acc = [0.0f32; 8];
    for (a, b) in xc.iter().zip(yc) {
        for l in 0..8 {
            acc[l] = madd::<FMA>(a[l], b[l], acc[l]);
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (a, b) in xt.iter().zip(yt) {
        s = madd::<FMA>(*a, *b, s);
    }
    s
}

#[inline(always)]
fn packed<const MR: usize, const NR: usize, const FMA: bool>(
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [f32],
    accumulate: bool,
    pack: &mut [f32],
) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    let (ap, bp) = pack.split_at_mut(split_len(m, k));
    for jc in (0..n).step_by(NC) {
        let nc = min(NC, n - jc);
        for pc in (0..k).step_by(KC) {
            let kc = min(KC, k - pc);
            pack_b::<NR>(b, pc, kc, jc, nc, bp);
            let overwrite = pc == 0 && !accumulate;
            for ic in (0..m).step_by(MC) {
                let mc = min(MC, m - ic);
                pack_a::<MR>(a, ic, mc, pc, kc, ap);
                for jr in (0..nc).step_by(NR) {
                    let nr = min(NR, nc - jr);
                    let bpanel = &bp[jr * kc..(jr + NR) * kc];
                    for ir in (0..mc).step_by(MR) {
                        let mr = min(MR, mc - ir);
                        let tile = micro::<MR, NR, FMA>(&ap[ir * kc..(ir + MR) * kc], bpanel);
                        for (i, tile_row) in tile.iter().enumerate().take(mr) {
                            let start = (ic + ir + i) * n + jc + jr;
                            let row = &mut c[start..start + nr];
                            if overwrite {
                                row.copy_from_slice(&tile_row[..nr]);
                            } else {
                                for (cij, t) in row.iter_mut().zip(tile_row) {
                                    *cij += t;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Packs `B[pc.., jc..]` (`kc x nc`) into `NR`-wide column panels, zero-padded.
#[inline(always)]
fn pack_b<const NR: usize>(b: MatRef<'_>, pc: usize, kc: usize, jc: usize, nc: usize, bp: &mut [f32]) {
    for jr in (0..nc).step_by(NR) {
        let panel = &mut bp[jr * kc..(jr + NR) * kc];
        let width = min(NR, nc - jr);
        for (p, dst) in panel.chunks_exact_mut(NR).enumerate() {
            for (jj, d) in dst.iter_mut().enumerate() {
                *d = if jj < width { b.at(pc + p, jc + jr + jj) } else { 0.0 };
            }
        }
    }
}

/// Packs `A[ic.., pc..]` (`mc x kc`) into `MR`-tall row panels, zero-padded.
#[inline(always)]
fn pack_a<const MR: usize>(a: MatRef<'_>, ic: usize, mc: usize, pc: usize, kc: usize, ap: &mut [f32]) {
    for ir in (0..mc).step_by(MR) {
        let panel = &mut ap[ir * kc..(ir + MR) * kc];
        let height = min(MR, mc - ir);
        for (p, dst) in panel.chunks_exact_mut(MR).enumerate() {
            for (ii, d) in dst.iter_mut().enumerate() {
                *d = if ii < height { a.at(ic + ir + ii, pc + p) } else { 0.0 };
            }
        }
    }
}

/// The `MR x NR` tile of one A panel times one B panel, kept in registers.
#[inline(always)]
fn micro<const MR: usize, const NR: usize, const FMA: bool>(ap: &[f32], bp: &[f32]) -> [[f32; NR]; MR] {
    let mut acc = [[0.0f32; NR]; MR];
    let (ac, _) = ap.as_chunks::<MR>();
    let (bc, _) = bp.as_chunks::<NR>();
    for (a, b) in ac.iter().zip(bc) {
        for i in 0..MR {
            for j in 0..NR {
                acc[i][j] = madd::<FMA>(a[i], b[j], acc[i][j]);
            }
        }
    }
    acc
}

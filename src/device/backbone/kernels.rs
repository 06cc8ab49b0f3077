//! The backbone's kernels: the reference sum of one output, the fast convolution and
//! dense layer (generic over u8 activations and a window's i8 values), and the one
//! rounding every layer shares.

use super::LayerAt;

/// One output's integer sum at conv position `(y, x)` (`(0, 0)` for dense), reading the
/// input through `at(channel, row, column)`.
pub(super) fn sum_reference(
    l: &LayerAt,
    weights: &[u8],
    at: &impl Fn(usize, usize, usize) -> i32,
    o: usize,
    y: usize,
    x: usize,
) -> i32 {
    let ((kh, kw), (ph, pw)) = (l.kernel, l.pad);
    let mut acc = 0i32;
    for ci in 0..l.inputs {
        for dy in 0..kh {
            for dx in 0..kw {
                let (iy, ix) = ((y + dy).wrapping_sub(ph), (x + dx).wrapping_sub(pw));
                if iy < l.h && ix < l.w {
                    let w = weights[((o * l.inputs + ci) * kh + dy) * kw + dx] as i8;
                    acc += i32::from(w) * at(ci, iy, ix);
                }
            }
        }
    }
    acc
}

/// Where a layer writes: the next layer's u8 map, or the f32 features.
pub(super) enum Out<'b> {
    Map(&'b mut [u8]),
    Features(&'b mut [f32]),
}

/// An activation the fast kernels read: u8 between layers, i8 in a window.
pub(super) trait Act: Copy {
    fn wide(self) -> i32;
}

impl Act for u8 {
    #[inline(always)]
    fn wide(self) -> i32 {
        i32::from(self)
    }
}

impl Act for i8 {
    #[inline(always)]
    fn wide(self) -> i32 {
        i32::from(self)
    }
}

/// An integer sum as a value: one multiply, one add (never fused), the same bits on
/// every target.
pub(super) fn value(acc: i32, scale: f32, bias: f32) -> f32 {
    acc as f32 * scale + bias
}

/// A value as the next layer's u8 activation: rounded half up, negatives to 0 (the
/// ReLU), past 255 to 255 (`as` saturates).
pub(super) fn to_u8(v: f32) -> u8 {
    (v + 0.5) as u8
}

/// `max(v, 0)` with `+0.0` for every non-positive value (`f32::max` may keep `-0.0`).
pub(super) fn relu(v: f32) -> f32 {
    if v > 0.0 {
        v
    } else {
        0.0
    }
}

/// Writes the output value of sum `acc` at `(qy, qx)` of channel `o`.
#[inline(always)]
fn emit(l: &LayerAt, dst: &mut Out<'_>, o: usize, (qy, qx): (usize, usize), acc: i32, (scale, bias): (f32, f32)) {
    let v = value(acc, scale, bias);
    let (qh, qw) = l.out_hw();
    match dst {
        Out::Map(m) => {
            let (bh, bw) = l.border;
            let stride = qw + 2 * bw;
            m[(o * (qh + 2 * bh) + qy + bh) * stride + qx + bw] = to_u8(v);
        }
        Out::Features(f) => f[(o * qh + qy) * qw + qx] = if l.relu { relu(v) } else { v },
    }
}

/// A convolution over a map with its zero border (`inputs x (h + 2 pad) x (w + 2 pad)`):
/// per output channel, the sums of every position accumulate in `sums`, one input
/// channel at a time (3x3 taps unrolled; 1-D kernels of 3 or 5 all taps of a position
/// at once; other kernels one tap over a whole row), then the pool and the scale.
pub(super) fn conv_fast<A: Act>(
    l: &LayerAt,
    weights: &[u8],
    scales: &[u8],
    biases: &[u8],
    src: &[A],
    sums: &mut [i32],
    mut dst: Out<'_>,
) {
    let ((kh, kw), taps) = (l.kernel, l.taps());
    let (ph, pw) = (l.h + 2 * l.pad.0, l.w + 2 * l.pad.1);
    let (oh, ow) = (l.oh, l.ow);
    let plane = ph * pw;
    let sums = &mut sums[..oh * ow];
    if let Out::Map(m) = &mut dst {
        if l.border != (0, 0) {
            m.fill(0);
        }
    }
    let (qh, qw) = l.out_hw();
    for o in 0..l.outputs {
        sums.fill(0);
        for ci in 0..l.inputs {
            let wt = &weights[(o * l.inputs + ci) * taps..][..taps];
            let map = &src[ci * plane..][..plane];
            if (kh, kw) == (3, 3) {
                // One kernel row at a time: three taps over three shifted views of an
                // input row, zipped so that no index is checked.
                for y in 0..oh {
                    let s = &mut sums[y * ow..][..ow];
                    for dy in 0..3 {
                        let r = &map[(y + dy) * pw..][..ow + 2];
                        let w = [tap(wt, 3 * dy), tap(wt, 3 * dy + 1), tap(wt, 3 * dy + 2)];
                        row3(w, r, s);
                    }
                }
            } else if kh == 1 && matches!(kw, 3 | 5) {
                // Over time (one row), kernels of 3 or 5: all taps of an output at once,
                // its sum loaded and stored once per input channel.
                let s = &mut sums[..ow];
                let r = &map[..ow + kw - 1];
                if kw == 5 {
                    row_taps::<5, A>(core::array::from_fn(|j| tap(wt, j)), r, s);
                } else {
                    row_taps::<3, A>(core::array::from_fn(|j| tap(wt, j)), r, s);
                }
            } else {
                for dy in 0..kh {
                    for dx in 0..kw {
                        let wv = tap(wt, dy * kw + dx);
                        if wv == 0 {
                            continue;
                        }
                        for y in 0..oh {
                            let r = &map[(y + dy) * pw + dx..][..ow];
                            for (a, &v) in sums[y * ow..][..ow].iter_mut().zip(r) {
                                *a += wv * v.wide();
                            }
                        }
                    }
                }
            }
        }
        let (scale, bias) = (le_f32(scales, o), le_f32(biases, o));
        for qy in 0..qh {
            for qx in 0..qw {
                let acc = match l.window() {
                    (2, 2) => {
                        let (t, b) = (&sums[2 * qy * ow..][..ow], &sums[(2 * qy + 1) * ow..][..ow]);
                        t[2 * qx].max(t[2 * qx + 1]).max(b[2 * qx].max(b[2 * qx + 1]))
                    }
                    (1, 2) => {
                        let t = &sums[qy * ow..][..ow];
                        t[2 * qx].max(t[2 * qx + 1])
                    }
                    _ => sums[qy * ow + qx],
                };
                emit(l, &mut dst, o, (qy, qx), acc, (scale, bias));
            }
        }
    }
}

/// A dense layer over a flat vector: one zipped dot product per output.
pub(super) fn dense_fast<A: Act>(
    l: &LayerAt,
    weights: &[u8],
    scales: &[u8],
    biases: &[u8],
    src: &[A],
    mut dst: Out<'_>,
) {
    let n = l.inputs;
    let src = &src[..n];
    for (o, row) in weights[..l.outputs * n].chunks_exact(n).enumerate() {
        let acc: i32 = row.iter().zip(src).map(|(&w, &x)| i32::from(w as i8) * x.wide()).sum();
        emit(l, &mut dst, o, (0, 0), acc, (le_f32(scales, o), le_f32(biases, o)));
    }
}

/// `s[x] += w . r[x..x + 3]` for every `x` of `s` (`r` is two longer): three outputs per
/// step, the two pixels they share with the next step kept in registers, so each pixel
/// is loaded once.
#[inline(always)]
fn row3<A: Act>(w: [i32; 3], r: &[A], s: &mut [i32]) {
    let [w0, w1, w2] = w;
    let (mut p0, mut p1) = (r[0].wide(), r[1].wide());
    let mut sc = s.chunks_exact_mut(3);
    let mut rc = r[2..].chunks_exact(3);
    for (a, q) in (&mut sc).zip(&mut rc) {
        let (q0, q1, q2) = (q[0].wide(), q[1].wide(), q[2].wide());
        a[0] += w0 * p0 + w1 * p1 + w2 * q0;
        a[1] += w0 * p1 + w1 * q0 + w2 * q1;
        a[2] += w0 * q0 + w1 * q1 + w2 * q2;
        (p0, p1) = (q1, q2);
    }
    for (a, &q) in sc.into_remainder().iter_mut().zip(rc.remainder()) {
        let q = q.wide();
        *a += w0 * p0 + w1 * p1 + w2 * q;
        (p0, p1) = (p1, q);
    }
}

/// `s[x] += w . r[x..x + K]` for every `x` of `s` (`r` is `K - 1` longer): the `K` taps
/// stay in registers, each sum is read and written once.
#[inline(always)]
fn row_taps<const K: usize, A: Act>(w: [i32; K], r: &[A], s: &mut [i32]) {
    for (a, win) in s.iter_mut().zip(r.windows(K)) {
        let mut acc = *a;
        for j in 0..K {
            acc += w[j] * win[j].wide();
        }
        *a = acc;
    }
}

/// Weight `j` of a kernel as i32.
fn tap(wt: &[u8], j: usize) -> i32 {
    i32::from(wt[j] as i8)
}

pub(super) fn le_f32(b: &[u8], i: usize) -> f32 {
    f32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
}

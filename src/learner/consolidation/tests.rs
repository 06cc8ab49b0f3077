//! Unit tests of [`super`].

use super::*;

/// SI state over a `[1, 1]` network (a weight and a bias tensor), f32 storage.
fn si_on_one_weight_and_bias<'a>(
    xi: f32,
    lambda: f32,
    imp: &'a mut [f32; 2],
    anc: &'a mut [f32; 2],
    acc: &'a mut [f32; 2],
) -> Consolidation<'a> {
    let (tensors, ntensors) = tensors(&LayerDims::new(&[1, 1]).unwrap());
    Consolidation {
        config: PenaltyConfig {
            method: Method::Si { xi },
            lambda,
            storage: Storage::F32,
        },
        slots: 1,
        params: 2,
        tensors,
        ntensors,
        store: Store::F32 {
            importance: imp,
            anchors: anc,
        },
        acc,
        samples: 0,
        tasks: 0,
    }
}

/// SI on `L(theta) = a/2 (theta - opt)^2` trained by gradient descent with step `eta`:
/// `d_k = d_0 r^k` with `r = 1 - eta a`, each step's `-g_k * delta_k = eta a^2 d_k^2`, so
/// `omega = eta a^2 d_0^2 (1 - r^(2K)) / (1 - r^2)` and
/// `Omega = omega / ((theta_K - theta_0)^2 + xi)`.
#[test]
fn si_omega_matches_the_closed_form_on_a_quadratic() {
    let (a, opt, eta, steps, xi) = (2.0f64, 0.75f64, 0.05f64, 40, 0.1f32);
    let theta0 = [-1.0f32, 0.5, 2.0];
    let mut weights = [theta0[0]];
    let mut biases = [theta0[1]];
    let (mut imp, mut anc, mut acc) = ([0.0f32; 2], [0.0f32; 2], [0.0f32; 2]);
    let mut c = si_on_one_weight_and_bias(xi, 1.0, &mut imp, &mut anc, &mut acc);
    c.set_anchors(0, &weights, &biases);
    for _ in 0..steps {
        let grads = [
            (a * (weights[0] as f64 - opt)) as f32,
            (a * (biases[0] as f64 - opt)) as f32,
        ];
        path_integral(c.acc, &grads, weights.iter().chain(biases.iter()), 1.0);
        weights[0] -= eta as f32 * grads[0];
        biases[0] -= eta as f32 * grads[1];
        path_integral(c.acc, &grads, weights.iter().chain(biases.iter()), -1.0);
    }
    c.consolidate(&weights, &biases).unwrap();
    let r = 1.0 - eta * a;
    for (i, &t0) in theta0[..2].iter().enumerate() {
        let d0 = t0 as f64 - opt;
        let omega = eta * a * a * d0 * d0 * (1.0 - r.powi(2 * steps)) / (1.0 - r * r);
        let moved = d0 * (r.powi(steps) - 1.0);
        let want = omega / (moved * moved + xi as f64);
        let got = c.importance(0, i) as f64;
        assert!(
            (got - want).abs() <= 1e-4 * want,
            "param {i}: Omega {got}, closed form {want}"
        );
    }
    // The anchors moved to the end of the task and the path integral restarts.
    assert_eq!(c.anchor(0, 0), weights[0]);
    assert!(c.acc.iter().all(|&v| v == 0.0));
}

/// In a second task the updates follow data loss plus penalty; SI's path integral must
/// still be the data loss's own `sum -g_data * delta`, which the test sums exactly.
#[test]
fn si_integrates_the_data_gradient_under_a_penalty() {
    let (lambda, xi, eta) = (4.0f32, 0.1f32, 0.01f64);
    let (mut w, mut b) = ([0.3f32], [-0.2f32]);
    let (mut imp, mut anc, mut acc) = ([0.0f32; 2], [0.0f32; 2], [0.0f32; 2]);
    let mut c = si_on_one_weight_and_bias(xi, lambda, &mut imp, &mut anc, &mut acc);
    c.set_anchors(0, &w, &b);
    // Task 1: L1 = (theta - 1)^2 / 2, no penalty yet.
    for _ in 0..100 {
        let g = [w[0] - 1.0, b[0] - 1.0];
        path_integral(c.acc, &g, w.iter().chain(b.iter()), 1.0);
        w[0] -= eta as f32 * g[0];
        b[0] -= eta as f32 * g[1];
        path_integral(c.acc, &g, w.iter().chain(b.iter()), -1.0);
    }
    c.consolidate(&w, &b).unwrap();
    let omega1 = [c.importance(0, 0) as f64, c.importance(0, 1) as f64];
    let start = [w[0] as f64, b[0] as f64];
    // Task 2: L2 = 3 (theta + 1)^2 / 2 under the penalty.
    let mut exact = [0.0f64; 2];
    for _ in 0..200 {
        let data = [3.0 * (w[0] + 1.0), 3.0 * (b[0] + 1.0)];
        let mut g = data;
        c.add_penalty_gradient(&w, &b, &mut g);
        let before = [w[0] as f64, b[0] as f64];
        path_integral(c.acc, &g, w.iter().chain(b.iter()), 1.0);
        w[0] -= eta as f32 * g[0];
        b[0] -= eta as f32 * g[1];
        path_integral(c.acc, &g, w.iter().chain(b.iter()), -1.0);
        exact[0] -= data[0] as f64 * (w[0] as f64 - before[0]);
        exact[1] -= data[1] as f64 * (b[0] as f64 - before[1]);
    }
    c.consolidate(&w, &b).unwrap();
    for (i, &end) in [w[0] as f64, b[0] as f64].iter().enumerate() {
        let moved = end - start[i];
        let want = omega1[i] + exact[i].max(0.0) / (moved * moved + xi as f64);
        let got = c.importance(0, i) as f64;
        assert!(
            (got - want).abs() <= 0.02 * want,
            "param {i}: Omega {got}, exact {want}"
        );
    }
}

#[test]
fn log_codes_are_powers_of_two_eighths_of_the_max() {
    for q in 1..=255u8 {
        let k = 255 - q as i32;
        let want = 3.0f64 * 2f64.powf(-(k as f64) / 8.0);
        let got = dequantise(Quant::Log, q, 3.0) as f64;
        assert!((got - want).abs() <= 1e-6 * want, "q {q}: {got} vs {want}");
    }
    assert_eq!(dequantise(Quant::Log, 0, 3.0), 0.0);
}

#[test]
fn quantisation_round_trip_errors_are_bounded() {
    let max = 7.5f32;
    // Linear: absolute error at most max / 510.
    for i in 0..=10_000 {
        let b = max * i as f32 / 10_000.0;
        let back = dequantise(
            Quant::Linear,
            quantise(Quant::Linear, b, max),
            scale_for(Quant::Linear, max),
        );
        assert!((back - b).abs() <= max / 510.0 * 1.0001, "{b} -> {back}");
    }
    // Log: relative error at most 2^(1/16) - 1 above 2^-31.75 max; 0 far below.
    let bound = 2f32.powf(1.0 / 16.0) - 1.0;
    let mut b = max;
    while b > max * 2f32.powf(-31.7) {
        let back = dequantise(Quant::Log, quantise(Quant::Log, b, max), scale_for(Quant::Log, max));
        assert!((back - b).abs() <= bound * b * 1.0001, "{b} -> {back}");
        b *= 0.93;
    }
    assert_eq!(quantise(Quant::Log, max * 1e-12, max), 0);
    assert_eq!(quantise(Quant::Log, 0.0, max), 0);
    assert_eq!(quantise(Quant::Log, max, max), 255);
    assert_eq!(quantise(Quant::Linear, max, max), 255);
    // f16 anchors: relative error at most 2^-11 in the normal range.
    for &x in &[0.1f32, -0.0371, 1.5e-3, 3.25, -0.9999] {
        let back = f16::from_f32(x).to_f32();
        assert!((back - x).abs() <= x.abs() * 2f32.powi(-11), "{x} -> {back}");
    }
}

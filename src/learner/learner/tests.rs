//! Unit tests of the learner: gradients against finite differences, kernels against
//! each other, bad input refused without a change.

use super::*;
use crate::learner::{Kernels, LayerDims, Optimizer};

fn config(dims: &[usize], batch: usize, kernels: Kernels, optimizer: Optimizer) -> LearnerConfig {
    LearnerConfig {
        dims: LayerDims::new(dims).unwrap(),
        optimizer,
        batch_size: batch,
        max_tasks: 1,
        seed: 42,
        kernels,
        penalty: None,
        packnet: None,
        generator: None,
    }
}

fn inputs(n: usize, seed: u64) -> [f32; 256] {
    let mut r = Rng::new(seed);
    core::array::from_fn(|i| if i < n { r.uniform_range(-1.0, 1.0) } else { 0.0 })
}

fn loss_at(cfg: &LearnerConfig, weights: &[f32], biases: &[f32], x: &[f32], y: &[u16], active: Active<'_>) -> f64 {
    let mut buf = [0u8; 16384];
    let mut l = Learner::new(cfg, &mut buf).unwrap();
    l.weights.copy_from_slice(weights);
    l.biases.copy_from_slice(biases);
    l.compute_gradients(x, y, active).unwrap() as f64
}

/// Central finite differences of the loss against the analytic gradient of every
/// weight and bias of every layer (two ReLU layers and the softmax head), with a
/// masked class range so the masking's gradient is covered too.
#[test]
fn every_layer_backward_matches_finite_differences() {
    for kernels in [Kernels::Reference, Kernels::Fast] {
        let cfg = config(&[5, 7, 6, 4], 3, kernels, Optimizer::adam(1e-3));
        let x = inputs(15, 5);
        let x = &x[..15];
        let y = [1u16, 3, 2];
        let ranges = [
            ClassRange { start: 0, end: 2 },
            ClassRange { start: 2, end: 4 },
            ClassRange { start: 1, end: 4 },
        ];
        let active = Active::PerSample(&ranges);
        let mut buf = [0u8; 16384];
        let mut l = Learner::new(&cfg, &mut buf).unwrap();
        l.compute_gradients(x, &y, active).unwrap();
        let grads: [f32; 128] = core::array::from_fn(|i| l.grads.get(i).copied().unwrap_or(0.0));
        let (w0, b0) = (l.weights.to_owned(), l.biases.to_owned());
        let nw = w0.len();
        let eps = 1e-2f32;
        for i in 0..nw + b0.len() {
            let (mut wp, mut bp) = (w0.clone(), b0.clone());
            let (mut wm, mut bm) = (w0.clone(), b0.clone());
            if i < nw {
                wp[i] += eps;
                wm[i] -= eps;
            } else {
                bp[i - nw] += eps;
                bm[i - nw] -= eps;
            }
            let numeric =
                (loss_at(&cfg, &wp, &bp, x, &y, active) - loss_at(&cfg, &wm, &bm, x, &y, active)) / (2.0 * eps as f64);
            let analytic = grads[i] as f64;
            assert!(
                (numeric - analytic).abs() < 2e-3 + 2e-2 * analytic.abs(),
                "{kernels:?} param {i}: numeric {numeric} analytic {analytic}"
            );
        }
    }
}

#[test]
fn reference_and_fast_learners_follow_the_same_trajectory() {
    let mut bufs = ([0u8; 16384], [0u8; 16384]);
    let opt = Optimizer::Sgd { lr: 0.1, momentum: 0.9 };
    let mut a = Learner::new(&config(&[6, 9, 3], 4, Kernels::Reference, opt), &mut bufs.0).unwrap();
    let mut b = Learner::new(&config(&[6, 9, 3], 4, Kernels::Fast, opt), &mut bufs.1).unwrap();
    for s in 0..50 {
        let x = inputs(24, s);
        let y = [(s % 3) as u16, 0, 1, 2];
        let la = a.train_step(&x[..24], &y, Active::All).unwrap();
        let lb = b.train_step(&x[..24], &y, Active::All).unwrap();
        assert!((la - lb).abs() < 1e-4, "step {s}: {la} vs {lb}");
    }
    for (wa, wb) in a.weights().iter().zip(b.weights()) {
        assert!((wa - wb).abs() < 1e-4);
    }
}

#[test]
fn training_fits_a_separable_problem_and_predict_masks_classes() {
    let cfg = config(&[2, 16, 3], 8, Kernels::Reference, Optimizer::adam(0.05));
    let mut buf = [0u8; 8192];
    let mut l = Learner::new(&cfg, &mut buf).unwrap();
    let x = [
        1.0f32, 0.0, 0.0, 1.0, -1.0, -1.0, 0.9, 0.1, 0.1, 0.9, -0.8, -1.0, 1.0, 0.2, 0.0, 0.8,
    ];
    let y = [0u16, 1, 2, 0, 1, 2, 0, 1];
    let first = l.train_step(&x, &y, Active::All).unwrap();
    let mut last = first;
    for _ in 0..200 {
        last = l.train_step(&x, &y, Active::All).unwrap();
    }
    assert!(last < first * 0.1, "loss {first} -> {last}");
    let mut out = [9u16; 8];
    l.predict(&x, Active::All, &mut out).unwrap();
    assert_eq!(out, y);
    l.predict(&x, Active::Classes(ClassRange { start: 1, end: 3 }), &mut out)
        .unwrap();
    assert!(out.iter().all(|&c| c == 1 || c == 2));
}

#[test]
fn bad_inputs_are_errors_that_change_nothing() {
    let cfg = config(&[2, 4, 3], 2, Kernels::Reference, Optimizer::adam(0.01));
    let mut buf = [0u8; 4096];
    let mut l = Learner::new(&cfg, &mut buf).unwrap();
    let before = l.weights().to_owned();
    let all = Active::All;
    assert_eq!(
        l.train_step(&[0.0; 3], &[0], all),
        Err(Error::InputShape { got: 3, expected: 2 })
    );
    assert_eq!(
        l.train_step(&[0.0; 6], &[0, 0, 0], all),
        Err(Error::BatchSize { got: 3, max: 2 })
    );
    assert_eq!(
        l.train_step(&[0.0, f32::NAN], &[0], all),
        Err(Error::NonFiniteInput { index: 1 })
    );
    assert_eq!(
        l.train_step(&[0.0, 1.0], &[3], all),
        Err(Error::LabelOutOfRange { label: 3, classes: 3 })
    );
    let task = Active::Classes(ClassRange { start: 0, end: 2 });
    assert_eq!(
        l.train_step(&[0.0, 1.0], &[2], task),
        Err(Error::LabelInactive { label: 2 })
    );
    let bad = Active::Classes(ClassRange { start: 2, end: 5 });
    assert!(matches!(
        l.train_step(&[0.0, 1.0], &[2], bad),
        Err(Error::BadActiveClasses { .. })
    ));
    assert_eq!(l.weights(), &before[..]);
    assert_eq!(l.steps(), 0);
    let mut out = [7u16; 2];
    assert_eq!(
        l.predict(&[0.0, 1.0, 0.0, f32::INFINITY], all, &mut out),
        Err(Error::NonFiniteInput { index: 3 })
    );
    assert_eq!(out, [7, 7], "predict wrote before finding the bad value");
}

#[test]
fn a_diverging_step_is_an_error_and_is_not_applied() {
    let cfg = config(
        &[2, 4, 3],
        1,
        Kernels::Reference,
        Optimizer::Sgd { lr: 0.1, momentum: 0.0 },
    );
    let mut buf = [0u8; 4096];
    let mut l = Learner::new(&cfg, &mut buf).unwrap();
    l.params_mut().0.fill(1e30);
    let before = l.weights().to_owned();
    assert_eq!(l.train_step(&[1e10, 1e10], &[0], Active::All), Err(Error::Diverged));
    assert_eq!(l.weights(), &before[..]);
    assert_eq!(l.steps(), 0);
}

#[test]
fn an_arena_one_byte_short_is_refused_with_the_shortfall() {
    let cfg = config(&[8, 8, 2], 4, Kernels::Fast, Optimizer::adam(0.01));
    let total = Plan::new(&cfg).unwrap().total();
    let mut buf = [0u8; 4096];
    assert!(Learner::new(&cfg, &mut buf[..total]).is_ok());
    match Learner::new(&cfg, &mut buf[..total - 1]) {
        Err(Error::OverBudget { missing: 1, .. }) => {}
        other => panic!("{other:?}"),
    }
}

/// A defence's calls exist only on its handle, and only a learner built with the defence
/// gives the handle: without it, `penalised`, `replaying` and `packnet` are `None`
/// (that the learner itself has no such call is `Penalised`'s `compile_fail` doc test).
#[test]
fn a_defence_is_reached_only_through_the_handle_its_learner_was_built_with() {
    use crate::learner::{GeneratorConfig, GeneratorKind, Method, PackNetConfig, PenaltyConfig, Storage};
    let bare = config(&[4, 3], 2, Kernels::Reference, Optimizer::adam(1e-3));
    let mut buf = [0u8; 16384];
    let mut l = Learner::new(&bare, &mut buf).unwrap();
    assert!(l.penalised().is_none() && l.replaying().is_none() && l.packnet().is_none());
    let full = LearnerConfig {
        max_tasks: 2,
        penalty: Some(PenaltyConfig {
            method: Method::Mas,
            lambda: 1.0,
            storage: Storage::F32,
        }),
        packnet: Some(PackNetConfig { prune_ratio: 0.5 }),
        generator: Some(GeneratorConfig {
            classes: 3,
            kind: GeneratorKind::Gaussian { rank: 0, slots: 3 },
            distill: None,
        }),
        ..bare
    };
    let mut buf = [0u8; 16384];
    let mut l = Learner::new(&full, &mut buf).unwrap();
    let x = [0.5, -0.5, 0.25, 1.0];
    l.replaying().unwrap().observe(&x, 1).unwrap();
    l.penalised()
        .unwrap()
        .accumulate_importance(&x, 1, Active::All)
        .unwrap();
    l.train_step(&[x, x].concat(), &[1, 2], Active::All).unwrap();
    // The protocol ends the task through the same handles.
    let mut end = crate::learner::protocol::TaskEnd::new(ClassRange { start: 0, end: 3 })
        .observed(true)
        .estimated(true);
    assert_eq!(end.next(&mut l), Ok(None));
    assert_eq!((l.packnet_tasks(), l.consolidated_tasks()), (1, 1));
    assert_eq!(l.generator().map(|g| g.count(1)), Some(1));
}

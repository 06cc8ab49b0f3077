//! Selective synaptic plasticity in the core: each importance estimator against a brute
//! force, the penalty's gradient against finite differences, refusals that change nothing,
//! and the plan's bytes.

use edgecl::learner::plan::names;
use edgecl::{
    Active, Error, FisherLabels, Kernels, LayerDims, Learner, LearnerConfig, Method, Optimizer, PenaltyConfig, Plan,
    Quant, Storage,
};

fn config(dims: &[usize], method: Method, lambda: f32, storage: Storage, max_tasks: usize) -> LearnerConfig {
    LearnerConfig {
        dims: LayerDims::new(dims).unwrap(),
        optimizer: Optimizer::adam(0.01),
        batch_size: 4,
        max_tasks,
        seed: 9,
        kernels: Kernels::Reference,
        penalty: Some(PenaltyConfig {
            method,
            lambda,
            storage,
        }),
        packnet: None,
        generator: None,
    }
}

fn samples(n: usize, width: usize, seed: u64) -> Vec<f32> {
    let mut rng = edgecl::learner::rng::Rng::new(seed);
    (0..n * width).map(|_| rng.uniform_range(-1.0, 1.0)).collect()
}

const EWC: Method = Method::Ewc {
    fisher: FisherLabels::True,
};

#[test]
fn fisher_is_the_mean_of_squared_per_sample_gradients() {
    let (dims, n) = ([3, 5, 4], 7);
    let cfg = config(&dims, EWC, 1.0, Storage::F32, 3);
    let x = samples(n, 3, 1);
    let labels: Vec<u16> = (0..n).map(|i| (i % 4) as u16).collect();
    let mut arena = vec![0u8; Plan::new(&cfg).unwrap().total()];
    let mut learner = Learner::new(&cfg, &mut arena).unwrap();
    // Brute force: each sample's gradient on its own, squared, averaged.
    let params = learner.gradients().len();
    let mut want = vec![0.0f64; params];
    for i in 0..n {
        learner
            .compute_gradients(&x[i * 3..i * 3 + 3], &labels[i..i + 1], Active::All)
            .unwrap();
        for (w, &g) in want.iter_mut().zip(learner.gradients()) {
            *w += (g as f64).powi(2) / n as f64;
        }
    }
    for i in 0..n {
        learner
            .penalised()
            .unwrap()
            .accumulate_importance(&x[i * 3..i * 3 + 3], labels[i], Active::All)
            .unwrap();
    }
    learner.penalised().unwrap().consolidate().unwrap();
    for (i, &w) in want.iter().enumerate() {
        let got = learner.importance(0, i).unwrap() as f64;
        assert!(
            (got - w).abs() <= 1e-6 + 1e-5 * w,
            "param {i}: Fisher {got}, brute force {w}"
        );
    }
    assert!(want.iter().any(|&w| w > 1e-3));
    // The anchors are the parameters at consolidation.
    assert_eq!(learner.anchor(0, 0), Some(learner.weights()[0]));
}

#[test]
fn sampled_fisher_draws_labels_from_the_model() {
    let x = samples(200, 3, 2);
    // The first importances of an online-EWC learner shown label 0 every time.
    let fisher = |fisher: FisherLabels| -> Vec<f32> {
        let cfg = config(
            &[3, 6, 4],
            Method::OnlineEwc { gamma: 1.0, fisher },
            1.0,
            Storage::F32,
            1,
        );
        let mut arena = vec![0u8; Plan::new(&cfg).unwrap().total()];
        let mut learner = Learner::new(&cfg, &mut arena).unwrap();
        for xs in x.chunks(3) {
            learner
                .penalised()
                .unwrap()
                .accumulate_importance(xs, 0, Active::All)
                .unwrap();
        }
        learner.penalised().unwrap().consolidate().unwrap();
        (0..10).map(|i| learner.importance(0, i).unwrap()).collect()
    };
    let (sampled, truth) = (fisher(FisherLabels::Sampled), fisher(FisherLabels::True));
    assert_ne!(sampled, truth);
    assert!(sampled.iter().all(|&v| v >= 0.0 && v.is_finite()));
}

/// MAS against its definition: the mean over samples of `|d ||f(x)||^2 / d theta_i|`,
/// each derivative by central finite differences in f64 around f32 parameters.
#[test]
fn mas_is_the_mean_absolute_gradient_of_the_squared_output_norm() {
    let (dims, n) = ([3, 4, 5], 5);
    let active = Active::Classes(edgecl::learner::learner::ClassRange { start: 1, end: 4 });
    let cfg = config(&dims, Method::Mas, 1.0, Storage::F32, 1);
    let x = samples(n, 3, 3);
    let mut arena = vec![0u8; Plan::new(&cfg).unwrap().total()];
    let mut learner = Learner::new(&cfg, &mut arena).unwrap();
    for xs in x.chunks(3) {
        learner
            .penalised()
            .unwrap()
            .accumulate_importance(xs, 2, active)
            .unwrap();
    }
    learner.penalised().unwrap().consolidate().unwrap();
    let nw = learner.weights().len();
    let params = nw + learner.biases().len();
    let norm = |l: &mut Learner<'_>, xs: &[f32]| -> f64 {
        l.logits(xs).unwrap()[1..4].iter().map(|&z| (z as f64).powi(2)).sum()
    };
    for i in 0..params {
        let mut mean = 0.0f64;
        for xs in x.chunks(3) {
            let eps = 1e-3f32;
            let orig = if i < nw {
                learner.weights()[i]
            } else {
                learner.biases()[i - nw]
            };
            let at = |v: f32, l: &mut Learner<'_>| {
                let (w, b) = l.params_mut();
                if i < nw {
                    w[i] = v
                } else {
                    b[i - nw] = v
                }
            };
            at(orig + eps, &mut learner);
            let up = norm(&mut learner, xs);
            at(orig - eps, &mut learner);
            let down = norm(&mut learner, xs);
            at(orig, &mut learner);
            mean += ((up - down) / (2.0 * eps as f64)).abs() / n as f64;
        }
        let got = learner.importance(0, i).unwrap() as f64;
        assert!(
            (got - mean).abs() <= 2e-3 + 2e-2 * mean,
            "param {i}: MAS {got}, finite differences {mean}"
        );
    }
}

/// The gradient `compute_gradients` returns with a penalty is that of data loss plus
/// [`Learner::penalty`], for compact and f32 storage and several slots.
#[test]
fn the_penalty_gradient_passes_a_finite_difference_check() {
    let dims = [4, 5, 3];
    for storage in [
        Storage::F32,
        Storage::Compact(Quant::Log),
        Storage::Compact(Quant::Linear),
    ] {
        for method in [
            EWC,
            Method::OnlineEwc {
                gamma: 0.9,
                fisher: FisherLabels::True,
            },
            Method::Mas,
        ] {
            let cfg = config(&dims, method, 50.0, storage, 3);
            let x = samples(40, 4, 4);
            let y: Vec<u16> = (0..40).map(|i| (i % 3) as u16).collect();
            let mut arena = vec![0u8; Plan::new(&cfg).unwrap().total()];
            let mut l = Learner::new(&cfg, &mut arena).unwrap();
            // Two tasks: train, estimate, consolidate; then move away from the anchors.
            for task in 0..2 {
                for b in 0..10 {
                    let r = (b * 4) % 40;
                    l.train_step(&x[r * 4..r * 4 + 16], &y[r..r + 4], Active::All).unwrap();
                }
                for i in 0..20 {
                    l.penalised()
                        .unwrap()
                        .accumulate_importance(&x[i * 4..i * 4 + 4], y[i], Active::All)
                        .unwrap();
                }
                l.penalised().unwrap().consolidate().unwrap();
                assert_eq!(l.consolidated_tasks(), task + 1);
            }
            for b in 0..5 {
                l.train_step(&x[b * 16..b * 16 + 16], &y[b * 4..b * 4 + 4], Active::All)
                    .unwrap();
            }
            assert!(l.penalty() > 0.0, "{method:?} {storage:?}: no penalty");
            let (xs, ys) = (&x[..16], &y[..4]);
            l.compute_gradients(xs, ys, Active::All).unwrap();
            let analytic = l.gradients().to_vec();
            let nw = l.weights().len();
            for i in (0..analytic.len()).step_by(3) {
                let eps = 2e-3f32;
                let orig = if i < nw { l.weights()[i] } else { l.biases()[i - nw] };
                let total = |v: f32, l: &mut Learner<'_>| -> f64 {
                    {
                        let (w, b) = l.params_mut();
                        if i < nw {
                            w[i] = v
                        } else {
                            b[i - nw] = v
                        }
                    }
                    l.compute_gradients(xs, ys, Active::All).unwrap() as f64 + l.penalty()
                };
                let up = total(orig + eps, &mut l);
                let down = total(orig - eps, &mut l);
                total(orig, &mut l);
                let numeric = (up - down) / (2.0 * eps as f64);
                let a = analytic[i] as f64;
                assert!(
                    (numeric - a).abs() <= 2e-3 + 2e-2 * a.abs(),
                    "{method:?} {storage:?} param {i}: numeric {numeric}, analytic {a}"
                );
            }
        }
    }
}

#[test]
fn a_non_finite_gradient_is_refused_and_changes_nothing() {
    let cfg = config(&[3, 4, 2], EWC, f32::MAX, Storage::F32, 2);
    let x = samples(8, 3, 5);
    let y = [0u16, 1, 0, 1];
    let mut arena = vec![0u8; Plan::new(&cfg).unwrap().total()];
    let mut l = Learner::new(&cfg, &mut arena).unwrap();
    for _ in 0..20 {
        l.train_step(&x[..12], &y, Active::All).unwrap();
    }
    for i in 0..4 {
        l.penalised()
            .unwrap()
            .accumulate_importance(&x[i * 3..i * 3 + 3], y[i], Active::All)
            .unwrap();
    }
    l.penalised().unwrap().consolidate().unwrap();
    // Move one important weight far away: lambda * b * distance overflows.
    assert!(l.importance(0, 0).unwrap() > 1e-6);
    l.params_mut().0[0] += 1e6;
    let (before_w, before_b, steps) = (l.weights().to_vec(), l.biases().to_vec(), l.steps());
    match l.train_step(&x[12..24], &y, Active::All) {
        Err(Error::NonFiniteGradient { .. }) => {}
        other => panic!("expected a refused update, got {other:?}"),
    }
    assert_eq!(l.weights(), &before_w[..]);
    assert_eq!(l.biases(), &before_b[..]);
    assert_eq!(l.steps(), steps);
}

#[test]
fn a_non_finite_importance_is_refused_and_changes_nothing() {
    // SI with a vanishing xi: a parameter that did not move divides by ~0.
    let cfg = config(
        &[3, 4, 2],
        Method::Si { xi: 1e-45 },
        1.0,
        Storage::Compact(Quant::Log),
        1,
    );
    let x = samples(8, 3, 6);
    let y = [0u16, 1, 0, 1];
    let mut arena = vec![0u8; Plan::new(&cfg).unwrap().total()];
    let mut l = Learner::new(&cfg, &mut arena).unwrap();
    for _ in 0..5 {
        l.train_step(&x[..12], &y, Active::All).unwrap();
    }
    // Pretend a parameter earned importance without moving: set it back to its anchor.
    let anchor = l.anchor(0, 0).unwrap();
    l.params_mut().0[0] = anchor;
    let acc = l.importance_accumulator().unwrap().to_vec();
    assert!(acc[0] > 0.0, "path integral of param 0: {}", acc[0]);
    match l.penalised().unwrap().consolidate() {
        Err(Error::NonFiniteImportance { index: 0 }) => {}
        other => panic!("expected a refused consolidation, got {other:?}"),
    }
    assert_eq!(l.consolidated_tasks(), 0);
    assert_eq!(l.importance_accumulator().unwrap(), &acc[..]);
    assert_eq!(l.importance(0, 0), Some(0.0));
}

#[test]
fn per_task_ewc_has_max_tasks_slots_and_refuses_one_more() {
    let cfg = config(&[3, 4, 2], EWC, 1.0, Storage::Compact(Quant::Log), 2);
    let x = samples(2, 3, 7);
    let mut arena = vec![0u8; Plan::new(&cfg).unwrap().total()];
    let mut l = Learner::new(&cfg, &mut arena).unwrap();
    assert_eq!(l.penalised().unwrap().consolidate(), Err(Error::NoImportanceSamples));
    for _ in 0..2 {
        l.penalised()
            .unwrap()
            .accumulate_importance(&x[..3], 1, Active::All)
            .unwrap();
        l.penalised().unwrap().consolidate().unwrap();
    }
    l.penalised()
        .unwrap()
        .accumulate_importance(&x[..3], 1, Active::All)
        .unwrap();
    assert_eq!(
        l.penalised().unwrap().consolidate(),
        Err(Error::TasksExhausted { max: 2 })
    );
    // Without a penalty there is no handle to estimate with.
    let mut plain = config(&[3, 4, 2], EWC, 1.0, Storage::F32, 1);
    plain.penalty = None;
    let mut arena = vec![0u8; Plan::new(&plain).unwrap().total()];
    let mut l = Learner::new(&plain, &mut arena).unwrap();
    assert!(l.penalised().is_none());
}

#[test]
fn the_plan_shows_each_compact_component_and_per_task_ewc_grows_with_max_tasks() {
    let dims = [256, 10, 10]; // 2680 parameters
    let params = 256 * 10 + 10 + 100 + 10;
    let online = Method::OnlineEwc {
        gamma: 1.0,
        fisher: FisherLabels::True,
    };
    let pad = |n: usize| n.div_ceil(16) * 16;
    let compact = Plan::new(&config(&dims, online, 1.0, Storage::Compact(Quant::Log), 10)).unwrap();
    assert_eq!(compact.bytes_of(names::IMPORTANCE), pad(params));
    assert_eq!(compact.bytes_of(names::SCALES), pad(4 * 4));
    assert_eq!(compact.bytes_of(names::ANCHORS), pad(2 * params));
    assert_eq!(compact.bytes_of(names::ACCUMULATOR), pad(4 * params));
    let wide = Plan::new(&config(&dims, online, 1.0, Storage::F32, 10)).unwrap();
    assert_eq!(wide.bytes_of(names::IMPORTANCE), pad(4 * params));
    assert_eq!(wide.bytes_of(names::SCALES), 0);
    assert_eq!(wide.bytes_of(names::ANCHORS), pad(4 * params));
    // Online EWC, SI and MAS do not depend on the number of tasks; per-task EWC does.
    for m in [online, Method::Si { xi: 0.1 }, Method::Mas] {
        let a = Plan::new(&config(&dims, m, 1.0, Storage::Compact(Quant::Log), 2)).unwrap();
        let b = Plan::new(&config(&dims, m, 1.0, Storage::Compact(Quant::Log), 20)).unwrap();
        assert_eq!(a.total(), b.total(), "{m:?}");
    }
    let ewc5 = Plan::new(&config(&dims, EWC, 1.0, Storage::Compact(Quant::Log), 5)).unwrap();
    assert_eq!(ewc5.bytes_of(names::IMPORTANCE), pad(5 * params));
    assert_eq!(ewc5.bytes_of(names::ANCHORS), pad(10 * params));
    // Edge scale: a head of a few thousand parameters with online EWC or SI, compact,
    // fits 64 KB with all its scratch (SGD with momentum, batch 16).
    for m in [online, Method::Si { xi: 0.1 }] {
        let mut c = config(&dims, m, 1.0, Storage::Compact(Quant::Log), 10);
        c.optimizer = Optimizer::Sgd {
            lr: 0.01,
            momentum: 0.9,
        };
        c.batch_size = 16;
        let plan = Plan::new(&c).unwrap();
        assert!(plan.total() <= 64 * 1024, "{m:?}: {} bytes", plan.total());
        let mut arena = vec![0u8; plan.total()];
        let l = Learner::new(&c, &mut arena).unwrap();
        // What the learner carved is the plan, less the alignment it did not need.
        assert!(l.arena_used() <= plan.total() && l.arena_used() + 15 >= plan.total());
    }
}

/// With SGD the update is exactly `theta - lr * (data gradient + penalty gradient)`: the
/// penalty lives in the gradient, so every optimizer applies it.
#[test]
fn sgd_applies_the_penalty_gradient() {
    let mut cfg = config(&[3, 4, 2], Method::Mas, 20.0, Storage::F32, 1);
    cfg.optimizer = Optimizer::Sgd {
        lr: 0.05,
        momentum: 0.0,
    };
    let x = samples(8, 3, 8);
    let y = [0u16, 1, 1, 0];
    let mut arena = vec![0u8; Plan::new(&cfg).unwrap().total()];
    let mut l = Learner::new(&cfg, &mut arena).unwrap();
    for i in 0..8 {
        l.penalised()
            .unwrap()
            .accumulate_importance(&x[(i % 4) * 3..(i % 4) * 3 + 3], y[i % 4], Active::All)
            .unwrap();
    }
    l.penalised().unwrap().consolidate().unwrap();
    l.params_mut().0.iter_mut().for_each(|w| *w += 0.1);
    l.compute_gradients(&x[12..24], &y, Active::All).unwrap();
    let with_penalty = l.gradients().to_vec();
    let (before, before_b) = (l.weights().to_vec(), l.biases().to_vec());
    l.train_step(&x[12..24], &y, Active::All).unwrap();
    for (i, ((&after, &b), &g)) in l.weights().iter().zip(&before).zip(&with_penalty).enumerate() {
        assert_eq!(after, b - 0.05 * g, "weight {i}");
    }
    // The penalty is part of that gradient: it pulls towards the anchors.
    let mut plain = cfg;
    plain.penalty = None;
    let mut arena2 = vec![0u8; Plan::new(&plain).unwrap().total()];
    let mut p = Learner::new(&plain, &mut arena2).unwrap();
    p.params_mut().0.copy_from_slice(&before);
    p.params_mut().1.copy_from_slice(&before_b);
    p.compute_gradients(&x[12..24], &y, Active::All).unwrap();
    assert!(p
        .gradients()
        .iter()
        .zip(&with_penalty)
        .any(|(a, b)| (a - b).abs() > 1e-4));
}

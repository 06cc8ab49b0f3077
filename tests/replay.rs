//! The replay generators in the core: Welford statistics against two-pass ones, the
//! Gaussian's principal directions and compact records, seeded deterministic sampling
//! whose moments match, the reservoir buffer, the VAE's ELBO gradient against finite
//! differences, and clear refusals (a class never seen, full slots).

use edgecl::learner::learner::ClassRange;
use edgecl::learner::plan::names;
use edgecl::learner::rng::Rng;
use edgecl::{
    Error, Generator, GeneratorConfig, GeneratorKind, Kernels, LayerDims, Learner, LearnerConfig, Likelihood,
    Optimizer, Plan, VaeConfig,
};

fn config(features: usize, classes: usize, seed: u64, kind: GeneratorKind) -> LearnerConfig {
    LearnerConfig {
        dims: LayerDims::new(&[features, 8, classes]).unwrap(),
        optimizer: Optimizer::adam(1e-3),
        batch_size: 16,
        max_tasks: 5,
        seed,
        kernels: Kernels::Reference,
        penalty: None,
        packnet: None,
        generator: Some(GeneratorConfig {
            classes,
            kind,
            distill: None,
        }),
    }
}

fn gaussian(rank: usize, slots: usize) -> GeneratorKind {
    GeneratorKind::Gaussian { rank, slots }
}

fn samples(n: usize, width: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n * width).map(|_| rng.uniform_range(-2.0, 3.0)).collect()
}

fn the_gaussian<'l, 'a>(l: &'l Learner<'a>) -> &'l edgecl::learner::replay::Gaussian<'a> {
    match l.generator() {
        Some(Generator::Gaussian(g)) => g,
        other => panic!("{other:?}"),
    }
}

#[test]
fn welford_statistics_equal_two_pass_statistics_and_survive_the_commit() {
    let (d, n) = (5, 200);
    let cfg = config(d, 3, 1, gaussian(2, 2));
    let mut arena = vec![0u8; Plan::new(&cfg).unwrap().total()];
    let mut l = Learner::new(&cfg, &mut arena).unwrap();
    let x = samples(n, d, 7);
    for (i, row) in x.chunks_exact(d).enumerate() {
        l.replaying().unwrap().observe(row, (i % 2) as u16).unwrap();
    }
    for committed in [false, true] {
        if committed {
            l.replaying().unwrap().commit().unwrap();
        }
        let g = the_gaussian(&l);
        assert_eq!(g.working(), if committed { 0 } else { 2 });
        // Working slots hold f32 sums; the committed record is f16 and i8.
        let tol = if committed { 2e-3 } else { 1e-5 };
        for class in 0..2 {
            let rows: Vec<&[f32]> = x.chunks_exact(d).skip(class).step_by(2).collect();
            assert_eq!(g.count(class), rows.len() as u32);
            for j in 0..d {
                let mean = rows.iter().map(|r| r[j] as f64).sum::<f64>() / rows.len() as f64;
                let var = rows.iter().map(|r| (r[j] as f64 - mean).powi(2)).sum::<f64>() / rows.len() as f64;
                let m = g.mean(class, j).unwrap() as f64;
                assert!(
                    (m - mean).abs() < tol * mean.abs().max(1.0),
                    "mean {class} {j}: {m} vs {mean}"
                );
                let v = g.variance(class, j).unwrap() as f64;
                let vtol = if committed { 2e-2 } else { 1e-4 };
                assert!(
                    (v - var).abs() < vtol * var.max(1.0),
                    "variance {class} {j}: {v} vs {var}"
                );
            }
        }
        assert_eq!(g.count(2), 0);
    }
}

/// Samples of a class stretched along one direction: `mean + 3 t u + 0.3 e`.
fn stretched(n: usize, rng: &mut Rng) -> (Vec<f32>, [f32; 4], [f32; 4]) {
    let u = [0.5f32, -0.5, 0.5, 0.5];
    let mean = [1.0f32, 2.0, -1.0, 0.0];
    let mut x = Vec::with_capacity(n * 4);
    for _ in 0..n {
        let t = rng.normal();
        for j in 0..4 {
            x.push(mean[j] + 3.0 * t * u[j] + 0.3 * rng.normal());
        }
    }
    (x, u, mean)
}

#[test]
fn the_low_rank_gaussian_finds_the_leading_direction_and_samples_its_covariance() {
    let cfg = config(4, 2, 1, gaussian(1, 1));
    let mut arena = vec![0u8; Plan::new(&cfg).unwrap().total()];
    let mut l = Learner::new(&cfg, &mut arena).unwrap();
    let mut rng = Rng::new(3);
    let (x, u, mean) = stretched(5000, &mut rng);
    for row in x.chunks_exact(4) {
        l.replaying().unwrap().observe(row, 0).unwrap();
    }
    l.replaying().unwrap().commit().unwrap();
    let g = the_gaussian(&l);
    let f: Vec<f32> = (0..4).map(|j| g.factor(0, 0, j).unwrap()).collect();
    assert_eq!(
        (g.factor(0, 1, 0), g.mean(2, 0), g.variance(0, 4)),
        (None, None, None),
        "out of range"
    );
    let norm = f.iter().map(|v| v * v).sum::<f32>().sqrt();
    let cos = f.iter().zip(&u).map(|(a, b)| a * b).sum::<f32>().abs() / norm;
    assert!(cos > 0.99, "direction cosine {cos}");
    assert!((norm - 3.0).abs() < 0.3, "direction's sd {norm}, expected 3");
    // The samples' covariance along u and across it.
    let mut out = vec![0f32; 4 * 20000];
    l.replaying().unwrap().generate(0, &mut out).unwrap();
    let (mut along, mut across, mut m0) = (0f64, 0f64, 0f64);
    let n = out.len() / 4;
    for row in out.chunks_exact(4) {
        let dev: Vec<f32> = row.iter().zip(&mean).map(|(a, b)| a - b).collect();
        let p = dev.iter().zip(&u).map(|(a, b)| a * b).sum::<f32>() as f64;
        along += p * p;
        across += dev.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() - p * p;
        m0 += row[0] as f64;
    }
    let (along, across) = ((along / n as f64).sqrt(), (across / (3 * n) as f64).sqrt());
    assert!((along - 3.0).abs() < 0.2, "sd along the direction {along}");
    // The direction's variance takes the noise along it too, so the diagonal residual is
    // a little below the true 0.3 (PCA, not factor analysis): near it, far below 3.
    assert!((0.15..0.35).contains(&across), "sd across it {across}");
    assert!((m0 / n as f64 - 1.0).abs() < 0.1);
    // A diagonal Gaussian (rank 0) of the same data cannot: its samples spread evenly.
    let diag = config(4, 2, 1, gaussian(0, 1));
    let mut arena = vec![0u8; Plan::new(&diag).unwrap().total()];
    let mut l = Learner::new(&diag, &mut arena).unwrap();
    for row in x.chunks_exact(4) {
        l.replaying().unwrap().observe(row, 0).unwrap();
    }
    l.replaying().unwrap().generate(0, &mut out).unwrap();
    let along: f64 = out
        .chunks_exact(4)
        .map(|r| {
            let p: f32 = r.iter().zip(&mean).zip(&u).map(|((a, b), c)| (a - b) * c).sum();
            (p as f64).powi(2)
        })
        .sum::<f64>()
        / n as f64;
    assert!(along.sqrt() < 2.0, "diagonal samples along u: {}", along.sqrt());
}

#[test]
fn replay_samples_old_classes_deterministically_with_their_moments() {
    let d = 3;
    for kind in [gaussian(0, 4), gaussian(2, 2)] {
        let run = |seed| {
            let cfg = config(d, 4, seed, kind);
            let mut arena = vec![0u8; Plan::new(&cfg).unwrap().total()];
            let mut l = Learner::new(&cfg, &mut arena).unwrap();
            // Class 0 around (1, -2, 0.5) with sd 0.5; class 1 around (-3, 4, 2) with sd 2.
            let mut rng = Rng::new(5);
            for i in 0..4000 {
                let (c, mu, sd) = if i % 4 == 0 {
                    (1u16, [-3.0f32, 4.0, 2.0], 2.0f32)
                } else {
                    (0, [1.0, -2.0, 0.5], 0.5)
                };
                let x: Vec<f32> = mu.iter().map(|m| m + sd * rng.normal()).collect();
                l.replaying().unwrap().observe(&x, c).unwrap();
            }
            l.replaying().unwrap().commit().unwrap();
            let mut x = vec![0f32; 4000 * d];
            let mut y = vec![0u16; 4000];
            // Task of classes 2..4 is being learned: replay only 0 and 1, in proportion 3:1.
            let filled = l
                .replaying()
                .unwrap()
                .fill(&mut x, &mut y, ClassRange { start: 2, end: 4 })
                .unwrap();
            assert_eq!(filled, 4000);
            (x, y)
        };
        let (x, y) = run(1);
        assert_eq!(run(1), (x.clone(), y.clone()), "the same seed replays the same samples");
        assert_ne!(run(2).0, x, "another seed replays others");
        let ones = y.iter().filter(|&&c| c == 1).count() as f64 / y.len() as f64;
        assert!((ones - 0.25).abs() < 0.03, "class 1 share {ones}");
        assert!(y.iter().all(|&c| c < 2));
        for (class, mu, sd) in [(0u16, [1.0f64, -2.0, 0.5], 0.5f64), (1, [-3.0, 4.0, 2.0], 2.0)] {
            let rows: Vec<&[f32]> = x
                .chunks_exact(d)
                .zip(&y)
                .filter(|(_, &c)| c == class)
                .map(|(r, _)| r)
                .collect();
            for j in 0..d {
                let m = rows.iter().map(|r| r[j] as f64).sum::<f64>() / rows.len() as f64;
                let v = rows.iter().map(|r| (r[j] as f64 - m).powi(2)).sum::<f64>() / rows.len() as f64;
                assert!(
                    (m - mu[j]).abs() < 4.0 * sd / (rows.len() as f64).sqrt() + 0.05,
                    "{kind:?} class {class} mean {j}: {m}"
                );
                assert!(
                    (v.sqrt() - sd).abs() < 0.12 * sd,
                    "{kind:?} class {class} sd {j}: {}",
                    v.sqrt()
                );
            }
        }
    }
}

#[test]
fn unseen_classes_full_slots_and_bad_samples_are_errors_that_change_nothing() {
    let cfg = config(2, 3, 1, gaussian(1, 1));
    let plan = Plan::new(&cfg).unwrap();
    assert_eq!(plan.bytes_of(names::GENERATOR_MEANS), 16, "3 x 2 f16 means, padded");
    assert_eq!(
        plan.bytes_of(names::GENERATOR_SLOTS),
        3 * 2 * 4 + 8,
        "one slot: mean, M2, a direction"
    );
    let mut arena = vec![0u8; plan.total()];
    let mut l = Learner::new(&cfg, &mut arena).unwrap();
    let mut out = [9.0f32; 2];
    assert_eq!(
        l.replaying().unwrap().generate(1, &mut out),
        Err(Error::UnknownClass { class: 1 })
    );
    assert_eq!(out, [9.0, 9.0]);
    // Nothing old to replay yet: nothing written.
    let mut y = [7u16; 2];
    let mut x = [9.0f32; 4];
    assert_eq!(
        l.replaying()
            .unwrap()
            .fill(&mut x, &mut y, ClassRange { start: 0, end: 1 }),
        Ok(0)
    );
    assert_eq!((x, y), ([9.0; 4], [7, 7]));
    assert_eq!(
        l.replaying().unwrap().observe(&[0.0, f32::NAN], 0),
        Err(Error::NonFiniteInput { index: 1 })
    );
    assert_eq!(
        l.replaying().unwrap().observe(&[0.0, 1.0], 3),
        Err(Error::LabelOutOfRange { label: 3, classes: 3 })
    );
    assert_eq!(the_gaussian(&l).count(0), 0, "refused samples change nothing");
    // One working slot: a second class before the commit is refused, after it accepted;
    // the first class reopens from its record and keeps counting.
    l.replaying().unwrap().observe(&[1.0, 2.0], 0).unwrap();
    l.replaying().unwrap().observe(&[3.0, 2.0], 0).unwrap();
    assert_eq!(
        l.replaying().unwrap().observe(&[0.0, 1.0], 1),
        Err(Error::GeneratorSlotsFull { slots: 1, class: 1 })
    );
    assert_eq!(the_gaussian(&l).count(1), 0);
    l.replaying().unwrap().commit().unwrap();
    l.replaying().unwrap().observe(&[0.0, 1.0], 1).unwrap();
    l.replaying().unwrap().commit().unwrap();
    l.replaying().unwrap().observe(&[2.0, 2.0], 0).unwrap();
    let g = the_gaussian(&l);
    assert_eq!(g.count(0), 3);
    assert!((g.mean(0, 0).unwrap() - 2.0).abs() < 1e-3 && (g.mean(0, 1).unwrap() - 2.0).abs() < 1e-3);
    let v = g.variance(0, 0).unwrap();
    assert!((v - 2.0 / 3.0).abs() < 1e-2, "{v}");
    let mut plain = cfg;
    plain.generator = None;
    let mut arena = vec![0u8; Plan::new(&plain).unwrap().total()];
    let mut l = Learner::new(&plain, &mut arena).unwrap();
    // Without a generator there is no handle to observe or commit with.
    assert!(l.replaying().is_none());
    assert!(
        GeneratorConfig {
            classes: 3,
            kind: gaussian(17, 1),
            distill: None,
        }
        .validate()
        .is_err(),
        "rank above 16"
    );
}

#[test]
fn the_reservoir_keeps_a_uniform_sample_of_the_stream_within_its_rows() {
    let d = 4;
    let cfg = config(d, 4, 1, GeneratorKind::Buffer { capacity: 200 });
    let plan = Plan::new(&cfg).unwrap();
    assert_eq!(plan.bytes_of(names::BUFFER_ROWS), 800);
    let mut arena = vec![0u8; plan.total()];
    let mut l = Learner::new(&cfg, &mut arena).unwrap();
    // 3000 samples of class 0, then 1000 of class 1: a uniform sample keeps 3:1.
    let mut rng = Rng::new(2);
    for i in 0..4000 {
        let c = u16::from(i >= 3000);
        let x: Vec<f32> = (0..d).map(|j| c as f32 * 10.0 + j as f32 + rng.normal()).collect();
        l.replaying().unwrap().observe(&x, c).unwrap();
    }
    let Some(Generator::Buffer(b)) = l.generator() else {
        panic!()
    };
    assert_eq!((b.len(), b.capacity()), (200, 200));
    let mut x = vec![0f32; 2000 * d];
    let mut y = vec![0u16; 2000];
    assert_eq!(
        l.replaying()
            .unwrap()
            .fill(&mut x, &mut y, ClassRange { start: 2, end: 4 }),
        Ok(2000)
    );
    let ones = y.iter().filter(|&&c| c == 1).count() as f64 / 2000.0;
    assert!((ones - 0.25).abs() < 0.08, "class 1 share {ones}");
    // Rows come back within the i8 step of what was stored, with their labels.
    for (row, &c) in x.chunks_exact(d).zip(&y) {
        let m: f32 = row.iter().zip(0..).map(|(v, j)| v - j as f32).sum::<f32>() / d as f32;
        assert!((m - c as f32 * 10.0).abs() < 3.0, "row {row:?} labelled {c}");
    }
    assert_eq!(
        l.replaying().unwrap().generate(3, &mut x[..d]),
        Err(Error::UnknownClass { class: 3 })
    );
    // Excluding both classes leaves nothing to replay.
    assert_eq!(
        l.replaying()
            .unwrap()
            .fill(&mut x, &mut y, ClassRange { start: 0, end: 2 }),
        Ok(0)
    );
}

fn vae_config(likelihood: Likelihood) -> LearnerConfig {
    let mut c = config(
        6,
        3,
        4,
        GeneratorKind::Vae(VaeConfig {
            hidden: 5,
            latent: 2,
            likelihood,
            optimizer: Optimizer::adam(1e-2),
        }),
    );
    c.batch_size = 4;
    c
}

#[test]
fn the_vae_elbo_gradient_matches_finite_differences() {
    for likelihood in [Likelihood::Gaussian, Likelihood::Bernoulli] {
        let cfg = vae_config(likelihood);
        let mut arena = vec![0u8; Plan::new(&cfg).unwrap().total()];
        let mut l = Learner::new(&cfg, &mut arena).unwrap();
        let mut rng = Rng::new(9);
        let x: Vec<f32> = (0..4 * 6).map(|_| rng.uniform_range(0.05, 0.95)).collect();
        let y = [0u16, 2, 1, 2];
        let eps: Vec<f32> = (0..4 * 2).map(|_| rng.normal()).collect();
        l.replaying().unwrap().generator_gradients(&x, &y, Some(&eps)).unwrap();
        let grads = match l.generator() {
            Some(Generator::Vae(v)) => v.gradients().to_vec(),
            _ => panic!(),
        };
        let params = grads.len();
        let mut checked = 0;
        for i in (0..params).step_by(3) {
            let mut loss_at = |delta: f32| {
                let Some(Generator::Vae(v)) = l.generator_mut() else {
                    panic!()
                };
                let old = v.params()[i];
                v.params_mut()[i] = old + delta;
                let loss = l.replaying().unwrap().generator_gradients(&x, &y, Some(&eps)).unwrap() as f64;
                let Some(Generator::Vae(v)) = l.generator_mut() else {
                    panic!()
                };
                v.params_mut()[i] = old;
                loss
            };
            let h = 1e-2f32;
            let fd = (loss_at(h) - loss_at(-h)) / (2.0 * h as f64);
            let g = grads[i] as f64;
            // A kink of a ReLU inside the step makes the difference meaningless: skip
            // those few (the two one-sided differences then disagree).
            let (up, down) = (
                (loss_at(h) - loss_at(0.0)) / h as f64,
                (loss_at(0.0) - loss_at(-h)) / h as f64,
            );
            if (up - down).abs() > 0.05 * up.abs().max(down.abs()).max(1e-2) {
                continue;
            }
            assert!(
                (fd - g).abs() <= 2e-2 * fd.abs().max(g.abs()).max(1e-1),
                "{likelihood:?} parameter {i}: analytic {g}, finite difference {fd}"
            );
            checked += 1;
        }
        assert!(
            checked > params / 6,
            "{likelihood:?}: only {checked} of {params} checked"
        );
    }
}

#[test]
fn the_vae_learns_class_conditional_samples_and_refuses_unseen_classes() {
    let cfg = vae_config(Likelihood::Bernoulli);
    let mut arena = vec![0u8; Plan::new(&cfg).unwrap().total()];
    let mut l = Learner::new(&cfg, &mut arena).unwrap();
    // Class 0: the first three inputs on, class 1: the last three.
    let proto = |c: u16| -> [f32; 6] {
        if c == 0 {
            [0.9, 0.9, 0.9, 0.1, 0.1, 0.1]
        } else {
            [0.1, 0.1, 0.1, 0.9, 0.9, 0.9]
        }
    };
    let y = [0u16, 1, 0, 1];
    let x: Vec<f32> = y.iter().flat_map(|&c| proto(c)).collect();
    let first = l.replaying().unwrap().train_generator(&x, &y).unwrap();
    let mut last = first;
    for _ in 0..1500 {
        last = l.replaying().unwrap().train_generator(&x, &y).unwrap();
    }
    assert!(last < 0.8 * first, "negative ELBO {first} -> {last}");
    let mut out = [0f32; 6];
    assert_eq!(
        l.replaying().unwrap().generate(0, &mut out),
        Err(Error::UnknownClass { class: 0 }),
        "not observed yet"
    );
    for (row, &c) in x.chunks_exact(6).zip(&y) {
        l.replaying().unwrap().observe(row, c).unwrap();
    }
    assert_eq!(
        l.replaying().unwrap().generate(0, &mut out),
        Err(Error::UnknownClass { class: 0 }),
        "observed, but the replay decoder is the one of the last commit, which never saw it"
    );
    l.replaying().unwrap().commit().unwrap();
    let mut out = vec![0f32; 6 * 200];
    for c in 0..2u16 {
        l.replaying().unwrap().generate(c, &mut out).unwrap();
        let p = proto(c);
        for j in 0..6 {
            let m = out.chunks_exact(6).map(|r| r[j]).sum::<f32>() / 200.0;
            assert!(
                (m - p[j]).abs() < 0.2,
                "class {c} input {j}: mean {m}, trained on {}",
                p[j]
            );
        }
    }
    assert_eq!(
        l.replaying().unwrap().generate(2, &mut out),
        Err(Error::UnknownClass { class: 2 })
    );
    // Replay draws only the observed old classes, from the committed decoder.
    let mut ry = [9u16; 8];
    let mut rx = [0f32; 48];
    assert_eq!(
        l.replaying()
            .unwrap()
            .fill(&mut rx, &mut ry, ClassRange { start: 2, end: 3 }),
        Ok(8)
    );
    assert!(ry.iter().all(|&c| c < 2));
}

#[test]
fn distillation_learns_the_committed_heads_softened_outputs_over_observed_classes() {
    let t = 2.0f32;
    let mut cfg = config(2, 3, 1, gaussian(0, 3));
    cfg.dims = LayerDims::new(&[2, 3]).unwrap();
    cfg.optimizer = Optimizer::Sgd { lr: 1.0, momentum: 0.0 };
    cfg.generator.as_mut().unwrap().distill = Some(t);
    let plan = Plan::new(&cfg).unwrap();
    assert_eq!(plan.bytes_of(names::TEACHER), 48, "9 parameters, padded");
    let mut arena = vec![0u8; plan.total()];
    let mut l = Learner::new(&cfg, &mut arena).unwrap();
    let x = [1.0f32, -0.5, 0.3, 2.0];
    let y = [0u16, 1];
    // Before any commit there is no teacher: the labels are learned.
    let before = l.biases().to_vec();
    l.replaying()
        .unwrap()
        .train_step(&x, &y, edgecl::Active::All, 2)
        .unwrap();
    assert_ne!(l.biases(), &before[..]);
    for (row, &c) in x.chunks_exact(2).zip(&y) {
        l.replaying().unwrap().observe(row, c).unwrap();
    }
    l.replaying().unwrap().commit().unwrap();
    // The student is the teacher, over the observed classes: nothing to learn.
    let (w0, b0) = (l.weights().to_vec(), l.biases().to_vec());
    let observed = edgecl::Active::Classes(ClassRange { start: 0, end: 2 });
    l.replaying().unwrap().train_step(&x, &y, observed, 2).unwrap();
    assert_eq!((l.weights(), l.biases()), (&w0[..], &b0[..]));
    // Move the student with the labels, then one replayed step: each class's bias moves
    // by -T (p_T - q_T) summed over rows / n, p over the 3 active classes, q the teacher's
    // over the 2 observed ones (0 for class 2, which replay teaches to stay low).
    l.train_step(&x, &[2, 2], edgecl::Active::All).unwrap();
    let (w1, b1) = (l.weights().to_vec(), l.biases().to_vec());
    let logit = |w: &[f32], b: &[f32], row: &[f32], k: usize| b[k] + w[k * 2] * row[0] + w[k * 2 + 1] * row[1];
    let soft = |w: &[f32], b: &[f32], row: &[f32], classes: usize| -> Vec<f32> {
        let z: Vec<f32> = (0..classes).map(|k| logit(w, b, row, k) / t).collect();
        let m = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = z.iter().map(|v| (v - m).exp()).collect();
        let s: f32 = e.iter().sum();
        let mut p: Vec<f32> = e.iter().map(|v| v / s).collect();
        p.resize(3, 0.0);
        p
    };
    let mut expected = b1.clone();
    for row in x.chunks_exact(2) {
        let (p, q) = (soft(&w1, &b1, row, 3), soft(&w0, &b0, row, 2));
        for ((e, pk), qk) in expected.iter_mut().zip(&p).zip(&q) {
            *e -= t * (pk - qk) / 2.0;
        }
    }
    l.replaying()
        .unwrap()
        .train_step(&x, &[2, 2], edgecl::Active::All, 2)
        .unwrap();
    for (k, (&b, e)) in l.biases().iter().zip(&expected).enumerate() {
        assert!((b - e).abs() < 1e-5, "bias {k}: {b} vs {e}");
    }
    assert!(l.biases()[2] < b1[2], "replay pushes the unobserved class down");
    assert!(matches!(
        l.replaying().unwrap().train_step(&x, &y, edgecl::Active::All, 3),
        Err(Error::OutputShape { .. })
    ));
}

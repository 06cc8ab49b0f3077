//! The replay generator in the core: Welford statistics against two-pass ones, seeded
//! deterministic sampling whose moments match, classes drawn only among the old ones, and
//! clear refusals.

use edgecl::learner::learner::ClassRange;
use edgecl::learner::plan::names;
use edgecl::{Error, GeneratorConfig, Kernels, LayerDims, Learner, LearnerConfig, Optimizer, Plan};

fn config(features: usize, classes: usize, seed: u64) -> LearnerConfig {
    LearnerConfig {
        dims: LayerDims::new(&[features, 8, classes]).unwrap(),
        optimizer: Optimizer::adam(1e-3),
        batch_size: 16,
        max_tasks: 5,
        seed,
        kernels: Kernels::Reference,
        penalty: None,
        packnet: None,
        generator: Some(GeneratorConfig { classes }),
    }
}

fn samples(n: usize, width: usize, seed: u64) -> Vec<f32> {
    let mut rng = edgecl::learner::rng::Rng::new(seed);
    (0..n * width).map(|_| rng.uniform_range(-2.0, 3.0)).collect()
}

#[test]
fn welford_statistics_equal_two_pass_statistics() {
    let (d, n) = (5, 200);
    let cfg = config(d, 3, 1);
    let mut arena = vec![0u8; Plan::new(&cfg).unwrap().total()];
    let mut l = Learner::new(&cfg, &mut arena).unwrap();
    let x = samples(n, d, 7);
    for (i, row) in x.chunks_exact(d).enumerate() {
        l.observe(row, (i % 2) as u16).unwrap();
    }
    let g = l.generator().unwrap();
    for class in 0..2 {
        let rows: Vec<&[f32]> = x.chunks_exact(d).skip(class).step_by(2).collect();
        assert_eq!(g.count(class), rows.len() as u32);
        for j in 0..d {
            let mean = rows.iter().map(|r| r[j] as f64).sum::<f64>() / rows.len() as f64;
            let var = rows.iter().map(|r| (r[j] as f64 - mean).powi(2)).sum::<f64>() / rows.len() as f64;
            assert!((g.mean(class)[j] as f64 - mean).abs() < 1e-5, "mean {class} {j}");
            assert!(
                (g.variance(class, j) as f64 - var).abs() < 1e-4 * var.max(1.0),
                "variance {class} {j}"
            );
        }
    }
    assert_eq!(g.count(2), 0);
}

#[test]
fn replay_samples_old_classes_deterministically_with_their_moments() {
    let d = 3;
    let run = |seed| {
        let cfg = config(d, 4, seed);
        let mut arena = vec![0u8; Plan::new(&cfg).unwrap().total()];
        let mut l = Learner::new(&cfg, &mut arena).unwrap();
        // Class 0 around (1, -2, 0.5) with sd 0.5; class 1 around (-3, 4, 2) with sd 2.
        let mut rng = edgecl::learner::rng::Rng::new(5);
        for i in 0..4000 {
            let (c, mu, sd) = if i % 4 == 0 {
                (1u16, [-3.0f32, 4.0, 2.0], 2.0f32)
            } else {
                (0, [1.0, -2.0, 0.5], 0.5)
            };
            let x: Vec<f32> = mu.iter().map(|m| m + sd * rng.normal()).collect();
            l.observe(&x, c).unwrap();
        }
        let mut x = vec![0f32; 4000 * d];
        let mut y = vec![0u16; 4000];
        // Task of classes 2..4 is being learned: replay only 0 and 1, in proportion 3:1.
        let filled = l.fill_replay(&mut x, &mut y, ClassRange { start: 2, end: 4 }).unwrap();
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
                "class {class} mean {j}: {m}"
            );
            assert!((v.sqrt() - sd).abs() < 0.1 * sd, "class {class} sd {j}: {}", v.sqrt());
        }
    }
}

#[test]
fn unseen_classes_and_bad_samples_are_errors_not_garbage() {
    let cfg = config(2, 3, 1);
    let plan = Plan::new(&cfg).unwrap();
    assert_eq!(plan.bytes_of(names::GENERATOR_MEANS), 3 * 2 * 4 + 8);
    let mut arena = vec![0u8; plan.total()];
    let mut l = Learner::new(&cfg, &mut arena).unwrap();
    let mut out = [9.0f32; 2];
    let mut rng = edgecl::learner::rng::Rng::new(1);
    assert_eq!(
        l.generator().unwrap().sample(1, &mut rng, &mut out),
        Err(Error::UnknownClass { class: 1 })
    );
    assert_eq!(out, [9.0, 9.0]);
    // Nothing old to replay yet: nothing written.
    let mut y = [7u16; 2];
    let mut x = [9.0f32; 4];
    assert_eq!(l.fill_replay(&mut x, &mut y, ClassRange { start: 0, end: 1 }), Ok(0));
    assert_eq!((x, y), ([9.0; 4], [7, 7]));
    assert_eq!(l.observe(&[0.0, f32::NAN], 0), Err(Error::NonFiniteInput { index: 1 }));
    assert_eq!(
        l.observe(&[0.0, 1.0], 3),
        Err(Error::LabelOutOfRange { label: 3, classes: 3 })
    );
    assert_eq!(l.generator().unwrap().count(0), 0, "refused samples change nothing");
    let mut plain = cfg;
    plain.generator = None;
    let mut arena = vec![0u8; Plan::new(&plain).unwrap().total()];
    let mut l = Learner::new(&plain, &mut arena).unwrap();
    assert_eq!(l.observe(&[0.0, 1.0], 0), Err(Error::NoGenerator));
}

//! Progressive columns in the core: the newest column's gradients (own and lateral
//! weights) against finite differences, frozen old columns, the plan's cap on columns and
//! clear refusals.

use edgecl::learner::learner::ClassRange;
use edgecl::learner::plan::names;
use edgecl::{Active, Columns, ColumnsConfig, Error, Kernels, Optimizer, Plan};

fn config(hidden: usize, max_columns: usize, kernels: Kernels) -> ColumnsConfig {
    ColumnsConfig {
        input: 5,
        width: 4,
        hidden,
        classes: 4,
        max_columns,
        optimizer: Optimizer::adam(0.02),
        batch_size: 3,
        seed: 8,
        kernels,
    }
}

fn samples(n: usize, width: usize, seed: u64) -> Vec<f32> {
    let mut rng = edgecl::learner::rng::Rng::new(seed);
    (0..n * width).map(|_| rng.uniform_range(-1.0, 1.0)).collect()
}

fn loss_at(cfg: &ColumnsConfig, params: &[f32], columns: usize, x: &[f32], y: &[u16], active: Active<'_>) -> f64 {
    let mut arena = vec![0u8; Plan::columns(cfg).unwrap().total()];
    let mut c = Columns::new(cfg, &mut arena).unwrap();
    for _ in 0..columns {
        c.add_column().unwrap();
    }
    c.params_mut().copy_from_slice(params);
    c.compute_gradients(x, y, active).unwrap() as f64
}

/// The third column of a two-hidden-layer progressive net: every own and lateral weight's
/// gradient against central finite differences, with masked classes.
#[test]
fn the_newest_columns_gradients_match_finite_differences() {
    for kernels in [Kernels::Reference, Kernels::Fast] {
        let cfg = config(2, 3, kernels);
        let mut arena = vec![0u8; Plan::columns(&cfg).unwrap().total()];
        let mut c = Columns::new(&cfg, &mut arena).unwrap();
        for _ in 0..3 {
            c.add_column().unwrap();
        }
        let x = samples(3, 5, 4);
        let y = [1u16, 2, 3];
        let active = Active::Classes(ClassRange { start: 1, end: 4 });
        c.compute_gradients(&x, &y, active).unwrap();
        let grads = c.gradients().to_vec();
        let params = c.params_mut().to_vec();
        let start = cfg.column_params(0) + cfg.column_params(1);
        assert_eq!(grads.len(), cfg.column_params(2));
        let eps = 1e-2f32;
        for (i, &g) in grads.iter().enumerate() {
            let (mut p, mut m) = (params.clone(), params.clone());
            p[start + i] += eps;
            m[start + i] -= eps;
            let numeric =
                (loss_at(&cfg, &p, 3, &x, &y, active) - loss_at(&cfg, &m, 3, &x, &y, active)) / (2.0 * eps as f64);
            assert!(
                (numeric - g as f64).abs() < 2e-3 + 2e-2 * (g as f64).abs(),
                "{kernels:?} param {i}: numeric {numeric} analytic {g}"
            );
        }
    }
}

#[test]
fn old_columns_are_frozen_and_their_predictions_kept() {
    let cfg = config(1, 3, Kernels::Reference);
    let mut arena = vec![0u8; Plan::columns(&cfg).unwrap().total()];
    let mut c = Columns::new(&cfg, &mut arena).unwrap();
    let x = samples(3, 5, 9);
    let first = ClassRange { start: 0, end: 2 };
    c.add_column().unwrap();
    for _ in 0..50 {
        c.train_step(&x, &[0, 1, 0], Active::Classes(first)).unwrap();
    }
    let mut before = [0u16; 3];
    c.predict(&x, 0, Active::Classes(first), &mut before).unwrap();
    assert_eq!(before, [0, 1, 0], "the first column fits its task");
    let column0 = c.column_weights().to_vec();
    c.add_column().unwrap();
    let second = ClassRange { start: 2, end: 4 };
    for _ in 0..50 {
        c.train_step(&x, &[3, 3, 2], Active::Classes(second)).unwrap();
    }
    assert_eq!(&c.column_weights()[..column0.len()], &column0[..], "column 0 moved");
    let mut after = [0u16; 3];
    c.predict(&x, 0, Active::Classes(first), &mut after).unwrap();
    assert_eq!(after, before);
    c.predict(&x, 1, Active::Classes(second), &mut after).unwrap();
    assert_eq!(after, [3, 3, 2], "the second column fits its task");
}

#[test]
fn the_plan_reserves_every_column_and_refuses_one_more_with_the_cap() {
    let cfg = config(1, 2, Kernels::Reference);
    let plan = Plan::columns(&cfg).unwrap();
    let params = cfg.column_params(0) + cfg.column_params(1);
    // Column 1 has a lateral block from column 0 in its output layer.
    assert_eq!(cfg.column_params(1) - cfg.column_params(0), 4 * 4);
    assert_eq!(plan.bytes_of(names::COLUMNS), (params * 4).div_ceil(16) * 16);
    let mut arena = vec![0u8; plan.total()];
    let mut c = Columns::new(&cfg, &mut arena).unwrap();
    let used = c.arena_used();
    c.add_column().unwrap();
    c.add_column().unwrap();
    assert_eq!(c.arena_used(), used);
    let e = c.add_column().unwrap_err();
    assert_eq!(e, Error::ColumnsExhausted { task: 3, max: 2 });
    assert!(e.to_string().contains("at most 2 columns"), "{e}");
    assert!(matches!(
        Columns::new(&cfg, &mut vec![0u8; plan.total() - 1]),
        Err(Error::OverBudget { missing: 1, .. })
    ));
}

#[test]
fn bad_input_and_misuse_are_errors_that_change_nothing() {
    let cfg = config(1, 2, Kernels::Reference);
    let mut arena = vec![0u8; Plan::columns(&cfg).unwrap().total()];
    let mut c = Columns::new(&cfg, &mut arena).unwrap();
    let x = samples(1, 5, 1);
    assert!(matches!(c.train_step(&x, &[0], Active::All), Err(Error::OutOfOrder(_))));
    assert_eq!(
        c.predict(&x, 0, Active::All, &mut [0]),
        Err(Error::NoSuchTask { task: 1, tasks: 0 })
    );
    c.add_column().unwrap();
    let before = c.column_weights().to_vec();
    let mut bad = x.clone();
    bad[2] = f32::NAN;
    assert_eq!(
        c.train_step(&bad, &[0], Active::All),
        Err(Error::NonFiniteInput { index: 2 })
    );
    assert_eq!(
        c.train_step(&x, &[4], Active::All),
        Err(Error::LabelOutOfRange { label: 4, classes: 4 })
    );
    let task = Active::Classes(ClassRange { start: 0, end: 2 });
    assert_eq!(c.train_step(&x, &[3], task), Err(Error::LabelInactive { label: 3 }));
    assert_eq!(c.column_weights(), &before[..]);
    let mut zero = cfg;
    zero.hidden = 0;
    assert!(matches!(Plan::columns(&zero), Err(Error::BadConfig(_))));
}

/// The edge head's shape (256 backbone features, 18-unit columns, 10 classes, Adam, batch
/// 32): five columns fit a 192 KB budget and a sixth does not, so the sixth task is
/// refused with the cap.
#[test]
fn five_edge_columns_fit_192_kb_and_a_sixth_task_is_refused() {
    let budget = 192 * 1024;
    let edge = |max_columns| ColumnsConfig {
        input: 256,
        width: 18,
        hidden: 1,
        classes: 10,
        max_columns,
        optimizer: Optimizer::adam(1e-3),
        batch_size: 32,
        seed: 1,
        kernels: Kernels::Reference,
    };
    assert!(Plan::columns(&edge(5)).unwrap().total() <= budget);
    assert!(Plan::columns(&edge(6)).unwrap().total() > budget);
    let mut arena = vec![0u8; budget];
    let mut c = Columns::new(&edge(5), &mut arena).unwrap();
    let x = samples(2, 256, 3);
    for task in 0..5u16 {
        assert_eq!(c.add_column().unwrap(), task as usize);
        let classes = ClassRange {
            start: 2 * task,
            end: 2 * task + 2,
        };
        c.train_step(&x, &[2 * task, 2 * task + 1], Active::Classes(classes))
            .unwrap();
    }
    let e = c.add_column().unwrap_err();
    assert_eq!(e, Error::ColumnsExhausted { task: 6, max: 5 });
    assert!(e.to_string().contains("task 6") && e.to_string().contains("at most 5 columns"));
}

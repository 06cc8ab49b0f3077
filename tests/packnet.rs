//! PackNet in the core: frozen weights stay bit-identical under SGD with momentum and
//! Adam, pruning keeps exactly the largest free weights, masked inference equals a
//! network holding only the owned weights, the mask's bytes are fixed, and misuse is a
//! clear error that changes nothing.

use edgecl::learner::learner::ClassRange;
use edgecl::learner::plan::names;
use edgecl::{Active, Error, Kernels, LayerDims, Learner, LearnerConfig, Optimizer, PackNetConfig, Plan};

fn config(dims: &[usize], optimizer: Optimizer, max_tasks: usize, prune_ratio: f32) -> LearnerConfig {
    LearnerConfig {
        dims: LayerDims::new(dims).unwrap(),
        optimizer,
        batch_size: 4,
        max_tasks,
        seed: 3,
        kernels: Kernels::Reference,
        penalty: None,
        packnet: Some(PackNetConfig { prune_ratio }),
        generator: None,
    }
}

fn samples(n: usize, width: usize, seed: u64) -> Vec<f32> {
    let mut rng = edgecl::learner::rng::Rng::new(seed);
    (0..n * width).map(|_| rng.uniform_range(-1.0, 1.0)).collect()
}

fn train(l: &mut Learner<'_>, steps: u64, classes: ClassRange) {
    for s in 0..steps {
        let x = samples(4, l.config().dims.input(), s + 100);
        let y: Vec<u16> = (0..4)
            .map(|i| classes.start + (i + s as u16) % (classes.end - classes.start))
            .collect();
        l.train_step(&x, &y, Active::Classes(classes)).unwrap();
    }
}

const ALL: ClassRange = ClassRange { start: 0, end: 4 };

#[test]
fn owned_weights_and_biases_stay_bit_identical_under_momentum_and_adam() {
    for optimizer in [
        Optimizer::Sgd {
            lr: 0.05,
            momentum: 0.9,
        },
        Optimizer::adam(0.01),
    ] {
        let cfg = config(&[6, 8, 4], optimizer, 3, 0.5);
        let mut arena = vec![0u8; Plan::new(&cfg).unwrap().total()];
        let mut l = Learner::new(&cfg, &mut arena).unwrap();
        train(&mut l, 30, ALL);
        l.packnet().unwrap().prune(ALL).unwrap();
        train(&mut l, 10, ALL);
        l.packnet().unwrap().end_task().unwrap();
        let (w1, b1) = (l.weights().to_vec(), l.biases().to_vec());
        let owned: Vec<usize> = (0..w1.len()).filter(|&i| l.packnet_owner(i) == Some(1)).collect();
        assert!(!owned.is_empty());
        // Task 2: momentum and Adam's moments from task 1 must not move task 1's weights.
        train(&mut l, 40, ALL);
        for &i in &owned {
            assert_eq!(
                l.weights()[i].to_bits(),
                w1[i].to_bits(),
                "{optimizer:?} weight {i} moved"
            );
        }
        assert_eq!(
            l.biases(),
            &b1[..],
            "{optimizer:?}: biases train with the first task only"
        );
        // ...while the free ones learned.
        assert!((0..w1.len()).any(|i| l.packnet_owner(i) == Some(0) && l.weights()[i] != w1[i]));
    }
}

#[test]
fn pruning_keeps_the_largest_free_weights_per_layer_and_zeroes_the_rest() {
    let cfg = config(&[5, 6, 4], Optimizer::adam(0.01), 4, 0.75);
    let mut arena = vec![0u8; Plan::new(&cfg).unwrap().total()];
    let mut l = Learner::new(&cfg, &mut arena).unwrap();
    train(&mut l, 20, ALL);
    let before = l.weights().to_vec();
    let kept = l.packnet().unwrap().prune(ALL).unwrap();
    let d = cfg.dims;
    let mut total = 0;
    for layer in 0..d.layers() {
        let (i, o) = d.layer(layer);
        let range = d.weight_offset(layer)..d.weight_offset(layer) + i * o;
        let keep = (i * o) - ((i * o) as f64 * 0.75) as usize;
        let mut mags: Vec<f32> = before[range.clone()].iter().map(|v| v.abs()).collect();
        mags.sort_by(|a, b| b.total_cmp(a));
        let threshold = mags[keep - 1];
        let owned: Vec<usize> = range.clone().filter(|&w| l.packnet_owner(w) == Some(1)).collect();
        assert_eq!(owned.len(), keep, "layer {layer}");
        for w in range {
            if l.packnet_owner(w) == Some(1) {
                assert!(before[w].abs() >= threshold);
                assert_eq!(l.weights()[w], before[w]);
            } else {
                assert!(before[w].abs() <= threshold);
                assert_eq!(l.weights()[w], 0.0, "a pruned weight is zeroed");
            }
        }
        total += keep;
    }
    assert_eq!(kept, total);
}

#[test]
fn only_the_tasks_output_rows_are_claimed() {
    let cfg = config(&[5, 6, 4], Optimizer::adam(0.01), 2, 0.5);
    let mut arena = vec![0u8; Plan::new(&cfg).unwrap().total()];
    let mut l = Learner::new(&cfg, &mut arena).unwrap();
    let first = ClassRange { start: 0, end: 2 };
    train(&mut l, 20, first);
    l.packnet().unwrap().prune(first).unwrap();
    let out_at = cfg.dims.weight_offset(1);
    for row in 2..4 {
        for j in 0..6 {
            assert_eq!(
                l.packnet_owner(out_at + row * 6 + j),
                Some(0),
                "row {row} belongs to task 2"
            );
        }
    }
}

#[test]
fn masked_inference_equals_a_network_of_the_owned_weights_and_restores_the_rest() {
    let cfg = config(&[6, 8, 4], Optimizer::adam(0.02), 3, 0.5);
    let mut arena = vec![0u8; Plan::new(&cfg).unwrap().total()];
    let mut l = Learner::new(&cfg, &mut arena).unwrap();
    for _ in 0..2 {
        train(&mut l, 25, ALL);
        l.packnet().unwrap().prune(ALL).unwrap();
        train(&mut l, 5, ALL);
        l.packnet().unwrap().end_task().unwrap();
    }
    let x = samples(9, 6, 77);
    let (weights, biases) = (l.weights().to_vec(), l.biases().to_vec());
    let mut plain = config(&[6, 8, 4], Optimizer::adam(0.02), 3, 0.5);
    plain.packnet = None;
    for task in 1..=2 {
        let mut got = [0u16; 9];
        let mut conf = [0f32; 9];
        l.packnet()
            .unwrap()
            .predict_task(&x, task, Active::All, &mut got, Some(&mut conf))
            .unwrap();
        assert_eq!(
            l.weights(),
            &weights[..],
            "weights restored after task {task}'s inference"
        );
        // The same network with only tasks 1..=task's weights, built by hand.
        let mut arena2 = vec![0u8; Plan::new(&plain).unwrap().total()];
        let mut m = Learner::new(&plain, &mut arena2).unwrap();
        let (w, b) = m.params_mut();
        for (i, v) in w.iter_mut().enumerate() {
            let o = l.packnet_owner(i).unwrap() as usize;
            *v = if o != 0 && o <= task { weights[i] } else { 0.0 };
        }
        b.copy_from_slice(&biases);
        let mut want = [0u16; 9];
        let mut want_conf = [0f32; 9];
        m.predict_with_confidence(&x, Active::All, &mut want, Some(&mut want_conf))
            .unwrap();
        assert_eq!(got, want, "task {task}");
        assert_eq!(conf, want_conf, "task {task}");
        assert!(conf.iter().all(|&c| (0.25..=1.0).contains(&c)));
    }
    assert_eq!(
        l.packnet()
            .unwrap()
            .predict_task(&x, 3, Active::All, &mut [0u16; 9], None),
        Err(Error::NoSuchTask { task: 3, tasks: 2 })
    );
}

#[test]
fn the_mask_has_the_planned_bits_and_its_bytes_never_change() {
    let cfg = config(&[784, 400, 400, 10], Optimizer::adam(1e-3), 10, 0.75);
    let plan = Plan::new(&cfg).unwrap();
    let weights = cfg.dims.weight_count();
    // ceil(log2(11)) = 4 bits per weight: half a byte, rounded up to the alignment.
    assert_eq!(plan.bytes_of(names::OWNERS), (weights * 4 / 8).div_ceil(16) * 16);
    let mut small = config(&[6, 8, 4], Optimizer::adam(0.01), 10, 0.75);
    small.batch_size = 4;
    let mut arena = vec![0u8; Plan::new(&small).unwrap().total()];
    let mut l = Learner::new(&small, &mut arena).unwrap();
    let used = l.arena_used();
    for _ in 0..10 {
        train(&mut l, 3, ALL);
        l.packnet().unwrap().prune(ALL).unwrap();
        l.packnet().unwrap().end_task().unwrap();
        assert_eq!(l.arena_used(), used);
    }
    assert_eq!(l.packnet_tasks(), 10);
}

#[test]
fn a_task_past_the_plan_or_without_free_weights_is_refused_and_changes_nothing() {
    // 2 x 1 = 2 weights per layer: at ratio 0.5 task 1 keeps 1 and task 2 the last one.
    let cfg = config(&[2, 1, 2], Optimizer::adam(0.01), 3, 0.5);
    assert_eq!(cfg.packnet.unwrap().tasks_that_fit(&cfg.dims, 3), 2);
    let mut arena = vec![0u8; Plan::new(&cfg).unwrap().total()];
    let mut l = Learner::new(&cfg, &mut arena).unwrap();
    let x = [0.5f32, -0.5];
    for _ in 0..2 {
        l.train_step(&x, &[1], Active::All).unwrap();
        l.packnet().unwrap().prune(ALL_TWO).unwrap();
        l.packnet().unwrap().end_task().unwrap();
    }
    let before = (l.weights().to_vec(), l.biases().to_vec(), l.steps());
    assert_eq!(
        l.train_step(&x, &[1], Active::All),
        Err(Error::NoFreeWeights { task: 3, layer: 0 })
    );
    assert_eq!(
        l.packnet().unwrap().prune(ALL_TWO),
        Err(Error::NoFreeWeights { task: 3, layer: 0 })
    );
    assert_eq!((l.weights().to_vec(), l.biases().to_vec(), l.steps()), before);
    assert!(Error::NoFreeWeights { task: 3, layer: 0 }
        .to_string()
        .contains("no free weights"));

    // Owner ids run out at max_tasks.
    let cfg = config(&[4, 4, 2], Optimizer::adam(0.01), 1, 0.5);
    let mut arena = vec![0u8; Plan::new(&cfg).unwrap().total()];
    let mut l = Learner::new(&cfg, &mut arena).unwrap();
    let x = [0.5f32, -0.5, 0.1, 0.2];
    l.train_step(&x, &[1], Active::All).unwrap();
    assert!(matches!(l.packnet().unwrap().end_task(), Err(Error::OutOfOrder(_))));
    l.packnet().unwrap().prune(ALL_TWO).unwrap();
    assert!(matches!(l.packnet().unwrap().prune(ALL_TWO), Err(Error::OutOfOrder(_))));
    l.packnet().unwrap().end_task().unwrap();
    assert_eq!(
        l.train_step(&x, &[1], Active::All),
        Err(Error::TasksExhausted { max: 1 })
    );

    // Without PackNet.
    let mut plain = cfg;
    plain.packnet = None;
    let mut arena = vec![0u8; Plan::new(&plain).unwrap().total()];
    let mut l = Learner::new(&plain, &mut arena).unwrap();
    // Without PackNet there is no handle to prune with.
    assert!(l.packnet().is_none());
    // A bad prune ratio or too many tasks for an 8-bit owner is a config error.
    assert!(Plan::new(&config(&[4, 2], Optimizer::adam(0.1), 3, 1.5)).is_err());
    assert!(Plan::new(&config(&[4, 2], Optimizer::adam(0.1), 256, 0.5)).is_err());
}

const ALL_TWO: ClassRange = ClassRange { start: 0, end: 2 };

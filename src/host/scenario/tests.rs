//! The scenario's unit tests.

use super::*;
use ndarray::Array2;

fn tiny(n: usize) -> Dataset {
    let x = Array2::from_shape_fn((n, 16), |(i, j)| ((i * 16 + j) % 7) as f32 / 7.0);
    Dataset {
        x,
        y: (0..n).map(|i| (i % 4) as u16).collect(),
        sample_shape: vec![4, 4],
        classes: 4,
        side: Vec::new(),
    }
}

fn spec(kind: Kind, setting: Setting) -> Spec {
    Spec {
        kind,
        setting,
        tasks: None,
        classes_per_task: 2,
        task_order: None,
        class_order: ClassOrder::Sorted,
        seed: 1,
        features: Features::Pixels,
        tasks_by: None,
    }
}

#[test]
fn split_targets_and_active_outputs_follow_the_setting() {
    for (setting, outputs, target_of_3, train1, eval0) in [
        (Setting::TaskIl, 4, 3, (2, 4), (0, 2)),
        (Setting::DomainIl, 2, 1, (0, 2), (0, 2)),
        (Setting::ClassIl, 4, 3, (0, 4), (0, 4)),
    ] {
        let s = Scenario::build(spec(Kind::Split, setting), tiny(40), tiny(8)).unwrap();
        assert_eq!(s.tasks.len(), 2);
        assert_eq!(s.outputs(), outputs);
        assert_eq!(s.target(1, 3), target_of_3);
        let a = s.train_active(1);
        assert_eq!((a.start as usize, a.end as usize), train1);
        let e = s.eval_active(0);
        assert_eq!((e.start as usize, e.end as usize), eval0);
        assert!(s.tasks[1].train.iter().all(|&i| s.train.y[i as usize] >= 2));
    }
}

#[test]
fn permuted_first_task_is_the_identity_and_others_are_permutations() {
    let mut sp = spec(Kind::Permuted, Setting::DomainIl);
    sp.tasks = Some(3);
    let s = Scenario::build(sp, tiny(10), tiny(4)).unwrap();
    assert_eq!(s.tasks[0].transform, Transform::Identity);
    let (mut a, mut b, mut scratch) = (vec![0.0; 16], vec![0.0; 16], Vec::new());
    s.fill(Part::Train, 0, 3, &mut a, &mut scratch);
    s.fill(Part::Train, 2, 3, &mut b, &mut scratch);
    assert_ne!(a, b);
    let (mut sa, mut sb) = (a.clone(), b.clone());
    sa.sort_by(f32::total_cmp);
    sb.sort_by(f32::total_cmp);
    assert_eq!(sa, sb);
}

#[test]
fn rotation_by_zero_is_the_identity_and_pooling_averages() {
    let mut sp = spec(Kind::Rotated, Setting::DomainIl);
    sp.tasks = Some(2);
    sp.features = Features::Pool2x2;
    let s = Scenario::build(sp, tiny(10), tiny(4)).unwrap();
    assert_eq!(s.input_width(), 4);
    let mut out = vec![0.0; 4];
    let mut scratch = Vec::new();
    s.fill(Part::Test, 0, 1, &mut out, &mut scratch);
    let row = s.test.x.row(1);
    let want = 0.25 * row[0] + 0.25 * row[1] + 0.25 * row[4] + 0.25 * row[5];
    assert!((out[0] - want).abs() < 1e-6);
}

#[test]
fn bad_task_order_and_too_many_tasks_are_errors() {
    let mut sp = spec(Kind::Split, Setting::ClassIl);
    sp.task_order = Some(vec![0, 0]);
    assert!(Scenario::build(sp.clone(), tiny(40), tiny(8)).is_err());
    sp.task_order = Some(vec![1, 0]);
    let s = Scenario::build(sp.clone(), tiny(40), tiny(8)).unwrap();
    assert_eq!(s.tasks[0].classes, vec![2, 3]);
    sp.tasks = Some(3);
    sp.task_order = None;
    assert!(Scenario::build(sp.clone(), tiny(40), tiny(8)).is_err());
    sp.tasks = None;
    sp.class_order = ClassOrder::Given(vec![3, 1, 3, 0]);
    assert!(Scenario::build(sp.clone(), tiny(40), tiny(8)).is_err());
    sp.class_order = ClassOrder::Sorted;
    sp.kind = Kind::Permuted;
    sp.tasks = Some(MAX_TASKS + 1);
    assert!(Scenario::build(sp.clone(), tiny(40), tiny(8)).is_err());
    sp.tasks = Some(2);
    let mut other = tiny(8);
    other.sample_shape = vec![2, 8];
    assert!(Scenario::build(sp.clone(), tiny(40), other).is_err());
    let mut flat = tiny(8);
    flat.sample_shape = vec![1, 16];
    let mut flat_train = tiny(40);
    flat_train.sample_shape = vec![1, 16];
    sp.features = Features::Pool2x2;
    assert!(Scenario::build(sp, flat_train, flat).is_err());
}

#[test]
fn class_orders_group_the_classes_they_name() {
    let mut sp = spec(Kind::Split, Setting::ClassIl);
    sp.class_order = ClassOrder::Given(vec![3, 1, 0, 2]);
    let s = Scenario::build(sp.clone(), tiny(40), tiny(8)).unwrap();
    assert_eq!(s.tasks[0].classes, vec![3, 1]);
    assert_eq!(s.target(0, 1), 1);
    assert_eq!(s.target(1, 0), 2);
    sp.class_order = ClassOrder::Random;
    let a = Scenario::build(sp.clone(), tiny(40), tiny(8)).unwrap();
    let mut all: Vec<u16> = a.tasks.iter().flat_map(|t| t.classes.clone()).collect();
    all.sort_unstable();
    assert_eq!(all, vec![0, 1, 2, 3]);
    let orders: std::collections::HashSet<Vec<u16>> = (0..20)
        .map(|seed| {
            sp.seed = seed;
            let s = Scenario::build(sp.clone(), tiny(40), tiny(8)).unwrap();
            s.tasks.iter().flat_map(|t| t.classes.clone()).collect()
        })
        .collect();
    assert!(orders.len() > 3, "seeds should pair the classes differently");
}

/// `n` samples of `classes` classes (label `i % classes`), a side file `subjects` of
/// `subjects[(i / classes) % len]`.
fn labelled(n: usize, classes: usize, subjects: &[u32]) -> Dataset {
    let mut d = tiny(n);
    d.y = (0..n).map(|i| (i % classes) as u16).collect();
    d.classes = classes;
    d.side = vec![crate::host::idx::SideFile {
        name: "subjects".into(),
        values: (0..n).map(|i| subjects[(i / classes) % subjects.len()]).collect(),
    }];
    d
}

#[test]
fn seven_classes_in_pairs_make_four_tasks_the_last_one_smaller() {
    let s = Scenario::build(
        spec(Kind::Split, Setting::ClassIl),
        labelled(70, 7, &[1]),
        labelled(14, 7, &[1]),
    )
    .unwrap();
    let groups: Vec<Vec<u16>> = s.tasks.iter().map(|t| t.classes.clone()).collect();
    assert_eq!(groups, vec![vec![0, 1], vec![2, 3], vec![4, 5], vec![6]]);
    assert!(s.left_out.is_empty());
    assert_eq!(s.outputs(), 7);
    assert_eq!(s.target(3, 6), 6);
    let last = s.task_outputs(3);
    assert_eq!((last.start, last.end), (6, 7));
    assert_eq!(s.task_of_output(6), 3);
    assert_eq!(s.task_of_output(5), 2);
    assert_eq!(s.train_active(3).end, 7);
    assert_eq!(s.outputs_before(3), 6);
}

#[test]
fn tasks_listed_with_slashes_and_classes_left_out_are_named() {
    let mut sp = spec(Kind::Split, Setting::ClassIl);
    sp.class_order = ClassOrder::parse("0,1,2,3/4,5/6").unwrap();
    let s = Scenario::build(sp.clone(), labelled(70, 7, &[1]), labelled(14, 7, &[1])).unwrap();
    assert_eq!(s.tasks[0].classes, vec![0, 1, 2, 3]);
    assert_eq!(s.per_task, 4);
    assert_eq!(s.target(1, 5), 5);
    assert_eq!(s.target(2, 6), 6);
    assert_eq!(s.task_of_output(3), 0);
    sp.class_order = ClassOrder::parse("0,1/4,5").unwrap();
    let s = Scenario::build(sp.clone(), labelled(70, 7, &[1]), labelled(14, 7, &[1])).unwrap();
    assert_eq!(s.left_out, vec![2, 3, 6]);
    assert_eq!(s.outputs(), 4);
    // --tasks leaves the rest of the order out, named.
    sp.class_order = ClassOrder::Sorted;
    sp.tasks = Some(2);
    let s = Scenario::build(sp.clone(), labelled(70, 7, &[1]), labelled(14, 7, &[1])).unwrap();
    assert_eq!(s.left_out, vec![4, 5, 6]);
    assert!(ClassOrder::parse("0,1/x").is_err());
}

#[test]
fn more_classes_per_task_than_classes_says_so() {
    let mut sp = spec(Kind::Split, Setting::ClassIl);
    sp.classes_per_task = 11;
    let e = Scenario::build(sp, labelled(100, 10, &[1]), labelled(20, 10, &[1])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "--classes-per-task 11: the data has 10 classes, so a task holds at most 10"
    );
}

#[test]
fn a_stray_label_is_named_with_its_index_and_the_flag() {
    let mut train = labelled(100, 10, &[1]);
    train.y[17] = 255;
    train.classes = 256;
    let e = Scenario::build(spec(Kind::Split, Setting::ClassIl), train, labelled(20, 10, &[1])).unwrap_err();
    let m = e.to_string();
    assert!(m.starts_with("task 6 (classes 10,11) has no training samples"), "{m}");
    assert!(m.contains("training label 17 is 255"), "{m}");
    assert!(m.contains("--num-classes N"), "{m}");
}

#[test]
fn tasks_by_a_side_file_make_one_task_per_value() {
    let mut sp = spec(Kind::Split, Setting::DomainIl);
    sp.tasks_by = Some("subjects".into());
    // Subjects 1 and 2 train only, 3 in both splits.
    let s = Scenario::build(sp.clone(), labelled(60, 3, &[1, 2, 3]), labelled(12, 3, &[3])).unwrap();
    let by = s.tasks_by.as_ref().unwrap();
    assert_eq!((by.values.clone(), by.cut.clone()), (vec![1, 2, 3], vec![1, 2]));
    assert_eq!(s.tasks.len(), 3);
    assert_eq!(s.outputs(), 3);
    for (t, task) in s.tasks.iter().enumerate() {
        let v = by.values[t];
        assert!(task.train.iter().all(|&i| s.train.side[0].values[i as usize] == v));
        assert!(task.test.iter().all(|&i| s.test.side[0].values[i as usize] == v));
        assert_eq!(task.classes, vec![0, 1, 2]);
    }
    // Subject 1's 21 samples, 7 per class: a quarter of each (1) tested.
    assert_eq!((s.tasks[0].train.len(), s.tasks[0].test.len()), (18, 3));
    assert_eq!((s.tasks[2].train.len(), s.tasks[2].test.len()), (18, 12));
    assert_eq!(s.train.len() + s.test.len(), 72);
    // One value, a missing file and class-IL are refused with their reasons.
    let e = Scenario::build(sp.clone(), labelled(60, 3, &[4]), labelled(12, 3, &[4])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "--tasks-by subjects: every sample has the value 4, which makes one task; a sequence needs two or more"
    );
    sp.tasks_by = Some("side".into());
    let e = Scenario::build(sp.clone(), labelled(60, 3, &[4]), labelled(12, 3, &[4])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "--tasks-by side: no such side file (the data has subjects)"
    );
    sp.tasks_by = Some("subjects".into());
    sp.setting = Setting::ClassIl;
    let e = Scenario::build(sp, labelled(60, 3, &[1, 2]), labelled(12, 3, &[1])).unwrap_err();
    assert!(e.to_string().contains("use --setting domain-il"), "{e}");
}

#[test]
fn windows_pool_over_time_per_channel_never_across_channels() {
    // 8 steps x 2 channels: channel 0 counts up, channel 1 is 100 + its step.
    let window = |n: usize| {
        let mut d = labelled(n, 2, &[1]);
        d.x = Array2::from_shape_fn((n, 16), |(i, j)| {
            let (step, ch) = (j / 2, j % 2);
            (i + step) as f32 + 100.0 * ch as f32
        });
        d.sample_shape = vec![8, 2];
        d
    };
    let mut sp = spec(Kind::Split, Setting::ClassIl);
    sp.features = Features::Pool2x2;
    let s = Scenario::build(sp, window(20), window(4)).unwrap();
    assert_eq!(s.spec.features, Features::PoolTime);
    assert_eq!(s.input_width(), (8 / TIME_POOL) * 2);
    let norm = s.channel_norm();
    let (mut out, mut scratch) = (vec![0.0; 4], Vec::new());
    s.fill(Part::Train, 0, 0, &mut out, &mut scratch);
    // Output step 0 of channel 1 is the mean of steps 0..4 of channel 1 only, normalised.
    let want = ((100.0 + 1.5) - norm[1].0) / norm[1].1;
    assert!((out[1] - want).abs() < 1e-4, "{} vs {want}", out[1]);
    let want0 = (1.5 - norm[0].0) / norm[0].1;
    assert!((out[0] - want0).abs() < 1e-4);
    assert!(norm[1].0 > 100.0 && norm[0].0 < 20.0);
}

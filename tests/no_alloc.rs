#![cfg(feature = "std")]
//! The core allocates nothing after `Learner::new`: a counting global allocator watches
//! thousands of training steps and inferences, with both kernel families.

use edgecl::{
    Active, Generator, GeneratorConfig, GeneratorKind, Kernels, LayerDims, Learner, LearnerConfig, Likelihood,
    Optimizer, Plan, VaeConfig,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to the system allocator unchanged; counting touches only
// a const-initialised thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(|c| c.get())
}

fn exercise(dims: &[usize], batch: usize, optimizer: Optimizer, kernels: Kernels, steps: usize) {
    let config = LearnerConfig {
        dims: LayerDims::new(dims).unwrap(),
        optimizer,
        batch_size: batch,
        max_tasks: 5,
        seed: 3,
        kernels,
        penalty: None,
        packnet: None,
        generator: None,
    };
    let mut arena = vec![0u8; Plan::new(&config).unwrap().total()];
    let width = dims[0];
    let classes = *dims.last().unwrap();
    let x: Vec<f32> = (0..batch * width).map(|i| ((i * 7919) % 256) as f32 / 255.0).collect();
    let y: Vec<u16> = (0..batch).map(|i| (i % classes) as u16).collect();
    let mut out = vec![0u16; batch * 3];
    let x3: Vec<f32> = x.iter().chain(&x).chain(&x).copied().collect();
    let task = Active::Classes(edgecl::learner::learner::ClassRange {
        start: 0,
        end: classes as u16,
    });

    let mut learner = Learner::new(&config, &mut arena).unwrap();
    let before = allocations();
    let mut total_loss = 0.0;
    for s in 0..steps {
        total_loss += learner
            .train_step(&x, &y, if s % 2 == 0 { Active::All } else { task })
            .unwrap();
        learner.predict(&x3, Active::All, &mut out).unwrap();
        total_loss += learner.logits(&x[..width]).unwrap()[0];
        // Errors allocate nothing either.
        assert!(learner.train_step(&x[..width - 1], &y[..1], Active::All).is_err());
    }
    let after = allocations();
    assert!(total_loss.is_finite());
    assert_eq!(learner.steps() as usize, steps);
    assert_eq!(
        after - before,
        0,
        "{kernels:?} {dims:?}: the core allocated {} times",
        after - before
    );
}

/// PackNet's whole task cycle (train, prune, retrain, end, masked inference with
/// confidence), progressive columns (add, train, predict) and the replay generator
/// (observe, replay, train) allocate nothing either.
#[test]
fn packnet_and_progressive_columns_allocate_nothing_after_init() {
    use edgecl::learner::learner::ClassRange;
    use edgecl::{Columns, ColumnsConfig, PackNetConfig};
    let config = LearnerConfig {
        dims: LayerDims::new(&[64, 32, 10]).unwrap(),
        optimizer: Optimizer::adam(1e-3),
        batch_size: 8,
        max_tasks: 5,
        seed: 3,
        kernels: Kernels::Reference,
        penalty: None,
        packnet: Some(PackNetConfig { prune_ratio: 0.6 }),
        generator: None,
    };
    let mut arena = vec![0u8; Plan::new(&config).unwrap().total()];
    let x: Vec<f32> = (0..8 * 64).map(|i| ((i * 7919) % 256) as f32 / 255.0).collect();
    let y: Vec<u16> = (0..8).map(|i| (i % 2) as u16).collect();
    let mut out = vec![0u16; 8];
    let mut conf = vec![0f32; 8];
    let columns_config = ColumnsConfig {
        input: 64,
        width: 16,
        hidden: 2,
        classes: 10,
        max_columns: 5,
        optimizer: Optimizer::adam(1e-3),
        batch_size: 8,
        seed: 1,
        kernels: Kernels::Fast,
    };
    let mut columns_arena = vec![0u8; Plan::columns(&columns_config).unwrap().total()];

    // Every replay generator: a rank-3 Gaussian with a task's two working slots, a
    // reservoir buffer, a conditional VAE.
    let kinds = [
        GeneratorKind::Gaussian { rank: 3, slots: 2 },
        GeneratorKind::Buffer { capacity: 20 },
        GeneratorKind::Vae(VaeConfig {
            hidden: 16,
            latent: 4,
            likelihood: Likelihood::Bernoulli,
            optimizer: Optimizer::adam(1e-3),
        }),
    ];
    let replaying: Vec<_> = kinds
        .iter()
        .map(|&kind| {
            let mut c = config;
            c.packnet = None;
            c.generator = Some(GeneratorConfig {
                classes: 10,
                kind,
                distill: Some(2.0),
            });
            c
        })
        .collect();
    let mut replay_arenas: Vec<Vec<u8>> = replaying
        .iter()
        .map(|c| vec![0u8; Plan::new(c).unwrap().total()])
        .collect();
    let mut replays: Vec<Learner<'_>> = replaying
        .iter()
        .zip(replay_arenas.iter_mut())
        .map(|(c, a)| Learner::new(c, a).unwrap())
        .collect();
    let mut replay_x = vec![0f32; 8 * 64];
    let mut replay_y = vec![0u16; 8];

    let mut learner = Learner::new(&config, &mut arena).unwrap();
    let mut columns = Columns::new(&columns_config, &mut columns_arena).unwrap();
    let mut labels = vec![0u16; 8];
    let before = allocations();
    for task in 0..5u16 {
        let own = ClassRange {
            start: 2 * task,
            end: 2 * task + 2,
        };
        for (l, &c) in labels.iter_mut().zip(&y) {
            *l = c + 2 * task;
        }
        for _ in 0..50 {
            learner.train_step(&x, &labels, Active::Classes(own)).unwrap();
        }
        learner.packnet().unwrap().prune(own).unwrap();
        for _ in 0..10 {
            learner.train_step(&x, &labels, Active::Classes(own)).unwrap();
        }
        learner.packnet().unwrap().end_task().unwrap();
        for t in 1..=task as usize + 1 {
            learner
                .packnet()
                .unwrap()
                .predict_task(&x, t, Active::Classes(own), &mut out, Some(&mut conf))
                .unwrap();
        }
        for replay in replays.iter_mut() {
            if task > 0 {
                assert_eq!(
                    replay.replaying().unwrap().fill(&mut replay_x, &mut replay_y, own),
                    Ok(8)
                );
            }
            replay
                .replaying()
                .unwrap()
                .train_step(&replay_x, &replay_y, Active::All, 4)
                .unwrap();
            if matches!(replay.generator(), Some(Generator::Vae(_))) {
                replay.replaying().unwrap().train_generator(&x, &labels).unwrap();
            }
            for (row, &c) in x.chunks_exact(64).zip(&labels) {
                replay.replaying().unwrap().observe(row, c).unwrap();
            }
            replay.replaying().unwrap().commit().unwrap();
            replay.replaying().unwrap().generate(labels[0], &mut replay_x).unwrap();
        }
        columns.add_column().unwrap();
        for _ in 0..50 {
            columns.train_step(&x, &labels, Active::Classes(own)).unwrap();
        }
        for c in 0..=task as usize {
            columns.predict(&x, c, Active::All, &mut out).unwrap();
        }
    }
    assert!(learner.train_step(&x, &y, Active::All).is_err(), "no task id left");
    assert!(columns.add_column().is_err(), "no column left");
    let after = allocations();
    assert_eq!(after - before, 0, "the core allocated {} times", after - before);
}

#[test]
fn training_and_inference_allocate_nothing_after_init() {
    // The edge head as the firmware runs it, and a deeper network on the fast kernels.
    exercise(
        &[196, 33, 10],
        32,
        Optimizer::Sgd {
            lr: 0.05,
            momentum: 0.9,
        },
        Kernels::Reference,
        3000,
    );
    exercise(&[784, 64, 64, 10], 16, Optimizer::adam(1e-3), Kernels::Fast, 1000);
    exercise(&[784, 64, 10], 1, Optimizer::adam(1e-3), Kernels::Fast, 1000);
    // The counter does see allocations (the test can fail).
    let before = allocations();
    let v = std::hint::black_box(vec![1u8; 10]);
    assert!(allocations() > before && v.len() == 10);
}

/// Lines into a fixed buffer, so writing them allocates nothing either.
struct Fixed {
    buf: [u8; 8192],
    len: usize,
}

impl std::fmt::Write for Fixed {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        self.buf
            .get_mut(self.len..end)
            .ok_or(std::fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[test]
fn the_device_loop_allocates_nothing_at_all() {
    use edgecl::device::{run_with_baseline, Backbone, Checkpoints, DeviceConfig, Stream};
    use edgecl::storage::{MockNor, Slots};
    static BACKBONE: &[u8] = include_bytes!("../boards/flash/backbone.bin");
    static STREAM: &[u8] = include_bytes!("../boards/flash/stream.bin");
    let mut arena = vec![0u8; 98304];
    let mut out = Fixed { buf: [0; 8192], len: 0 };
    for config in [
        "strategy = \"replay\"\nrepeats = 2",
        "strategy = \"si\"\nhidden = 16\noptimizer = \"adam\"",
    ] {
        // The checkpoint flash is the board's (made before counting).
        let mut slots = Slots::new(MockNor::new(1 << 18), 0, 1 << 17).unwrap();
        // The image's config bytes (the text is the host's, read before counting).
        let mut buf = [0u8; DeviceConfig::MAX_BYTES];
        let bytes = DeviceConfig::parse(config)
            .unwrap()
            .to_bytes(&mut buf)
            .unwrap()
            .to_vec();
        let before = allocations();
        let config = DeviceConfig::from_bytes(&bytes).unwrap();
        let backbone = Backbone::parse(BACKBONE).unwrap();
        let stream = Stream::parse(STREAM).unwrap();
        let saves = Checkpoints {
            store: &mut slots,
            image: 1,
        };
        run_with_baseline(
            &config,
            &backbone,
            None,
            stream,
            &mut arena,
            &mut out,
            Some(saves),
            true,
        )
        .unwrap();
        assert_eq!(
            allocations() - before,
            0,
            "parsing, planning, carving, learning, evaluating, printing and checkpointing"
        );
        assert!(
            std::str::from_utf8(&out.buf[..out.len])
                .unwrap()
                .contains("starting from the image's initial head"),
            "the boot check ran"
        );
        assert!(slots.newest().unwrap().is_some(), "checkpoints were saved");
        out.len = 0;
    }
}

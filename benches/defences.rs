//! What each defence against forgetting costs per training step and per inference, side
//! by side with plain fine-tuning, on the edge head the firmware runs (256 backbone
//! features, 20 hidden units, 10 classes, Adam, batch 32, reference kernels).
//!
//! Group `edge_head_256_20_10`:
//!
//! - `train_step/naive`: [`Learner::train_step`] without any defence (the peer).
//! - `train_step/si`: the same with SI's penalty (gradient term and path integral) after
//!   one consolidated task.
//! - `train_step/packnet`: with PackNet after one packed task (the owner masks zero the
//!   frozen weights' gradients and first moments every step).
//! - `train_step/progressive_column5`: [`Columns::train_step`] of the fifth column of an
//!   18-unit progressive head (four frozen columns feeding it laterally).
//! - `inference/naive`, `inference/packnet_task1`, `inference/progressive_column5`: one
//!   batch's predictions; PackNet's masks the weights of later tasks out for the call.
//! - `replay_step/gaussian_rank4`, `replay_step/buffer`, `replay_step/vae`: a replay
//!   update as the simulator makes it in class-IL after four tasks: the batch's last 26
//!   rows filled by [`Replaying::fill`](edgecl::learner::learner::Replaying::fill) (8 old classes, balanced), then
//!   [`Learner::train_step`]; for the VAE (32 hidden, 8 latent) also
//!   [`Replaying::train_generator`](edgecl::learner::learner::Replaying::train_generator) on the batch. `replay_step/gaussian_rank4_distill`
//!   learns the replayed rows from the committed head ([`Replaying::train_step`]).
//! - `observe/gaussian_rank4`: one sample into the Gaussian's working slot (Welford and a
//!   CCIPCA step), the per-sample cost after a task.
//!
//! Run with `cargo bench --bench defences`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use edgecl::learner::learner::ClassRange;
use edgecl::learner::rng::Rng;
use edgecl::{
    Active, Columns, ColumnsConfig, GeneratorConfig, GeneratorKind, Kernels, LayerDims, Learner, LearnerConfig,
    Likelihood, Method, Optimizer, PackNetConfig, PenaltyConfig, Plan, Quant, Storage, VaeConfig,
};

const BATCH: usize = 32;
const INPUT: usize = 256;

fn config(penalty: Option<PenaltyConfig>, packnet: Option<PackNetConfig>) -> LearnerConfig {
    LearnerConfig {
        dims: LayerDims::new(&[INPUT, 20, 10]).expect("dims"),
        optimizer: Optimizer::adam(1e-3),
        batch_size: BATCH,
        max_tasks: 5,
        seed: 1,
        kernels: Kernels::Reference,
        penalty,
        packnet,
        generator: None,
    }
}

fn data(seed: u64) -> (Vec<f32>, Vec<u16>) {
    let mut rng = Rng::new(seed);
    let x = (0..BATCH * INPUT).map(|_| rng.uniform()).collect();
    let y = (0..BATCH).map(|i| (i % 2) as u16).collect();
    (x, y)
}

const FIRST: ClassRange = ClassRange { start: 0, end: 2 };

fn benches(c: &mut Criterion) {
    let (x, y) = data(3);
    let mut g = c.benchmark_group("edge_head_256_20_10");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sampling_mode(SamplingMode::Flat);

    let si = PenaltyConfig {
        method: Method::Si { xi: 0.1 },
        lambda: 2.0,
        storage: Storage::Compact(Quant::Log),
    };
    let packnet = PackNetConfig { prune_ratio: 0.75 };
    for (name, cfg) in [
        ("naive", config(None, None)),
        ("si", config(Some(si), None)),
        ("packnet", config(None, Some(packnet))),
    ] {
        let mut arena = vec![0u8; Plan::new(&cfg).expect("plan").total()];
        let mut l = Learner::new(&cfg, &mut arena).expect("learner");
        for _ in 0..20 {
            l.train_step(&x, &y, Active::Classes(FIRST)).expect("step");
        }
        if cfg.penalty.is_some() {
            l.penalised().unwrap().consolidate().expect("consolidate");
        }
        if cfg.packnet.is_some() {
            l.packnet().unwrap().prune(FIRST).expect("prune");
            l.packnet().unwrap().end_task().expect("end");
        }
        g.bench_function(format!("train_step/{name}"), |b| {
            b.iter(|| black_box(l.train_step(black_box(&x), &y, Active::All).expect("step")))
        });
        let mut out = vec![0u16; BATCH];
        if name == "packnet" {
            g.bench_function("inference/packnet_task1", |b| {
                b.iter(|| {
                    l.packnet()
                        .unwrap()
                        .predict_task(black_box(&x), 1, Active::All, &mut out, None)
                        .expect("predict");
                    black_box(out[0])
                })
            });
        } else if name == "naive" {
            g.bench_function("inference/naive", |b| {
                b.iter(|| {
                    l.predict(black_box(&x), Active::All, &mut out).expect("predict");
                    black_box(out[0])
                })
            });
        }
    }

    let columns = ColumnsConfig {
        input: INPUT,
        width: 18,
        hidden: 1,
        classes: 10,
        max_columns: 5,
        optimizer: Optimizer::adam(1e-3),
        batch_size: BATCH,
        seed: 1,
        kernels: Kernels::Reference,
    };
    let mut arena = vec![0u8; Plan::columns(&columns).expect("plan").total()];
    let mut p = Columns::new(&columns, &mut arena).expect("columns");
    for _ in 0..5 {
        p.add_column().expect("column");
    }
    g.bench_function("train_step/progressive_column5", |b| {
        b.iter(|| black_box(p.train_step(black_box(&x), &y, Active::All).expect("step")))
    });
    let mut out = vec![0u16; BATCH];
    g.bench_function("inference/progressive_column5", |b| {
        b.iter(|| {
            p.predict(black_box(&x), 4, Active::All, &mut out).expect("predict");
            black_box(out[0])
        })
    });

    // Replay after four tasks of two classes: 8 old classes observed and committed.
    let vae = VaeConfig {
        hidden: 32,
        latent: 8,
        likelihood: Likelihood::Gaussian,
        optimizer: Optimizer::adam(1e-3),
    };
    for (name, kind, distill) in [
        ("gaussian_rank4", GeneratorKind::Gaussian { rank: 4, slots: 2 }, None),
        (
            "gaussian_rank4_distill",
            GeneratorKind::Gaussian { rank: 4, slots: 2 },
            Some(2.0),
        ),
        ("buffer", GeneratorKind::Buffer { capacity: 130 }, None),
        ("vae", GeneratorKind::Vae(vae), None),
    ] {
        let mut cfg = config(None, None);
        cfg.generator = Some(GeneratorConfig {
            classes: 10,
            kind,
            distill,
        });
        let mut arena = vec![0u8; Plan::new(&cfg).expect("plan").total()];
        let mut l = Learner::new(&cfg, &mut arena).expect("learner");
        let mut rng = Rng::new(5);
        for task in 0..4u16 {
            for _ in 0..200 {
                let c = 2 * task + (rng.next_u32() % 2) as u16;
                let row: Vec<f32> = (0..INPUT)
                    .map(|j| (j as f32 * 0.01 + c as f32).sin() + rng.normal())
                    .collect();
                l.replaying().unwrap().observe(&row, c).expect("observe");
            }
            l.replaying().unwrap().commit().expect("commit");
        }
        let (mut xb, mut yb) = (x.clone(), y.clone());
        let real = 6;
        let current = ClassRange { start: 8, end: 10 };
        for v in yb.iter_mut().take(real) {
            *v += 8;
        }
        let vae = matches!(kind, GeneratorKind::Vae(_));
        g.bench_function(format!("replay_step/{name}"), |b| {
            b.iter(|| {
                l.replaying()
                    .unwrap()
                    .fill(&mut xb[real * INPUT..], &mut yb[real..], current)
                    .expect("replay");
                let loss = l
                    .replaying()
                    .unwrap()
                    .train_step(black_box(&xb), &yb, Active::All, BATCH - real)
                    .expect("step");
                if vae {
                    l.replaying().unwrap().train_generator(&xb, &yb).expect("generator");
                }
                black_box(loss)
            })
        });
        if name == "gaussian_rank4" {
            let row = x[..INPUT].to_vec();
            g.bench_function("observe/gaussian_rank4", |b| {
                b.iter(|| l.replaying().unwrap().observe(black_box(&row), 8).expect("observe"))
            });
        }
    }
    g.finish();
}

criterion_group!(defences, benches);
criterion_main!(defences);

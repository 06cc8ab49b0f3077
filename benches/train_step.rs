//! Wall-clock cost of one training step and one inference call of the learner.
//!
//! The network is the one of the continual-learning literature on (Permuted/Split) MNIST:
//! a dense 784-400-400-10 ReLU network, trained with Adam (lr 1e-3, PyTorch's defaults
//! beta1 0.9, beta2 0.999, eps 1e-8) under softmax cross-entropy over all classes.
//!
//! What is timed, all in the group `mlp_784_400_400_10`:
//!
//! - `train_step/batch{1,128}/{fast,reference}`: one [`Learner::train_step`] (forward,
//!   loss, backward and the optimizer update of every parameter) on a batch of 1 or 128
//!   samples, with a learner whose `batch_size` equals the batch.
//! - `train_step_sgd/batch1/fast`: the same at batch 1 with SGD (momentum 0.9, lr 0.01).
//!   At batch 1 Adam's pass over all ~478k parameters (and its two state vectors) costs
//!   about as much as the matrix work, so SGD shows the step without most of that pass.
//! - `inference/batch1/{fast,reference}` and `inference/batch128/fast`: one
//!   [`Learner::logits`] call (the forward pass only).
//!
//! Inputs are uniform `[0, 1)` floats and labels `0..10` from the core's seeded generator,
//! made once outside the timed closures. The learner keeps training on the same batch
//! between iterations, which does not change the work a step does.
//!
//! Run with
//!
//! ```text
//! cargo bench --bench train_step
//! cargo bench --bench train_step -- batch1      # a subset, by name filter
//! ```
//!
//! `benches/pytorch_step.py` times the same steps (same network, loss and optimizers) in
//! PyTorch on the CPU, for comparison:
//! `python3 benches/pytorch_step.py [--threads N] [--json FILE]`.

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput};
use edgecl::learner::rng::Rng;
use edgecl::{Active, Kernels, LayerDims, Learner, LearnerConfig, Optimizer, Plan};

/// The literature network: 784 inputs, two hidden layers of 400, 10 classes.
const DIMS: [usize; 4] = [784, 400, 400, 10];

/// Learner configuration for one benchmark.
fn config(batch: usize, optimizer: Optimizer, kernels: Kernels) -> LearnerConfig {
    LearnerConfig {
        dims: LayerDims::new(&DIMS).expect("valid dims"),
        optimizer,
        batch_size: batch,
        max_tasks: 5,
        seed: 1,
        kernels,
        penalty: None,
        packnet: None,
        generator: None,
    }
}

/// Uniform `[0, 1)` inputs (`n x 784`) and labels `0..10` from the core's seeded generator.
fn batch_data(n: usize, seed: u64) -> (Vec<f32>, Vec<u16>) {
    let mut rng = Rng::new(seed);
    let x = (0..n * DIMS[0]).map(|_| rng.uniform()).collect();
    let labels = (0..n).map(|_| rng.below(DIMS[3] as u32) as u16).collect();
    (x, labels)
}

/// Benchmarks one `train_step` on a batch of `batch` samples.
fn bench_train(g: &mut BenchmarkGroup<'_, WallTime>, name: &str, batch: usize, optimizer: Optimizer, kernels: Kernels) {
    let cfg = config(batch, optimizer, kernels);
    let mut arena = vec![0u8; Plan::new(&cfg).expect("plan").total()];
    let mut learner = Learner::new(&cfg, &mut arena).expect("learner");
    let (x, labels) = batch_data(batch, 42);
    g.throughput(Throughput::Elements(batch as u64));
    g.bench_function(name, |b| {
        b.iter(|| {
            black_box(
                learner
                    .train_step(black_box(&x), black_box(&labels), Active::All)
                    .expect("step"),
            )
        })
    });
}

/// Benchmarks one `logits` call on a batch of `batch` samples.
fn bench_infer(g: &mut BenchmarkGroup<'_, WallTime>, name: &str, batch: usize, kernels: Kernels) {
    let cfg = config(batch, Optimizer::adam(1e-3), kernels);
    let mut arena = vec![0u8; Plan::new(&cfg).expect("plan").total()];
    let mut learner = Learner::new(&cfg, &mut arena).expect("learner");
    let (x, _) = batch_data(batch, 7);
    g.throughput(Throughput::Elements(batch as u64));
    g.bench_function(name, |b| {
        b.iter(|| black_box(learner.logits(black_box(&x)).expect("logits")[0]))
    });
}

fn benches(c: &mut Criterion) {
    let adam = Optimizer::adam(1e-3);
    let sgd = Optimizer::Sgd {
        lr: 0.01,
        momentum: 0.9,
    };

    let mut g = c.benchmark_group("mlp_784_400_400_10");
    // Flat sampling (every sample runs the same number of iterations) fits all these
    // step times into the measurement time; criterion's linear sampling would not.
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sampling_mode(SamplingMode::Flat);

    bench_train(&mut g, "train_step/batch1/fast", 1, adam, Kernels::Fast);
    bench_train(&mut g, "train_step/batch128/fast", 128, adam, Kernels::Fast);
    bench_train(&mut g, "train_step_sgd/batch1/fast", 1, sgd, Kernels::Fast);
    bench_infer(&mut g, "inference/batch1/fast", 1, Kernels::Fast);
    bench_infer(&mut g, "inference/batch128/fast", 128, Kernels::Fast);
    bench_train(&mut g, "train_step/batch1/reference", 1, adam, Kernels::Reference);
    bench_infer(&mut g, "inference/batch1/reference", 1, Kernels::Reference);

    // A batch-128 step of the plain loops takes tens of milliseconds: few samples keep
    // the whole bench short.
    g.sample_size(10);
    bench_train(&mut g, "train_step/batch128/reference", 128, adam, Kernels::Reference);

    g.finish();
}

criterion_group!(train_step, benches);
criterion_main!(train_step);

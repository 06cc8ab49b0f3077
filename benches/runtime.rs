//! `edgecl run`'s per-sample cost and memory, on the shipped backbone (fashion-cnn) and a
//! replay head in 96 KiB, over MNIST's training images (`harness = false`: it times each
//! sample and reports percentiles, which criterion does not).
//!
//! ```text
//! cargo bench --bench runtime                        # latency: p50 / p99 / mean
//! EDGECL_BENCH_SAMPLES=1000000 cargo bench --bench runtime -- rss   # resident memory
//! ```
//!
//! Latency: 5,000 unlabelled samples through `predict` (tract at batch 1, then the head),
//! then 5,000 labelled ones through `learn` (the same, plus the row joining the batch;
//! every full batch observes, replays and updates, so the p99 holds the updates). The
//! peer is `benches/runtime_peer.py` (onnxruntime on the same file, a PyTorch head),
//! run beside it by `benches/runtime_compare.sh`.
//!
//! RSS: a stream of labelled samples, five tasks of two digits, the resident set size
//! read from /proc/self/statm every 10,000 samples.

use edgecl::host::board::Board;
use edgecl::host::idx::{load_split, Split};
use edgecl::host::runtime::{linux_image, Deployment};
use std::path::Path;
use std::time::Instant;

const CONFIG: &str = "strategy = \"replay\"\nbudget = \"96k\"\n";

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(what: &str, mut us: Vec<f64>) {
    us.sort_by(f64::total_cmp);
    let mean = us.iter().sum::<f64>() / us.len() as f64;
    println!(
        "{what:<28} n {:>6}  p50 {:>8.1} us  p99 {:>8.1} us  mean {:>8.1} us",
        us.len(),
        percentile(&us, 0.5),
        percentile(&us, 0.99),
        mean
    );
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let onnx_path = root.join("models/fashion-cnn/backbone.onnx");
    let onnx = std::fs::read(&onnx_path).expect("the shipped backbone");
    let (secret, public) = edgecl::host::device::keygen();
    let board = Board::load("raspberry-pi-4").expect("board");
    let image = linux_image(&board, CONFIG, &onnx, "fashion-cnn", &secret).expect("image");
    let state = std::env::temp_dir().join(format!("edgecl-bench-runtime-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let mut dep = Deployment::from_bytes(&image, "bench image", &public, &onnx, "fashion-cnn", &state).expect("deploy");
    dep.checkpoint_every(0);
    let train = load_split(&root.join("data/mnist"), Split::Train, None).expect("MNIST");
    let mut arena = vec![0u8; dep.arena_bytes()];
    let mut rt = dep.start(&mut arena).expect("start");
    let rss_mode = std::env::args().any(|a| a == "rss");
    println!(
        "edgecl run's runtime: fashion-cnn backbone (tract, batch 1), head {:?} ({}), arena {} B",
        dep.learner().dims.as_slice(),
        dep.config().strategy,
        dep.arena_bytes()
    );
    if !rss_mode {
        let rows: Vec<usize> = (0..train.len()).filter(|&i| train.y[i] < 2).collect();
        let x = |i: usize| train.x.row(rows[i % rows.len()]).to_vec();
        for i in 0..200 {
            rt.learn(&x(i), i64::from(train.y[rows[i % rows.len()]]))
                .expect("warm-up");
        }
        let mut predict = Vec::new();
        for i in 0..5000 {
            let s = x(i);
            let t = Instant::now();
            std::hint::black_box(rt.predict(&s).expect("predict"));
            predict.push(t.elapsed().as_secs_f64() * 1e6);
        }
        let mut learn = Vec::new();
        for i in 0..5000 {
            let s = x(i);
            let label = i64::from(train.y[rows[i % rows.len()]]);
            let t = Instant::now();
            std::hint::black_box(rt.learn(&s, label).expect("learn"));
            learn.push(t.elapsed().as_secs_f64() * 1e6);
        }
        let backbone = dep.backbone();
        let mut feat = vec![0.0f32; backbone.feature_width()];
        let mut tract = Vec::new();
        for i in 0..5000 {
            let s = x(i);
            let t = Instant::now();
            backbone.sample(&s, &mut feat).expect("tract");
            tract.push(t.elapsed().as_secs_f64() * 1e6);
        }
        report("tract alone (batch 1)", tract);
        report("predict", predict);
        report("predict + learn", learn);
        let st = rt.stats();
        println!("updates {} over {} labelled samples", st.updates, st.labelled);
    } else {
        let total: u64 = std::env::var("EDGECL_BENCH_SAMPLES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000);
        let per_task = total / 5;
        let by_class: Vec<Vec<usize>> = (0..10u16)
            .map(|c| (0..train.len()).filter(|&i| train.y[i] == c).collect())
            .collect();
        let started = Instant::now();
        let mut rows_seen = [0usize; 10];
        for n in 0..total {
            let task = (n / per_task).min(4) as usize;
            let class = 2 * task + (n % 2) as usize;
            let i = by_class[class][rows_seen[class] % by_class[class].len()];
            rows_seen[class] += 1;
            rt.learn(&train.x.row(i).to_vec(), class as i64).expect("learn");
            if (n + 1) % per_task == 0 && task < 4 {
                rt.end_task().expect("end task");
            }
            if (n + 1) % 10_000 == 0 {
                println!(
                    "samples {:>8}  task {}  rss {:>10} B  {:.0} samples/s",
                    n + 1,
                    task + 1,
                    rss_bytes(),
                    (n + 1) as f64 / started.elapsed().as_secs_f64()
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&state);
}

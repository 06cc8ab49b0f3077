//! What a checkpoint of the firmware's learner costs (64 features, linear head, 10
//! classes, Gaussian replay of rank 4, after two tasks): writing the image into RAM,
//! reading it back into a learner, and a whole two-slot save of the learner streamed to a
//! NOR flash in RAM (check both slots, erase one, write, stream again and compare: what the
//! firmware does, with no image-sized buffer), beside a plain copy of the same bytes (the
//! peer: what any save costs at least).
//!
//! Run with `cargo bench --bench checkpoint`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use edgecl::device::DeviceConfig;
use edgecl::storage::{MockNor, Slots};
use edgecl::Learner;
use embedded_storage::nor_flash::NorFlash;

#[path = "../tests/common/edge.rs"]
mod edge;

fn benches(c: &mut Criterion) {
    let config = DeviceConfig::default().learner(64).unwrap();
    let mut arena = vec![0u8; 1 << 16];
    let mut l = Learner::new(&config, &mut arena).unwrap();
    for t in 0..2u16 {
        edge::edge_task(&mut l, t);
    }
    let image = edge::image(&mut l, 1, 2);
    let len = image.len();
    let slot = len.next_multiple_of(MockNor::ERASE_SIZE);
    eprintln!("checkpoint of the firmware's learner: {len} bytes, slots of {slot} bytes");

    let mut g = c.benchmark_group("checkpoint_edge_head");
    let mut out = vec![0u8; len];
    g.bench_function("copy_bytes_peer", |b| b.iter(|| out.copy_from_slice(black_box(&image))));
    let mut buf = vec![0u8; len + 128];
    g.bench_function("write", |b| {
        b.iter(|| l.write_checkpoint(black_box(2), 2, &mut buf).unwrap())
    });
    g.bench_function("read", |b| b.iter(|| l.read_checkpoint(black_box(&image)).unwrap()));
    let mut slots = Slots::new(MockNor::new(2 * slot), 0, slot as u32).unwrap();
    g.bench_function("save_two_slot_nor", |b| {
        b.iter(|| slots.checkpoint(&mut l, black_box(2), &[]).unwrap())
    });
    g.finish();
}

criterion_group!(checkpoint, benches);
criterion_main!(checkpoint);

//! Checkpoints: resuming gives bit for bit the run that never stopped (every defence);
//! damaged images are refused and change nothing; two NOR slots survive a power cut at
//! every byte of a save, and two cuts over 10,000 sampled pairs (`cargo test power_cut`).

use edgecl::device::DeviceConfig;
use edgecl::learner::checkpoint::{self, CheckpointError};
use edgecl::learner::learner::ClassRange;
use edgecl::learner::rng::Rng;
use edgecl::storage::{FileStore, MockNor, Slots};
use edgecl::{
    Active, Error, FisherLabels, GeneratorConfig, GeneratorKind, Kernels, LayerDims, Learner, LearnerConfig,
    Likelihood, Method, Optimizer, PackNetConfig, PenaltyConfig, Quant, Storage, VaeConfig,
};
use embedded_storage::nor_flash::NorFlash;

#[path = "common/edge.rs"]
mod edge;
use edge::image;

/// Steps per task of the synthetic stream; task `t` teaches classes `2t` and `2t + 1`.
const TASK: usize = 20;

fn base(dims: &[usize], optimizer: Optimizer) -> LearnerConfig {
    LearnerConfig {
        dims: LayerDims::new(dims).unwrap(),
        optimizer,
        batch_size: 6,
        max_tasks: 5,
        seed: 11,
        kernels: Kernels::Reference,
        penalty: None,
        packnet: None,
        generator: None,
    }
}

fn configs() -> Vec<(&'static str, LearnerConfig)> {
    let dims = [8, 6, 10];
    let penalty = |method, storage| PenaltyConfig {
        method,
        lambda: 5.0,
        storage,
    };
    let mut out = vec![
        (
            "sgd",
            base(
                &dims,
                Optimizer::Sgd {
                    lr: 0.05,
                    momentum: 0.9,
                },
            ),
        ),
        ("adam", base(&dims, Optimizer::adam(1e-2))),
    ];
    for (name, method, storage) in [
        (
            "ewc",
            Method::Ewc {
                fisher: FisherLabels::Sampled,
            },
            Storage::Compact(Quant::Log),
        ),
        (
            "online-ewc",
            Method::OnlineEwc {
                gamma: 0.9,
                fisher: FisherLabels::True,
            },
            Storage::F32,
        ),
        ("si", Method::Si { xi: 0.1 }, Storage::Compact(Quant::Linear)),
        ("mas", Method::Mas, Storage::Compact(Quant::Log)),
    ] {
        let mut c = base(&dims, Optimizer::adam(1e-2));
        c.penalty = Some(penalty(method, storage));
        out.push((name, c));
    }
    let mut c = base(&dims, Optimizer::adam(1e-2));
    c.packnet = Some(PackNetConfig { prune_ratio: 0.5 });
    out.push(("packnet", c));
    for (name, kind, distill) in [
        ("gaussian", GeneratorKind::Gaussian { rank: 2, slots: 2 }, Some(2.0)),
        ("buffer", GeneratorKind::Buffer { capacity: 9 }, None),
        (
            "vae",
            GeneratorKind::Vae(VaeConfig {
                hidden: 5,
                latent: 2,
                likelihood: Likelihood::Gaussian,
                optimizer: Optimizer::adam(1e-2),
            }),
            None,
        ),
    ] {
        let mut c = base(&dims, Optimizer::adam(1e-2));
        c.generator = Some(GeneratorConfig {
            classes: 10,
            kind,
            distill,
        });
        out.push((name, c));
    }
    out
}

/// Steps `from..to` of a seeded stream, with each defence's task ends.
fn drive(l: &mut Learner<'_>, from: usize, to: usize) {
    let c = *l.config();
    let (w, b) = (c.dims.input(), c.batch_size);
    for step in from..to {
        let task = step / TASK;
        let hi = 2 * task as u16 + 2;
        let mut r = Rng::new(step as u64);
        let mut x: Vec<f32> = (0..b * w).map(|_| r.normal()).collect();
        let mut y: Vec<u16> = (0..b).map(|i| hi - 2 + (i as u16 % 2)).collect();
        for (row, &label) in x.chunks_exact_mut(w).zip(&y) {
            row[usize::from(label) % w] += 2.0;
        }
        let active = Active::Classes(ClassRange { start: 0, end: hi });
        if c.generator.is_some() {
            for (row, &label) in x.chunks_exact(w).zip(&y) {
                l.replaying().unwrap().observe(row, label).unwrap();
            }
            let real = b / 2;
            let exclude = ClassRange { start: hi - 2, end: hi };
            let replayed = l
                .replaying()
                .unwrap()
                .fill(&mut x[real * w..], &mut y[real..], exclude)
                .unwrap();
            let n = if replayed > 0 { b } else { real };
            l.replaying()
                .unwrap()
                .train_step(&x[..n * w], &y[..n], active, replayed)
                .unwrap();
            if matches!(c.generator.map(|g| g.kind), Some(GeneratorKind::Vae(_))) {
                l.replaying()
                    .unwrap()
                    .train_generator(&x[..real * w], &y[..real])
                    .unwrap();
            }
        } else {
            l.train_step(&x, &y, active).unwrap();
        }
        let phase = step % TASK;
        if c.packnet.is_some() && phase == TASK - 6 {
            l.packnet()
                .unwrap()
                .prune(ClassRange { start: hi - 2, end: hi })
                .unwrap();
        }
        if phase == TASK - 1 {
            if c.penalty.is_some() {
                for (row, &label) in x.chunks_exact(w).zip(&y) {
                    l.penalised()
                        .unwrap()
                        .accumulate_importance(row, label, active)
                        .unwrap();
                }
                l.penalised().unwrap().consolidate().unwrap();
            }
            if c.packnet.is_some() {
                l.packnet().unwrap().end_task().unwrap();
            }
            if c.generator.is_some() {
                l.replaying().unwrap().commit().unwrap();
            }
        }
    }
}

#[test]
fn resuming_from_a_checkpoint_continues_bit_for_bit_for_every_defence() {
    for (name, config) in configs() {
        // Step 56: mid-task, and for PackNet while the pruned weights retrain.
        let mut arena = vec![0u8; 1 << 16];
        let mut a = Learner::new(&config, &mut arena).unwrap();
        drive(&mut a, 0, 56);
        let saved = image(&mut a, 7, 2);
        drive(&mut a, 56, 90);
        let straight = image(&mut a, 8, 4);

        let mut other = vec![0u8; 1 << 16];
        let mut b = Learner::new(&config, &mut other).unwrap();
        let (info, task) = b.read_checkpoint(&saved).unwrap();
        assert_eq!((info.sequence, task, info.len), (7, 2, saved.len()), "{name}");
        assert_eq!(
            image(&mut b, 7, 2),
            saved,
            "{name}: a restored learner saves the same image"
        );
        drive(&mut b, 56, 90);
        assert_eq!(
            image(&mut b, 8, 4),
            straight,
            "{name}: resumed and uninterrupted runs differ"
        );
        // A run that never stopped and one that restored predict alike, too.
        let x: Vec<f32> = (0..8).map(|i| i as f32 * 0.3 - 1.0).collect();
        assert_eq!(a.logits(&x).unwrap(), b.logits(&x).unwrap(), "{name}");
    }
}

#[test]
fn a_damaged_or_foreign_checkpoint_is_refused_and_changes_nothing() {
    let (_, config) = configs().swap_remove(4); // SI, compact
    let mut arena = vec![0u8; 1 << 16];
    let mut l = Learner::new(&config, &mut arena).unwrap();
    drive(&mut l, 0, 30);
    let good = image(&mut l, 3, 1);
    drive(&mut l, 30, 35);
    let before = image(&mut l, 9, 9);
    let refuse = |l: &mut Learner<'_>, bytes: &[u8]| l.read_checkpoint(bytes).unwrap_err();
    for bit in (0..good.len() * 8).step_by(7) {
        let mut bad = good.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        refuse(&mut l, &bad);
    }
    for len in (0..good.len()).step_by(13) {
        refuse(&mut l, &good[..len]);
    }
    let mut magic = good.clone();
    magic[0] = b'X';
    assert_eq!(refuse(&mut l, &magic), Error::Checkpoint(CheckpointError::BadMagic));
    // Format 1 (before the caller's record), format 2 (its config fingerprint was the
    // config's Debug text) and any other version: refused by number, the older ones with
    // what to do.
    for v in [1u8, 2, 4] {
        let mut version = good.clone();
        version[4] = v;
        assert_eq!(
            refuse(&mut l, &version),
            Error::Checkpoint(CheckpointError::Version { got: u16::from(v) })
        );
        let message = CheckpointError::Version { got: u16::from(v) }.to_string();
        if v < 3 {
            assert!(
                message.contains(&format!("checkpoint format {v} was written by an older edgecl"))
                    && message.contains("reads format 3 only")
                    && message.contains("start again from the device image"),
                "{message}"
            );
        } else {
            assert!(message.contains("checkpoint format 4, this build reads 3"), "{message}");
        }
    }
    assert!(matches!(
        refuse(&mut l, &good[..40]),
        Error::Checkpoint(CheckpointError::Truncated { .. })
    ));
    let mut crc = good.clone();
    crc[30] ^= 1;
    assert_eq!(refuse(&mut l, &crc), Error::Checkpoint(CheckpointError::BadCrc));
    // Another config's image, intact.
    let mut other_config = config;
    other_config.seed = 12;
    let mut other_arena = vec![0u8; 1 << 16];
    let mut other = Learner::new(&other_config, &mut other_arena).unwrap();
    assert_eq!(
        refuse(&mut l, &image(&mut other, 1, 0)),
        Error::Checkpoint(CheckpointError::OtherConfig)
    );
    assert_eq!(image(&mut l, 9, 9), before, "nothing changed");
    // A buffer too small to write into is an error, not a panic.
    let mut small = vec![0u8; 10];
    assert!(matches!(
        l.write_checkpoint(1, 1, &mut small),
        Err(Error::Checkpoint(CheckpointError::NoRoom { .. }))
    ));
}

/// The edge head the firmware runs (64 features, 10 classes, Gaussian replay rank 4),
/// trained a little; its images.
fn edge_images(sequences: &[u32]) -> (Vec<Vec<u8>>, usize) {
    let config = DeviceConfig::default().learner(64).unwrap();
    let mut arena = vec![0u8; 1 << 16];
    let mut l = Learner::new(&config, &mut arena).unwrap();
    let mut images = Vec::new();
    for (k, &s) in sequences.iter().enumerate() {
        edge::edge_task(&mut l, k as u16);
        images.push(image(&mut l, s, k as u32));
    }
    let slot = images
        .iter()
        .map(Vec::len)
        .max()
        .unwrap()
        .next_multiple_of(MockNor::ERASE_SIZE);
    (images, slot)
}

/// Saves `image` on `flash` with power cut after `cut` steps, then reboots and loads:
/// the image found (None: nothing valid).
fn save_cut_load(flash: &mut MockNor, slot: usize, image: &[u8], cut: Option<u64>) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; slot];
    if let Some(n) = cut {
        flash.cut_after(n);
    }
    let mut slots = Slots::new(
        std::mem::replace(flash, MockNor::new(MockNor::ERASE_SIZE)),
        0,
        slot as u32,
    )
    .unwrap();
    let result = slots.save(image);
    *flash = slots.release();
    assert_eq!(
        result.is_err(),
        flash.was_cut(),
        "a save fails exactly when power is cut"
    );
    flash.reboot();
    let mut slots = Slots::new(
        std::mem::replace(flash, MockNor::new(MockNor::ERASE_SIZE)),
        0,
        slot as u32,
    )
    .unwrap();
    let found = slots.load(&mut buf).unwrap().map(|(_, info)| buf[..info.len].to_vec());
    *flash = slots.release();
    found
}

/// Flash with `older` in slot 0 and `old` (the newest) in slot 1, so the next save
/// erases and rewrites slot 0.
fn prepared(slot: usize, older: &[u8], old: &[u8]) -> MockNor {
    let mut flash = MockNor::new(2 * slot);
    assert_eq!(save_cut_load(&mut flash, slot, older, None).as_deref(), Some(older));
    assert_eq!(save_cut_load(&mut flash, slot, old, None).as_deref(), Some(old));
    flash
}

#[test]
fn power_cut_at_every_byte_of_a_checkpoint_write_loses_nothing() {
    let (images, slot) = edge_images(&[1, 2, 3]);
    let (older, old, new) = (&images[0], &images[1], &images[2]);
    let base = prepared(slot, older, old);
    let mut whole = base.clone();
    let before = whole.steps();
    assert_eq!(save_cut_load(&mut whole, slot, new, None).as_deref(), Some(&new[..]));
    let total = whole.steps() - before;
    assert_eq!(
        total as usize,
        slot + new.len().next_multiple_of(4),
        "erase a slot, write the image"
    );
    let (mut lost, mut got_new) = (0, 0);
    for cut in 0..=total {
        let mut flash = base.clone();
        match save_cut_load(&mut flash, slot, new, Some(cut)) {
            Some(found) if found == *old => {}
            Some(found) if found == *new => got_new += 1,
            _ => lost += 1,
        }
    }
    eprintln!(
        "power cuts tried {} (every byte of a {} B erase and a {} B write of a {} B checkpoint), states lost {lost}, new state kept {got_new}",
        total + 1,
        slot,
        new.len().next_multiple_of(4),
        new.len()
    );
    assert_eq!(lost, 0);
    assert!(got_new >= 1, "the uncut save lands");
    // The state loaded restores into a learner.
    let config = DeviceConfig::default().learner(64).unwrap();
    let mut arena = vec![0u8; 1 << 16];
    let mut l = Learner::new(&config, &mut arena).unwrap();
    let mut slots = Slots::new(base, 0, slot as u32).unwrap();
    let r = slots.restore(&mut l, &mut [], |_| Ok(())).unwrap();
    assert_eq!(r.loaded.map(|(_, l)| (l.info.sequence, l.task)), Some((2, 1)));
}

#[test]
fn slots_checkpoint_numbers_each_save_after_the_newest_and_restores_it() {
    let config = DeviceConfig::default().learner(64).unwrap();
    let mut arena = vec![0u8; 1 << 16];
    let mut l = Learner::new(&config, &mut arena).unwrap();
    let slot = l.checkpoint_capacity().next_multiple_of(MockNor::ERASE_SIZE);
    // A slot smaller than the image: refused before the slot is touched.
    let mut small = Slots::new(MockNor::new(2 * 4096), 0, 4096).unwrap();
    assert!(matches!(
        small.checkpoint(&mut l, 0, &[]),
        Err(edgecl::storage::StorageError::TooBig { slot: 4096, .. })
    ));
    let mut slots = Slots::new(MockNor::new(2 * slot), 0, slot as u32).unwrap();
    edge::edge_task(&mut l, 0);
    assert_eq!(slots.checkpoint(&mut l, 1, b"first").unwrap(), (0, 1));
    edge::edge_task(&mut l, 1);
    assert_eq!(slots.checkpoint(&mut l, 2, b"second").unwrap(), (1, 2));
    let saved = image(&mut l, 2, 2);
    let mut fresh_arena = vec![0u8; 1 << 16];
    let mut fresh = Learner::new(&config, &mut fresh_arena).unwrap();
    // The caller may refuse its record: nothing loads, the learner is untouched.
    let untouched = image(&mut fresh, 2, 2);
    let mut record = [0u8; 16];
    let r = slots
        .restore(&mut fresh, &mut record, |_| {
            Err(checkpoint::CheckpointError::Refused("not mine"))
        })
        .unwrap();
    assert_eq!(r.loaded, None);
    assert_eq!(r.refused.iter().flatten().count(), 2);
    assert_eq!(image(&mut fresh, 2, 2), untouched);
    let r = slots.restore(&mut fresh, &mut record, |rec| {
        assert_eq!(rec, b"second");
        Ok(())
    });
    let (i, loaded) = r.unwrap().loaded.unwrap();
    assert_eq!(
        (i, loaded.info.sequence, loaded.task, &record[..loaded.caller]),
        (1, 2, 2, &b"second"[..])
    );
    assert_eq!(image(&mut fresh, 2, 2), saved, "the restored learner is the saved one");
    // A record larger than the caller's buffer is refused, not cut.
    let r = slots.restore(&mut fresh, &mut record[..3], |_| Ok(())).unwrap();
    assert_eq!(r.loaded, None);
}

#[test]
fn power_cut_twice_over_ten_thousand_sampled_pairs_loses_nothing() {
    // old (2) is the newest; the first save writes new1 (3); the second writes the next
    // sequence after whatever survived: new2 as 3 or as 4.
    let (images, slot) = edge_images(&[1, 2, 3, 3, 4]);
    let (older, old, new1) = (&images[0], &images[1], &images[2]);
    let new2 = |seq: u32| if seq == 2 { &images[3] } else { &images[4] };
    let base = prepared(slot, older, old);
    let total = (slot + new1.len().next_multiple_of(4)) as u32;
    let mut rng = Rng::new(2024);
    let (mut pairs, mut lost, mut completed) = (0, 0, 0);
    for _ in 0..10_000 {
        // A fifth of the first saves complete (a cut drawn past the save's end), so the
        // second save also writes into the other slot, the one holding the old image.
        let (c1, c2) = (rng.below(total + total / 4 + 1), rng.below(total + 1));
        let mut flash = base.clone();
        let first = save_cut_load(&mut flash, slot, new1, Some(u64::from(c1)));
        let Some(first) = first.filter(|f| f == old || f == new1) else {
            lost += 1;
            continue;
        };
        let seq = checkpoint::peek(&first).unwrap().sequence;
        completed += usize::from(seq == 3);
        let second = new2(seq);
        match save_cut_load(&mut flash, slot, second, Some(u64::from(c2))) {
            Some(found) if found == first || found == *second => {}
            _ => lost += 1,
        }
        pairs += 1;
    }
    eprintln!("double power cuts tried {pairs} pairs ({completed} first saves complete), states lost {lost}");
    assert_eq!((pairs, lost), (10_000, 0));
    assert!(completed > 1000, "{completed}");
}

#[test]
fn power_cut_geometry_and_bad_images_are_refused_before_any_write() {
    let (images, slot) = edge_images(&[1]);
    assert!(
        Slots::new(MockNor::new(2 * slot), 100, slot as u32).is_err(),
        "unaligned base"
    );
    assert!(
        Slots::new(MockNor::new(slot), 0, slot as u32).is_err(),
        "two slots do not fit"
    );
    let mut slots = Slots::new(MockNor::new(2 * slot), 0, slot as u32).unwrap();
    let mut buf = vec![0u8; slot];
    let mut bad = images[0].clone();
    bad[25] ^= 4;
    assert!(slots.save(&bad).is_err());
    assert!(slots.load(&mut buf).unwrap().is_none(), "nothing was written");
    assert_eq!(slots.release().steps(), 0);
}

#[test]
fn a_file_checkpoint_is_replaced_whole_and_a_damaged_file_is_an_error() {
    let (images, _) = edge_images(&[1, 2]);
    let dir = std::env::temp_dir().join(format!("edgecl-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = FileStore::new(dir.join("learner.ckpt"));
    assert!(store.load().unwrap().is_none());
    store.save(&images[0]).unwrap();
    store.save(&images[1]).unwrap();
    let (bytes, info) = store.load().unwrap().unwrap();
    assert_eq!((bytes, info.sequence), (images[1].clone(), 2));
    assert!(!dir.join("learner.ckpt.tmp").exists());
    assert!(store.save(&images[1][..100]).is_err(), "a truncated image is not saved");
    std::fs::write(dir.join("learner.ckpt"), &images[1][..images[1].len() - 1]).unwrap();
    let err = store.load().unwrap_err();
    assert!(err.to_string().contains("learner.ckpt"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn power_cut_the_sequence_may_wrap_past_u32_max() {
    let (images, slot) = edge_images(&[u32::MAX, 0]);
    let mut flash = MockNor::new(2 * slot);
    save_cut_load(&mut flash, slot, &images[0], None);
    // 0 comes after u32::MAX: it is the newest, whichever slot it sits in.
    assert_eq!(
        save_cut_load(&mut flash, slot, &images[1], None).as_deref(),
        Some(&images[1][..])
    );
}

#[test]
fn power_cut_a_save_that_would_never_load_is_refused_before_any_erase() {
    let (images, slot) = edge_images(&[5, 5, 3]);
    let mut flash = MockNor::new(2 * slot);
    save_cut_load(&mut flash, slot, &images[0], None);
    let steps = flash.steps();
    let mut slots = Slots::new(flash, 0, slot as u32).unwrap();
    for stale in [&images[1], &images[2]] {
        assert!(matches!(
            slots.save(stale),
            Err(edgecl::storage::StorageError::Stale { newest: 5, .. })
        ));
    }
    assert_eq!(slots.release().steps(), steps, "nothing erased or written");
}

#[test]
fn a_crafted_checkpoint_with_a_valid_crc_is_still_refused() {
    // The edge learner (64-10, SGD without momentum, Gaussian rank 4, 2 slots): its state
    // is weights, biases, then the Gaussian's counts, means, spreads, factors, scales and
    // slot classes.
    let (images, _) = edge_images(&[1]);
    let image = &images[0];
    let config = DeviceConfig::default().learner(64).unwrap();
    let mut arena = vec![0u8; 1 << 16];
    let mut l = Learner::new(&config, &mut arena).unwrap();
    let meta = image.len() - checkpoint::HEADER - l.state_bytes();
    let slot_classes = checkpoint::HEADER + meta + 4 * (640 + 10) + 4 * 10 + 2 * 640 * 2 + 640 * 4 + 4 * 40;
    let held = u16::from_le_bytes([image[slot_classes], image[slot_classes + 1]]);
    assert!(
        held < 10 || held == u16::MAX,
        "the offset points at a slot class ({held})"
    );
    let mut crafted = image.clone();
    crafted[slot_classes..slot_classes + 2].copy_from_slice(&999u16.to_le_bytes());
    let crc = checkpoint::crc32(&[&crafted[..16], &crafted[checkpoint::HEADER..]]);
    crafted[16..20].copy_from_slice(&crc.to_le_bytes());
    assert!(checkpoint::peek(&crafted).is_ok(), "the CRC is right");
    let before = image_of(&mut l);
    assert!(matches!(
        l.read_checkpoint(&crafted),
        Err(Error::Checkpoint(CheckpointError::Malformed(_)))
    ));
    assert_eq!(image_of(&mut l), before, "nothing changed");
    l.read_checkpoint(image).unwrap();
}

fn image_of(l: &mut Learner<'_>) -> Vec<u8> {
    image(l, 1, 0)
}

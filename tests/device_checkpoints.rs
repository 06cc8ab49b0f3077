//! The device loop's checkpoints on the host, with the very code the firmware runs:
//! resets at seeded points resume to the uninterrupted result, every flipped byte of the
//! newest checkpoint falls back to the other slot, a checkpoint of another image or config
//! is refused, a full flash region is reported, and the NOR flashes the slots run on
//! (MockNor, FileNor over a file) keep NOR's rules (broken drivers caught: the unit tests
//! of `storage::conformance`). The same runs under QEMU are in `tests/firmware.rs`.

use edgecl::device::{
    run_with, signed, Backbone, Checkpoints, DeviceConfig, DeviceError, DeviceIo, Event, RunSummary, Status, Stream,
    StreamIo,
};
use edgecl::storage::{conformance, FileNor, MockNor, SlotState, Slots};
use embedded_storage::nor_flash::NorFlash;
use std::fmt;
use std::path::Path;

const SLOT: u32 = 128 * 1024;

fn flash_file(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("boards/flash").join(name)).unwrap()
}

/// The shipped firmware's parts: its config and head from the signed image, the backbone,
/// the stream, and the image's identity as the firmware takes it.
struct Parts {
    image: Vec<u8>,
    stream: Vec<u8>,
}

impl Parts {
    fn load() -> Self {
        Parts {
            image: flash_file("netduinoplus2.img"),
            stream: flash_file("stream.bin"),
        }
    }

    /// Runs the image's config (or `config`) over the stream, cut at event `cut`,
    /// with checkpoints in `slots` under image identity `id`.
    fn run(
        &self,
        config: Option<&str>,
        slots: Option<&mut Slots<MockNor>>,
        id: u32,
        cut: Option<u64>,
    ) -> (Result<RunSummary, DeviceError>, String) {
        let key = edgecl::host::device::read_key_file(
            &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("boards/dev-key.pub")).unwrap(),
            edgecl::host::device::KeyKind::Public,
            "dev-key.pub",
        )
        .unwrap();
        let image = signed::verify(&self.image, &key, "netduinoplus2", 98304).unwrap();
        let backbone: Backbone<'_> = image.backbone.unwrap();
        let config = config.map_or(image.config, |c| DeviceConfig::parse(c).unwrap());
        let stream = Stream::parse(&self.stream).unwrap();
        let mut arena = vec![0u8; 98304];
        let mut out = String::new();
        let mut io = Cut {
            inner: StreamIo::new(stream, &mut out),
            cut,
            at: 0,
        };
        let saves = slots.map(|s| Checkpoints { store: s, image: id });
        let r = run_with(&config, &backbone, Some(image.head), &mut arena, &mut io, saves);
        (r, out)
    }
}

/// A sample source that loses power when the stream reaches event `cut` (counted from
/// the stream's start, wherever a checkpoint resumed it).
struct Cut<'a, W> {
    inner: StreamIo<'a, W>,
    cut: Option<u64>,
    at: u64,
}

impl<W: fmt::Write> DeviceIo for Cut<'_, W> {
    fn next(&mut self, pixels: &mut [u8]) -> Result<Event, DeviceError> {
        if self.cut == Some(self.at) {
            return Err(DeviceError::Source("power cut"));
        }
        self.at += 1;
        self.inner.next(pixels)
    }
    fn holdout_tasks(&self) -> usize {
        self.inner.holdout_tasks()
    }
    fn holdout_len(&self, task: usize) -> usize {
        self.inner.holdout_len(task)
    }
    fn holdout(&mut self, task: usize, i: usize, pixels: &mut [u8]) -> Result<u16, DeviceError> {
        self.inner.holdout(task, i, pixels)
    }
    fn seek(&mut self, events: u64) -> Result<(), DeviceError> {
        self.at = events;
        self.inner.seek(events)
    }
    fn status(&mut self, status: Status) {
        self.inner.status(status)
    }
    fn print(&mut self, args: fmt::Arguments<'_>) {
        self.inner.print(args)
    }
}

fn slots() -> Slots<MockNor> {
    Slots::new(MockNor::new(2 * SLOT as usize), 0, SLOT).unwrap()
}

/// The loop's lines but its checkpoint reports.
fn learned(out: &str) -> String {
    out.lines()
        .filter(|l| !l.starts_with("checkpoints:"))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn resets_at_seeded_points_resume_to_the_uninterrupted_run() {
    let parts = Parts::load();
    let (whole, want) = parts.run(None, Some(&mut slots()), 7, None);
    let whole = whole.unwrap();
    assert!(
        want.contains("checkpoints: no whole checkpoint; starting from the image's initial head"),
        "{want}"
    );
    // 5 tasks of 200 samples and their ends.
    let events = 5 * 201;
    let mut s = slots();
    let mut seed = 18u64;
    let mut cuts: Vec<u64> = (0..10)
        .map(|_| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) % events
        })
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    assert_eq!(cuts.len(), 10);
    let mut resumed = 0;
    for cut in cuts {
        let (r, out) = parts.run(None, Some(&mut s), 7, Some(cut));
        assert_eq!(r.unwrap_err(), DeviceError::Source("power cut"), "{out}");
        resumed += usize::from(out.contains("checkpoints: restored checkpoint"));
    }
    assert!(resumed >= 5, "{resumed} of 10 reboots resumed");
    let (r, out) = parts.run(None, Some(&mut s), 7, None);
    assert!(out.contains("checkpoints: restored checkpoint"), "{out}");
    assert_eq!(r.unwrap(), whole);
    assert_eq!(learned(&out), learned(&want));
    // Booted again after the end: the finished run's matrix and summary, from its last
    // checkpoint, without learning again.
    let (r, out) = parts.run(None, Some(&mut s), 7, None);
    assert!(out.contains("the stream was over"), "{out}");
    assert_eq!(r.unwrap(), whole);
    assert_eq!(learned(&out), learned(&want));
}

#[test]
fn every_flipped_byte_of_the_newest_checkpoint_falls_back_to_the_other_slot() {
    let parts = Parts::load();
    let mut s = slots();
    let (whole, _) = parts.run(None, Some(&mut s), 7, None);
    let whole = whole.unwrap();
    let data = s.release().data().to_vec();
    let mut probe = Slots::new(flash_with(&data), 0, SLOT).unwrap();
    let (newest, info) = probe.newest().unwrap().unwrap();
    let older = 1 - newest;
    // The learner the firmware builds, to restore into.
    let key = edgecl::host::device::read_key_file(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("boards/dev-key.pub")).unwrap(),
        edgecl::host::device::KeyKind::Public,
        "dev-key.pub",
    )
    .unwrap();
    let image = signed::verify(&parts.image, &key, "netduinoplus2", 98304).unwrap();
    let features = image.backbone.unwrap().output();
    let lc = image.config.learner(features).unwrap();
    let mut arena = vec![0u8; 98304];
    let mut learner = edgecl::Learner::new(&lc, &mut arena).unwrap();
    let mut record = vec![0u8; 4096];
    for at in 0..info.len {
        let mut bytes = data.clone();
        bytes[newest * SLOT as usize + at] ^= 1 << (at % 8);
        let mut flipped = Slots::new(flash_with(&bytes), 0, SLOT).unwrap();
        let r = flipped.restore(&mut learner, &mut record, |_| Ok(())).unwrap();
        assert!(
            !matches!(r.slots[newest], SlotState::Valid(_)),
            "byte {at} flipped, the slot still checks"
        );
        assert_eq!(r.loaded.map(|(i, _)| i), Some(older), "byte {at}");
    }
    // A flip in the older slot leaves the newest.
    let mut bytes = data.clone();
    bytes[older * SLOT as usize + 40] ^= 0x10;
    let r = Slots::new(flash_with(&bytes), 0, SLOT)
        .unwrap()
        .restore(&mut learner, &mut record, |_| Ok(()))
        .unwrap();
    assert_eq!(r.loaded.map(|(i, _)| i), Some(newest));
    // Both slots torn: the run starts from the image's head, says so, and ends as it did.
    bytes[newest * SLOT as usize + 5] ^= 0x01;
    let mut torn = Slots::new(flash_with(&bytes), 0, SLOT).unwrap();
    let mut s = slots();
    std::mem::swap(&mut s, &mut torn);
    let (r, out) = parts.run(None, Some(&mut s), 7, None);
    assert!(out.contains("starting from the image's initial head"), "{out}");
    assert!(out.contains("checkpoint CRC mismatch"), "{out}");
    assert_eq!(r.unwrap(), whole);
}

/// A MockNor holding `data` (erased flash programmed with it).
fn flash_with(data: &[u8]) -> MockNor {
    let mut m = MockNor::new(data.len());
    m.write(0, data).unwrap();
    m
}

#[test]
fn a_checkpoint_of_another_image_or_config_is_refused_and_a_full_region_reported() {
    let parts = Parts::load();
    let mut s = slots();
    let (whole, want) = parts.run(None, Some(&mut s), 7, None);
    let whole = whole.unwrap();
    // Another image (its identity differs): refused by the loop's record.
    let (r, out) = parts.run(None, Some(&mut s), 8, None);
    assert!(
        out.contains("refused: checkpoint refused: a checkpoint of another device image"),
        "{out}"
    );
    assert!(
        out.contains("no checkpoint of this image and config; starting from the image's initial head"),
        "{out}"
    );
    assert_eq!(r.unwrap(), whole, "it learned from the start");
    // Another config of the same image: refused by the learner's config hash.
    let mut s = slots();
    let _ = parts.run(None, Some(&mut s), 7, None);
    let other = "strategy = \"replay\"\nlr = 0.02\nrepeats = 20\nrank = 4\n";
    let (r, out) = parts.run(Some(other), Some(&mut s), 7, None);
    assert!(
        out.contains("refused: checkpoint of a learner with another config"),
        "{out}"
    );
    assert!(r.is_ok());
    // Slots too small for the checkpoint: reported once, learning goes on, nothing saved.
    let mut small = Slots::new(MockNor::new(2 * 4096), 0, 4096).unwrap();
    let (r, out) = parts.run(None, Some(&mut small), 7, None);
    assert!(out.contains("checkpoints stop: checkpoint of "), "{out}");
    assert!(out.contains("slots hold 4096"), "{out}");
    assert_eq!(out.matches("checkpoints stop").count(), 1, "{out}");
    assert_eq!(r.unwrap(), whole);
    assert_eq!(
        learned(&out).lines().filter(|l| !l.contains("stop")).count(),
        learned(&want).lines().count()
    );
    assert_eq!(small.newest().unwrap(), None);
}

#[test]
fn every_nor_flash_the_slots_run_on_keeps_nors_rules() {
    conformance::check(&mut MockNor::new(4 * 4096)).unwrap();
    let path = std::env::temp_dir().join(format!("edgecl-nor-{}.bin", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    let mut nor = FileNor::<_, 131072>::format(file, 2 * 131072).unwrap();
    let report = conformance::check(&mut nor).unwrap();
    assert_eq!((report.sectors, report.erase_size, report.write_size), (2, 131072, 4));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 2 * 131072);
    // A file cut short is not a flash of that size.
    let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
    file.set_len(1000).unwrap();
    assert!(FileNor::<_, 131072>::open(file, 2 * 131072).is_err());
    let _ = std::fs::remove_file(&path);
}

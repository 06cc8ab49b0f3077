//! The netduinoplus2 firmware under QEMU: it learns, prints the same accuracy matrices as
//! the host simulator to the last bit, fits the chip's RAM, refuses an image signed by
//! another key and an over-budget config at start with a message, and a stack overflow
//! faults instead of running into the arena.
//!
//! Needs `qemu-system-arm` (Debian: `apt-get install qemu-system-arm`) and the
//! `thumbv7em-none-eabihf` target (`rustup target add thumbv7em-none-eabihf`); `.ci/run`
//! installs both. Without them these tests fail and say so; `EDGECL_SKIP_FIRMWARE=1`
//! skips them on purpose (printed).

use edgecl::host::device::FirmwareDir;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The tests share the board crate's target folder: one build at a time.
static BUILD: Mutex<()> = Mutex::new(());

const QEMU_LIMIT: Duration = Duration::from_secs(120);

fn board() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("boards/netduinoplus2")
}

fn skip() -> bool {
    if std::env::var_os("EDGECL_SKIP_FIRMWARE").is_some_and(|v| v == "1") {
        eprintln!("EDGECL_SKIP_FIRMWARE=1: the firmware tests are skipped");
        return true;
    }
    let qemu = Command::new("qemu-system-arm").arg("--version").output();
    assert!(
        qemu.is_ok_and(|o| o.status.success()),
        "qemu-system-arm is not installed (apt-get install qemu-system-arm), or set EDGECL_SKIP_FIRMWARE=1"
    );
    false
}

/// Builds the firmware (release) with `features` and a device `image` (None: the shipped
/// one) and returns a copy of the ELF.
fn build(name: &str, features: &[&str], image: Option<&Path>) -> PathBuf {
    build_with(name, features, image, None)
}

/// [`build`] with a sample `stream` too (None: the shipped MNIST one).
fn build_with(name: &str, features: &[&str], image: Option<&Path>, stream: Option<&Path>) -> PathBuf {
    let dir = board();
    let target = dir.join("target");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(&dir)
        .args(["build", "--release", "--quiet", "--target-dir"])
        .arg(&target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET");
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    match image {
        Some(i) => cmd.env("EDGECL_FIRMWARE_IMAGE", i),
        None => cmd.env_remove("EDGECL_FIRMWARE_IMAGE"),
    };
    match stream {
        Some(s) => cmd.env("EDGECL_FIRMWARE_STREAM", s),
        None => cmd.env_remove("EDGECL_FIRMWARE_STREAM"),
    };
    cmd.env_remove("EDGECL_PUBLIC_KEY");
    let out = cmd.output().expect("cargo runs");
    assert!(
        out.status.success(),
        "building the firmware failed (is the thumbv7em-none-eabihf target installed?):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let elf = target.join("thumbv7em-none-eabihf/release/edgecl-netduinoplus2");
    let copy = std::env::temp_dir().join(format!("edgecl-firmware-{name}-{}", std::process::id()));
    std::fs::copy(&elf, &copy).expect("the ELF is there");
    copy
}

/// Runs `elf` in QEMU's netduinoplus2 with `dir` as its working folder (where the
/// firmware keeps its checkpoint flash, `edgecl-slots.bin`); its exit status (None:
/// killed), stdout and stderr, and how long it ran. With `kill`, QEMU is killed with
/// SIGKILL (a power cut) after that long.
fn qemu_in(elf: &Path, dir: &Path, kill: Option<Duration>) -> (Option<i32>, String, String, Duration) {
    qemu_with(elf, dir, kill, &[])
}

/// [`qemu_in`] with more QEMU arguments (`-icount shift=0`).
fn qemu_with(
    elf: &Path,
    dir: &Path,
    kill: Option<Duration>,
    extra: &[&str],
) -> (Option<i32>, String, String, Duration) {
    let start = Instant::now();
    std::fs::create_dir_all(dir).unwrap();
    let mut child = Command::new("qemu-system-arm")
        .args(extra)
        .args([
            "-M",
            "netduinoplus2",
            "-display",
            "none",
            "-semihosting-config",
            "enable=on,target=native",
            "-kernel",
        ])
        .arg(elf)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("qemu-system-arm starts");
    // Read both pipes on threads, so a long output never blocks QEMU.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    loop {
        if child.try_wait().expect("waiting on qemu").is_some() {
            break;
        }
        if kill.is_some_and(|k| start.elapsed() >= k) {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        if start.elapsed() > QEMU_LIMIT {
            let _ = child.kill();
            panic!("the firmware ran past {QEMU_LIMIT:?} in QEMU");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = child.wait().expect("qemu's status");
    (status.code(), out.join().unwrap(), err.join().unwrap(), start.elapsed())
}

/// A fresh working folder for one QEMU run (no checkpoint flash yet).
fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgecl-qemu-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `elf` once in a fresh folder, then removes both.
fn qemu(elf: &Path) -> (Option<i32>, String, String, Duration) {
    let dir = workdir(elf.file_name().and_then(|n| n.to_str()).unwrap_or("run"));
    let r = qemu_in(elf, &dir, None);
    let _ = std::fs::remove_file(elf);
    let _ = std::fs::remove_dir_all(&dir);
    r
}

/// The lines the device loop printed (the firmware's banner and memory report aside).
fn loop_lines(out: &str) -> String {
    out.lines()
        .filter(|l| !l.starts_with("edgecl firmware on") && !l.starts_with("memory:"))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn average(out: &str, strategy: &str) -> f32 {
    let prefix = format!("{strategy}: average accuracy ");
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .expect("an average line");
    line.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a number")
}

#[test]
fn firmware_prints_the_host_simulators_accuracy_matrix_bit_for_bit() {
    if skip() {
        return;
    }
    let _one = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let elf = build("main", &[], None);
    let (code, out, err, took) = qemu(&elf);
    eprintln!("{out}QEMU ran {took:.1?}");
    assert_eq!(code, Some(0), "the firmware failed: {out}{err}");
    let host = FirmwareDir::load(&board(), None)
        .and_then(|f| f.simulate())
        .expect("the host simulation runs");
    assert_eq!(loop_lines(&out), host, "firmware and host simulator differ");
    assert_eq!(
        host.lines().filter(|l| l.contains(" after task ")).count(),
        10,
        "two runs of five tasks"
    );
    // It learns on the device: replay well above fine-tuning on the same stream.
    let (replay, fine_tune) = (average(&out, "replay"), average(&out, "fine-tune"));
    assert!(
        replay > fine_tune + 30.0,
        "replay {replay} against fine-tune {fine_tune}"
    );
    // The stack was painted and measured: a real peak, inside its reservation, with the
    // headroom printed (the linker keeps the statics inside SRAM).
    let memory = out.lines().find(|l| l.starts_with("memory:")).expect("a memory line");
    let number_after = |key: &str| -> usize {
        let rest = &memory[memory.find(key).expect(key) + key.len()..];
        rest.split(' ').next().and_then(|v| v.parse().ok()).expect("a number")
    };
    let (peak, headroom) = (number_after("stack peak "), number_after("stack headroom "));
    let reserved = number_after(&format!("stack headroom {headroom} B of "));
    assert!(peak > 1024 && headroom > 0, "{memory}");
    assert_eq!(peak + headroom, reserved, "{memory}");
}

/// A device image for netduinoplus2 with `config` and the shipped backbone, signed with
/// `secret` (no budget check: that is what the firmware must do), written to a file.
fn signed_image(name: &str, config: &str, secret: &[u8; 32]) -> PathBuf {
    let backbone = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("boards/flash/backbone.bin")).unwrap();
    let mut buf = [0u8; edgecl::device::DeviceConfig::MAX_BYTES];
    let config = edgecl::device::DeviceConfig::parse(config).unwrap();
    let config = config.to_bytes(&mut buf).unwrap();
    let image = edgecl::host::device::sign_image("netduinoplus2", config, &[], &backbone, secret).unwrap();
    let path = std::env::temp_dir().join(format!("edgecl-{name}-{}.img", std::process::id()));
    std::fs::write(&path, image).unwrap();
    path
}

fn dev_key() -> [u8; 32] {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("boards/dev-key")).unwrap();
    edgecl::host::device::read_key_file(&text, edgecl::host::device::KeyKind::Secret, "dev-key").unwrap()
}

#[test]
fn firmware_refuses_an_image_signed_by_another_key() {
    if skip() {
        return;
    }
    let image = signed_image("other-key", "strategy = \"replay\"\n", &[3; 32]);
    let _one = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let elf = build("other-key", &[], Some(&image));
    let _ = std::fs::remove_file(&image);
    let (code, out, err, _) = qemu(&elf);
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(
        out.contains("edgecl: device image: the signature does not verify"),
        "{out}"
    );
    assert!(!out.contains("run replay"), "{out}");
}

#[test]
fn firmware_refuses_an_over_budget_config_at_start_with_a_message() {
    if skip() {
        return;
    }
    let text = "strategy = \"replay\"\nhidden = 2000\n";
    let image = signed_image("over-budget", text, &dev_key());
    let config = std::env::temp_dir().join(format!("edgecl-over-budget-{}.toml", std::process::id()));
    std::fs::write(&config, text).unwrap();
    let _one = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let elf = build("over-budget", &[], Some(&image));
    let _ = std::fs::remove_file(&image);
    let (code, out, err, _) = qemu(&elf);
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(out.contains("edgecl: config over budget: it needs"), "{out}");
    assert!(!out.contains("after task"), "{out}");
    // The host simulator refuses the same config with the same words.
    let host = FirmwareDir::load(&board(), Some(&config)).and_then(|f| f.simulate());
    let _ = std::fs::remove_file(&config);
    let message = format!("{:#}", host.expect_err("over budget on the host too"));
    assert!(message.contains("edgecl: config over budget: it needs"), "{message}");
}

#[test]
fn firmware_stack_overflow_faults_instead_of_running_into_the_arena() {
    if skip() {
        return;
    }
    let _one = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let elf = build("overflow", &["overflow"], None);
    let (code, out, err, _) = qemu(&elf);
    assert_ne!(code, Some(0), "{out}{err}");
    assert!(
        err.contains("Lockup") || out.contains("hard fault"),
        "expected a fault at the bottom of SRAM: {out}{err}"
    );
    assert!(!out.contains("after task"), "{out}");
}

/// The loop's lines without the checkpoint reports: what an interrupted and resumed run
/// must end up printing, row for row, as one that ran through.
fn learned_lines(out: &str) -> String {
    loop_lines(out)
        .lines()
        .filter(|l| !l.starts_with("checkpoints:"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// [`learned_lines`] of the config's run only (the `no-baseline` build's), without the
/// fine-tune baseline's lines.
fn config_lines(out: &str) -> String {
    learned_lines(out)
        .lines()
        .filter(|l| !l.starts_with("run fine-tune") && !l.starts_with("fine-tune") && !l.contains(" over fine-tune:"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The checkpoint flash a run left in `dir`, as the host reads it: each slot's state.
fn slots_in(dir: &Path) -> [edgecl::storage::SlotState; 2] {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join("edgecl-slots.bin"))
        .expect("the firmware made its slot file");
    let flash = edgecl::storage::FileNor::<_, 131072>::open(file, 2 * 131072).expect("two slots' bytes");
    let mut slots = edgecl::storage::Slots::new(flash, 0, 131072).unwrap();
    slots.inspect().unwrap()
}

#[test]
fn firmware_killed_at_ten_seeded_points_resumes_to_the_uninterrupted_result_and_survives_flipped_bytes() {
    use edgecl::storage::SlotState;
    if skip() {
        return;
    }
    // The config's run alone (the fine-tune baseline after it keeps no checkpoints and
    // would only make each reboot longer).
    let elf = {
        let _one = BUILD.lock().unwrap_or_else(|e| e.into_inner());
        build("resume", &["no-baseline"], None)
    };
    let host = FirmwareDir::load(&board(), None)
        .and_then(|f| f.simulate())
        .expect("the host simulation runs");
    let want = config_lines(&host);
    assert!(
        want.contains("replay after task 5:") && want.contains("head FNV-1a"),
        "{want}"
    );
    assert!(!want.contains("fine-tune"), "{want}");
    // The run that is never cut: how long it takes, and that it is the host's.
    let dir = workdir("resume-whole");
    let (code, out, err, whole) = qemu_in(&elf, &dir, None);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(config_lines(&out), want, "an uninterrupted run is the host's");
    let boot = &host[..host.find("replay after task 1").unwrap()];
    assert!(
        loop_lines(&out).starts_with(boot),
        "the host's banner and boot check:\n{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);

    // Ten power cuts (SIGKILL of QEMU) at seeded points, each followed by a reboot that
    // resumes from the slot file, then a run to the end.
    let dir = workdir("resume-cut");
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut restored = 0;
    for cut in 0..10 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Each reboot runs 2-10% of a whole run's time before the next cut, so the ten
        // cuts fall through the run at seeded places.
        let at = whole.mul_f64(0.02 + 0.08 * (seed % 1000) as f64 / 1000.0);
        let (code, out, _, _) = qemu_in(&elf, &dir, Some(at));
        eprintln!(
            "cut {cut} after {at:.2?}: {}",
            out.lines()
                .find(|l| l.starts_with("checkpoints: restored") || l.contains("starting from"))
                .unwrap_or("(before the boot check)")
        );
        if code == Some(0) {
            break;
        }
        restored += usize::from(out.contains("checkpoints: restored checkpoint"));
        // Whatever the cut tore, the file is two slots the host can read, and a torn
        // slot is one the boot check refuses.
        let _ = slots_in(&dir);
    }
    assert!(
        restored >= 5,
        "most reboots resumed from a checkpoint ({restored} of 10)"
    );
    let (code, out, err, _) = qemu_in(&elf, &dir, None);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("checkpoints: restored checkpoint"), "{out}");
    assert_eq!(
        config_lines(&out),
        want,
        "the resumed run ends as the uninterrupted one"
    );

    // Flipped bytes in the slot file before a reboot: the firmware boots from the other
    // slot or from the image's initial head, says which, and still prints the matrix.
    let file = dir.join("edgecl-slots.bin");
    let pristine = std::fs::read(&file).unwrap();
    let info = |s: SlotState| match s {
        SlotState::Valid(i) => i,
        other => panic!("a whole run leaves two whole checkpoints: {other:?}"),
    };
    let [a, b] = slots_in(&dir).map(info);
    let (newest, older) = if a.sequence.wrapping_sub(b.sequence) as i32 > 0 {
        (0, 1)
    } else {
        (1, 0)
    };
    let len = if newest == 0 { a.len } else { b.len };
    let slot = 131072usize;
    let cases: [(&str, Vec<usize>, Option<usize>); 5] = [
        ("the newest slot's magic", vec![newest * slot], Some(older)),
        ("the newest slot's state", vec![newest * slot + len / 2], Some(older)),
        (
            "the newest slot's last byte",
            vec![newest * slot + len - 1],
            Some(older),
        ),
        ("the older slot's state", vec![older * slot + 100], Some(newest)),
        ("both slots' headers", vec![9, slot + 9], None),
    ];
    for (what, at, from) in cases {
        let mut bytes = pristine.clone();
        for &i in &at {
            bytes[i] ^= 0x5A;
        }
        std::fs::write(&file, &bytes).unwrap();
        let (code, out, err, _) = qemu_in(&elf, &dir, None);
        assert_eq!(code, Some(0), "{what}: {out}{err}");
        match from {
            Some(s) => assert!(
                out.contains(&format!("from slot {s}:")),
                "{what}: expected a boot from slot {s}:\n{out}"
            ),
            None => assert!(
                out.contains("starting from the image's initial head"),
                "{what}: expected the initial head:\n{out}"
            ),
        }
        assert_eq!(config_lines(&out), want, "{what}: the same matrix after the reboot");
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&elf);
}

#[test]
fn the_semihosting_flash_keeps_nors_rules_in_qemu() {
    if skip() {
        return;
    }
    let _one = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let elf = build("nor-check", &["nor-check"], None);
    let (code, out, err, _) = qemu(&elf);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("nor-check: the semihosting flash keeps NOR's rules"),
        "{out}"
    );
}

#[test]
fn the_cost_meter_counts_instructions_per_step_under_icount() {
    if skip() {
        return;
    }
    let elf = {
        let _one = BUILD.lock().unwrap_or_else(|e| e.into_inner());
        build("cost", &["cost"], None)
    };
    let dir = workdir("cost");
    let (code, out, err, _) = qemu_with(&elf, &dir, None, &["-icount", "shift=0"]);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&elf);
    eprintln!("{out}");
    assert_eq!(code, Some(0), "{out}{err}");
    // The calibration loop's known instruction count: 0.168 ticks per instruction at
    // 168 MHz and 1 ns per instruction.
    let cal = out.lines().find(|l| l.starts_with("cost: calibration")).expect(&out);
    let ratio: f64 = cal
        .split('(')
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!((ratio - 0.168).abs() < 0.0005, "{cal}");
    let instructions = |step: &str| -> f64 {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("cost: {step}:")))
            .expect(step);
        line.rsplit(", ")
            .next()
            .and_then(|v| v.split(' ').next())
            .unwrap()
            .parse()
            .unwrap()
    };
    // The backbone runs the same instructions for every sample: its fewest and most
    // ticks are within 0.1% (icount makes the count exact; only the host's timer
    // reads round).
    let line = out
        .lines()
        .find(|l| l.starts_with("cost: backbone, one sample:"))
        .unwrap();
    let range = line.split('(').nth(1).unwrap().split(')').next().unwrap();
    let (lo, hi) = range.split_once("..").unwrap();
    let (lo, hi): (f64, f64) = (lo.parse().unwrap(), hi.parse().unwrap());
    assert!(hi - lo <= 0.001 * hi, "{line}");
    // Every step costs something: the meter timed real work.
    for step in [
        "backbone, one sample",
        "updates on one batch",
        "head predictions, one batch",
        "checkpoint save",
    ] {
        assert!(instructions(step) > 1000.0, "{step}: {out}");
    }
    // It learned as the firmware does.
    assert!(out.contains("replay: average accuracy"), "{out}");
}

/// The watch's flash images in `dir`: the shipped watch backbone (models/watch03-conv1d,
/// flashed knowing exercises 0-3) in a device image with boards/netduinoplus2/watch.toml,
/// signed with the development key, and a stream of the carried watch windows in tasks
/// 0,1 / 2,3 / 4,5 / 6, quantised as the device quantises them. What the README's
/// `edgecl device-data` and `edgecl export` commands for the watch write.
#[cfg(feature = "onnx")]
fn watch_images(dir: &Path) -> (PathBuf, PathBuf) {
    use edgecl::host::device::{device_image, model_backbone_image, window_stream_image, StreamSpec};
    use edgecl::host::idx::{load_split, Split};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (model, _, backbone) = model_backbone_image(&root.join("models/watch03-conv1d")).unwrap();
    let parsed = edgecl::device::Backbone::parse(&backbone).unwrap();
    let data = root.join("data/seglearn-watch");
    let train = load_split(&data, Split::Train, None).unwrap();
    let test = load_split(&data, Split::Test, Some(train.classes)).unwrap();
    let spec = StreamSpec {
        tasks: vec![vec![0, 1], vec![2, 3], vec![4, 5], vec![6]],
        train_per_task: WATCH_TRAIN,
        test_per_task: WATCH_TEST,
        bits: 8,
        seed: 1,
    };
    let stream = window_stream_image(&train, &test, &spec, &parsed).unwrap();
    let config = std::fs::read_to_string(board().join("watch.toml")).unwrap();
    let profile = edgecl::host::board::Board::load(&board().join("board.toml").display().to_string()).unwrap();
    let image = device_image(&profile, &config, &backbone, model.feature_width().unwrap(), &dev_key()).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let (image_path, stream_path) = (dir.join("watch.img"), dir.join("watch-stream.bin"));
    std::fs::write(&image_path, image).unwrap();
    std::fs::write(&stream_path, stream).unwrap();
    (image_path, stream_path)
}

/// Watch windows per task in the firmware's stream: learned from, and held out.
#[cfg(feature = "onnx")]
const WATCH_TRAIN: usize = 120;
#[cfg(feature = "onnx")]
const WATCH_TEST: usize = 40;

#[cfg(feature = "onnx")]
#[test]
fn firmware_learns_from_watch_windows_as_the_host_simulator_does_bit_for_bit() {
    if skip() {
        return;
    }
    let images = workdir("watch-images");
    let (image, stream) = watch_images(&images);
    let elf = {
        let _one = BUILD.lock().unwrap_or_else(|e| e.into_inner());
        build_with("watch", &[], Some(&image), Some(&stream))
    };
    let (code, out, err, took) = qemu(&elf);
    eprintln!("{out}QEMU ran {took:.1?}");
    assert_eq!(code, Some(0), "the firmware failed: {out}{err}");
    let mut fw = FirmwareDir::load(&board(), None).unwrap();
    fw.replace(Some(&image), Some(&stream)).unwrap();
    let host = fw.simulate().expect("the host simulation runs");
    let _ = std::fs::remove_dir_all(&images);
    assert_eq!(loop_lines(&out), host, "firmware and host simulator differ");
    assert!(
        host.contains("stream 4 tasks x (120 train + 40 test) at 8 bits"),
        "{host}"
    );
    assert_eq!(
        host.lines().filter(|l| l.contains(" after task ")).count(),
        8,
        "two runs of four tasks"
    );
    // It learns the new exercises on the device: replay well above fine-tuning, which
    // keeps only the last task's one exercise.
    let (replay, fine_tune) = (average(&out, "replay"), average(&out, "fine-tune"));
    assert!(
        replay > fine_tune + 20.0,
        "replay {replay} against fine-tune {fine_tune}"
    );
}

#[cfg(feature = "onnx")]
#[test]
fn the_cost_meter_counts_instructions_per_watch_window() {
    if skip() {
        return;
    }
    let images = workdir("watch-cost-images");
    let (image, stream) = watch_images(&images);
    let elf = {
        let _one = BUILD.lock().unwrap_or_else(|e| e.into_inner());
        build_with("watch-cost", &["cost"], Some(&image), Some(&stream))
    };
    let dir = workdir("watch-cost");
    let (code, out, err, _) = qemu_with(&elf, &dir, None, &["-icount", "shift=0"]);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&images);
    let _ = std::fs::remove_file(&elf);
    eprintln!("{out}");
    assert_eq!(code, Some(0), "{out}{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("cost: backbone, one sample:"))
        .expect(&out);
    let instructions: f64 = line
        .rsplit(", ")
        .next()
        .and_then(|v| v.split(' ').next())
        .and_then(|v| v.parse().ok())
        .expect(line);
    // The window backbone's multiply-accumulates (328,576) each take at least one
    // instruction; every window runs the same instructions.
    let macs = {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let (_, _, b) = edgecl::host::device::model_backbone_image(&root.join("models/watch03-conv1d")).unwrap();
        edgecl::device::Backbone::parse(&b).unwrap().macs() as f64
    };
    // The fast kernel's 1-D rows (taps in registers) keep it under 6 per MAC (the
    // tap-by-tap loop took 7.5).
    assert!(instructions > macs && instructions < 6.0 * macs, "{line}: {macs} MACs");
    let range = line.split('(').nth(1).unwrap().split(')').next().unwrap();
    let (lo, hi) = range.split_once("..").unwrap();
    let (lo, hi): (f64, f64) = (lo.parse().unwrap(), hi.parse().unwrap());
    assert!(hi - lo <= 0.001 * hi, "{line}");
}

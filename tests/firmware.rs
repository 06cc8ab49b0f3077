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

/// Runs `elf` in QEMU's netduinoplus2; its exit status (None: killed by a signal), stdout
/// and stderr, and how long it ran.
fn qemu(elf: &Path) -> (Option<i32>, String, String, Duration) {
    let start = Instant::now();
    let mut child = Command::new("qemu-system-arm")
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
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("qemu-system-arm starts");
    loop {
        if child.try_wait().expect("waiting on qemu").is_some() {
            break;
        }
        if start.elapsed() > QEMU_LIMIT {
            let _ = child.kill();
            panic!("the firmware ran past {QEMU_LIMIT:?} in QEMU");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("qemu's output");
    let _ = std::fs::remove_file(elf);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        start.elapsed(),
    )
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
    let image = edgecl::host::device::sign_image("netduinoplus2", config, &[], &backbone, secret).unwrap();
    let path = std::env::temp_dir().join(format!("edgecl-{name}-{}.img", std::process::id()));
    std::fs::write(&path, image).unwrap();
    path
}

fn dev_key() -> [u8; 32] {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("boards/dev-key")).unwrap();
    edgecl::host::device::from_hex32(&text).unwrap()
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

//! Shared build script of the board crates (`build = "../firmware/board_build.rs"`): copies
//! the memory layout (`memory.x`, or `memory-semihosting.x` / `memory-hal.x` by feature) as
//! `memory.x` where the linker finds it, turns `board.toml` into constants, and picks the
//! signed device image (`EDGECL_FIRMWARE_IMAGE`, a path relative to the board crate, or
//! `../flash/<board>.img`), the public key compiled in to verify it
//! (`EDGECL_PUBLIC_KEY`, or the development key `../dev-key.pub`) and the sample stream
//! (`EDGECL_FIRMWARE_STREAM`, or `../flash/stream.bin`).
use std::{
    env, fs,
    path::{Path, PathBuf},
};

fn key(profile: &str, name: &str) -> String {
    profile
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == name).then(|| v.trim().trim_matches('"').to_string())
        })
        .unwrap_or_else(|| panic!("board.toml has no `{name}`"))
}

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // The layout: `memory.x`; or, in a board crate with two programs, `memory-semihosting.x`
    // (default) and `memory-hal.x` (feature `hal`). The linker finds a `memory.x` in the
    // crate's folder before the copy in OUT_DIR, so such a crate keeps none there.
    let hal = env::var_os("CARGO_FEATURE_HAL").is_some();
    let memory = if Path::new("memory.x").exists() {
        assert!(
            !hal,
            "memory.x would shadow memory-hal.x for the linker: name the layouts memory-semihosting.x and memory-hal.x"
        );
        "memory.x"
    } else if hal {
        "memory-hal.x"
    } else {
        "memory-semihosting.x"
    };
    fs::copy(memory, out.join("memory.x")).unwrap_or_else(|e| panic!("{memory}: {e}"));
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed={memory}");
    println!("cargo:rerun-if-changed=board.toml");
    let profile = fs::read_to_string("board.toml").expect("board.toml");
    let consts = format!(
        "const BOARD: &str = {:?};\nconst ARENA_BYTES: usize = {};\nconst RAM_BYTES: usize = {};\nconst FLASH_BYTES: usize = {};\n#[allow(dead_code)]\nconst CLOCK_MHZ: u32 = {};\n",
        key(&profile, "name"),
        key(&profile, "learner_budget_bytes"),
        key(&profile, "ram_bytes"),
        key(&profile, "flash_bytes"),
        key(&profile, "clock_mhz"),
    );
    fs::write(out.join("board.rs"), consts).expect("board.rs");
    // The signed device image (config, initial head, backbone) and the key it must
    // verify with.
    println!("cargo:rerun-if-env-changed=EDGECL_FIRMWARE_IMAGE");
    println!("cargo:rerun-if-env-changed=EDGECL_PUBLIC_KEY");
    let image = env::var("EDGECL_FIRMWARE_IMAGE").unwrap_or_else(|_| format!("../flash/{}.img", key(&profile, "name")));
    println!("cargo:rerun-if-changed={image}");
    fs::copy(&image, out.join("device.img")).unwrap_or_else(|e| panic!("device image {image}: {e}"));
    let public = env::var("EDGECL_PUBLIC_KEY").unwrap_or_else(|_| "../dev-key.pub".into());
    println!("cargo:rerun-if-changed={public}");
    let text = fs::read_to_string(&public).unwrap_or_else(|e| panic!("public key {public}: {e}"));
    let hex = text.trim().strip_prefix("edgecl-public-key ").unwrap_or_else(|| {
        panic!("{public}: not a public key file (`edgecl-public-key HEX`, as edgecl keygen writes it)")
    });
    assert!(
        hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "{public}: a public key is 64 hex digits"
    );
    let bytes: Vec<String> = (0..32).map(|i| format!("0x{}", &hex[2 * i..2 * i + 2])).collect();
    fs::write(
        out.join("key.rs"),
        format!("const PUBLIC_KEY: [u8; 32] = [{}];\n", bytes.join(", ")),
    )
    .expect("key.rs");
    // The sample stream the firmware learns from (MNIST digits, or sensor windows).
    println!("cargo:rerun-if-env-changed=EDGECL_FIRMWARE_STREAM");
    let stream = env::var("EDGECL_FIRMWARE_STREAM").unwrap_or_else(|_| "../flash/stream.bin".into());
    println!("cargo:rerun-if-changed={stream}");
    fs::copy(&stream, out.join("stream.bin")).unwrap_or_else(|e| panic!("sample stream {stream}: {e}"));
}

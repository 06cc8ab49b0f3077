//! Shared build script of the board crates (`build = "../firmware/board_build.rs"`): copies
//! `memory.x` where the linker finds it, turns `board.toml` into constants, and picks the
//! firmware config (`EDGECL_FIRMWARE_CONFIG`, a path relative to the board crate, or
//! `firmware.toml`).
use std::{env, fs, path::PathBuf};

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
    fs::copy("memory.x", out.join("memory.x")).expect("memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=board.toml");
    let profile = fs::read_to_string("board.toml").expect("board.toml");
    let consts = format!(
        "const BOARD: &str = {:?};\nconst ARENA_BYTES: usize = {};\nconst RAM_BYTES: usize = {};\nconst FLASH_BYTES: usize = {};\n",
        key(&profile, "name"),
        key(&profile, "learner_budget_bytes"),
        key(&profile, "ram_bytes"),
        key(&profile, "flash_bytes"),
    );
    fs::write(out.join("board.rs"), consts).expect("board.rs");
    println!("cargo:rerun-if-env-changed=EDGECL_FIRMWARE_CONFIG");
    let config = env::var("EDGECL_FIRMWARE_CONFIG").unwrap_or_else(|_| "firmware.toml".into());
    println!("cargo:rerun-if-changed={config}");
    fs::copy(&config, out.join("firmware.toml")).unwrap_or_else(|e| panic!("firmware config {config}: {e}"));
    println!("cargo:rerun-if-changed=../flash/backbone.bin");
    println!("cargo:rerun-if-changed=../flash/stream.bin");
}

//! Board profiles: chip, core, clock, FPU, RAM, flash and the learner's share of RAM.
//!
//! The profiles in `boards/*.toml` (and `boards/<name>/board.toml` for the boards with
//! firmware) are compiled into the binary, so `--board NAME` works
//! from anywhere; `--board FILE.toml` reads any other profile with the same keys.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What a board runs the learner on; its image holds an int8 backbone and a device config
/// (`mcu`) or a run config beside an ONNX backbone (`linux`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BoardKind {
    /// A microcontroller: firmware, the backbone in flash.
    Mcu,
    /// A Linux board: `edgecl run`, the backbone through tract.
    Linux,
}

impl BoardKind {
    /// As the profile spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            BoardKind::Mcu => "mcu",
            BoardKind::Linux => "linux",
        }
    }
}

impl std::fmt::Display for BoardKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One board profile (the keys of `boards/*.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    /// Short name, the file stem.
    pub name: String,
    /// One line for people.
    pub description: String,
    /// What runs the learner: a microcontroller's firmware or Linux.
    pub kind: BoardKind,
    /// Chip part number.
    pub chip: String,
    /// CPU core.
    pub core: String,
    /// Clock in MHz.
    pub clock_mhz: u32,
    /// `none`, `single` or `double`.
    pub fpu: String,
    /// Rust target triple the learner builds for.
    pub target: String,
    /// RAM usable by software, bytes.
    pub ram_bytes: u64,
    /// Program flash (or boot media), bytes.
    pub flash_bytes: u64,
    /// The learner's arena: the budget, bytes.
    pub learner_budget_bytes: u64,
    /// Flash the board's firmware takes without the test stream and the device image
    /// (code, tables, strings), measured by `boards/size-report`; only boards with firmware
    /// in `boards/` have it.
    #[serde(default)]
    pub firmware_base_bytes: Option<u64>,
    /// Where the figures come from.
    pub source: String,
    /// The defence `edgecl simulate` runs beside fine-tuning when no `--strategy` is
    /// given (a `--strategy` value); `replay` when the profile does not say.
    #[serde(default)]
    pub recommended_strategy: Option<String>,
}

/// The profiles shipped in `boards/`, by name.
pub const BUILTIN: &[(&str, &str)] = &[
    ("netduinoplus2", include_str!("../../boards/netduinoplus2/board.toml")),
    ("stm32f746g-disco", include_str!("../../boards/stm32f746g-disco.toml")),
    ("nrf52840-dk", include_str!("../../boards/nrf52840-dk.toml")),
    ("rp-pico", include_str!("../../boards/rp-pico/board.toml")),
    ("esp32-s3-devkitc", include_str!("../../boards/esp32-s3-devkitc.toml")),
    ("raspberry-pi-4", include_str!("../../boards/raspberry-pi-4.toml")),
    (
        "raspberry-pi-zero-2w",
        include_str!("../../boards/raspberry-pi-zero-2w.toml"),
    ),
];

impl Board {
    /// Parses and checks a profile.
    pub fn parse(text: &str) -> Result<Board> {
        let board: Board = toml::from_str(text)?;
        if board.learner_budget_bytes > board.ram_bytes {
            bail!(
                "board `{}`: learner budget {} bytes is more than its RAM ({} bytes)",
                board.name,
                board.learner_budget_bytes,
                board.ram_bytes
            );
        }
        Ok(board)
    }

    /// A shipped board by name, or a profile file by path.
    pub fn load(name_or_path: &str) -> Result<Board> {
        if let Some((_, text)) = BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            return Board::parse(text).with_context(|| format!("built-in board `{name_or_path}`"));
        }
        let path = Path::new(name_or_path);
        if path.exists() {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            return Board::parse(&text).with_context(|| format!("board profile {}", path.display()));
        }
        let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
        bail!(
            "unknown board `{name_or_path}`: not a file, and the shipped boards are {}",
            names.join(", ")
        )
    }

    /// The defence recommended on this board: the profile's, or Gaussian replay (the
    /// strongest defence in class-incremental figures on the device's features; see the
    /// README).
    pub fn recommended_strategy(&self) -> &str {
        self.recommended_strategy.as_deref().unwrap_or("replay")
    }

    /// The learner budget as a `usize` arena length.
    pub fn budget(&self) -> usize {
        usize::try_from(self.learner_budget_bytes).unwrap_or(usize::MAX)
    }
}

/// A byte count as given on the command line or in a config: `65536`, `64k`, `2m`.
pub fn parse_bytes(s: &str) -> std::result::Result<usize, String> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mul) = match t.strip_suffix(['k', 'm']) {
        Some(n) if t.ends_with('k') => (n, 1024),
        Some(n) => (n, 1024 * 1024),
        None => (t.as_str(), 1),
    };
    num.trim()
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| format!("`{s}` is not a byte count (e.g. 65536, 64k, 2m)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_board_parses_and_its_budget_fits_its_ram() {
        for (name, _) in BUILTIN {
            let b = Board::load(name).unwrap();
            assert_eq!(&b.name, name);
            assert!(b.learner_budget_bytes > 0 && b.learner_budget_bytes <= b.ram_bytes);
        }
    }

    #[test]
    fn unknown_board_names_the_shipped_ones() {
        let e = Board::load("no-such-board").unwrap_err().to_string();
        assert!(e.contains("netduinoplus2") && !e.contains('\n'), "{e}");
    }

    #[test]
    fn the_kind_is_an_enum_and_another_is_refused_naming_both() {
        assert_eq!(Board::load("nrf52840-dk").unwrap().kind, BoardKind::Mcu);
        assert_eq!(Board::load("raspberry-pi-4").unwrap().kind, BoardKind::Linux);
        let text = BUILTIN[0].1.replace("kind = \"mcu\"", "kind = \"fpga\"");
        let e = format!("{:#}", Board::parse(&text).unwrap_err());
        assert!(e.contains("unknown variant `fpga`, expected `mcu` or `linux`"), "{e}");
    }
}

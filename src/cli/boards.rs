//! `edgecl boards`: the shipped board profiles, one line each.

use anyhow::Result;
use edgecl::host::board::{Board, BUILTIN};

/// `edgecl boards`: prints each shipped profile (a profile that does not load, on
/// standard error).
pub fn boards() -> Result<()> {
    for (name, _) in BUILTIN {
        match Board::load(name) {
            Ok(b) => println!(
                "{:<22}{:<20}{:<12}{:>5} MHz  RAM {:>10}  flash {:>12}  budget {:>9}",
                b.name, b.chip, b.core, b.clock_mhz, b.ram_bytes, b.flash_bytes, b.learner_budget_bytes
            ),
            Err(e) => eprintln!("edgecl: {e:#}"),
        }
    }
    Ok(())
}

//! A sweep's grid as its arguments ask for it, checked (no board, budget, strategy,
//! scenario or setting twice; at least one seed).

use super::{SweepArgs, SWEEP_BUDGETS};
use anyhow::{bail, Result};
use clap::ValueEnum;
use edgecl::host::sweep::{parse_label, Grid};

/// A clap value's name (`class-il`).
fn value_name<T: ValueEnum>(v: &T) -> String {
    v.to_possible_value()
        .map_or_else(String::new, |p| p.get_name().to_string())
}

/// The grid the arguments ask for, checked.
pub(super) fn grid(args: &SweepArgs) -> Result<Grid> {
    let boards: Vec<Option<String>> = match (&args.boards, &args.shape.board) {
        (Some(list), _) => {
            for (i, b) in list.iter().enumerate() {
                if list[..i].contains(b) {
                    bail!("--boards: `{b}` is listed twice");
                }
            }
            list.iter().cloned().map(Some).collect()
        }
        (None, board) => vec![board.clone()],
    };
    let mut axes = Vec::new();
    for b in boards {
        let mut shape = args.shape.clone();
        shape.board = b.clone();
        let board = shape.board()?;
        let mut budgets = match (&b, args.budgets.clone()) {
            (_, Some(list)) => list,
            (None, None) => SWEEP_BUDGETS.to_vec(),
            (Some(_), None) => {
                let mut l: Vec<usize> = SWEEP_BUDGETS.iter().copied().filter(|&x| x < board.budget()).collect();
                l.push(board.budget());
                l
            }
        };
        budgets.sort_unstable();
        budgets.dedup();
        if budgets.contains(&0) {
            bail!("--budgets: a budget of 0 bytes holds no learner");
        }
        if let Some(over) = budgets.iter().find(|&&x| b.is_some() && x > board.budget()) {
            bail!(
                "--budgets {over}: more than {}'s learner budget of {} bytes",
                board.name,
                board.budget()
            );
        }
        axes.push((b, budgets));
    }
    let strategies = args.strategies.clone();
    for (i, s) in strategies.iter().enumerate() {
        parse_label(s)?;
        if strategies[..i].contains(s) {
            bail!("--strategies: `{s}` is listed twice");
        }
    }
    if args.seeds == 0 {
        bail!("--seeds 0: a sweep needs at least one seed");
    }
    let names = |v: Option<Vec<String>>, one: String, flag: &str| -> Result<Vec<String>> {
        let names = v.unwrap_or_else(|| vec![one]);
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                bail!("{flag}: `{n}` is listed twice");
            }
        }
        Ok(names)
    };
    let scenarios = names(
        args.scenarios.as_ref().map(|v| v.iter().map(value_name).collect()),
        value_name(&args.shape.scenario),
        "--scenarios",
    )?;
    let settings = names(
        args.settings.as_ref().map(|v| v.iter().map(value_name).collect()),
        value_name(&args.shape.setting()),
        "--settings",
    )?;
    Ok(Grid {
        boards: axes,
        scenarios,
        settings,
        strategies,
        seeds: args.seeds,
    })
}

//! `--strategy`: the text as given and the [`Strategy`] it names, parsed once when the
//! arguments are; a bad value ends the process with one line naming it.

use anyhow::Result;
use edgecl::host::simulate::Strategy;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A `--strategy` value: serialised as the text it was given as (a sweep's
/// `settings.txt` holds it), parsed into its [`Strategy`] when read.
#[derive(Clone, Debug, PartialEq)]
pub struct StrategyArg {
    text: String,
    strategy: Strategy,
}

impl StrategyArg {
    /// Parses a strategy name or combination (`naive`, `packnet+si`, ...).
    pub fn parse(text: &str) -> Result<StrategyArg> {
        Ok(StrategyArg {
            text: text.to_string(),
            strategy: Strategy::parse(text)?,
        })
    }

    /// The empty text a sweep's shared settings hold in place of a strategy (each cell
    /// sets its own before running); it stands for fine-tuning.
    pub fn unset() -> StrategyArg {
        StrategyArg {
            text: String::new(),
            strategy: Strategy::Naive,
        }
    }

    /// The strategy.
    pub fn get(&self) -> Strategy {
        self.strategy
    }
}

/// clap's value parser of `--strategy`: the error is the parser's whole message.
pub fn parse_strategy(text: &str) -> std::result::Result<StrategyArg, String> {
    StrategyArg::parse(text).map_err(|e| format!("{e:#}"))
}

impl Serialize for StrategyArg {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for StrategyArg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<StrategyArg, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Ok(StrategyArg::unset());
        }
        StrategyArg::parse(&text).map_err(|e| serde::de::Error::custom(format!("{e:#}")))
    }
}

/// Ends the process on a command-line error: a bad `--strategy` with `edgecl: ` and the
/// parser's one line and exit status 1 (as every other error of a run), anything else
/// as clap reports it.
pub fn exit(e: clap::Error) -> ! {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let on_strategy = matches!(
        e.get(ContextKind::InvalidArg),
        Some(ContextValue::String(a)) if a.starts_with("--strategy ")
    );
    if e.kind() == ErrorKind::ValueValidation && on_strategy {
        if let Some(why) = std::error::Error::source(&e) {
            eprintln!("edgecl: {why}");
            std::process::exit(1);
        }
    }
    e.exit()
}

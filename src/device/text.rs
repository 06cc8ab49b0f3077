//! `firmware.toml`: the text form of a [`DeviceConfig`] a board folder keeps, read on the
//! host with the `toml` crate (feature `std`). The image `edgecl export` signs carries the
//! config's postcard bytes instead, so the firmware parses no text.
//!
//! ```toml
//! strategy = "replay"   # fine-tune, replay or si
//! hidden = 0            # 0: a linear head
//! optimizer = "sgd"     # sgd (lr, momentum) or adam (lr)
//! lr = 0.03
//! ```

use super::{DeviceConfig, DeviceError};
use crate::learner::{Optimizer, Strategy};
use anyhow::{anyhow, Result};
use serde::Deserialize;

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
enum OptimizerName {
    Sgd,
    Adam,
}

/// Every key, each optional: what is left out keeps [`DeviceConfig::default`]'s value.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Text {
    strategy: Option<Strategy>,
    hidden: Option<usize>,
    classes: Option<usize>,
    tasks: Option<usize>,
    optimizer: Option<OptimizerName>,
    lr: Option<f32>,
    momentum: Option<f32>,
    batch: Option<usize>,
    repeats: Option<usize>,
    rank: Option<usize>,
    slots: Option<usize>,
    distill: Option<f32>,
    lambda: Option<f32>,
    xi: Option<f32>,
    seed: Option<u64>,
    checkpoint_every: Option<usize>,
}

impl DeviceConfig {
    /// Parses a config text (TOML; every key optional, unknown keys refused); a value out
    /// of range is refused naming its key and line. `slots` is capped at `classes`.
    pub fn parse(text: &str) -> Result<DeviceConfig> {
        let t: Text = toml::from_str(text).map_err(|e| anyhow!("device config: {}", e.to_string().trim_end()))?;
        let d = DeviceConfig::default();
        let optimizer = match t.optimizer.unwrap_or(OptimizerName::Sgd) {
            OptimizerName::Adam => Optimizer::adam(t.lr.unwrap_or(1e-3)),
            OptimizerName::Sgd => Optimizer::Sgd {
                lr: t.lr.unwrap_or(0.03),
                momentum: t.momentum.unwrap_or(0.0),
            },
        };
        let classes = t.classes.unwrap_or(d.classes);
        let c = DeviceConfig {
            strategy: t.strategy.unwrap_or(d.strategy),
            hidden: t.hidden.unwrap_or(d.hidden),
            classes,
            tasks: t.tasks.unwrap_or(d.tasks),
            optimizer,
            batch: t.batch.unwrap_or(d.batch),
            repeats: t.repeats.unwrap_or(d.repeats),
            rank: t.rank.unwrap_or(d.rank),
            slots: t.slots.unwrap_or(d.slots).min(classes),
            distill: t.distill.unwrap_or(d.distill),
            lambda: t.lambda.unwrap_or(d.lambda),
            xi: t.xi.unwrap_or(d.xi),
            seed: t.seed.unwrap_or(d.seed),
            checkpoint_every: t.checkpoint_every.unwrap_or(d.checkpoint_every),
        };
        c.validate().map_err(|e| match e {
            DeviceError::ConfigKey { key, why } => match line_of(text, key) {
                Some(line) => anyhow!("device config line {line}: `{key}` {why}"),
                None => anyhow!("device config: `{key}` {why}"),
            },
            e => anyhow!("{e}"),
        })?;
        Ok(c)
    }
}

/// The 1-based line that sets `key`, if one does.
fn line_of(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

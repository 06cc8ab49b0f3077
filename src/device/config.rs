//! The firmware's learner config: a flat `key = value` text (a TOML subset: one key per
//! line, `#` comments, strings in double quotes), parsed by the same code on the firmware
//! and in the host simulator, so both build the same [`LearnerConfig`].

use super::DeviceError;
use crate::learner::{
    GeneratorConfig, GeneratorKind, Kernels, LayerDims, LearnerConfig, Method, Optimizer, PenaltyConfig, PenaltyKind,
    Quant, Storage, Strategy,
};

/// The strategies the device loop runs: fine-tuning, Gaussian replay and SI (the rest
/// need what a device does not keep: old data, a task's samples after it, a column per
/// task).
pub const STRATEGIES: [Strategy; 3] = [
    Strategy::Naive,
    Strategy::Replay(None),
    Strategy::Penalty(PenaltyKind::Si),
];

/// Whether the device loop runs `strategy`.
pub fn runs(strategy: Strategy) -> bool {
    STRATEGIES.contains(&strategy)
}

/// A strategy as the firmware's lines name it: fine-tuning as `fine-tune`, the others by
/// their report name.
#[derive(Debug, Clone, Copy)]
pub struct Printed(pub Strategy);

impl core::fmt::Display for Printed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Strategy::Naive => f.write_str("fine-tune"),
            s => s.fmt(f),
        }
    }
}

/// The device's learner and loop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeviceConfig {
    /// Defence against forgetting, one of [`STRATEGIES`] (`strategy`, default `replay`).
    pub strategy: Strategy,
    /// Hidden width of the head, 0 for a linear head (`hidden`, default 0).
    pub hidden: usize,
    /// Output classes of the head (`classes`, default 10).
    pub classes: usize,
    /// Most tasks, which sizes the accuracy matrix (`tasks`, default 5).
    pub tasks: usize,
    /// Optimizer (`optimizer = "sgd" | "adam"`, `lr`, `momentum`; default SGD, 0.03, 0).
    pub optimizer: Optimizer,
    /// Rows per update, real plus replayed (`batch`, default 32).
    pub batch: usize,
    /// Updates on each batch of real samples, each with fresh replayed rows (`repeats`,
    /// default 8).
    pub repeats: usize,
    /// Replay: rank of each class's Gaussian (`rank`, default 4).
    pub rank: usize,
    /// Replay: classes observed at once (`slots`, default 2).
    pub slots: usize,
    /// Replay: distillation temperature, 0 for none (`distill`, default 0).
    pub distill: f32,
    /// SI: strength (`lambda`, default 1) and damping (`xi`, default 0.1).
    pub lambda: f32,
    /// SI damping.
    pub xi: f32,
    /// Seed of the head's initialisation and the replay draws (`seed`, default 1).
    pub seed: u64,
    /// Updates between checkpoints, when the firmware keeps them; 0: only after each
    /// task and at the end (`checkpoint_every`, default 100).
    pub checkpoint_every: usize,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        DeviceConfig {
            strategy: Strategy::Replay(None),
            hidden: 0,
            classes: 10,
            tasks: 5,
            optimizer: Optimizer::Sgd {
                lr: 0.03,
                momentum: 0.0,
            },
            batch: 32,
            repeats: 8,
            rank: 4,
            slots: 2,
            distill: 0.0,
            lambda: 1.0,
            xi: 0.1,
            seed: 1,
            checkpoint_every: 100,
        }
    }
}

impl DeviceConfig {
    /// Parses a config text; keys not given keep their defaults. Unknown keys, repeated
    /// keys and values out of range are errors with the line number.
    pub fn parse(text: &str) -> Result<Self, DeviceError> {
        let mut c = DeviceConfig::default();
        let (mut opt, mut lr, mut momentum) = ("sgd", None, 0.0f32);
        let mut seen = 0u32;
        for (n, raw) in text.lines().enumerate() {
            let line = n + 1;
            let err = |why| DeviceError::Config { line, why };
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let (key, value) = content.split_once('=').ok_or(err("expected `key = value`"))?;
            let (key, value) = (key.trim(), value.trim());
            let text = || -> Result<&str, DeviceError> {
                value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .ok_or(err("expected a string in double quotes"))
            };
            let int = |lo: usize, hi: usize| -> Result<usize, DeviceError> {
                match value.parse::<usize>() {
                    Ok(v) if (lo..=hi).contains(&v) => Ok(v),
                    _ => Err(err("expected a whole number in range")),
                }
            };
            let float = || -> Result<f32, DeviceError> {
                match value.parse::<f32>() {
                    Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
                    _ => Err(err("expected a finite number >= 0")),
                }
            };
            let bit = match key {
                "strategy" => {
                    c.strategy = match Strategy::parse(text()?) {
                        Ok(s) if runs(s) => s,
                        _ => return Err(err("strategy is fine-tune, replay or si")),
                    };
                    0
                }
                "hidden" => (c.hidden = int(0, 4096)?, 1).1,
                "classes" => (c.classes = int(2, 256)?, 2).1,
                "tasks" => (c.tasks = int(1, 64)?, 3).1,
                "optimizer" => {
                    opt = match text()? {
                        o @ ("sgd" | "adam") => o,
                        _ => return Err(err("optimizer is sgd or adam")),
                    };
                    4
                }
                "lr" => (lr = Some(float()?), 5).1,
                "momentum" => (momentum = float()?, 6).1,
                "batch" => (c.batch = int(1, 1024)?, 7).1,
                "repeats" => (c.repeats = int(1, 1000)?, 8).1,
                "rank" => (c.rank = int(0, 16)?, 9).1,
                "slots" => (c.slots = int(1, 256)?, 10).1,
                "distill" => (c.distill = float()?, 11).1,
                "lambda" => (c.lambda = float()?, 12).1,
                "xi" => (c.xi = float()?, 13).1,
                "seed" => (c.seed = int(0, u32::MAX as usize)? as u64, 14).1,
                "checkpoint_every" => (c.checkpoint_every = int(0, 1 << 30)?, 15).1,
                _ => return Err(err("unknown key")),
            };
            if seen & (1 << bit) != 0 {
                return Err(err("key given twice"));
            }
            seen |= 1 << bit;
        }
        c.optimizer = match opt {
            "adam" => Optimizer::adam(lr.unwrap_or(1e-3)),
            _ => Optimizer::Sgd {
                lr: lr.unwrap_or(0.03),
                momentum,
            },
        };
        c.slots = c.slots.min(c.classes);
        c.learner(1)?.validate()?;
        Ok(c)
    }

    /// The same config with nothing against forgetting: the baseline run.
    pub fn fine_tune(&self) -> Self {
        DeviceConfig {
            strategy: Strategy::Naive,
            ..*self
        }
    }

    /// The learner this config runs on `features` inputs, with the reference kernels
    /// (the same sums in the same order on every target).
    pub fn learner(&self, features: usize) -> Result<LearnerConfig, DeviceError> {
        let dims = if self.hidden == 0 {
            LayerDims::new(&[features, self.classes])
        } else {
            LayerDims::new(&[features, self.hidden, self.classes])
        }?;
        Ok(LearnerConfig {
            dims,
            optimizer: self.optimizer,
            batch_size: self.batch,
            max_tasks: self.tasks,
            seed: self.seed,
            kernels: Kernels::Reference,
            penalty: (self.strategy.penalty() == Some(PenaltyKind::Si)).then_some(PenaltyConfig {
                method: Method::Si { xi: self.xi },
                lambda: self.lambda,
                storage: Storage::Compact(Quant::Log),
            }),
            packnet: None,
            generator: self.strategy.replays().then_some(GeneratorConfig {
                classes: self.classes,
                kind: GeneratorKind::Gaussian {
                    rank: self.rank,
                    slots: self.slots,
                },
                distill: (self.distill > 0.0).then_some(self.distill),
            }),
        })
    }
}

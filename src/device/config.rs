//! The firmware's learner config. A board folder writes it as `firmware.toml` (read on
//! the host, `DeviceConfig::parse` with feature `std`); a device image carries its
//! postcard bytes, which the firmware decodes and checks ([`DeviceConfig::from_bytes`],
//! [`DeviceConfig::validate`]); both build the same [`LearnerConfig`].

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
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
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
    /// Most bytes of a config's postcard encoding (what an image's config payload may
    /// hold).
    pub const MAX_BYTES: usize = 192;

    /// Checks every value against its range; the error names the key. The text form
    /// (`firmware.toml`) and the image's bytes are both checked by this.
    pub fn validate(&self) -> Result<(), DeviceError> {
        let key = |key: &'static str, why: &'static str| DeviceError::ConfigKey { key, why };
        let int = |k: &'static str, v: usize, lo: usize, hi: usize, why: &'static str| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(key(k, why))
            }
        };
        let float = |k: &'static str, v: f32| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(key(k, "is a finite number >= 0"))
            }
        };
        if !runs(self.strategy) {
            return Err(key("strategy", "is fine-tune, replay or si"));
        }
        int("hidden", self.hidden, 0, 4096, "is 0 to 4096")?;
        int("classes", self.classes, 2, 256, "is 2 to 256")?;
        int("tasks", self.tasks, 1, 64, "is 1 to 64")?;
        match self.optimizer {
            Optimizer::Sgd { lr, momentum } => {
                float("lr", lr)?;
                float("momentum", momentum)?;
            }
            Optimizer::Adam { lr, .. } => float("lr", lr)?,
        }
        int("batch", self.batch, 1, 1024, "is 1 to 1024")?;
        int("repeats", self.repeats, 1, 1000, "is 1 to 1000")?;
        int("rank", self.rank, 0, 16, "is 0 to 16")?;
        int(
            "slots",
            self.slots,
            1,
            self.classes.min(256),
            "is 1 to the classes (at most 256)",
        )?;
        float("distill", self.distill)?;
        float("lambda", self.lambda)?;
        float("xi", self.xi)?;
        if self.seed > u64::from(u32::MAX) {
            return Err(key("seed", "is 0 to 2^32 - 1"));
        }
        int("checkpoint_every", self.checkpoint_every, 0, 1 << 30, "is 0 to 2^30")?;
        self.learner(1)?.validate()?;
        Ok(())
    }

    /// The config as an image carries it: its postcard bytes, written into `buf`.
    pub fn to_bytes<'b>(&self, buf: &'b mut [u8]) -> Result<&'b mut [u8], DeviceError> {
        postcard::to_slice(self, buf).map_err(|_| DeviceError::Config {
            line: 0,
            why: "the config does not fit its buffer",
        })
    }

    /// The config an image carries: postcard bytes (all of them), then [`validate`]d.
    ///
    /// [`validate`]: DeviceConfig::validate
    pub fn from_bytes(bytes: &[u8]) -> Result<DeviceConfig, DeviceError> {
        let bad = DeviceError::Config {
            line: 0,
            why: "the config bytes do not decode",
        };
        let (config, rest): (DeviceConfig, &[u8]) = postcard::take_from_bytes(bytes).map_err(|_| bad)?;
        if !rest.is_empty() {
            return Err(DeviceError::Config {
                line: 0,
                why: "bytes after the config",
            });
        }
        config.validate()?;
        Ok(config)
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

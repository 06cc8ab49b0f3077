//! The learner config of a Linux board's device image: a TOML file that `edgecl export
//! --board raspberry-pi-4 --config FILE` signs into the image, and `edgecl run` reads
//! back. Its keys are the simulator's options of the same names, and
//! [`RunConfig::options`] turns them into the simulator's [`Options`], so the runtime and
//! `edgecl simulate` plan and initialise the very same learner.
//!
//! ```toml
//! strategy = "replay"     # naive, ewc, online-ewc, si, mas, replay, PENALTY+replay,
//!                         # packnet, packnet+PENALTY, packnet+replay
//! classes = 10            # outputs of the head
//! tasks = 5               # tasks the learner plans for (EWC keeps a slot per task)
//! budget = "96k"          # arena bytes [the board's learner budget]
//! hidden = 0              # hidden units [the widest whose plan fits]; 0: a linear head
//! batch = 32              # rows per update, real plus replayed
//! optimizer = "adam"      # or "sgd" (with momentum)
//! lr = 0.001
//! seed = 1                # the head's initial weights and the replay draws
//! generator = "gaussian"  # replay: gaussian, buffer or vae
//! end_task_every = 0      # task-free: end a task every N labelled samples (0: never)
//! end_task_on_new_class = false  # task-free: end a task when a new class appears
//! backbone_sha256 = "..." # written by export: the ONNX backbone this head was made for
//! ```

use crate::host::board::Board;
use crate::host::scenario::Kind;
use crate::host::simulate::{
    self, GeneratorChoice, Length, Observe, Options, PackNetOptions, PenaltyKind, PenaltyOptions, Protocol,
    ReplayOptions, ReplayRatio, Strategy,
};
use crate::learner::{FisherLabels, Kernels, LearnerConfig, Optimizer, Quant, Storage};
use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// A Linux board's learner config (the image's config payload).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The defence against forgetting: any `--strategy` of the simulator that learns from
    /// samples as they come, class-incrementally (all but `joint` and `progressive`).
    #[serde(default = "default_strategy")]
    pub strategy: Strategy,
    /// Outputs of the head.
    #[serde(default = "default_classes")]
    pub classes: usize,
    /// Tasks the learner plans for (per-task EWC's slots).
    #[serde(default = "default_tasks")]
    pub tasks: usize,
    /// Arena bytes (`98304`, `"96k"`, `"2m"`); the board's learner budget when absent.
    #[serde(default)]
    pub budget: Option<Bytes>,
    /// Hidden units of the head (absent: the widest whose plan fits; 0: linear).
    #[serde(default)]
    pub hidden: Option<usize>,
    /// Rows per update, real plus replayed.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// `adam` or `sgd`.
    #[serde(default = "default_optimizer")]
    pub optimizer: String,
    /// Learning rate.
    #[serde(default = "default_lr")]
    pub lr: f32,
    /// SGD's momentum.
    #[serde(default = "default_momentum")]
    pub momentum: f32,
    /// `reference` (what the firmware runs) or `fast`.
    #[serde(default = "default_kernels")]
    pub kernels: Kernels,
    /// Seed of the head's initial weights and of everything random while learning.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// The penalty's strength (absent: the simulator's edge default for the penalty).
    #[serde(default)]
    pub lambda: Option<f32>,
    /// Online EWC's decay.
    #[serde(default = "one")]
    pub gamma: f32,
    /// SI's damping.
    #[serde(default = "default_xi")]
    pub xi: f32,
    /// Importance and anchors: `compact` (u8 + f16) or `f32`.
    #[serde(default = "default_storage")]
    pub storage: String,
    /// Compact importance's code: `log` or `linear`.
    #[serde(default = "default_quant")]
    pub quant: Quant,
    /// The Fisher's labels: `true` or `sampled`.
    #[serde(default = "default_fisher")]
    pub fisher: FisherLabels,
    /// Replay: `gaussian`, `buffer` or `vae`.
    #[serde(default = "default_generator")]
    pub generator: GeneratorChoice,
    /// Replay, Gaussian: principal directions per class.
    #[serde(default = "default_rank")]
    pub generator_rank: usize,
    /// Replay, Gaussian: classes observed at once (a task's classes).
    #[serde(default = "default_slots")]
    pub generator_slots: usize,
    /// Replay: replayed per real sample, or `"balanced"`.
    #[serde(default)]
    pub replay_ratio: Option<Ratio>,
    /// Replay, buffer: rows (absent: the Gaussian's bytes).
    #[serde(default)]
    pub buffer_rows: Option<usize>,
    /// Replay, VAE: hidden units.
    #[serde(default)]
    pub vae_hidden: Option<usize>,
    /// Replay, VAE: code width.
    #[serde(default)]
    pub vae_latent: Option<usize>,
    /// Replay: distillation temperature.
    #[serde(default)]
    pub distill: Option<f32>,
    /// PackNet: the fraction of each layer's free weights freed again after each task.
    /// The task's kept weights are not retrained after pruning (a device does not keep
    /// the task's samples): `simulate --retrain-iters 0` does the same.
    #[serde(default = "default_prune_ratio")]
    pub prune_ratio: f32,
    /// Clear the optimizer's state when a new task starts.
    #[serde(default)]
    pub reset_optimizer: bool,
    /// Task-free: end the task every this many labelled samples (0: only when told).
    #[serde(default)]
    pub end_task_every: u64,
    /// Task-free: end the task when a class never seen before appears.
    #[serde(default)]
    pub end_task_on_new_class: bool,
    /// SHA-256 (hex) of the ONNX backbone the head was made for; `edgecl export` writes
    /// it, and the runtime refuses any other backbone.
    #[serde(default)]
    pub backbone_sha256: Option<String>,
}

/// A byte count: a number, or a string such as `"64k"` or `"2m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "BytesText")]
pub struct Bytes(pub usize);

#[derive(Deserialize)]
#[serde(untagged)]
enum BytesText {
    Number(usize),
    Text(String),
}

impl TryFrom<BytesText> for Bytes {
    type Error = String;
    fn try_from(b: BytesText) -> std::result::Result<Self, String> {
        match b {
            BytesText::Number(n) => Ok(Bytes(n)),
            BytesText::Text(t) => crate::host::board::parse_bytes(&t).map(Bytes),
        }
    }
}

/// A replay ratio: a number, or `"balanced"`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "RatioText")]
pub struct Ratio(pub ReplayRatio);

#[derive(Deserialize)]
#[serde(untagged)]
enum RatioText {
    Number(f32),
    Text(String),
}

impl TryFrom<RatioText> for Ratio {
    type Error = String;
    fn try_from(r: RatioText) -> std::result::Result<Self, String> {
        match r {
            RatioText::Number(n) if n.is_finite() && n >= 0.0 => Ok(Ratio(ReplayRatio::Fixed(n))),
            RatioText::Text(t) if t == "balanced" => Ok(Ratio(ReplayRatio::Balanced)),
            _ => Err("a replay ratio is \"balanced\" or a number >= 0".to_string()),
        }
    }
}

fn default_strategy() -> Strategy {
    Strategy::Replay(None)
}
fn default_classes() -> usize {
    10
}
fn default_tasks() -> usize {
    5
}
fn default_batch() -> usize {
    32
}
fn default_optimizer() -> String {
    "adam".into()
}
fn default_lr() -> f32 {
    1e-3
}
fn default_momentum() -> f32 {
    0.9
}
fn default_kernels() -> Kernels {
    Kernels::Reference
}
fn default_seed() -> u64 {
    1
}
fn one() -> f32 {
    1.0
}
fn default_xi() -> f32 {
    0.1
}
fn default_storage() -> String {
    "compact".into()
}
fn default_quant() -> Quant {
    Quant::Log
}
fn default_fisher() -> FisherLabels {
    FisherLabels::True
}
fn default_generator() -> GeneratorChoice {
    GeneratorChoice::Gaussian
}
fn default_rank() -> usize {
    4
}
fn default_slots() -> usize {
    2
}
fn default_prune_ratio() -> f32 {
    0.75
}

impl RunConfig {
    /// Parses the TOML text; an unknown key or a bad value names itself.
    pub fn parse(text: &str) -> Result<RunConfig> {
        let c: RunConfig = toml::from_str(text).context("the run config")?;
        c.strategy()?;
        Ok(c)
    }

    /// The strategy, refused when the runtime cannot run it.
    pub fn strategy(&self) -> Result<Strategy> {
        match self.strategy {
            s @ (Strategy::Naive
            | Strategy::Penalty(_)
            | Strategy::Replay(_)
            | Strategy::PackNet(_)
            | Strategy::PackNetReplay) => Ok(s),
            Strategy::Joint => bail!(
                "strategy `joint` trains on every past sample, which a device does not keep; it is the simulator's upper bound only"
            ),
            Strategy::Progressive => bail!(
                "strategy `progressive` needs the task of every sample (task-IL); edgecl run learns class-incrementally"
            ),
        }
    }

    /// The simulator's options this config stands for on `board`, with `length` updates
    /// per task (what the simulator needs; the runtime learns as samples come).
    pub fn options(&self, board: &Board, length: Length) -> Result<Options> {
        let strategy = self.strategy()?;
        let optimizer = match self.optimizer.as_str() {
            "adam" => Optimizer::adam(self.lr),
            "sgd" => Optimizer::Sgd {
                lr: self.lr,
                momentum: self.momentum,
            },
            o => bail!("optimizer `{o}`: give `adam` or `sgd`"),
        };
        let (kernels, fisher, generator) = (self.kernels, self.fisher, self.generator);
        let storage = match self.storage.as_str() {
            "f32" => Storage::F32,
            "compact" => Storage::Compact(self.quant),
            s => bail!("storage `{s}`: give compact or f32"),
        };
        if self.classes < 2 || self.classes > usize::from(u16::MAX) {
            bail!("classes = {}: a head has 2 to 65535 outputs", self.classes);
        }
        if self.batch == 0 {
            bail!("batch = 0: an update needs at least one row");
        }
        let lambda = self.lambda.unwrap_or_else(|| {
            strategy
                .penalty()
                .map_or(1.0, |k| simulate::default_lambda(Protocol::Edge, Kind::Split, k))
        });
        Ok(Options {
            protocol: Protocol::Edge,
            strategy,
            board: board.clone(),
            budget: self.budget.map_or(board.budget(), |b| b.0),
            length,
            batch: self.batch,
            optimizer,
            hidden: self.hidden,
            kernels,
            seed: self.seed,
            progress: false,
            data: String::new(),
            backbone: None,
            penalty: PenaltyOptions {
                lambda,
                gamma: self.gamma,
                xi: self.xi,
                storage,
                fisher,
                samples: 1000,
            },
            reset_optimizer: self.reset_optimizer,
            observe: Observe::Online,
            packnet: PackNetOptions {
                prune_ratio: self.prune_ratio,
                retrain_iters: 0,
            },
            column_width: None,
            replay: ReplayOptions {
                generator,
                ratio: self.replay_ratio.map_or(ReplayRatio::Balanced, |r| r.0),
                rank: self.generator_rank,
                slots: Some(self.generator_slots),
                buffer_rows: self.buffer_rows,
                vae_hidden: self.vae_hidden,
                vae_latent: self.vae_latent,
                distill: self.distill,
            },
        })
    }

    /// The learner over `features` inputs on `board`: the simulator's plan for the same
    /// options.
    pub fn learner(&self, board: &Board, features: usize) -> Result<LearnerConfig> {
        let opts = self.options(board, Length::Iters(1))?;
        simulate::learner_config(&opts, features, self.classes, self.tasks)
    }

    /// Whether the penalty estimates importance from samples (EWC, online EWC, MAS).
    pub fn estimates_importance(&self) -> bool {
        self.strategy()
            .ok()
            .and_then(Strategy::penalty)
            .is_some_and(|k| k != PenaltyKind::Si)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_an_empty_config_and_unknown_keys_are_refused() {
        let c = RunConfig::parse("").unwrap();
        assert_eq!((c.strategy, c.classes, c.batch), (Strategy::Replay(None), 10, 32));
        let e = format!("{:#}", RunConfig::parse("stratgy = \"si\"").unwrap_err());
        assert!(e.contains("stratgy"), "{e}");
        assert_eq!(RunConfig::parse("budget = \"64k\"").unwrap().budget, Some(Bytes(65536)));
        assert_eq!(RunConfig::parse("budget = 1000").unwrap().budget, Some(Bytes(1000)));
        assert!(RunConfig::parse("budget = \"lots\"").is_err());
    }

    #[test]
    fn strategies_a_device_cannot_run_are_refused_with_the_reason() {
        for (s, why) in [("joint", "every past sample"), ("progressive", "task")] {
            let e = format!("{:#}", RunConfig::parse(&format!("strategy = \"{s}\"")).unwrap_err());
            assert!(e.contains(why), "{s}: {e}");
        }
        for s in [
            "naive",
            "si",
            "online-ewc",
            "replay",
            "si+replay",
            "packnet",
            "packnet+si",
            "packnet+replay",
        ] {
            RunConfig::parse(&format!("strategy = \"{s}\"")).unwrap();
        }
    }
}

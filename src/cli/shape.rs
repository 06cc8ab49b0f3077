//! The shared learner arguments (`Shape`: what `simulate`, `plan` and `sweep` take to
//! shape a learner, and how they become the simulator's options) and the clap value
//! enums its flags take.

use super::strategy::{parse_strategy, StrategyArg};
use anyhow::Result;
#[cfg(feature = "onnx")]
use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use edgecl::host::board::{parse_bytes, Board};
use edgecl::host::scenario::{ClassOrder, Kind, Setting, Spec};
use edgecl::host::simulate::{
    self, GeneratorChoice, Length, Observe, Options, PackNetOptions, PenaltyOptions, Protocol, ReplayOptions,
    ReplayRatio,
};
use edgecl::{FisherLabels, Kernels, Optimizer, Quant, Storage};
use serde::{Deserialize, Serialize};
#[cfg(feature = "onnx")]
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StorageArg {
    /// u8 importance with a per-tensor scale, f16 anchors.
    Compact,
    /// f32 importance and anchors.
    F32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerArg {
    /// SGD with momentum.
    Sgd,
    /// Adam.
    Adam,
}

/// `balanced` or a non-negative number.
pub fn parse_ratio(s: &str) -> std::result::Result<ReplayRatio, String> {
    if s == "balanced" {
        return Ok(ReplayRatio::Balanced);
    }
    match s.parse::<f32>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(ReplayRatio::Fixed(r)),
        _ => Err(format!("`{s}`: a replay ratio is `balanced` or a number >= 0")),
    }
}

/// A replay ratio as the text `--replay-ratio` takes (`balanced` or a number).
mod ratio_text {
    use super::{parse_ratio, ReplayRatio};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(r: &ReplayRatio, s: S) -> Result<S::Ok, S::Error> {
        match r {
            ReplayRatio::Balanced => s.serialize_str("balanced"),
            ReplayRatio::Fixed(v) => s.serialize_str(&v.to_string()),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ReplayRatio, D::Error> {
        parse_ratio(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// What both `simulate` and `plan` need to shape a learner. A sweep keeps it in its
/// folder's `settings.txt` (serde JSON, a stable form to compare and read back).
#[derive(Args, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Shape {
    /// Network, features and defaults.
    #[arg(long, value_enum, default_value = "edge")]
    pub protocol: Protocol,
    /// How tasks are cut from the data.
    #[arg(long, value_enum, default_value = "split")]
    pub scenario: Kind,
    /// Task-, domain- or class-incremental [class-il; domain-il with --tasks-by].
    #[arg(long, value_enum)]
    #[serde(default)]
    pub setting: Option<Setting>,
    /// Classes per task (split): groups of this many, ceil(classes / K) tasks, the last
    /// one smaller.
    #[arg(long, default_value_t = 2)]
    pub classes_per_task: usize,
    /// One task per value of this side file (e.g. `subjects`: one task per wearer), each
    /// holding every class; a value found in one split only holds out the last quarter of
    /// each class's samples as its test samples.
    #[arg(long, value_name = "NAME")]
    #[serde(default)]
    pub tasks_by: Option<String>,
    /// `naive` (fine-tune), `joint`, a penalty (`ewc`, `online-ewc`, `si`, `mas`),
    /// `packnet`, `packnet+PENALTY`, `progressive` (task-il), `replay` or `PENALTY+replay`.
    #[arg(long, default_value = "naive", value_parser = parse_strategy)]
    pub strategy: StrategyArg,
    /// Board name (see `edgecl boards`) or profile file; default: netduinoplus2 for the
    /// edge protocol, raspberry-pi-4 for the literature one.
    #[arg(long)]
    pub board: Option<String>,
    /// Arena bytes, overriding the board's learner budget (e.g. 65536, 64k, 2m).
    #[arg(long, value_parser = parse_bytes)]
    pub budget: Option<usize>,
    /// Number of tasks (default: 5 split, 10 permuted, 5 rotated).
    #[arg(long)]
    pub tasks: Option<usize>,
    /// Batch size (default: 128 literature, 32 edge).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Optimizer [adam].
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerArg>,
    /// Learning rate (default: 1e-3; 1e-4 for permuted and rotated literature, but 1e-3 for
    /// packnet and progressive there).
    #[arg(long)]
    pub lr: Option<f32>,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f32,
    /// Hidden width of the edge head (default: the largest that fits the budget; 0: a
    /// linear head), or of both hidden layers of the literature network (default 400).
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Matrix kernels (default: fast literature, reference edge, as the firmware runs).
    #[arg(long, value_enum)]
    pub kernels: Option<Kernels>,
    /// Seed of weight init, permutations and batch order.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Penalty strength lambda of ewc, online-ewc, si and mas (the penalty is
    /// lambda/2 * sum b_i (theta_i - anchor_i)^2); a list such as 1,10,100 picks the best on
    /// a validation split carved from the training data [per method, see the README].
    #[arg(long, value_delimiter = ',')]
    pub lambda: Option<Vec<f32>>,
    /// Online EWC's decay of the old Fisher.
    #[arg(long, default_value_t = 1.0)]
    pub gamma: f32,
    /// SI's damping xi.
    #[arg(long, default_value_t = 0.1)]
    pub xi: f32,
    /// Storage of importance and anchors: `compact` (u8 importance, f16 anchors) or `f32`.
    #[arg(long, value_enum, default_value = "compact")]
    pub storage: StorageArg,
    /// Quantisation of compact importance.
    #[arg(long, value_enum, default_value = "log")]
    pub quant: Quant,
    /// The Fisher's labels: the samples' `true` ones or `sampled` from the model.
    #[arg(long, value_enum, default_value = "true")]
    pub fisher: FisherLabels,
    /// Samples of each task its importance is estimated on (ewc, online-ewc, mas).
    #[arg(long, default_value_t = 1000)]
    pub importance_samples: usize,
    /// Clear the optimizer's state (momentum, Adam moments) at each new task.
    #[arg(long)]
    pub reset_optimizer: bool,
    /// When the replay generator observes a task's samples and EWC, online EWC or MAS
    /// estimate importance: `after-task` (one pass over the task's samples once it has
    /// trained) or `online` (every real row as its batch is drawn: what a deployed
    /// device, and `edgecl run`, does).
    #[arg(long, value_enum, default_value = "after-task")]
    pub observe: Observe,
    /// PackNet: fraction of each layer's free weights freed again after each task (the
    /// task keeps the largest-magnitude rest).
    #[arg(long, default_value_t = 0.75)]
    pub prune_ratio: f32,
    /// PackNet: updates retraining a task's kept weights after pruning (default: a fifth
    /// of the task's updates).
    #[arg(long)]
    pub retrain_iters: Option<usize>,
    /// Progressive: hidden units of each column (default: the widest at which a column per
    /// task fits the budget; the plan then reserves every column that fits).
    #[arg(long)]
    pub column_width: Option<usize>,
    /// Replay: replayed samples of old classes per real sample in each batch, or
    /// `balanced` (old classes seen over the task's classes, so every class seen weighs
    /// the same).
    #[arg(long, default_value = "balanced", value_parser = parse_ratio)]
    #[serde(with = "ratio_text")]
    pub replay_ratio: ReplayRatio,
    /// Replay: the generator kept of old classes.
    #[arg(long, value_enum, default_value = "gaussian")]
    pub generator: GeneratorChoice,
    /// Replay, Gaussian generator: principal directions kept per class (0: diagonal).
    #[arg(long, default_value_t = 4)]
    pub generator_rank: usize,
    /// Replay, buffer: rows kept (default: as many as fit the bytes of the Gaussian
    /// generator of --generator-rank).
    #[arg(long)]
    pub buffer_rows: Option<usize>,
    /// Replay, VAE: hidden units of encoder and decoder [400 literature, 32 edge].
    #[arg(long)]
    pub vae_hidden: Option<usize>,
    /// Replay, VAE: width of the code [100 literature, 8 edge].
    #[arg(long)]
    pub vae_latent: Option<usize>,
    /// Replay: learn replayed samples from the head as it was after the last task, its
    /// outputs softened by this temperature [2 when given without a value], instead of
    /// their labels (costs a copy of the head).
    #[arg(long, num_args = 0..=1, default_missing_value = "2")]
    pub distill: Option<f32>,
    /// The frozen backbone whose features feed the edge head: a shipped model's name
    /// (compiled in), a model folder holding backbone.onnx, or `none` for 2x2-pooled
    /// pixels [fashion-cnn].
    #[cfg(feature = "onnx")]
    #[arg(long)]
    pub model: Option<String>,
    /// An ONNX backbone file (float input [N, sample width], output [N, features]),
    /// overriding --model's.
    #[cfg(feature = "onnx")]
    #[arg(long)]
    pub backbone: Option<PathBuf>,
}

/// Where the edge head's features come from.
pub enum Source {
    /// The protocol's own: pixels (literature) or 2x2-pooled pixels (edge).
    Protocol,
    /// A frozen ONNX backbone.
    #[cfg(feature = "onnx")]
    Backbone(edgecl::host::onnx::Backbone),
}

impl Shape {
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    pub fn kind(&self) -> Kind {
        self.scenario
    }

    pub fn setting(&self) -> Setting {
        match (self.setting, &self.tasks_by) {
            (Some(s), _) => s,
            (None, Some(_)) => Setting::DomainIl,
            (None, None) => Setting::ClassIl,
        }
    }

    pub fn board(&self) -> Result<Board> {
        Board::load(self.board.as_deref().unwrap_or(self.protocol().default_board()))
    }

    /// `(iters, batch, optimizer, kernels)` after defaults.
    pub fn training(&self) -> (usize, usize, Optimizer, Kernels) {
        let p = self.protocol();
        let (iters, batch, default_opt) = p.defaults(self.kind());
        let lr = self
            .lr
            .unwrap_or(simulate::default_lr(p, self.kind(), self.strategy.get()));
        let optimizer = match (self.optimizer, default_opt) {
            (Some(OptimizerArg::Adam), _) | (None, Optimizer::Adam { .. }) => Optimizer::adam(lr),
            (Some(OptimizerArg::Sgd), _) | (None, Optimizer::Sgd { .. }) => Optimizer::Sgd {
                lr,
                momentum: self.momentum,
            },
        };
        let kernels = self.kernels.unwrap_or(p.kernels());
        (iters, self.batch.unwrap_or(batch), optimizer, kernels)
    }

    pub fn options(&self, length: Length, progress: bool, data: String) -> Result<Options> {
        let board = self.board()?;
        let (_, batch, optimizer, kernels) = self.training();
        Ok(Options {
            protocol: self.protocol(),
            strategy: self.strategy.get(),
            budget: self.budget.unwrap_or(board.budget()),
            board,
            length,
            batch,
            optimizer,
            hidden: self.hidden,
            kernels,
            seed: self.seed,
            progress,
            data,
            backbone: None,
            penalty: self.penalty(self.lambdas().first().copied().unwrap_or(1.0)),
            reset_optimizer: self.reset_optimizer,
            observe: self.observe,
            packnet: PackNetOptions {
                prune_ratio: self.prune_ratio,
                retrain_iters: self.retrain_iters.unwrap_or(match length {
                    Length::Iters(n) => n / 5,
                    Length::Epochs(_) => self.training().0 / 5,
                }),
            },
            column_width: self.column_width,
            replay: ReplayOptions {
                generator: self.generator,
                ratio: self.replay_ratio,
                rank: self.generator_rank,
                // A task's classes are observed together; split tasks hold their own.
                slots: matches!(self.scenario, Kind::Split).then_some(self.classes_per_task),
                buffer_rows: self.buffer_rows,
                vae_hidden: self.vae_hidden,
                vae_latent: self.vae_latent,
                distill: self.distill,
            },
        })
    }

    /// The penalty's settings with strength `lambda`.
    pub fn penalty(&self, lambda: f32) -> PenaltyOptions {
        PenaltyOptions {
            lambda,
            gamma: self.gamma,
            xi: self.xi,
            storage: match self.storage {
                StorageArg::F32 => Storage::F32,
                StorageArg::Compact => Storage::Compact(self.quant),
            },
            fisher: self.fisher,
            samples: self.importance_samples,
        }
    }

    /// The lambdas given, or the strategy's default.
    pub fn lambdas(&self) -> Vec<f32> {
        match (&self.lambda, self.strategy.get().penalty()) {
            (Some(l), _) if !l.is_empty() => l.clone(),
            (_, Some(kind)) => vec![simulate::default_lambda(self.protocol(), self.kind(), kind)],
            _ => vec![1.0],
        }
    }

    /// The features the learner sees: with the edge protocol, the shipped backbone unless
    /// --model or --backbone says otherwise.
    pub fn source(&self) -> Result<Source> {
        self.source_for(None)
    }

    /// [`Shape::source`] for samples of `sample_shape`: without --model or --backbone,
    /// the first shipped backbone that takes samples of that shape.
    pub fn source_for(&self, sample_shape: Option<&[usize]>) -> Result<Source> {
        #[cfg(feature = "onnx")]
        if let Some((bytes, name)) = self.onnx_bytes_for(sample_shape)? {
            return Ok(Source::Backbone(edgecl::host::onnx::Backbone::from_bytes(
                &bytes, &name,
            )?));
        }
        let _ = sample_shape;
        Ok(Source::Protocol)
    }

    /// The ONNX bytes of the backbone `--backbone` or `--model` names, and what errors call
    /// it (`None`: the protocol's own features).
    #[cfg(feature = "onnx")]
    pub fn onnx_bytes(&self) -> Result<Option<(std::borrow::Cow<'static, [u8]>, String)>> {
        self.onnx_bytes_for(None)
    }

    /// [`Shape::onnx_bytes`] for samples of `sample_shape` (`None`: 28x28 images).
    #[cfg(feature = "onnx")]
    pub fn onnx_bytes_for(
        &self,
        sample_shape: Option<&[usize]>,
    ) -> Result<Option<(std::borrow::Cow<'static, [u8]>, String)>> {
        use edgecl::host::onnx;
        let edge = self.protocol() == Protocol::Edge;
        if !edge && (self.backbone.is_some() || self.model.is_some()) {
            bail!(
                "--backbone and --model feed the edge protocol's head; the literature protocol trains the whole network on pixels"
            );
        }
        let read = |p: &Path| -> Result<Option<(std::borrow::Cow<'static, [u8]>, String)>> {
            let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            Ok(Some((bytes.into(), p.display().to_string())))
        };
        if let Some(path) = &self.backbone {
            return read(path);
        }
        let model = match self.model.as_deref() {
            Some(m) => m,
            None if edge => match sample_shape {
                None => onnx::DEFAULT_MODEL,
                Some(shape) => match onnx::shipped_for(shape) {
                    Some(m) => m.name,
                    None => bail!(
                        "no shipped backbone takes samples of shape {shape:?} (shipped: {}): pass --model none \
                         (the samples themselves, pooled), --model DIR or --backbone FILE (`edgecl train` writes one)",
                        onnx::SHIPPED
                            .iter()
                            .map(|m| format!("{} {:?}", m.name, m.sample_shape))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                },
            },
            None => return Ok(None),
        };
        if model == "none" {
            return Ok(None);
        }
        let dir = Path::new(model);
        if dir.is_dir() {
            return read(&dir.join("backbone.onnx"));
        }
        match onnx::shipped(model) {
            Some(bytes) => Ok(Some((bytes.into(), model.to_string()))),
            None => bail!(
                "--model {model}: no such folder and no shipped model of that name (shipped: {}; `none` for pooled pixels)",
                onnx::SHIPPED.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    pub fn spec(&self, task_order: Option<Vec<usize>>, class_order: Option<ClassOrder>) -> Spec {
        Spec {
            class_order: class_order.unwrap_or(self.protocol().class_order()),
            kind: self.kind(),
            setting: self.setting(),
            tasks: self.tasks,
            classes_per_task: self.classes_per_task,
            task_order,
            seed: self.seed,
            features: self.protocol().features(),
            tasks_by: self.tasks_by.clone(),
        }
    }
}

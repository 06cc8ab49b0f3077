//! `edgecl`: plan a learner for a board, and simulate continual learning under its budget.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use edgecl::host::board::{parse_bytes, Board, BUILTIN};
use edgecl::host::idx::{load_split, Split};
use edgecl::host::report::{memory_table, ComponentBytes, LambdaTrial};
use edgecl::host::scenario::{ClassOrder, Kind, Scenario, Setting, Spec};
use edgecl::host::simulate::{
    self, GeneratorChoice, Length, Observe, Options, PackNetOptions, PenaltyOptions, Protocol, ReplayOptions,
    ReplayRatio, Strategy,
};
use edgecl::{FisherLabels, Kernels, LayerDims, LearnerConfig, Optimizer, Plan, Quant, Storage};

/// Share of each class's training samples a `--lambda` list holds out to choose on.
const VALIDATION_FRACTION: f64 = 0.1;
mod cli;

use serde::{Deserialize, Serialize};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "edgecl",
    version,
    about = "Continual learning on small devices inside one fixed byte arena"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a continual-learning scenario on the core under a board's budget and report
    /// the accuracy matrix, forgetting and memory.
    Simulate(SimulateArgs),
    /// Print a learner's bytes per component against a board's budget (exit status 1
    /// when it does not fit).
    Plan(PlanArgs),
    /// List the shipped board profiles.
    Boards,
    /// Write the flash images the firmware embeds: the int8 backbone (from an ONNX model
    /// of dense layers) and the labelled sample stream (from MNIST).
    #[cfg(feature = "onnx")]
    DeviceData(DeviceDataArgs),
    /// Run a grid of boards x scenarios x settings x strategies x budgets x seeds, each cell
    /// planned to the largest learner that fits its budget (the widest head; a generator
    /// takes the largest size that leaves the head 8 hidden units); reports land in
    /// OUT/cells/ (a killed sweep resumes where it stopped), all cells and the summary in
    /// OUT/sweep.json, plots in OUT/plots/, the page in OUT/report.html. With --slurm the
    /// cells run as a Slurm job array and a job after it draws the report; --resubmit DIR
    /// sends the missing and failed cells again; --report DIR draws the report from the
    /// cells there. A --lambda list is not swept (its first value is taken).
    Sweep(Box<cli::sweep::SweepArgs>),
    /// Run one cell of a sweep's folder (its line INDEX of DIR/cells.txt, from 0) and
    /// write its report into DIR/cells/; what each task of a Slurm job array runs. A cell
    /// with a report is not run again; exit status 1 when the run failed.
    SweepCell(cli::sweep::SweepCellArgs),
    /// Make an Ed25519 key pair for signing device images: KEY (the secret seed, hex,
    /// readable by its owner only) and KEY.pub (the public key the firmware compiles in).
    Keygen {
        /// Where to write the secret key (the public key goes to the same path + .pub).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a signed device image for a board: the learner config, the head's initial
    /// weights and, for microcontrollers, the int8 backbone.
    #[cfg(feature = "onnx")]
    Export(ExportArgs),
    /// Train a backbone on the host (burn, CPU) and write it as a model folder:
    /// backbone.onnx, head.json and MODEL.md.
    #[cfg(feature = "train")]
    Train(TrainArgs),
    /// Deploy on a Linux board: take samples as they come (JSON lines on standard input or
    /// from a file, or an IDX folder as the simulator's stream), predict each through
    /// tract and the head, learn from the labelled ones in the board's arena, and keep
    /// what was learned in a state folder (checkpoints every N updates, at task ends and on
    /// SIGTERM/SIGINT; a restart goes on where it stopped).
    #[cfg(feature = "onnx")]
    Run(cli::run::RunArgs),
}

#[cfg(feature = "train")]
#[derive(Clone, Copy, Debug, ValueEnum)]
enum ArchArg {
    /// Two 3x3 convolutions with max pooling, then a dense feature layer.
    Cnn,
    /// Two dense layers.
    Mlp,
}

#[cfg(feature = "train")]
#[derive(Clone, Copy, Debug, ValueEnum)]
enum DeviceArg {
    /// burn's pure-Rust CPU device.
    Cpu,
    /// The default GPU adapter through wgpu (build with --features gpu).
    Wgpu,
}

#[cfg(feature = "train")]
#[derive(Args)]
struct TrainArgs {
    /// Folder of IDX files to train on (default: Debian's dataset-fashion-mnist,
    /// /usr/share/datasets/fashion-mnist).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Backbone family.
    #[arg(long, value_enum, default_value = "cnn")]
    arch: ArchArg,
    /// Width of the feature layer the device's head sees.
    #[arg(long, default_value_t = 256)]
    features: usize,
    /// Hidden width of the MLP's first layer.
    #[arg(long, default_value_t = 256)]
    hidden: usize,
    /// Output channels of the CNN's 3x3 convolutions (each followed by ReLU and a 2x2
    /// max-pool), e.g. 8,16.
    #[arg(long, value_delimiter = ',', default_value = "16,32")]
    channels: Vec<usize>,
    /// Training samples (the first ones of the training split) the device image's
    /// activation ranges are calibrated on (calibration.json).
    #[arg(long, default_value_t = 2000)]
    calibration: usize,
    /// Passes over the training set.
    #[arg(long, default_value_t = 8)]
    epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Seed of initialisation, validation split and batch order.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Train (and test) on these classes only, e.g. 0,1,2,3,4 (the device learns the rest).
    #[arg(long, value_delimiter = ',')]
    classes: Option<Vec<u16>>,
    /// Training samples held out to measure validation accuracy after each epoch.
    #[arg(long, default_value_t = 5000)]
    validation: usize,
    /// Where burn trains: `cpu` (pure Rust, the default) or `wgpu` (a GPU through
    /// Vulkan/Metal/DirectX; needs the `gpu` feature).
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
    /// Training steps averaged into one point of train.json's loss curve.
    #[arg(long, default_value_t = 50)]
    loss_every: usize,
    /// Model folder to write (e.g. models/fashion-cnn).
    #[arg(long)]
    out: PathBuf,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum ProtocolArg {
    /// MLP 784-400-400-10 on pixels, Adam, batch 128 (van de Ven & Tolias 2019).
    Literature,
    /// A small head sized to the board's budget, on the shipped backbone's features.
    Edge,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum ScenarioArg {
    /// Classes grouped into tasks.
    #[value(alias = "split-mnist")]
    Split,
    /// Seeded pixel permutations (first task unpermuted).
    #[value(alias = "permuted-mnist")]
    Permuted,
    /// Rotations by t*180/T degrees.
    #[value(alias = "rotated-mnist")]
    Rotated,
}

// The variant names are the CLI values (task-il, domain-il, class-il).
#[allow(clippy::enum_variant_names)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum SettingArg {
    /// Task identity given (a head per task).
    TaskIl,
    /// Shared outputs, no task identity.
    DomainIl,
    /// An output per class, no task identity.
    ClassIl,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum StorageArg {
    /// u8 importance with a per-tensor scale, f16 anchors.
    Compact,
    /// f32 importance and anchors.
    F32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum QuantArg {
    /// max * 2^(-k/8): relative precision over 32 octaves.
    Log,
    /// q * max / 255.
    Linear,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum FisherArg {
    /// The samples' own labels (empirical Fisher).
    True,
    /// Labels drawn from the model's prediction.
    Sampled,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum KernelsArg {
    /// Plain loops, the same bits on every target.
    Reference,
    /// Packed, register-blocked kernels.
    Fast,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum OptimizerArg {
    /// SGD with momentum.
    Sgd,
    /// Adam.
    Adam,
}

/// When the generator and the importance estimate see a task's samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum ObserveArg {
    /// One pass over the task's samples after it trained.
    AfterTask,
    /// Every real row as its batch is drawn.
    Online,
}

/// The replay generator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum GeneratorArg {
    /// Class-conditional Gaussian: mean, low-rank-plus-diagonal covariance per class.
    Gaussian,
    /// Conditional VAE trained with the head (deep generative replay).
    Vae,
    /// Reservoir of i8-quantised samples (the reference at the same bytes).
    Buffer,
}

/// `balanced` or a non-negative number.
fn parse_ratio(s: &str) -> std::result::Result<ReplayRatio, String> {
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
struct Shape {
    /// Network, features and defaults.
    #[arg(long, value_enum, default_value = "edge")]
    protocol: ProtocolArg,
    /// How tasks are cut from the data.
    #[arg(long, value_enum, default_value = "split")]
    scenario: ScenarioArg,
    /// Task-, domain- or class-incremental.
    #[arg(long, value_enum, default_value = "class-il")]
    setting: SettingArg,
    /// `naive` (fine-tune), `joint`, a penalty (`ewc`, `online-ewc`, `si`, `mas`),
    /// `packnet`, `packnet+PENALTY`, `progressive` (task-il), `replay` or `PENALTY+replay`.
    #[arg(long, default_value = "naive")]
    strategy: String,
    /// Board name (see `edgecl boards`) or profile file; default: netduinoplus2 for the
    /// edge protocol, raspberry-pi-4 for the literature one.
    #[arg(long)]
    board: Option<String>,
    /// Arena bytes, overriding the board's learner budget (e.g. 65536, 64k, 2m).
    #[arg(long, value_parser = parse_bytes)]
    budget: Option<usize>,
    /// Number of tasks (default: 5 split, 10 permuted, 5 rotated).
    #[arg(long)]
    tasks: Option<usize>,
    /// Classes per task (split).
    #[arg(long, default_value_t = 2)]
    classes_per_task: usize,
    /// Batch size (default: 128 literature, 32 edge).
    #[arg(long)]
    batch: Option<usize>,
    /// Optimizer [adam].
    #[arg(long, value_enum)]
    optimizer: Option<OptimizerArg>,
    /// Learning rate (default: 1e-3; 1e-4 for permuted and rotated literature, but 1e-3 for
    /// packnet and progressive there).
    #[arg(long)]
    lr: Option<f32>,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    momentum: f32,
    /// Hidden width of the edge head (default: the largest that fits the budget; 0: a
    /// linear head), or of both hidden layers of the literature network (default 400).
    #[arg(long)]
    hidden: Option<usize>,
    /// Matrix kernels (default: fast literature, reference edge, as the firmware runs).
    #[arg(long, value_enum)]
    kernels: Option<KernelsArg>,
    /// Seed of weight init, permutations and batch order.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Penalty strength lambda of ewc, online-ewc, si and mas (the penalty is
    /// lambda/2 * sum b_i (theta_i - anchor_i)^2); a list such as 1,10,100 picks the best on
    /// a validation split carved from the training data [per method, see the README].
    #[arg(long, value_delimiter = ',')]
    lambda: Option<Vec<f32>>,
    /// Online EWC's decay of the old Fisher.
    #[arg(long, default_value_t = 1.0)]
    gamma: f32,
    /// SI's damping xi.
    #[arg(long, default_value_t = 0.1)]
    xi: f32,
    /// Storage of importance and anchors: `compact` (u8 importance, f16 anchors) or `f32`.
    #[arg(long, value_enum, default_value = "compact")]
    storage: StorageArg,
    /// Quantisation of compact importance.
    #[arg(long, value_enum, default_value = "log")]
    quant: QuantArg,
    /// The Fisher's labels: the samples' `true` ones or `sampled` from the model.
    #[arg(long, value_enum, default_value = "true")]
    fisher: FisherArg,
    /// Samples of each task its importance is estimated on (ewc, online-ewc, mas).
    #[arg(long, default_value_t = 1000)]
    importance_samples: usize,
    /// Clear the optimizer's state (momentum, Adam moments) at each new task.
    #[arg(long)]
    reset_optimizer: bool,
    /// When the replay generator observes a task's samples and EWC, online EWC or MAS
    /// estimate importance: `after-task` (one pass over the task's samples once it has
    /// trained) or `online` (every real row as its batch is drawn: what a deployed
    /// device, and `edgecl run`, does).
    #[arg(long, value_enum, default_value = "after-task")]
    observe: ObserveArg,
    /// PackNet: fraction of each layer's free weights freed again after each task (the
    /// task keeps the largest-magnitude rest).
    #[arg(long, default_value_t = 0.75)]
    prune_ratio: f32,
    /// PackNet: updates retraining a task's kept weights after pruning (default: a fifth
    /// of the task's updates).
    #[arg(long)]
    retrain_iters: Option<usize>,
    /// Progressive: hidden units of each column (default: the widest at which a column per
    /// task fits the budget; the plan then reserves every column that fits).
    #[arg(long)]
    column_width: Option<usize>,
    /// Replay: replayed samples of old classes per real sample in each batch, or
    /// `balanced` (old classes seen over the task's classes, so every class seen weighs
    /// the same).
    #[arg(long, default_value = "balanced", value_parser = parse_ratio)]
    #[serde(with = "ratio_text")]
    replay_ratio: ReplayRatio,
    /// Replay: the generator kept of old classes.
    #[arg(long, value_enum, default_value = "gaussian")]
    generator: GeneratorArg,
    /// Replay, Gaussian generator: principal directions kept per class (0: diagonal).
    #[arg(long, default_value_t = 4)]
    generator_rank: usize,
    /// Replay, buffer: rows kept (default: as many as fit the bytes of the Gaussian
    /// generator of --generator-rank).
    #[arg(long)]
    buffer_rows: Option<usize>,
    /// Replay, VAE: hidden units of encoder and decoder [400 literature, 32 edge].
    #[arg(long)]
    vae_hidden: Option<usize>,
    /// Replay, VAE: width of the code [100 literature, 8 edge].
    #[arg(long)]
    vae_latent: Option<usize>,
    /// Replay: learn replayed samples from the head as it was after the last task, its
    /// outputs softened by this temperature [2 when given without a value], instead of
    /// their labels (costs a copy of the head).
    #[arg(long, num_args = 0..=1, default_missing_value = "2")]
    distill: Option<f32>,
    /// The frozen backbone whose features feed the edge head: a shipped model's name
    /// (compiled in), a model folder holding backbone.onnx, or `none` for 2x2-pooled
    /// pixels [fashion-cnn].
    #[cfg(feature = "onnx")]
    #[arg(long)]
    model: Option<String>,
    /// An ONNX backbone file (float input [N, sample width], output [N, features]),
    /// overriding --model's.
    #[cfg(feature = "onnx")]
    #[arg(long)]
    backbone: Option<PathBuf>,
}

/// Where the edge head's features come from.
enum Source {
    /// The protocol's own: pixels (literature) or 2x2-pooled pixels (edge).
    Protocol,
    /// A frozen ONNX backbone.
    #[cfg(feature = "onnx")]
    Backbone(edgecl::host::onnx::Backbone),
}

#[derive(Args)]
struct SimulateArgs {
    #[command(flatten)]
    shape: Shape,
    /// Folder of IDX files (train-*/t10k-*, optionally .gz); default: the shipped MNIST.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Updates per task (default: 2000 split / 5000 permuted literature; 6000 edge).
    #[arg(long, conflicts_with = "epochs")]
    iters: Option<usize>,
    /// Passes per task over the data it trains on (its own; for joint, all seen so far),
    /// instead of --iters.
    #[arg(long)]
    epochs: Option<f64>,
    /// Order of the tasks, e.g. 4,3,2,1,0.
    #[arg(long, value_delimiter = ',')]
    task_order: Option<Vec<usize>>,
    /// Split: `sorted` ({0,1}, {2,3}, ...), `random` (drawn from the seed) or a list such as
    /// 1,7,0,3,...; default: random for the literature protocol, sorted for the edge one.
    #[arg(long, value_parser = parse_class_order)]
    class_order: Option<ClassOrder>,
    /// Test on a validation split carved from the training data (10% of each class's
    /// samples, seeded) instead of the test set: for choosing any setting.
    #[arg(long)]
    validation: bool,
    /// Write the report as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    /// Run a board's firmware loop instead of a scenario: DIR is a board folder with
    /// firmware (e.g. boards/netduinoplus2); its firmware.toml, learner budget and the
    /// flash images in boards/flash/ are used, and the lines the firmware prints are
    /// printed, bit for bit.
    #[arg(long, value_name = "DIR")]
    firmware: Option<PathBuf>,
    /// With --firmware: this config file instead of DIR/firmware.toml.
    #[arg(long, value_name = "FILE", requires = "firmware")]
    firmware_config: Option<PathBuf>,
}

#[cfg(feature = "onnx")]
#[derive(Args)]
struct DeviceDataArgs {
    /// Model folder with a backbone.onnx and the calibration.json `edgecl train` writes
    /// beside it (convolutions, 2x2 max-pools, dense layers, ReLU).
    #[arg(long, default_value = "models/fashion-cnn8")]
    model: PathBuf,
    /// Folder of IDX files the stream is drawn from; default: the shipped MNIST.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Training samples per task (Split-MNIST's five tasks of two digits).
    #[arg(long, default_value_t = 300)]
    train_per_task: usize,
    /// Held-out test samples per task.
    #[arg(long, default_value_t = 60)]
    test_per_task: usize,
    /// Bits per stored pixel: 4 or 8.
    #[arg(long, default_value_t = 4)]
    bits: u8,
    /// Seed of the samples drawn and their order.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Folder to write backbone.bin and stream.bin to.
    #[arg(long, default_value = "boards/flash")]
    out: PathBuf,
}

#[cfg(feature = "onnx")]
#[derive(Args)]
struct ExportArgs {
    /// Board profile (its learner budget and kind: mcu images carry the backbone).
    #[arg(long)]
    board: String,
    /// Model folder with a backbone.onnx (for mcu boards also its calibration.json: the
    /// int8 image is made from both).
    #[arg(long, default_value = "models/fashion-cnn8")]
    model: PathBuf,
    /// Device config text [boards/BOARD/firmware.toml]; for a Linux board, the run config
    /// (TOML; see `edgecl run --help` and the README's deploy guide).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Secret key from `edgecl keygen`.
    #[arg(long)]
    sign: PathBuf,
    /// Image file to write.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct PlanArgs {
    #[command(flatten)]
    shape: Shape,
    /// A learner config TOML (dims, optimizer, lr, momentum, batch_size, kernels,
    /// max_tasks) instead of the protocol's network.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// `--config` file for `plan`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    dims: Vec<usize>,
    #[serde(default = "default_optimizer")]
    optimizer: String,
    #[serde(default = "default_lr")]
    lr: f32,
    #[serde(default = "default_momentum")]
    momentum: f32,
    #[serde(default = "default_batch")]
    batch_size: usize,
    #[serde(default = "default_kernels")]
    kernels: String,
    #[serde(default = "default_max_tasks")]
    max_tasks: usize,
}

fn default_optimizer() -> String {
    "sgd".into()
}
fn default_lr() -> f32 {
    0.05
}
fn default_momentum() -> f32 {
    0.9
}
fn default_batch() -> usize {
    32
}
fn default_kernels() -> String {
    "reference".into()
}
fn default_max_tasks() -> usize {
    edgecl::host::scenario::MAX_TASKS
}

fn parse_class_order(s: &str) -> std::result::Result<ClassOrder, String> {
    match s.trim() {
        "sorted" => Ok(ClassOrder::Sorted),
        "random" => Ok(ClassOrder::Random),
        list => list
            .split(',')
            .map(|c| c.trim().parse::<u16>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map(ClassOrder::Given)
            .map_err(|_| format!("`{s}` is not `sorted`, `random` or a list of classes like 1,0,3,2")),
    }
}

impl Shape {
    fn protocol(&self) -> Protocol {
        match self.protocol {
            ProtocolArg::Literature => Protocol::Literature,
            ProtocolArg::Edge => Protocol::Edge,
        }
    }

    fn kind(&self) -> Kind {
        match self.scenario {
            ScenarioArg::Split => Kind::Split,
            ScenarioArg::Permuted => Kind::Permuted,
            ScenarioArg::Rotated => Kind::Rotated,
        }
    }

    fn setting(&self) -> Setting {
        match self.setting {
            SettingArg::TaskIl => Setting::TaskIl,
            SettingArg::DomainIl => Setting::DomainIl,
            SettingArg::ClassIl => Setting::ClassIl,
        }
    }

    fn board(&self) -> Result<Board> {
        Board::load(self.board.as_deref().unwrap_or(self.protocol().default_board()))
    }

    /// `(iters, batch, optimizer, kernels)` after defaults.
    fn training(&self) -> (usize, usize, Optimizer, Kernels) {
        let p = self.protocol();
        let (iters, batch, default_opt) = p.defaults(self.kind());
        let strategy = Strategy::parse(&self.strategy).unwrap_or(Strategy::Naive);
        let lr = self.lr.unwrap_or(simulate::default_lr(p, self.kind(), strategy));
        let optimizer = match (self.optimizer, default_opt) {
            (Some(OptimizerArg::Adam), _) | (None, Optimizer::Adam { .. }) => Optimizer::adam(lr),
            (Some(OptimizerArg::Sgd), _) | (None, Optimizer::Sgd { .. }) => Optimizer::Sgd {
                lr,
                momentum: self.momentum,
            },
        };
        let kernels = match self.kernels {
            Some(KernelsArg::Reference) => Kernels::Reference,
            Some(KernelsArg::Fast) => Kernels::Fast,
            None => p.kernels(),
        };
        (iters, self.batch.unwrap_or(batch), optimizer, kernels)
    }

    fn options(&self, length: Length, progress: bool, data: String) -> Result<Options> {
        let board = self.board()?;
        let (_, batch, optimizer, kernels) = self.training();
        Ok(Options {
            protocol: self.protocol(),
            strategy: Strategy::parse(&self.strategy)?,
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
            observe: match self.observe {
                ObserveArg::AfterTask => Observe::AfterTask,
                ObserveArg::Online => Observe::Online,
            },
            packnet: PackNetOptions {
                prune_ratio: self.prune_ratio,
                retrain_iters: self.retrain_iters.unwrap_or(match length {
                    Length::Iters(n) => n / 5,
                    Length::Epochs(_) => self.training().0 / 5,
                }),
            },
            column_width: self.column_width,
            replay: ReplayOptions {
                generator: match self.generator {
                    GeneratorArg::Gaussian => GeneratorChoice::Gaussian,
                    GeneratorArg::Vae => GeneratorChoice::Vae,
                    GeneratorArg::Buffer => GeneratorChoice::Buffer,
                },
                ratio: self.replay_ratio,
                rank: self.generator_rank,
                // A task's classes are observed together; split tasks hold their own.
                slots: matches!(self.scenario, ScenarioArg::Split).then_some(self.classes_per_task),
                buffer_rows: self.buffer_rows,
                vae_hidden: self.vae_hidden,
                vae_latent: self.vae_latent,
                distill: self.distill,
            },
        })
    }

    /// The penalty's settings with strength `lambda`.
    fn penalty(&self, lambda: f32) -> PenaltyOptions {
        PenaltyOptions {
            lambda,
            gamma: self.gamma,
            xi: self.xi,
            storage: match (self.storage, self.quant) {
                (StorageArg::F32, _) => Storage::F32,
                (StorageArg::Compact, QuantArg::Log) => Storage::Compact(Quant::Log),
                (StorageArg::Compact, QuantArg::Linear) => Storage::Compact(Quant::Linear),
            },
            fisher: match self.fisher {
                FisherArg::True => FisherLabels::True,
                FisherArg::Sampled => FisherLabels::Sampled,
            },
            samples: self.importance_samples,
        }
    }

    /// The lambdas given, or the strategy's default.
    fn lambdas(&self) -> Vec<f32> {
        match (&self.lambda, Strategy::parse(&self.strategy)) {
            (Some(l), _) if !l.is_empty() => l.clone(),
            (_, Ok(s)) if s.penalty().is_some() => s
                .penalty()
                .map(|kind| simulate::default_lambda(self.protocol(), self.kind(), kind))
                .into_iter()
                .collect(),
            _ => vec![1.0],
        }
    }

    /// The features the learner sees: with the edge protocol, the shipped backbone unless
    /// --model or --backbone says otherwise.
    fn source(&self) -> Result<Source> {
        #[cfg(feature = "onnx")]
        if let Some((bytes, name)) = self.onnx_bytes()? {
            return Ok(Source::Backbone(edgecl::host::onnx::Backbone::from_bytes(
                &bytes, &name,
            )?));
        }
        Ok(Source::Protocol)
    }

    /// The ONNX bytes of the backbone `--backbone` or `--model` names, and what errors call
    /// it (`None`: the protocol's own features).
    #[cfg(feature = "onnx")]
    fn onnx_bytes(&self) -> Result<Option<(std::borrow::Cow<'static, [u8]>, String)>> {
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
            None if edge => onnx::DEFAULT_MODEL,
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
                onnx::SHIPPED.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    fn spec(&self, task_order: Option<Vec<usize>>, class_order: Option<ClassOrder>) -> Spec {
        Spec {
            class_order: class_order.unwrap_or(self.protocol().class_order()),
            kind: self.kind(),
            setting: self.setting(),
            tasks: self.tasks,
            classes_per_task: self.classes_per_task,
            task_order,
            seed: self.seed,
            features: self.protocol().features(),
        }
    }
}

fn default_data() -> PathBuf {
    let local = Path::new("data/mnist");
    if local.exists() {
        local.to_path_buf()
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist")
    }
}

fn simulate(args: SimulateArgs) -> Result<()> {
    if let Some(dir) = &args.firmware {
        let fw = edgecl::host::device::FirmwareDir::load(dir, args.firmware_config.as_deref())?;
        print!("{}", fw.simulate()?);
        return Ok(());
    }
    let dir = args.data.clone().unwrap_or_else(default_data);
    let train = load_split(&dir, Split::Train, None)?;
    let test = load_split(&dir, Split::Test, Some(train.classes))?;
    let source = args.shape.source()?;
    let (default_iters, ..) = args.shape.training();
    let length = match (args.iters, args.epochs) {
        (Some(i), _) => Length::Iters(i),
        (None, Some(e)) => Length::Epochs(e),
        (None, None) => Length::Iters(default_iters),
    };
    let progress = !args.quiet && std::io::stderr().is_terminal();
    let mut opts = args.shape.options(length, progress, dir.display().to_string())?;
    opts.backbone = match &source {
        Source::Protocol => None,
        #[cfg(feature = "onnx")]
        Source::Backbone(b) => Some(b.name().to_string()),
    };
    // The scenario over `train` and `test`, its features from the source; the learner's
    // plan is checked before the backbone runs.
    let build = |train, test| -> Result<Scenario> {
        #[allow(unused_mut)]
        let mut spec = args.shape.spec(args.task_order.clone(), args.class_order.clone());
        match &source {
            Source::Protocol => {
                let s = Scenario::build(spec, train, test)?;
                simulate::setup(&opts, s.input_width(), s.outputs(), s.tasks.len(), s.spec.setting)?;
                Ok(s)
            }
            #[cfg(feature = "onnx")]
            Source::Backbone(b) => {
                spec.features = edgecl::host::scenario::Features::Pixels;
                let s = Scenario::build(spec, train, test)?;
                simulate::setup(&opts, b.feature_width(), s.outputs(), s.tasks.len(), s.spec.setting)?;
                s.with_backbone(b)
            }
        }
    };
    let scenario = if args.validation {
        let (fit, held_out) = train.split_validation(VALIDATION_FRACTION, args.shape.seed);
        build(fit, held_out)?
    } else {
        build(train, test)?
    };
    let lambdas = args.shape.lambdas();
    if args.shape.lambda.is_some() && opts.strategy.penalty().is_none() {
        bail!("--lambda is the strength of a penalty: use it with --strategy ewc, online-ewc, si or mas");
    }
    let mut sweep = Vec::new();
    if lambdas.len() > 1 {
        // Pick lambda on a validation split of the training data, never on the test set.
        let (fit, held_out) = scenario.train.split_validation(VALIDATION_FRACTION, args.shape.seed);
        let vscenario = build(fit, held_out)?;
        for &lambda in &lambdas {
            let mut o = opts.clone();
            o.penalty = args.shape.penalty(lambda);
            let r = simulate::run(&o, &vscenario)?;
            eprintln!("lambda {lambda}: validation average accuracy {:.2}", r.avg_accuracy);
            sweep.push(LambdaTrial {
                lambda,
                validation_avg_accuracy: r.avg_accuracy,
            });
        }
        let best = sweep
            .iter()
            .fold(None::<&LambdaTrial>, |b, t| match b {
                Some(b) if b.validation_avg_accuracy >= t.validation_avg_accuracy => Some(b),
                _ => Some(t),
            })
            .map_or(lambdas[0], |t| t.lambda);
        eprintln!(
            "chosen lambda {best} (validation: {:.0}% of each class's training samples held out)",
            VALIDATION_FRACTION * 100.0
        );
        opts.penalty = args.shape.penalty(best);
    }
    let mut report = simulate::run(&opts, &scenario)?;
    report.lambda_sweep = sweep;
    if args.validation {
        report.evaluation = "validation".to_string();
    }
    print!("{}", report.to_table());
    if let Some(path) = args.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(feature = "train")]
fn train(args: TrainArgs) -> Result<()> {
    use edgecl::host::onnx::{max_abs_difference, Backbone};
    use edgecl::host::train::{self, Arch, TrainConfig};
    use sha2::{Digest, Sha256};
    use std::fmt::Write as _;
    let dir = match args.data.clone() {
        Some(d) => d,
        None => {
            let debian = PathBuf::from("/usr/share/datasets/fashion-mnist");
            if !debian.exists() {
                bail!(
                    "no --data given and Debian's dataset-fashion-mnist is not installed ({})",
                    debian.display()
                );
            }
            debian
        }
    };
    let mut train_set = load_split(&dir, Split::Train, None)?;
    let mut test_set = load_split(&dir, Split::Test, Some(train_set.classes))?;
    if let Some(classes) = &args.classes {
        if let Some(c) = classes.iter().find(|&&c| usize::from(c) >= train_set.classes) {
            bail!(
                "--classes: class {c} is not in {} (classes 0 to {})",
                dir.display(),
                train_set.classes - 1
            );
        }
        train_set = train_set.only_classes(classes);
        test_set = test_set.only_classes(classes);
    }
    let cfg = TrainConfig {
        arch: match args.arch {
            ArchArg::Cnn => Arch::Cnn,
            ArchArg::Mlp => Arch::Mlp,
        },
        features: args.features,
        hidden: args.hidden,
        channels: args.channels.clone(),
        calibration: args.calibration,
        epochs: args.epochs,
        batch: args.batch,
        lr: args.lr,
        seed: args.seed,
        validation: args.validation,
        device: match args.device {
            DeviceArg::Cpu => train::TrainDevice::Cpu,
            #[cfg(feature = "gpu")]
            DeviceArg::Wgpu => train::TrainDevice::Wgpu,
            #[cfg(not(feature = "gpu"))]
            DeviceArg::Wgpu => bail!(
                "--device wgpu: this edgecl was built without the `gpu` feature (cargo build --release --features gpu)"
            ),
        },
        loss_every: args.loss_every,
        progress: !args.quiet && std::io::stderr().is_terminal(),
    };
    let started = std::time::Instant::now();
    let trained = train::train(&cfg, &train_set, &test_set)?;
    let seconds = started.elapsed().as_secs_f64();
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let onnx_path = args.out.join("backbone.onnx");
    std::fs::write(&onnx_path, trained.backbone.to_onnx()?)
        .with_context(|| format!("writing {}", onnx_path.display()))?;
    // The exported file, run by tract, must give the trainer's features.
    let check = test_set.x.slice(ndarray::s![..trained.check_samples, ..]);
    let tract = Backbone::load(&onnx_path)?.features(check)?;
    let err = max_abs_difference(&tract, &trained.check_features);
    let scale = trained
        .check_features
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()))
        .max(1.0);
    if err > 1e-5 * scale {
        bail!(
            "{}: tract's features differ from the trainer's by {err} (largest feature {scale})",
            onnx_path.display()
        );
    }
    let head = serde_json::json!({
        "classes": trained.head_biases.len(),
        "features": trained.head_weights.len() / trained.head_biases.len().max(1),
        "layout": "weights are classes x features, row-major",
        "weights": trained.head_weights,
        "biases": trained.head_biases,
    });
    let head_path = args.out.join("head.json");
    std::fs::write(&head_path, serde_json::to_string(&head)? + "\n")
        .with_context(|| format!("writing {}", head_path.display()))?;
    let mut md = String::new();
    let arch = match cfg.arch {
        Arch::Cnn => {
            let mut text = "CNN: 1x28x28".to_string();
            let side = 28usize >> cfg.channels.len();
            for c in &cfg.channels {
                text += &format!(" -> conv3x3({c}) -> ReLU -> maxpool2");
            }
            let last = cfg.channels.last().copied().unwrap_or(1);
            format!(
                "{text} -> flatten({}) -> dense({}) -> ReLU",
                last * side * side,
                cfg.features
            )
        }
        Arch::Mlp => format!(
            "MLP: 784 -> dense({}) -> ReLU -> dense({}) -> ReLU",
            cfg.hidden, cfg.features
        ),
    };
    let _ = writeln!(
        md,
        "# {}\n",
        args.out.file_name().map_or("model".into(), |n| n.to_string_lossy())
    );
    let command: Vec<String> = std::env::args().skip(1).collect();
    let _ = writeln!(
        md,
        "Written by `edgecl {}` (edgecl {}).\n",
        command.join(" "),
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(
        md,
        "- backbone (`backbone.onnx`): {arch}; input float [N, 784], output float [N, {}]",
        cfg.features
    );
    let _ = writeln!(
        md,
        "- head (`head.json`): the pretraining classifier, dense {} -> {}",
        cfg.features,
        trained.head_biases.len()
    );
    let _ = writeln!(
        md,
        "- data: {}{} ({} training samples, {} of them held out for validation; {} test samples)",
        dir.display(),
        args.classes.as_ref().map_or(String::new(), |c| format!(
            ", classes {} only",
            c.iter().map(u16::to_string).collect::<Vec<_>>().join(",")
        )),
        train_set.len(),
        train_set.len() - trained.train_samples,
        test_set.len()
    );
    let _ = writeln!(
        md,
        "- training: {} epochs, batch {}, Adam lr {}, seed {}, device {}, {:.0} s",
        cfg.epochs,
        cfg.batch,
        cfg.lr,
        cfg.seed,
        cfg.device.name(),
        seconds
    );
    let accs: Vec<String> = trained.validation_accuracy.iter().map(|a| format!("{a:.2}")).collect();
    let _ = writeln!(md, "- validation accuracy after each epoch (%): {}", accs.join(", "));
    let _ = writeln!(md, "- test accuracy (%): {:.2}", trained.test_accuracy);
    let _ = writeln!(
        md,
        "- export check: tract's features of {} test samples are within {err:.2e} of burn's (largest feature {scale:.2})",
        trained.check_samples
    );
    let calibration_path = args.out.join(edgecl::host::device::CALIBRATION_FILE);
    let calibration = serde_json::json!({
        "about": "largest output of each device layer but the last (after ReLU and pool), f32, \
                  the u8 activation ranges of the device image (edgecl device-data, export)",
        "data": dir.display().to_string(),
        "samples": trained.calibration_samples,
        "activation_max": trained.activation_max,
    });
    std::fs::write(&calibration_path, serde_json::to_string_pretty(&calibration)? + "\n")
        .with_context(|| format!("writing {}", calibration_path.display()))?;
    let _ = writeln!(
        md,
        "- device calibration (`{}`): the largest output of each layer but the last over the first {} training \
         samples (by index, validation split excluded): {:?}",
        edgecl::host::device::CALIBRATION_FILE,
        trained.calibration_samples,
        trained.activation_max
    );
    let _ = writeln!(md, "\n| file | bytes | sha256 |\n|---|---:|---|");
    for path in [&onnx_path, &head_path, &calibration_path] {
        let bytes = std::fs::read(path)?;
        let _ = writeln!(
            md,
            "| {} | {} | `{:x}` |",
            path.file_name().map_or("".into(), |n| n.to_string_lossy()),
            bytes.len(),
            Sha256::digest(&bytes)
        );
    }
    std::fs::write(args.out.join("MODEL.md"), md)?;
    let metrics = serde_json::json!({
        "device": cfg.device.name(),
        "seconds": seconds,
        "epochs": cfg.epochs,
        "seed": cfg.seed,
        "train_samples": trained.train_samples,
        "validation_samples": train_set.len() - trained.train_samples,
        "train_loss": trained.train_loss,
        "loss_every": cfg.loss_every,
        "loss_curve": trained.loss_curve,
        "validation_accuracy": trained.validation_accuracy,
        "test_accuracy": trained.test_accuracy,
    });
    let metrics_path = args.out.join("train.json");
    std::fs::write(&metrics_path, serde_json::to_string_pretty(&metrics)? + "\n")
        .with_context(|| format!("writing {}", metrics_path.display()))?;
    println!(
        "{}: test accuracy {:.2}% after {} epochs ({:.0} s); features {}; export checked to {err:.2e}",
        args.out.display(),
        trained.test_accuracy,
        cfg.epochs,
        seconds,
        cfg.features
    );
    Ok(())
}

fn plan(args: PlanArgs) -> Result<bool> {
    let shape = &args.shape;
    let board = shape.board()?;
    let budget = shape.budget.unwrap_or(board.budget());
    let config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let f: ConfigFile = toml::from_str(&text).with_context(|| format!("learner config {}", path.display()))?;
            let optimizer = match f.optimizer.as_str() {
                "adam" => Optimizer::adam(f.lr),
                "sgd" => Optimizer::Sgd {
                    lr: f.lr,
                    momentum: f.momentum,
                },
                o => bail!("{}: optimizer `{o}` is not `sgd` or `adam`", path.display()),
            };
            let kernels = match f.kernels.as_str() {
                "reference" => Kernels::Reference,
                "fast" => Kernels::Fast,
                k => bail!("{}: kernels `{k}` is not `reference` or `fast`", path.display()),
            };
            LearnerConfig {
                dims: LayerDims::new(&f.dims)?,
                optimizer,
                batch_size: f.batch_size,
                max_tasks: f.max_tasks,
                seed: 0,
                kernels,
                penalty: None,
                packnet: None,
                generator: None,
            }
        }
        None => {
            let strategy = Strategy::parse(&shape.strategy)?;
            // The shipped data's shape: 28x28 images of 10 classes.
            let p = shape.protocol();
            let inputs = match shape.source()? {
                Source::Protocol if p == Protocol::Edge => 14 * 14,
                Source::Protocol => 28 * 28,
                #[cfg(feature = "onnx")]
                Source::Backbone(b) => b.feature_width(),
            };
            let spec = shape.spec(None, None);
            let k = if spec.kind == Kind::Split {
                spec.classes_per_task
            } else {
                10
            };
            let tasks = spec.tasks.unwrap_or(match spec.kind {
                Kind::Split => 10 / k.max(1),
                Kind::Permuted => 10,
                Kind::Rotated => 5,
            });
            let max = edgecl::host::scenario::MAX_TASKS;
            if !(1..=max).contains(&tasks) || k == 0 || k > 10 {
                bail!("{tasks} tasks of {k} classes: give 1 to {max} tasks of 1 to 10 classes");
            }
            let outputs = if spec.setting == Setting::DomainIl {
                k
            } else {
                tasks * k
            };
            let (iters, ..) = shape.training();
            let opts = shape.options(Length::Iters(iters), false, String::new())?;
            if strategy == Strategy::Progressive {
                let c = simulate::columns_config(&opts, inputs, outputs, tasks)?;
                let plan = Plan::columns(&c)?;
                println!(
                    "plan for board {} ({}), progressive columns of {:?} (input, {} hidden layer(s) of {}, \
                     classes) with lateral connections, batch {}, {:?}, {:?} kernels\n",
                    board.name,
                    board.chip,
                    [c.input, c.width, c.classes],
                    c.hidden,
                    c.width,
                    c.batch_size,
                    c.optimizer,
                    c.kernels
                );
                println!("{}", memory_table(&ComponentBytes::of_plan(&plan), budget));
                println!(
                    "progressive: the plan reserves {} columns (the most that fit), {tasks} task(s) need {tasks}; \
                     parameters per column {:?}",
                    c.max_columns,
                    (0..c.max_columns).map(|k| c.column_params(k)).collect::<Vec<_>>()
                );
                return Ok(plan.check(budget).is_ok() && tasks <= c.max_columns);
            }
            simulate::learner_config(&opts, inputs, outputs, tasks)?
        }
    };
    let plan = Plan::new(&config)?;
    let comps = ComponentBytes::of_plan(&plan);
    println!(
        "plan for board {} ({}), learner {:?}, batch {}, {:?}, {:?} kernels\n",
        board.name,
        board.chip,
        config.dims.as_slice(),
        config.batch_size,
        config.optimizer,
        config.kernels
    );
    println!("{}", memory_table(&comps, budget));
    if let Some(p) = &config.packnet {
        let bits = edgecl::learner::packnet::owner_bits(config.max_tasks)?;
        println!(
            "PackNet: a {bits}-bit owner per weight ({} bytes for {} weights); at prune ratio {} each \
             layer keeps weights for {} of the {} tasks planned ({} tasks before a layer runs out of \
             free weights)",
            plan.bytes_of(edgecl::learner::plan::names::OWNERS),
            config.dims.weight_count(),
            p.prune_ratio,
            p.tasks_that_fit(&config.dims, config.max_tasks),
            config.max_tasks,
            p.tasks_that_fit(&config.dims, 255),
        );
    }
    match plan.check(budget) {
        Ok(()) => Ok(true),
        Err(e) => {
            eprintln!("edgecl: {e}");
            Ok(false)
        }
    }
}

#[cfg(feature = "onnx")]
fn device_data(args: DeviceDataArgs) -> Result<()> {
    use edgecl::host::device::{model_backbone_image, stream_image, StreamSpec};
    let (_, bytes, backbone) = model_backbone_image(&args.model)?;
    let dir = args.data.clone().unwrap_or_else(default_data);
    let train = load_split(&dir, Split::Train, None)?;
    let test = load_split(&dir, Split::Test, Some(train.classes))?;
    let spec = StreamSpec::split(args.train_per_task, args.test_per_task, args.bits, args.seed);
    let stream = stream_image(&train, &test, &spec)?;
    let check = edgecl::host::device::check_against_tract(&bytes, &backbone, &stream)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    for (name, image) in [("backbone.bin", &backbone), ("stream.bin", &stream)] {
        let path = args.out.join(name);
        std::fs::write(&path, image).with_context(|| format!("writing {}", path.display()))?;
        println!("{}: {} bytes", path.display(), image.len());
    }
    println!(
        "int8 backbone against tract (f32 ONNX) on the stream's {} held-out samples: largest difference {:.4}, largest feature {:.3}",
        check.samples, check.max_abs_difference, check.max_feature
    );
    Ok(())
}

fn keygen(out: &std::path::Path) -> Result<()> {
    use edgecl::host::device::{keygen, to_hex};
    use std::io::Write;
    let (secret, public) = keygen();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(out)
        .with_context(|| format!("creating {} (an existing key is never overwritten)", out.display()))?;
    writeln!(f, "{}", to_hex(&secret))?;
    let mut pub_path = out.as_os_str().to_owned();
    pub_path.push(".pub");
    let mut p = options.open(&pub_path).with_context(|| {
        format!(
            "creating {} (an existing key is never overwritten)",
            std::path::Path::new(&pub_path).display()
        )
    })?;
    writeln!(p, "{}", to_hex(&public))?;
    println!(
        "secret key {} (keep it), public key {}: {}",
        out.display(),
        std::path::Path::new(&pub_path).display(),
        to_hex(&public)
    );
    Ok(())
}

#[cfg(feature = "onnx")]
fn export(args: ExportArgs) -> Result<()> {
    use edgecl::host::device::{device_image, from_hex32, model_backbone_image, public_key, to_hex};
    let board = Board::load(&args.board)?;
    let config_path = match (&args.config, board.kind.as_str()) {
        (Some(p), _) => p.clone(),
        (None, "linux") => bail!(
            "--config FILE is needed for {}: a run config (TOML: strategy, budget, hidden, ...; see edgecl run --help)",
            board.name
        ),
        (None, _) => PathBuf::from(format!("boards/{}/firmware.toml", board.name)),
    };
    let config = std::fs::read_to_string(&config_path).with_context(|| format!("reading {}", config_path.display()))?;
    let key_text = std::fs::read_to_string(&args.sign).with_context(|| format!("reading {}", args.sign.display()))?;
    let secret = from_hex32(&key_text).with_context(|| format!("{}", args.sign.display()))?;
    let onnx_path = args.model.join("backbone.onnx");
    let onnx = std::fs::read(&onnx_path).with_context(|| format!("reading {}", onnx_path.display()))?;
    let (backbone, image) = if board.kind == "mcu" {
        let (model, _, backbone) = model_backbone_image(&args.model)?;
        let image = device_image(&board, &config, &backbone, model.feature_width()?, &secret)?;
        (backbone, image)
    } else {
        let image =
            edgecl::host::runtime::linux_image(&board, &config, &onnx, &onnx_path.display().to_string(), &secret)
                .with_context(|| format!("{}", config_path.display()))?;
        (Vec::new(), image)
    };
    std::fs::write(&args.out, &image).with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "{}: {} bytes for {} ({} config, {} backbone), signed by {}",
        args.out.display(),
        image.len(),
        board.name,
        config_path.display(),
        if backbone.is_empty() {
            "no".to_string()
        } else {
            format!("{} B", backbone.len())
        },
        to_hex(&public_key(&secret))
    );
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Simulate(a) => simulate(a).map(|()| true),
        Command::Plan(a) => plan(a),
        #[cfg(feature = "train")]
        Command::Train(a) => train(a).map(|()| true),
        #[cfg(feature = "onnx")]
        Command::DeviceData(a) => device_data(a).map(|()| true),
        Command::Sweep(a) => cli::sweep::sweep(*a).map(|()| true),
        Command::SweepCell(a) => cli::sweep::sweep_cell(a),
        Command::Keygen { out } => keygen(&out).map(|()| true),
        #[cfg(feature = "onnx")]
        Command::Export(a) => export(a).map(|()| true),
        #[cfg(feature = "onnx")]
        Command::Run(a) => match cli::run::run(a) {
            Ok(0) => Ok(true),
            Ok(code) => std::process::exit(code),
            Err(e) => Err(e),
        },
        Command::Boards => {
            for (name, _) in BUILTIN {
                match Board::load(name) {
                    Ok(b) => println!(
                        "{:<22}{:<20}{:<12}{:>5} MHz  RAM {:>10}  flash {:>12}  budget {:>9}",
                        b.name, b.chip, b.core, b.clock_mhz, b.ram_bytes, b.flash_bytes, b.learner_budget_bytes
                    ),
                    Err(e) => eprintln!("edgecl: {e:#}"),
                }
            }
            Ok(true)
        }
    };
    match result {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("edgecl: {e:#}");
            std::process::exit(1);
        }
    }
}

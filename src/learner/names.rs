//! Names of the components, as they appear in plans, errors and reports.

/// Bytes the arena may skip to align its start.
pub const ALIGNMENT: &str = "alignment";
/// Dense weights of every layer.
pub const WEIGHTS: &str = "weights";
/// Biases of every layer.
pub const BIASES: &str = "biases";
/// Gradients of weights and biases.
pub const GRADIENTS: &str = "gradients";
/// Momentum or Adam moments.
pub const OPTIMIZER: &str = "optimizer state";
/// Hidden activations and logits of one batch.
pub const ACTIVATIONS: &str = "activations";
/// Two back-propagated error buffers of one batch.
pub const DELTAS: &str = "deltas";
/// Packing buffer of the fast matrix kernels.
pub const PACKING: &str = "gemm packing";
/// Importance per parameter (a slot per task for EWC).
pub const IMPORTANCE: &str = "importance";
/// Per-tensor scales of the quantised importance.
pub const SCALES: &str = "importance scales";
/// Parameter values at the end of the last task (a slot per task for EWC).
pub const ANCHORS: &str = "anchors";
/// Fisher / MAS sums over a task's samples, or SI's path integral over its updates.
pub const ACCUMULATOR: &str = "importance sums";
/// The replay generator's samples seen per class.
pub const GENERATOR_COUNTS: &str = "generator counts";
/// Gaussian generator: committed per-class means (f16).
pub const GENERATOR_MEANS: &str = "generator means";
/// Gaussian generator: committed per-class residual standard deviations (f16).
pub const GENERATOR_SPREADS: &str = "generator spreads";
/// Gaussian generator: committed per-class principal factors (i8).
pub const GENERATOR_FACTORS: &str = "generator factors";
/// Gaussian generator: one scale per committed factor.
pub const GENERATOR_SCALES: &str = "generator factor scales";
/// Gaussian generator: the class each working slot holds.
pub const GENERATOR_SLOT_CLASSES: &str = "generator slot classes";
/// Gaussian generator: per working slot, Welford's mean and M2 and the CCIPCA
/// directions (f32).
pub const GENERATOR_SLOTS: &str = "generator working slots";
/// Gaussian generator: one row of scratch.
pub const GENERATOR_SCRATCH: &str = "generator scratch";
/// Replay buffer: the kept rows (i8).
pub const BUFFER_ROWS: &str = "buffer rows";
/// Replay buffer: one scale per row.
pub const BUFFER_SCALES: &str = "buffer scales";
/// Replay buffer: one label per row.
pub const BUFFER_LABELS: &str = "buffer labels";
/// VAE: encoder and decoder weights and biases.
pub const VAE_PARAMS: &str = "vae parameters";
/// VAE: their gradients.
pub const VAE_GRADIENTS: &str = "vae gradients";
/// VAE: its optimizer's state.
pub const VAE_OPTIMIZER: &str = "vae optimizer state";
/// VAE: the decoder replayed from (a copy taken at the end of the last task).
pub const VAE_REPLAY: &str = "vae replay decoder";
/// VAE: one batch's inputs, activations, noise and deltas.
pub const VAE_ACTIVATIONS: &str = "vae activations";
/// Distillation: the copy of the head taken at the last commit.
pub const TEACHER: &str = "teacher head";
/// Distillation: the teacher's logits of one batch.
pub const TEACHER_LOGITS: &str = "teacher logits";
/// Distillation: which classes the teacher had learned at its commit (a byte each).
pub const TEACHER_CLASSES: &str = "teacher classes";
/// VAE: samples per class the replay decoder had seen at its commit.
pub const VAE_COMMITTED: &str = "vae committed counts";
/// Progressive columns: the parameters of every column the plan reserves.
pub const COLUMNS: &str = "columns";
/// PackNet's bit-packed owner task of every weight.
pub const OWNERS: &str = "packnet owners";

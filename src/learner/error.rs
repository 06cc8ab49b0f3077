//! The core's error type: one flat enum, each variant a distinct cause.

use crate::learner::format::VERSION;
use core::fmt;

/// Everything the core can refuse. Over-budget, bad input and misuse are distinct variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A component of the plan does not fit in what is left of the arena.
    OverBudget {
        /// The component that did not fit (as named in the plan).
        component: &'static str,
        /// Bytes that component needs.
        requested: usize,
        /// Bytes left in the arena when it was carved.
        available: usize,
        /// Bytes the whole plan needs beyond the arena's size.
        missing: usize,
    },
    /// The configuration itself is not usable (zero-sized layer, too many layers...).
    BadConfig(&'static str),
    /// A batch had more samples than the planned batch size, or none.
    BatchSize {
        /// Samples in the batch.
        got: usize,
        /// Largest batch the plan has scratch for.
        max: usize,
    },
    /// The input slice length is not `samples * input width`.
    InputShape {
        /// Length of the slice given.
        got: usize,
        /// Length expected.
        expected: usize,
    },
    /// An input value is NaN or infinite.
    NonFiniteInput {
        /// Flat index of the first bad value.
        index: usize,
    },
    /// A label is not one of the network's output classes.
    LabelOutOfRange {
        /// The label given.
        label: usize,
        /// Number of output classes.
        classes: usize,
    },
    /// A label is a valid class but masked out for this sample (e.g. another task's class).
    LabelInactive {
        /// The label given.
        label: usize,
    },
    /// The set of active classes is empty or extends past the output layer.
    BadActiveClasses {
        /// First active class.
        start: usize,
        /// One past the last active class.
        end: usize,
        /// Number of output classes.
        classes: usize,
    },
    /// The loss of a batch is NaN or infinite: training diverged, and the update was
    /// not applied.
    Diverged,
    /// A bug in edgecl: an internal size disagreed with the plan. Please report it.
    Internal(&'static str),
    /// An output buffer has the wrong length.
    OutputShape {
        /// Length of the slice given.
        got: usize,
        /// Length expected.
        expected: usize,
    },
    /// A gradient (data loss plus penalty) is NaN or infinite: the update was refused and
    /// nothing changed.
    NonFiniteGradient {
        /// Index of the first bad value (weights, then biases).
        index: usize,
    },
    /// A new importance value is NaN or infinite: the consolidation was refused and
    /// nothing changed.
    NonFiniteImportance {
        /// Index of the first bad value (weights, then biases).
        index: usize,
    },
    /// Consolidating EWC, online EWC or MAS needs samples seen through
    /// `accumulate_importance` first.
    NoImportanceSamples,
    /// Every task the plan reserved is taken (per-task EWC slots, PackNet owner ids).
    TasksExhausted {
        /// Slots the plan reserved (the config's `max_tasks`).
        max: usize,
    },
    /// PackNet: a layer has no free weight left for a new task.
    NoFreeWeights {
        /// The task (1-based) that found no free weights.
        task: usize,
        /// The layer (0-based) whose weights are all owned by earlier tasks.
        layer: usize,
    },
    /// Progressive columns: a task past the columns the plan reserved.
    ColumnsExhausted {
        /// The task (1-based) that asked for a column.
        task: usize,
        /// Columns the plan reserved (the most that fit the budget).
        max: usize,
    },
    /// The replay generator was asked for a class it has never observed.
    UnknownClass {
        /// The class asked for.
        class: usize,
    },
    /// The replay generator is not a VAE: only a VAE trains (deep generative replay).
    NotVae,
    /// The Gaussian generator's working slots are all taken by other classes: commit
    /// the task before observing more classes.
    GeneratorSlotsFull {
        /// Working slots the plan reserved.
        slots: usize,
        /// The class that found no slot.
        class: usize,
    },
    /// A task was named that the learner has not learned (1-based).
    NoSuchTask {
        /// The task named.
        task: usize,
        /// Tasks learned so far.
        tasks: usize,
    },
    /// A call came out of its protocol's order (the message says which).
    OutOfOrder(&'static str),
    /// A checkpoint image was refused (the inner error says why); nothing changed.
    Checkpoint(CheckpointError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::OverBudget {
                component,
                requested,
                available,
                missing,
            } => write!(
                f,
                "over budget: component `{component}` needs {requested} bytes but only \
                 {available} are left in the arena; the plan needs {missing} bytes more \
                 than the budget (raise the budget or shrink the config)"
            ),
            Error::BadConfig(why) => write!(f, "bad learner config: {why}"),
            Error::BatchSize { got, max } => {
                write!(f, "batch of {got} samples; the plan allows 1 to {max}")
            }
            Error::InputShape { got, expected } => {
                write!(f, "input has {got} values, expected {expected} (samples x input width)")
            }
            Error::NonFiniteInput { index } => {
                write!(f, "input value {index} is NaN or infinite")
            }
            Error::LabelOutOfRange { label, classes } => {
                write!(f, "label {label} is out of range: the network has {classes} classes")
            }
            Error::LabelInactive { label } => {
                write!(f, "label {label} is not among the active classes of its sample")
            }
            Error::BadActiveClasses { start, end, classes } => write!(
                f,
                "active classes {start}..{end} are empty or past the {classes} output classes"
            ),
            Error::Diverged => write!(
                f,
                "training diverged: the batch loss is NaN or infinite, so the update was not \
                 applied (lower the learning rate or check the inputs' scale)"
            ),
            Error::Internal(what) => write!(f, "internal error (a bug in edgecl): {what}"),
            Error::OutputShape { got, expected } => {
                write!(f, "output buffer has {got} slots, expected {expected}")
            }
            Error::NonFiniteGradient { index } => write!(
                f,
                "gradient {index} is NaN or infinite, so the update was refused and nothing changed \
                 (lower the learning rate or the penalty's lambda)"
            ),
            Error::NonFiniteImportance { index } => write!(
                f,
                "importance {index} came out NaN or infinite, so the consolidation was refused \
                 and nothing changed"
            ),
            Error::NoImportanceSamples => write!(
                f,
                "no samples were seen to estimate importance from (accumulate_importance before consolidate)"
            ),
            Error::TasksExhausted { max } => write!(
                f,
                "all {max} tasks the plan reserved are taken (per-task EWC slots or PackNet owner ids; \
                 raise max_tasks, or use online EWC, SI or MAS, whose size does not grow with tasks)"
            ),
            Error::NoFreeWeights { task, layer } => write!(
                f,
                "PackNet: no free weights left in layer {layer} for task {task}: earlier tasks own them all \
                 (lower the prune ratio's share kept per task, i.e. raise --prune-ratio, or plan fewer tasks)"
            ),
            Error::ColumnsExhausted { task, max } => write!(
                f,
                "progressive: task {task} needs a new column, but the plan reserved at most {max} columns \
                 (the most that fit the budget; raise the budget or narrow --column-width)"
            ),
            Error::UnknownClass { class } => write!(
                f,
                "the generator has never observed class {class}, so it cannot replay it"
            ),
            Error::NotVae => write!(f, "the replay generator is not a VAE: only a VAE trains"),
            Error::GeneratorSlotsFull { slots, class } => write!(
                f,
                "the generator's {slots} working slots are taken by other classes, so class {class} cannot be \
                 observed; commit the generator at the end of each task, or plan more slots"
            ),
            Error::NoSuchTask { task, tasks } => {
                write!(
                    f,
                    "task {task} is not one of the {tasks} tasks learned so far (tasks count from 1)"
                )
            }
            Error::OutOfOrder(what) => write!(f, "call out of order: {what}"),
            Error::Checkpoint(e) => write!(f, "{e}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

/// Why a checkpoint image was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointError {
    /// It does not start with `ECCP`.
    BadMagic,
    /// A format version this build does not read.
    Version {
        /// Version found.
        got: u16,
    },
    /// Shorter than its header says (or than a header).
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// The CRC does not match: a torn or corrupted write.
    BadCrc,
    /// Made by a learner of another config.
    OtherConfig,
    /// The body does not decode, or its parts do not fit this learner.
    Malformed(&'static str),
    /// The caller refused its record (a checkpoint of another device image...): why.
    Refused(&'static str),
    /// The output buffer is too small for the image (or the caller's buffer for its
    /// record).
    NoRoom {
        /// Bytes the image needs.
        needed: usize,
    },
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CheckpointError::BadMagic => write!(f, "not a checkpoint (bad magic)"),
            CheckpointError::Version { got } if got < VERSION => write!(
                f,
                "checkpoint format {got} was written by an older edgecl; this build reads format {VERSION} only \
                 (its config fingerprint changed): start again from the device image"
            ),
            CheckpointError::Version { got } => write!(f, "checkpoint format {got}, this build reads {VERSION}"),
            CheckpointError::Truncated { needed, got } => {
                write!(f, "checkpoint truncated: {got} bytes of {needed}")
            }
            CheckpointError::BadCrc => write!(f, "checkpoint CRC mismatch (torn or corrupted)"),
            CheckpointError::OtherConfig => write!(f, "checkpoint of a learner with another config"),
            CheckpointError::Malformed(why) => write!(f, "checkpoint malformed: {why}"),
            CheckpointError::Refused(why) => write!(f, "checkpoint refused: {why}"),
            CheckpointError::NoRoom { needed } => write!(f, "checkpoint needs {needed} bytes of buffer"),
        }
    }
}

impl From<CheckpointError> for Error {
    fn from(e: CheckpointError) -> Self {
        Error::Checkpoint(e)
    }
}

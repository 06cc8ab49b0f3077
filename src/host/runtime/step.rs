//! What the runtime hands back: a prediction, a refused sample, a step's error, where a
//! run resumed, the holdout it evaluates on and its stats.

use std::fmt;
use std::path::PathBuf;

/// Where a runtime resumed from.
#[derive(Debug, Clone)]
pub struct Resumed {
    /// The slot file.
    pub path: PathBuf,
    /// Slot files that were present but invalid, with why.
    pub rejected: Vec<String>,
}

/// What the head says of a sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The most likely class.
    pub class: u16,
    /// The softmax over every class of the head.
    pub scores: Vec<f32>,
}

/// Why a sample was refused (the learner's state is unchanged).
#[derive(Debug, Clone, PartialEq)]
pub enum Refused {
    /// Not the backbone's input width.
    Width {
        /// Values given.
        got: usize,
        /// Values the backbone takes.
        expected: usize,
    },
    /// A value is NaN or infinite.
    NonFinite {
        /// Its index in the sample.
        index: usize,
        /// The value.
        value: f32,
    },
    /// A label past the head's classes.
    Label {
        /// The label given.
        label: i64,
        /// Classes of the head.
        classes: usize,
    },
    /// The backbone's features of it are NaN or infinite.
    NonFiniteFeatures,
    /// An input line that is not an event, and why.
    Line(String),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Refused::Width { got, expected } => {
                write!(f, "a sample of {got} values; the backbone takes {expected}")
            }
            Refused::NonFinite { index, value } => write!(f, "value {index} of the sample is {value}"),
            Refused::Label { label, classes } => {
                write!(
                    f,
                    "label {label} is out of range: the head has classes 0 to {}",
                    classes - 1
                )
            }
            Refused::NonFiniteFeatures => write!(f, "the backbone's features of this sample are not finite"),
            Refused::Line(ref why) => write!(f, "{why}"),
        }
    }
}

/// Why a step failed.
#[derive(Debug)]
pub enum StepError {
    /// The sample was refused and skipped; nothing else changed.
    Refused(Refused),
    /// The runtime could not go on (the backbone, the learner or the state folder failed).
    Failed(anyhow::Error),
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepError::Refused(r) => write!(f, "{r}"),
            StepError::Failed(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::error::Error for StepError {}

impl From<anyhow::Error> for StepError {
    fn from(e: anyhow::Error) -> Self {
        StepError::Failed(e)
    }
}

impl From<crate::learner::Error> for StepError {
    fn from(e: crate::learner::Error) -> Self {
        StepError::Failed(e.into())
    }
}

/// A held-out set the runtime evaluates after each task: features and labels per task.
#[derive(Debug, Clone, Default)]
pub struct Holdout {
    /// Per held-out task: features (`n x feature width`) and labels.
    pub tasks: Vec<(Vec<f32>, Vec<u16>)>,
}

/// What the runtime has done.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// Samples predicted.
    pub samples: u64,
    /// Labelled samples learned from.
    pub labelled: u64,
    /// Updates of the head.
    pub updates: u64,
    /// Input events refused.
    pub skipped: u64,
    /// Tasks ended.
    pub tasks: u32,
    /// Checkpoints written by this process.
    pub checkpoints: u64,
    /// Input events consumed (where a restart of the same input goes on).
    pub position: u64,
    /// The arena's bytes (the learner's plan).
    pub arena_bytes: usize,
    /// FNV-1a of the head's weights and biases.
    pub head_fnv1a: u32,
    /// FNV-1a of the learner's whole saved state (every checkpointed component).
    pub state_fnv1a: u32,
    /// The accuracy rows measured after each task, when there is a held-out set.
    pub matrix: Vec<Vec<f64>>,
    /// The accuracy before any learning, when there is a held-out set.
    pub untrained: Vec<f64>,
}

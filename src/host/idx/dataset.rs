//! [`Dataset`]: a samples array paired with a labels array, checked and flattened for
//! training.

use super::error::IdxError;
use super::format::{IdxArray, IdxData};
use ndarray::Array2;

/// Most channels a sensor window has ([`Dataset::window`]).
pub const MAX_WINDOW_CHANNELS: usize = 16;

/// Samples and labels ready for training.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// One row per sample, the sample's dimensions flattened; u8 data is
    /// scaled to `[0, 1]`, f32 data is kept as is (and is finite).
    pub x: Array2<f32>,
    /// One label per row of `x`, each below `classes`.
    pub y: Vec<u16>,
    /// The shape of one sample (the samples' dimensions after the first).
    pub sample_shape: Vec<usize>,
    /// Number of classes.
    pub classes: usize,
    /// Per-sample metadata from the folder's side files (`subjects`, `side`): one value
    /// per row of `x`, never features.
    pub side: Vec<SideFile>,
}

/// A side file: a name and one value per sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideFile {
    /// The name between the split's prefix and `-idx1` (`subjects`).
    pub name: String,
    /// One value per sample.
    pub values: Vec<u32>,
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// `(time steps, channels)` when the samples are sensor windows: two dimensions, the
    /// second (channels, at most [`MAX_WINDOW_CHANNELS`]) smaller than the first (time), as a
    /// `[N, 100, 6]` IMU file; images such as `[N, 28, 28]` are not.
    pub fn window(&self) -> Option<(usize, usize)> {
        match self.sample_shape.as_slice() {
            &[t, c] if (1..=MAX_WINDOW_CHANNELS).contains(&c) && c < t => Some((t, c)),
            _ => None,
        }
    }

    /// Per channel of windows of `channels` channels (flat, time-major), `(mean, 1 /
    /// standard deviation)` over the samples `rows`; a channel that never varies keeps a
    /// scale of 1. What both the pooled windows and the conv1d backbone normalise with.
    pub fn channel_stats(&self, rows: impl IntoIterator<Item = usize>, channels: usize) -> Vec<(f32, f32)> {
        let mut sums = vec![(0.0f64, 0.0f64, 0usize); channels];
        for r in rows {
            for (j, &v) in self.x.row(r).iter().enumerate() {
                let s = &mut sums[j % channels];
                (s.0, s.1, s.2) = (s.0 + f64::from(v), s.1 + f64::from(v) * f64::from(v), s.2 + 1);
            }
        }
        sums.into_iter()
            .map(|(s, sq, n)| {
                let n = n.max(1) as f64;
                let mean = s / n;
                let sd = (sq / n - mean * mean).max(0.0).sqrt();
                (mean as f32, if sd > 1e-6 { (1.0 / sd) as f32 } else { 1.0 })
            })
            .collect()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Splits off a seeded `fraction` of each class's samples as a validation set:
    /// `(the rest, validation)`, each in the original order.
    pub fn split_validation(&self, fraction: f64, seed: u64) -> (Dataset, Dataset) {
        let mut rng = crate::learner::rng::Rng::new(seed ^ 0x7a11_da7e);
        let mut held = vec![false; self.len()];
        for c in 0..self.classes {
            let mut rows: Vec<usize> = (0..self.len()).filter(|&i| usize::from(self.y[i]) == c).collect();
            rng.shuffle(&mut rows);
            let k = (rows.len() as f64 * fraction).round() as usize;
            rows.iter().take(k).for_each(|&i| held[i] = true);
        }
        let pick = |keep: bool| self.rows(&(0..self.len()).filter(|&i| held[i] != keep).collect::<Vec<_>>());
        (pick(true), pick(false))
    }

    /// The samples at `rows`, in that order; the class count is kept.
    pub fn rows(&self, rows: &[usize]) -> Dataset {
        Dataset {
            x: self.x.select(ndarray::Axis(0), rows),
            y: rows.iter().map(|&i| self.y[i]).collect(),
            sample_shape: self.sample_shape.clone(),
            classes: self.classes,
            side: self
                .side
                .iter()
                .map(|f| SideFile {
                    name: f.name.clone(),
                    values: rows.iter().map(|&i| f.values[i]).collect(),
                })
                .collect(),
        }
    }

    /// The samples whose label is in `classes`, in their order; labels and the class count
    /// are kept as they are.
    pub fn only_classes(&self, classes: &[u16]) -> Dataset {
        self.rows(
            &(0..self.len())
                .filter(|&i| classes.contains(&self.y[i]))
                .collect::<Vec<_>>(),
        )
    }
}

/// Which input an error from [`build_dataset`] is about.
pub(super) enum Side {
    Samples,
    Labels,
    Both,
}

/// Pairs a samples array with a labels array.
///
/// The samples' first dimension is the sample count and the remaining
/// dimensions are flattened into one row per sample (a rank-1 samples array
/// gives one column). `u8` samples are divided by 255; `f32` samples must all
/// be finite. The labels must be a rank-1 `u8` array with one label per
/// sample. With `classes = Some(c)` every label must be below `c`; with
/// `None` the class count is the largest label plus one, and an empty
/// dataset is an error.
pub fn dataset_from_arrays(samples: IdxArray, labels: IdxArray, classes: Option<usize>) -> Result<Dataset, IdxError> {
    build_dataset(samples, labels, classes).map_err(|(_, e)| e)
}

/// [`dataset_from_arrays`], also saying which input an error is about.
pub(super) fn build_dataset(
    samples: IdxArray,
    labels: IdxArray,
    classes: Option<usize>,
) -> Result<Dataset, (Side, IdxError)> {
    let y = labels_vec(labels).map_err(|e| (Side::Labels, e))?;
    let (x, sample_shape) = samples_matrix(samples).map_err(|e| (Side::Samples, e))?;
    if x.nrows() != y.len() {
        return Err((
            Side::Both,
            IdxError::CountMismatch {
                samples: x.nrows(),
                labels: y.len(),
            },
        ));
    }
    let classes = match classes {
        Some(c) => {
            let bad = y.iter().enumerate().find(|&(_, &label)| usize::from(label) >= c);
            if let Some((index, &label)) = bad {
                return Err((
                    Side::Labels,
                    IdxError::LabelOutOfRange {
                        index,
                        label,
                        classes: c,
                    },
                ));
            }
            c
        }
        None => match y.iter().max() {
            Some(&m) => usize::from(m) + 1,
            None => return Err((Side::Both, IdxError::Empty)),
        },
    };
    Ok(Dataset {
        x,
        y,
        sample_shape,
        classes,
        side: Vec::new(),
    })
}

/// Checks that `dims` matches `len` and returns the element count.
fn check_shape(dims: &[usize], len: usize) -> Result<(), IdxError> {
    let n = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if n == Some(len) {
        Ok(())
    } else {
        Err(IdxError::ShapeMismatch {
            dims: dims.to_vec(),
            len,
        })
    }
}

/// Validates a labels array and widens it to `u16`.
fn labels_vec(labels: IdxArray) -> Result<Vec<u16>, IdxError> {
    let IdxArray { dims, data } = labels;
    let bytes = match data {
        IdxData::U8(v) => v,
        IdxData::F32(_) => return Err(IdxError::LabelsNotU8),
    };
    if dims.len() != 1 {
        return Err(IdxError::LabelsRank { rank: dims.len() });
    }
    check_shape(&dims, bytes.len())?;
    Ok(bytes.into_iter().map(u16::from).collect())
}

/// Flattens a samples array to one row per sample.
fn samples_matrix(samples: IdxArray) -> Result<(Array2<f32>, Vec<usize>), IdxError> {
    let IdxArray { dims, data } = samples;
    check_shape(&dims, data.len())?;
    let shape_err = || IdxError::ShapeMismatch {
        dims: dims.clone(),
        len: data.len(),
    };
    let (&rows, sample_shape) = dims.split_first().ok_or_else(shape_err)?;
    // With no rows the full product is 0 whatever the others are, so the sample's own
    // product is checked too (found by the `idx` fuzz target).
    let cols = sample_shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(shape_err)?;
    let values: Vec<f32> = match &data {
        IdxData::U8(v) => v.iter().map(|&b| f32::from(b) / 255.0).collect(),
        IdxData::F32(v) => {
            if let Some(index) = v.iter().position(|x| !x.is_finite()) {
                return Err(IdxError::NonFinite { index });
            }
            v.clone()
        }
    };
    let x = Array2::from_shape_vec((rows, cols), values).map_err(|_| shape_err())?;
    Ok((x, sample_shape.to_vec()))
}

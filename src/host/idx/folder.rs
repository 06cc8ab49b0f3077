//! A dataset's folder: the standard MNIST file names of each [`Split`] found and loaded.

use super::dataset::{build_dataset, Dataset, Side};
use super::error::IdxError;
use super::format::read_idx;
use super::{io_error, path_string};
use std::fs;
use std::path::{Path, PathBuf};

/// Which half of a dataset to load with [`load_split`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// The training files (`train-*`).
    Train,
    /// The test files (`t10k-*` or `test-*`).
    Test,
}

/// Finds and loads one split of an MNIST-style dataset from `dir`.
///
/// See [`split_files`] for the file names accepted. Errors about a file are
/// wrapped in [`IdxError::InFile`] with that file's path.
pub fn load_split(dir: &Path, split: Split, classes: Option<usize>) -> Result<Dataset, IdxError> {
    let (samples_path, labels_path) = split_files(dir, split)?;
    let samples = read_idx(&samples_path)?;
    let labels = read_idx(&labels_path)?;
    build_dataset(samples, labels, classes).map_err(|(side, e)| match side {
        Side::Samples => e.in_file(&samples_path),
        Side::Labels => e.in_file(&labels_path),
        Side::Both => IdxError::InFile {
            path: format!("{} and {}", path_string(&samples_path), path_string(&labels_path)),
            source: Box::new(e),
        },
    })
}

/// Finds the samples and labels files of `split` in `dir`, returned as
/// `(samples, labels)`.
///
/// The standard MNIST names are preferred: `train-images-idx3-ubyte`,
/// `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte` and
/// `t10k-labels-idx1-ubyte`, or the same with `.` instead of the second `-`
/// (`train-images.idx3-ubyte`), each with or without a `.gz` suffix.
/// Otherwise any file whose name starts with the split's prefix (`train-`;
/// `t10k-` or `test-`) is taken: labels if its name contains `labels`,
/// samples if not. If several such files fit one role (other than a file and
/// its `.gz` twin, where the plain one wins) the result is
/// [`IdxError::Ambiguous`].
pub fn split_files(dir: &Path, split: Split) -> Result<(PathBuf, PathBuf), IdxError> {
    let names = dir_file_names(dir)?;
    let (split_name, stem, prefixes): (&str, &str, &[&str]) = match split {
        Split::Train => ("train", "train", &["train-"]),
        Split::Test => ("test", "t10k", &["t10k-", "test-"]),
    };
    let samples = find_role(
        dir,
        &names,
        &format!("{split_name} samples"),
        &[format!("{stem}-images-idx3-ubyte"), format!("{stem}-images.idx3-ubyte")],
        prefixes,
        false,
    )?;
    let labels = find_role(
        dir,
        &names,
        &format!("{split_name} labels"),
        &[format!("{stem}-labels-idx1-ubyte"), format!("{stem}-labels.idx1-ubyte")],
        prefixes,
        true,
    )?;
    Ok((samples, labels))
}

/// Names of the regular files (following symlinks) in `dir`, sorted.
fn dir_file_names(dir: &Path) -> Result<Vec<String>, IdxError> {
    let entries = fs::read_dir(dir).map_err(|e| io_error(dir, &e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, &e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if entry.path().is_file() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Picks the file for one role (samples or labels) from `names`.
fn find_role(
    dir: &Path,
    names: &[String],
    what: &str,
    standard: &[String],
    prefixes: &[&str],
    labels: bool,
) -> Result<PathBuf, IdxError> {
    for base in standard {
        for name in [base.clone(), format!("{base}.gz")] {
            if names.contains(&name) {
                return Ok(dir.join(name));
            }
        }
    }
    let mut candidates: Vec<&String> = names
        .iter()
        .filter(|n| {
            let lower = n.to_ascii_lowercase();
            prefixes.iter().any(|p| lower.starts_with(p)) && lower.contains("labels") == labels
        })
        .collect();
    // A file next to its own .gz twin counts once, as the plain file.
    let all = candidates.clone();
    candidates.retain(|n| {
        n.strip_suffix(".gz")
            .is_none_or(|plain| !all.iter().any(|m| m.as_str() == plain))
    });
    match candidates.as_slice() {
        [one] => Ok(dir.join(one.as_str())),
        [] => {
            let role = if labels { "'labels'" } else { "no 'labels'" };
            Err(IdxError::Missing {
                dir: path_string(dir),
                what: format!(
                    "{what} file (looked for {}, each optionally .gz, or a name starting {} \
                     with {role} in it)",
                    standard.join(" or "),
                    prefixes.join(" or ")
                ),
            })
        }
        many => Err(IdxError::Ambiguous {
            dir: path_string(dir),
            what: what.to_string(),
            candidates: many.iter().map(|s| s.to_string()).collect(),
        }),
    }
}

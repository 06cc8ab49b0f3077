//! A dataset's folder: the files of each [`Split`] found (the standard MNIST names, or a
//! split's samples, labels and per-sample side files) and loaded.

use super::dataset::{build_dataset, Dataset, Side, SideFile};
use super::error::IdxError;
use super::format::{read_idx, IdxArray, IdxData};
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
    load_split_with(dir, split, classes, None)
}

/// [`load_split`], with the samples file named (`--samples NAME`: the file whose name
/// after the split's prefix starts with `NAME`) when the folder holds several; the
/// split's other idx1 files are its side files ([`find_split`]), loaded into
/// [`Dataset::side`] and checked to hold one value per sample.
pub fn load_split_with(
    dir: &Path,
    split: Split,
    classes: Option<usize>,
    samples_name: Option<&str>,
) -> Result<Dataset, IdxError> {
    let files = find_split(dir, split, samples_name)?;
    let (samples_path, labels_path) = (&files.samples, &files.labels);
    let samples = read_idx(samples_path)?;
    let labels = read_idx(labels_path)?;
    let mut data = build_dataset(samples, labels, classes).map_err(|(side, e)| match side {
        Side::Samples => e.in_file(samples_path),
        Side::Labels => e.in_file(labels_path),
        Side::Both => IdxError::InFile {
            path: format!("{} and {}", path_string(samples_path), path_string(labels_path)),
            source: Box::new(e),
        },
    })?;
    for (name, path) in &files.side {
        let values = side_values(read_idx(path)?, name, data.len()).map_err(|e| e.in_file(path))?;
        data.side.push(SideFile {
            name: name.clone(),
            values,
        });
    }
    Ok(data)
}

/// A side file's values: one unsigned byte per sample.
fn side_values(array: IdxArray, name: &str, samples: usize) -> Result<Vec<u32>, IdxError> {
    let IdxData::U8(bytes) = array.data else {
        return Err(IdxError::SideNotU8 { name: name.to_string() });
    };
    if array.dims.len() != 1 || bytes.len() != samples {
        return Err(IdxError::SideLength {
            name: name.to_string(),
            values: bytes.len(),
            samples,
        });
    }
    Ok(bytes.into_iter().map(u32::from).collect())
}

/// The files of one split: the samples, the labels, and the side files (every other
/// idx1 file of the split, one value per sample: `subjects`, `side`), by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitFiles {
    /// The samples file.
    pub samples: PathBuf,
    /// The labels file.
    pub labels: PathBuf,
    /// The side files, by the name between the split's prefix and `-idx1`
    /// (`train-subjects-idx1-ubyte.gz`: `subjects`), sorted.
    pub side: Vec<(String, PathBuf)>,
}

/// Finds the samples and labels files of `split` in `dir`, returned as
/// `(samples, labels)`; see [`find_split`].
pub fn split_files(dir: &Path, split: Split) -> Result<(PathBuf, PathBuf), IdxError> {
    let f = find_split(dir, split, None)?;
    Ok((f.samples, f.labels))
}

/// Finds the files of `split` in `dir`.
///
/// The standard MNIST names are preferred: `train-images-idx3-ubyte`,
/// `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte` and
/// `t10k-labels-idx1-ubyte`, or the same with `.` instead of the second `-`
/// (`train-images.idx3-ubyte`), each with or without a `.gz` suffix.
/// Otherwise the files whose names start with the split's prefix (`train-`; `t10k-` or
/// `test-`) are taken: labels the one whose name contains `labels`; samples the one
/// `samples_name` names (its name after the prefix starts with it), or else the only
/// other file, or else the only one with two or more dimensions after the count; every
/// other file of the split with one dimension is a side file. Several files that could
/// be the samples (other than a file and its `.gz` twin, where the plain one wins), or a
/// file that is neither, is [`IdxError::Ambiguous`].
pub fn find_split(dir: &Path, split: Split, samples_name: Option<&str>) -> Result<SplitFiles, IdxError> {
    let names = dir_file_names(dir)?;
    let (split_name, stem, prefixes): (&str, &str, &[&str]) = match split {
        Split::Train => ("train", "train", &["train-"]),
        Split::Test => ("test", "t10k", &["t10k-", "test-"]),
    };
    let labels = || {
        find_role(
            dir,
            &names,
            &format!("{split_name} labels"),
            &[format!("{stem}-labels-idx1-ubyte"), format!("{stem}-labels.idx1-ubyte")],
            prefixes,
            true,
        )
    };
    let what = format!("{split_name} samples");
    let standard = [format!("{stem}-images-idx3-ubyte"), format!("{stem}-images.idx3-ubyte")];
    if samples_name.is_none() {
        for base in &standard {
            for name in [base.clone(), format!("{base}.gz")] {
                if names.contains(&name) {
                    return Ok(SplitFiles {
                        samples: dir.join(name),
                        labels: labels()?,
                        side: Vec::new(),
                    });
                }
            }
        }
    }
    let candidates = role_candidates(&names, prefixes, false);
    let samples = match (samples_name, candidates.as_slice()) {
        (Some(want), _) => {
            let picked: Vec<&&String> = candidates
                .iter()
                .filter(|n| role_name(n, prefixes).starts_with(want))
                .collect();
            match picked.as_slice() {
                [one] => (**one).clone(),
                [] => {
                    return Err(IdxError::Missing {
                        dir: path_string(dir),
                        what: format!(
                            "{what} file named {want} (--samples {want}; the split's files: {})",
                            candidates.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    })
                }
                many => {
                    return Err(IdxError::Ambiguous {
                        dir: path_string(dir),
                        what: format!("{what} (--samples {want})"),
                        candidates: many.iter().map(|s| s.to_string()).collect(),
                    })
                }
            }
        }
        (None, [one]) => (*one).clone(),
        (None, []) => {
            return Err(IdxError::Missing {
                dir: path_string(dir),
                what: format!(
                    "{what} file (looked for {}, each optionally .gz, or a name starting {} \
                     with no 'labels' in it)",
                    standard.join(" or "),
                    prefixes.join(" or ")
                ),
            })
        }
        (None, many) => {
            // The samples: the one file with two or more dimensions after the count.
            let mut windows = Vec::new();
            for n in many {
                // A file whose header cannot be read is no candidate for it.
                if idx_rank(&dir.join(n.as_str())).is_ok_and(|r| r >= 3) {
                    windows.push(n);
                }
            }
            match windows.as_slice() {
                [one] => (**one).clone(),
                _ => {
                    return Err(IdxError::Ambiguous {
                        dir: path_string(dir),
                        what,
                        candidates: many.iter().map(|s| s.to_string()).collect(),
                    })
                }
            }
        }
    };
    let mut side = Vec::new();
    for n in candidates.iter().filter(|n| ***n != samples) {
        let path = dir.join(n.as_str());
        if idx_rank(&path)? != 1 {
            return Err(IdxError::Ambiguous {
                dir: path_string(dir),
                what: format!("{what} (besides {samples}, {n} has more than one value per sample)"),
                candidates: vec![samples.clone(), n.to_string()],
            });
        }
        side.push((role_name(n, prefixes).to_string(), path));
    }
    side.sort();
    Ok(SplitFiles {
        samples: dir.join(samples),
        labels: labels()?,
        side,
    })
}

/// A split file's name between its split prefix and its `-idx`/`.idx` type suffix.
fn role_name<'n>(name: &'n str, prefixes: &[&str]) -> &'n str {
    let lower = name.to_ascii_lowercase();
    let rest = prefixes
        .iter()
        .find(|p| lower.starts_with(**p))
        .map_or(name, |p| &name[p.len()..]);
    let cut = rest.find("-idx").or_else(|| rest.find(".idx")).unwrap_or(rest.len());
    rest[..cut].trim_end_matches(".gz")
}

/// The rank an IDX file's header declares (its fourth byte), gzip or not.
fn idx_rank(path: &Path) -> Result<usize, IdxError> {
    use std::io::{BufRead, Read};
    let file = fs::File::open(path).map_err(|e| io_error(path, &e))?;
    let mut r = std::io::BufReader::new(file);
    let gz = r.fill_buf().map_err(|e| io_error(path, &e))?.starts_with(&[0x1f, 0x8b]);
    let mut head = [0u8; 4];
    match gz {
        true => flate2::read::GzDecoder::new(r).read_exact(&mut head),
        false => r.read_exact(&mut head),
    }
    .map_err(|e| io_error(path, &e))?;
    Ok(usize::from(head[3]))
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

/// The files of the split (`prefixes`) whose names contain `labels` (or do not), a file
/// next to its own `.gz` twin counted once, as the plain file.
fn role_candidates<'n>(names: &'n [String], prefixes: &[&str], labels: bool) -> Vec<&'n String> {
    let mut candidates: Vec<&String> = names
        .iter()
        .filter(|n| {
            let lower = n.to_ascii_lowercase();
            prefixes.iter().any(|p| lower.starts_with(p)) && lower.contains("labels") == labels
        })
        .collect();
    let all = candidates.clone();
    candidates.retain(|n| {
        n.strip_suffix(".gz")
            .is_none_or(|plain| !all.iter().any(|m| m.as_str() == plain))
    });
    candidates
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
    let candidates = role_candidates(names, prefixes, labels);
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

//! Integration tests for `edgecl::host::idx` through files on disk.
#![cfg(feature = "std")]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use edgecl::host::idx::{
    dataset_from_arrays, find_split, load_split, load_split_with, read_idx, read_idx_with_limit, split_files, IdxArray,
    IdxData, IdxError, Split,
};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh, empty directory under the system temp dir.
fn temp_dir(tag: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("edgecl-idx-test-{}-{}-{}", std::process::id(), tag, n));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn idx(code: u8, dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, code, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(payload);
    b
}

fn f32_payload(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_be_bytes()).collect()
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, bytes).unwrap();
    p
}

/// Asserts that `e`'s Display is one non-empty line containing every needle.
fn assert_one_line(e: &IdxError, needles: &[&str]) {
    let s = e.to_string();
    assert!(!s.is_empty() && !s.contains('\n'), "not one line: {s:?}");
    for n in needles {
        assert!(s.contains(n), "{s:?} does not mention {n:?}");
    }
}

#[test]
fn gzip_round_trip_matches_plain() {
    let dir = temp_dir("gz");
    let vals: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
    let bytes = idx(0x0D, &[2, 3, 4], &f32_payload(&vals));
    let plain = read_idx(&write(&dir, "a.idx", &bytes)).unwrap();
    let zipped = read_idx(&write(&dir, "a.idx.gz", &gz(&bytes))).unwrap();
    assert_eq!(plain, zipped);
    assert_eq!(plain.dims, vec![2, 3, 4]);
    assert_eq!(plain.data, IdxData::F32(vals));

    let ubytes = idx(0x08, &[5], &[9, 8, 7, 6, 5]);
    let p = read_idx(&write(&dir, "u", &ubytes)).unwrap();
    let z = read_idx(&write(&dir, "u.gz", &gz(&ubytes))).unwrap();
    assert_eq!(p, z);
    assert_eq!(p.data, IdxData::U8(vec![9, 8, 7, 6, 5]));
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_magic() {
    let dir = temp_dir("magic");
    let p = write(&dir, "zip.idx", &[0x50, 0x4B, 0x03, 0x04, 0, 0, 0, 0]);
    let e = read_idx(&p).unwrap_err();
    assert!(matches!(e.root(), IdxError::BadMagic { .. }), "{e:?}");
    assert_one_line(&e, &["magic", "[50, 4B, 03, 04]", "zip.idx"]);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn unsupported_type() {
    let dir = temp_dir("type");
    let p = write(&dir, "i16.idx", &idx(0x0B, &[2], &[0, 1, 0, 2]));
    let e = read_idx(&p).unwrap_err();
    assert_eq!(e.root(), &IdxError::UnsupportedType { code: 0x0B });
    assert_one_line(&e, &["unsupported", "0x0B", "i16.idx"]);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn truncated_payload() {
    let dir = temp_dir("trunc");
    let p = write(&dir, "short.idx", &idx(0x08, &[10, 10], &[0; 99]));
    let e = read_idx(&p).unwrap_err();
    assert_eq!(
        e.root(),
        &IdxError::Truncated {
            expected: 12 + 100,
            found: 12 + 99
        }
    );
    assert_one_line(&e, &["truncated", "112", "111", "short.idx"]);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn truncated_gzip() {
    let dir = temp_dir("truncgz");
    let bytes = idx(0x08, &[1000], &(0..1000).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    let z = gz(&bytes);
    let p = write(&dir, "cut.gz", &z[..z.len() / 2]);
    let e = read_idx(&p).unwrap_err();
    assert!(matches!(e.root(), IdxError::Gzip(_)), "{e:?}");
    assert_one_line(&e, &["gzip", "cut.gz"]);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn gzip_bomb_is_capped() {
    let dir = temp_dir("bomb");
    let big = idx(0x08, &[1 << 20], &vec![0u8; 1 << 20]);
    let p = write(&dir, "bomb.gz", &gz(&big));
    let e = read_idx_with_limit(&p, 4096).unwrap_err();
    assert_eq!(e.root(), &IdxError::TooLarge { limit: 4096 });
    assert_one_line(&e, &["limit", "bomb.gz"]);
    assert!(read_idx(&p).is_ok());
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn missing_file_is_io_error() {
    let dir = temp_dir("io");
    let e = read_idx(&dir.join("nope.idx")).unwrap_err();
    assert!(matches!(e, IdxError::Io { .. }), "{e:?}");
    assert_one_line(&e, &["nope.idx"]);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn count_mismatch() {
    let dir = temp_dir("count");
    write(&dir, "train-images-idx3-ubyte", &idx(0x08, &[3, 2, 2], &[0; 12]));
    write(&dir, "train-labels-idx1-ubyte", &idx(0x08, &[4], &[0, 1, 2, 3]));
    let e = load_split(&dir, Split::Train, None).unwrap_err();
    assert_eq!(e.root(), &IdxError::CountMismatch { samples: 3, labels: 4 });
    assert_one_line(&e, &["sample count 3", "label count 4"]);

    let samples = read_idx(&dir.join("train-images-idx3-ubyte")).unwrap();
    let labels = read_idx(&dir.join("train-labels-idx1-ubyte")).unwrap();
    assert_eq!(
        dataset_from_arrays(samples, labels, None).unwrap_err(),
        IdxError::CountMismatch { samples: 3, labels: 4 }
    );
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn label_out_of_range() {
    let dir = temp_dir("range");
    write(&dir, "t10k-images-idx3-ubyte.gz", &gz(&idx(0x08, &[3, 2], &[0; 6])));
    write(&dir, "t10k-labels-idx1-ubyte.gz", &gz(&idx(0x08, &[3], &[0, 1, 5])));
    let e = load_split(&dir, Split::Test, Some(2)).unwrap_err();
    assert_eq!(
        e.root(),
        &IdxError::LabelOutOfRange {
            index: 2,
            label: 5,
            classes: 2
        }
    );
    assert_one_line(&e, &["label 5", "2 classes", "t10k-labels-idx1-ubyte.gz"]);
    let d = load_split(&dir, Split::Test, None).unwrap();
    assert_eq!(d.classes, 6);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn nan_in_f32_samples() {
    let dir = temp_dir("nan");
    let vals = [0.5f32, 1.0, -1.0, f32::NAN, 2.0, 3.0];
    write(
        &dir,
        "train-signals-idx2-float.gz",
        &gz(&idx(0x0D, &[3, 2], &f32_payload(&vals))),
    );
    write(&dir, "train-labels-idx1-ubyte", &idx(0x08, &[3], &[0, 1, 0]));
    let e = load_split(&dir, Split::Train, None).unwrap_err();
    assert_eq!(e.root(), &IdxError::NonFinite { index: 3 });
    assert_one_line(&e, &["NaN", "index 3", "train-signals-idx2-float.gz"]);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn f32_labels_and_rank_rejected() {
    let s = IdxArray {
        dims: vec![2, 1],
        data: IdxData::U8(vec![1, 2]),
    };
    let fl = IdxArray {
        dims: vec![2],
        data: IdxData::F32(vec![0.0, 1.0]),
    };
    let e = dataset_from_arrays(s.clone(), fl, None).unwrap_err();
    assert_eq!(e, IdxError::LabelsNotU8);
    assert_one_line(&e, &["u8"]);
    let r2 = IdxArray {
        dims: vec![1, 2],
        data: IdxData::U8(vec![0, 1]),
    };
    let e = dataset_from_arrays(s, r2, None).unwrap_err();
    assert_eq!(e, IdxError::LabelsRank { rank: 2 });
    assert_one_line(&e, &["rank 2"]);
}

#[test]
fn split_file_names() {
    let dir = temp_dir("names");
    // Non-standard names are found when no standard one exists...
    write(&dir, "train-signals-idx3-float.gz", b"");
    write(&dir, "train-labels-custom", b"");
    write(&dir, "README.md", b"");
    let (s, l) = split_files(&dir, Split::Train).unwrap();
    assert_eq!(s, dir.join("train-signals-idx3-float.gz"));
    assert_eq!(l, dir.join("train-labels-custom"));
    // ...but standard names win, with the dotted spelling accepted.
    write(&dir, "train-images.idx3-ubyte.gz", b"");
    write(&dir, "train-labels-idx1-ubyte", b"");
    let (s, l) = split_files(&dir, Split::Train).unwrap();
    assert_eq!(s, dir.join("train-images.idx3-ubyte.gz"));
    assert_eq!(l, dir.join("train-labels-idx1-ubyte"));
    // test- prefix works for the test split; a file and its .gz twin count once.
    write(&dir, "test-x", b"");
    write(&dir, "test-x.gz", b"");
    write(&dir, "test-labels", b"");
    let (s, l) = split_files(&dir, Split::Test).unwrap();
    assert_eq!(s, dir.join("test-x"));
    assert_eq!(l, dir.join("test-labels"));
    // Two different candidates are ambiguous.
    write(&dir, "t10k-y", b"");
    let e = split_files(&dir, Split::Test).unwrap_err();
    assert!(matches!(e, IdxError::Ambiguous { .. }), "{e:?}");
    assert_one_line(&e, &["test-x", "t10k-y"]);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn missing_split_files() {
    let dir = temp_dir("missing");
    write(&dir, "t10k-images-idx3-ubyte", &idx(0x08, &[1, 1], &[0]));
    let e = load_split(&dir, Split::Test, None).unwrap_err();
    assert!(matches!(e, IdxError::Missing { .. }), "{e:?}");
    assert_one_line(&e, &["test labels", "t10k-labels-idx1-ubyte"]);
    let e = load_split(&dir, Split::Train, None).unwrap_err();
    assert_one_line(&e, &["train samples", "train-images-idx3-ubyte"]);
    let e = load_split(&dir.join("no-such-dir"), Split::Train, None).unwrap_err();
    assert!(matches!(e, IdxError::Io { .. }), "{e:?}");
    assert_one_line(&e, &["no-such-dir"]);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn mnist_test_split() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    let d = load_split(&dir, Split::Test, None).unwrap();
    assert_eq!(d.x.dim(), (10000, 784));
    assert_eq!(d.y.len(), 10000);
    assert_eq!(d.sample_shape, vec![28, 28]);
    assert_eq!(d.classes, 10);
    let mut hist = [0usize; 10];
    for &y in &d.y {
        hist[usize::from(y)] += 1;
    }
    assert_eq!(hist, [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
    assert!(d.x.iter().all(|&v| (0.0..=1.0).contains(&v)));
    let mean = d.x.iter().map(|&v| f64::from(v)).sum::<f64>() / d.x.len() as f64;
    assert!((mean - 0.132515).abs() < 1e-4, "mean {mean}");
    assert_eq!(load_split(&dir, Split::Test, Some(10)).unwrap(), d);
}

/// A sensor folder as it comes: windows `[N, T, C]` of f32, labels, and per-window side
/// files (`subjects`, `side`) beside them.
fn sensor_folder(tag: &str, subjects: &[u8]) -> PathBuf {
    let dir = temp_dir(tag);
    let windows: Vec<f32> = (0..4 * 5 * 3).map(|i| i as f32 * 0.25 - 3.0).collect();
    write(
        &dir,
        "train-signals-idx3-float.gz",
        &gz(&idx(0x0D, &[4, 5, 3], &f32_payload(&windows))),
    );
    write(&dir, "train-labels-idx1-ubyte.gz", &gz(&idx(0x08, &[4], &[0, 1, 2, 1])));
    write(
        &dir,
        "train-subjects-idx1-ubyte.gz",
        &gz(&idx(0x08, &[subjects.len() as u32], subjects)),
    );
    write(&dir, "train-side-idx1-ubyte", &idx(0x08, &[4], &[1, 0, 1, 0]));
    dir
}

#[test]
fn a_sensor_folder_takes_its_windows_as_samples_and_the_rest_as_side_files() {
    let dir = sensor_folder("sensor", &[1, 1, 2, 2]);
    let f = find_split(&dir, Split::Train, None).unwrap();
    assert_eq!(f.samples, dir.join("train-signals-idx3-float.gz"));
    assert_eq!(f.labels, dir.join("train-labels-idx1-ubyte.gz"));
    let names: Vec<&str> = f.side.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["side", "subjects"]);
    let d = load_split(&dir, Split::Train, None).unwrap();
    assert_eq!((d.len(), d.sample_shape.clone(), d.classes), (4, vec![5, 3], 3));
    assert_eq!(d.side.len(), 2);
    assert_eq!(
        (d.side[1].name.as_str(), d.side[1].values.clone()),
        ("subjects", vec![1, 1, 2, 2])
    );
    // Rows keep their side values.
    let two = d.rows(&[3, 0]);
    assert_eq!(two.side[1].values, [2, 1]);
    assert_eq!(two.side[0].values, [0, 1]);
    // --samples names the samples file whatever the others hold.
    let f = find_split(&dir, Split::Train, Some("signals")).unwrap();
    assert_eq!(f.samples, dir.join("train-signals-idx3-float.gz"));
    let e = find_split(&dir, Split::Train, Some("nope")).unwrap_err();
    assert_one_line(&e, &["--samples nope", "train-signals-idx3-float.gz"]);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_side_file_of_another_length_than_the_samples_is_refused_naming_it() {
    let dir = sensor_folder("side-length", &[1, 1, 2]);
    let e = load_split(&dir, Split::Train, None).unwrap_err();
    assert_one_line(
        &e,
        &[
            "train-subjects-idx1-ubyte.gz",
            "`subjects` holds 3 values for 4 samples",
        ],
    );
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn two_files_that_could_be_the_samples_are_ambiguous_until_named() {
    let dir = sensor_folder("two-samples", &[1, 1, 2, 2]);
    let other: Vec<f32> = vec![0.5; 4 * 2 * 2];
    write(
        &dir,
        "train-spectra-idx3-float",
        &idx(0x0D, &[4, 2, 2], &f32_payload(&other)),
    );
    let e = split_files(&dir, Split::Train).unwrap_err();
    assert!(matches!(e, IdxError::Ambiguous { .. }), "{e:?}");
    assert_one_line(&e, &["--samples NAME", "train-signals", "train-spectra"]);
    // Named, the other rank-3 file is neither samples nor a side file: refused, not dropped.
    let e = load_split_with(&dir, Split::Train, None, Some("signals")).unwrap_err();
    assert_one_line(&e, &["train-spectra-idx3-float", "more than one value per sample"]);
    fs::remove_dir_all(dir).unwrap();
}

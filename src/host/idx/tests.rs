//! Unit tests of the IDX reader: parsing, gzip, datasets, the folder's file names and
//! every error's message.

use super::format::gunzip;
use super::*;
use std::io::Write;

/// Builds an IDX buffer from a type code, dims and payload bytes.
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

fn u8_array(dims: &[usize], data: Vec<u8>) -> IdxArray {
    IdxArray {
        dims: dims.to_vec(),
        data: IdxData::U8(data),
    }
}

fn f32_array(dims: &[usize], data: Vec<f32>) -> IdxArray {
    IdxArray {
        dims: dims.to_vec(),
        data: IdxData::F32(data),
    }
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn u8_round_trips_rank_1_3_4() {
    for dims in [vec![5u32], vec![2, 3, 4], vec![2, 1, 3, 2]] {
        let n: u32 = dims.iter().product();
        let payload: Vec<u8> = (0..n).map(|i| (i * 7 % 256) as u8).collect();
        let a = parse_idx(&idx(0x08, &dims, &payload)).unwrap();
        let want: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
        assert_eq!(a.dims, want);
        assert_eq!(a.data, IdxData::U8(payload));
    }
}

#[test]
fn f32_round_trips_rank_1_3_4() {
    for dims in [vec![3u32], vec![2, 2, 3], vec![1, 2, 2, 2]] {
        let n: u32 = dims.iter().product();
        let vals: Vec<f32> = (0..n).map(|i| i as f32 * -1.5 + 0.25).collect();
        let a = parse_idx(&idx(0x0D, &dims, &f32_payload(&vals))).unwrap();
        let want: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
        assert_eq!(a.dims, want);
        assert_eq!(a.data, IdxData::F32(vals));
    }
}

#[test]
fn zero_sized_dims_parse() {
    let a = parse_idx(&idx(0x08, &[0, 28, 28], &[])).unwrap();
    assert_eq!(a.dims, vec![0, 28, 28]);
    assert!(a.data.is_empty());
}

#[test]
fn no_rows_with_huge_sample_dims_is_an_error_not_an_overflow() {
    // Found by the `idx` fuzz target: 0 samples of 0x1ce0e0e0 x 0xe0e0e02a x
    // 0xe0000000 values.
    let bytes = [
        0, 0, 8, 4, 0, 0, 0, 0, 0x1c, 0xe0, 0xe0, 0xe0, 0xe0, 0xe0, 0xe0, 0x2a, 0xe0, 0, 0, 0,
    ];
    let samples = parse_idx(&bytes).unwrap();
    let labels = parse_idx(&idx(0x08, &[0], &[])).unwrap();
    assert!(dataset_from_arrays(samples, labels, None).is_err());
}

#[test]
fn bad_magic() {
    let e = parse_idx(&[0x50, 0x4B, 0x03, 0x04, 1, 2]).unwrap_err();
    assert_eq!(
        e,
        IdxError::BadMagic {
            found: vec![0x50, 0x4B, 0x03, 0x04]
        }
    );
    assert!(e.to_string().contains("[50, 4B, 03, 04]"));
    let e = parse_idx(&[0, 1]).unwrap_err();
    assert!(matches!(e, IdxError::BadMagic { .. }));
    let e = parse_idx(&gz(b"x")).unwrap_err();
    assert!(e.to_string().contains("gzip"), "{e}");
}

#[test]
fn unsupported_types() {
    for code in [0x09, 0x0B, 0x0C, 0x0E, 0x00, 0x42] {
        let e = parse_idx(&idx(code, &[1], &[0; 8])).unwrap_err();
        assert_eq!(e, IdxError::UnsupportedType { code });
    }
    let e = IdxError::UnsupportedType { code: 0x0B };
    assert!(e.to_string().contains("0x0B (i16)"));
}

#[test]
fn zero_rank() {
    assert_eq!(parse_idx(&[0, 0, 8, 0]).unwrap_err(), IdxError::ZeroRank);
}

#[test]
fn truncated_header() {
    assert_eq!(
        parse_idx(&[]).unwrap_err(),
        IdxError::Truncated { expected: 4, found: 0 }
    );
    assert_eq!(
        parse_idx(&[0, 0, 8]).unwrap_err(),
        IdxError::Truncated { expected: 4, found: 3 }
    );
    // Rank 3 needs 16 header bytes; only one dim present.
    let mut b = vec![0, 0, 8, 3];
    b.extend_from_slice(&7u32.to_be_bytes());
    assert_eq!(
        parse_idx(&b).unwrap_err(),
        IdxError::Truncated { expected: 16, found: 8 }
    );
}

#[test]
fn truncated_payload() {
    assert_eq!(
        parse_idx(&idx(0x08, &[2, 3], &[0; 5])).unwrap_err(),
        IdxError::Truncated {
            expected: 12 + 6,
            found: 12 + 5
        }
    );
    assert_eq!(
        parse_idx(&idx(0x0D, &[2], &[0; 7])).unwrap_err(),
        IdxError::Truncated {
            expected: 8 + 8,
            found: 8 + 7
        }
    );
}

#[test]
fn trailing_bytes() {
    let e = parse_idx(&idx(0x08, &[2], &[1, 2, 3])).unwrap_err();
    assert_eq!(
        e,
        IdxError::TrailingBytes {
            expected: 10,
            found: 11
        }
    );
    assert!(e.to_string().contains("1 trailing bytes"));
}

#[test]
fn size_overflow() {
    let m = u32::MAX;
    let e = parse_idx(&idx(0x0D, &[m, m, m, m], &[])).unwrap_err();
    assert!(matches!(e, IdxError::SizeOverflow { ref dims } if dims.len() == 4));
}

#[test]
fn never_panics_on_prefixes_and_noise() {
    let good = idx(0x0D, &[2, 3], &f32_payload(&[1.0; 6]));
    for n in 0..good.len() {
        assert!(parse_idx(&good[..n]).is_err());
    }
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..20_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let len = (state % 40) as usize;
        let mut b: Vec<u8> = (0..len).map(|i| (state >> ((i % 8) * 8)) as u8 ^ i as u8).collect();
        if state & 1 == 0 && b.len() >= 2 {
            b[0] = 0;
            b[1] = 0;
        }
        if state & 2 == 0 && b.len() >= 4 {
            b[2] = if state & 4 == 0 { 0x08 } else { 0x0D };
            b[3] %= 4;
        }
        let _ = parse_idx(&b);
        let _ = gunzip(&b, 1 << 16);
    }
}

#[test]
fn dataset_u8_scaled_and_flattened() {
    let s = u8_array(&[2, 2, 2], vec![0, 255, 51, 102, 1, 2, 3, 4]);
    let l = u8_array(&[2], vec![3, 1]);
    let d = dataset_from_arrays(s, l, None).unwrap();
    assert_eq!(d.x.dim(), (2, 4));
    assert_eq!(d.x[[0, 0]], 0.0);
    assert_eq!(d.x[[0, 1]], 1.0);
    assert!((d.x[[0, 2]] - 0.2).abs() < 1e-6);
    assert_eq!(d.y, vec![3, 1]);
    assert_eq!(d.sample_shape, vec![2, 2]);
    assert_eq!(d.classes, 4);
    assert_eq!(d.len(), 2);
}

#[test]
fn dataset_f32_kept_rank1_samples() {
    let s = f32_array(&[3], vec![-2.5, 0.0, 7.0]);
    let l = u8_array(&[3], vec![0, 1, 0]);
    let d = dataset_from_arrays(s, l, Some(5)).unwrap();
    assert_eq!(d.x.dim(), (3, 1));
    assert_eq!(d.x.column(0).to_vec(), vec![-2.5, 0.0, 7.0]);
    assert!(d.sample_shape.is_empty());
    assert_eq!(d.classes, 5);
}

#[test]
fn non_finite() {
    let l = || u8_array(&[2], vec![0, 1]);
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let s = f32_array(&[2, 2], vec![0.0, 1.0, bad, 2.0]);
        assert_eq!(
            dataset_from_arrays(s, l(), None).unwrap_err(),
            IdxError::NonFinite { index: 2 }
        );
    }
}

#[test]
fn label_errors() {
    let s = || u8_array(&[2, 1], vec![0, 1]);
    assert_eq!(
        dataset_from_arrays(s(), f32_array(&[2], vec![0.0, 1.0]), None).unwrap_err(),
        IdxError::LabelsNotU8
    );
    assert_eq!(
        dataset_from_arrays(s(), u8_array(&[2, 1], vec![0, 1]), None).unwrap_err(),
        IdxError::LabelsRank { rank: 2 }
    );
    assert_eq!(
        dataset_from_arrays(s(), u8_array(&[3], vec![0, 1, 1]), None).unwrap_err(),
        IdxError::CountMismatch { samples: 2, labels: 3 }
    );
    assert_eq!(
        dataset_from_arrays(s(), u8_array(&[2], vec![1, 5]), Some(2)).unwrap_err(),
        IdxError::LabelOutOfRange {
            index: 1,
            label: 5,
            classes: 2
        }
    );
}

#[test]
fn empty_dataset() {
    let s = u8_array(&[0, 4], vec![]);
    let l = u8_array(&[0], vec![]);
    assert_eq!(
        dataset_from_arrays(s.clone(), l.clone(), None).unwrap_err(),
        IdxError::Empty
    );
    let d = dataset_from_arrays(s, l, Some(10)).unwrap();
    assert_eq!(d.x.dim(), (0, 4));
    assert!(d.is_empty());
}

#[test]
fn shape_mismatch() {
    let l = || u8_array(&[2], vec![0, 1]);
    let e = dataset_from_arrays(u8_array(&[2, 3], vec![0; 5]), l(), None).unwrap_err();
    assert_eq!(
        e,
        IdxError::ShapeMismatch {
            dims: vec![2, 3],
            len: 5
        }
    );
    let e = dataset_from_arrays(u8_array(&[], vec![0]), l(), None).unwrap_err();
    assert!(matches!(e, IdxError::ShapeMismatch { .. }));
    let big = usize::MAX / 2;
    let e = dataset_from_arrays(u8_array(&[big, big], vec![]), l(), None).unwrap_err();
    assert!(matches!(e, IdxError::ShapeMismatch { .. }));
    let e = dataset_from_arrays(u8_array(&[2, 1], vec![0; 2]), u8_array(&[3], vec![0]), None).unwrap_err();
    assert!(matches!(e, IdxError::ShapeMismatch { .. }));
}

#[test]
fn gunzip_round_trip_limit_and_corruption() {
    let plain = idx(0x08, &[4], &[1, 2, 3, 4]);
    let z = gz(&plain);
    assert_eq!(gunzip(&z, 1 << 20).unwrap(), plain);
    assert_eq!(gunzip(&z, plain.len() as u64).unwrap(), plain);
    assert_eq!(
        gunzip(&z, plain.len() as u64 - 1).unwrap_err(),
        IdxError::TooLarge {
            limit: plain.len() as u64 - 1
        }
    );
    let bomb = gz(&vec![0u8; 1 << 20]);
    assert!(matches!(
        gunzip(&bomb, 1000).unwrap_err(),
        IdxError::TooLarge { limit: 1000 }
    ));
    let e = gunzip(&z[..z.len() / 2], 1 << 20).unwrap_err();
    assert!(matches!(e, IdxError::Gzip(_)), "{e:?}");
    let mut bad = z.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xFF;
    bad[mid + 1] ^= 0xFF;
    assert!(gunzip(&bad, 1 << 20).is_err());
}

#[test]
fn io_error_and_in_file() {
    let p = std::env::temp_dir().join("edgecl-idx-unit-does-not-exist.idx");
    let e = read_idx(&p).unwrap_err();
    assert!(matches!(e, IdxError::Io { .. }));
    assert!(e.to_string().contains("edgecl-idx-unit-does-not-exist"));
    let w = IdxError::ZeroRank.in_file(Path::new("a/b.idx"));
    assert_eq!(w.root(), &IdxError::ZeroRank);
    assert!(w.to_string().starts_with("a/b.idx: "));
}

#[test]
fn every_display_is_one_line() {
    let all = vec![
        IdxError::BadMagic {
            found: vec![0x1f, 0x8b, 8, 0],
        },
        IdxError::UnsupportedType { code: 0x0E },
        IdxError::ZeroRank,
        IdxError::Truncated { expected: 10, found: 3 },
        IdxError::TrailingBytes {
            expected: 10,
            found: 13,
        },
        IdxError::SizeOverflow { dims: vec![1, 2] },
        IdxError::ShapeMismatch {
            dims: vec![1, 2],
            len: 3,
        },
        IdxError::Io {
            path: "p".into(),
            message: "m".into(),
        },
        IdxError::Gzip("unexpected end".into()),
        IdxError::TooLarge { limit: 5 },
        IdxError::NonFinite { index: 4 },
        IdxError::LabelsNotU8,
        IdxError::LabelsRank { rank: 2 },
        IdxError::CountMismatch { samples: 1, labels: 2 },
        IdxError::LabelOutOfRange {
            index: 1,
            label: 5,
            classes: 2,
        },
        IdxError::Empty,
        IdxError::Missing {
            dir: "d".into(),
            what: "w".into(),
        },
        IdxError::Ambiguous {
            dir: "d".into(),
            what: "w".into(),
            candidates: vec!["a".into(), "b".into()],
        },
        IdxError::InFile {
            path: "x\ny".into(),
            source: Box::new(IdxError::Empty),
        }
        .root()
        .clone()
        .in_file(Path::new("x\ny")),
    ];
    for e in all {
        let s = e.to_string();
        assert!(!s.contains('\n') && !s.is_empty(), "{s:?}");
    }
}

//! The IDX reader on any bytes: `parse_idx` and the dataset built from two arrays must
//! return an error or a dataset, never panic.
#![no_main]

use edgecl::host::idx::{dataset_from_arrays, parse_idx};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(samples) = parse_idx(data) {
        let n = samples.dims.first().copied().unwrap_or(0);
        if let Ok(labels) =
            parse_idx(&[&[0, 0, 8, 1][..], &(n as u32).to_be_bytes(), &vec![0u8; n.min(1 << 16)]].concat())
        {
            let _ = dataset_from_arrays(samples, labels, None);
        }
    }
});

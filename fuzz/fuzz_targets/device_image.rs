//! The device's image decoders on any bytes: the backbone and stream images, the signed
//! device image and the config text must return an error or a valid value, never panic;
//! a backbone that parses must run (a window backbone on a window it quantised).
#![no_main]

use edgecl::device::{signed, Backbone, DeviceConfig, Stream};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// The public key of the seed `[7; 32]`, which signs the signed image in the corpus.
fn key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(|| edgecl::host::device::public_key(&[7; 32]))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = Backbone::parse(data) {
        if b.input() <= 1 << 16 {
            let mut pixels = vec![255u8; b.input()];
            if b.takes_windows() {
                let values: Vec<f32> = (0..b.input()).map(|i| i as f32 - 8.0).collect();
                let _ = b.quantise_window(&values, &mut pixels);
            }
            let mut out = vec![0f32; b.output()];
            let mut scratch = vec![0f32; b.scratch_len()];
            let _ = b.features(&pixels, &mut out, &mut scratch);
        }
    }
    if let Ok(s) = Stream::parse(data) {
        let mut px = vec![0u8; s.width().min(1 << 20)];
        let _ = s.train_sample(0, 0, &mut px);
    }
    let _ = signed::verify(data, key(), "netduinoplus2", 98304);
    let _ = DeviceConfig::from_bytes(data);
});

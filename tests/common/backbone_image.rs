//! Editing a backbone image behind a valid CRC, and the reason `Backbone::parse` gives
//! for a malformed one (tests/device.rs, tests/device_windows.rs).

use edgecl::device::{self, Backbone, DeviceError};

/// `image` with `edit` applied to its body and the CRC made right again.
pub fn edited(image: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut body = image[28..].to_vec();
    edit(&mut body);
    let mut out = image[..28].to_vec();
    out[20..24].copy_from_slice(&(body.len() as u32).to_le_bytes());
    out[24..28].copy_from_slice(&device::crc32(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

pub fn why(bytes: &[u8]) -> &'static str {
    match Backbone::parse(bytes) {
        Err(DeviceError::Malformed { why, .. }) => why,
        other => panic!("expected a malformed image, got {other:?}"),
    }
}

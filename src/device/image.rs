//! Reading the device's byte images in place: bounds-checked little-endian fields and the
//! header check (magic, version, body length, CRC) both images share.

use super::DeviceError;

/// CRC-32 (ISO-HDLC, the zlib/Ethernet one) of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    crate::learner::checkpoint::crc32(&[bytes])
}

/// A bounds-checked view of an image.
#[derive(Clone, Copy)]
pub(crate) struct Reader<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn slice(&self, at: usize, len: usize) -> Result<&'a [u8], DeviceError> {
        let end = at.checked_add(len).ok_or(DeviceError::Malformed {
            what: self.what,
            why: "a length overflows",
        })?;
        self.bytes.get(at..end).ok_or(DeviceError::Truncated {
            what: self.what,
            needed: end,
            got: self.bytes.len(),
        })
    }

    pub(crate) fn u16(&self, at: usize) -> Result<u16, DeviceError> {
        let b = self.slice(at, 2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&self, at: usize) -> Result<u32, DeviceError> {
        let b = self.slice(at, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn f32(&self, at: usize) -> Result<f32, DeviceError> {
        Ok(f32::from_bits(self.u32(at)?))
    }

    /// Checks magic, version, body length and CRC; returns the body, which starts at
    /// `header` and runs to the end of the image.
    pub(crate) fn body(
        &self,
        magic: &[u8; 4],
        version: u16,
        len_at: usize,
        header: usize,
    ) -> Result<&'a [u8], DeviceError> {
        if self.slice(0, 4)? != magic {
            return Err(DeviceError::BadMagic { what: self.what });
        }
        let got = self.u16(4)?;
        if got != version {
            return Err(DeviceError::Version {
                what: self.what,
                got,
                supported: version,
            });
        }
        let len = self.u32(len_at)? as usize;
        let stored = self.u32(len_at + 4)?;
        let body = self.slice(header, len)?;
        if header + len != self.bytes.len() {
            return Err(DeviceError::Malformed {
                what: self.what,
                why: "bytes after the body",
            });
        }
        let computed = crc32(body);
        if computed != stored {
            return Err(DeviceError::BadCrc {
                what: self.what,
                stored,
                computed,
            });
        }
        Ok(body)
    }
}

/// `n` rounded up to a multiple of 4.
pub(crate) fn pad4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

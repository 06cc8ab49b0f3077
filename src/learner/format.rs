//! The checkpoint format's constants, at the bottom so errors can name them.

/// A checkpoint's magic bytes.
pub const MAGIC: &[u8; 4] = b"ECCP";
/// The checkpoint format version this build writes and reads (3: the config hash is
/// FNV-1a over the config's postcard bytes; 2 hashed its `Debug` text).
pub const VERSION: u16 = 3;

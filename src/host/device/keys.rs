//! Ed25519 keys and their files: a key pair from the system's randomness, the public half
//! of a seed, and key files tagged with which half they hold.

use anyhow::{bail, ensure, Context, Result};

/// A new Ed25519 key pair from the operating system's randomness: the 32-byte secret
/// seed and the public key.
pub fn keygen() -> ([u8; 32], [u8; 32]) {
    let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::generate());
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&pair.sk.seed()[..]);
    (seed, *pair.pk)
}

/// The public key of a secret seed.
pub fn public_key(seed: &[u8; 32]) -> [u8; 32] {
    *ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(*seed)).pk
}

/// Lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Which half of a key pair a key file holds: its first word says (`edgecl keygen`
/// writes `edgecl-secret-key HEX` and `edgecl-public-key HEX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// The secret seed images are signed with (`edgecl export --sign`).
    Secret,
    /// The public key images are verified with (the firmware, `edgecl run --key`).
    Public,
}

impl KeyKind {
    /// The tag a key file of this kind starts with.
    pub fn tag(self) -> &'static str {
        match self {
            KeyKind::Secret => "edgecl-secret-key",
            KeyKind::Public => "edgecl-public-key",
        }
    }

    fn what(self) -> &'static str {
        match self {
            KeyKind::Secret => "secret",
            KeyKind::Public => "public",
        }
    }
}

/// A key file's text: its tag, a space, the 64 hex digits and a newline.
pub fn key_file_text(kind: KeyKind, key: &[u8; 32]) -> String {
    format!("{} {}\n", kind.tag(), to_hex(key))
}

/// The key in key file `text` (named `file` in errors), which must be of `kind`: a public
/// key given where the secret one is wanted (or the reverse), or a file without its tag,
/// is refused saying which file is which.
pub fn read_key_file(text: &str, kind: KeyKind, file: &str) -> Result<[u8; 32]> {
    let other = match kind {
        KeyKind::Secret => KeyKind::Public,
        KeyKind::Public => KeyKind::Secret,
    };
    let mut words = text.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some(tag), Some(hex), None) if tag == kind.tag() => {
            from_hex32(hex).with_context(|| format!("{file}: the {} key", kind.what()))
        }
        (Some(tag), Some(_), None) if tag == other.tag() => bail!(
            "{file} is a {} key ({}), but a {} key is wanted here: `edgecl keygen --out F` writes the secret key to F and the public key to F.pub{}",
            other.what(),
            other.tag(),
            kind.what(),
            match kind {
                KeyKind::Secret => "; sign with F",
                KeyKind::Public => "; verify with F.pub",
            }
        ),
        (Some(hex), None, None) if from_hex32(hex).is_ok() => bail!(
            "{file} holds a key without its tag, so whether it is secret or public cannot be told: a {} key file reads `{} HEX` (`edgecl keygen` writes them so)",
            kind.what(),
            kind.tag()
        ),
        _ => bail!("{file}: not a key file (a {} key file reads `{} HEX`, 64 hex digits)", kind.what(), kind.tag()),
    }
}

/// 32 bytes from 64 hex digits (surrounding whitespace ignored).
pub fn from_hex32(text: &str) -> Result<[u8; 32]> {
    let t = text.trim();
    ensure!(t.len() == 64 && t.is_ascii(), "a key is 64 hex digits");
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(t.as_bytes().chunks_exact(2)) {
        let s = std::str::from_utf8(pair).expect("ascii");
        *o = u8::from_str_radix(s, 16).with_context(|| format!("`{s}` is not hex"))?;
    }
    Ok(out)
}

//! `edgecl keygen`: an Ed25519 key pair for signing device images.

use anyhow::{Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};

/// `edgecl keygen`'s arguments.
#[derive(Args)]
pub struct KeygenArgs {
    /// Where to write the secret key (the public key goes to the same path + .pub).
    #[arg(long)]
    pub out: PathBuf,
}

/// `edgecl keygen`: writes the key pair (never over an existing key).
pub fn keygen(out: &Path) -> Result<()> {
    use edgecl::host::device::{key_file_text, keygen, to_hex, KeyKind};
    use std::io::Write;
    let (secret, public) = keygen();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(out)
        .with_context(|| format!("creating {} (an existing key is never overwritten)", out.display()))?;
    write!(f, "{}", key_file_text(KeyKind::Secret, &secret))?;
    let mut pub_path = out.as_os_str().to_owned();
    pub_path.push(".pub");
    let mut p = options.open(&pub_path).with_context(|| {
        format!(
            "creating {} (an existing key is never overwritten)",
            Path::new(&pub_path).display()
        )
    })?;
    write!(p, "{}", key_file_text(KeyKind::Public, &public))?;
    println!(
        "secret key {} (keep it), public key {}: {}",
        out.display(),
        Path::new(&pub_path).display(),
        to_hex(&public)
    );
    Ok(())
}

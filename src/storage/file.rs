//! Checkpoints in a file, for boards with a filesystem: each save writes a temporary
//! file beside the target, syncs it, renames it over the target and syncs the folder, so
//! the target is always one whole image, the old one or the new one.

use crate::learner::checkpoint::{self, CheckpointInfo};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A checkpoint file.
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    /// The checkpoint at `path` (its folder must exist).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileStore { path: path.into() }
    }

    fn temp(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".tmp");
        self.path.with_file_name(name)
    }

    /// Replaces the checkpoint with `image` (which must be a valid checkpoint) atomically.
    pub fn save(&self, image: &[u8]) -> io::Result<()> {
        let info = checkpoint::peek(image).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        self.write(&image[..info.len])
    }

    /// Replaces the file with `bytes` atomically: a temporary file beside it is written
    /// and synced, renamed over it, and the folder synced. On error the old file is as
    /// it was.
    pub fn write(&self, bytes: &[u8]) -> io::Result<()> {
        let temp = self.temp();
        let written = File::create(&temp).and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        });
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(e);
        }
        fs::rename(&temp, &self.path)?;
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        File::open(dir)?.sync_all()
    }

    /// The file's bytes (`None` when there is no file).
    pub fn read(&self) -> io::Result<Option<Vec<u8>>> {
        match fs::read(&self.path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The stored image when there is a valid one (`None` when there is no file); a file
    /// that is not a valid checkpoint is an error naming it.
    pub fn load(&self) -> io::Result<Option<(Vec<u8>, CheckpointInfo)>> {
        let Some(bytes) = self.read()? else {
            return Ok(None);
        };
        let info = checkpoint::peek(&bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", self.path.display())))?;
        Ok(Some((bytes, info)))
    }
}

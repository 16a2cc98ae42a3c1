//! Snapshot files: atomic writes and schema-checked reads. A file from a newer backlogctl, a
//! truncated file or plain garbage is a clear error naming the file, never a panic.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result, SnapshotError};
use crate::model::{SCHEMA_VERSION, Snapshot, printable};

/// Reads and checks a snapshot written by `backlogctl snapshot` (or by hand, per
/// docs/snapshot.md).
pub fn load(path: &Path) -> Result<Snapshot> {
    let text = fs::read_to_string(path).map_err(|e| Error::read(path, e))?;
    parse(&text).map_err(|reason| Error::Snapshot {
        path: path.to_path_buf(),
        reason,
    })
}

pub fn parse(text: &str) -> Result<Snapshot, SnapshotError> {
    // Look at the version first, so a newer layout is reported as such rather than as
    // whichever field happens not to parse.
    let value: serde_json::Value = serde_json::from_str(text).map_err(SnapshotError::NotJson)?;
    let version = value
        .get("schema_version")
        .and_then(|v| v.as_u64())
        .ok_or(SnapshotError::NoSchema)?;
    if version > u64::from(SCHEMA_VERSION) {
        return Err(SnapshotError::Newer {
            version,
            supported: SCHEMA_VERSION,
        });
    }
    let mut snap: Snapshot = serde_json::from_value(value).map_err(SnapshotError::Invalid)?;
    // Process names come from anyone (prctl): a file may carry what a live read would clean.
    for o in &mut snap.owners {
        o.comm = printable(&o.comm);
        o.cmdline = printable(&o.cmdline);
    }
    if snap.samples.is_empty() {
        return Err(SnapshotError::NoSamples);
    }
    snap.resolve_socket_files();
    // Every reader (windows, rates, the plot's time axis) takes samples in time order.
    if let Some(w) = snap
        .samples
        .windows(2)
        .find(|w| w[1].elapsed_us < w[0].elapsed_us)
    {
        return Err(SnapshotError::OutOfOrder {
            before: w[0].elapsed_us,
            after: w[1].elapsed_us,
        });
    }
    Ok(snap)
}

/// A file that appears under its final name only when complete: written beside the
/// destination, flushed to disk, then renamed over it. Created up front so that an
/// unwritable path fails before any sampling.
pub struct AtomicFile {
    dest: PathBuf,
    tmp: PathBuf,
    file: BufWriter<File>,
    committed: bool,
}

impl AtomicFile {
    pub fn create(dest: &Path) -> Result<Self> {
        let werr = |source| Error::Write {
            path: dest.to_path_buf(),
            source,
        };
        let name = dest.file_name().ok_or_else(|| {
            werr(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a file name",
            ))
        })?;
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if dest.is_dir() {
            return Err(werr(io::Error::new(
                io::ErrorKind::IsADirectory,
                "is a directory",
            )));
        }
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            name.to_string_lossy(),
            std::process::id()
        ));
        let file = File::create(&tmp).map_err(werr)?;
        Ok(AtomicFile {
            dest: dest.to_path_buf(),
            tmp,
            file: BufWriter::new(file),
            committed: false,
        })
    }

    pub fn writer(&mut self) -> &mut impl Write {
        &mut self.file
    }

    /// Flushes, syncs and renames into place.
    pub fn commit(mut self) -> Result<()> {
        let dest = self.dest.clone();
        let werr = |source| Error::Write {
            path: dest.clone(),
            source,
        };
        self.file.flush().map_err(werr)?;
        self.file.get_ref().sync_all().map_err(werr)?;
        fs::rename(&self.tmp, &self.dest).map_err(werr)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

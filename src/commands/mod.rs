//! One function per command: a page of wiring each, from resolved options to a source, the
//! core and a renderer. No flag parsing, no decision, no formatting here.

mod completions;
mod doctor;
mod explain;
mod exporter;
mod lab;
mod metrics;
mod plot;
mod snapshot;
mod watch;

pub(crate) use completions::completions;
pub(crate) use doctor::doctor;
pub(crate) use explain::explain;
pub(crate) use exporter::exporter;
pub(crate) use lab::lab;
pub(crate) use metrics::metrics;
pub(crate) use plot::plot;
pub(crate) use snapshot::snapshot;
pub(crate) use watch::watch;

use std::io::Write;

use crate::error::{Error, Result};
use crate::model::Snapshot;
use crate::store::AtomicFile;

/// Writes JSON to `path` atomically (temporary file, fsync, rename), or to `out`.
fn write_json<T: serde::Serialize>(
    out: &mut dyn Write,
    file: Option<(AtomicFile, std::path::PathBuf)>,
    value: &T,
    compact: bool,
) -> Result<()> {
    let emit = |w: &mut dyn Write| -> std::io::Result<()> {
        // serde_json writes a few bytes at a time: through `dyn Write` each is a call that
        // cannot be inlined. A buffer of a known type takes them inline and passes them on in
        // 64 KiB writes (10,000 TCP + 10,000 Unix listeners are 7 MB of JSON: the calls were
        // 17% of the snapshot's time).
        let mut w = std::io::BufWriter::with_capacity(64 * 1024, w);
        let res = if compact {
            serde_json::to_writer(&mut w, value)
        } else {
            crate::render::pretty::to_writer(&mut w, value)
        };
        res.map_err(std::io::Error::from)?;
        w.write_all(b"\n")?;
        w.flush()
    };
    match file {
        Some((mut f, path)) => {
            emit(f.writer()).map_err(|source| Error::Write { path, source })?;
            f.commit()
        }
        None => emit(out).map_err(Error::Output),
    }
}

/// Opens `path` for an atomic write before any work, so that an unwritable path fails at once.
fn open_output(
    path: &Option<std::path::PathBuf>,
) -> Result<Option<(AtomicFile, std::path::PathBuf)>> {
    path.as_ref()
        .map(|p| AtomicFile::create(p).map(|f| (f, p.clone())))
        .transpose()
}

/// Targets that nothing in the snapshot listens on, as one warning line each.
fn warn_unmatched(err: &mut dyn Write, snap: &Snapshot) {
    for t in snap.unmatched_targets() {
        let _ = writeln!(
            err,
            "warning: nothing listens on {t} in this network namespace"
        );
    }
}

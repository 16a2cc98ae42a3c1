//! `plot SNAPSHOT`: a recorded file → its diagnosis and timeline → the SVG, on stdout or `-o FILE`.

use std::io::Write;

use super::open_output;
use crate::Status;
use crate::error::{Error, Result};
use crate::options::Plot;
use crate::{pipeline, plot, render};

pub(crate) fn plot(o: Plot, out: &mut dyn Write) -> Result<Status> {
    // Writing the picture over the recording it is drawn from would lose the recording.
    if let Some(out_path) = &o.path
        && same_file(out_path, &o.snapshot)
    {
        return Err(Error::BadInput(format!(
            "-o {} is the snapshot itself; write the picture to another file, e.g. -o burst.svg",
            out_path.display()
        )));
    }
    // The output first: an unwritable path fails before any work, and leaves nothing behind.
    let file = open_output(&o.path)?;
    let d = pipeline::from_file(&o.snapshot, &o.scope)?;
    let timeline = plot::timeline(&d.snapshot, &d.report, render::plot::COLUMNS);
    match file {
        Some((mut f, path)) => {
            render::plot::timeline(f.writer(), &timeline)
                .map_err(|source| Error::Write { path, source })?;
            f.commit()?;
        }
        None => {
            render::plot::timeline(out, &timeline).map_err(Error::Output)?;
            out.flush().map_err(Error::Output)?;
        }
    }
    Ok(Status::Ok)
}

/// Whether two paths name the same existing file (device and inode).
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => (x.dev(), x.ino()) == (y.dev(), y.ino()),
        _ => false,
    }
}

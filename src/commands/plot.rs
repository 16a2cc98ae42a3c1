use std::io::Write;

use super::open_output;
use crate::Status;
use crate::error::{Error, Result};
use crate::options::Plot;
use crate::{pipeline, plot, render};

pub fn plot(o: Plot, out: &mut dyn Write) -> Result<Status> {
    // The output first: an unwritable path fails before any work, and leaves nothing behind.
    let file = open_output(&o.path)?;
    let d = pipeline::from_file(&o.snapshot, &o.scope)?;
    let timeline = plot::timeline(&d.snapshot, &d.report, plot::COLUMNS);
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

//! `watch`: the sampling loop → the refreshing view, and with `--record FILE` the recording.

use std::io::Write;

use super::open_output;
use crate::Status;
use crate::collect::Kernel;
use crate::error::{Error, Result};
use crate::options::Watch;
use crate::render::watch::Printer;

pub(crate) fn watch(o: Watch, out: &mut dyn Write, err: &mut dyn Write) -> Result<Status> {
    // The recording's file first: an unwritable path fails before the run, not after it.
    let file = open_output(&o.record)?;
    let mut view = Printer {
        out,
        format: o.format,
        line: Vec::new(),
    };
    let recording = crate::watch::run(Kernel::open()?, &o.scope, &o.run, &mut view, err)?;
    if let (Some((mut f, path)), Some(snap)) = (file, recording) {
        serde_json::to_writer(f.writer(), &snap).map_err(|e| Error::Write {
            path,
            source: e.into(),
        })?;
        f.commit()?;
    }
    Ok(Status::Ok)
}

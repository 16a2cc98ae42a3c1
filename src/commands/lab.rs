use std::io::Write;

use crate::Status;
use crate::error::{Error, Result};
use crate::options::Lab;
use crate::render;

pub fn lab(o: Lab, out: &mut dyn Write) -> Result<Status> {
    let report = crate::lab::run(&o.lab)?;
    if o.output.json {
        serde_json::to_writer_pretty(&mut *out, &report).map_err(|e| Error::Output(e.into()))?;
        writeln!(out).map_err(Error::Output)?;
    } else {
        render::lab::text(out, &report, o.output.style()).map_err(Error::Output)?;
    }
    out.flush().map_err(Error::Output)?;
    Ok(Status::Ok)
}

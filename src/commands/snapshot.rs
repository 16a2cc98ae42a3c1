//! `snapshot`: a live recording window → its JSON, on stdout or `-o FILE`.

use std::io::Write;

use super::{open_output, warn_unmatched, write_json};
use crate::Status;
use crate::collect::Kernel;
use crate::error::Result;
use crate::options::Snapshot;
use crate::pipeline;

pub(crate) fn snapshot(o: Snapshot, out: &mut dyn Write, err: &mut dyn Write) -> Result<Status> {
    // Open the output first: an unwritable path should fail before a long window, not after.
    let file = open_output(&o.path)?;
    let snap = pipeline::record(Kernel::open()?, &o.scope, o.sampling, o.owners)?;
    warn_unmatched(err, &snap);
    write_json(out, file, &snap, o.compact)?;
    Ok(Status::Ok)
}

use std::io::Write;

use crate::Status;
use crate::error::Result;
use crate::options::Watch;
use crate::store::AtomicFile;

pub fn watch(o: Watch, out: &mut dyn Write, err: &mut dyn Write) -> Result<Status> {
    let record = o.record.as_deref().map(AtomicFile::create).transpose()?;
    crate::watch::run(o.scope, &o.run, out, err, record)?;
    Ok(Status::Ok)
}

use std::io::Write;

use crate::Status;
use crate::error::{Error, Result};
use crate::options::{Metrics, Owners, Sampling};
use crate::pipeline;
use crate::render;

pub fn metrics(o: Metrics, out: &mut dyn Write) -> Result<Status> {
    let mut file = o
        .path
        .as_deref()
        .map(crate::store::AtomicFile::create)
        .transpose()?;
    let one = Sampling {
        window: std::time::Duration::ZERO,
        interval: std::time::Duration::ZERO,
        syn_recv: false,
    };
    let snap = pipeline::record(&o.scope, one, Owners::All)?;
    match file.as_mut() {
        Some(f) => {
            let path = o.path.clone().unwrap_or_default();
            render::metrics::write(f.writer(), &snap)
                .map_err(|source| Error::Write { path, source })?;
        }
        None => render::metrics::write(out, &snap).map_err(Error::Output)?,
    }
    if let Some(f) = file {
        f.commit()?;
    }
    Ok(Status::Ok)
}

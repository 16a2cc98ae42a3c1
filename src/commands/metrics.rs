//! `metrics`: one scrape of the collector → the Prometheus exposition, on stdout or `-o FILE`.

use std::io::Write;
use std::time::Duration;

use crate::Status;
use crate::collect::Collector;
use crate::error::{Error, Result};
use crate::model::Scraped;
use crate::options::Metrics;
use crate::render;

/// How long one `metrics` run may take to read every namespace before the late ones are
/// written as failed (`backlogctl_netns_scrape_success` 0).
const DEADLINE: Duration = Duration::from_secs(30);

pub(crate) fn metrics(o: Metrics, out: &mut dyn Write) -> Result<Status> {
    let mut file = o
        .path
        .as_deref()
        .map(crate::store::AtomicFile::create)
        .transpose()?;
    let scrape: Scraped = Collector::new(o.namespaces, o.scope, DEADLINE)
        .scrape()?
        .into_only_error()?
        .into();
    match file.as_mut() {
        Some(f) => {
            let path = o.path.clone().unwrap_or_default();
            render::metrics::write(f.writer(), &scrape, None)
                .map_err(|source| Error::Write { path, source })?;
        }
        None => render::metrics::write(out, &scrape, None).map_err(Error::Output)?,
    }
    if let Some(f) = file {
        f.commit()?;
    }
    Ok(Status::Ok)
}

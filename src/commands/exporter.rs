use std::io::Write;

use crate::Status;
use crate::error::Result;
use crate::exporter::{self, http::Limits};
use crate::options::Exporter;
use crate::scrape::Collector;

pub fn exporter(o: Exporter, log: &mut dyn Write) -> Result<Status> {
    exporter::run(
        exporter::Options {
            listen: o.listen,
            collector: Collector::new(o.namespaces, o.scope, o.timeout),
            max_connections: o.max_connections,
            limits: Limits::default(),
        },
        log,
    )
}

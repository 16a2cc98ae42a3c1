use std::io::Write;

use crate::Status;
use crate::collect::{Collector, Namespaces};
use crate::error::Result;
use crate::exporter::{self, http::Limits};
use crate::options::Exporter;

pub fn exporter(o: Exporter, log: &mut dyn Write) -> Result<Status> {
    // A mistyped --netns or --pid fails now, not as a failed namespace at every scrape.
    if let Namespaces::One(which) = &o.namespaces {
        crate::source::netns::check(which)?;
    }
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

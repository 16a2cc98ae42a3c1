//! `exporter`: the namespace and `--web.config.file` checked first → the collector over HTTP.

use std::io::Write;

use crate::Status;
use crate::collect::{Collector, Namespaces};
use crate::error::Result;
use crate::exporter::{self, http::Limits};
use crate::options::Exporter;

pub(crate) fn exporter(o: Exporter, log: &mut dyn Write) -> Result<Status> {
    // A mistyped --netns or --pid fails now, not as a failed namespace at every scrape.
    if let Namespaces::One(which) = &o.namespaces {
        crate::source::netns::check(which)?;
    }
    // The whole file is checked before anything listens: a bad one is one error, never a
    // server that starts without the TLS or the auth it asked for.
    let web = match &o.web_config_file {
        Some(path) => Some(exporter::web_config::load(path)?),
        None => None,
    };
    // A few descriptors per namespace stay open between scrapes (collect::held).
    crate::collect::raise_fd_limit();
    exporter::run(
        exporter::Options {
            listen: o.listen,
            collector: Collector::new(o.namespaces, o.scope, o.timeout),
            max_connections: o.max_connections,
            limits: Limits::default(),
            web,
        },
        log,
    )
}

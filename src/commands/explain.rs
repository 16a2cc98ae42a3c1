//! `explain [NAME]`: a catalogue entry and its value here now → its renderer; no NAME: the list.

use std::io::Write;

use crate::Status;
use crate::catalogue;
use crate::error::{Error, Result};
use crate::options::Explain;
use crate::render;
use crate::source;

pub(crate) fn explain(o: Explain, out: &mut dyn Write) -> Result<Status> {
    let Some(name) = o.name else {
        render::explain::list(out).map_err(Error::Output)?;
        return Ok(Status::Ok);
    };
    let Some(entry) = catalogue::find(&name) else {
        return Err(Error::BadInput(format!(
            "unknown name {name:?}; did you mean {}? (`backlogctl explain` lists them all)",
            catalogue::closest(&name)
        )));
    };
    let counters = source::netstat::read().ok().map(|(c, _)| c);
    let value = render::explain::now(entry, counters.as_ref(), |sysctl| {
        std::fs::read_to_string(source::sysctl::path_of(sysctl))
            .ok()
            // One line: ip_local_port_range holds two numbers apart by a tab.
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
    });
    render::explain::entry(out, entry, value.as_deref(), o.style).map_err(Error::Output)?;
    Ok(Status::Ok)
}

//! `lab`: the lab's run → its report (text or JSON) and, with `--plot FILE`, its picture.

use std::io::Write;

use super::open_output;
use crate::Status;
use crate::error::{Error, Result};
use crate::lab::{LabFamily, LabReport, Outcome};
use crate::options::Lab;
use crate::{plot, render};

pub(crate) fn lab(o: Lab, out: &mut dyn Write) -> Result<Status> {
    // The picture's file first: an unwritable path fails before the burst, not after it.
    let picture = open_output(&o.plot)?;
    let report = crate::lab::run(&o.lab)?;
    if o.output.json {
        serde_json::to_writer_pretty(&mut *out, &report).map_err(|e| Error::Output(e.into()))?;
        writeln!(out).map_err(Error::Output)?;
    } else {
        render::lab::text(out, &report, o.output.style()).map_err(Error::Output)?;
    }
    out.flush().map_err(Error::Output)?;
    if let Some((mut f, path)) = picture {
        draw(f.writer(), &report).map_err(|source| Error::Write { path, source })?;
        f.commit()?;
    }
    Ok(Status::Ok)
}

/// The lab's picture: the clients' side, then (with `--veth`) their namespace's connections
/// on the server's time axis, then the server's timeline.
fn draw(w: &mut dyn Write, r: &LabReport) -> std::io::Result<()> {
    let s = &r.settings;
    // In the lab's order (served first).
    let outcomes: Vec<(Outcome, usize)> = r.outcomes.iter().map(|(o, n)| (*o, *n)).collect();
    let mut clients = plot::clients(
        &outcomes,
        &r.connect_ms,
        s.clients,
        s.connect_timeout_ms as f64,
    );
    // A Unix connect is never retried: no whole-second steps to mark.
    clients.syn_retries = s.family == LabFamily::Tcp;
    let timeline = plot::timeline(&r.recording, &r.doctor, render::plot::COLUMNS);
    let remote = r.client_side.as_ref().map(|c| {
        plot::remote_plot(
            &c.recording,
            &c.doctor,
            c.server,
            c.offset_us,
            &timeline.axis,
        )
    });
    render::plot::lab(w, &timeline, &clients, remote.as_ref(), r)
}

//! `doctor`: a live window, a recorded file or every namespace → the diagnosis → its text or JSON.

use std::io::Write;

use crate::Status;
use crate::allns;
use crate::collect::Kernel;
use crate::error::{Error, Result};
use crate::options::{Doctor, Input};
use crate::pipeline;
use crate::render;

pub(crate) fn doctor(o: Doctor, out: &mut dyn Write) -> Result<Status> {
    let style = o.output.style();
    let verdict = match &o.input {
        Input::AllNamespaces(sampling) => {
            let all = allns::diagnose(&o.scope, *sampling, o.owners)?;
            match o.output.json {
                true => render::allns::json(out, &all)?,
                false => render::allns::text(out, &all, style)?,
            }
            all.verdict
        }
        Input::Live(sampling) => {
            let d = pipeline::live(Kernel::open()?, &o.scope, *sampling, o.owners, o.trace)?;
            report(out, &d.report, o.output.json, style)?;
            d.report.verdict
        }
        Input::File(path) => {
            let d = pipeline::from_file(path, &o.scope)?;
            report(out, &d.report, o.output.json, style)?;
            d.report.verdict
        }
    };
    out.flush().map_err(Error::Output)?;
    Ok(Status::of(verdict))
}

fn report(
    out: &mut dyn Write,
    r: &crate::doctor::Report,
    json: bool,
    style: render::Style,
) -> Result<()> {
    match json {
        true => render::json(out, r),
        false => render::text(out, r, style),
    }
}

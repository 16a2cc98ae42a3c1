//! `completions SHELL`: the CLI's clap definitions → clap_complete's script for SHELL, on stdout.

use std::io::Write;

use crate::Status;
use crate::cli::Cli;
use crate::error::{Error, Result};
use crate::options::Completions;

pub(crate) fn completions(o: Completions, out: &mut dyn Write) -> Result<Status> {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    clap_complete::generate(o.shell, &mut cmd, "backlogctl", out);
    out.flush().map_err(Error::Output)?;
    Ok(Status::Ok)
}

//! backlogctl: why clients of a Linux TCP server get `Connection reset by peer` or connect
//! timeouts when connections arrive in bursts, and what to change.
//!
//! The architecture, from the kernel to the page:
//! - `source::*` read the kernel (netlink inet_diag, `/proc/thread-self/net`, `/proc/sys`,
//!   `/proc/PID/fd`, the reset tracepoint); `collect` drives them through one seam into a
//!   `model::Snapshot` (the plain data every layer shares), `store` reads and writes snapshots;
//! - `doctor` (pure) turns a snapshot into a report with one remedy plan per listener;
//!   `pipeline` chains record → owners → diagnosis for every command that diagnoses, `allns`
//!   does it for every namespace; `watch` and `lab` are the live loops; `plot` computes what a
//!   timeline picture shows; `catalogue` names every counter and sysctl once;
//! - `render::*` write every report; `cli` mirrors the flags, `options` resolves them once,
//!   `commands` wire each command, `exporter` serves the metrics over HTTP; `error` is the one
//!   error type. This file only dispatches. Nothing prints on its own, so a closed stdout is an
//!   error value that `main` turns into a quiet exit.

#![warn(unreachable_pub)]

mod allns;
pub mod catalogue;
pub mod cli;
pub mod collect;
mod commands;
pub mod doctor;
pub mod error;
pub(crate) mod exporter;
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod lab;
pub mod model;
pub(crate) mod options;
pub mod pipeline;
pub mod plot;
pub mod render;
pub mod source;
pub mod store;
pub(crate) mod watch;

use std::io::Write;
use std::process::ExitCode;

pub use error::{Error, Result};

use cli::Cli;
use options::Command;

/// How a successful run ends. `doctor` maps its worst finding onto these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Ok = 0,
    Warning = 1,
    Critical = 2,
}

impl Status {
    pub fn exit_code(self) -> ExitCode {
        ExitCode::from(self as u8)
    }

    /// doctor's verdict as an exit status.
    pub fn of(verdict: doctor::Severity) -> Status {
        match verdict {
            doctor::Severity::Ok => Status::Ok,
            doctor::Severity::Warning => Status::Warning,
            doctor::Severity::Critical => Status::Critical,
        }
    }
}

/// Exit code for every `Error`.
pub const EXIT_ERROR: u8 = 3;

pub fn run(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<Status> {
    let resolved = options::resolve(cli)?;
    // First, before any netlink socket or thread exists: namespaces are per thread.
    if let Some(which) = &resolved.namespace {
        source::netns::enter(which)?;
    }
    match resolved.command {
        Command::Doctor(o) => commands::doctor(o, out),
        Command::Snapshot(o) => commands::snapshot(o, out, err),
        Command::Watch(o) => commands::watch(o, out, err),
        Command::Lab(o) => commands::lab(o, out),
        Command::Plot(o) => commands::plot(o, out),
        Command::Explain(o) => commands::explain(o, out),
        Command::Metrics(o) => commands::metrics(o, out),
        Command::Exporter(o) => commands::exporter(o, err),
        Command::Completions(o) => commands::completions(o, out),
    }
}

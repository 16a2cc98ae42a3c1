//! backlogctl: why clients of a Linux TCP server get `Connection reset by peer` or connect
//! timeouts when connections arrive in bursts, and what to change.
//!
//! `run` wires the pieces: command-line values are checked (`cli`), the live kernel is read
//! into a `model::Snapshot` (`record`, over `source::*`), and the result is written to the
//! writer it is given. Nothing here prints on its own, so a closed stdout is an error value that
//! `main` turns into a quiet exit.

pub mod cli;
pub mod doctor;
pub mod error;
pub mod model;
pub mod record;
pub mod render;
pub mod source;
pub mod store;

use std::io::{self, Write};
use std::process::ExitCode;

pub use error::{Error, Result};

use cli::{Cli, Command, DoctorArgs, SnapshotArgs};
use record::{Plan, Scope};

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
}

/// Exit code for every `Error`.
pub const EXIT_ERROR: u8 = 3;

pub fn run(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<Status> {
    match cli.command {
        Command::Snapshot(args) => snapshot(args, out, err),
        Command::Doctor(args) => doctor_cmd(args, out),
    }
}

fn doctor_cmd(args: DoctorArgs, out: &mut dyn Write) -> Result<Status> {
    let targets = cli::parse_targets(&args.targets)?;
    let snap = match &args.from {
        Some(path) => {
            let mut snap = store::load(path)?;
            if !targets.is_empty() {
                restrict(&mut snap, &targets);
            }
            snap
        }
        None => {
            let plan = Plan {
                window: cli::parse_duration("--window", &args.window)?,
                interval: cli::parse_duration("--sample-interval", &args.sample_interval)?,
            };
            record::record(&Scope::new(targets), &plan)?
        }
    };
    let report = doctor::diagnose(&snap);
    if args.json {
        render::json(out, &report)?;
    } else {
        render::text(out, &report, use_color())?;
    }
    out.flush().map_err(Error::Output)?;
    Ok(match report.verdict {
        doctor::Severity::Ok => Status::Ok,
        doctor::Severity::Warning => Status::Warning,
        doctor::Severity::Critical => Status::Critical,
    })
}

/// Narrows a recorded snapshot to the given targets, as if it had been recorded with them.
fn restrict(snap: &mut model::Snapshot, targets: &[cli::Target]) {
    snap.targets = targets.iter().map(|t| t.to_string()).collect();
    for s in &mut snap.samples {
        s.listeners.retain(|l| targets.iter().any(|t| t.matches(l)));
    }
    let inodes: Vec<u64> = snap
        .samples
        .iter()
        .flat_map(|s| s.listeners.iter().map(|l| l.inode))
        .collect();
    snap.owners.retain(|o| inodes.contains(&o.inode));
}

/// Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org).
fn use_color() -> bool {
    use std::io::IsTerminal;
    io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn snapshot(args: SnapshotArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<Status> {
    let scope = Scope::new(cli::parse_targets(&args.targets)?);
    let plan = Plan {
        window: cli::parse_duration("--window", &args.window)?,
        interval: cli::parse_duration("--sample-interval", &args.sample_interval)?,
    };
    // Open the output first: an unwritable path should fail before a long window, not after.
    let mut file = args
        .output
        .as_deref()
        .map(store::AtomicFile::create)
        .transpose()?;
    let snap = record::record(&scope, &plan)?;
    for t in &scope.targets {
        let seen = snap
            .samples
            .iter()
            .any(|s| s.listeners.iter().any(|l| t.matches(l)));
        if !seen {
            let _ = writeln!(
                err,
                "warning: nothing listens on {t} in this network namespace"
            );
        }
    }
    match file.as_mut() {
        Some(f) => {
            write_json(f.writer(), &snap, args.compact).map_err(|e| match e {
                Error::Output(source) => Error::Write {
                    path: args.output.clone().unwrap_or_default(),
                    source,
                },
                other => other,
            })?;
            if let Some(f) = file {
                f.commit()?;
            }
        }
        None => write_json(out, &snap, args.compact)?,
    }
    Ok(Status::Ok)
}

fn write_json(w: &mut dyn Write, snap: &model::Snapshot, compact: bool) -> Result<()> {
    let res = if compact {
        serde_json::to_writer(&mut *w, snap)
    } else {
        serde_json::to_writer_pretty(&mut *w, snap)
    };
    res.map_err(|e| Error::Output(io::Error::from(e)))?;
    w.write_all(b"\n")
        .and_then(|_| w.flush())
        .map_err(Error::Output)
}

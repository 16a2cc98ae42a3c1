//! backlogctl: why clients of a Linux TCP server get `Connection reset by peer` or connect
//! timeouts when connections arrive in bursts, and what to change.
//!
//! `run` wires the pieces: command-line values are checked (`cli`), the live kernel is read
//! into a `model::Snapshot` (`record`, over `source::*`), and the result is written to the
//! writer it is given. Nothing here prints on its own, so a closed stdout is an error value that
//! `main` turns into a quiet exit.

mod allns;
pub mod cli;
pub mod doctor;
pub mod error;
pub mod explain;
pub mod lab;
pub mod metrics;
pub mod model;
pub mod record;
pub mod render;
pub mod source;
pub mod store;
pub mod watch;

use std::io::{self, Write};
use std::process::ExitCode;

pub use error::{Error, Result};

use cli::{
    Cli, Command, CompletionsArgs, DoctorArgs, ExplainArgs, LabArgs, MetricsArgs, SnapshotArgs,
    WatchArgs,
};
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
    // First, before any netlink socket or thread exists: namespaces are per thread.
    let which = match (&cli.netns, cli.pid) {
        (Some(n), _) => Some(source::netns::Which::Named(n.clone())),
        (None, Some(pid)) => Some(source::netns::Which::Pid(pid)),
        _ => None,
    };
    if let Some(which) = &which {
        source::netns::enter(which)?;
    }
    match cli.command {
        Command::Snapshot(args) => snapshot(args, out, err),
        Command::Doctor(args) => doctor_cmd(args, out),
        Command::Watch(args) => watch_cmd(args, out),
        Command::Lab(args) => lab_cmd(args, which.is_some(), out),
        Command::Explain(args) => explain_cmd(args, out),
        Command::Metrics(args) => metrics_cmd(args, out),
        Command::Completions(args) => completions_cmd(args, out),
    }
}

fn doctor_cmd(args: DoctorArgs, out: &mut dyn Write) -> Result<Status> {
    let targets = model::parse_targets(&args.targets)?;
    if args.all_netns {
        let plan = Plan {
            window: cli::parse_duration("--window", &args.window)?,
            interval: cli::parse_duration("--sample-interval", &args.sample_interval)?,
        };
        let verdict = allns::run(Scope::new(targets), plan, args.json, use_color(), out)?;
        return Ok(status_of(verdict));
    }
    let snap = match &args.from {
        Some(path) => {
            let mut snap = store::load(path)?;
            if snap.netns.pid.is_some() || !snap.owners.is_empty() {
                snap.gaps.push(model::Gap::new(
                    "recorded-pids",
                    format!(
                        "this snapshot was recorded {}: the PIDs in its commands (nsenter -t, kill -HUP, \
                         --pid) name the processes of then; check they still do before running them",
                        crate::watch::rfc3339(snap.started_unix_ms)
                    ),
                ));
            }
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
            let extras = record::Extras {
                force_syn_recv: args.syn_recv,
                owners: false,
            };
            let mut snap = record::record_with(&Scope::new(targets), &plan, extras)?;
            if args.no_processes {
                snap.gaps.push(model::Gap::new(
                    "process-owners",
                    "not looked up (--no-processes)",
                ));
            } else {
                name_processes(&mut snap);
            }
            snap
        }
    };
    let report = doctor::diagnose(&snap);
    if args.json {
        render::json(out, &report)?;
    } else {
        render::text(out, &report, use_color())?;
    }
    out.flush().map_err(Error::Output)?;
    Ok(status_of(report.verdict))
}

/// Up to this many listeners, doctor names the process of each; beyond, only of those with
/// findings: reading /proc/*/fd costs about 2.5 us per descriptor (benches/sample_cost.rs).
const NAME_ALL_UP_TO: usize = 64;

fn name_processes(snap: &mut model::Snapshot) {
    let all = record::listener_inodes(snap);
    if all.len() <= NAME_ALL_UP_TO {
        return record::attribute_owners(snap, &all);
    }
    let troubled: std::collections::HashSet<u64> = doctor::diagnose(snap)
        .findings
        .iter()
        .flat_map(|f| f.inodes.iter().copied())
        .collect();
    let skipped = all.len() - troubled.len();
    record::attribute_owners(snap, &troubled);
    snap.gaps.push(model::Gap::new(
        "process-owners",
        format!(
            "processes named only for the {} listener(s) with findings; {skipped} others not looked up \
             (naming every process reads /proc/*/fd, as `ss -p` does; `backlogctl snapshot` names them all)",
            troubled.len()
        ),
    ));
}

fn status_of(verdict: doctor::Severity) -> Status {
    match verdict {
        doctor::Severity::Ok => Status::Ok,
        doctor::Severity::Warning => Status::Warning,
        doctor::Severity::Critical => Status::Critical,
    }
}

fn explain_cmd(args: ExplainArgs, out: &mut dyn Write) -> Result<Status> {
    let w = |r: io::Result<()>| r.map_err(Error::Output);
    let Some(name) = args.name else {
        w(writeln!(out, "Known names (backlogctl explain NAME):"))?;
        for e in explain::ENTRIES {
            w(writeln!(out, "  {}", e.name))?;
        }
        return Ok(Status::Ok);
    };
    let Some(entry) = explain::find(&name) else {
        return Err(Error::BadInput(format!(
            "unknown name {name:?}; did you mean {}? (`backlogctl explain` lists them all)",
            explain::closest(&name)
        )));
    };
    let counters = source::netstat::read().ok().map(|(c, _)| c);
    let value = explain::current(entry, counters.as_ref(), |sysctl| {
        std::fs::read_to_string(source::sysctl::path_of(sysctl))
            .ok()
            .map(|v| v.trim().to_string())
    });
    let full = match entry.kind {
        explain::Kind::Counter(k) => k.to_string(),
        explain::Kind::Sysctl(k) => k.to_string(),
        explain::Kind::Field => entry.name.to_string(),
    };
    w(writeln!(out, "{full}"))?;
    w(render::wrap_block(out, entry.text, "  ", "  "))?;
    if let Some(v) = value {
        w(writeln!(out, "  Now, in this network namespace: {v}"))?;
    }
    w(writeln!(
        out,
        "  Source: docs/kernel.md ({})",
        entry.reference
    ))?;
    Ok(Status::Ok)
}

fn metrics_cmd(args: MetricsArgs, out: &mut dyn Write) -> Result<Status> {
    let scope = Scope::new(model::parse_targets(&args.targets)?);
    let mut file = args
        .output
        .as_deref()
        .map(store::AtomicFile::create)
        .transpose()?;
    let plan = Plan {
        window: std::time::Duration::ZERO,
        interval: std::time::Duration::ZERO,
    };
    let snap = record::record(&scope, &plan)?;
    match file.as_mut() {
        Some(f) => {
            let path = args.output.clone().unwrap_or_default();
            metrics::write(f.writer(), &snap).map_err(|source| Error::Write { path, source })?;
        }
        None => metrics::write(out, &snap).map_err(Error::Output)?,
    }
    if let Some(f) = file {
        f.commit()?;
    }
    Ok(Status::Ok)
}

fn completions_cmd(args: CompletionsArgs, out: &mut dyn Write) -> Result<Status> {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "backlogctl", out);
    out.flush().map_err(Error::Output)?;
    Ok(Status::Ok)
}

fn lab_cmd(args: LabArgs, in_netns: bool, out: &mut dyn Write) -> Result<Status> {
    if in_netns {
        return Err(Error::BadInput(
            "lab makes its own private namespace; drop --netns/--pid".into(),
        ));
    }
    let ack_delay = cli::parse_duration("--ack-delay", &args.ack_delay)?;
    if ack_delay > std::time::Duration::from_millis(200) {
        return Err(Error::BadInput(
            "--ack-delay can be at most 200ms: the kernel sends the held-back ACK by then anyway"
                .into(),
        ));
    }
    if args.clients == 0 || args.clients > 20_000 {
        return Err(Error::BadInput(
            "--clients must be between 1 and 20000".into(),
        ));
    }
    let opts = lab::LabOptions {
        somaxconn: args.somaxconn,
        backlog: args.backlog,
        workers: args.workers.clamp(1, 1000),
        work: cli::parse_duration("--work", &args.work)?,
        clients: args.clients,
        abort_on_overflow: args.abort_on_overflow,
        syncookies: args.syncookies,
        connect_timeout: cli::parse_duration("--connect-timeout", &args.connect_timeout)?,
        reply_timeout: cli::parse_duration("--reply-timeout", &args.reply_timeout)?,
        ack_delay,
        ramp: cli::parse_duration("--ramp", &args.ramp)?,
    };
    let report = lab::run(&opts)?;
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &report).map_err(|e| Error::Output(e.into()))?;
        writeln!(out).map_err(Error::Output)?;
    } else {
        lab::render_text(out, &report).map_err(Error::Output)?;
    }
    out.flush().map_err(Error::Output)?;
    Ok(Status::Ok)
}

fn watch_cmd(args: WatchArgs, out: &mut dyn Write) -> Result<Status> {
    use std::io::IsTerminal;
    let scope = Scope::new(model::parse_targets(&args.targets)?);
    let interval = cli::parse_duration("--interval", &args.interval)?;
    if interval.is_zero() {
        return Err(Error::BadInput(
            "--interval must be longer than 0, e.g. 1s".into(),
        ));
    }
    let format = if args.json {
        watch::Format::Json
    } else if io::stdout().is_terminal() {
        watch::Format::Tty {
            color: use_color(),
            rows: terminal_rows(),
        }
    } else {
        watch::Format::Lines
    };
    let opts = watch::Options {
        interval,
        sample_interval: cli::parse_duration("--sample-interval", &args.sample_interval)?,
        count: args.count.filter(|c| *c > 0),
        duration: args
            .duration
            .as_deref()
            .map(|d| cli::parse_duration("--duration", d))
            .transpose()?,
        format,
    };
    if args.count == Some(0) {
        return Err(Error::BadInput("--count must be at least 1".into()));
    }
    let record = args
        .record
        .as_deref()
        .map(store::AtomicFile::create)
        .transpose()?;
    watch::run(scope, &opts, out, record)?;
    Ok(Status::Ok)
}

/// Rows of the terminal on stdout (TIOCGWINSZ), 24 when it cannot tell.
fn terminal_rows() -> usize {
    use nix::libc;
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ fills the winsize we own; stdout's fd stays open for the call.
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    if rc == 0 && ws.ws_row > 0 {
        usize::from(ws.ws_row)
    } else {
        24
    }
}

/// Narrows a recorded snapshot to the given targets, as if it had been recorded with them.
fn restrict(snap: &mut model::Snapshot, targets: &[model::Target]) {
    snap.targets = targets.to_vec();
    let ports: std::collections::HashSet<u16> = targets.iter().map(|t| t.port).collect();
    let mut others: Vec<std::net::SocketAddr> = std::mem::take(&mut snap.other_addresses);
    for s in &mut snap.samples {
        others.extend(
            s.listeners
                .iter()
                .filter(|l| {
                    ports.contains(&l.local.port()) && !targets.iter().any(|t| t.matches(l))
                })
                .map(|l| l.local),
        );
        s.listeners.retain(|l| targets.iter().any(|t| t.matches(l)));
    }
    others.retain(|a| ports.contains(&a.port()));
    others.sort();
    others.dedup();
    snap.other_addresses = others;
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
    let scope = Scope::new(model::parse_targets(&args.targets)?);
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
    let extras = record::Extras {
        force_syn_recv: args.syn_recv,
        owners: !args.no_processes,
    };
    let mut snap = record::record_with(&scope, &plan, extras)?;
    if args.no_processes {
        snap.gaps.push(model::Gap::new(
            "process-owners",
            "not looked up (--no-processes)",
        ));
    }
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

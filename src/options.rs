//! Options resolved once. `cli.rs` mirrors the flags as clap sees them; this module turns them
//! into one typed value per command — scope, input (live with a sampling plan and an owner
//! policy, a snapshot file, or every namespace), output format, colour and width — checking
//! every combination that cannot work. Command bodies take these values and never look at a
//! flag, a duration string or the terminal again.

use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{self, Cli};
use crate::collect::{Namespaces, Owners, Sampling};
use crate::error::{Error, Result};
use crate::lab::{LabFamily, LabOptions};
use crate::model::{Families, Scope, Target, host_port, parse_targets};
use crate::render::watch::Format;
use crate::source::netns::Which;
use crate::watch;

/// How a report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Output {
    pub json: bool,
    /// ANSI colour: only on a terminal, never with NO_COLOR (https://no-color.org).
    pub color: bool,
    /// Columns prose is wrapped to.
    pub width: usize,
    pub verbose: bool,
}

impl Output {
    pub(crate) fn style(&self) -> crate::render::Style {
        crate::render::Style {
            color: self.color,
            width: self.width,
            verbose: self.verbose,
        }
    }

    fn new(json: bool, color: Color) -> Output {
        let tty = io::stdout().is_terminal();
        let env_allows = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            && std::env::var_os("TERM").is_none_or(|t| t != "dumb");
        Output {
            json,
            color: !json
                && match color {
                    Color::Always => true,
                    Color::Never => false,
                    Color::Auto => tty && env_allows,
                },
            width: output_width(tty),
            verbose: false,
        }
    }
}

/// The width of the output: COLUMNS when set, else the terminal's, else 100 (files, pipes);
/// never below MIN_WIDTH, so that prose stays readable.
fn output_width(is_terminal: bool) -> usize {
    let columns = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|c| *c > 0);
    let measured = columns.or_else(|| {
        is_terminal
            .then(|| terminal_size().map(|(_, c)| c))
            .flatten()
    });
    measured
        .unwrap_or(crate::render::Style::PLAIN.width)
        .max(MIN_WIDTH)
}

/// Prose narrower than this is hard to read; a narrower terminal wraps it itself.
const MIN_WIDTH: usize = 60;

/// Rows and columns of the terminal on stdout (TIOCGWINSZ); None when it is not one.
fn terminal_size() -> Option<(usize, usize)> {
    use nix::libc;
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ fills the winsize we own; stdout's fd stays open for the call.
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_row > 0 && ws.ws_col > 0)
        .then_some((usize::from(ws.ws_row), usize::from(ws.ws_col)))
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Color {
    Auto,
    Always,
    Never,
}

/// Up to this many listeners, doctor names the process of each; beyond, only of those with
/// findings: reading /proc/*/fd costs about 2.5 us per descriptor (benches/sample_cost.rs).
pub(crate) const NAME_ALL_UP_TO: usize = 64;

/// Where a diagnosis reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Input {
    Live(Sampling),
    File(PathBuf),
    AllNamespaces(Sampling),
}

#[derive(Debug, Clone)]
pub(crate) struct Doctor {
    pub scope: Scope,
    pub input: Input,
    /// `--trace`: every RST of the window from the kernel's tracepoint (live only).
    pub trace: bool,
    pub owners: Owners,
    pub output: Output,
}

#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub scope: Scope,
    pub sampling: Sampling,
    pub owners: Owners,
    /// Written atomically; None = stdout.
    pub path: Option<PathBuf>,
    pub compact: bool,
}

pub(crate) struct Watch {
    pub scope: Scope,
    pub run: watch::Options,
    pub format: Format,
    /// `--record FILE`, written atomically at the end.
    pub record: Option<PathBuf>,
}

pub(crate) struct Lab {
    pub lab: LabOptions,
    pub output: Output,
    /// `--plot FILE`: the burst drawn as SVG, written atomically.
    pub plot: Option<PathBuf>,
}

pub(crate) struct Explain {
    pub name: Option<String>,
    pub style: crate::render::Style,
}

pub(crate) struct Metrics {
    pub scope: Scope,
    pub namespaces: Namespaces,
    pub path: Option<PathBuf>,
}

pub(crate) struct Exporter {
    pub listen: std::net::SocketAddr,
    pub namespaces: Namespaces,
    pub scope: Scope,
    pub timeout: Duration,
    pub max_connections: usize,
    /// `--web.config.file`, read and checked by the command before it serves.
    pub web_config_file: Option<PathBuf>,
}

/// `plot SNAPSHOT [TARGET...] [-o FILE]`.
pub(crate) struct Plot {
    pub snapshot: PathBuf,
    pub scope: Scope,
    /// Written atomically; None = stdout.
    pub path: Option<PathBuf>,
}

pub(crate) struct Completions {
    pub shell: clap_complete::Shell,
}

fn shell(name: &str) -> Result<clap_complete::Shell> {
    match name {
        "bash" => Ok(clap_complete::Shell::Bash),
        "zsh" => Ok(clap_complete::Shell::Zsh),
        "fish" => Ok(clap_complete::Shell::Fish),
        other => Err(Error::BadInput(format!(
            "no completions for {other:?}: bash, zsh or fish"
        ))),
    }
}

pub(crate) enum Command {
    Doctor(Doctor),
    Snapshot(Snapshot),
    Watch(Watch),
    Lab(Lab),
    Explain(Explain),
    Metrics(Metrics),
    Exporter(Exporter),
    Completions(Completions),
    Plot(Plot),
}

/// A command line, resolved: the namespace to enter first, and the command.
pub(crate) struct Resolved {
    pub namespace: Option<Which>,
    pub command: Command,
}

/// The targets and the families asked for (`-t`, `-x`, both by default).
fn scope(targets: &[String], f: cli::FamilyArgs) -> Result<Scope> {
    let families = match (f.tcp, f.unix) {
        (true, false) => Families {
            tcp: true,
            unix: false,
        },
        (false, true) => Families {
            tcp: false,
            unix: true,
        },
        _ => Families::default(),
    };
    let mut scope = resolve_hosts(targets)?;
    scope.families = families;
    Ok(scope)
}

/// The targets, host names resolved once here (before any namespace is entered, with this
/// host's resolver): every address a name gives is a target, and the name is kept for the
/// words. A name that does not resolve is an error that says so.
fn resolve_hosts(raw: &[String]) -> Result<Scope> {
    use std::net::ToSocketAddrs;
    let mut targets = Vec::new();
    let mut resolved = Vec::new();
    for t in raw {
        let Some((host, port)) = host_port(t).filter(|_| Target::parse(t).is_err()) else {
            targets.push(Target::parse(t)?);
            continue;
        };
        let addrs = (host, port)
            .to_socket_addrs()
            .map_err(|source| Error::Resolve {
                target: t.clone(),
                port,
                source,
            })?;
        let mut ips: Vec<std::net::IpAddr> = Vec::new();
        for a in addrs {
            if !ips.contains(&a.ip()) {
                ips.push(a.ip());
                targets.push(Target::Inet {
                    ip: Some(a.ip()),
                    port,
                });
            }
        }
        resolved.push(crate::model::Resolved {
            name: t.trim().to_string(),
            addrs: ips,
        });
    }
    let mut scope = Scope::new(targets);
    scope.resolved = resolved;
    Ok(scope)
}

fn duration(what: &str, s: &str) -> Result<Duration> {
    cli::parse_duration(what, s)
}

fn sampling(window: &str, interval: &str, syn_recv: bool) -> Result<Sampling> {
    Ok(Sampling {
        window: duration("--window", window)?,
        interval: duration("--sample-interval", interval)?,
        syn_recv,
    })
}

pub(crate) fn resolve(cli: Cli) -> Result<Resolved> {
    let namespace = namespace(&cli)?;
    let color = match cli.color.as_str() {
        "always" => Color::Always,
        "never" => Color::Never,
        _ => Color::Auto,
    };
    // A flag that cannot apply is refused, not ignored.
    let refuse = |what: &str| -> Result<()> {
        match namespace {
            Some(_) => Err(Error::BadInput(format!("{what}; drop --netns/--pid"))),
            None => Ok(()),
        }
    };
    let command = match cli.command {
        cli::Command::Doctor(a) => Command::Doctor(doctor(a, color, &refuse)?),
        cli::Command::Snapshot(a) => Command::Snapshot(snapshot(a)?),
        cli::Command::Watch(a) => Command::Watch(watch(a, color)?),
        cli::Command::Lab(a) => {
            refuse("lab makes its own private namespace")?;
            Command::Lab(lab(a, color)?)
        }
        cli::Command::Plot(a) => {
            refuse("plot reads a recorded snapshot, not a namespace")?;
            Command::Plot(Plot {
                snapshot: a.snapshot,
                scope: Scope::new(parse_targets(&a.targets)?),
                path: a.output,
            })
        }
        cli::Command::Explain(a) => Command::Explain(Explain {
            name: a.name,
            style: Output::new(false, color).style(),
        }),
        cli::Command::Metrics(a) => Command::Metrics(metrics(a, &refuse)?),
        cli::Command::Exporter(a) => {
            let namespaces = match (&namespace, a.all_netns) {
                (Some(_), true) => {
                    return Err(Error::BadInput(
                        "--all-netns reads every namespace; drop --netns/--pid".into(),
                    ));
                }
                (Some(which), false) => Namespaces::One(which.clone()),
                (None, true) => Namespaces::All,
                (None, false) => Namespaces::Current,
            };
            Command::Exporter(exporter(a, namespaces)?)
        }
        cli::Command::Completions(a) => {
            refuse("completions do not depend on a namespace")?;
            Command::Completions(Completions {
                shell: shell(&a.shell)?,
            })
        }
    };
    // The exporter serves from where it was started and enters its namespace on each scrape's
    // own threads: its listening socket must stay reachable.
    let namespace = match command {
        Command::Exporter(_) => None,
        _ => namespace,
    };
    Ok(Resolved { namespace, command })
}

/// The namespace to enter first: given before the command or after it, not both.
fn namespace(cli: &Cli) -> Result<Option<Which>> {
    let after = match &cli.command {
        cli::Command::Doctor(a) => Some(&a.ns),
        cli::Command::Snapshot(a) => Some(&a.ns),
        cli::Command::Watch(a) => Some(&a.ns),
        cli::Command::Explain(a) => Some(&a.ns),
        cli::Command::Metrics(a) => Some(&a.ns),
        cli::Command::Exporter(a) => Some(&a.ns),
        cli::Command::Lab(_) | cli::Command::Completions(_) | cli::Command::Plot(_) => None,
    };
    let given = |n: &cli::NsArgs| n.netns.is_some() || n.pid.is_some();
    let ns = match after {
        Some(after) if given(after) && given(&cli.ns) => {
            return Err(Error::BadInput(
                "--netns/--pid given twice, before and after the command; give it once".into(),
            ));
        }
        Some(after) if given(after) => after,
        _ => &cli.ns,
    };
    Ok(match (&ns.netns, ns.pid) {
        (Some(n), _) => Some(Which::Named(n.clone())),
        (None, Some(pid)) => Some(Which::Pid(pid)),
        _ => None,
    })
}

fn snapshot(a: cli::SnapshotArgs) -> Result<Snapshot> {
    Ok(Snapshot {
        scope: scope(&a.targets, a.families)?,
        sampling: sampling(&a.window, &a.sample_interval, a.syn_recv)?,
        owners: if a.no_processes {
            Owners::None
        } else {
            Owners::All
        },
        path: a.output,
        compact: a.compact,
    })
}

fn metrics(a: cli::MetricsArgs, refuse: &dyn Fn(&str) -> Result<()>) -> Result<Metrics> {
    let namespaces = if a.all_netns {
        refuse("--all-netns reads every namespace")?;
        Namespaces::All
    } else {
        Namespaces::Current
    };
    Ok(Metrics {
        scope: scope(&a.targets, a.families)?,
        namespaces,
        path: a.output,
    })
}

fn doctor(a: cli::DoctorArgs, color: Color, refuse: &dyn Fn(&str) -> Result<()>) -> Result<Doctor> {
    let input = match (a.from, a.all_netns) {
        (Some(path), _) => {
            refuse("--from diagnoses a recorded snapshot, which holds its own namespace")?;
            if a.syn_recv || a.no_processes {
                return Err(Error::BadInput(
                    "--syn-recv and --no-processes shape a live recording; --from reads one already made"
                        .into(),
                ));
            }
            Input::File(path)
        }
        (None, true) => {
            refuse("--all-netns reads every namespace")?;
            Input::AllNamespaces(sampling(&a.window, &a.sample_interval, a.syn_recv)?)
        }
        (None, false) => Input::Live(sampling(&a.window, &a.sample_interval, a.syn_recv)?),
    };
    if a.trace && matches!(&input, Input::Live(s) if s.window.is_zero()) {
        return Err(Error::BadInput(
            "--trace traces the resets of a window: give one, e.g. --window 5s".into(),
        ));
    }
    Ok(Doctor {
        trace: a.trace,
        scope: scope(&a.targets, a.families)?,
        input,
        owners: if a.no_processes {
            Owners::None
        } else {
            Owners::TroubledBeyond(NAME_ALL_UP_TO)
        },
        output: Output {
            verbose: a.verbose,
            ..Output::new(a.json, color)
        },
    })
}

fn exporter(a: cli::ExporterArgs, namespaces: Namespaces) -> Result<Exporter> {
    let listen = a.listen.parse().map_err(|_| {
        Error::BadInput(format!(
            "--listen {:?} is not ADDR:PORT, e.g. 0.0.0.0:9848 or [::1]:9848",
            a.listen
        ))
    })?;
    let timeout = duration("--timeout", &a.timeout)?;
    if timeout.is_zero() {
        return Err(Error::BadInput(
            "--timeout must be longer than 0, e.g. 8s".into(),
        ));
    }
    if a.max_connections == 0 {
        return Err(Error::BadInput(
            "--max-connections must be at least 1".into(),
        ));
    }
    Ok(Exporter {
        listen,
        namespaces,
        scope: scope(&a.targets, a.families)?,
        timeout,
        max_connections: a.max_connections,
        web_config_file: a.web_config_file,
    })
}

fn watch(a: cli::WatchArgs, color: Color) -> Result<Watch> {
    let interval = duration("--interval", &a.interval)?;
    if interval.is_zero() {
        return Err(Error::BadInput(
            "--interval must be longer than 0, e.g. 1s".into(),
        ));
    }
    if a.count == Some(0) {
        return Err(Error::BadInput("--count must be at least 1".into()));
    }
    let sample_interval = duration("--sample-interval", &a.sample_interval)?;
    let scope = scope(&a.targets, a.families)?;
    // TCP listeners' clients' wait is read at every refresh: the table has columns for it.
    let wait = scope.wants_tcp();
    let format = if a.json {
        Format::Json
    } else if io::stdout().is_terminal() {
        let tty = Output::new(false, color);
        Format::Tty {
            color: tty.color,
            // 24 when the terminal does not say.
            rows: terminal_size().map_or(24, |(rows, _)| rows),
            width: tty.width,
            utf8: utf8_locale(&locale_env()),
            // Refreshes come every --interval, or every sample when that is longer.
            history: watch::HistoryShape::minute(
                interval.max(sample_interval),
                crate::render::watch::history_room(tty.width, wait),
            ),
            wait,
        }
    } else {
        Format::Lines
    };
    Ok(Watch {
        scope,
        run: watch::Options {
            interval,
            sample_interval,
            count: a.count,
            duration: a
                .duration
                .as_deref()
                .map(|d| duration("--duration", d))
                .transpose()?,
            history: format.history(),
            record: a.record.is_some(),
        },
        format,
        record: a.record,
    })
}

/// LC_ALL, LC_CTYPE and LANG, in the order the C library consults them for the character set.
fn locale_env() -> [Option<String>; 3] {
    ["LC_ALL", "LC_CTYPE", "LANG"]
        .map(|v| std::env::var_os(v).map(|s| s.to_string_lossy().into_owned()))
}

/// Whether the terminal takes UTF-8 (block characters) or only ASCII: the first of LC_ALL,
/// LC_CTYPE, LANG that is set and not empty decides, as setlocale(3) does; UTF-8 when it names
/// it (`en_US.UTF-8`, `C.utf8`). Nothing set is the C locale: ASCII.
pub(crate) fn utf8_locale(vars: &[Option<String>; 3]) -> bool {
    vars.iter()
        .flatten()
        .find(|v| !v.is_empty())
        .is_some_and(|v| {
            let v = v.to_ascii_lowercase();
            v.contains("utf-8") || v.contains("utf8")
        })
}

fn lab(a: cli::LabArgs, color: Color) -> Result<Lab> {
    let ack_delay = duration("--ack-delay", &a.ack_delay)?;
    if ack_delay > Duration::from_millis(200) {
        return Err(Error::BadInput(
            "--ack-delay can be at most 200ms: the kernel sends the held-back ACK by then anyway"
                .into(),
        ));
    }
    if a.clients == 0 || a.clients > 20_000 {
        return Err(Error::BadInput(
            "--clients must be between 1 and 20000".into(),
        ));
    }
    Ok(Lab {
        lab: LabOptions {
            somaxconn: a.somaxconn,
            backlog: a.backlog,
            workers: a.workers.clamp(1, 1000),
            work: duration("--work", &a.work)?,
            clients: a.clients,
            abort_on_overflow: a.abort_on_overflow,
            syncookies: a.syncookies,
            connect_timeout: duration("--connect-timeout", &a.connect_timeout)?,
            reply_timeout: duration("--reply-timeout", &a.reply_timeout)?,
            ack_delay,
            ramp: duration("--ramp", &a.ramp)?,
            family: if a.unix {
                LabFamily::Unix
            } else {
                LabFamily::Tcp
            },
            unread_close: a.unread_close,
            veth: a.veth,
        },
        output: Output::new(a.json, color),
        plot: a.plot,
    })
}

#[cfg(test)]
mod tests {
    use super::utf8_locale;

    fn utf8(all: Option<&str>, ctype: Option<&str>, lang: Option<&str>) -> bool {
        utf8_locale(&[all, ctype, lang].map(|v| v.map(str::to_string)))
    }

    #[test]
    fn the_first_locale_variable_set_decides_utf8() {
        assert!(utf8(None, None, Some("en_US.UTF-8")));
        assert!(utf8(None, None, Some("C.utf8")));
        assert!(utf8(None, Some("de_DE.Utf-8@euro"), None));
        assert!(!utf8(None, None, None), "nothing set: the C locale");
        assert!(!utf8(None, None, Some("C")));
        assert!(!utf8(None, None, Some("POSIX")));
        assert!(!utf8(None, None, Some("en_US.ISO-8859-1")));
        // LC_ALL overrides, LC_CTYPE over LANG; an empty one is skipped.
        assert!(!utf8(Some("C"), Some("en_US.UTF-8"), Some("en_US.UTF-8")));
        assert!(!utf8(None, Some("C"), Some("en_US.UTF-8")));
        assert!(utf8(Some(""), Some(""), Some("en_US.UTF-8")));
        assert!(utf8(Some("en_US.UTF-8"), None, Some("C")));
    }
}

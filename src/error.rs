//! The one error type of the library. Every variant carries what failed and, where the user can
//! do something about it, what to do; `main` prints it as a single `error: ...` line and exits 3.
//! Partial data (a counter this kernel lacks, process names hidden by permissions) is never an
//! error: it is recorded as a `Gap` in the snapshot instead.

mod web_config;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

pub use web_config::{Place, WebConfigError};

#[derive(Debug)]
pub enum Error {
    /// A TARGET or option value the user typed that we cannot use.
    BadInput(String),
    /// A file or `/proc` entry that could not be read.
    Read { path: PathBuf, source: io::Error },
    /// An output file that could not be written.
    Write { path: PathBuf, source: io::Error },
    /// Writing the report to stdout failed (a closed pipe is handled by `main` as success).
    Output(io::Error),
    /// A netlink conversation with the kernel failed.
    Netlink { op: &'static str, source: io::Error },
    /// The kernel answered something we cannot use (a dump interrupted again and again, a
    /// message shorter than its struct, an attribute missing).
    Protocol(String),
    /// A netlink message that does not decode: what was being decoded, and the decoder's
    /// error.
    Decode {
        what: &'static str,
        source: netlink_packet_core::DecodeError,
    },
    /// A recorded snapshot that cannot be used.
    Snapshot {
        path: PathBuf,
        reason: SnapshotError,
    },
    /// A `--web.config.file` that cannot be used: the file and why (boxed: most of the
    /// library's results never hold one).
    WebConfig {
        path: PathBuf,
        reason: Box<WebConfigError>,
    },
    /// A host name in a TARGET that the resolver could not turn into an address.
    Resolve {
        target: String,
        port: u16,
        source: io::Error,
    },
    /// The exporter's `--listen` address could not be bound.
    Bind { addr: SocketAddr, source: io::Error },
    /// Missing privilege for something the user asked for explicitly.
    Permission { what: String, hint: String },
    /// The tool's own machinery failed: a thread, a signal mask, a socket of its own.
    Io {
        what: &'static str,
        source: io::Error,
    },
    /// A thread of the tool's own panicked: a bug, reported as such rather than as what the
    /// thread was doing failing. `message` is the panic's, when it was a string.
    Panicked {
        what: &'static str,
        message: Option<String>,
    },
    /// Work that did not finish in the time it was given (a namespace of a scrape, the lab's
    /// veth coming up).
    Deadline(String),
    /// Something read went away while it was being read (a namespace, a process).
    Vanished(String),
}

/// Why a snapshot's text cannot be used.
#[derive(Debug)]
pub enum SnapshotError {
    /// Not JSON at all (or nested past serde_json's limit).
    NotJson(serde_json::Error),
    /// JSON without a `schema_version` number: not a backlogctl snapshot.
    NoSchema,
    /// Written by a newer backlogctl than this one, which reads up to `supported`.
    Newer {
        version: u64,
        supported: u32,
    },
    /// A field of the right schema that does not hold what it must.
    Invalid(serde_json::Error),
    NoSamples,
    /// Samples out of time order: `after` comes after `before`.
    OutOfOrder {
        before: u64,
        after: u64,
    },
}

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotError::NotJson(e) => write!(f, "not valid JSON ({e})"),
            SnapshotError::NoSchema => f.write_str("no schema_version: not a backlogctl snapshot"),
            SnapshotError::Newer { version, supported } => write!(
                f,
                "schema_version {version} is newer than this backlogctl understands \
                 ({supported}); upgrade backlogctl"
            ),
            SnapshotError::Invalid(e) => write!(f, "invalid snapshot: {e}"),
            SnapshotError::NoSamples => f.write_str("it holds no samples"),
            SnapshotError::OutOfOrder { before, after } => write!(
                f,
                "samples out of time order (elapsed_us {after} after {before})"
            ),
        }
    }
}

impl std::error::Error for SnapshotError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SnapshotError::NotJson(e) | SnapshotError::Invalid(e) => Some(e),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn read(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Read {
            path: path.into(),
            source,
        }
    }

    pub fn web_config(path: impl Into<PathBuf>, reason: WebConfigError) -> Self {
        Error::WebConfig {
            path: path.into(),
            reason: Box::new(reason),
        }
    }

    /// `Panicked` from what `JoinHandle::join` (or `catch_unwind`) gave back.
    pub fn panicked(what: &'static str, payload: Box<dyn std::any::Any + Send>) -> Self {
        let message = match payload.downcast::<String>() {
            Ok(s) => Some(*s),
            Err(payload) => payload.downcast_ref::<&str>().map(|s| s.to_string()),
        };
        Error::Panicked { what, message }
    }

    /// True when the error is stdout going away under us (`backlogctl ... | head`): that is a
    /// normal end of the program, not a failure.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadInput(msg) => f.write_str(msg),
            Error::Read { path, source } => {
                write!(f, "cannot read {}: {}", path.display(), io_reason(source))?;
                if source.kind() == io::ErrorKind::NotFound && path.starts_with("/proc") {
                    f.write_str(" (is /proc mounted, and does this kernel have TCP/IP support?)")?;
                }
                Ok(())
            }
            Error::Write { path, source } => write!(
                f,
                "cannot write {}: {} (choose a writable path with -o, or write to stdout)",
                path.display(),
                io_reason(source)
            ),
            Error::Output(e) => write!(f, "cannot write output: {}", io_reason(e)),
            Error::Netlink { op, source } => {
                write!(f, "netlink {op} failed: {}", io_reason(source))?;
                if source.raw_os_error() == Some(nix::libc::EPROTONOSUPPORT) {
                    f.write_str(" (this kernel lacks NETLINK_SOCK_DIAG; load the inet_diag and tcp_diag modules)")?;
                }
                Ok(())
            }
            Error::Protocol(msg) => write!(f, "unexpected answer from the kernel: {msg}"),
            Error::Decode { what, source } => {
                write!(f, "unexpected answer from the kernel: {what}: {source}")
            }
            Error::Resolve {
                target,
                port,
                source,
            } => write!(
                f,
                "cannot resolve the host name in target {target:?}: {}; check the name, or give \
                 its address (e.g. 10.0.0.5:{port})",
                io_reason(source)
            ),
            Error::Snapshot { path, reason } => {
                write!(f, "cannot use snapshot {}: {reason}", path.display())
            }
            Error::WebConfig { path, reason } => {
                write!(f, "--web.config.file {}: {reason}", path.display())
            }
            Error::Bind { addr, source } => {
                write!(f, "cannot listen on {addr}: {}; ", io_reason(source))?;
                f.write_str(&bind_hint(*addr, source))
            }
            Error::Permission { what, hint } => write!(f, "{what}: permission denied ({hint})"),
            Error::Io { what, source } => write!(f, "{what} failed: {}", io_reason(source)),
            Error::Panicked { what, message } => {
                write!(f, "{what} panicked")?;
                if let Some(m) = message {
                    write!(f, " ({})", one_line(m))?;
                }
                f.write_str(": a bug in backlogctl; please report it with the command line")
            }
            Error::Deadline(msg) | Error::Vanished(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Read { source, .. }
            | Error::Write { source, .. }
            | Error::Netlink { source, .. }
            | Error::Io { source, .. }
            | Error::Bind { source, .. }
            | Error::Resolve { source, .. }
            | Error::Output(source) => Some(source),
            Error::Decode { source, .. } => Some(source),
            Error::Snapshot { reason, .. } => Some(reason),
            Error::WebConfig { reason, .. } => Some(reason.as_ref()),
            _ => None,
        }
    }
}

/// `io::Error`'s Display appends "(os error N)", which reads as noise in a one-line message.
pub(crate) fn io_reason(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// What to do when `addr` cannot be bound, by the reason.
fn bind_hint(addr: SocketAddr, e: &io::Error) -> String {
    let port = addr.port();
    match e.kind() {
        io::ErrorKind::AddrInUse => format!(
            "another socket holds it (`ss -ltnp 'sport = :{port}'` names its process); stop \
             that one or choose another address with --listen"
        ),
        // inet_bind refuses a port below ip_unprivileged_port_start (1024) without
        // CAP_NET_BIND_SERVICE (`inet_port_requires_bind_service`, net/ipv4/af_inet.c).
        io::ErrorKind::PermissionDenied if port < 1024 => format!(
            "port {port} is below 1024 and needs CAP_NET_BIND_SERVICE (root, or \
             AmbientCapabilities=CAP_NET_BIND_SERVICE in a systemd unit); or choose a port of \
             1024 or above with --listen"
        ),
        io::ErrorKind::AddrNotAvailable => format!(
            "no interface of this network namespace has {}; choose an address it has, or \
             0.0.0.0, with --listen",
            addr.ip()
        ),
        _ => "choose another address with --listen".to_string(),
    }
}

/// A message that may span lines (a YAML error's), on one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

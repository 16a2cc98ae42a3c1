//! The snapshot model: the one data type every command produces or consumes. A live run and a
//! recorded JSON file both end up as a `Snapshot`, so the rules that read it cannot tell them
//! apart. Plain serde types only: no I/O, no clock. The format is documented in
//! `docs/snapshot.md`; bump `SCHEMA_VERSION` on any incompatible change.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::catalogue::Sysctl;

mod local;
mod netns;
mod remote;
mod scope;
mod settings;
mod spelled;
mod traced;
mod window;
pub(crate) use local::decimal;
pub use local::{Local, Name, UnixKind, UnixLocal, UnixName, Vfs};
pub use netns::{Identity, NetnsLabel, Scraped, ScrapedNs, Where};
pub use remote::{
    ClientTraced, ConnectErrors, Outgoing, OwnServer, Percentiles, PortRange, Remote, Resolved,
    TracedRemote, is_local,
};
pub use scope::{Families, Scope, Target, UnixTarget, host_port, parse_targets};
pub use settings::{Section, Setting, SettingSource, SettingValue};
#[cfg(test)]
pub(crate) use spelled::assert_spelled_once;
pub(crate) use spelled::spelled;
pub use traced::{Traced, TracedResets};
pub use window::{QueuePeak, holders_label, process_label};
pub(crate) use window::{printable, window_length};

/// Version of the JSON layout written by this build. Readers reject newer versions. 2: a
/// listener's `local` may be a Unix-domain name (an object); version 1 files read as they are.
/// 3: a gap stores its kind; older files have it told from their words as they are read.
/// 4: a TCP listener's sample may carry its clients' `wait`; older files have none.
/// 5: the connecting side: a sample may carry the namespace's `outgoing` connections, the
/// snapshot its `local_addresses`, `resolved` host names and `client_traced`; older files
/// have none, and every target of theirs is taken for a local one.
pub const SCHEMA_VERSION: u32 = 5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// Derived as `Snapshot::serialize`/`deserialize`, which the trait impls below `Gap` wrap: a file
// of an older schema is upgraded as it is read, by whoever reads it.
#[serde(remote = "Self")]
pub struct Snapshot {
    pub schema_version: u32,
    /// `backlogctl <version>` that recorded it.
    pub tool: String,
    /// Kernel release (`uname -r`), when readable.
    #[serde(default)]
    pub kernel: Option<String>,
    #[serde(default)]
    pub hostname: Option<String>,
    /// The network namespace the data comes from.
    #[serde(default)]
    pub netns: Netns,
    /// Wall-clock start of the recording, milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    /// The scope as the user gave it; empty = every TCP listener.
    #[serde(default)]
    pub targets: Vec<Target>,
    /// Sampling period used within the window, microseconds (0 for a single sample).
    #[serde(default)]
    pub sample_interval_us: u64,
    /// Samples taken in the window, including the identical ones left out of `samples`.
    #[serde(default)]
    pub samples_taken: u64,
    pub sysctls: Sysctls,
    /// Processes holding the listeners in scope (one entry per process and socket).
    #[serde(default)]
    pub owners: Vec<Owner>,
    /// The settings of those processes that decide their backlog and how many connections they
    /// serve at once, read from their command lines and the configuration files these name
    /// (recorded with the owners, at most once per process; absent when unreadable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settings: Vec<Setting>,
    /// In time order; the first and the last carry counters. A sample identical to the one
    /// before it (same queues, drops and SYN_RECV counts) is not stored.
    pub samples: Vec<Sample>,
    /// What could not be read, and why. Partial data is data.
    #[serde(default)]
    pub gaps: Vec<Gap>,
    /// Listeners on a target's port at an address no target matches, from the first sample:
    /// what `not-listening` names when `10.0.0.1:8000` is asked for and `127.0.0.1:8000` listens.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_addresses: Vec<SocketAddr>,
    /// The namespace's other TCP listeners (outside the targets), read once at the end of a
    /// targeted window in which the namespace sent RSTs: the reset counters name no socket, so
    /// these are the other sockets the resets can belong to. None: not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_listeners: Option<Vec<SocketAddr>>,
    /// The servers the namespace's own connections go to (local ports connect() chose), read
    /// once at the end of a window in which it sent RSTs and opened connections of its own
    /// (ActiveOpens rose): the counters count those connections' resets too. None: not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own_connections: Option<Vec<OwnServer>>,
    /// `doctor --trace`: the namespace's RSTs over the window, one by one from the kernel's
    /// tracepoint. None: not traced (why, when it was asked for, is a gap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resets_traced: Option<Traced>,
    /// What each Unix path target was when the recording started, by the target as typed: a
    /// socket file no listener holds is stale (clients get ECONNREFUSED).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub socket_files: BTreeMap<String, SocketFile>,
    /// The addresses of this namespace's interfaces when the recording started: a target at
    /// any other address is a server this namespace connects to, not one of its listeners.
    /// None: not read (files before schema 5), every target taken for a local one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_addresses: Option<Vec<IpAddr>>,
    /// Host name targets, resolved once when the recording started, with every address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolved: Vec<Resolved>,
    /// `doctor --trace`: this namespace's connections as the kernel's events saw them. None:
    /// not traced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_traced: Option<ClientTraced>,
    /// Listeners whose values could not be (see `set_aside_implausible`): not diagnosed, but
    /// listening. Not part of the file.
    #[serde(skip)]
    pub set_aside: Vec<Listener>,
}

/// A Unix target's path as `stat` saw it (following symlinks, as a client's connect() does).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum SocketFile {
    /// A socket file: its inode and device (the kernel's encoding, as `UNIX_DIAG_VFS`).
    Socket {
        ino: u64,
        dev: u32,
    },
    /// Something else: connect() gets ECONNREFUSED.
    NotASocket,
    /// No such file: connect() gets ENOENT.
    Missing,
    Unreadable {
        reason: String,
    },
}

impl SocketFile {
    pub fn describe(&self) -> &str {
        match self {
            SocketFile::Socket { .. } => "a socket file",
            SocketFile::NotASocket => "not a socket",
            SocketFile::Missing => "no such file",
            SocketFile::Unreadable { reason } => reason,
        }
    }

    /// The file as unix_diag names a listener's (`UNIX_DIAG_VFS`).
    pub fn vfs(&self) -> Option<Vfs> {
        match self {
            SocketFile::Socket { ino, dev } => Some(Vfs {
                ino: *ino,
                dev: *dev,
            }),
            _ => None,
        }
    }
}

/// The most the accept queue can pass B+1 by: one per CPU racing through the lockless check.
const MAX_OVERSHOOT: u64 = 1024;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Netns {
    /// Inode of the namespace (`readlink /proc/PID/ns/net` → `net:[INODE]`).
    #[serde(default)]
    pub inode: Option<u64>,
    /// True for the host's initial namespace, false for another (a container's); None when
    /// it could not be told.
    #[serde(default)]
    pub initial: Option<bool>,
    /// Its names under /run/netns (`ip netns add NAME`), if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// The process it was entered by (`--pid PID`, or a process found in it by
    /// `--all-netns`): fixes run their commands there with `nsenter -t PID -n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The nsfs path it was entered by (`--netns PATH`), when it has no name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// The sysctls that decide listen-queue behaviour, each absent when unreadable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sysctls {
    /// net.core.somaxconn: caps the backlog at listen() time.
    #[serde(default)]
    pub somaxconn: Option<u32>,
    /// net.ipv4.tcp_max_syn_backlog: matters only with tcp_syncookies=0.
    #[serde(default)]
    pub tcp_max_syn_backlog: Option<u32>,
    /// net.ipv4.tcp_syncookies: 0 off, 1 when the SYN queue is full, 2 always.
    #[serde(default)]
    pub tcp_syncookies: Option<u32>,
    /// net.ipv4.tcp_abort_on_overflow: 1 = reset instead of dropping the final ACK.
    #[serde(default)]
    pub tcp_abort_on_overflow: Option<u32>,
    /// net.ipv4.tcp_synack_retries: request-socket lifetime.
    #[serde(default)]
    pub tcp_synack_retries: Option<u32>,
    /// net.ipv4.tcp_syn_retries: how often a client sends its SYN again before connect()
    /// fails with ETIMEDOUT (6: after about 127 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_syn_retries: Option<u32>,
    /// net.ipv4.tcp_syn_linear_timeouts (6.5+): the first resends 1 s apart, and as many more
    /// resends; None on kernels without it (as 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_syn_linear_timeouts: Option<u32>,
    /// net.ipv4.tcp_tw_reuse: 1 lets connect() reuse a TIME_WAIT port, 2 only on loopback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_tw_reuse: Option<u32>,
    /// net.ipv4.ip_local_port_range: the local ports connect() picks from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_local_port_range: Option<PortRange>,
    /// net.netfilter.nf_conntrack_max; None also where connection tracking is not loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nf_conntrack_max: Option<u32>,
    /// net.netfilter.nf_conntrack_count: flows tracked now (a gauge, read at the start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nf_conntrack_count: Option<u32>,
}

impl Sysctls {
    /// The value of one of them; None when it could not be read.
    pub(crate) fn get(&self, key: Sysctl) -> Option<u32> {
        match key {
            Sysctl::Somaxconn => self.somaxconn,
            Sysctl::TcpMaxSynBacklog => self.tcp_max_syn_backlog,
            Sysctl::TcpSyncookies => self.tcp_syncookies,
            Sysctl::TcpAbortOnOverflow => self.tcp_abort_on_overflow,
            Sysctl::TcpSynackRetries => self.tcp_synack_retries,
            Sysctl::TcpSynRetries => self.tcp_syn_retries,
            Sysctl::TcpSynLinearTimeouts => self.tcp_syn_linear_timeouts,
            Sysctl::TcpTwReuse => self.tcp_tw_reuse,
        }
    }

    pub(crate) fn set(&mut self, key: Sysctl, value: Option<u32>) {
        let field = match key {
            Sysctl::Somaxconn => &mut self.somaxconn,
            Sysctl::TcpMaxSynBacklog => &mut self.tcp_max_syn_backlog,
            Sysctl::TcpSyncookies => &mut self.tcp_syncookies,
            Sysctl::TcpAbortOnOverflow => &mut self.tcp_abort_on_overflow,
            Sysctl::TcpSynackRetries => &mut self.tcp_synack_retries,
            Sysctl::TcpSynRetries => &mut self.tcp_syn_retries,
            Sysctl::TcpSynLinearTimeouts => &mut self.tcp_syn_linear_timeouts,
            Sysctl::TcpTwReuse => &mut self.tcp_tw_reuse,
        };
        *field = value;
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Microseconds since `started_unix_ms`.
    pub elapsed_us: u64,
    /// `/proc/net/netstat` + `/proc/net/snmp`, keyed `Section:Name` (`TcpExt:ListenOverflows`).
    /// A counter the kernel lacks is absent, never 0. Absent on samples that did not read them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counters: Option<Counters>,
    pub listeners: Vec<Listener>,
    /// This namespace's connections to servers, at the samples that read them (with the
    /// clients' wait); None at the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outgoing: Option<Outgoing>,
}

pub type Counters = BTreeMap<String, u64>;

/// One listening socket: TCP as inet_diag reports it, Unix-domain as unix_diag does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    pub local: Local,
    /// Socket inode; ties the listener to its processes (`/proc/PID/fd` → `socket:[inode]`).
    pub inode: u64,
    pub uid: u32,
    /// Recv-Q: connections waiting for accept() (TCP: `sk_ack_backlog`; Unix: the pending
    /// connections on the listener's receive queue, `UNIX_DIAG_RQLEN`).
    pub recv_q: u32,
    /// Send-Q: effective backlog B = min(listen() backlog, somaxconn at listen time)
    /// (`sk_max_ack_backlog`). The accept queue holds B+1, for both families.
    pub send_q: u32,
    /// `sk_drops` (SK_MEMINFO_DROPS): segments dropped at this listener, not clients.
    /// None when the kernel sent a short skmeminfo array (drops unknown), and always for a
    /// Unix listener: nothing counts the connects it refuses.
    #[serde(default)]
    pub drops: Option<u32>,
    /// Request sockets (SYN_RECV) on this listener's address and port. Shared by all sockets
    /// of an SO_REUSEPORT group, since request sockets carry no listener inode. Absent when
    /// this sample did not count them: that walks the kernel's whole established-socket hash
    /// (milliseconds), so recorders do it at a lower rate than the queue samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syn_recv: Option<u32>,
    /// IPV6_V6ONLY of an IPv6 listener; None for IPv4 or when not reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v6only: Option<bool>,
    /// How long its clients have waited, from its port's established sockets; absent when this
    /// sample did not measure it (Unix listeners, older snapshots, samples between two
    /// measurements).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<Wait>,
}

/// What a TCP listener's clients wait through at one sample, read from the ESTABLISHED sockets
/// of its port (docs/kernel.md, "The clients' wait"). A child the kernel completed but nobody
/// accepted yet has inode 0; once accepted it has one. `tcpi_last_data_sent` of either counts
/// the milliseconds since the SYN-ACK when nothing was sent after it: the client's wait so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wait {
    /// Connections in the accept queue (ESTABLISHED, inode 0).
    pub queued: u32,
    /// How long the oldest of them has waited for accept(), ms (0 when none).
    pub queued_oldest_ms: u32,
    /// Accepted connections whose client sent a request and got nothing back yet (no data
    /// sent, the client quiet since): waiting inside the server, in its own queue or workers.
    pub unanswered: u32,
    /// How long the oldest of them has waited since its handshake, ms (0 when none).
    pub unanswered_oldest_ms: u32,
    /// Of `unanswered`, those whose request is still unread (socket Recv-Q above 0): queued in
    /// the server's own pool rather than being worked on.
    pub unread: u32,
    /// A Unix listener's: its pending connections carry no timestamp, so `queued_oldest_ms` is
    /// how long the oldest has been seen pending across readings, a lower bound.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub at_least: bool,
    /// Of the connections waiting at the previous reading, how many no longer wait (accepted,
    /// answered, or their client gone), in the accept queue and after accept, and how long ago
    /// that reading was, ms: the rate at which clients are served, exactly, whatever arrives.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub queued_left: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unanswered_left: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub since_ms: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Wait {
    /// The longest any client of the listener has waited, queued or accepted, ms.
    pub fn oldest_ms(&self) -> u32 {
        self.queued_oldest_ms.max(self.unanswered_oldest_ms)
    }

    /// Whether anyone waits at all.
    pub fn any(&self) -> bool {
        self.queued > 0 || self.unanswered > 0
    }

    /// How many clients wait, in the accept queue and after accept().
    pub fn waiting(&self) -> u32 {
        self.queued.saturating_add(self.unanswered)
    }
}

impl Listener {
    /// Identity across samples: the same socket keeps its inode.
    pub fn key(&self) -> (Local, u64) {
        (self.local.clone(), self.inode)
    }

    /// Same socket in the same state, ignoring a SYN_RECV count only one side measured.
    pub fn same_state(&self, other: &Listener) -> bool {
        let syn_same = match (self.syn_recv, other.syn_recv) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        self.key() == other.key()
            && (self.recv_q, self.send_q, self.drops, self.v6only)
                == (other.recv_q, other.send_q, other.drops, other.v6only)
            && syn_same
    }

    /// True when the accept queue is at its kernel limit (`sk_acceptq_is_full`: Recv-Q > B).
    pub fn accept_queue_full(&self) -> bool {
        QueuePeak {
            peak: self.recv_q,
            backlog: self.send_q,
        }
        .full()
    }

    /// Whether a client connecting to `ip` would reach this TCP listener (wildcards included).
    pub fn serves(&self, ip: IpAddr) -> bool {
        let Some(mine) = self.local.ip() else {
            return false;
        };
        if mine == ip {
            return true;
        }
        match (mine, ip) {
            (IpAddr::V4(a), IpAddr::V4(_)) => a.is_unspecified(),
            (IpAddr::V6(a), IpAddr::V6(_)) => a.is_unspecified(),
            // A dual-stack [::] listener also takes IPv4 clients, unless IPV6_V6ONLY is set.
            (IpAddr::V6(a), IpAddr::V4(_)) => a.is_unspecified() && self.v6only != Some(true),
            (IpAddr::V4(_), IpAddr::V6(_)) => false,
        }
    }
}

/// Segments dropped at a listener between two readings of its sk_drops. The kernel's counter
/// is 32 bits and wraps (`atomic_t sk_drops`, reported as a u32 in skmeminfo): for the same
/// socket it only grows, so the difference is taken modulo 2^32.
pub fn drops_between(before: u32, after: u32) -> u32 {
    after.wrapping_sub(before)
}

/// A process holding a listening socket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub inode: u64,
    pub pid: u32,
    /// `/proc/PID/comm`.
    pub comm: String,
    /// `/proc/PID/cmdline`, arguments joined by spaces.
    #[serde(default)]
    pub cmdline: String,
    /// Its state (`/proc/PID/stat`) when its owners were named. Read only for a socket held by
    /// more than one process; None otherwise, or when unreadable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ProcState>,
    /// Whether one of its epoll sets watches this socket (`/proc/PID/fdinfo/N` of its
    /// `anon_inode:[eventpoll]` descriptors): of a master and its workers, which all hold the
    /// socket, the ones that accept from it. Some(false): none of its epoll sets does (it may
    /// still accept in a blocking call). Read only for a socket held by more than one
    /// process; None otherwise, or when its descriptors could not all be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watches: Option<bool>,
}

spelled! {
    /// A process's state, the letter after its name in `/proc/PID/stat` (`task_state_array`,
    /// fs/proc/array.c): what a process that does not accept is doing instead.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum ProcState {
        /// R: running or runnable: busy on a CPU.
        Running = "running",
        /// S: interruptible sleep: waiting for an event (its epoll_wait, a lock, a backend).
        Sleeping = "sleeping",
        /// D: uninterruptible sleep, usually disk or network-filesystem I/O; no signal acts
        /// until it returns.
        DiskSleep = "disk-sleep",
        /// T: stopped by a signal (SIGSTOP, SIGTSTP); SIGCONT resumes it.
        Stopped = "stopped",
        /// t: stopped by a tracer (a debugger, strace); SIGCONT does not resume it.
        TracingStop = "tracing-stop",
        /// Z: exited, not yet reaped; when its threads still run, they hold its descriptors.
        Zombie = "zombie",
        /// X: dead (seen only in passing).
        Dead = "dead",
        /// P: parked (kernel threads).
        Parked = "parked",
        /// I: idle (kernel threads).
        Idle = "idle",
    }
}

impl ProcState {
    /// The state of a `/proc/PID/stat` letter; None for a letter this build does not know.
    pub fn from_letter(c: char) -> Option<ProcState> {
        Some(match c {
            'R' => ProcState::Running,
            'S' => ProcState::Sleeping,
            'D' => ProcState::DiskSleep,
            'T' => ProcState::Stopped,
            't' => ProcState::TracingStop,
            'Z' => ProcState::Zombie,
            'X' | 'x' => ProcState::Dead,
            'P' => ProcState::Parked,
            'I' => ProcState::Idle,
            _ => return None,
        })
    }

    /// Its letter, as `ps` shows it.
    pub fn letter(self) -> char {
        match self {
            ProcState::Running => 'R',
            ProcState::Sleeping => 'S',
            ProcState::DiskSleep => 'D',
            ProcState::Stopped => 'T',
            ProcState::TracingStop => 't',
            ProcState::Zombie => 'Z',
            ProcState::Dead => 'X',
            ProcState::Parked => 'P',
            ProcState::Idle => 'I',
        }
    }

    /// A state in which the process cannot accept at all, whatever its code does: stopped,
    /// held by a tracer, in uninterruptible sleep, exited.
    pub fn halted(self) -> bool {
        matches!(
            self,
            ProcState::Stopped
                | ProcState::TracingStop
                | ProcState::DiskSleep
                | ProcState::Zombie
                | ProcState::Dead
        )
    }
}

/// Something that could not be observed. Renderers print these so that an absent value is
/// never mistaken for a zero.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// What is missing: `process-owners`, `counters`, a sysctl's dotted name, `skmeminfo`, ...
    pub what: String,
    /// Why, and what would fix it.
    pub reason: String,
    /// What kind of gap it is, which decides its handling; the words above are only words.
    /// Stored since schema 3; a file of an older schema has it told from its words as it is
    /// read (`GapKind::of_old_words`). Absent from a newer file: `unobserved`.
    #[serde(default)]
    pub kind: GapKind,
}

spelled! {
    /// The kinds of gap whose handling differs. Everything else is `Unobserved`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub enum GapKind {
        /// SYN_RECV not counted, because no SYN queue of the namespace ever filled.
        SynRecvNotCounted = "syn-recv-not-counted",
        /// Processes not looked up, as asked (`--no-processes`).
        OwnersNotLookedUp = "owners-not-looked-up",
        /// Processes named only for the listeners with findings.
        OwnersNamedOnlyTroubled = "owners-named-only-troubled",
        /// A value that could not be read, was denied or was set aside.
        #[default]
        Unobserved = "unobserved",
    }
}

/// The first schema whose gaps store their kind.
const GAP_KINDS_STORED: u32 = 3;

impl GapKind {
    /// A gap by design that cannot change a verdict: SYN_RECV not counted because no SYN
    /// queue ever filled, processes not looked up on request or beyond the troubled listeners.
    /// Text reports show these only when asked (`--verbose`); a denied read is never routine.
    pub fn routine(self) -> bool {
        !matches!(self, GapKind::Unobserved)
    }

    /// The kind of a gap in a file of schema 1 or 2, which said it only in its words: a
    /// SYN_RECV gap by its `what`, the two process-owners gaps by their reason's opening
    /// words, exactly as backlogctl wrote them then (today's wording may differ; these may
    /// not). The only place a gap's words are read for its kind.
    fn of_old_words(what: &str, reason: &str) -> GapKind {
        match what {
            "syn-recv" => GapKind::SynRecvNotCounted,
            "process-owners" if reason.starts_with("not looked up") => GapKind::OwnersNotLookedUp,
            "process-owners" if reason.starts_with("processes named only") => {
                GapKind::OwnersNamedOnlyTroubled
            }
            _ => GapKind::Unobserved,
        }
    }
}

const SYN_RECV: &str = "syn-recv";
const OWNERS: &str = "process-owners";

impl Gap {
    /// Something that could not be read, was denied or was set aside (`GapKind::Unobserved`).
    pub fn new(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Gap::of_kind(GapKind::Unobserved, what, reason)
    }

    fn of_kind(kind: GapKind, what: impl Into<String>, reason: impl Into<String>) -> Gap {
        Gap {
            what: what.into(),
            reason: reason.into(),
            kind,
        }
    }

    /// SYN_RECV not counted: no SYN queue of the namespace has filled and `--syn-recv` was
    /// not given.
    pub(crate) fn syn_recv_not_counted() -> Gap {
        Gap::of_kind(
            GapKind::SynRecvNotCounted,
            SYN_RECV,
            "SYN_RECV not counted: no SYN queue in this namespace has ever filled (TCPReqQFullDoCookies, \
             TCPReqQFullDrop and SyncookiesSent are 0), and counting walks every established socket; \
             --syn-recv counts anyway",
        )
    }

    /// Processes not looked up, as asked (`--no-processes`).
    pub(crate) fn owners_not_looked_up() -> Gap {
        Gap::of_kind(
            GapKind::OwnersNotLookedUp,
            OWNERS,
            "not looked up (--no-processes)",
        )
    }

    /// Processes named only for the `named` listeners with findings, `skipped` others not.
    pub(crate) fn owners_named_only_troubled(named: usize, skipped: usize) -> Gap {
        Gap::of_kind(
            GapKind::OwnersNamedOnlyTroubled,
            OWNERS,
            format!(
                "processes named only for the {named} listener(s) with findings; {skipped} others \
                 not looked up (naming every process reads /proc/*/fd, as `ss -p` does; \
                 `backlogctl snapshot` names them all)"
            ),
        )
    }

    /// See `GapKind::routine`.
    pub fn routine(&self) -> bool {
        self.kind.routine()
    }
}

/// Brings a snapshot read from a file of an older schema up to this one, once, as it is
/// read: before schema 3 a gap's kind was not stored.
fn upgrade(snap: &mut Snapshot) {
    if snap.schema_version < GAP_KINDS_STORED {
        for g in &mut snap.gaps {
            g.kind = GapKind::of_old_words(&g.what, &g.reason);
        }
    }
}

// Around the derived `Snapshot::serialize` and `Snapshot::deserialize` (`remote = "Self"`):
// every reader of a file, not only `store`, gets it upgraded.
impl Serialize for Snapshot {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Snapshot::serialize(self, s)
    }
}

impl<'de> Deserialize<'de> for Snapshot {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Snapshot, D::Error> {
        let mut snap = Snapshot::deserialize(d)?;
        upgrade(&mut snap);
        Ok(snap)
    }
}

impl Snapshot {
    /// Whether a recorded TCP listener takes connections to `addr` (wildcards included): the
    /// RSTs sent from `addr` can be that listener's.
    pub fn listens_at(&self, addr: SocketAddr) -> bool {
        self.samples
            .iter()
            .flat_map(|s| &s.listeners)
            .any(|l| l.local.port() == Some(addr.port()) && l.serves(addr.ip()))
    }

    pub fn first(&self) -> Option<&Sample> {
        self.samples.first()
    }

    pub fn last(&self) -> Option<&Sample> {
        self.samples.last()
    }

    /// Owners of the socket with this inode (one lookup; see `owners_by_inode` for many).
    pub fn owners_of(&self, inode: u64) -> impl Iterator<Item = &Owner> {
        self.owners.iter().filter(move |o| o.inode == inode)
    }

    /// Owners grouped by socket inode, for looking up every listener without a scan each.
    pub fn owners_by_inode(&self) -> std::collections::HashMap<u64, Vec<&Owner>> {
        let mut map: std::collections::HashMap<u64, Vec<&Owner>> = std::collections::HashMap::new();
        for o in &self.owners {
            map.entry(o.inode).or_default().push(o);
        }
        map
    }

    /// Increase of a counter between the first and the last sample that carry counters.
    /// None when either end lacks it (this kernel does not have it, or it was unreadable).
    pub fn counter_delta(&self, key: &str) -> Option<u64> {
        let mut with = self.samples.iter().filter_map(|s| s.counters.as_ref());
        let first = with.next()?;
        let last = with.next_back().unwrap_or(first);
        Some(last.get(key)?.saturating_sub(*first.get(key)?))
    }

    /// What a Unix target's path was when the recording started; None when not checked (a
    /// file recorded before schema 2, an abstract name).
    pub fn socket_file(&self, t: &UnixTarget) -> Option<&SocketFile> {
        self.socket_files.get(&Target::Unix(t.clone()).to_string())
    }

    /// Highest Recv-Q seen for the listener with this key over all samples.
    pub fn peak_recv_q(&self, key: &(Local, u64)) -> Option<u32> {
        self.samples
            .iter()
            .flat_map(|s| s.listeners.iter())
            .filter(|l| l.inode == key.1 && l.local == key.0)
            .map(|l| l.recv_q)
            .max()
    }

    /// Sets aside values a kernel cannot produce (a hand-edited or corrupt file): a listener
    /// whose Recv-Q is far past its capacity (the lockless admission check overshoots by at
    /// most one per CPU, docs/kernel.md §1.2), a listen counter that went backwards. They are
    /// not computed with: the listener leaves the samples (but still counts as listening), the
    /// counter leaves the counters, and each becomes a gap that says what and why.
    pub fn set_aside_implausible(&mut self) {
        let impossible = |l: &Listener| {
            let cap = QueuePeak {
                peak: l.recv_q,
                backlog: l.send_q,
            }
            .capacity();
            u64::from(l.recv_q) > cap + MAX_OVERSHOOT
        };
        let mut odd: Vec<Listener> = Vec::new();
        for s in &mut self.samples {
            s.listeners.retain(|l| {
                let bad = impossible(l);
                if bad && !odd.iter().any(|o| o.key() == l.key()) {
                    odd.push(l.clone());
                }
                !bad
            });
        }
        for l in &odd {
            self.gaps.push(Gap::new(
                "implausible",
                format!(
                    "{} (inode {}): Recv-Q {} for Send-Q {} is past what the accept queue can hold \
                     (B+1 plus one per CPU at most); left out",
                    l.local, l.inode, l.recv_q, l.send_q
                ),
            ));
        }
        self.set_aside.extend(odd);
        // Only counters proper: snmp also holds gauges (Tcp:CurrEstab) that go down.
        let counters: Vec<&str> = crate::catalogue::ENTRIES
            .iter()
            .filter_map(|e| match e.kind {
                crate::catalogue::Kind::Counter(k) => Some(k),
                _ => None,
            })
            .collect();
        let mut backwards: Vec<String> = Vec::new();
        let mut last: BTreeMap<&str, u64> = BTreeMap::new();
        for c in self.samples.iter().filter_map(|s| s.counters.as_ref()) {
            for k in &counters {
                if let Some(v) = c.get(*k) {
                    if last.get(k).is_some_and(|prev| v < prev) && !backwards.iter().any(|b| b == k)
                    {
                        backwards.push(k.to_string());
                    }
                    last.insert(k, *v);
                }
            }
        }
        for s in &mut self.samples {
            if let Some(c) = s.counters.as_mut() {
                c.retain(|k, _| !backwards.contains(k));
            }
        }
        if !backwards.is_empty() {
            self.gaps.push(Gap::new(
                "implausible",
                format!(
                    "counters that went backwards, left out (a kernel's only grow): {}",
                    backwards.join(", ")
                ),
            ));
        }
    }

    /// The targets at none of this namespace's addresses: servers it connects to, not its own
    /// listeners. None of them in a file without `local_addresses` (before schema 5).
    pub fn servers(&self) -> Vec<SocketAddr> {
        let Some(mine) = &self.local_addresses else {
            return Vec::new();
        };
        self.targets
            .iter()
            .filter_map(|t| match t {
                Target::Inet { ip: Some(ip), port } if !is_local(*ip, mine) => {
                    Some(SocketAddr::new(*ip, *port))
                }
                _ => None,
            })
            .collect()
    }

    /// Targets that no listener of any sample serves: nothing listens on them here. A server
    /// this namespace connects to (`servers`) is never one.
    pub fn unmatched_targets(&self) -> Vec<Target> {
        let servers = self.servers();
        self.targets
            .iter()
            .filter(|t| match t {
                Target::Inet { ip: Some(ip), port } => {
                    !servers.contains(&SocketAddr::new(*ip, *port))
                }
                _ => true,
            })
            .filter(|t| {
                !self
                    .samples
                    .iter()
                    .flat_map(|s| &s.listeners)
                    .chain(&self.set_aside)
                    .any(|l| t.matches(l))
            })
            .cloned()
            .collect()
    }

    /// Gives each Unix path target the socket file recorded for it, so that a listener bound
    /// through another spelling of the path still matches it (a file read back from disk).
    pub fn resolve_socket_files(&mut self) {
        let files = &self.socket_files;
        for t in &mut self.targets {
            if let Target::Unix(u) = t {
                u.file = files
                    .get(&Target::Unix(u.clone()).to_string())
                    .and_then(SocketFile::vfs);
            }
        }
    }

    /// Duration covered by the samples, microseconds.
    pub fn window_us(&self) -> u64 {
        match (self.first(), self.last()) {
            (Some(a), Some(b)) => b.elapsed_us.saturating_sub(a.elapsed_us),
            _ => 0,
        }
    }

    /// More than one sample over a non-zero window: deltas (counters, drops) mean something.
    /// A single sample, or samples all taken at one instant, tell only the state now.
    pub(crate) fn windowed(&self) -> bool {
        self.window_us() > 0
    }
}

/// Milliseconds since the epoch as `2026-11-25T02:00:01.123Z` (civil-from-days, H. Hinnant).
pub fn rfc3339(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        unix_ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_gap_kind_is_spelled_once() {
        assert_spelled_once(GapKind::ALL, GapKind::as_str);
        assert_eq!(GapKind::default(), GapKind::Unobserved);
    }

    /// A snapshot holding `gaps` as a file of `schema` would, through the one reader.
    fn read_back(schema: u32, gaps: serde_json::Value) -> Vec<Gap> {
        let file = serde_json::json!({
            "schema_version": schema, "tool": "test", "started_unix_ms": 0, "sysctls": {},
            "samples": [{"elapsed_us": 0, "listeners": []}], "gaps": gaps,
        });
        serde_json::from_value::<Snapshot>(file).unwrap().gaps
    }

    #[test]
    fn a_gaps_kind_is_stored_and_read_back_not_told_from_its_words() {
        let made = [
            Gap::owners_not_looked_up(),
            Gap::owners_named_only_troubled(1, 9999),
            Gap::syn_recv_not_counted(),
            Gap::new("process-owners", "cannot list /proc: EACCES"),
        ];
        let kinds = made.iter().map(|g| g.kind).collect::<Vec<_>>();
        assert_eq!(
            kinds,
            [
                GapKind::OwnersNotLookedUp,
                GapKind::OwnersNamedOnlyTroubled,
                GapKind::SynRecvNotCounted,
                GapKind::Unobserved,
            ]
        );
        let json = serde_json::to_value(&made).unwrap();
        assert_eq!(json[2]["kind"], "syn-recv-not-counted", "{json}");
        assert_eq!(read_back(SCHEMA_VERSION, json), made);
        // Words alone decide nothing in this schema: no kind is `unobserved`, whatever it says.
        let said = serde_json::json!([{"what": "syn-recv", "reason": "SYN_RECV not counted"}]);
        assert_eq!(read_back(SCHEMA_VERSION, said)[0].kind, GapKind::Unobserved);
        assert_eq!(
            Gap::new("syn-recv", "SYN_RECV not counted").kind,
            GapKind::Unobserved
        );
    }

    #[test]
    fn an_older_files_gaps_have_their_kind_told_once_from_the_words_it_was_written_in() {
        // As backlogctl wrote them up to schema 2, with no kind.
        let old = serde_json::json!([
            {"what": "process-owners", "reason": "not looked up (--no-processes)"},
            {"what": "process-owners", "reason": "processes named only for the 1 listener(s) \
                with findings; 9999 others not looked up (naming every process reads /proc/*/fd, \
                as `ss -p` does; `backlogctl snapshot` names them all)"},
            {"what": "syn-recv", "reason": "SYN_RECV not counted: ..."},
            {"what": "process-owners", "reason": "cannot list /proc: EACCES"},
            {"what": "counters", "reason": "not looked up", "kind": "syn-recv-not-counted"},
        ]);
        for schema in [1, 2] {
            let kinds: Vec<GapKind> = read_back(schema, old.clone())
                .iter()
                .map(|g| g.kind)
                .collect();
            assert_eq!(
                kinds,
                [
                    GapKind::OwnersNotLookedUp,
                    GapKind::OwnersNamedOnlyTroubled,
                    GapKind::SynRecvNotCounted,
                    GapKind::Unobserved,
                    GapKind::Unobserved,
                ],
                "schema {schema}"
            );
        }
    }

    #[test]
    fn every_process_state_is_spelled_once_and_has_its_letter() {
        assert_spelled_once(ProcState::ALL, ProcState::as_str);
        for s in ProcState::ALL {
            assert_eq!(ProcState::from_letter(s.letter()), Some(*s));
        }
        assert_eq!(ProcState::from_letter('?'), None);
        assert!(ProcState::Stopped.halted() && !ProcState::Running.halted());
    }

    #[test]
    fn drops_are_counted_across_the_32_bit_wrap() {
        assert_eq!(drops_between(5, 9), 4);
        assert_eq!(drops_between(u32::MAX - 1, 3), 5);
        assert_eq!(drops_between(7, 7), 0);
    }
}

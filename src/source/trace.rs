//! `doctor --trace`: every RST the kernel sends during the window, from the `tcp:tcp_send_reset`
//! tracepoint, with the socket, the local address and (Linux 6.10+) the reason
//! (`enum sk_rst_reason`). It is read in a private tracefs instance, `backlogctl-<pid>` (its own
//! buffer, raw socket pointers), which is removed when the trace is dropped; an instance left
//! by a process that was killed is removed by the next run. The tracepoint is host-wide: which
//! events belong to the diagnosed namespace is decided by the caller (`attribute`).
//!
//! Parsing (`parse`) and attribution (`attribute`) are pure: the collection layer hands them
//! what `Sources` read — the buffer, the namespace's listening sockets (`listening_here`) and
//! the namespace of each event's task — so `--trace` runs on a fake too.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::model::{PortRange, Traced, TracedResets};

/// Why a trace could not be started or read: each says what failed and what would fix it.
#[derive(Debug)]
pub enum TraceError {
    /// No tracefs mount in this mount namespace; `netns_exec`: say that `ip netns exec`
    /// remounts /sys without it.
    NotMounted { netns_exec: bool },
    /// This kernel has no such event (`tcp:tcp_send_reset`), known since `since`; `without`:
    /// what is not traced without it.
    NoEvent {
        event: String,
        since: Option<&'static str>,
        without: &'static str,
    },
    /// The event is there but lacks a field (the reset's reason, Linux 6.10+).
    NoField {
        event: &'static str,
        field: &'static str,
        since: &'static str,
    },
    /// A tracefs file that could not be created, read, written or opened.
    File {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// The kernel refused an event's filter.
    Filter {
        event: String,
        filter: String,
        source: io::Error,
        without: &'static str,
    },
    /// Enabling an event failed.
    Enable {
        event: String,
        source: io::Error,
        without: &'static str,
    },
    /// Not one of the events wanted can be traced; each note says why.
    Nothing { notes: Vec<String> },
    /// The thread that reads the buffers could not start, or ended by panicking.
    Reader { source: Option<io::Error> },
    /// Finished without being started (a caller's mistake, said rather than hidden).
    NotStarted { trace: &'static str },
    /// Tracing cannot be had here, for this reason (a source without tracepoints).
    Unavailable { why: &'static str },
}

impl std::fmt::Display for TraceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TraceError::NotMounted { netns_exec } => {
                f.write_str("tracefs is not mounted here (as root: mount -t tracefs nodev /sys/kernel/tracing")?;
                if *netns_exec {
                    f.write_str("; `ip netns exec` remounts /sys without it: use `backlogctl doctor --netns NAME`")?;
                }
                f.write_str(")")
            }
            TraceError::NoEvent {
                event,
                since,
                without,
            } => {
                write!(f, "this kernel has no {event} event")?;
                if let Some(since) = since {
                    write!(f, " ({since})")?;
                }
                match without.is_empty() {
                    true => Ok(()),
                    false => write!(f, ": {without}"),
                }
            }
            TraceError::NoField {
                event,
                field,
                since,
            } => {
                write!(f, "this kernel's {event} has no {field} ({since})")
            }
            TraceError::File { op, path, source } => {
                let root = match source.kind() {
                    io::ErrorKind::PermissionDenied => " (needs root)",
                    _ => "",
                };
                write!(f, "{op} {}: {source}{root}", path.display())
            }
            TraceError::Filter {
                event,
                filter,
                source,
                without,
            } => {
                write!(
                    f,
                    "{event} takes no filter `{filter}` ({source}): {without}"
                )
            }
            TraceError::Enable {
                event,
                source,
                without,
            } => {
                write!(f, "enabling {event}: {source}: {without}")
            }
            TraceError::Nothing { notes } => write!(
                f,
                "none of the connecting side's events can be traced: {}",
                notes.join("; ")
            ),
            TraceError::Reader { source: Some(e) } => write!(f, "starting the trace reader: {e}"),
            TraceError::Reader { source: None } => {
                f.write_str("the trace reader failed (it panicked)")
            }
            TraceError::NotStarted { trace } => write!(f, "no {trace} trace was started"),
            TraceError::Unavailable { why } => f.write_str(why),
        }
    }
}

impl std::error::Error for TraceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TraceError::File { source, .. }
            | TraceError::Filter { source, .. }
            | TraceError::Enable { source, .. } => Some(source),
            TraceError::Reader { source: Some(e) } => Some(e),
            _ => None,
        }
    }
}

/// A tracefs file's operation, failed.
pub(crate) fn file_error(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> TraceError {
    let path = path.to_path_buf();
    move |source| TraceError::File { op, path, source }
}

/// A running trace. Dropping it stops the event and removes the instance.
#[derive(Debug)]
pub struct ResetTrace {
    dir: PathBuf,
}

/// Every instance backlogctl makes is named `backlogctl-<pid>`, maybe with a `-suffix`.
pub(crate) const PREFIX: &str = "backlogctl-";
const EVENT: &str = "events/tcp/tcp_send_reset";

impl ResetTrace {
    /// Starts recording resets. Err: why it cannot, in words that say what would fix it.
    pub fn start() -> Result<ResetTrace, TraceError> {
        let root = tracefs().ok_or(TraceError::NotMounted { netns_exec: true })?;
        let format_path = root.join(EVENT).join("format");
        let format = std::fs::read_to_string(&format_path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => TraceError::NoEvent {
                event: "tcp:tcp_send_reset".into(),
                since: Some("Linux 4.15+"),
                without: "",
            },
            _ => file_error("reading", &format_path)(e),
        })?;
        if !format.contains("reason") {
            return Err(TraceError::NoField {
                event: "tcp:tcp_send_reset",
                field: "reset reason",
                since: "Linux 6.10+",
            });
        }
        remove_stale(&root.join("instances"));
        let dir = root
            .join("instances")
            .join(format!("{PREFIX}{}", std::process::id()));
        std::fs::create_dir(&dir).map_err(file_error("creating the tracefs instance", &dir))?;
        let trace = ResetTrace { dir };
        // Socket pointers as they are, to compare with /proc/net/tcp's `sk` column.
        trace.write("options/hash-ptr", "0")?;
        trace.write(&format!("{EVENT}/enable"), "1")?;
        Ok(trace)
    }

    fn write(&self, rel: &str, value: &str) -> Result<(), TraceError> {
        let path = self.dir.join(rel);
        std::fs::write(&path, value).map_err(file_error("writing", &path))
    }

    /// Stops recording and returns what the buffer holds (the instance goes with `self`).
    pub fn finish(self) -> Result<String, TraceError> {
        self.write(&format!("{EVENT}/enable"), "0")?;
        let path = self.dir.join("trace");
        std::fs::read_to_string(&path).map_err(file_error("reading", &path))
    }
}

impl Drop for ResetTrace {
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.join(EVENT).join("enable"), "0");
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Where tracefs is mounted: its own mount, or under debugfs.
pub(crate) fn tracefs() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut debugfs = None;
    for line in mounts.lines() {
        let (left, right) = line.split_once(" - ")?;
        let point = left.split(' ').nth(4)?;
        match right.split(' ').next() {
            Some("tracefs") => return Some(PathBuf::from(point)),
            Some("debugfs") => debugfs = Some(Path::new(point).join("tracing")),
            _ => {}
        }
    }
    debugfs.filter(|d| d.join("instances").is_dir())
}

/// Removes the instances of backlogctl processes that no longer exist (`backlogctl-<pid>` and
/// `backlogctl-<pid>-<suffix>`).
pub(crate) fn remove_stale(instances: &Path) {
    let Ok(entries) = std::fs::read_dir(instances) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|p| p.split('-').next()?.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir(e.path());
        }
    }
}

/// One `tcp_send_reset` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The task in whose context the RST was sent (a thread id).
    pub tid: u32,
    pub comm: String,
    /// The socket that sent it; 0 when none did (nothing listens: NO_SOCKET).
    pub skaddr: u64,
    /// The RST's source: the local address and port of the connection it ends.
    pub src: SocketAddr,
    /// Where it went: the connection's other end (0.0.0.0:0 when a listener sent it).
    pub dest: SocketAddr,
    pub state: String,
    pub reason: String,
}

/// The events of a `trace` file, and how many the buffer lost (written minus kept).
pub fn parse(text: &str) -> (Vec<Event>, u64) {
    let mut lost = 0;
    let mut events = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# entries-in-buffer/entries-written:") {
            let mut n = rest
                .split_whitespace()
                .next()
                .unwrap_or("")
                .split('/')
                .map(|v| v.parse::<u64>().unwrap_or(0));
            let (kept, written) = (n.next().unwrap_or(0), n.next().unwrap_or(0));
            lost = written.saturating_sub(kept);
        } else if let Some(e) = parse_line(line) {
            events.push(e);
        }
    }
    (events, lost)
}

/// `<comm>-<tid> [cpu] flags ts: tcp_send_reset: skbaddr=.. skaddr=.. src=.. dest=.. state=.. reason=..`
fn parse_line(line: &str) -> Option<Event> {
    let (head, fields) = line.split_once(" tcp_send_reset: ")?;
    let task = head.trim_start().split(" [").next()?.trim_end();
    let (comm, tid) = task.rsplit_once('-')?;
    let field = |key: &str| {
        fields
            .split(' ')
            .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
    };
    let skaddr = u64::from_str_radix(field("skaddr")?.trim_start_matches("0x"), 16).ok()?;
    Some(Event {
        tid: tid.parse().ok()?,
        comm: comm.to_string(),
        skaddr,
        src: field("src")?.parse().ok()?,
        dest: field("dest")?.parse().ok()?,
        state: field("state")?.to_string(),
        reason: field("reason")?.to_string(),
    })
}

/// A listening TCP socket of a namespace, from its /proc/net/tcp: the `sk` pointer a traced
/// RST names, and its port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListeningSocket {
    pub sk: u64,
    pub port: u16,
}

/// What decides whose connection a kept RST was on, by its source port: a port one of the
/// namespace's listeners takes (`sockets`, or `listens_at` for the listeners recorded) is a
/// listener's, sent to its clients; a port of `ephemeral` (`ip_local_port_range`) that none
/// takes is one connect() chose, so the RST ended this namespace's own connection to `dest`;
/// any other is a port nothing listens on (NO_SOCKET: a refused connect).
pub struct Ends<'a, L: Fn(SocketAddr) -> bool> {
    pub sockets: &'a [ListeningSocket],
    pub listens_at: L,
    pub ephemeral: PortRange,
}

impl<L: Fn(SocketAddr) -> bool> Ends<'_, L> {
    fn listening(&self, src: SocketAddr) -> bool {
        (self.listens_at)(src) || self.sockets.iter().any(|s| s.port == src.port())
    }

    /// The server a reset on this namespace's own connection went to; None for a listener's
    /// or a closed port's.
    fn own_connection(&self, e: &Event) -> Option<SocketAddr> {
        let port = u32::from(e.src.port());
        let chosen = (self.ephemeral.low..=self.ephemeral.high).contains(&port);
        (chosen && !self.listening(e.src)).then_some(e.dest)
    }
}

/// Keeps the events of the namespace with inode `netns`: sent by one of its tasks, or by one
/// of its listening sockets (`ends.sockets`), or, when the task has exited since (a thread per
/// connection), from an address one of its listeners takes (counted in `by_address`: another
/// namespace can have the same address). `netns_of` says a task's namespace, None when it is
/// gone. The kept ones are counted by source and reason, those on the namespace's own
/// connections (`Ends`) by the server they went to, whatever local port each had.
pub fn attribute<L: Fn(SocketAddr) -> bool>(
    events: &[Event],
    lost: u64,
    netns: u64,
    ends: &Ends<'_, L>,
    mut netns_of: impl FnMut(u32) -> Option<u64>,
) -> Traced {
    let mut seen: HashMap<u32, Option<u64>> = HashMap::new();
    type Key = (SocketAddr, Option<SocketAddr>, String);
    let mut by: BTreeMap<Key, (u64, Vec<String>)> = BTreeMap::new();
    let (mut elsewhere, mut by_address) = (0, 0);
    for e in events {
        let ns = *seen.entry(e.tid).or_insert_with(|| netns_of(e.tid));
        let ours =
            ns == Some(netns) || (e.skaddr != 0 && ends.sockets.iter().any(|s| s.sk == e.skaddr));
        if !ours {
            if ns.is_none() && (ends.listens_at)(e.src) {
                by_address += 1;
            } else {
                elsewhere += 1;
                continue;
            }
        }
        let remote = ends.own_connection(e);
        // The local port of an own connection is any of thousands: 0 stands for them all.
        let local = match remote {
            Some(_) => SocketAddr::new(e.src.ip(), 0),
            None => e.src,
        };
        let entry = by.entry((local, remote, e.reason.clone())).or_default();
        entry.0 += 1;
        if !entry.1.contains(&e.comm) && entry.1.len() < 5 {
            entry.1.push(e.comm.clone());
        }
    }
    let mut resets: Vec<TracedResets> = by
        .into_iter()
        .map(|((local, remote, reason), (count, tasks))| TracedResets {
            local,
            remote,
            reason,
            count,
            tasks,
        })
        .collect();
    resets.sort_by_key(|r| std::cmp::Reverse(r.count));
    Traced {
        resets,
        elsewhere,
        by_address,
        lost,
    }
}

/// The listening sockets of the calling thread's namespace, from /proc/thread-self/net/tcp
/// and tcp6 (a file that cannot be read adds none).
pub fn listening_here() -> Vec<ListeningSocket> {
    ["tcp", "tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(format!("/proc/thread-self/net/{f}")).ok())
        .flat_map(|t| listening_sockets(&t))
        .collect()
}

/// The listening sockets in a /proc/net/tcp or tcp6 text.
pub fn listening_sockets(text: &str) -> Vec<ListeningSocket> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode refcnt sk ...
            if f.get(3) != Some(&"0A") {
                return None;
            }
            // local: the address in hex, a colon, the port in hex.
            let port = f.get(1)?.rsplit_once(':')?.1;
            Some(ListeningSocket {
                sk: u64::from_str_radix(f.get(11)?, 16).ok()?,
                port: u16::from_str_radix(port, 16).ok()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "\
# tracer: nop
#
# entries-in-buffer/entries-written: 4/6   #P:2
#
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |
         python3-14057   [000] ..... 12343.110660: tcp_send_reset: skbaddr=0000000000000000 skaddr=ffff88849f6f9280 src=127.0.0.1:8400 dest=127.0.0.1:39314 state=TCP_CLOSE reason=TCP_ABORT_ON_CLOSE
         python3-14057   [000] .N... 12343.111899: tcp_send_reset: skbaddr=0000000000000000 skaddr=ffff88849f6fb780 src=127.0.0.1:8400 dest=127.0.0.1:39340 state=TCP_CLOSE reason=TCP_ABORT_ON_CLOSE
  Web Content-Pool-3   [001] ..s1. 12343.112056: tcp_send_reset: skbaddr=ffff88810a061ce0 skaddr=0000000000000000 src=[::1]:8401 dest=[::1]:47862 state=UNKNOWN reason=NO_SOCKET
          <idle>-0       [001] ..s1. 12343.2: tcp_send_reset: skbaddr=ffff88810a061ce0 skaddr=ffff888000000001 src=10.0.0.1:443 dest=10.0.0.2:5000 state=TCP_LISTEN reason=NOT_SPECIFIED
";

    #[test]
    fn events_and_lost_ones_are_read() {
        let (events, lost) = parse(TRACE);
        assert_eq!(lost, 2);
        assert_eq!(events.len(), 4);
        assert_eq!(events[0].tid, 14057);
        assert_eq!(events[0].comm, "python3");
        assert_eq!(events[0].skaddr, 0xffff88849f6f9280);
        assert_eq!(events[0].reason, "TCP_ABORT_ON_CLOSE");
        // A name with spaces and dashes: the tid is after the last dash.
        assert_eq!(
            (events[2].comm.as_str(), events[2].tid),
            ("Web Content-Pool", 3)
        );
        assert_eq!(events[2].src, "[::1]:8401".parse().unwrap());
        assert_eq!(events[2].skaddr, 0);
        assert_eq!(events[3].tid, 0);
        assert_eq!(parse("garbage\n tcp_send_reset: x").0, Vec::new());
    }

    #[test]
    fn only_the_namespace_s_tasks_and_sockets_count() {
        let (events, lost) = parse(TRACE);
        // python3 and the listener at ffff888000000001 are ours; the browser thread is not.
        let sockets = [ListeningSocket {
            sk: 0xffff888000000001,
            port: 443,
        }];
        let t = attribute(
            &events,
            lost,
            7,
            &ends(&sockets, |_| false),
            |tid| match tid {
                14057 => Some(7),
                _ => Some(9),
            },
        );
        assert_eq!(t.elsewhere, 1);
        assert_eq!(t.by_address, 0);
        assert_eq!(t.lost, 2);
        assert_eq!(t.resets.len(), 2);
        assert_eq!(t.resets[0].count, 2);
        assert_eq!(t.resets[0].reason, "TCP_ABORT_ON_CLOSE");
        assert_eq!(t.resets[0].tasks, ["python3"]);
        assert_eq!(t.resets[1].local, "10.0.0.1:443".parse().unwrap());
    }

    #[test]
    fn a_gone_task_s_resets_are_tied_by_the_listener_s_address() {
        let (events, _) = parse(TRACE);
        // Every task gone: only the resets from a port we listen on (0.0.0.0:8400) are kept.
        let t = attribute(&events, 0, 7, &ends(&[], |a| a.port() == 8400), |_| None);
        assert_eq!(t.by_address, 2);
        assert_eq!(t.elsewhere, 2);
        assert_eq!(t.resets.len(), 1);
        assert_eq!(t.resets[0].local, "127.0.0.1:8400".parse().unwrap());
    }

    #[test]
    fn listening_sockets_from_proc_net_tcp() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:20D0 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 18450 1 ffff88849f6f9280 100 0 0 10 0\n\
   1: 0100007F:20D0 0100007F:9A3E 01 00000000:00000000 00:00000000 00000000     0        0 18451 1 ffff88849f6fae40 20 4 30 10 -1\n";
        assert_eq!(
            listening_sockets(text),
            [ListeningSocket {
                sk: 0xffff88849f6f9280,
                port: 8400
            }]
        );
    }

    fn ends<L: Fn(SocketAddr) -> bool>(sockets: &[ListeningSocket], listens_at: L) -> Ends<'_, L> {
        Ends {
            sockets,
            listens_at,
            ephemeral: PortRange::DEFAULT,
        }
    }

    /// A proxy (haproxy, pid 900) resetting its connections to two backends from ports
    /// connect() chose, a refused connect to a closed port, and one to its clients from its
    /// listener's port.
    const PROXY: &str = "\
         haproxy-900     [000] ..... 100.000001: tcp_send_reset: skbaddr=0000000000000000 skaddr=ffff888000000010 src=10.0.0.1:40001 dest=10.0.0.2:8080 state=TCP_CLOSE reason=TCP_STATE
         haproxy-900     [000] ..... 100.000002: tcp_send_reset: skbaddr=0000000000000000 skaddr=ffff888000000011 src=10.0.0.1:40002 dest=10.0.0.2:8080 state=TCP_CLOSE reason=TCP_STATE
         haproxy-900     [000] ..... 100.000003: tcp_send_reset: skbaddr=0000000000000000 skaddr=ffff888000000012 src=10.0.0.1:40003 dest=10.0.0.3:8080 state=TCP_CLOSE reason=TCP_STATE
         haproxy-900     [000] ..... 100.000004: tcp_send_reset: skbaddr=0000000000000000 skaddr=ffff888000000013 src=10.0.0.1:80 dest=10.0.0.9:51000 state=TCP_CLOSE reason=TCP_ABORT_ON_CLOSE
          <idle>-0       [001] ..s1. 100.000005: tcp_send_reset: skbaddr=ffff88810a061ce0 skaddr=0000000000000000 src=10.0.0.1:9999 dest=10.0.0.9:51002 state=UNKNOWN reason=NO_SOCKET
";

    #[test]
    fn each_reset_is_on_the_end_its_local_port_says() {
        let (events, _) = parse(PROXY);
        let sockets = [ListeningSocket {
            sk: 0xffff888000000099,
            port: 80,
        }];
        let t = attribute(&events, 0, 7, &ends(&sockets, |_| false), |_| Some(7));
        let got: Vec<(String, Option<String>, &str, u64)> = t
            .resets
            .iter()
            .map(|r| {
                (
                    r.local.to_string(),
                    r.remote.map(|a| a.to_string()),
                    r.reason.as_str(),
                    r.count,
                )
            })
            .collect();
        let own = |to: &str, n| {
            (
                "10.0.0.1:0".to_string(),
                Some(to.to_string()),
                "TCP_STATE",
                n,
            )
        };
        assert_eq!(
            got,
            [
                own("10.0.0.2:8080", 2),
                own("10.0.0.3:8080", 1),
                ("10.0.0.1:80".into(), None, "TCP_ABORT_ON_CLOSE", 1),
                ("10.0.0.1:9999".into(), None, "NO_SOCKET", 1),
            ]
        );
    }
}

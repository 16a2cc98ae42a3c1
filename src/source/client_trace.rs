//! `doctor --trace` on the connecting side (docs/kernel.md §11, §13): what the kernel's events
//! say of the namespace's own connections over the window, by server — the errno each socket's
//! owner is given (`sock:inet_sk_error_report`), SYNs sent again (`tcp:tcp_retransmit_skb` in
//! SYN_SENT), RSTs received (`tcp:tcp_receive_reset`), connects completed and how long they took
//! (`sock:inet_sock_set_state` CLOSE→SYN_SENT→ESTABLISHED by socket), and connect() calls that
//! failed at once with EAGAIN or EADDRNOTAVAIL (`syscalls:sys_exit_connect`).
//!
//! Read in private tracefs instances, `backlogctl-<pid>-client` and, for the socket states
//! (printed with their socket pointer only in the `fields` mode), `backlogctl-<pid>-states`;
//! each with its own bounded buffer, every filter the events allow set in the kernel, and both
//! removed when the trace is finished or dropped. A reader thread drains them while the window
//! runs, so that the task behind a connect is tied to its namespace while it still exists.
//! An event this kernel lacks is a note, not an error.
//!
//! Parsing (`parse_line`) and attribution (`attribute`) are pure; this module decides nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::model::{ClientTraced, ConnectErrors, Percentiles, TracedRemote};
use crate::source::trace::{PREFIX, TraceError, file_error, remove_stale, tracefs};

/// TCP states as the kernel numbers them (`include/net/tcp_states.h`).
const ESTABLISHED: u8 = 1;
const SYN_SENT: u8 = 2;
const CLOSE: u8 = 7;
/// The errnos `sys_exit_connect` is filtered on: a full Unix listener's refusal, no local port.
const EAGAIN: i32 = 11;
const EADDRNOTAVAIL: i32 = 99;
/// Per-CPU buffer of each instance, KiB: drained every `POLL`, so it holds a burst.
const BUFFER_KB: u32 = 1024;
const POLL: Duration = Duration::from_millis(10);
/// The most events kept in memory; beyond, they are counted as lost.
const MAX_EVENTS: usize = 500_000;

const ERROR_REPORT: &str = "sock/inet_sk_error_report";
const RETRANSMIT: &str = "tcp/tcp_retransmit_skb";
const RECEIVE_RESET: &str = "tcp/tcp_receive_reset";
const SET_STATE: &str = "sock/inet_sock_set_state";
const EXIT_CONNECT: &str = "syscalls/sys_exit_connect";

/// One event of the connecting side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Trace clock (mono), microseconds.
    pub ts_us: u64,
    /// The task in whose context it fired (meaningless in softirq), and its process when the
    /// instance recorded it.
    pub tid: u32,
    pub tgid: Option<u32>,
    pub comm: String,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// The error a socket's owner will read (never 0: the kernel filter drops those).
    Error {
        local: SocketAddr,
        remote: SocketAddr,
        errno: i32,
    },
    /// A SYN sent again.
    SynRetransmit {
        skaddr: u64,
        local: SocketAddr,
        remote: SocketAddr,
    },
    /// An RST received.
    Reset {
        local: SocketAddr,
        remote: SocketAddr,
    },
    /// A state change. Addresses are None where the `fields` mode cannot print them (IPv6);
    /// the local port is 0 at CLOSE→SYN_SENT (connect() picks it just after).
    State {
        skaddr: u64,
        old: u8,
        new: u8,
        local: Option<SocketAddr>,
        remote: Option<SocketAddr>,
    },
    /// connect() returned `ret` (negative errno).
    Connect { ret: i64 },
}

/// One line of an instance's `trace_pipe`; None for anything else (headers, other events,
/// truncated or garbled lines).
pub fn parse_line(line: &str) -> Option<Event> {
    // A line as read from the pipe may keep its end.
    let (head, name, fields) = split_event(line.trim_end())?;
    let (task, ts) = head.trim_end().strip_suffix(':')?.rsplit_once(' ')?;
    let ts_us = parse_ts(ts)?;
    let task = task.split(" [").next()?.trim_end();
    let (task, tgid) = match task.rsplit_once(" (") {
        Some((t, g)) => (t.trim_end(), g.trim_end_matches(')').trim().parse().ok()),
        None => (task, None),
    };
    let (comm, tid) = task.trim_start().rsplit_once('-')?;
    let kind = match name {
        "inet_sk_error_report" => error(fields)?,
        "tcp_retransmit_skb" => retransmit(fields)?,
        "tcp_receive_reset" => reset(fields)?,
        "inet_sock_set_state" => state(fields)?,
        "sys_connect" => Kind::Connect {
            ret: connect_ret(fields)?,
        },
        _ => return None,
    };
    Some(Event {
        ts_us,
        tid: tid.parse().ok()?,
        tgid,
        comm: comm.to_string(),
        kind,
    })
}

/// `head` (task, cpu, flags, timestamp), the event's name and its fields. A syscall exit
/// prints `sys_connect -> 0x…` instead of `name: fields`.
fn split_event(line: &str) -> Option<(&str, &str, &str)> {
    let (_, after_cpu) = line.split_once("] ")?;
    let ts_end = after_cpu.find(": ")?;
    let head_len = line.len() - after_cpu.len() + ts_end + 1;
    let (head, rest) = (line.get(..head_len)?, line.get(head_len..)?.trim_start());
    if let Some(ret) = rest.strip_prefix("sys_connect -> ") {
        return Some((head, "sys_connect", ret));
    }
    let (name, fields) = rest.split_once(": ")?;
    Some((head, name, fields))
}

/// `19384.732291` (seconds.microseconds; more digits are cut) → microseconds.
fn parse_ts(ts: &str) -> Option<u64> {
    let (s, frac) = ts.split_once('.')?;
    let frac = frac.get(..frac.len().min(6))?;
    let us: u64 = format!("{frac:0<6}").parse().ok()?;
    s.parse::<u64>()
        .ok()?
        .checked_mul(1_000_000)?
        .checked_add(us)
}

fn field<'a>(fields: &'a str, key: &str) -> Option<&'a str> {
    fields
        .split(' ')
        .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
}

/// A number as either mode prints it: `40002` or, in the `fields` mode, `0x9c42` (followed
/// by the decimal in parentheses, a separate word).
fn number(fields: &str, key: &str) -> Option<u64> {
    let v = field(fields, key)?;
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

/// Both ends as the text mode prints them: `family=AF_INET sport= dport= saddr= daddr=
/// saddrv6= daddrv6=`; v4-mapped IPv6 addresses unmapped.
fn ends(fields: &str) -> Option<(SocketAddr, SocketAddr)> {
    let (sport, dport) = (field(fields, "sport")?, field(fields, "dport")?);
    let (s, d) = match field(fields, "family")? {
        "AF_INET" => (
            IpAddr::V4(field(fields, "saddr")?.parse().ok()?),
            IpAddr::V4(field(fields, "daddr")?.parse().ok()?),
        ),
        "AF_INET6" => (
            unmap(field(fields, "saddrv6")?.parse().ok()?),
            unmap(field(fields, "daddrv6")?.parse().ok()?),
        ),
        _ => return None,
    };
    Some((
        SocketAddr::new(s, sport.parse().ok()?),
        SocketAddr::new(d, dport.parse().ok()?),
    ))
}

fn unmap(a: Ipv6Addr) -> IpAddr {
    match a.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(a),
    }
}

fn error(fields: &str) -> Option<Kind> {
    if field(fields, "protocol")? != "IPPROTO_TCP" {
        return None;
    }
    let errno: i32 = field(fields, "error")?.parse().ok()?;
    let (local, remote) = ends(fields)?;
    (errno != 0).then_some(Kind::Error {
        local,
        remote,
        errno,
    })
}

fn retransmit(fields: &str) -> Option<Kind> {
    if field(fields, "state")? != "TCP_SYN_SENT" {
        return None;
    }
    let skaddr = u64::from_str_radix(field(fields, "skaddr")?, 16).ok()?;
    let (local, remote) = ends(fields)?;
    Some(Kind::SynRetransmit {
        skaddr,
        local,
        remote,
    })
}

fn reset(fields: &str) -> Option<Kind> {
    let (local, remote) = ends(fields)?;
    Some(Kind::Reset { local, remote })
}

/// `inet_sock_set_state` in the `fields` mode (`skaddr=0xffff… (…) oldstate=0x7 (7) …`): IPv4
/// addresses come as the array's bytes read as a native u32, IPv6 ones not at all. In the text
/// mode (no socket pointer) the states are names and the addresses readable.
fn state(fields: &str) -> Option<Kind> {
    let by_name = |key: &str| -> Option<u8> {
        let v = field(fields, key)?;
        match v.strip_prefix("0x") {
            Some(hex) => u8::from_str_radix(hex, 16).ok(),
            None => state_number(v),
        }
    };
    if !matches!(field(fields, "protocol")?, "IPPROTO_TCP" | "0x6") {
        return None;
    }
    let (old, new) = (by_name("oldstate")?, by_name("newstate")?);
    let (local, remote) = match field(fields, "skaddr") {
        None => ends(fields).map_or((None, None), |(l, r)| (Some(l), Some(r))),
        Some(_) => raw_ends(fields)?,
    };
    let skaddr = number(fields, "skaddr").unwrap_or(0);
    Some(Kind::State {
        skaddr,
        old,
        new,
        local,
        remote,
    })
}

fn state_number(name: &str) -> Option<u8> {
    match name {
        "TCP_ESTABLISHED" => Some(ESTABLISHED),
        "TCP_SYN_SENT" => Some(SYN_SENT),
        "TCP_CLOSE" => Some(CLOSE),
        _ => Some(0),
    }
}

/// The `fields` mode's ends: IPv4 only (family 2, or 10 with a v4-mapped peer); None for
/// IPv6, whose arrays this mode prints as `<INVALID-SIZE>`.
type MaybeEnds = (Option<SocketAddr>, Option<SocketAddr>);
fn raw_ends(fields: &str) -> Option<MaybeEnds> {
    let v4 = |key: &str| -> Option<Ipv4Addr> {
        let n = u32::try_from(number(fields, key)?).ok()?;
        Some(Ipv4Addr::from(n.to_ne_bytes()))
    };
    let (sport, dport) = (number(fields, "sport")?, number(fields, "dport")?);
    let (sport, dport) = (u16::try_from(sport).ok()?, u16::try_from(dport).ok()?);
    let (s, d) = (v4("saddr")?, v4("daddr")?);
    // A pure IPv6 socket's v4 fields are 0 (or LOOPBACK4_IPV6, 127.0.0.6).
    let usable = match number(fields, "family")? {
        2 => true,
        10 => !d.is_unspecified() && d != Ipv4Addr::new(127, 0, 0, 6),
        _ => return None,
    };
    Some(if usable {
        (
            Some(SocketAddr::new(IpAddr::V4(s), sport)),
            Some(SocketAddr::new(IpAddr::V4(d), dport)),
        )
    } else {
        (None, None)
    })
}

/// `0xffffffffffffff91` → -111.
fn connect_ret(text: &str) -> Option<i64> {
    let hex = text.trim().strip_prefix("0x")?;
    Some(u64::from_str_radix(hex, 16).ok()? as i64)
}

/// What a task was when the reader first saw it: its namespace and process. Looked up at once,
/// because a client that fails and exits would be gone by the window's end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Task {
    pub netns: Option<u64>,
    pub tgid: Option<u32>,
}

/// What a trace gathered: its events in order of arrival, the tasks behind the connects, and
/// the events the buffers lost.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    pub events: Vec<Event>,
    pub tasks: HashMap<u32, Task>,
    pub lost: u64,
}

impl Capture {
    /// Parses a whole text (a fake's, a test's), looking tasks up with `task_of`.
    pub fn of_text(text: &str, mut task_of: impl FnMut(u32, Option<u32>) -> Task) -> Capture {
        let mut c = Capture::default();
        for line in text.lines() {
            c.push_line(line, &mut task_of);
        }
        c
    }

    fn push_line(&mut self, line: &str, task_of: &mut impl FnMut(u32, Option<u32>) -> Task) {
        let Some(e) = parse_line(line) else {
            return;
        };
        if self.events.len() >= MAX_EVENTS {
            self.lost += 1;
            return;
        }
        if e.needs_task() && !self.tasks.contains_key(&e.tid) {
            let t = task_of(e.tid, e.tgid);
            self.tasks.insert(e.tid, t);
        }
        self.events.push(e);
    }
}

impl Event {
    /// Whether it fired in the context of the task that made the call (connect()): only then
    /// does its task say whose socket it is.
    fn needs_task(&self) -> bool {
        match self.kind {
            Kind::Connect { .. } => true,
            Kind::State { old, new, .. } => old == CLOSE && new == SYN_SENT,
            _ => false,
        }
    }
}

/// The namespace whose connections are kept: its inode, its own (non-loopback) addresses, and
/// whether one of its listeners takes an address (a socket there is a server's, not a client's).
pub struct Here<'a> {
    pub netns: u64,
    pub addresses: &'a [IpAddr],
    pub listens_at: &'a dyn Fn(SocketAddr) -> bool,
}

impl Here<'_> {
    /// Whether a socket with this local address is this namespace's by its address alone: an
    /// address of its own interfaces that no other namespace has (loopback is everybody's).
    fn by_address(&self, local: SocketAddr) -> bool {
        let ip = local.ip();
        !ip.is_loopback() && !ip.is_unspecified() && self.addresses.contains(&ip)
    }
}

/// Per server, as the events are counted.
#[derive(Default)]
struct Tally {
    errors: BTreeMap<i32, u64>,
    syn_retransmits: u64,
    resets_received: u64,
    connected: u64,
    connect_us: Vec<u64>,
}

/// Keeps the namespace's client connections. A socket is the namespace's when the task that
/// put it in SYN_SENT lives there (its pointer then names it in later events), or, for a
/// socket whose connect came before the window, when its local address is one of the
/// namespace's own; the events without a pointer (errors, resets) are tied by their two ends.
/// A socket at an address one of its listeners takes is a server's and never counted.
/// Also returns how many connect() failures came from tasks that could not be tied to any
/// namespace (gone before they were looked up, within `POLL`, and with no address to tell).
pub fn attribute(capture: &Capture, here: &Here) -> (ClientTraced, u64) {
    let mut events: Vec<&Event> = capture.events.iter().collect();
    events.sort_by_key(|e| e.ts_us);
    let mut by: BTreeMap<SocketAddr, Tally> = BTreeMap::new();
    // Whether a task is the namespace's; for one gone before it could be looked up, whether
    // its connect()s took a local address of the namespace's own (a connect refused
    // EADDRNOTAVAIL still enters SYN_SENT with it); None when neither tells.
    let by_address: HashSet<u32> = events
        .iter()
        .filter_map(|e| match e.kind {
            Kind::State {
                old: CLOSE,
                new: SYN_SENT,
                local: Some(l),
                ..
            } if here.by_address(l) => Some(e.tid),
            _ => None,
        })
        .collect();
    let ours_task = |tid: u32| match capture.tasks.get(&tid).and_then(|t| t.netns) {
        Some(netns) => Some(netns == here.netns),
        None => by_address.contains(&tid).then_some(true),
    };
    let (tuples, theirs) = sockets(&events, here, &ours_task, &mut by);
    for e in &events {
        let (local, remote) = match &e.kind {
            Kind::Error { local, remote, .. } | Kind::Reset { local, remote } => (local, remote),
            _ => continue,
        };
        // Two namespaces may use the same addresses (each its own 10.0.0.2): the address
        // tells only for a pair of ends no other namespace's socket was seen with.
        let pair = (*local, *remote);
        let ours = tuples.contains(&pair) || (!theirs.contains(&pair) && here.by_address(*local));
        if !ours || (here.listens_at)(*local) {
            continue;
        }
        let t = by.entry(*remote).or_default();
        match e.kind {
            Kind::Error { errno, .. } => *t.errors.entry(errno).or_default() += 1,
            _ => t.resets_received += 1,
        }
    }
    let untied = events
        .iter()
        .filter(|e| matches!(e.kind, Kind::Connect { .. }) && ours_task(e.tid).is_none())
        .count() as u64;
    let traced = ClientTraced {
        remotes: by.into_iter().map(|(addr, t)| remote(addr, t)).collect(),
        connect_errors: connect_errors(&events, capture, &ours_task),
        lost: capture.lost,
    };
    (traced, untied)
}

/// The two ends of the sockets seen: the namespace's, and those of tasks known to be another's.
type Pairs = HashSet<(SocketAddr, SocketAddr)>;

/// The events that name a socket, in time order: who owns each pointer (set when it enters
/// SYN_SENT), connects completed and their latency, SYNs sent again. Returns the two ends of
/// every socket of the namespace seen, to tie the events that name none, and of every socket
/// known to be another namespace's.
fn sockets(
    events: &[&Event],
    here: &Here,
    ours_task: &dyn Fn(u32) -> Option<bool>,
    by: &mut BTreeMap<SocketAddr, Tally>,
) -> (Pairs, Pairs) {
    // Whose each socket is (None: its task was gone before it could be looked up), and when
    // it entered SYN_SENT.
    let mut owner: HashMap<u64, (Option<bool>, Option<u64>)> = HashMap::new();
    let mut tuples = HashSet::new();
    let mut theirs = HashSet::new();
    for e in events {
        match e.kind {
            Kind::State {
                skaddr, old, new, ..
            } if old == CLOSE && new == SYN_SENT && skaddr != 0 => {
                owner.insert(skaddr, (ours_task(e.tid), Some(e.ts_us)));
            }
            Kind::State {
                skaddr,
                old,
                new,
                local: Some(local),
                remote: Some(remote),
            } if old == SYN_SENT => {
                let (ours, since) = match owner.get_mut(&skaddr).filter(|_| skaddr != 0) {
                    Some((ours, since)) => (*ours, since.take()),
                    None => (None, None),
                };
                if ours == Some(false) {
                    theirs.insert((local, remote));
                }
                let ours = ours.unwrap_or_else(|| here.by_address(local));
                if !ours || (here.listens_at)(local) {
                    continue;
                }
                tuples.insert((local, remote));
                if new == ESTABLISHED {
                    let t = by.entry(remote).or_default();
                    t.connected += 1;
                    t.connect_us
                        .extend(since.map(|s| e.ts_us.saturating_sub(s)));
                }
            }
            Kind::SynRetransmit {
                skaddr,
                local,
                remote,
            } => {
                let known = owner.get(&skaddr).and_then(|o| o.0);
                if known == Some(false) {
                    theirs.insert((local, remote));
                }
                let ours = known.unwrap_or_else(|| here.by_address(local));
                if ours && !(here.listens_at)(local) {
                    tuples.insert((local, remote));
                    by.entry(remote).or_default().syn_retransmits += 1;
                }
            }
            _ => {}
        }
    }
    (tuples, theirs)
}

fn remote(addr: SocketAddr, mut t: Tally) -> TracedRemote {
    TracedRemote {
        addr,
        errors: t.errors,
        syn_retransmits: t.syn_retransmits,
        resets_received: t.resets_received,
        connected: t.connected,
        connect_ms: percentiles(&mut t.connect_us),
    }
}

/// Nearest-rank percentiles of microsecond latencies, in milliseconds (rounded down).
fn percentiles(us: &mut [u64]) -> Option<Percentiles> {
    us.sort_unstable();
    let n = us.len();
    let at = |q: usize| us[(n * q).div_ceil(100).clamp(1, n) - 1] / 1000;
    (n > 0).then(|| Percentiles {
        p50: at(50),
        p90: at(90),
        p99: at(99),
        max: us[n - 1] / 1000,
    })
}

/// connect() failures of the namespace's processes, by process, name and errno, most first.
fn connect_errors(
    events: &[&Event],
    capture: &Capture,
    ours_task: &dyn Fn(u32) -> Option<bool>,
) -> Vec<ConnectErrors> {
    let mut by: BTreeMap<(u32, String, i32), u64> = BTreeMap::new();
    for e in events {
        let Kind::Connect { ret } = e.kind else {
            continue;
        };
        let errno = i32::try_from(-ret).unwrap_or(0);
        if !matches!(errno, EAGAIN | EADDRNOTAVAIL) || ours_task(e.tid) != Some(true) {
            continue;
        }
        let task = capture.tasks.get(&e.tid);
        let pid = task.and_then(|t| t.tgid).or(e.tgid).unwrap_or(e.tid);
        *by.entry((pid, e.comm.clone(), errno)).or_default() += 1;
    }
    let mut out: Vec<ConnectErrors> = by
        .into_iter()
        .map(|((pid, comm, errno), count)| ConnectErrors {
            pid,
            comm,
            errno,
            count,
        })
        .collect();
    out.sort_by_key(|c| std::cmp::Reverse(c.count));
    out
}

/// The namespace and process of a task, from /proc (its thread's entry, else its process's).
pub fn task_of(tid: u32, tgid: Option<u32>) -> Task {
    let netns = crate::source::netns::inode_of_pid(tid)
        .or_else(|| tgid.and_then(crate::source::netns::inode_of_pid));
    let from_status = || {
        let s = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
        s.lines()
            .find_map(|l| l.strip_prefix("Tgid:"))
            .and_then(|v| v.trim().parse().ok())
    };
    Task {
        netns,
        tgid: tgid.or_else(from_status),
    }
}

/// One event to trace, its kernel filter (None: none this event allows), and why it matters
/// when it is missing.
struct Wanted {
    event: &'static str,
    filter: Option<String>,
    without: &'static str,
}

/// The events of the client instance. `ports`: the namespace's `ip_local_port_range`, which
/// its connect()s take their local ports from; it keeps the servers' sockets out in the kernel.
fn client_events(ports: Option<(u32, u32)>) -> Vec<Wanted> {
    let local = ports.map_or(String::new(), |(lo, hi)| {
        format!(" && sport >= {lo} && sport <= {hi}")
    });
    vec![
        Wanted {
            event: ERROR_REPORT,
            filter: Some(format!("protocol == 6 && error != 0{local}")),
            without: "no errno per server",
        },
        Wanted {
            event: RETRANSMIT,
            filter: Some(format!("state == {SYN_SENT}")),
            without: "no SYN retransmissions per server",
        },
        Wanted {
            event: RECEIVE_RESET,
            filter: ports.map(|(lo, hi)| format!("sport >= {lo} && sport <= {hi}")),
            without: "no resets received per server",
        },
        Wanted {
            event: EXIT_CONNECT,
            filter: Some(format!("ret == -{EAGAIN} || ret == -{EADDRNOTAVAIL}")),
            without: "no count of connect() refused with EAGAIN or EADDRNOTAVAIL",
        },
    ]
}

fn states_event() -> Wanted {
    Wanted {
        event: SET_STATE,
        filter: Some(format!(
            "protocol == 6 && ((oldstate == {CLOSE} && newstate == {SYN_SENT}) || oldstate == {SYN_SENT})"
        )),
        without: "no connects completed or their latency per server",
    }
}

/// A private instance: removed, with its events stopped, when dropped.
struct Instance {
    dir: PathBuf,
    enabled: Vec<&'static str>,
}

impl Instance {
    fn create(root: &Path, suffix: &str, fields: bool) -> Result<Instance, TraceError> {
        let dir = root
            .join("instances")
            .join(format!("{PREFIX}{}-{suffix}", std::process::id()));
        std::fs::create_dir(&dir).map_err(file_error("creating the tracefs instance", &dir))?;
        let i = Instance {
            dir,
            enabled: Vec::new(),
        };
        // Raw socket pointers, to tie one socket's events across both instances; one clock
        // for both, monotonic across CPUs; a bounded buffer per CPU.
        i.set("options/hash-ptr", "0")?;
        i.set("trace_clock", "mono")?;
        i.set("buffer_size_kb", &BUFFER_KB.to_string())?;
        // The tgid beside the tid: a thread that exits is still tied by its process.
        let _ = i.write("options/record-tgid", "1");
        if fields {
            i.set("options/fields", "1")?;
        }
        Ok(i)
    }

    fn write(&self, rel: &str, value: &str) -> io::Result<()> {
        std::fs::write(self.dir.join(rel), value)
    }

    /// `write`, its failure the instance's.
    fn set(&self, rel: &str, value: &str) -> Result<(), TraceError> {
        self.write(rel, value)
            .map_err(file_error("writing", &self.dir.join(rel)))
    }

    /// Enables an event with its filter; Err: what is missing and why (a note).
    fn enable(&mut self, w: &Wanted) -> Result<(), TraceError> {
        let event = w.event.replace('/', ":");
        if !self
            .dir
            .join("events")
            .join(w.event)
            .join("format")
            .exists()
        {
            return Err(TraceError::NoEvent {
                event,
                since: None,
                without: w.without,
            });
        }
        if let Some(f) = &w.filter {
            self.write(&format!("events/{}/filter", w.event), f)
                .map_err(|source| TraceError::Filter {
                    event: event.clone(),
                    filter: f.clone(),
                    source,
                    without: w.without,
                })?;
        }
        self.write(&format!("events/{}/enable", w.event), "1")
            .map_err(|source| TraceError::Enable {
                event,
                source,
                without: w.without,
            })?;
        self.enabled.push(w.event);
        Ok(())
    }

    fn stop(&mut self) {
        for e in std::mem::take(&mut self.enabled) {
            let _ = std::fs::write(self.dir.join("events").join(e).join("enable"), "0");
        }
    }

    /// Events overwritten before they were read, or dropped, over every CPU.
    fn lost(&self) -> u64 {
        let Ok(cpus) = std::fs::read_dir(self.dir.join("per_cpu")) else {
            return 0;
        };
        cpus.flatten()
            .filter_map(|c| std::fs::read_to_string(c.path().join("stats")).ok())
            .map(|s| stats_lost(&s))
            .sum()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// `overrun:` plus `dropped events:` of a per-CPU `stats` file.
pub(crate) fn stats_lost(stats: &str) -> u64 {
    stats
        .lines()
        .filter_map(|l| {
            let v = l
                .strip_prefix("overrun:")
                .or_else(|| l.strip_prefix("dropped events:"))?;
            v.trim().parse::<u64>().ok()
        })
        .sum()
}

/// A running client trace. Dropping it stops the reader and removes the instances.
pub struct ClientTrace {
    instances: Vec<Instance>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<Capture>>,
}

impl ClientTrace {
    /// Starts tracing, with the notes of what this kernel cannot trace. Err: nothing can be.
    pub fn start(ports: Option<(u32, u32)>) -> Result<(ClientTrace, Vec<String>), TraceError> {
        let root = tracefs().ok_or(TraceError::NotMounted { netns_exec: false })?;
        remove_stale(&root.join("instances"));
        let mut notes = Vec::new();
        let mut client = Instance::create(&root, "client", false)?;
        for w in client_events(ports) {
            if let Err(note) = client.enable(&w) {
                notes.push(note.to_string());
            }
        }
        let mut instances = vec![client];
        // The states carry their socket pointer only in the `fields` mode.
        if root.join("options/fields").exists() {
            let mut states = Instance::create(&root, "states", true)?;
            match states.enable(&states_event()) {
                Ok(()) => instances.push(states),
                Err(note) => notes.push(note.to_string()),
            }
        } else {
            notes.push("this kernel's tracefs has no `fields` option, which alone prints a socket's pointer with its state: no connect latency".into());
        }
        if instances.iter().all(|i| i.enabled.is_empty()) {
            return Err(TraceError::Nothing { notes });
        }
        let pipes = instances
            .iter()
            .filter(|i| !i.enabled.is_empty())
            .map(|i| {
                let path = i.dir.join("trace_pipe");
                std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(nix::libc::O_NONBLOCK)
                    .open(&path)
                    .map_err(file_error("opening", &path))
            })
            .collect::<Result<Vec<File>, TraceError>>()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let reader = std::thread::Builder::new()
            .name("client-trace".into())
            .spawn(move || read_until(pipes, &flag))
            .map_err(|e| TraceError::Reader { source: Some(e) })?;
        let trace = ClientTrace {
            instances,
            stop,
            reader: Some(reader),
        };
        Ok((trace, notes))
    }

    /// Stops the events, drains what is left and returns it (the instances go with `self`).
    pub fn finish(mut self) -> Result<Capture, TraceError> {
        for i in &mut self.instances {
            i.stop();
        }
        self.stop.store(true, Ordering::Relaxed);
        let mut capture = self
            .reader
            .take()
            .ok_or(TraceError::Reader { source: None })?
            .join()
            .map_err(|_| TraceError::Reader { source: None })?;
        capture.lost += self.instances.iter().map(Instance::lost).sum::<u64>();
        Ok(capture)
    }
}

impl Drop for ClientTrace {
    fn drop(&mut self) {
        for i in &mut self.instances {
            i.stop();
        }
        self.stop.store(true, Ordering::Relaxed);
        // The pipes close with the reader, after which the instances can be removed.
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// The reader: drains every pipe each `POLL` until told to stop (the events are stopped by
/// then), then once more. Lines are parsed as they come and tasks looked up at once.
fn read_until(mut pipes: Vec<File>, stop: &AtomicBool) -> Capture {
    let mut capture = Capture::default();
    let mut partial: Vec<Vec<u8>> = vec![Vec::new(); pipes.len()];
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let last = stop.load(Ordering::Relaxed);
        for (pipe, rest) in pipes.iter_mut().zip(partial.iter_mut()) {
            drain(pipe, rest, &mut buf, &mut capture);
        }
        if last {
            return capture;
        }
        std::thread::sleep(POLL);
    }
}

fn drain(pipe: &mut File, rest: &mut Vec<u8>, buf: &mut [u8], capture: &mut Capture) {
    loop {
        match pipe.read(buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => rest.extend_from_slice(&buf[..n]),
        }
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = rest.drain(..=end).collect();
            capture.push_line(&String::from_utf8_lossy(&line[..end]), &mut task_of);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines as captured on 6.18 (client namespace 10.231.0.2, server 10.231.0.1:9000, nothing
    // on :9001, ip_local_port_range 40000-40009), client instance: text mode, record-tgid. The
    // retransmission and the two connect() exits come from loopback runs, their addresses,
    // pointers and return values set to this one's.
    const CLIENT: &str = "\
# tracer: nop
#           TASK-PID       TGID    CPU#  |||||  TIMESTAMP  FUNCTION
         python3-6656    (   6656) [001] ..... 19384.732370: tcp_receive_reset: family=AF_INET sport=40002 dport=9001 saddr=10.231.0.2 daddr=10.231.0.1 saddrv6=::ffff:10.231.0.2 daddrv6=::ffff:10.231.0.1 sock_cookie=264c59
         python3-6656    (   6656) [001] ..... 19384.732376: inet_sk_error_report: family=AF_INET protocol=IPPROTO_TCP sport=40002 dport=9001 saddr=10.231.0.2 daddr=10.231.0.1 saddrv6=::ffff:10.231.0.2 daddrv6=::ffff:10.231.0.1 error=111
         python3-6613    (   6613) [001] ..... 19384.736225: tcp_receive_reset: family=AF_INET sport=9000 dport=40006 saddr=10.231.0.1 daddr=10.231.0.2 saddrv6=::ffff:10.231.0.1 daddrv6=::ffff:10.231.0.2 sock_cookie=264c5c
         python3-6613    (   6613) [001] ..... 19384.736230: inet_sk_error_report: family=AF_INET protocol=IPPROTO_TCP sport=9000 dport=40006 saddr=10.231.0.1 daddr=10.231.0.2 saddrv6=::ffff:10.231.0.1 daddrv6=::ffff:10.231.0.2 error=32
           rustc-6712    (   6700) [001] .Ns1. 19385.756087: tcp_retransmit_skb: skbaddr=ffff8881052ea800 skaddr=ffff8883a1e3b780 family=AF_INET sport=40001 dport=9000 saddr=10.231.0.2 daddr=10.231.0.1 saddrv6=::ffff:10.231.0.2 daddrv6=::ffff:10.231.0.1 state=TCP_SYN_SENT err=0
         python3-18100   (  18059) [001] ..... 19593.853315: sys_connect -> 0xffffffffffffff9d
         python3-18059   (  18059) [000] ..... 19593.853514: sys_connect -> 0xfffffffffffffff5
";

    // The states instance (`fields` mode), the same way: the socket that retransmitted
    // entered SYN_SENT in python3's connect() and completed 1.02 s later in a softirq; the
    // last line is an IPv6 connect as captured.
    const STATES: &str = "\
         python3-6656    (   6656) [000] ..... 19384.736000: inet_sock_set_state: skaddr=0xffff8883a1e3b780 (-131376038561920) oldstate=0x7 (7) newstate=0x2 (2) sport=0x0 (0) dport=0x2328 (9000) family=0x2 (2) protocol=0x6 (6) saddr=0x2e70a (190218) daddr=0x1e70a (124682) saddr_v6=<INVALID-SIZE> daddr_v6=<INVALID-SIZE>
     ksoftirqd/1-24      (     24) [001] ..s1. 19385.756162: inet_sock_set_state: skaddr=0xffff8883a1e3b780 (-131376038561920) oldstate=0x2 (2) newstate=0x1 (1) sport=0x9c41 (40001) dport=0x2328 (9000) family=0x2 (2) protocol=0x6 (6) saddr=0x200e70a (33613578) daddr=0x100e70a (16836362) saddr_v6=<INVALID-SIZE> daddr_v6=<INVALID-SIZE>
         python3-8249    [000] ..... 19405.287415: inet_sock_set_state: skaddr=0xffff888458b730c0 (-131372971249472) oldstate=0x7 (7) newstate=0x2 (2) sport=0x0 (0) dport=0x3 (3) family=0xa (10) protocol=0x6 (6) saddr=0x0 (0) daddr=0x0 (0) saddr_v6=<INVALID-SIZE> daddr_v6=<INVALID-SIZE>
";

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn text_lines_are_read() {
        let e: Vec<Event> = CLIENT.lines().filter_map(parse_line).collect();
        assert_eq!(e.len(), 7);
        assert_eq!(
            (e[0].tid, e[0].tgid, e[0].comm.as_str()),
            (6656, Some(6656), "python3")
        );
        assert_eq!(e[0].ts_us, 19_384_732_370);
        assert_eq!(
            e[1].kind,
            Kind::Error {
                local: sa("10.231.0.2:40002"),
                remote: sa("10.231.0.1:9001"),
                errno: 111
            }
        );
        assert_eq!(
            e[4].kind,
            Kind::SynRetransmit {
                skaddr: 0xffff8883a1e3b780,
                local: sa("10.231.0.2:40001"),
                remote: sa("10.231.0.1:9000")
            }
        );
        assert_eq!(e[5].kind, Kind::Connect { ret: -99 });
        assert_eq!((e[5].tid, e[5].tgid), (18100, Some(18059)));
        assert_eq!(e[6].kind, Kind::Connect { ret: -11 });
    }

    #[test]
    fn fields_mode_states_are_read() {
        let e: Vec<Event> = STATES.lines().filter_map(parse_line).collect();
        assert_eq!(e.len(), 3);
        assert_eq!(
            e[1].kind,
            Kind::State {
                skaddr: 0xffff8883a1e3b780,
                old: SYN_SENT,
                new: ESTABLISHED,
                local: Some(sa("10.231.0.2:40001")),
                remote: Some(sa("10.231.0.1:9000"))
            }
        );
        assert_eq!(e[1].comm, "ksoftirqd/1");
        // IPv6 in the fields mode: the socket, but not its addresses.
        assert!(matches!(
            e[2].kind,
            Kind::State {
                local: None,
                remote: None,
                old: CLOSE,
                new: SYN_SENT,
                ..
            }
        ));
        // Without record-tgid there is no tgid.
        assert_eq!(e[2].tgid, None);
        // The text mode (a kernel without `fields`), as captured: no socket pointer.
        let text = "         python3-6656    [001] ..... 19384.732580: inet_sock_set_state: family=AF_INET protocol=IPPROTO_TCP sport=40006 dport=9000 saddr=10.231.0.2 daddr=10.231.0.1 saddrv6=::ffff:10.231.0.2 daddrv6=::ffff:10.231.0.1 oldstate=TCP_SYN_SENT newstate=TCP_ESTABLISHED";
        assert_eq!(
            parse_line(text).map(|e| e.kind),
            Some(Kind::State {
                skaddr: 0,
                old: SYN_SENT,
                new: ESTABLISHED,
                local: Some(sa("10.231.0.2:40006")),
                remote: Some(sa("10.231.0.1:9000"))
            })
        );
    }

    #[test]
    fn odd_lines_are_skipped_never_a_panic() {
        let all = format!("{CLIENT}{STATES}");
        for line in all.lines() {
            for cut in 0..line.len() {
                if let Some(prefix) = line.get(..cut) {
                    let _ = parse_line(prefix);
                }
            }
        }
        for bad in [
            "",
            "]",
            "] : ",
            "x-1 [000] ..... : inet_sk_error_report: error=111",
            "x-1 [000] ..... 1.5: inet_sk_error_report: family=AF_UNIX protocol=IPPROTO_TCP error=5",
            "x-1 [000] ..... 1.5: sys_connect -> 0xzz",
            "x-1 [000] ..... 99999999999999999999.5: sys_connect -> 0x1",
            "x-1 (abc) [000] ..... 1.5: tcp_receive_reset: family=AF_INET sport=99999 dport=1 saddr=1.2.3.4 daddr=1.2.3.4",
            "x-1 [000] ..... 1.5: inet_sock_set_state: skaddr=0x1 (1) oldstate=0x7 (7) newstate=0x2 (2) sport=0x0 (0) dport=0x10000 (65536) family=0x2 (2) protocol=0x6 (6) saddr=0x0 (0) daddr=0x0 (0)",
            "x-1 [000] ..... 1.5: inet_sock_set_state: skaddr=0x1 (1) oldstate=0x7 (7) newstate=0x2 (2) sport=0x0 (0) dport=0x1 (1) family=0x2 (2) protocol=0x6 (6) saddr=0x1ffffffff (1) daddr=0x0 (0)",
            "\u{fffd}\u{fffd}-\u{fffd} [\u{fffd}] \u{fffd}: \u{fffd}: \u{fffd}",
        ] {
            assert_eq!(parse_line(bad), None, "{bad:?}");
        }
        // As read from the pipe, with the line's end.
        let with_end = format!("{}\r\n", CLIENT.lines().nth(3).unwrap());
        assert!(matches!(
            parse_line(&with_end).map(|e| e.kind),
            Some(Kind::Error { errno: 111, .. })
        ));
        // The error report that follows a close carries error=0: not an error.
        assert_eq!(
            parse_line(
                "python3-8249 [000] ..... 19405.287173: inet_sk_error_report: error=0 family=AF_INET protocol=IPPROTO_TCP sport=1 dport=0 saddr=0.0.0.0 daddr=127.0.0.1 saddrv6=:: daddrv6=::"
            ),
            None
        );
    }

    fn capture() -> Capture {
        // Client tasks live in namespace 5, the server (6613) in 6; rustc's softirq context
        // says nothing, ksoftirqd neither.
        Capture::of_text(&format!("{CLIENT}{STATES}"), |tid, tgid| Task {
            netns: match tgid.unwrap_or(tid) {
                6656 | 18059 => Some(5),
                6613 => Some(6),
                _ => None,
            },
            tgid,
        })
    }

    #[test]
    fn the_client_namespace_sees_its_servers() {
        let addresses = [IpAddr::V4(Ipv4Addr::new(10, 231, 0, 2))];
        let here = Here {
            netns: 5,
            addresses: &addresses,
            listens_at: &|_| false,
        };
        let (t, untied) = attribute(&capture(), &here);
        assert_eq!(untied, 0);
        assert_eq!(t.remotes.len(), 2, "{t:?}");
        let s9000 = &t.remotes[0];
        assert_eq!(s9000.addr, sa("10.231.0.1:9000"));
        assert_eq!((s9000.syn_retransmits, s9000.connected), (1, 1));
        let ms = s9000.connect_ms.unwrap();
        assert_eq!((ms.p50, ms.max), (1020, 1020));
        let s9001 = &t.remotes[1];
        assert_eq!(s9001.errors, BTreeMap::from([(111, 1)]));
        assert_eq!(s9001.resets_received, 1);
        // The server's EPIPE and the reset it received are not the client's.
        assert!(t.remotes.iter().all(|r| !r.errors.contains_key(&32)));
        assert_eq!(
            t.connect_errors,
            [
                ConnectErrors {
                    pid: 18059,
                    comm: "python3".into(),
                    errno: 11,
                    count: 1
                },
                ConnectErrors {
                    pid: 18059,
                    comm: "python3".into(),
                    errno: 99,
                    count: 1
                }
            ]
        );
    }

    #[test]
    fn another_namespace_with_the_same_address_sees_none_of_it() {
        // Namespace 7 has 10.231.0.2 too (two client namespaces alike on one host): the
        // sockets are known to be namespace 5's, so their errors and resets are not 7's.
        let addresses = [IpAddr::V4(Ipv4Addr::new(10, 231, 0, 2))];
        let here = Here {
            netns: 7,
            addresses: &addresses,
            listens_at: &|_| false,
        };
        // The refused socket's states, as the states instance has them (stitched: its pointer
        // and times set to this capture's).
        const REFUSED: &str = "\
         python3-6656    (   6656) [001] ..... 19384.732300: inet_sock_set_state: skaddr=0xffff8883a1e3b800 (-131376038561792) oldstate=0x7 (7) newstate=0x2 (2) sport=0x0 (0) dport=0x2329 (9001) family=0x2 (2) protocol=0x6 (6) saddr=0x2e70a (190218) daddr=0x1e70a (124682) saddr_v6=<INVALID-SIZE> daddr_v6=<INVALID-SIZE>
         python3-6656    (   6656) [001] ..s1. 19384.732380: inet_sock_set_state: skaddr=0xffff8883a1e3b800 (-131376038561792) oldstate=0x2 (2) newstate=0x7 (7) sport=0x9c42 (40002) dport=0x2329 (9001) family=0x2 (2) protocol=0x6 (6) saddr=0x200e70a (33613578) daddr=0x100e70a (16836362) saddr_v6=<INVALID-SIZE> daddr_v6=<INVALID-SIZE>
";
        let capture = Capture::of_text(&format!("{CLIENT}{STATES}{REFUSED}"), |tid, tgid| Task {
            netns: match tgid.unwrap_or(tid) {
                6656 | 18059 => Some(5),
                _ => None,
            },
            tgid,
        });
        let (t, _) = attribute(&capture, &here);
        assert!(
            t.remotes
                .iter()
                .all(|r| r.errors.is_empty() && r.resets_received == 0 && r.connected == 0),
            "{t:?}"
        );
    }

    #[test]
    fn the_server_namespace_sees_none_of_it() {
        let addresses = [IpAddr::V4(Ipv4Addr::new(10, 231, 0, 1))];
        let here = Here {
            netns: 6,
            addresses: &addresses,
            listens_at: &|a| a.port() == 9000,
        };
        let (t, untied) = attribute(&capture(), &here);
        assert_eq!(untied, 0);
        assert_eq!(t, ClientTraced::default());
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut us: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        let p = percentiles(&mut us).unwrap();
        assert_eq!((p.p50, p.p90, p.p99, p.max), (50, 90, 99, 100));
        assert_eq!(percentiles(&mut []), None);
        let p = percentiles(&mut [7_999]).unwrap();
        assert_eq!((p.p50, p.max), (7, 7));
    }

    #[test]
    fn lost_events_from_per_cpu_stats() {
        let stats = "entries: 3\noverrun: 12\ncommit overrun: 0\nbytes: 0\ndropped events: 4\nread events: 9\n";
        assert_eq!(stats_lost(stats), 16);
        assert_eq!(stats_lost("overrun: x\n"), 0);
    }

    #[test]
    fn filters_take_the_port_range() {
        let e = client_events(Some((40000, 40009)));
        assert_eq!(
            e[0].filter.as_deref(),
            Some("protocol == 6 && error != 0 && sport >= 40000 && sport <= 40009")
        );
        assert_eq!(e[2].filter, Some("sport >= 40000 && sport <= 40009".into()));
        assert_eq!(client_events(None)[2].filter, None);
        assert_eq!(e[3].filter.as_deref(), Some("ret == -11 || ret == -99"));
    }
}

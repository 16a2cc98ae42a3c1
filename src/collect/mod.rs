//! The collection layer: the only code that drives the kernel sources over time, said once.
//! Every command that reads a live namespace goes through it:
//! - `Sources` is everything a recording reads — namespace entry, the header (kernel, host,
//!   namespace, sysctls), listener dumps, counters, the processes holding sockets, the resets
//!   the host sends (`--trace`, tied to the namespace by `traced_resets`) and its own
//!   connections' events (`--trace`, `traced_clients`). `Kernel` is the real one; tests hand
//!   in fakes, so every loop runs without a kernel.
//! - `Recorder` owns a recording's header, its `Sampler` (when to count request sockets,
//!   whether a sample changed) and the samples it keeps; `record` drives one over a window.
//!   `doctor`, `snapshot`, `watch`, `lab` and every namespace of a fan-out use it.
//! - `OwnerCache` names the processes holding listeners, keyed by socket inode and refreshed
//!   when an owner exits or grows old: one cache for `doctor`, `watch` and the exporter. A
//!   recording's owners come with their settings (`settings`): command line, the
//!   configuration files it names, defaults.
//! - `fan_out` visits namespaces (`--all-netns`, `--netns`, the exporter's scrapes) on a few
//!   worker threads, each entering namespace after namespace, under one deadline, with who
//!   each namespace belongs to (pod identity).
//! - `Collector` is the exporter's and `metrics`' single-sample scrape over the fan-out.
//!
//! Nothing here decides a verdict or writes a word: it produces `model::Snapshot`s.

#[cfg(test)]
pub(crate) mod fake;
mod fanout;
mod held;
mod hot;
mod outgoing;
mod owners;
mod recorder;
mod sampler;
mod scrape;
mod settings;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use fanout::{Deadline, Namespaces, NsDone, Recorded, fan_out};
pub use held::raise_fd_limit;
pub(crate) use hot::InodeHasher;
pub use outgoing::{is_local, own_servers};
pub use owners::{OwnerCache, Owners, listener_inodes};
pub use recorder::{Cadence, Recorder, record};
pub use sampler::{SYN_RECV_EVERY, Sampled};
pub use scrape::{Collector, NsScrape, Scrape};

use crate::error::Result;
use crate::model::{
    ClientTraced, Counters, Gap, Name, Netns, Owner, PortRange, Snapshot, SocketFile, Sysctls,
    Traced,
};
use crate::source::client_trace::{self, Capture, ClientTrace, Here};
use crate::source::netns::Which;
use crate::source::trace::{self, ResetTrace, TraceError};
use crate::source::{diag, files, netns, netstat, procs, sysctl};

/// Everything a recording reads. Implemented by `Kernel`, and by fakes in tests.
pub trait Sources {
    /// Moves the calling thread into another network namespace. Called first, before any
    /// other method: namespaces are per thread, and a netlink socket stays in the namespace
    /// it was opened in.
    fn enter(&mut self, ns: &Which) -> Result<()>;
    /// Where and when a recording is made: kernel, host, namespace, sysctls.
    fn header(&mut self) -> Header;
    /// One dump of the listeners (kernel-filtered by the query's ports and states).
    fn listeners(&mut self, q: &diag::Query) -> Result<diag::Dump>;
    /// The namespace's TcpExt/Tcp counters, and problems met while parsing them.
    fn counters(&mut self) -> Result<(Counters, Vec<String>)>;
    /// `Tcp:RetransSegs` alone; None when unreadable.
    fn retrans_segs(&mut self) -> Option<u64>;
    /// `Tcp:PassiveOpens` alone, the connections made to the namespace's listeners (a child
    /// each, `tcp_create_openreq_child`); None when unreadable.
    fn passive_opens(&mut self) -> Option<u64>;
    /// TIME_WAIT sockets of the namespace (`/proc/net/sockstat`); None when unreadable.
    fn time_wait_count(&mut self) -> Option<u64>;
    /// The addresses of the namespace's interfaces; None when they cannot be listed.
    fn local_addresses(&mut self) -> Option<Vec<IpAddr>>;
    /// The processes holding these sockets, and a gap for those that cannot be named.
    fn owners(&mut self, inodes: &HashSet<u64>) -> (Vec<Owner>, Option<Gap>);
    /// Whether a process still runs (an owner that exited is looked up again).
    fn alive(&mut self, pid: u32) -> bool;
    /// The network namespace (inode) a process lives in; None once it has exited.
    fn netns_of(&mut self, pid: u32) -> Option<u64>;
    /// What a Unix target's path is now (following symlinks, as a client's connect() does).
    fn socket_file(&mut self, path: &Name) -> SocketFile;
    /// Starts tracing every RST the host sends (`doctor --trace`), before the first sample.
    /// Err: why it cannot, in words that say what would fix it.
    fn start_reset_trace(&mut self) -> std::result::Result<(), TraceError>;
    /// Stops the trace `start_reset_trace` began and returns what its buffer holds (the
    /// tracefs `trace` text).
    fn finish_reset_trace(&mut self) -> std::result::Result<String, TraceError>;
    /// The namespace's listening TCP sockets (`sk` pointer, which a traced RST names, and port).
    fn listening_sockets(&mut self) -> Vec<trace::ListeningSocket>;
    /// Starts tracing the connecting side's events (`doctor --trace`), before the first
    /// sample: Ok with a note for each event this kernel cannot trace; Err when none can be.
    fn start_client_trace(&mut self) -> std::result::Result<Vec<String>, TraceError>;
    /// Stops the trace `start_client_trace` began and returns what it gathered.
    fn finish_client_trace(&mut self) -> std::result::Result<Capture, TraceError>;
    /// A file as process `pid` sees it (a configuration file its command line names): an
    /// absolute path inside its root, a relative one from its working directory.
    fn process_file(&mut self, pid: u32, path: &str) -> std::io::Result<String>;
    /// The names in a directory as process `pid` sees it, for an include's pattern.
    fn process_dir(&mut self, pid: u32, dir: &str) -> std::io::Result<Vec<String>>;
    /// A variable of process `pid`'s environment (PostgreSQL's PGDATA); None when unset or
    /// unreadable.
    fn process_env(&mut self, pid: u32, var: &str) -> Option<String>;
}

/// The calling thread's network namespace, as the kernel shows it. The netlink socket opens
/// at the first dump, so that `enter` can come first. A pooled one (the exporter's, `pooled`)
/// reads a namespace held since an earlier scrape through its kept handles (`held::Held`),
/// and enters it only for what those cannot read.
#[derive(Default)]
pub struct Kernel {
    diag: Option<diag::Diag>,
    /// `doctor --trace`'s, while it runs; dropping it removes its tracefs instance.
    trace: Option<ResetTrace>,
    /// The connecting side's trace, likewise.
    client: Option<ClientTrace>,
    /// The namespace's handles, when pooled, and the pool they go back to.
    slot: held::Slot,
    /// The namespace `enter` was asked for but, being held, did not enter yet.
    pending: Option<Which>,
}

impl Kernel {
    /// Opens the netlink socket of the calling thread's namespace now, so that a kernel
    /// without NETLINK_SOCK_DIAG fails before any work.
    pub fn open() -> Result<Kernel> {
        Ok(Kernel {
            diag: Some(diag::Diag::open()?),
            ..Kernel::default()
        })
    }

    /// One that keeps each namespace it enters in `pool` for the next, and reads a namespace
    /// the pool holds without entering it.
    pub(crate) fn pooled(pool: held::Pool) -> Kernel {
        Kernel {
            slot: held::Slot::new(pool),
            ..Kernel::default()
        }
    }

    /// Enters the namespace `enter` left for later, if any.
    fn enter_now(&mut self) -> Result<()> {
        match self.pending.take() {
            Some(which) => netns::enter(&which),
            None => Ok(()),
        }
    }

    /// The text of a namespace file (`/proc/thread-self/net`, `/proc/sys`): through the held
    /// descriptor when there is one, else opened here (and held, when pooled).
    fn read_file(&mut self, path: &str) -> std::io::Result<String> {
        if let Some(text) = self.slot.held.as_ref().and_then(|h| h.read(path)) {
            return text;
        }
        if self.slot.held.is_none() {
            return std::fs::read_to_string(path);
        }
        self.enter_now().map_err(std::io::Error::other)?;
        match &mut self.slot.held {
            Some(h) => h.open(path),
            None => std::fs::read_to_string(path),
        }
    }

    /// The held namespace's listeners: by exact lookups when its counts allow
    /// (`Held::by_lookups`), else by the dump, whose listeners it learns.
    fn held_listeners(&mut self, q: &diag::Query) -> Result<diag::Dump> {
        // Its second socket opens on a thread of its own, in this thread's namespace.
        if q.parallel {
            self.enter_now()?;
        }
        if self.slot.held.as_ref().is_some_and(|h| h.diag.is_none()) {
            self.enter_now()?;
            let opened = diag::Diag::open()?;
            if let Some(h) = &mut self.slot.held {
                h.diag = Some(opened);
            }
        }
        let in_use = if self.slot.held.as_ref().is_some_and(|h| h.may_look_up(q)) {
            let v4 = self.read_file(netstat::SOCKSTAT).ok();
            let v6 = self.read_file(netstat::SOCKSTAT6).ok();
            v4.and_then(|v4| held::tcp_in_use(&v4, v6.as_deref()))
        } else {
            None
        };
        let Some(h) = &mut self.slot.held else {
            return Err(crate::error::Error::Protocol("no held namespace".into()));
        };
        if let Some(dump) = h.by_lookups(q, in_use) {
            if let Some(pool) = self.slot.pool() {
                pool.looked_up();
            }
            return Ok(dump);
        }
        let Some(d) = &mut h.diag else {
            return Err(crate::error::Error::Protocol("no netlink socket".into()));
        };
        let dump = match d.dump(q) {
            Ok(dump) => dump,
            Err(e) => {
                // A dump given up half-read leaves the socket busy with it (EBUSY for the
                // next): the next scrape opens a fresh one.
                h.incomplete = true;
                return Err(e);
            }
        };
        h.learn(q, &dump);
        Ok(dump)
    }
}

impl Sources for Kernel {
    fn enter(&mut self, ns: &Which) -> Result<()> {
        // A socket already open would keep reading the namespace it was opened in.
        self.diag = None;
        let Some(pool) = self.slot.pool() else {
            return netns::enter(ns);
        };
        let inode = std::fs::metadata(ns.path())
            .ok()
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m));
        if let Some(held) = inode.and_then(|i| pool.take(i)) {
            self.slot.held = Some(held);
            self.pending = Some(ns.clone());
            return Ok(());
        }
        let room = pool.room();
        netns::enter(ns)?;
        // The namespace entered, whatever the path led to meanwhile.
        if room {
            self.slot.held = netns::ns_inode("/proc/thread-self/ns/net").map(held::Held::new);
        }
        Ok(())
    }

    fn header(&mut self) -> Header {
        let mut gaps = Vec::new();
        let sysctls = match self.slot.held {
            Some(_) => sysctl::read_through(&mut |path| self.read_file(path), &mut gaps),
            None => sysctl::read(&mut gaps),
        };
        let netns = match self.slot.held.as_ref().and_then(|h| h.netns.clone()) {
            Some(known) => known,
            None => {
                let _ = self.enter_now();
                let here = netns::current();
                if let Some(h) = &mut self.slot.held {
                    h.netns = Some(here.clone());
                }
                here
            }
        };
        Header {
            kernel: sysctl::kernel_release(),
            hostname: sysctl::hostname(),
            netns,
            sysctls,
            gaps,
            started_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        }
    }

    fn listeners(&mut self, q: &diag::Query) -> Result<diag::Dump> {
        if self.slot.held.is_some() {
            return self.held_listeners(q);
        }
        match &mut self.diag {
            Some(d) => d.dump(q),
            None => self.diag.insert(diag::Diag::open()?).dump(q),
        }
    }

    fn counters(&mut self) -> Result<(Counters, Vec<String>)> {
        let keep = self.slot.pool().and_then(|p| p.counters);
        let read = netstat::read_through(&mut |path| self.read_file(path), &|key| {
            keep.is_none_or(|k| k.contains(key))
        })?;
        if let Some(h) = &mut self.slot.held {
            h.curr_estab = read.0.get(sampler::CURR_ESTAB).copied();
        }
        Ok(read)
    }

    fn retrans_segs(&mut self) -> Option<u64> {
        netstat::retrans_segs_of(&self.read_file(netstat::SNMP).ok()?)
    }

    fn passive_opens(&mut self) -> Option<u64> {
        let text = self.read_file(netstat::SNMP).ok()?;
        netstat::counter_of(&text, crate::catalogue::PASSIVE_OPENS)
    }

    fn time_wait_count(&mut self) -> Option<u64> {
        netstat::parse_sockstat_tw(&self.read_file(netstat::SOCKSTAT).ok()?)
    }

    fn local_addresses(&mut self) -> Option<Vec<IpAddr>> {
        self.enter_now().ok()?;
        netns::local_addresses()
    }

    fn owners(&mut self, inodes: &HashSet<u64>) -> (Vec<Owner>, Option<Gap>) {
        procs::owners(inodes)
    }

    fn alive(&mut self, pid: u32) -> bool {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    }

    fn netns_of(&mut self, pid: u32) -> Option<u64> {
        netns::inode_of_pid(pid)
    }

    fn socket_file(&mut self, path: &Name) -> SocketFile {
        sysctl::socket_file(path.bytes())
    }

    fn start_reset_trace(&mut self) -> std::result::Result<(), TraceError> {
        self.trace = Some(ResetTrace::start()?);
        Ok(())
    }

    fn finish_reset_trace(&mut self) -> std::result::Result<String, TraceError> {
        match self.trace.take() {
            Some(t) => t.finish(),
            None => Err(TraceError::NotStarted { trace: "reset" }),
        }
    }

    fn listening_sockets(&mut self) -> Vec<trace::ListeningSocket> {
        if self.enter_now().is_err() {
            return Vec::new();
        }
        trace::listening_here()
    }

    fn start_client_trace(&mut self) -> std::result::Result<Vec<String>, TraceError> {
        let _ = self.enter_now();
        // The calling thread is in the namespace by now: its local ports come from here.
        let ports = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|t| PortRange::parse(&t))
            .map(|r| (r.low, r.high));
        let (trace, notes) = ClientTrace::start(ports)?;
        self.client = Some(trace);
        Ok(notes)
    }

    fn finish_client_trace(&mut self) -> std::result::Result<Capture, TraceError> {
        match self.client.take() {
            Some(t) => t.finish(),
            None => Err(TraceError::NotStarted { trace: "client" }),
        }
    }

    fn process_file(&mut self, pid: u32, path: &str) -> std::io::Result<String> {
        files::read(pid, path)
    }

    fn process_dir(&mut self, pid: u32, dir: &str) -> std::io::Result<Vec<String>> {
        files::list(pid, dir)
    }

    fn process_env(&mut self, pid: u32, var: &str) -> Option<String> {
        files::env_var(pid, var)
    }
}

/// `doctor --trace`'s end: stops the trace and keeps the resets of the namespace `sources`
/// read, inode `netns` — sent by one of its tasks or listening sockets, or from an address
/// one of its listeners takes (`listens_at`) when the task has exited since.
pub fn traced_resets<S: Sources>(
    sources: &mut S,
    netns: Option<u64>,
    listens_at: impl Fn(SocketAddr) -> bool,
    ephemeral: Option<PortRange>,
) -> std::result::Result<Traced, TraceError> {
    let text = sources.finish_reset_trace()?;
    let (events, lost) = trace::parse(&text);
    let sockets = sources.listening_sockets();
    let ends = trace::Ends {
        sockets: &sockets,
        listens_at,
        ephemeral: ephemeral.unwrap_or(PortRange::DEFAULT),
    };
    Ok(trace::attribute(
        &events,
        lost,
        netns.unwrap_or(0),
        &ends,
        |tid| sources.netns_of(tid),
    ))
}

/// `doctor --trace`'s end on the connecting side: stops the trace and keeps the events of the
/// namespace `snap` recorded — its tasks' connects and sockets, its own addresses' sockets —
/// leaving out the sockets of its listeners. Also: how many connect() failures could be tied
/// to no namespace (their tasks gone too soon).
pub fn traced_clients<S: Sources>(
    sources: &mut S,
    snap: &Snapshot,
) -> std::result::Result<(ClientTraced, u64), TraceError> {
    let capture = sources.finish_client_trace()?;
    let addresses = snap.local_addresses.clone().unwrap_or_default();
    let listens_at = |a: SocketAddr| snap.listens_at(a);
    let here = Here {
        netns: snap.netns.inode.unwrap_or(0),
        addresses: &addresses,
        listens_at: &listens_at,
    };
    Ok(client_trace::attribute(&capture, &here))
}

/// Where and when a recording is made, read once at its start.
#[derive(Debug, Clone, Default)]
pub struct Header {
    pub kernel: Option<String>,
    pub hostname: Option<String>,
    pub netns: Netns,
    pub sysctls: Sysctls,
    /// Sysctls that could not be read.
    pub gaps: Vec<Gap>,
    pub started_unix_ms: u64,
}

/// A live recording's shape, as the options give it: how long, how often, and whether to
/// count request sockets even when no SYN queue has ever filled (`--syn-recv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sampling {
    pub window: Duration,
    pub interval: Duration,
    pub syn_recv: bool,
}

impl Sampling {
    /// A single sample: a scrape, a test's look at a queue.
    pub const ONCE: Sampling = Sampling {
        window: Duration::ZERO,
        interval: Duration::ZERO,
        syn_recv: false,
    };
}

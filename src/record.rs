//! Recording: the seam between the kernel and everything else. `Sources` is what a recording
//! reads (listener dumps, counters, owners); `Kernel` is the real one, tests use fakes. A
//! `Sampler` takes samples — deciding when request sockets are worth counting and whether a
//! sample changed — and a `SnapshotBuilder` keeps the samples that changed and turns them into
//! a `Snapshot` with its gaps. `record` runs both over a window: a burst that fills an accept
//! queue can last milliseconds, so it samples every `interval`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::Result;
pub use crate::model::Scope;
use crate::model::{
    Counters, Gap, Listener, Netns, Owner, SCHEMA_VERSION, Sample, Snapshot, Sysctls,
};
use crate::source::{diag, netns, netstat, procs, sysctl};

#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub window: Duration,
    pub interval: Duration,
}

/// Counting request sockets (SYN_RECV) makes the kernel walk its whole established-socket hash
/// (`inet_diag_dump_icsk`), ~3.5 ms of CPU on this kind of machine whatever the filter; queue
/// samples cost ~50 us. So SYN_RECV is counted in the first and last samples and at most this
/// often in between (benches/sample_cost.rs).
pub const SYN_RECV_EVERY: Duration = Duration::from_millis(100);

/// What a recording reads. Implemented by `Kernel`, and by fakes in tests.
pub trait Sources {
    /// One dump of the listeners (kernel-filtered by the query's ports and states).
    fn listeners(&mut self, q: &diag::Query) -> Result<diag::Dump>;
    /// The namespace's TcpExt/Tcp counters, and problems met while parsing them.
    fn counters(&mut self) -> Result<(Counters, Vec<String>)>;
    /// The processes holding these sockets, and a gap for those that cannot be named.
    fn owners(&mut self, inodes: &HashSet<u64>) -> (Vec<Owner>, Option<Gap>);
}

/// The calling thread's network namespace, as the kernel shows it.
pub struct Kernel {
    diag: diag::Diag,
}

impl Kernel {
    /// Opens the netlink socket of the calling thread's namespace.
    pub fn open() -> Result<Kernel> {
        Ok(Kernel {
            diag: diag::Diag::open()?,
        })
    }
}

impl Sources for Kernel {
    fn listeners(&mut self, q: &diag::Query) -> Result<diag::Dump> {
        self.diag.dump(q)
    }

    fn counters(&mut self) -> Result<(Counters, Vec<String>)> {
        netstat::read()
    }

    fn owners(&mut self, inodes: &HashSet<u64>) -> (Vec<Owner>, Option<Gap>) {
        procs::owners(inodes)
    }
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

impl Header {
    /// The calling thread's namespace, now.
    pub fn read() -> Header {
        let mut gaps = Vec::new();
        let sysctls = sysctl::read(&mut gaps);
        Header {
            kernel: sysctl::kernel_release(),
            hostname: sysctl::hostname(),
            netns: netns::current(),
            sysctls,
            gaps,
            started_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        }
    }
}

/// Whether any SYN queue of the namespace has ever filled: the only case where counting request
/// sockets tells more than "fewer than B". Counting walks the kernel's whole established-socket
/// hash (twice, one dump per family): on a host with 100,000 connections that is tens of
/// milliseconds per count (benches/vs_ss.sh), so it is skipped when this says no. A counter
/// the kernel lacks cannot say no.
fn syn_queue_used(c: &Counters) -> bool {
    crate::catalogue::SYN_QUEUE_USED
        .iter()
        .any(|k| c.get(*k).is_none_or(|v| *v > 0))
}

/// One sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampled {
    /// Since the sampler started.
    pub elapsed: Duration,
    pub listeners: Vec<Listener>,
    /// Read when the sample was a full one or the listeners changed.
    pub counters: Option<Counters>,
    /// First sample only: listeners on a target's port at an address no target matches.
    pub others: Vec<SocketAddr>,
}

/// Takes samples of the listeners in scope. Queue samples are cheap (one LISTEN dump with
/// skmeminfo for the drops); request sockets are counted only when a SYN queue of the namespace
/// has ever filled (or when forced), in full samples and at most every `syn_every`; counters
/// are read in full samples and whenever the listeners changed.
pub struct Sampler<S> {
    sources: S,
    scope: Scope,
    ports: Vec<u16>,
    start: Instant,
    syn_every: Duration,
    syn_forced: bool,
    syn_wanted: bool,
    syn_counted: Option<Duration>,
    /// The listeners of the last sample that read counters (the last one a builder stored):
    /// changes are measured against it, so a SYN_RECV count that rose while the queues stayed
    /// put is stored when next counted.
    previous: Option<Vec<Listener>>,
    /// The last SYN_RECV count of each listener, from the last sample that counted them.
    last_syn: std::collections::HashMap<(SocketAddr, u64), u32>,
    taken: u64,
    drops_unknown: usize,
    counter_problems: Vec<String>,
}

impl<S: Sources> Sampler<S> {
    /// `syn_every`: how often to count request sockets (SYN_RECV_EVERY); `syn_forced`: count
    /// them even when no SYN queue has ever filled (`--syn-recv`).
    pub fn new(sources: S, scope: Scope, syn_every: Duration, syn_forced: bool) -> Self {
        Sampler {
            ports: scope.ports(),
            sources,
            scope,
            start: Instant::now(),
            syn_every,
            syn_forced,
            syn_wanted: false,
            syn_counted: None,
            previous: None,
            last_syn: std::collections::HashMap::new(),
            taken: 0,
            drops_unknown: 0,
            counter_problems: Vec::new(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Samples taken so far, stored or not.
    pub fn taken(&self) -> u64 {
        self.taken
    }

    pub fn sources(&mut self) -> &mut S {
        &mut self.sources
    }

    /// Takes one sample now. A `full` one always counts SYN_RECV (when wanted) and reads the
    /// counters.
    pub fn sample(&mut self, full: bool) -> Result<Sampled> {
        let now = self.elapsed();
        self.sample_at(full, now)
    }

    /// `sample`, at a time the caller gives (tests drive the clock).
    pub fn sample_at(&mut self, full: bool, elapsed: Duration) -> Result<Sampled> {
        // The first sample reads its counters before the dump: they decide whether this dump
        // counts SYN_RECV.
        let mut early = None;
        if self.taken == 0 {
            let read = self.sources.counters()?;
            self.syn_wanted = syn_queue_used(&read.0);
            early = Some(read);
        }
        let due = full
            || self
                .syn_counted
                .is_none_or(|t| elapsed.saturating_sub(t) >= self.syn_every);
        let count_syn = due && (self.syn_wanted || self.syn_forced);
        if count_syn {
            self.syn_counted = Some(elapsed);
        }
        let dump = self.sources.listeners(&diag::Query {
            ports: &self.ports,
            syn_recv: count_syn,
            drops: true,
        })?;
        self.taken += 1;
        self.drops_unknown = self.drops_unknown.max(dump.drops_unknown);
        let (listeners, others): (Vec<Listener>, Vec<Listener>) = dump
            .listeners
            .into_iter()
            .partition(|l| self.scope.contains(l));
        let mut changed = self.previous.as_ref().is_none_or(|prev| {
            prev.len() != listeners.len()
                || prev.iter().zip(&listeners).any(|(a, b)| !a.same_state(b))
        });
        if count_syn {
            for l in &listeners {
                if let Some(n) = l.syn_recv {
                    changed |= self.last_syn.insert(l.key(), n) != Some(n);
                }
            }
        }
        let mut counters = None;
        if changed || full {
            let (c, problems) = match early {
                Some(read) => read,
                None => self.sources.counters()?,
            };
            if self.counter_problems.is_empty() {
                self.counter_problems = problems;
            }
            self.syn_wanted |= syn_queue_used(&c);
            counters = Some(c);
        }
        if counters.is_some() {
            self.previous = Some(listeners.clone());
        }
        Ok(Sampled {
            elapsed,
            listeners,
            counters,
            // The kernel filtered by port: the rest listen on a target's port elsewhere.
            others: if self.taken == 1 {
                others.iter().map(|l| l.local).collect()
            } else {
                Vec::new()
            },
        })
    }

    /// What this sampler could not observe, and why.
    pub fn gaps(&self) -> Vec<Gap> {
        let mut gaps = Vec::new();
        if !self.syn_wanted && !self.syn_forced {
            gaps.push(Gap::new(
                "syn-recv",
                "SYN_RECV not counted: no SYN queue in this namespace has ever filled (TCPReqQFullDoCookies, \
                 TCPReqQFullDrop and SyncookiesSent are 0), and counting walks every established socket; \
                 --syn-recv counts anyway",
            ));
        }
        if self.drops_unknown > 0 {
            gaps.push(Gap::new(
                "drops",
                format!(
                    "{} listener(s) without SK_MEMINFO_DROPS (short skmeminfo from this kernel): \
                     per-listener drops unknown; rely on TcpExt counters",
                    self.drops_unknown
                ),
            ));
        }
        for p in &self.counter_problems {
            gaps.push(Gap::new("counters", p.clone()));
        }
        gaps
    }
}

/// Keeps the samples that carry counters (the full ones and those where the listeners
/// changed) and turns them into a `Snapshot`.
pub struct SnapshotBuilder {
    snap: Snapshot,
}

impl SnapshotBuilder {
    pub fn new(header: Header, scope: &Scope, sample_interval_us: u64) -> Self {
        SnapshotBuilder {
            snap: Snapshot {
                schema_version: SCHEMA_VERSION,
                tool: format!("backlogctl {}", env!("CARGO_PKG_VERSION")),
                kernel: header.kernel,
                hostname: header.hostname,
                netns: header.netns,
                started_unix_ms: header.started_unix_ms,
                targets: scope.targets.clone(),
                sample_interval_us,
                samples_taken: 0,
                sysctls: header.sysctls,
                owners: Vec::new(),
                samples: Vec::new(),
                gaps: header.gaps,
                other_addresses: Vec::new(),
                set_aside: Vec::new(),
            },
        }
    }

    pub fn started_unix_ms(&self) -> u64 {
        self.snap.started_unix_ms
    }

    pub fn add(&mut self, s: &Sampled) {
        if !s.others.is_empty() {
            self.snap.other_addresses = s.others.clone();
        }
        if let Some(c) = &s.counters {
            self.snap.samples.push(Sample {
                elapsed_us: s.elapsed.as_micros() as u64,
                counters: Some(c.clone()),
                listeners: s.listeners.clone(),
            });
        }
    }

    /// The snapshot, with the sampler's count and gaps. Owners are named by the caller.
    pub fn finish<S: Sources>(mut self, sampler: &Sampler<S>) -> Snapshot {
        self.snap.samples_taken = sampler.taken();
        self.snap.gaps.extend(sampler.gaps());
        self.snap
    }
}

/// Records the calling thread's network namespace over `plan.window`, sampling on a fixed
/// grid of `plan.interval`. Processes are not named: see `attribute_owners`.
pub fn record(scope: &Scope, plan: &Plan, syn_forced: bool) -> Result<Snapshot> {
    let interval = plan.interval.max(Duration::from_micros(100));
    let header = Header::read();
    let mut sampler = Sampler::new(Kernel::open()?, scope.clone(), SYN_RECV_EVERY, syn_forced);
    let every_us = if plan.window.is_zero() {
        0
    } else {
        interval.as_micros() as u64
    };
    let mut builder = SnapshotBuilder::new(header, scope, every_us);
    let mut tick = 0u32;
    loop {
        let last = sampler.elapsed() >= plan.window;
        builder.add(&sampler.sample(last)?);
        if last {
            break;
        }
        // Sleep to the next tick on a fixed grid, so a slow sample does not shift the rest.
        tick += 1;
        let next = (interval * tick).min(plan.window);
        match next.checked_sub(sampler.elapsed()) {
            Some(wait) => std::thread::sleep(wait),
            None => tick = (sampler.elapsed().as_micros() / interval.as_micros().max(1)) as u32,
        }
    }
    Ok(builder.finish(&sampler))
}

/// Inodes of every listener in the snapshot.
pub fn listener_inodes(snap: &Snapshot) -> HashSet<u64> {
    snap.samples
        .iter()
        .flat_map(|s| s.listeners.iter().map(|l| l.inode))
        .collect()
}

/// Names the processes holding these listeners (`/proc/*/fd`), adding a gap for any it cannot.
/// For a namespace with no name and no PID to enter it by, keeps the lowest of those PIDs that
/// lives in it (its /proc/PID/ns/net is the namespace): fixes enter the namespace through it.
/// Holding a socket is not enough, since descriptors travel (SCM_RIGHTS, socket activation).
pub fn attribute_owners(snap: &mut Snapshot, inodes: &HashSet<u64>) {
    let (owners, gap) = procs::owners(inodes);
    snap.owners.extend(owners);
    snap.gaps.extend(gap);
    let ns = &snap.netns;
    if ns.pid.is_none() && ns.path.is_none() && ns.names.is_empty() && ns.initial != Some(true) {
        let mut pids: Vec<u32> = snap.owners.iter().map(|o| o.pid).collect();
        pids.sort_unstable();
        pids.dedup();
        snap.netns.pid = pids
            .into_iter()
            .find(|pid| ns.inode.is_some() && netns_inode_of(*pid) == ns.inode);
    }
}

/// The inode of a process's network namespace (`/proc/PID/ns/net` → `net:[INODE]`).
fn netns_inode_of(pid: u32) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
    link.to_str()?
        .strip_prefix("net:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Sources that replay scripted dumps and counters, and record what was asked.
    #[derive(Default)]
    struct Fake {
        /// Recv-Q of the one listener at each dump, in order (the last repeats).
        queues: Vec<u32>,
        /// TCPReqQFullDoCookies at each counter read (the last repeats); None = absent.
        cookies: Vec<Option<u64>>,
        dumps: usize,
        reads: usize,
        /// For each dump: whether it asked for request sockets.
        syn_asked: Vec<bool>,
        /// SYN_RECV of the listener at each dump that counts them (the last repeats).
        syn: Vec<u32>,
    }

    impl Sources for Fake {
        fn listeners(&mut self, q: &diag::Query) -> Result<diag::Dump> {
            self.syn_asked.push(q.syn_recv);
            let recv_q = self.queues[self.dumps.min(self.queues.len() - 1)];
            self.dumps += 1;
            Ok(diag::Dump {
                listeners: vec![Listener {
                    local: "127.0.0.1:8100".parse().unwrap(),
                    inode: 7,
                    uid: 0,
                    recv_q,
                    send_q: 5,
                    drops: Some(0),
                    syn_recv: q.syn_recv.then(|| {
                        self.syn
                            .get(self.dumps - 1)
                            .or(self.syn.last())
                            .copied()
                            .unwrap_or(0)
                    }),
                    v6only: None,
                }],
                requests: Vec::new(),
                drops_unknown: 0,
            })
        }

        fn counters(&mut self) -> Result<(Counters, Vec<String>)> {
            let mut c = BTreeMap::new();
            let v = self.cookies[self.reads.min(self.cookies.len() - 1)];
            self.reads += 1;
            for k in crate::catalogue::SYN_QUEUE_USED {
                c.insert(k.to_string(), 0);
            }
            match v {
                Some(v) => c.insert(crate::catalogue::REQQ_FULL_DO_COOKIES.into(), v),
                None => c.remove(crate::catalogue::REQQ_FULL_DO_COOKIES),
            };
            Ok((c, Vec::new()))
        }

        fn owners(&mut self, _: &HashSet<u64>) -> (Vec<Owner>, Option<Gap>) {
            (Vec::new(), None)
        }
    }

    fn sampler(fake: Fake, forced: bool) -> Sampler<Fake> {
        Sampler::new(fake, Scope::default(), Duration::from_millis(100), forced)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn syn_recv_is_counted_only_once_a_syn_queue_has_filled() {
        // No SYN queue ever filled: never counted, and the gap says so.
        let mut s = sampler(
            Fake {
                queues: vec![0],
                cookies: vec![Some(0)],
                ..Fake::default()
            },
            false,
        );
        for t in [0, 150, 300] {
            s.sample_at(t == 300, ms(t)).unwrap();
        }
        assert_eq!(s.sources().syn_asked, [false, false, false]);
        assert!(s.gaps().iter().any(|g| g.what == "syn-recv"));
        // --syn-recv: counted in the first sample, then at most every 100 ms, and in full ones.
        let mut s = sampler(
            Fake {
                queues: vec![0],
                cookies: vec![Some(0)],
                ..Fake::default()
            },
            true,
        );
        for (t, full) in [(0, false), (50, false), (120, false), (130, true)] {
            s.sample_at(full, ms(t)).unwrap();
        }
        assert_eq!(s.sources().syn_asked, [true, false, true, true]);
        assert!(!s.gaps().iter().any(|g| g.what == "syn-recv"));
        // A counter this kernel lacks cannot rule it out: counted.
        let mut s = sampler(
            Fake {
                queues: vec![0],
                cookies: vec![None],
                ..Fake::default()
            },
            false,
        );
        s.sample_at(false, ms(0)).unwrap();
        assert_eq!(s.sources().syn_asked, [true]);
    }

    #[test]
    fn a_syn_queue_filling_mid_window_turns_counting_on() {
        // The cookies counter rises at the third read: later samples count request sockets.
        let mut s = sampler(
            Fake {
                queues: vec![0, 1, 2, 3, 4],
                cookies: vec![Some(0), Some(0), Some(3)],
                ..Fake::default()
            },
            false,
        );
        for t in [0, 10, 20, 200, 400] {
            s.sample_at(false, ms(t)).unwrap();
        }
        assert_eq!(s.sources().syn_asked, [false, false, false, true, true]);
    }

    #[test]
    fn a_syn_recv_rise_alone_is_stored() {
        // The queue stays put while SYN_RECV rises from 0 to 40 between two counts.
        let mut s = sampler(
            Fake {
                queues: vec![3],
                cookies: vec![Some(1)],
                syn: vec![0, 0, 0, 40, 40],
                ..Fake::default()
            },
            false,
        );
        let mut b = SnapshotBuilder::new(Header::default(), &Scope::default(), 10_000);
        for t in [0, 50, 100, 200, 250] {
            b.add(&s.sample_at(false, ms(t)).unwrap());
        }
        let snap = b.finish(&s);
        let syn: Vec<Option<u32>> = snap
            .samples
            .iter()
            .map(|x| x.listeners[0].syn_recv)
            .collect();
        assert_eq!(syn, [Some(0), Some(40)], "{:?}", s.sources().syn_asked);
    }

    #[test]
    fn unchanged_samples_are_counted_not_stored() {
        let queues = vec![0, 0, 0, 3, 3, 0];
        let mut s = sampler(
            Fake {
                queues: queues.clone(),
                cookies: vec![Some(0)],
                ..Fake::default()
            },
            false,
        );
        let mut b = SnapshotBuilder::new(Header::default(), &Scope::default(), 10_000);
        for (i, _) in queues.iter().enumerate() {
            let last = i == queues.len() - 1;
            b.add(&s.sample_at(last, ms(10 * i as u64)).unwrap());
        }
        let snap = b.finish(&s);
        assert_eq!(snap.samples_taken, 6);
        let stored: Vec<u32> = snap.samples.iter().map(|x| x.listeners[0].recv_q).collect();
        // First, each change, and the last (full) one.
        assert_eq!(stored, [0, 3, 0]);
        assert!(snap.samples.iter().all(|x| x.counters.is_some()));
        // Counters are read only for those: once at the start, then per change.
        assert_eq!(s.sources().reads, 3);
    }
}

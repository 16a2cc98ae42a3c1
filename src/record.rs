//! Recording: turns the live sources into a `Snapshot`. Samples the listeners in scope every
//! `interval` for `window` (a burst that fills an accept queue can last milliseconds), reads
//! the counters at both ends and whenever the queues changed, attributes processes once at the
//! end, and notes every gap. Identical consecutive samples are counted but not stored.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::Result;
pub use crate::model::Scope;
use crate::model::{Counters, Gap, Listener, SCHEMA_VERSION, Sample, Snapshot};
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

/// Whether any SYN queue of the namespace has ever filled: the only case where counting request
/// sockets tells more than "fewer than B". Counting walks the kernel's whole established-socket
/// hash (twice, one dump per family): on a host with 100,000 connections that is tens of
/// milliseconds per count (benches/vs_ss.sh), so it is skipped when this says no.
fn syn_queue_used(c: &Counters) -> bool {
    crate::catalogue::SYN_QUEUE_USED
        .iter()
        .any(|k| c.get(*k).is_none_or(|v| *v > 0))
}

/// Records a snapshot of the calling thread's network namespace.
pub fn record(scope: &Scope, plan: &Plan) -> Result<Snapshot> {
    record_with(
        scope,
        plan,
        Extras {
            force_syn_recv: false,
            owners: true,
        },
    )
}

/// What a recording does beyond the queues and counters.
#[derive(Debug, Clone, Copy)]
pub struct Extras {
    /// Count SYN_RECV even when no SYN queue has ever filled (`--syn-recv`).
    pub force_syn_recv: bool,
    /// Name the processes of every listener (else the caller uses `attribute_owners`).
    pub owners: bool,
}

pub fn record_with(scope: &Scope, plan: &Plan, extras: Extras) -> Result<Snapshot> {
    let interval = plan.interval.max(Duration::from_micros(100));
    let mut rec = Recorder::start(scope.clone(), SYN_RECV_EVERY, true)?;
    if extras.force_syn_recv {
        rec.force_syn_recv();
    }
    rec.owners = extras.owners;
    rec.snap.sample_interval_us = if plan.window.is_zero() {
        0
    } else {
        interval.as_micros() as u64
    };
    let mut tick = 0u32;
    loop {
        let last = rec.elapsed() >= plan.window;
        rec.sample(last)?;
        if last {
            break;
        }
        // Sleep to the next tick on a fixed grid, so a slow sample does not shift the rest.
        tick += 1;
        let next = (interval * tick).min(plan.window);
        match next.checked_sub(rec.elapsed()) {
            Some(wait) => std::thread::sleep(wait),
            None => tick = (rec.elapsed().as_micros() / interval.as_micros().max(1)) as u32,
        }
    }
    Ok(rec.finish())
}

/// A recording in progress: takes samples of the listeners in scope, keeps the ones that
/// changed (or only the latest, when not keeping history), and turns into a `Snapshot`.
pub struct Recorder {
    scope: Scope,
    ports: Vec<u16>,
    diag: diag::Diag,
    start: Instant,
    syn_every: Duration,
    syn_counted: Option<Duration>,
    /// Count request sockets at all: see `syn_queue_used`.
    syn_wanted: bool,
    syn_forced: bool,
    keep: bool,
    /// Attribute owners in `finish`.
    pub owners: bool,
    drops_unknown: usize,
    counter_problems: Vec<String>,
    /// The snapshot being built; `samples` grows as `sample` is called.
    pub snap: Snapshot,
}

impl Recorder {
    /// Reads the sysctls and opens the netlink socket of the calling thread's namespace.
    /// `syn_every`: how often to count request sockets (see SYN_RECV_EVERY). `keep`: store
    /// every changed sample (for a snapshot) or only the latest.
    pub fn start(scope: Scope, syn_every: Duration, keep: bool) -> Result<Self> {
        let mut gaps = Vec::new();
        let sysctls = sysctl::read(&mut gaps);
        let diag = diag::Diag::open()?;
        let started_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let snap = Snapshot {
            schema_version: SCHEMA_VERSION,
            tool: format!("backlogctl {}", env!("CARGO_PKG_VERSION")),
            kernel: sysctl::kernel_release(),
            hostname: sysctl::hostname(),
            netns: netns::current(),
            started_unix_ms,
            targets: scope.targets.clone(),
            sample_interval_us: 0,
            samples_taken: 0,
            sysctls,
            owners: Vec::new(),
            samples: Vec::new(),
            gaps,
            other_addresses: Vec::new(),
        };
        Ok(Recorder {
            ports: scope.ports(),
            scope,
            diag,
            start: Instant::now(),
            syn_every,
            syn_counted: None,
            syn_wanted: false,
            syn_forced: false,
            keep,
            owners: true,
            drops_unknown: 0,
            counter_problems: Vec::new(),
            snap,
        })
    }

    /// Count SYN_RECV even when no SYN queue has ever filled (`--syn-recv`).
    pub fn force_syn_recv(&mut self) {
        self.syn_forced = true;
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Takes one sample. A `full` one always counts SYN_RECV, reads the counters and is kept;
    /// others count SYN_RECV when due and are kept when a listener changed. Returns the
    /// sample's listeners, and its counters when it read them.
    pub fn sample(&mut self, full: bool) -> Result<(Vec<Listener>, Option<Counters>)> {
        // The first sample (always stored) reads its counters before the dump: they decide
        // whether this dump counts SYN_RECV.
        let mut early = None;
        if self.snap.samples_taken == 0 {
            let read = netstat::read()?;
            self.syn_wanted = syn_queue_used(&read.0);
            early = Some(read);
        }
        let elapsed = self.start.elapsed();
        let due = full
            || self
                .syn_counted
                .is_none_or(|t| elapsed.saturating_sub(t) >= self.syn_every);
        let count_syn = due && (self.syn_wanted || self.syn_forced);
        if count_syn {
            self.syn_counted = Some(elapsed);
        }
        let dump = self.diag.dump(&diag::Query {
            ports: &self.ports,
            syn_recv: count_syn,
            drops: true,
        })?;
        self.snap.samples_taken += 1;
        self.drops_unknown = self.drops_unknown.max(dump.drops_unknown);
        let (listeners, others): (Vec<Listener>, Vec<Listener>) = dump
            .listeners
            .into_iter()
            .partition(|l| self.scope.contains(l));
        if self.snap.samples_taken == 1 {
            // The kernel filtered by port: the rest listen on a target's port elsewhere.
            self.snap.other_addresses = others.iter().map(|l| l.local).collect();
        }
        let changed = self.snap.samples.last().is_none_or(|prev| {
            prev.listeners.len() != listeners.len()
                || prev
                    .listeners
                    .iter()
                    .zip(&listeners)
                    .any(|(a, b)| !a.same_state(b))
        });
        let mut counters = None;
        if changed || full {
            let (c, problems) = match early {
                Some(read) => read,
                None => netstat::read()?,
            };
            if self.counter_problems.is_empty() {
                self.counter_problems = problems;
            }
            self.syn_wanted |= syn_queue_used(&c);
            if !self.keep {
                self.snap.samples.clear();
            }
            self.snap.samples.push(Sample {
                elapsed_us: elapsed.as_micros() as u64,
                counters: Some(c.clone()),
                listeners: listeners.clone(),
            });
            counters = Some(c);
        }
        Ok((listeners, counters))
    }

    /// Adds the gaps and the owners of every listener seen, and hands over the snapshot.
    pub fn finish(mut self) -> Snapshot {
        if !self.syn_wanted && !self.syn_forced {
            self.snap.gaps.push(Gap::new(
                "syn-recv",
                "SYN_RECV not counted: no SYN queue in this namespace has ever filled (TCPReqQFullDoCookies, \
                 TCPReqQFullDrop and SyncookiesSent are 0), and counting walks every established socket; \
                 --syn-recv counts anyway",
            ));
        }
        if self.drops_unknown > 0 {
            self.snap.gaps.push(Gap::new(
                "drops",
                format!(
                    "{} listener(s) without SK_MEMINFO_DROPS (short skmeminfo from this kernel): \
                     per-listener drops unknown; rely on TcpExt counters",
                    self.drops_unknown
                ),
            ));
        }
        for p in std::mem::take(&mut self.counter_problems) {
            self.snap.gaps.push(Gap::new("counters", p));
        }
        if self.owners {
            let inodes = listener_inodes(&self.snap);
            attribute_owners(&mut self.snap, &inodes);
        }
        self.snap
    }
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

//! Sampling: one sample of the listeners in scope, deciding when request sockets are worth
//! counting (a SYN queue of the namespace has ever filled, or `--syn-recv`) and whether a
//! sample changed, so that only changes and full samples read the counters and are kept.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::Sources;
use super::hot::{ByInode, HotSet};
use super::outgoing::{OutgoingReader, OutgoingScope, Ruled};
use crate::error::Result;
use crate::model::{Counters, Gap, Listener, Local, Scope, UnixName, Wait};
use crate::source::diag;

/// What a Unix listener's lean dump leaves out (`diag::Query::unix_lean`): its name, socket
/// file and owner uid.
type UnixIds = (UnixName, Option<crate::model::Vfs>, u32);

fn millis(d: Duration) -> u32 {
    d.as_millis().min(u128::from(u32::MAX)) as u32
}

/// Counting request sockets (SYN_RECV) makes the kernel walk its whole established-socket hash
/// (`inet_diag_dump_icsk`), ~3.5 ms of CPU on this kind of machine whatever the filter; queue
/// samples cost ~50 us. So SYN_RECV is counted in the first and last samples and at most this
/// often in between (benches/sample_cost.rs).
pub const SYN_RECV_EVERY: Duration = Duration::from_millis(100);

/// The clients' wait is read from the ESTABLISHED sockets of the listeners' ports, filtered by
/// port in the kernel: in the first and last samples and at most this often in between. The
/// kernel walks its whole established hash for it (about 0.2 us of kernel time per socket
/// skipped, 1.4 us per socket sent with its tcp_info, benches/wait.sh), so a host with many
/// connections makes each reading cost more, and the interval stretches to `WAIT_COST_SHARE`
/// times the last reading's cost: between the first and last samples the wait takes at most
/// 1/20 of the window, whatever the connections.
pub(super) const WAIT_EVERY: Duration = Duration::from_millis(100);
const WAIT_COST_SHARE: u32 = 20;
/// Up to this many runs of consecutive ports (`diag::port_ranges`) go into the kernel's
/// bytecode filter; beyond, every ESTABLISHED socket is dumped and matched here (the filter's
/// cost grows with its blocks per socket).
const WAIT_FILTER_PORTS: usize = 256;

/// The TCP listeners of a dump when every queue is empty, with `Tcp:PassiveOpens` read before
/// it: until that counter moves, no connection was made to any of them (each is a child,
/// counted by `tcp_create_openreq_child`, SYN cookies and Fast Open included), so every queue
/// is still empty and a dump of them would say the same queues. Between refreshes `watch`
/// samples queues alone, and on a quiet host a TCP dump, a walk of every listener of every
/// namespace, was most of its CPU. A listener made since, without connections, or closed
/// since is seen at the next refresh, which always dumps.
fn quiet_tcp(opens: u64, listeners: &[Listener]) -> Option<(u64, Vec<Listener>)> {
    let tcp: Vec<Listener> = listeners
        .iter()
        .filter(|l| l.local.inet().is_some())
        .cloned()
        .collect();
    tcp.iter().all(|l| l.recv_q == 0).then_some((opens, tcp))
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

/// Every counter a sample reads to decide its dumps.
pub(super) fn counters_read() -> impl Iterator<Item = &'static str> {
    use crate::catalogue::{
        ACTIVE_OPENS, PASSIVE_OPENS, RETRANS_SEGS, SYN_QUEUE_USED, TCP_TIMEOUTS,
    };
    let one = [
        CURR_ESTAB,
        ACTIVE_OPENS,
        PASSIVE_OPENS,
        TCP_TIMEOUTS,
        RETRANS_SEGS,
    ];
    SYN_QUEUE_USED.iter().copied().chain(one)
}

/// A gauge of `/proc/net/snmp`, not a counter (so not in the catalogue): the ESTABLISHED and
/// CLOSE_WAIT sockets of the namespace now.
pub(super) const CURR_ESTAB: &str = "Tcp:CurrEstab";

/// What counters read just before a sample's dumps rule out; a counter absent rules nothing out.
#[derive(Debug, Clone, Copy, Default)]
struct Quiet {
    /// `Tcp:CurrEstab` is 0: the namespace holds no ESTABLISHED (nor CLOSE_WAIT) socket
    /// (`tcp_set_state` counts every socket entering ESTABLISHED, per namespace).
    no_established: bool,
    /// What rules out the connecting side's dump (`Ruled`).
    outgoing: Ruled,
    /// `Tcp:RetransSegs` as they say it: the connecting side's reading needs no reading of
    /// its own.
    retrans_segs: Option<u64>,
    /// `Tcp:PassiveOpens` + `Tcp:ActiveOpens`: every socket that entered ESTABLISHED, a child
    /// (`tcp_create_openreq_child`) or a connect (`tcp_connect`), moved one of them.
    opens: Option<u64>,
}

impl Quiet {
    fn of(counters: Option<&Counters>) -> Quiet {
        let zero = |key: &str| counters.is_some_and(|c| c.get(key) == Some(&0));
        Quiet {
            no_established: zero(CURR_ESTAB),
            outgoing: Ruled {
                never_connected: zero(crate::catalogue::ACTIVE_OPENS),
                no_timeouts: zero(crate::catalogue::TCP_TIMEOUTS),
            },
            retrans_segs: counters.and_then(|c| c.get(crate::catalogue::RETRANS_SEGS).copied()),
            opens: counters.and_then(|c| {
                let passive = c.get(crate::catalogue::PASSIVE_OPENS)?;
                Some(passive.wrapping_add(*c.get(crate::catalogue::ACTIVE_OPENS)?))
            }),
        }
    }
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
    /// The connecting side, at the samples that read it.
    pub outgoing: Option<crate::model::Outgoing>,
    /// A sample of the hot listeners alone (`Sampler::sample_hot_at`), not of the whole scope.
    pub partial: bool,
}

/// Takes samples of the listeners in scope. Queue samples are cheap (one LISTEN dump with
/// skmeminfo for the drops); request sockets are counted only when a SYN queue of the namespace
/// has ever filled (or when forced), in full samples and at most every `syn_every`; counters
/// are read in full samples and whenever the listeners changed.
pub(super) struct Sampler<S> {
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
    /// Where each listener of `previous` is, by inode: built when a hot sample needs it.
    prev_index: Option<ByInode<usize>>,
    /// `watch`'s hot set (`hot_sampling`): None for every other recorder.
    hot: Option<HotSet>,
    /// With a hot set: each Unix listener's name, socket file and uid, from the dump that
    /// first said them.
    unix_ids: ByInode<UnixIds>,
    /// Between refreshes (`queues_only`): the TCP listeners of the last dump of the scope
    /// when every queue was empty, and `Tcp:PassiveOpens` read before it (`quiet_tcp`).
    quiet_tcp: Option<(u64, Vec<Listener>)>,
    /// The last reading of the clients' wait left nobody who could be waiting later (none
    /// queued; every accepted connection had sent something, and sending is for good): the
    /// `Quiet::opens` read before it. While they read the same and no TCP queue holds a
    /// connection, no socket was made since, so nobody waits, without a walk of the host's
    /// established hash (`settled_wait`).
    wait_quiet: Option<u64>,
    /// A sample that changed reads the counters (so that a recorder can keep it); without it
    /// only full samples do (`watch` without `--record` shows counters at refreshes only).
    counters_on_change: bool,
    /// How often the clients' wait may be read between full samples (`WAIT_EVERY`).
    wait_every: Duration,
    /// No sample follows the next (`last_sample_next`): `previous` is not needed.
    last: bool,
    /// The last SYN_RECV count of each listener, from the last sample that counted them.
    last_syn: HashMap<(Local, u64), u32>,
    /// The families the scope covers: a dump skips the other.
    tcp: bool,
    unix: bool,
    /// The kernel could not dump Unix listeners (no unix_diag).
    unix_absent: bool,
    /// Dump the two families at once (`Query::parallel`).
    parallel: bool,
    taken: u64,
    drops_unknown: usize,
    counter_problems: Vec<String>,
    /// When the clients' wait was last read, and what that dump cost.
    wait_read: Option<Duration>,
    wait_cost: Duration,
    /// Why the last attempt to read the wait failed, for the gap.
    wait_failed: Option<String>,
    /// When each pending connection of a Unix listener (listener inode, client inode) was first
    /// seen pending: its wait so far is at least the time since.
    pending_since: HashMap<(u64, u32), Duration>,
    /// The TCP clients found waiting at the last reading: those gone at the next have left.
    tcp_waiting: HashSet<diag::Waiting>,
    /// The last reading saw clients waiting.
    waited: bool,
    /// The connecting side's readings, with the wait's.
    outgoing: OutgoingReader,
    /// The last reading listed a server.
    out_seen: bool,
}

impl<S: Sources> Sampler<S> {
    /// `syn_every`: how often to count request sockets (SYN_RECV_EVERY); `syn_forced`: count
    /// them even when no SYN queue has ever filled (`--syn-recv`).
    #[cfg(test)]
    pub(super) fn new(sources: S, scope: Scope, syn_every: Duration, syn_forced: bool) -> Self {
        Sampler::with_outgoing(
            sources,
            scope,
            syn_every,
            syn_forced,
            OutgoingScope::default(),
        )
    }

    /// `new`, reading the connecting side as `outgoing` says.
    pub(super) fn with_outgoing(
        sources: S,
        scope: Scope,
        syn_every: Duration,
        syn_forced: bool,
        outgoing: OutgoingScope,
    ) -> Self {
        let (tcp, unix) = (scope.wants_tcp(), scope.wants_unix());
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
            prev_index: None,
            hot: None,
            unix_ids: ByInode::default(),
            quiet_tcp: None,
            wait_quiet: None,
            counters_on_change: true,
            wait_every: WAIT_EVERY,
            last: false,
            last_syn: HashMap::new(),
            tcp,
            unix,
            unix_absent: false,
            parallel: false,
            taken: 0,
            drops_unknown: 0,
            counter_problems: Vec::new(),
            wait_read: None,
            wait_cost: Duration::ZERO,
            wait_failed: None,
            pending_since: HashMap::new(),
            tcp_waiting: HashSet::new(),
            waited: false,
            outgoing: OutgoingReader::new(outgoing),
            out_seen: false,
        }
    }

    pub(super) fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// The targets that are servers this namespace connects to.
    pub(super) fn servers(&self) -> &[SocketAddr] {
        &self.outgoing.scope.servers
    }

    /// The namespace's RetransSegs at a reading before this recording (the exporter's last
    /// scrape): the first reading then dumps ESTABLISHED when it rose since.
    pub(super) fn retrans_before(&mut self, value: u64) {
        self.outgoing.retrans_before(value);
    }

    /// Samples taken so far, stored or not.
    pub(super) fn taken(&self) -> u64 {
        self.taken
    }

    pub(super) fn sources(&mut self) -> &mut S {
        &mut self.sources
    }

    pub(super) fn into_sources(self) -> S {
        self.sources
    }

    /// Takes one sample at `elapsed` (the recorder's clock; tests drive it). A `full` one
    /// always counts SYN_RECV (when wanted) and reads the counters.
    pub(super) fn sample_at(&mut self, full: bool, elapsed: Duration) -> Result<Sampled> {
        // The first sample reads its counters before the dump: they decide whether this dump
        // counts SYN_RECV. So does every full one, which reads them anyway: then they can rule
        // out its walks of the established hash too (a refresh of `watch` in a namespace
        // without connections dumps only its listeners).
        let mut early = None;
        if self.taken == 0 || full {
            let read = self.sources.counters()?;
            self.syn_wanted |= syn_queue_used(&read.0);
            early = Some(read);
        }
        // Counters read just now can rule dumps out (each a walk of the host's established hash).
        let quiet = Quiet::of(early.as_ref().map(|(c, _)| c));
        let due = full
            || self
                .syn_counted
                .is_none_or(|t| elapsed.saturating_sub(t) >= self.syn_every);
        let count_syn = due && (self.syn_wanted || self.syn_forced);
        if count_syn {
            self.syn_counted = Some(elapsed);
        }
        let dump = self.dump_scope(full, count_syn)?;
        let (mut listeners, others) = self.split_scope(dump.listeners);
        let mut changed = self.changed(&listeners, full, count_syn);
        let mut outgoing = None;
        if self.wait_due(full, elapsed) {
            // A sample that saw clients waiting is kept: the wait is its evidence; so is the
            // one that sees them gone, or a timeline would hold the last wait to the end.
            changed |= self.read_waits(&mut listeners, elapsed, quiet);
            changed |= self.read_outgoing(&mut outgoing, quiet);
        }
        if let Some(hot) = &mut self.hot {
            hot.scope_seen(&listeners, elapsed);
        }
        let mut counters = None;
        if (changed && self.counters_on_change) || full {
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
        if counters.is_some() && !self.last {
            self.previous = Some(listeners.clone());
            self.prev_index = None;
        }
        Ok(Sampled {
            elapsed,
            listeners,
            counters,
            outgoing,
            // The kernel filtered by port: the rest listen on a target's port elsewhere.
            others: if self.taken == 1 {
                others.iter().filter_map(|l| l.local.inet()).collect()
            } else {
                Vec::new()
            },
            partial: false,
        })
    }

    /// The dump of the whole scope, its Unix listeners' names, socket files and uids filled
    /// in. `watch`'s dumps leave those out once a dump has said them (`unix_ids`): a socket's
    /// name, file and owner are fixed when it is made. Between refreshes, a `watch` that keeps
    /// no samples leaves out the TCP listeners' drops too (`queues_only`).
    fn dump_scope(&mut self, full: bool, count_syn: bool) -> Result<diag::Dump> {
        let lean = self.unix && self.hot.is_some() && !self.unix_ids.is_empty();
        let between = !full && !count_syn && self.tcp && self.queues_only();
        let opens = if between {
            self.sources.passive_opens()
        } else {
            None
        };
        let quiet = match (&self.quiet_tcp, opens) {
            (Some((before, _)), Some(now)) if *before == now => self.quiet_tcp.take(),
            _ => None,
        };
        let tcp = self.tcp && quiet.is_none();
        if !tcp && !self.unix {
            let (opens, listeners) = quiet.unwrap_or_default();
            self.quiet_tcp = Some((opens, listeners.clone()));
            self.taken += 1;
            return Ok(diag::Dump {
                listeners,
                ..diag::Dump::default()
            });
        }
        let mut dump = self.sources.listeners(&diag::Query {
            ports: &self.ports,
            syn_recv: count_syn && self.tcp,
            drops: full || !self.queues_only(),
            tcp,
            unix: self.unix,
            unix_only: None,
            unix_lean: lean,
            tcp_exact: &[],
            established: false,
            pending_of: &[],
            outgoing: None,
            parallel: self.parallel,
        })?;
        self.unix_absent |= dump.unix_absent;
        self.taken += 1;
        self.drops_unknown = self.drops_unknown.max(dump.drops_unknown);
        if lean {
            self.fill_unix_ids(&mut dump.listeners)?;
            if full {
                // The ones gone since are forgotten, once a refresh.
                let live: ByInode<()> = dump.listeners.iter().map(|l| (l.inode, ())).collect();
                self.unix_ids.retain(|inode, _| live.contains_key(inode));
            }
        } else if self.hot.is_some() {
            self.learn_unix_ids(&dump.listeners);
        }
        self.quiet_tcp = match quiet {
            Some((opens, tcp)) => {
                // Where a dump puts them: first.
                let unix = std::mem::replace(&mut dump.listeners, tcp.clone());
                dump.listeners.extend(unix);
                Some((opens, tcp))
            }
            None => opens.and_then(|o| quiet_tcp(o, &dump.listeners)),
        };
        Ok(dump)
    }

    /// Whether the dumps of the whole scope between full samples may leave out the TCP
    /// listeners' drops (skmeminfo, about a fifth of a TCP listener dump's kernel time:
    /// `sk_get_meminfo` for every listener): `watch` without `--record`, whose rows take their
    /// drops from the refreshes (full samples) and whose hot samples ask for them. Such a dump
    /// only finds a listener by its queue: one whose drops rose is found hot at the next
    /// refresh, or by its queue first.
    fn queues_only(&self) -> bool {
        self.hot.is_some() && !self.counters_on_change
    }

    /// Whether the listeners changed since the last sample kept, SYN_RECV counts included.
    /// Only a sample that may be kept is compared.
    fn changed(&mut self, listeners: &[Listener], full: bool, count_syn: bool) -> bool {
        let mut changed = (self.counters_on_change || full)
            && self.previous.as_ref().is_none_or(|prev| {
                prev.len() != listeners.len()
                    || prev.iter().zip(listeners).any(|(a, b)| !a.same_state(b))
            });
        if count_syn {
            for l in listeners {
                if let Some(n) = l.syn_recv {
                    changed |= self.last_syn.insert(l.key(), n) != Some(n);
                }
            }
        }
        changed
    }

    /// The dump's listeners in scope, and the others (on a target's port elsewhere). When all
    /// are in scope (no target), they stay where they are: 20,000 listeners are 2.8 MB to copy.
    fn split_scope(&self, all: Vec<Listener>) -> (Vec<Listener>, Vec<Listener>) {
        if all.iter().all(|l| self.scope.contains(l)) {
            return (all, Vec::new());
        }
        all.into_iter().partition(|l| self.scope.contains(l))
    }

    /// Dumps TCP and Unix listeners at once, on two threads (`Cadence::parallel`).
    pub(super) fn parallel_dumps(&mut self) {
        self.parallel = true;
    }

    /// Keeps a hot set (`watch`): `sample_hot_at` then samples its listeners alone. The wait is
    /// read at most every `wait_every` (the refresh: each reading walks the host's established
    /// hash), and counters only in full samples unless `keep` (a recording keeps the changes).
    pub(super) fn hot_sampling(&mut self, wait_every: Duration, keep: bool) {
        self.hot = Some(HotSet::new(!self.scope.targets.is_empty()));
        self.wait_every = wait_every;
        self.counters_on_change = keep;
    }

    /// How many listeners are hot now (0 without a hot set).
    pub(super) fn hot_len(&self) -> usize {
        self.hot.as_ref().map_or(0, HotSet::len)
    }

    /// The listeners of the last sample that read counters, with a hot sample's merged in:
    /// what a recording keeps of a hot sample.
    pub(super) fn previous(&self) -> Option<&[Listener]> {
        self.previous.as_deref()
    }

    /// One sample of the hot listeners alone: the Unix ones by inode, the TCP ones by address
    /// (`diag::Query::unix_only`, `tcp_exact`) or, where that lookup misses them, by port;
    /// `partial` is set. It reads
    /// counters only when a hot listener changed and changes are kept (`hot_sampling`).
    pub(super) fn sample_hot_at(&mut self, elapsed: Duration) -> Result<Sampled> {
        let Some(hot) = &self.hot else {
            return self.sample_at(false, elapsed);
        };
        let dump = self.sources.listeners(&diag::Query {
            ports: hot.ports(),
            drops: true,
            tcp: self.tcp && !hot.ports().is_empty(),
            tcp_exact: hot.exact(),
            unix: self.unix && !hot.unix().is_empty(),
            unix_only: Some(hot.unix()),
            ..diag::Query::TCP
        })?;
        self.taken += 1;
        self.drops_unknown = self.drops_unknown.max(dump.drops_unknown);
        let mut listeners = dump.listeners;
        listeners.retain(|l| hot.contains(l.inode));
        if let Some(hot) = &mut self.hot {
            hot.hot_seen(&listeners, elapsed);
        }
        let mut counters = None;
        if self.counters_on_change && self.merge_hot(&listeners) {
            let (c, _) = self.sources.counters()?;
            self.syn_wanted |= syn_queue_used(&c);
            counters = Some(c);
        }
        Ok(Sampled {
            elapsed,
            listeners,
            counters,
            others: Vec::new(),
            outgoing: None,
            partial: true,
        })
    }

    /// Remembers the name, socket file and uid of each Unix listener of a dump that asked for
    /// them.
    fn learn_unix_ids(&mut self, listeners: &[Listener]) {
        for l in listeners {
            if let Local::Unix(u) = &l.local {
                self.unix_ids
                    .insert(l.inode, (u.name.clone(), u.vfs, l.uid));
            }
        }
    }

    /// Gives the Unix listeners of a lean dump their name, socket file and uid: remembered, or
    /// for a listener new since, asked for by inode.
    fn fill_unix_ids(&mut self, listeners: &mut [Listener]) -> Result<()> {
        let mut missing = Vec::new();
        for l in listeners.iter_mut() {
            if let Local::Unix(u) = &mut l.local {
                match self.unix_ids.get(&l.inode) {
                    Some((name, vfs, uid)) => {
                        (u.name, u.vfs, l.uid) = (name.clone(), *vfs, *uid);
                    }
                    None => missing.push(l.inode),
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let found = self
            .sources
            .listeners(&diag::Query {
                tcp: false,
                unix: true,
                unix_only: Some(&missing),
                ..diag::Query::TCP
            })?
            .listeners;
        self.learn_unix_ids(&found);
        for f in found {
            if let Some(l) = listeners.iter_mut().find(|l| l.inode == f.inode) {
                *l = f;
            }
        }
        Ok(())
    }

    /// Puts a hot sample's listeners into `previous` in place of their earlier state: true
    /// when one changed (or is not there to compare with).
    fn merge_hot(&mut self, hot: &[Listener]) -> bool {
        let Some(prev) = self.previous.as_mut() else {
            return true;
        };
        let index = self
            .prev_index
            .get_or_insert_with(|| prev.iter().enumerate().map(|(i, l)| (l.inode, i)).collect());
        let mut changed = false;
        for l in hot {
            match index.get(&l.inode) {
                Some(&i) if prev[i].same_state(l) => {}
                Some(&i) => {
                    prev[i] = l.clone();
                    changed = true;
                }
                None => changed = true,
            }
        }
        changed
    }

    /// The next sample is the last: nothing will be compared with it, so it is not kept.
    pub(super) fn last_sample_next(&mut self) {
        self.last = true;
    }

    /// The connecting side, into `out`; true when it lists a server, or the last one did.
    fn read_outgoing(&mut self, out: &mut Option<crate::model::Outgoing>, quiet: Quiet) -> bool {
        *out = self
            .outgoing
            .read(&mut self.sources, quiet.outgoing, quiet.retrans_segs);
        let seen = out.as_ref().is_some_and(|o| !o.remotes.is_empty());
        seen || std::mem::replace(&mut self.out_seen, seen)
    }

    /// Whether this sample reads the clients' wait (`WAIT_EVERY`, stretched by its cost).
    fn wait_due(&self, full: bool, elapsed: Duration) -> bool {
        let every = self.wait_every.max(self.wait_cost * WAIT_COST_SHARE);
        full || self
            .wait_read
            .is_none_or(|t| elapsed.saturating_sub(t) >= every)
    }

    /// Reads the ESTABLISHED sockets of the TCP listeners' ports and attaches each listener's
    /// wait; true when anyone waits, or nobody does any more. A failed dump is a gap, not a
    /// failed sample.
    fn read_waits(&mut self, listeners: &mut [Listener], elapsed: Duration, quiet: Quiet) -> bool {
        let began = Instant::now();
        // The time since the last reading, for the rate at which waiting clients leave.
        let since = self.wait_read.map(|t| elapsed.saturating_sub(t));
        let unix = self.unix && self.read_unix_pending(listeners, elapsed, since);
        let tcp = self.tcp && self.read_tcp_waits(listeners, since, quiet);
        self.wait_cost = began.elapsed();
        self.wait_read = Some(elapsed);
        let was = std::mem::replace(&mut self.waited, unix || tcp);
        unix || tcp || was
    }

    /// The pending connections of the Unix listeners with a queue, one exact request each: a
    /// connection seen pending in an earlier reading has waited at least since then.
    fn read_unix_pending(
        &mut self,
        listeners: &mut [Listener],
        elapsed: Duration,
        since: Option<Duration>,
    ) -> bool {
        let inodes: Vec<u64> = listeners
            .iter()
            .filter(|l| l.local.is_unix() && l.recv_q > 0)
            .map(|l| l.inode)
            .collect();
        if inodes.is_empty() {
            self.pending_since.clear();
            return false;
        }
        let pending = match self.sources.listeners(&diag::Query::pending_of(&inodes)) {
            Ok(d) => d.pending,
            Err(e) => {
                self.wait_failed = Some(e.to_string());
                return false;
            }
        };
        let mut seen = HashMap::new();
        for (listener, clients) in &pending {
            let Some(l) = listeners.iter_mut().find(|l| l.inode == *listener) else {
                continue;
            };
            let pending: HashSet<u32> = clients.iter().copied().collect();
            let mut oldest = Duration::ZERO;
            for c in clients {
                let first = *self.pending_since.get(&(*listener, *c)).unwrap_or(&elapsed);
                seen.insert((*listener, *c), first);
                oldest = oldest.max(elapsed.saturating_sub(first));
            }
            let left = self
                .pending_since
                .keys()
                .filter(|(of, c)| of == listener && !pending.contains(c))
                .count();
            l.wait = Some(Wait {
                queued: clients.len() as u32,
                queued_oldest_ms: millis(oldest),
                at_least: true,
                queued_left: left as u32,
                since_ms: since.map_or(0, millis),
                ..Wait::default()
            });
        }
        self.pending_since = seen;
        !pending.is_empty()
    }

    /// No dump is needed when the namespace has no ESTABLISHED socket, or when nobody can be
    /// waiting since the last reading (`settled_wait`).
    fn read_tcp_waits(
        &mut self,
        listeners: &mut [Listener],
        since: Option<Duration>,
        quiet: Quiet,
    ) -> bool {
        let mut ports: Vec<u16> = listeners
            .iter()
            .filter_map(|l| l.local.inet().map(|a| a.port()))
            .collect();
        ports.sort_unstable();
        ports.dedup();
        if ports.is_empty() {
            return false;
        }
        let filter: &[u16] = if diag::port_ranges(&ports).len() > WAIT_FILTER_PORTS {
            &[]
        } else {
            &ports
        };
        let settled = self.settled_wait(listeners, quiet.opens);
        let dump = if quiet.no_established || settled {
            Ok(diag::Dump::default())
        } else {
            self.sources.listeners(&diag::Query::established(filter))
        };
        match dump {
            Ok(d) => {
                self.wait_failed = None;
                if !settled {
                    let later = d.conns.iter().any(diag::may_wait_later);
                    self.wait_quiet = quiet.opens.filter(|_| !later);
                }
                let now: HashSet<diag::Waiting> = diag::attach_waits(listeners, &d.conns)
                    .into_iter()
                    .collect();
                if let Some(since) = since {
                    // One pass over those waiting before: who left, per listener and place.
                    let mut left: HashMap<(u64, bool), u32> = HashMap::new();
                    for x in self.tcp_waiting.iter().filter(|x| !now.contains(x)) {
                        *left.entry((x.listener, x.queued)).or_default() += 1;
                    }
                    let left_of = |l: u64, queued| left.get(&(l, queued)).copied().unwrap_or(0);
                    for l in listeners.iter_mut() {
                        let inode = l.inode;
                        let Some(w) = l.wait.as_mut() else { continue };
                        w.queued_left = left_of(inode, true);
                        w.unanswered_left = left_of(inode, false);
                        w.since_ms = millis(since);
                    }
                }
                self.tcp_waiting = now;
                listeners.iter().any(|l| l.wait.is_some_and(|w| w.any()))
            }
            Err(e) => {
                self.wait_failed = Some(e.to_string());
                self.wait_quiet = None;
                false
            }
        }
    }

    /// Whether nobody can be waiting on the TCP listeners without a dump to say so: the last
    /// reading left nobody who could wait later (`wait_quiet`), no socket entered ESTABLISHED
    /// since (`opens`, read before this sample's dumps, is the same), and no queue holds a
    /// connection (each queued one is a child: a queue can only have shrunk). A namespace
    /// whose connections were all answered is then read without a walk of the host's whole
    /// established hash, 1.5 ms for each such namespace of a node with 10,000 connections.
    fn settled_wait(&self, listeners: &[Listener], opens: Option<u64>) -> bool {
        opens.is_some()
            && opens == self.wait_quiet
            && listeners
                .iter()
                .all(|l| l.local.inet().is_none() || l.recv_q == 0)
    }

    /// See `wait_quiet`: for a caller that keeps it from one sampler to the next (the
    /// exporter's scrapes).
    pub(super) fn wait_quiet(&self) -> Option<u64> {
        self.wait_quiet
    }

    pub(super) fn wait_quiet_before(&mut self, opens: u64) {
        self.wait_quiet = Some(opens);
    }

    /// What this sampler could not observe, and why.
    pub(super) fn gaps(&self) -> Vec<Gap> {
        let mut gaps = Vec::new();
        if !self.syn_wanted && !self.syn_forced {
            gaps.push(Gap::syn_recv_not_counted());
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
        if self.unix_absent {
            gaps.push(Gap::new(
                "unix-listeners",
                "Unix-domain listeners not read: this kernel has no unix_diag \
                 (CONFIG_UNIX_DIAG, module unix_diag)",
            ));
        }
        for p in &self.counter_problems {
            gaps.push(Gap::new("counters", p.clone()));
        }
        if let Some(why) = &self.outgoing.failed {
            gaps.push(Gap::new(
                "outgoing connections",
                format!("this namespace's connections to servers could not be read: {why}"),
            ));
        }
        if let Some(why) = &self.wait_failed {
            gaps.push(Gap::new(
                "clients' wait",
                format!("the established sockets of the listeners' ports could not be read: {why}"),
            ));
        }
        gaps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::fake::Fake;
    use crate::model::GapKind;

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
        assert!(
            s.gaps()
                .iter()
                .any(|g| g.kind == GapKind::SynRecvNotCounted)
        );
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
        assert!(
            !s.gaps()
                .iter()
                .any(|g| g.kind == GapKind::SynRecvNotCounted)
        );
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
    fn between_refreshes_empty_tcp_queues_are_dumped_again_only_once_a_connection_was_made() {
        // PassiveOpens 5 until the fourth look between refreshes; the dump after it and every
        // one from the full sample on see a queue.
        let mut s = sampler(
            Fake {
                queues: vec![0, 0, 3],
                cookies: vec![Some(0)],
                passive_opens: vec![5, 5, 5, 6],
                ..Fake::default()
            },
            false,
        );
        s.hot_sampling(Duration::from_secs(1), false);
        let mut seen = Vec::new();
        for (t, full) in [
            (0, false),
            (100, false),
            (200, false),
            (300, false),
            (400, true),
            (500, false),
            (600, false),
        ] {
            let sampled = s.sample_at(full, ms(t)).unwrap();
            let queues: Vec<u32> = sampled.listeners.iter().map(|l| l.recv_q).collect();
            seen.push((s.sources().dumps, queues));
        }
        let want: Vec<(usize, Vec<u32>)> = [1, 1, 1, 2, 3, 4, 5]
            .into_iter()
            .zip([0, 0, 0, 0, 3, 3, 3])
            .map(|(d, q)| (d, vec![q]))
            .collect();
        assert_eq!(seen, want);
        // Full samples never look: the four samples between before it and the two after.
        assert_eq!(s.sources().passive_reads, 6);
        // A recording's samples are all dumped.
        let mut s = sampler(
            Fake {
                queues: vec![0],
                cookies: vec![Some(0)],
                passive_opens: vec![5],
                ..Fake::default()
            },
            false,
        );
        s.hot_sampling(Duration::from_secs(1), true);
        for t in [0, 100, 200] {
            s.sample_at(false, ms(t)).unwrap();
        }
        assert_eq!((s.sources().dumps, s.sources().passive_reads), (3, 0));
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
    fn the_reading_that_sees_the_wait_end_is_kept() {
        use crate::source::diag::{Conn, ConnInfo};
        let queued = Conn {
            local: "127.0.0.1:8100".parse().unwrap(),
            remote: "127.0.0.1:40000".parse().unwrap(),
            inode: 0,
            recv_q: 0,
            info: Some(ConnInfo {
                last_data_sent_ms: 1_200,
                last_data_recv_ms: 1_200,
                bytes_received: Some(0),
                bytes_sent: Some(0),
                data_segs_out: Some(0),
            }),
        };
        // The queue stays at 1 throughout: only the readings can make a sample worth keeping.
        let mut s = sampler(Fake::queues(&[1]), false);
        let mut kept = Vec::new();
        for (t, conns) in [
            (0, true),
            (100, true),
            (200, false),
            (300, false),
            (400, false),
        ] {
            s.sources().conns = if conns {
                vec![queued.clone()]
            } else {
                Vec::new()
            };
            kept.push(s.sample_at(false, ms(t)).unwrap().counters.is_some());
        }
        assert_eq!(s.sources().wait_dumps, 5);
        // The first, one that saw a wait, the one that saw it end; not the quiet ones after.
        assert_eq!(kept, [true, true, true, false, false]);
    }

    #[test]
    fn no_established_socket_in_the_first_reading_skips_the_wait_dump() {
        // Tcp:CurrEstab 0 when the first sample reads its counters: nobody can wait, no dump,
        // and the listener still says so (a wait of zero, not an unmeasured one).
        let mut s = sampler(
            Fake {
                curr_estab: Some(0),
                ..Fake::queues(&[0])
            },
            false,
        );
        let first = s.sample_at(false, ms(0)).unwrap();
        assert_eq!(s.sources().wait_dumps, 0);
        assert_eq!(first.listeners[0].wait, Some(Wait::default()));
        // A full sample reads its counters first too: no dump. The others read them after the
        // dump, too late to tell: they dump.
        s.sample_at(true, ms(100)).unwrap();
        assert_eq!(s.sources().wait_dumps, 0);
        s.sample_at(false, ms(200)).unwrap();
        assert_eq!(s.sources().wait_dumps, 1);
        // Some ESTABLISHED socket, or a kernel without the gauge: the dump is made.
        for curr_estab in [Some(3), None] {
            let mut s = sampler(
                Fake {
                    curr_estab,
                    ..Fake::queues(&[0])
                },
                false,
            );
            s.sample_at(false, ms(0)).unwrap();
            assert_eq!(s.sources().wait_dumps, 1, "{curr_estab:?}");
        }
    }

    #[test]
    fn a_namespace_that_never_connected_has_no_syn_sent_dump() {
        // Tcp:ActiveOpens 0 in the first sample's counters: the connecting side is read as
        // empty without a dump; later samples, or any connect() ever made, dump.
        let all = || OutgoingScope {
            all: true,
            ..OutgoingScope::default()
        };
        for (active_opens, dumps) in [(Some(0), 1), (Some(5), 2), (None, 2)] {
            let fake = Fake {
                active_opens,
                retrans: vec![7],
                ..Fake::queues(&[0])
            };
            let mut s = Sampler::with_outgoing(fake, Scope::default(), ms(100), false, all());
            let first = s.sample_at(false, ms(0)).unwrap();
            assert!(first.outgoing.is_some_and(|o| o.remotes.is_empty()));
            s.sample_at(false, ms(100)).unwrap();
            assert_eq!(s.sources().outgoing_asked.len(), dumps, "{active_opens:?}");
        }
    }

    #[test]
    fn no_retransmission_timeout_skips_the_syn_sent_dump_without_a_target() {
        // TCPTimeouts 0 in the first sample's counters: no SYN_SENT socket has retried, and
        // without a target only retried ones are listed, so the first reading is made empty
        // without a dump; a timeout ever, an absent counter or a named server dumps.
        use crate::source::diag::{OutSock, TCP_SYN_SENT};
        let fresh = OutSock {
            local: "10.0.0.2:40000".parse().unwrap(),
            remote: "10.0.0.1:9000".parse().unwrap(),
            state: TCP_SYN_SENT,
            send_q: 0,
            retransmitting: false,
            retrans: 0,
            bytes_acked: None,
            inode: 7,
        };
        let server: SocketAddr = "10.0.0.1:9000".parse().unwrap();
        for (timeouts, servers, dumps) in [
            (Some(0), vec![], 1),
            (Some(2), vec![], 2),
            (None, vec![], 2),
            (Some(0), vec![server], 2),
        ] {
            let fake = Fake {
                active_opens: Some(5),
                timeouts,
                retrans: vec![7],
                outgoing: vec![fresh],
                ..Fake::queues(&[0])
            };
            let scope = OutgoingScope {
                all: servers.is_empty(),
                servers,
                ..OutgoingScope::default()
            };
            let mut s = Sampler::with_outgoing(fake, Scope::default(), ms(100), false, scope);
            let first = s.sample_at(false, ms(0)).unwrap().outgoing.unwrap();
            let second = s.sample_at(false, ms(100)).unwrap().outgoing.unwrap();
            assert_eq!(s.sources().outgoing_asked.len(), dumps, "{timeouts:?}");
            // Skipped or not, the first reading says what the dump says.
            assert_eq!(first, second, "{timeouts:?}");
        }
    }
}

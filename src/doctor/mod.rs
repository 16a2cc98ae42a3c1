//! The diagnosis: a pure function from a `Snapshot` to a `Report`. No clock, no files, no
//! environment: a live run and `doctor --from FILE` give equal findings for equal data, and
//! every rule is testable from a recorded fixture. Four steps, four homes: classification and
//! grouping (`rules.rs`), the remedy plan (`remedy.rs`, with `runtime.rs`), and the words
//! (`words.rs`). What an owner serves at once, from its settings, is `caps.rs`'s. Kernel facts behind each rule are in docs/kernel.md; the rules cite the
//! section they rest on.

pub mod caps;
pub mod client;
pub mod remedy;
mod rules;
pub mod runtime;
pub mod wait;
mod words;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use crate::model::{Gap, Local, Netns, Owner, QueuePeak, Snapshot, Sysctls};

/// How bad a finding is; the verdict is the worst of them. Ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok,
    Warning,
    Critical,
}

crate::model::spelled! {
    /// Stable identifiers, each spelled once (`accept-queue-overflow`): the JSON's `id`, the
    /// text's and the plot's.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum RuleId {
        NotListening = "not-listening",
        AcceptQueueOverflow = "accept-queue-overflow",
        AcceptQueueDropped = "accept-queue-dropped",
        AcceptQueueHigh = "accept-queue-high",
        AcceptQueueStanding = "accept-queue-standing",
        AcceptedNotServed = "accepted-not-served",
        BacklogCappedBySomaxconn = "backlog-capped-by-somaxconn",
        SomaxconnChangedAfterListen = "somaxconn-changed-after-listen",
        SmallAppBacklog = "small-app-backlog",
        SynQueueOverflow = "syn-queue-overflow",
        AbortOnOverflow = "abort-on-overflow",
        SyncookiesDisabled = "syncookies-disabled",
        ReuseportImbalance = "reuseport-imbalance",
        UnixClients = "unix-clients",
        ResetsUnreadClose = "resets-unread-close",
        ResetsLingerAbort = "resets-linger-abort",
        ResetsDataAfterClose = "resets-data-after-close",
        ResetsAbortOnData = "resets-abort-on-data",
        ResetsTimeout = "resets-timeout",
        ResetsMemory = "resets-memory",
        ResetsUnexplained = "resets-unexplained",
        ConnectsUnanswered = "connects-unanswered",
        RequestsUnacknowledged = "requests-unacknowledged",
        ResetsFromServer = "resets-from-server",
        ConnectsRefused = "connects-refused",
        LocalPortsExhausted = "local-ports-exhausted",
        ConntrackFull = "conntrack-full",
    }
}

/// A number a finding rests on, and where it comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    pub name: String,
    pub value: serde_json::Value,
    pub source: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub id: RuleId,
    pub severity: Severity,
    /// `local` address of the listener concerned (the example of a group); None for the
    /// namespace as a whole.
    pub listener: Option<String>,
    /// Socket inode of that listener: tells apart the sockets of an SO_REUSEPORT group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inode: Option<u64>,
    /// `not-listening`: the TARGET nothing listens on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The connecting side's findings: the server (address and port) this namespace's
    /// connections go to; None for a listener's finding, or one about several servers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// Every listener the finding covers, `listener` first: listeners alike (same rule, backlog
    /// and processes) share one finding. Empty when it concerns no listener.
    pub listeners: Vec<String>,
    /// Socket inodes of `listeners`, in the same order.
    pub inodes: Vec<u64>,
    pub summary: String,
    pub evidence: Vec<Evidence>,
    pub fix: Fix,
    /// What the rule found, typed; `summary` is its words.
    #[serde(skip)]
    pub fact: Fact,
    /// What a connecting-side rule found, typed (`client::ClientFact`); None for the others.
    #[serde(skip)]
    pub client: Option<client::ClientFact>,
}

/// What to do about a finding: the steps of the listener's plan (the same for every finding
/// about it), or the namespace's own steps.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Fix {
    /// Index into `Report::plans`; None for findings about the namespace as a whole.
    pub plan: Option<usize>,
    /// The plan's backlog, when it raises one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_backlog: Option<u32>,
    pub steps: Vec<remedy::Step>,
    /// The steps as sentences, for people: one per step, commands in backticks.
    pub text: Vec<String>,
}

/// What a rule found, with the numbers its words need. No text.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Fact {
    #[default]
    None,
    NotListening {
        target: String,
        ip: Option<IpAddr>,
        elsewhere: Vec<SocketAddr>,
    },
    /// Nothing listens on a Unix socket target; what its name leads to instead.
    NotListeningUnix {
        target: String,
        path: PathState,
    },
    Overflow {
        seen: QueueSeen,
    },
    Dropped {
        earlier: u32,
    },
    High,
    /// Clients waited, in the accept queue or after accept(), longer than a client notices
    /// (`wait::WAIT_WARNING_MS`), or the accept queue never emptied.
    Waiting {
        place: wait::WaitWhere,
        seen: wait::WaitSeen,
        /// The listener's runtime, for its concurrency setting.
        runtime: Option<&'static runtime::Runtime>,
    },
    Capped {
        somaxconn: u32,
    },
    ChangedAfterListen {
        somaxconn: u32,
    },
    SmallAppBacklog {
        /// None when it could not be read.
        somaxconn: Option<u32>,
        /// The runtime whose default the backlog is.
        runtime_default: Option<&'static str>,
    },
    NamespaceOverflow {
        overflows: u64,
        whose: Whose,
    },
    SynQueueDropped {
        dropped: u64,
    },
    SynQueueCookies {
        cookies: u64,
    },
    SynQueueFullNow,
    Clients {
        accept_overflow: bool,
    },
    /// What the clients of overflowing Unix listeners see (no setting changes it); the first
    /// listener names the socket in nginx's log line.
    UnixClients {
        example: Option<Local>,
        /// `doctor --trace`: this namespace's connect() calls refused with EAGAIN over the
        /// window, per process, most first (`syscalls:sys_exit_connect`); None: not traced.
        refused: Option<Vec<crate::model::ConnectErrors>>,
    },
    SyncookiesDisabled,
    /// The sockets of an SO_REUSEPORT group are unevenly loaded (docs/kernel.md §8.3).
    ReuseportImbalance {
        sockets: usize,
        /// Sockets of the group that stayed below half full.
        roomy: usize,
        /// Whether another socket of the group was seen empty while this one held
        /// connections, up to the window's end; None when this one's queue was empty at the
        /// end, or for a single sample, which cannot tell.
        others_drained: Option<bool>,
        /// This socket's queue stood while others of the group emptied theirs: one process,
        /// not the backlog, is the cause.
        stuck: Option<Stuck>,
    },
    /// Resets of one cause rose in the namespace over the window (docs/kernel.md §10).
    Resets {
        cause: ResetCause,
        /// Rise of the cause's counter.
        count: u64,
        /// Per second over the window.
        per_sec: f64,
        /// The sockets they can belong to: the counter names none.
        candidates: Candidates,
    },
    /// RSTs sent (OutRsts) that no counter of a cause, nor a listen-queue finding, explains.
    ResetsUnexplained {
        /// OutRsts minus the attributed causes; None when the causes' counters were not
        /// recorded (an older file): the causes could not be told.
        unexplained: Option<u64>,
        out_rsts: u64,
        per_sec: f64,
        /// TCP listeners that do exist, for "nothing listens on the port".
        listeners: Vec<String>,
        /// `doctor --trace`: the RSTs of no counted cause, one line per source and reason.
        traced: Option<Vec<TracedLine>>,
        /// The namespace's own outgoing connections, which OutRsts counts too.
        own: OwnSide,
    },
    /// A note, not a finding (severity Ok, shown with `--verbose`): resets of one cause, or
    /// unexplained (`cause` None), too few for a finding (`rules::RESETS_MIN`, `RESETS_SHARE`).
    ResetsFew {
        cause: Option<ResetCause>,
        count: u64,
        /// Connections the namespace opened and accepted in the window (ActiveOpens +
        /// PassiveOpens); None: not recorded.
        connections: Option<u64>,
    },
    /// A note: `--trace` put every reset of this cause (None: of no counted cause) on the
    /// namespace's own outgoing connections, none on its listeners' clients.
    ResetsOwnOnly {
        cause: Option<ResetCause>,
        lines: Vec<TracedLine>,
    },
}

/// A socket of an SO_REUSEPORT group whose queue never emptied while others of the group
/// emptied theirs, and the process behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stuck {
    /// Recv-Q at the end of the window, and B.
    pub recv_q: u32,
    pub backlog: u32,
    /// How long its queue held connections without emptying, up to the window's end.
    pub for_ms: u64,
    /// How many other sockets of the group emptied their queues meanwhile.
    pub drained: usize,
    /// The processes that accept from it (their epoll sets watch it), or its only holder;
    /// empty when which of its holders serves it is unknown.
    pub servers: Vec<Server>,
    /// How many processes hold it.
    pub holders: usize,
}

/// The process that accepts from a socket, as far as `/proc` tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Server {
    pub pid: u32,
    pub state: Option<crate::model::ProcState>,
    /// Its epoll set watches the socket; false: it is the socket's only holder.
    pub watches: bool,
}

impl Fact {
    /// What was seen and is below a finding's bar: a note (`Report::notes`).
    pub fn is_note(&self) -> bool {
        matches!(self, Fact::ResetsFew { .. } | Fact::ResetsOwnOnly { .. })
    }

    /// A finding that names the cause of the others about its listener: at its severity it
    /// comes first, before the findings whose fixes only soften the effect (a bigger backlog
    /// makes the clients of a stuck process wait longer, it does not serve them).
    pub fn leads(&self) -> bool {
        matches!(self, Fact::ReuseportImbalance { stuck: Some(_), .. })
    }
}

/// Resets traced one by one (`doctor --trace`) from one source address, for one reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TracedLine {
    /// The RST's source address and port.
    pub source: String,
    /// The kernel's reset reason, e.g. TCP_ABORT_ON_CLOSE, NO_SOCKET.
    pub reason: String,
    pub count: u64,
    /// The processes in whose context they were sent.
    pub tasks: Vec<String>,
    /// Whether a listener in view holds that address and port.
    pub listening: bool,
    /// Resets on the namespace's own outgoing connections (sent from a port connect() chose):
    /// the server they went to. `source` then has port 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
}

/// The namespace's own outgoing connections, which its reset counters count as much as its
/// listeners' (a proxy's to its upstreams).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OwnSide {
    /// Connections it opened in the window (Tcp ActiveOpens); None: not recorded.
    pub opened: Option<u64>,
    /// The servers they go to, read after the window (`Snapshot::own_connections`); empty
    /// when not read.
    pub servers: Vec<crate::model::OwnServer>,
    /// `doctor --trace`: the resets on them, one line per server and reason; None: not traced.
    pub traced: Option<Vec<TracedLine>>,
}

/// The sockets a namespace's resets can belong to. The counters are per namespace and name no
/// socket (docs/kernel.md §10): what is known is which listeners were seen busy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Candidates {
    /// The targets the user named; empty without one.
    pub targets: Vec<String>,
    /// Listeners in view seen with connections queued during the window (Recv-Q or SYN_RECV
    /// above 0), with the peak Recv-Q.
    pub busy: Vec<(String, u32)>,
    /// How many listeners in view were never seen with a connection queued.
    pub quiet: usize,
    /// With targets: the namespace's other TCP listeners (`Snapshot::other_listeners`); None
    /// when they were not read.
    pub others: Option<Vec<String>>,
    /// `doctor --trace`: the resets of this cause sent to clients of the namespace's
    /// listeners, or from closed ports, one line per source; None: not traced.
    pub traced: Option<Vec<TracedLine>>,
    /// The namespace's own outgoing connections, which the counter counts too.
    pub own: OwnSide,
}

/// Why a namespace sent resets, by the counter that tells it (docs/kernel.md §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetCause {
    /// close() with unread data: TCPAbortOnClose.
    UnreadClose,
    /// SO_LINGER {1,0}: TCPAbortOnData, traced with reason TCP_STATE (`tcp_disconnect`).
    LingerAbort,
    /// Data arriving after the application closed: TCPAbortOnData, traced with reason
    /// TCP_ABORT_ON_DATA (`tcp_rcv_state_process` in FIN_WAIT1/2).
    DataAfterClose,
    /// TCPAbortOnData without a trace to tell the two above apart.
    AbortOnData,
    /// Keepalive or retransmission timeout: TCPAbortOnTimeout.
    Timeout,
    /// tcp_mem / tcp_max_orphans: TCPAbortOnMemory.
    Memory,
}

/// What a Unix target nobody listens on leads to, from `Snapshot::socket_file`: it decides
/// what clients get (docs/kernel.md §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PathState {
    /// A socket file no listener of this namespace holds: stale, or its server is in another
    /// network namespace. connect() gets ECONNREFUSED.
    StaleSocket,
    /// No such file: ENOENT.
    Missing,
    /// A file that is not a socket: ECONNREFUSED.
    NotASocket,
    /// stat failed (permissions): what clients get is unknown.
    Unreadable,
    /// Not looked at (a file recorded before schema 2).
    NotChecked,
    /// An abstract name nobody bound in this namespace: ECONNREFUSED.
    Abstract,
}

/// How an overflow was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueSeen {
    FullInWindow,
    FullNow,
    /// Drops rose (by this many) while ListenOverflows did.
    DropsRose(u32),
}

/// Which listener a namespace-wide overflow must have come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whose {
    OutsideScope,
    DropsUnknown,
    ClosedOrHidden,
}

/// One listener over the window, as the rules and the renderers see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListenerView {
    pub local: Local,
    pub inode: u64,
    /// Send-Q at the last sample: the effective backlog B.
    pub send_q: u32,
    /// Recv-Q at the last sample the listener was seen in.
    pub recv_q: u32,
    /// Highest Recv-Q seen in the window.
    pub recv_q_peak: u32,
    /// Recv-Q > Send-Q in some sample: the accept queue was full (`sk_acceptq_is_full`).
    pub full_seen: bool,
    /// sk_drops at the last sample (since the socket was created); None = unknown.
    pub drops: Option<u32>,
    /// Increase of sk_drops over the window; None when unknown or a single sample.
    pub drops_delta: Option<u32>,
    /// Highest SYN_RECV count seen; None when no sample counted request sockets.
    pub syn_recv_peak: Option<u32>,
    /// Still listening at the end of the window.
    pub present_at_end: bool,
    pub v6only: Option<bool>,
    pub owners: Vec<Owner>,
    /// Its clients' wait over the window (TCP, snapshots of schema 4 on).
    #[serde(skip_serializing_if = "wait::WaitSeen::is_empty")]
    pub wait: wait::WaitSeen,
    /// What its owner serves at once, when read from its settings (`caps::of`; the cap of a
    /// runtime whose number is not a setting, Node.js's processes, Java's unreadable pools, is
    /// for the rules to word where it matters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cap: Option<caps::Cap>,
}

impl ListenerView {
    /// `127.0.0.1:8100 (nginx, pid 12)` for prose.
    pub fn label(&self) -> String {
        match self.process() {
            Some(p) => format!("{} ({p})", self.local),
            None => self.local.to_string(),
        }
    }

    /// `nginx, pid 12`, or `nginx, pids 12,13` for a shared socket; None when unknown.
    pub fn process(&self) -> Option<String> {
        crate::model::process_label(&self.owners)
    }

    /// PIDs of the processes holding the socket, sorted, each once.
    pub fn owner_pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.owners.iter().map(|o| o.pid).collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// The accept queue at its fullest over the window.
    pub fn queue(&self) -> QueuePeak {
        QueuePeak {
            peak: self.recv_q_peak,
            backlog: self.send_q,
        }
    }

    /// Percentage of the queue's capacity (B+1) reached at the peak.
    /// The `n` most troubled of `listeners` (queue seen full, dropping in the window, dropping
    /// before, fullest; ties in their given order), most troubled first, with their index.
    pub fn most_troubled(listeners: &[ListenerView], n: usize) -> Vec<(usize, &ListenerView)> {
        let mut ranked: Vec<(usize, &ListenerView)> = listeners.iter().enumerate().collect();
        ranked.sort_by_key(|(i, v)| {
            (
                std::cmp::Reverse((
                    v.full_seen,
                    v.drops_delta.unwrap_or(0),
                    v.drops.unwrap_or(0),
                    v.peak_fill_pct(),
                )),
                *i,
            )
        });
        ranked.truncate(n);
        ranked
    }

    pub fn peak_fill_pct(&self) -> u32 {
        self.queue().fill_pct()
    }

    pub fn capacity(&self) -> u64 {
        self.queue().capacity()
    }

    pub fn nearly_full(&self) -> bool {
        self.queue().nearly_full()
    }

    pub fn half_full(&self) -> bool {
        self.queue().half_full()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub verdict: Severity,
    pub findings: Vec<Finding>,
    /// What a rule saw that is below its finding's bar (resets too few, or all on the
    /// namespace's own connections): shown with `--verbose`, always in JSON. Severity Ok.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Finding>,
    /// One remedy plan per listener (or group of alike listeners) with a finding; findings
    /// refer to them by index (`fix.plan`).
    pub plans: Vec<remedy::Plan>,
    pub listeners: Vec<ListenerView>,
    /// The servers this namespace connects to that the window showed: the targets at other
    /// addresses, and those in trouble (`client::servers`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<client::ServerView>,
    /// Host name targets and the addresses they resolved to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resolved: Vec<crate::model::Resolved>,
    pub targets: Vec<crate::model::Target>,
    /// Length of the observation, ms; 0 for a single sample (no deltas).
    pub window_ms: u64,
    pub samples_taken: u64,
    pub kernel: Option<String>,
    pub netns: Netns,
    pub sysctls: Sysctls,
    pub gaps: Vec<Gap>,
    /// `doctor --trace`: the namespace's own connections as the kernel's events saw them, by
    /// server, and its connect() calls refused at once; None: not traced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_traced: Option<crate::model::ClientTraced>,
}

impl Report {
    /// Whether a command of its plans or findings names a process by PID: a process of the
    /// time the data was recorded, maybe gone or another since.
    pub(crate) fn names_pids(&self) -> bool {
        self.plans
            .iter()
            .flat_map(|p| &p.steps)
            .chain(self.findings.iter().flat_map(|f| &f.fix.steps))
            .any(|s| s.names_pid)
    }
}

/// The whole diagnosis. Pure.
pub fn diagnose(snap: &Snapshot) -> Report {
    triage(snap).finish(snap)
}

/// The first half of a diagnosis: every listener folded over the window and classified, before
/// any process is named. `troubled` says whose processes the findings will need; `finish`
/// groups, plans and words, with the owners the snapshot has by then. The rules run once.
pub struct Triage {
    listeners: Vec<ListenerView>,
    classes: Vec<Option<rules::Class>>,
    /// SO_REUSEPORT sockets whose queue stood while others of their group emptied theirs.
    standing: Vec<rules::Standing>,
}

pub fn triage(snap: &Snapshot) -> Triage {
    let listeners = views(snap);
    let classes = rules::classify_all(snap, &listeners);
    let standing = rules::standing(snap, &listeners);
    Triage {
        listeners,
        classes,
        standing,
    }
}

impl Triage {
    /// Inodes of the listeners with something to report.
    /// Inodes of the listeners with something to report, and of the sockets that share an
    /// address with one (an SO_REUSEPORT group's finding names all its members).
    pub fn troubled(&self) -> HashSet<u64> {
        let standing: HashSet<u64> = self.standing.iter().map(|s| s.inode).collect();
        let troubled = || {
            self.listeners
                .iter()
                .zip(&self.classes)
                .filter(|(v, c)| c.is_some() || standing.contains(&v.inode))
                .map(|(v, _)| v)
        };
        let addresses: HashSet<SocketAddr> = troubled().filter_map(|v| v.local.inet()).collect();
        self.listeners
            .iter()
            .filter(|v| v.local.inet().is_some_and(|a| addresses.contains(&a)))
            .map(|v| v.inode)
            .chain(troubled().map(|v| v.inode))
            .collect()
    }

    pub fn finish(mut self, snap: &Snapshot) -> Report {
        let owners = snap.owners_by_inode();
        for v in &mut self.listeners {
            v.owners = owners
                .get(&v.inode)
                .map(|os| os.iter().map(|o| (*o).clone()).collect())
                .unwrap_or_default();
            v.cap = caps::of(snap, &v.local, v.inode)
                .filter(caps::Cap::read_from_settings)
                .map(|mut c| {
                    c.text = words::cap(&c);
                    c
                });
        }
        let listeners = self.listeners;
        let (mut findings, mut plans) = rules::run(snap, &listeners, &self.classes, &self.standing);
        for f in findings.iter_mut().filter(|f| f.listeners.is_empty()) {
            f.listeners.extend(f.listener.clone());
            f.inodes.extend(f.inode);
        }
        words::fill(snap, &listeners, &mut findings, &mut plans);
        let servers = client::servers(snap);
        findings.extend(client::findings(snap, &servers));
        let (notes, mut findings): (Vec<Finding>, Vec<Finding>) =
            findings.into_iter().partition(|f| f.fact.is_note());
        findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(b.fact.leads().cmp(&a.fact.leads()))
                .then(a.id.cmp(&b.id))
                .then(a.listener.cmp(&b.listener))
                .then(a.remote.cmp(&b.remote))
        });
        let verdict = findings
            .iter()
            .map(|f| f.severity)
            .max()
            .unwrap_or(Severity::Ok);
        Report {
            verdict,
            findings,
            notes,
            plans,
            listeners,
            servers,
            resolved: snap.resolved.clone(),
            targets: snap.targets.clone(),
            window_ms: snap.window_us() / 1000,
            samples_taken: snap.samples_taken.max(snap.samples.len() as u64),
            kernel: snap.kernel.clone(),
            netns: snap.netns.clone(),
            sysctls: snap.sysctls.clone(),
            gaps: snap.gaps.clone(),
            client_traced: snap.client_traced.clone(),
        }
    }
}

/// Folds the samples into one view per listener socket, in order of first appearance.
fn views(snap: &Snapshot) -> Vec<ListenerView> {
    let mut out: Vec<ListenerView> = Vec::new();
    let mut first_drops: Vec<Option<u32>> = Vec::new();
    // Indexes, so that ten thousand listeners cost ten thousand steps, not a hundred million.
    let mut index: HashMap<(Local, u64), usize> = HashMap::new();
    for sample in &snap.samples {
        for l in &sample.listeners {
            match index.get(&l.key()).copied() {
                Some(i) => {
                    let v = &mut out[i];
                    v.send_q = l.send_q;
                    v.recv_q = l.recv_q;
                    v.recv_q_peak = v.recv_q_peak.max(l.recv_q);
                    v.full_seen |= l.accept_queue_full();
                    v.drops = l.drops;
                    v.syn_recv_peak = v.syn_recv_peak.max(l.syn_recv);
                    v.wait.add(sample.elapsed_us, l);
                }
                None => {
                    index.insert(l.key(), out.len());
                    first_drops.push(l.drops);
                    out.push(ListenerView {
                        local: l.local.clone(),
                        inode: l.inode,
                        send_q: l.send_q,
                        recv_q: l.recv_q,
                        recv_q_peak: l.recv_q,
                        full_seen: l.accept_queue_full(),
                        drops: l.drops,
                        drops_delta: None,
                        syn_recv_peak: l.syn_recv,
                        present_at_end: false,
                        v6only: l.v6only,
                        owners: Vec::new(),
                        wait: wait::WaitSeen::default(),
                        cap: None,
                    });
                    let last = out.len() - 1;
                    out[last].wait.add(sample.elapsed_us, l);
                }
            }
        }
    }
    let at_end: HashSet<(Local, u64)> = snap
        .last()
        .map(|s| s.listeners.iter().map(|l| l.key()).collect())
        .unwrap_or_default();
    for (v, first) in out.iter_mut().zip(first_drops) {
        v.wait.finish();
        v.present_at_end = at_end.contains(&(v.local.clone(), v.inode));
        if snap.windowed() {
            v.drops_delta = match (first, v.drops) {
                (Some(a), Some(b)) => Some(crate::model::drops_between(a, b)),
                _ => None,
            };
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_id_is_spelled_once() {
        crate::model::assert_spelled_once(RuleId::ALL, RuleId::as_str);
        assert_eq!(
            RuleId::AcceptQueueOverflow.as_str(),
            "accept-queue-overflow"
        );
    }
}

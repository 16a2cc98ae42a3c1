//! The rules: classification and grouping. Each listener is classified into typed facts (no
//! text), listeners alike (same classification, backlog and processes) are grouped, each
//! group gets one remedy plan (`remedy.rs`), and every finding of the group refers to it. The
//! words come last (`words.rs`). No I/O. Thresholds:
//! - overflow during the window: the accept queue was seen full (Recv-Q > Send-Q), or the
//!   listener's sk_drops rose while TcpExt ListenOverflows rose (sk_drops alone also counts
//!   other discards, docs/kernel.md §4); with ListenOverflows unknown, a sk_drops rise is enough;
//! - high: a peak of at least 80% of the queue's capacity B+1 (and at least 2) without overflow;
//! - small application backlog: B < 128 while somaxconn would have allowed more;
//! - capped by somaxconn: B == somaxconn, a problem when somaxconn is below the modern default
//!   4096 (§5) or the listener overflowed or came close in the window — never for drops of the
//!   past alone, which no backlog can undo;
//! - reuseport imbalance: in a group sharing address and port, one socket overflowed while
//!   another peaked below half of its capacity (a warning); or one socket's queue stood —
//!   above 0 in every sample for at least half the window up to its end, or full at the end
//!   — while another emptied its own after that began (critical, and it comes first: the
//!   process behind that socket does not accept, and a bigger backlog only makes its clients
//!   wait longer).
//! - resets (docs/kernel.md §10, TCP views only, windowed only): one finding per TCPAbortOn*
//!   counter that rose; OutRsts minus those (and the listen queue's own resets when a
//!   listen-queue finding explains them) above zero is `resets-unexplained`, and with a cause's
//!   counter missing the rest is unknown, never zero.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use serde_json::json;

use super::remedy::{self, Action, Knob, MODERN_SOMAXCONN, Needs, Plan, Unstick};
use super::wait::{WAIT_CRITICAL_MS, WAIT_WARNING_MS, WaitWhere};
use super::{
    Candidates, Evidence, Fact, Finding, Fix, ListenerView, OwnSide, PathState, QueueSeen,
    ResetCause, RuleId, Server, Severity, Stuck, TracedLine, Whose,
};
use super::{caps, runtime};
use crate::model::{Snapshot, SocketFile, Target, UnixName, UnixTarget};

use crate::catalogue::{
    ABORT_ON_CLOSE, ABORT_ON_DATA, ABORT_ON_MEMORY, ABORT_ON_TIMEOUT, ACTIVE_OPENS, ATTEMPT_FAILS,
    EMBRYONIC_RSTS, ESTAB_RESETS, LISTEN_DROPS, LISTEN_OVERFLOWS, OUT_RSTS, PASSIVE_OPENS,
    REQQ_FULL_DO_COOKIES as REQQ_FULL_COOKIES, REQQ_FULL_DROP, SYNCOOKIES_FAILED, SYNCOOKIES_RECV,
    Sysctl,
};

const SMALL_BACKLOG: u32 = 128;

/// Every listener's classification, in the order of `views`; None for a listener with
/// nothing to report. The first half of a diagnosis: it needs no process names, so a caller
/// can name only the processes of the listeners that have something.
pub(super) fn classify_all(snap: &Snapshot, views: &[ListenerView]) -> Vec<Option<Class>> {
    let ctx = Ctx::new(snap);
    views
        .iter()
        .map(|v| {
            let class = classify(&ctx, v);
            class.any().then_some(class)
        })
        .collect()
}

/// How an SO_REUSEPORT socket's queue went over the window, from the samples: when it last
/// began holding connections, when it was last seen empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    /// The sample since which Recv-Q stayed above 0 up to this socket's last sample, µs;
    /// None when it was empty at its last.
    held_since: Option<u64>,
    /// The last sample it was seen empty in, µs.
    last_empty: Option<u64>,
}

/// Each SO_REUSEPORT socket's `Run`, by inode (sockets alone on their address left out).
fn runs(snap: &Snapshot, views: &[ListenerView]) -> HashMap<u64, Run> {
    let mut sharing: HashMap<SocketAddr, usize> = HashMap::new();
    for v in views {
        if let Some(a) = v.local.inet() {
            *sharing.entry(a).or_default() += 1;
        }
    }
    let grouped: HashSet<u64> = views
        .iter()
        .filter(|v| v.local.inet().is_some_and(|a| sharing[&a] > 1))
        .map(|v| v.inode)
        .collect();
    let mut runs: HashMap<u64, Run> = HashMap::new();
    for sample in &snap.samples {
        for l in sample
            .listeners
            .iter()
            .filter(|l| grouped.contains(&l.inode))
        {
            let r = runs.entry(l.inode).or_insert(Run {
                held_since: None,
                last_empty: None,
            });
            if l.recv_q == 0 {
                r.held_since = None;
                r.last_empty = Some(sample.elapsed_us);
            } else if r.held_since.is_none() {
                r.held_since = Some(sample.elapsed_us);
            }
        }
    }
    runs
}

/// A socket of an SO_REUSEPORT group whose queue stood while another of the group emptied
/// its own (see the module comment): found from the samples alone, before any process is
/// named, so that its processes are named too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Standing {
    pub inode: u64,
    /// How long its queue held connections without emptying, up to the window's end, µs.
    for_us: u64,
    /// The other sockets of its group seen empty meanwhile.
    drained: usize,
}

/// The sockets of SO_REUSEPORT groups whose queue stood while another of the group drained.
/// Windowed recordings only: a single sample cannot tell a queue that stands from one that
/// passes.
pub(super) fn standing(snap: &Snapshot, views: &[ListenerView]) -> Vec<Standing> {
    if !snap.windowed() {
        return Vec::new();
    }
    let runs = runs(snap, views);
    let (Some(first), Some(last)) = (snap.first(), snap.last()) else {
        return Vec::new();
    };
    let window = last.elapsed_us.saturating_sub(first.elapsed_us);
    let mut out = Vec::new();
    for l in &last.listeners {
        let Some(since) = runs.get(&l.inode).and_then(|r| r.held_since) else {
            continue;
        };
        let for_us = last.elapsed_us.saturating_sub(since);
        if for_us.saturating_mul(2) < window && !l.accept_queue_full() {
            continue;
        }
        let Some(addr) = l.local.inet() else { continue };
        // Others of its group seen empty after it began holding: they accept, it does not.
        let drained = views
            .iter()
            .filter(|o| o.inode != l.inode && o.local.inet() == Some(addr))
            .filter(|o| {
                runs.get(&o.inode)
                    .and_then(|r| r.last_empty)
                    .is_some_and(|t| t > since)
            })
            .count();
        if drained > 0 {
            out.push(Standing {
                inode: l.inode,
                for_us,
                drained,
            });
        }
    }
    out
}

/// Findings and the plans they refer to, from the classification of `classify_all` and the
/// standing sockets of `standing`.
pub(super) fn run(
    snap: &Snapshot,
    views: &[ListenerView],
    classes: &[Option<Class>],
    standing: &[Standing],
) -> (Vec<Finding>, Vec<Plan>) {
    let ctx = Ctx::new(snap);
    let stuck: HashMap<u64, Stuck> = standing
        .iter()
        .filter_map(|s| {
            let v = views.iter().find(|v| v.inode == s.inode)?;
            Some((s.inode, stuck_of(v, s)))
        })
        .collect();
    let mut out = Vec::new();
    let mut plans = Vec::new();
    not_listening(&ctx, views, &mut out);
    // Group the alike: 10,000 listeners of one proxy make one finding and one plan, not 10,000.
    let mut overflowing = Vec::new();
    let mut groups: Vec<(Class, Vec<&ListenerView>)> = Vec::new();
    let mut index: HashMap<(Class, u32, Option<u32>), usize> = HashMap::new();
    for (v, class) in views.iter().zip(classes) {
        let Some(class) = class.and_then(|c| c.for_runtime(v)) else {
            continue;
        };
        if class.queue == Some(RuleId::AcceptQueueOverflow) {
            overflowing.push(v);
        }
        // The main process (lowest PID) decides the group: a pre-fork server's listeners
        // whose workers were named for some and not others stay one group, one plan.
        let key = (class, v.send_q, v.owner_pids().first().copied());
        match index.get(&key) {
            Some(&i) => groups[i].1.push(v),
            None => {
                index.insert(key, groups.len());
                groups.push((class, vec![v]));
            }
        }
    }
    let mut plan_of: HashMap<u64, usize> = HashMap::new();
    for (class, group) in &mut groups {
        rank(class.queue, group);
        let mut needs = class.needs();
        needs.unstick = group.iter().find_map(|v| stuck.get(&v.inode)).map(unstick);
        let plan = remedy::plan(
            plans.len(),
            group,
            needs,
            &snap.sysctls,
            &snap.netns,
            &running(snap, group[0]),
        );
        for v in group.iter() {
            plan_of.insert(v.inode, plan.id);
        }
        plans.push(plan);
    }
    remedy::unify_somaxconn(&mut plans);
    for (class, group) in &groups {
        let plan = &plans[plan_of[&group[0].inode]];
        for id in [class.queue, class.backlog, class.wait]
            .into_iter()
            .flatten()
        {
            out.push(group_finding(&ctx, id, group, plan));
        }
    }
    namespace_findings(&ctx, views, overflowing, &stuck, &mut out);
    (out, plans)
}

/// What a standing socket's finding says: its queue, and who serves it — the holders whose
/// epoll sets watch it, or its only holder.
fn stuck_of(v: &ListenerView, s: &Standing) -> Stuck {
    let mut servers: Vec<Server> = v
        .owners
        .iter()
        .filter(|o| o.watches == Some(true))
        .map(|o| Server {
            pid: o.pid,
            state: o.state,
            watches: true,
        })
        .collect();
    let pids = v.owner_pids();
    if servers.is_empty()
        && let [pid] = pids.as_slice()
    {
        servers.push(Server {
            pid: *pid,
            state: v.owners.iter().find_map(|o| o.state),
            watches: false,
        });
    }
    // The one that cannot accept at all first: it is the one to act on.
    servers.sort_by_key(|s| (!s.state.is_some_and(|st| st.halted()), s.pid));
    servers.dedup_by_key(|s| s.pid);
    Stuck {
        recv_q: v.recv_q,
        backlog: v.send_q,
        for_ms: s.for_us / 1000,
        drained: s.drained,
        servers,
        holders: pids.len(),
    }
}

/// The plan's first step for a standing socket: its (first) server, by its state.
fn unstick(s: &Stuck) -> Unstick {
    let server = s.servers.first();
    Unstick {
        pid: server.map(|s| s.pid),
        state: server.and_then(|s| s.state),
    }
}

/// What the owner of `v` runs with, as read from it: its cap when read from its settings, its
/// backlog setting when set somewhere.
fn running(snap: &Snapshot, v: &ListenerView) -> remedy::Running {
    remedy::Running {
        cap: caps::of(snap, &v.local, v.inode).filter(caps::Cap::read_from_settings),
        backlog: caps::backlog_setting(snap, &v.local, v.inode),
    }
}

/// The findings about the namespace and its clients, after the listeners' own: ListenOverflows
/// no listener explains, the SYN queue, what clients see, SYN cookies, SO_REUSEPORT groups.
fn namespace_findings<'v>(
    ctx: &Ctx,
    views: &'v [ListenerView],
    overflowing: Vec<&'v ListenerView>,
    stuck: &HashMap<u64, Stuck>,
    out: &mut Vec<Finding>,
) {
    // What TCP's clients see has nothing to do with a Unix socket's, and back.
    let (unix, overflowing): (Vec<&ListenerView>, Vec<&ListenerView>) =
        overflowing.into_iter().partition(|v| v.local.is_unix());
    namespace_overflow(ctx, views, &overflowing, out);
    // A view of Unix listeners only (a socket's path as the target) gets nothing of TCP's SYN
    // queue, SYN cookies or abort-on-overflow: none of it concerns them.
    let only_unix = !views.is_empty() && views.iter().all(|v| v.local.is_unix());
    let syn = if only_unix {
        Vec::new()
    } else {
        syn_queue(ctx, views)
    };
    let accept_overflow = !overflowing.is_empty()
        || out
            .iter()
            .any(|f| f.id == RuleId::AcceptQueueOverflow && f.listener.is_none());
    let syn_overflow = syn.iter().any(|f| f.severity == Severity::Critical);
    out.extend(syn);
    if (accept_overflow || syn_overflow) && !only_unix {
        out.push(what_clients_see(ctx, &overflowing, accept_overflow));
    }
    if !unix.is_empty() {
        out.push(unix_clients(ctx.snap, &unix));
    }
    if ctx.snap.sysctls.tcp_syncookies == Some(0) && !only_unix {
        out.push(syncookies_disabled(ctx));
    }
    reuseport(ctx, views, &overflowing, stuck, out);
    // TCP's reset counters say nothing about Unix sockets.
    if !only_unix {
        resets(ctx, views, accept_overflow || syn_overflow, out);
    }
}

/// The counters of each reset cause (docs/kernel.md §10), with the rule that names it. Every
/// one of these sends an RST counted in OutRsts, except a retransmission timeout
/// (`tcp_write_err`), which TCPAbortOnTimeout counts too: subtracting it can only make the
/// unexplained rest smaller, and the timeout finding is there anyway. TCPAbortOnData counts
/// two causes, which only a trace tells apart (`parts`).
const RESET_CAUSES: [(&str, ResetCause); 4] = [
    (ABORT_ON_CLOSE, ResetCause::UnreadClose),
    (ABORT_ON_DATA, ResetCause::AbortOnData),
    (ABORT_ON_TIMEOUT, ResetCause::Timeout),
    (ABORT_ON_MEMORY, ResetCause::Memory),
];

/// The fewest resets of one cause in a window that make a finding: one reset is a client
/// that went away mid-request, a stray segment, a browser's connection dropped; a program
/// that resets its clients does so once per affected connection, so a real cause shows as
/// tens (50 of 50 connections in the tests). Measured: nginx under `ab` with 0 failed
/// requests sent 2 unexplained RSTs, a Python server that never sets SO_LINGER one
/// TCPAbortOnData.
pub(super) const RESETS_MIN: u64 = 10;

/// And the share of the connections the namespace opened and accepted in the window
/// (ActiveOpens + PassiveOpens) they must reach, in percent: below 1 in 100 connections no
/// client's experience is the resets' (the 2 under `ab` were 2 in 20,000).
pub(super) const RESETS_SHARE_PERCENT: u64 = 1;

/// Whether `n` resets are enough for a finding, given the connections opened and accepted.
fn enough(n: u64, connections: Option<u64>) -> bool {
    n >= RESETS_MIN
        && connections
            .is_none_or(|c| n.saturating_mul(100) >= c.saturating_mul(RESETS_SHARE_PERCENT))
}

/// Warning, not critical: a reset loses one connection an application chose (or failed) to
/// close badly, and the listen queue, which doctor's critical findings are about, is fine; but
/// clients saw errors, so never OK. Per namespace: client and server in one namespace both
/// count (EstabResets includes the client side), and the counters name no socket. Too few
/// resets, or (traced) none on the listeners' side, make a note instead (severity Ok).
fn resets(ctx: &Ctx, views: &[ListenerView], queue_finding: bool, out: &mut Vec<Finding>) {
    if !ctx.windowed {
        return;
    }
    let w = ResetWindow {
        ctx,
        secs: ctx.snap.window_us() as f64 / 1e6,
        connections: match (ctx.delta(ACTIVE_OPENS), ctx.delta(PASSIVE_OPENS)) {
            (Some(a), Some(p)) => Some(a.saturating_add(p)),
            _ => None,
        },
    };
    // None once a cause's counter is missing (an older file): the rest cannot be told.
    let mut attributed = Some(0u64);
    let candidates = candidates(ctx.snap, views);
    for (key, cause) in RESET_CAUSES {
        let Some(n) = ctx.delta(key) else {
            attributed = None;
            continue;
        };
        attributed = attributed.map(|a| a.saturating_add(n));
        if n == 0 {
            continue;
        }
        for (cause, lines) in parts(ctx.snap, cause) {
            out.push(w.cause(key, cause, n, lines, &candidates));
        }
    }
    if let Some((out_rsts, unexplained)) = w.unexplained(queue_finding, attributed) {
        out.push(w.unexplained_finding(views, out_rsts, unexplained));
    }
}

/// The findings one counter's rise makes, by cause, with the traced lines of each (None: not
/// traced). TCPAbortOnData traced splits into SO_LINGER {1,0} (TCP_STATE) and data after
/// close (TCP_ABORT_ON_DATA); untraced, or with none of its resets tied, it stays one.
fn parts(snap: &Snapshot, counted: ResetCause) -> Vec<(ResetCause, Option<Vec<TracedLine>>)> {
    let of_counter = |r: &str| cause_of(r).is_some_and(|c| counter_cause(c) == counted);
    let Some(lines) = traced(snap, of_counter) else {
        return vec![(counted, None)];
    };
    if lines.is_empty() {
        return vec![(counted, Some(lines))];
    }
    let mut by: Vec<(ResetCause, Vec<TracedLine>)> = Vec::new();
    for l in lines {
        let c = cause_of(&l.reason).unwrap_or(counted);
        match by.iter_mut().find(|(k, _)| *k == c) {
            Some((_, ls)) => ls.push(l),
            None => by.push((c, vec![l])),
        }
    }
    by.into_iter().map(|(c, ls)| (c, Some(ls))).collect()
}

/// The counter's cause a cause belongs to: both of TCPAbortOnData's are AbortOnData.
fn counter_cause(c: ResetCause) -> ResetCause {
    match c {
        ResetCause::LingerAbort | ResetCause::DataAfterClose => ResetCause::AbortOnData,
        c => c,
    }
}

fn rule_of(cause: ResetCause) -> RuleId {
    match cause {
        ResetCause::UnreadClose => RuleId::ResetsUnreadClose,
        ResetCause::LingerAbort => RuleId::ResetsLingerAbort,
        ResetCause::DataAfterClose => RuleId::ResetsDataAfterClose,
        ResetCause::AbortOnData => RuleId::ResetsAbortOnData,
        ResetCause::Timeout => RuleId::ResetsTimeout,
        ResetCause::Memory => RuleId::ResetsMemory,
    }
}

/// The window the reset findings measure: their rates and the counters' rises over it.
struct ResetWindow<'a> {
    ctx: &'a Ctx<'a>,
    /// Its length in seconds.
    secs: f64,
    /// Connections opened and accepted in it (ActiveOpens + PassiveOpens); None: not recorded.
    connections: Option<u64>,
}

impl ResetWindow<'_> {
    /// Per second over the window, to one decimal.
    fn rate(&self, n: u64) -> f64 {
        (n as f64 / self.secs * 10.0).round() / 10.0
    }

    /// A counter's rise over the window, and its rate.
    fn rise(&self, key: &'static str, n: u64) -> [Evidence; 2] {
        [
            ev(key, json!(n), "/proc/net, rise in this namespace"),
            ev(
                format!("{} per second", crate::catalogue::short(key)),
                json!(self.rate(n)),
                "/proc/net, over the window",
            ),
        ]
    }

    /// OutRsts, EstabResets and the connections opened and accepted beside a cause's own
    /// counter, when recorded.
    fn context(&self, f: &mut Finding) {
        for key in [OUT_RSTS, ESTAB_RESETS] {
            if let Some(n) = self.ctx.delta(key) {
                f.evidence.push(ev(
                    key,
                    json!(n),
                    "/proc/net, rise in this namespace, both ends counted",
                ));
            }
        }
        for key in [ACTIVE_OPENS, PASSIVE_OPENS] {
            f.evidence.push(ev(
                key,
                json!(self.ctx.delta(key)),
                "/proc/net, rise in this namespace: connections opened and accepted; null: not recorded",
            ));
        }
    }

    /// The namespace's own outgoing connections, as far as the recording tells, with `traced`
    /// (this cause's resets on them) when traced.
    fn own(&self, traced: Option<Vec<TracedLine>>) -> OwnSide {
        OwnSide {
            opened: self.ctx.delta(ACTIVE_OPENS),
            servers: self.ctx.snap.own_connections.clone().unwrap_or_default(),
            traced,
        }
    }

    /// The note said instead of a finding when the resets are too few, or (traced) all on the
    /// namespace's own connections.
    fn note(&self, id: RuleId, fact: Fact, evidence: Vec<Evidence>) -> Finding {
        let mut f = finding(id, Severity::Ok, None, fact);
        f.evidence = evidence;
        self.context(&mut f);
        f
    }

    /// The finding (or note) of one cause counted by `key`, which rose by `n`; `lines`, the
    /// traced resets of this cause.
    fn cause(
        &self,
        key: &'static str,
        cause: ResetCause,
        n: u64,
        lines: Option<Vec<TracedLine>>,
        candidates: &Candidates,
    ) -> Finding {
        let id = rule_of(cause);
        let (theirs, own) = split(lines);
        let count = match (&theirs, &own) {
            // Traced and tied: the lines' counts; the counter is evidence beside them.
            (Some(t), Some(o)) if !t.is_empty() || !o.is_empty() => t.iter().map(|l| l.count).sum(),
            _ => n,
        };
        if let (Some([]), Some(o)) = (theirs.as_deref(), own.as_ref())
            && !o.is_empty()
        {
            let mut evidence = vec![traced_evidence(o.clone())];
            evidence.extend(self.rise(key, n));
            let fact = Fact::ResetsOwnOnly {
                cause: Some(cause),
                lines: o.clone(),
            };
            return self.note(id, fact, evidence);
        }
        if !enough(count, self.connections) {
            let fact = Fact::ResetsFew {
                cause: Some(cause),
                count,
                connections: self.connections,
            };
            return self.note(id, fact, self.rise(key, n).to_vec());
        }
        let mut f = finding(
            id,
            Severity::Warning,
            None,
            Fact::Resets {
                cause,
                count,
                per_sec: self.rate(count),
                candidates: Candidates {
                    traced: theirs.clone(),
                    own: self.own(own.clone()),
                    ..candidates.clone()
                },
            },
        );
        f.evidence.extend(theirs.map(traced_evidence));
        f.evidence.extend(own_evidence(own));
        f.evidence.push(ev(
            "candidates",
            json!({
                "targets": candidates.targets,
                "busy": candidates.busy.iter().map(|(l, peak)| json!({"listener": l, "recv_q_peak": peak})).collect::<Vec<_>>(),
                "quiet": candidates.quiet,
                "others": candidates.others,
            }),
            "listeners seen with connections queued in the window; with targets, the namespace's \
             other TCP listeners: the counter names no socket",
        ));
        self.own_evidence(&mut f);
        f.evidence.extend(self.rise(key, n));
        self.context(&mut f);
        f.fix.steps.push(self.ctx.step(match cause {
            ResetCause::UnreadClose | ResetCause::DataAfterClose => Action::ReadBeforeClose,
            ResetCause::LingerAbort => Action::DropLingerZero,
            ResetCause::AbortOnData => Action::TraceResets,
            ResetCause::Timeout => Action::CheckTimeouts,
            ResetCause::Memory => Action::CheckTcpMemory,
        }));
        f
    }

    /// The servers of the namespace's own connections, when they were read.
    fn own_evidence(&self, f: &mut Finding) {
        if let Some(servers) = &self.ctx.snap.own_connections {
            f.evidence.push(ev(
                "own_connections",
                json!(servers),
                "inet_diag after the window: sockets whose local port connect() chose, by server, \
                 with their processes",
            ));
        }
    }

    /// OutRsts and the part of it no cause explains (None: could not be told), when that part
    /// is worth a finding; `attributed` is the causes' counters summed (None: one missing).
    fn unexplained(
        &self,
        queue_finding: bool,
        attributed: Option<u64>,
    ) -> Option<(u64, Option<u64>)> {
        let ctx = self.ctx;
        let out_rsts = ctx.delta(OUT_RSTS).filter(|n| *n > 0)?;
        // A namespace that only connects (no TCP listener of its own in the window) while its
        // connections to a server are in trouble sends its RSTs on those: answers to a
        // server's late SYN-ACKs and segments for connections its clients gave up. Nobody
        // here reads them as an error; the connecting side's findings say what went wrong.
        let listens = ctx
            .snap
            .samples
            .iter()
            .any(|s| s.listeners.iter().any(|l| !l.local.is_unix()));
        let connecting = ctx
            .snap
            .samples
            .iter()
            .filter_map(|s| s.outgoing.as_ref())
            .any(|o| o.remotes.iter().any(|r| r.troubled()));
        if !listens && connecting {
            return None;
        }
        let mut attributed = attributed;
        // Resets of the listen queue (abort-on-overflow, ACKs for dropped requests) are explained
        // by its findings; without one, they are part of the unexplained rest.
        if queue_finding {
            for key in [EMBRYONIC_RSTS, SYNCOOKIES_FAILED] {
                attributed = match (attributed, ctx.delta(key)) {
                    (Some(a), Some(n)) => Some(a.saturating_add(n)),
                    _ => None,
                };
            }
        }
        let unexplained = attributed.map(|a| out_rsts.saturating_sub(a));
        // After an abortive close (unread data, SO_LINGER {1,0}) the peer's segments already in
        // flight meet no socket and are answered with RST, counted in OutRsts alone: a rest of at
        // most one in ten of those aborts is theirs (observed: 51 RSTs for 50 unread closes).
        let aborts = [ABORT_ON_CLOSE, ABORT_ON_DATA]
            .iter()
            .filter_map(|k| ctx.delta(k))
            .fold(0u64, u64::saturating_add);
        // Counters are whatever a file says: arithmetic on them saturates.
        if unexplained.is_some_and(|u| u == 0 || (aborts > 0 && u.saturating_mul(10) <= aborts)) {
            return None;
        }
        Some((out_rsts, unexplained))
    }

    /// resets-unexplained: the RSTs no cause's counter accounts for, with the TCP listeners
    /// they may belong to; a note when they are few, or all on the namespace's own connections.
    fn unexplained_finding(
        &self,
        views: &[ListenerView],
        out_rsts: u64,
        unexplained: Option<u64>,
    ) -> Finding {
        let ctx = self.ctx;
        let mut listeners: Vec<String> = views
            .iter()
            .filter(|v| !v.local.is_unix())
            .map(|v| v.local.to_string())
            .collect();
        listeners.dedup();
        let (theirs, own) = split(traced(ctx.snap, |r| cause_of(r).is_none()));
        let id = RuleId::ResetsUnexplained;
        let rest = unexplained.unwrap_or(out_rsts);
        if let (Some([]), Some(o)) = (theirs.as_deref(), own.as_ref())
            && !o.is_empty()
        {
            let mut evidence = vec![traced_evidence(o.clone())];
            evidence.extend(self.rise(OUT_RSTS, out_rsts));
            let fact = Fact::ResetsOwnOnly {
                cause: None,
                lines: o.clone(),
            };
            return self.note(id, fact, evidence);
        }
        if !enough(rest, self.connections) {
            let fact = Fact::ResetsFew {
                cause: None,
                count: rest,
                connections: self.connections,
            };
            return self.note(id, fact, self.rise(OUT_RSTS, out_rsts).to_vec());
        }
        let mut f = finding(
            id,
            Severity::Warning,
            None,
            Fact::ResetsUnexplained {
                unexplained,
                out_rsts,
                per_sec: self.rate(rest),
                listeners,
                traced: theirs.clone(),
                own: self.own(own.clone()),
            },
        );
        f.evidence.extend(theirs.map(traced_evidence));
        f.evidence.extend(own_evidence(own));
        f.evidence.extend(self.rise(OUT_RSTS, out_rsts));
        f.evidence.push(ev(
            "unexplained",
            json!(unexplained),
            "OutRsts minus the causes' counters (the listen queue's with a listen-queue finding); \
             null: could not be told",
        ));
        for key in [
            EMBRYONIC_RSTS,
            SYNCOOKIES_FAILED,
            ESTAB_RESETS,
            ATTEMPT_FAILS,
        ] {
            f.evidence.push(ev(
                key,
                json!(ctx.delta(key)),
                "/proc/net, rise in this namespace, both ends counted; null: not recorded",
            ));
        }
        self.own_evidence(&mut f);
        self.context(&mut f);
        f.fix.steps.push(ctx.step(Action::FindRefusedConnects));
        f
    }
}

/// Traced lines into those sent to the namespace's listeners' clients (or from closed ports)
/// and those on its own outgoing connections; both None when not traced.
type Sides = (Option<Vec<TracedLine>>, Option<Vec<TracedLine>>);

fn split(lines: Option<Vec<TracedLine>>) -> Sides {
    match lines {
        None => (None, None),
        Some(lines) => {
            let (own, theirs) = lines.into_iter().partition(|l| l.remote.is_some());
            (Some(theirs), Some(own))
        }
    }
}

/// The cause a traced reset reason belongs to (`enum sk_rst_reason`); None: no counter of a
/// cause counts it (NO_SOCKET, the listen queue's, ...).
fn cause_of(reason: &str) -> Option<ResetCause> {
    match reason {
        "TCP_ABORT_ON_CLOSE" => Some(ResetCause::UnreadClose),
        // SO_LINGER {1,0}: tcp_close -> tcp_disconnect resets with TCP_STATE (observed on 6.18),
        // and TCPAbortOnData counts it; TCP_ABORT_ON_DATA is data arriving after close.
        "TCP_STATE" => Some(ResetCause::LingerAbort),
        "TCP_ABORT_ON_DATA" => Some(ResetCause::DataAfterClose),
        "TCP_KEEPALIVE_TIMEOUT" => Some(ResetCause::Timeout),
        "TCP_ABORT_ON_MEMORY" => Some(ResetCause::Memory),
        _ => None,
    }
}

/// The traced resets on this namespace's own outgoing connections, when there were any.
fn own_evidence(own: Option<Vec<TracedLine>>) -> Option<Evidence> {
    own.filter(|o| !o.is_empty()).map(|o| {
        ev(
            "traced_own",
            json!(o),
            "tcp:tcp_send_reset over the window: this namespace's own outgoing connections, by server",
        )
    })
}

fn traced_evidence(lines: Vec<TracedLine>) -> Evidence {
    ev(
        "traced",
        json!(lines),
        "tcp:tcp_send_reset over the window, this namespace's, by source and reason",
    )
}

/// The traced resets whose reason `keep` accepts, one line per source and reason; None when
/// the recording was not traced.
fn traced(snap: &Snapshot, keep: impl Fn(&str) -> bool) -> Option<Vec<TracedLine>> {
    let t = snap.resets_traced.as_ref()?;
    Some(
        t.resets
            .iter()
            .filter(|r| keep(&r.reason))
            .map(|r| TracedLine {
                source: r.local.to_string(),
                reason: r.reason.clone(),
                count: r.count,
                tasks: r.tasks.clone(),
                listening: r.remote.is_none() && snap.listens_at(r.local),
                remote: r.remote.map(|a| a.to_string()),
            })
            .collect(),
    )
}

/// Which sockets the namespace's resets can belong to: the TCP listeners seen with
/// connections queued in the window, and with targets the namespace's other listeners.
fn candidates(snap: &Snapshot, views: &[ListenerView]) -> Candidates {
    let tcp: Vec<&ListenerView> = views.iter().filter(|v| !v.local.is_unix()).collect();
    let mut busy: Vec<(String, u32)> = tcp
        .iter()
        .filter(|v| v.recv_q_peak > 0 || v.syn_recv_peak.is_some_and(|n| n > 0))
        .map(|v| (v.local.to_string(), v.recv_q_peak))
        .collect();
    busy.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    busy.dedup_by(|a, b| a.0 == b.0);
    let targets: Vec<String> = snap
        .targets
        .iter()
        .filter(|t| t.inet_port().is_some())
        .map(Target::to_string)
        .collect();
    Candidates {
        quiet: tcp.len() - busy.len().min(tcp.len()),
        busy,
        traced: None,
        own: OwnSide::default(),
        others: match targets.is_empty() {
            true => None,
            false => snap
                .other_listeners
                .as_ref()
                .map(|o| o.iter().map(|a| a.to_string()).collect()),
        },
        targets,
    }
}

struct Ctx<'a> {
    snap: &'a Snapshot,
    /// `Snapshot::windowed`: deltas mean something.
    windowed: bool,
}

impl<'a> Ctx<'a> {
    fn new(snap: &'a Snapshot) -> Self {
        Ctx {
            snap,
            windowed: snap.windowed(),
        }
    }

    fn delta(&self, key: &str) -> Option<u64> {
        if self.windowed {
            self.snap.counter_delta(key)
        } else {
            None
        }
    }

    fn somaxconn(&self) -> Option<u32> {
        self.snap.sysctls.somaxconn
    }

    fn step(&self, action: Action) -> remedy::Step {
        remedy::namespace_step(action, &self.snap.netns)
    }

    fn set(&self, knob: Knob, value: u32) -> remedy::Step {
        remedy::sysctl_step(knob, value, &self.snap.sysctls, &self.snap.netns)
    }
}

/// What the rules decided about one listener: typed, comparable, hashable (the grouping key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Class {
    /// accept-queue-overflow, -dropped or -high.
    queue: Option<RuleId>,
    /// somaxconn-changed-after-listen, backlog-capped-by-somaxconn or small-app-backlog.
    backlog: Option<RuleId>,
    /// accept-queue-standing or accepted-not-served: its clients waited.
    wait: Option<RuleId>,
    /// It has dropped (sk_drops > 0), now or before.
    dropped: bool,
    /// Its peak reached 80% of the queue, whatever else it did (old drops may name the rule).
    nearly_full: bool,
    /// B below SMALL_BACKLOG, whichever backlog rule names it.
    small: bool,
}

impl Class {
    /// Whether there is anything left to report.
    fn any(&self) -> bool {
        self.queue.is_some() || self.backlog.is_some() || self.wait.is_some()
    }

    /// The classification once the owners are known. A backlog derived from a setting that
    /// sizes other things too (PostgreSQL's, from max_connections, which also sizes shared
    /// memory and the backends that may run) is not worth raising for its size alone: only a
    /// queue that filled or came close says so.
    fn for_runtime(self, v: &ListenerView) -> Option<Class> {
        let derived = runtime::runtime_of(&v.owners).is_some_and(|r| r.derived.is_some());
        let mut c = self;
        if derived
            && c.queue.is_none()
            && !c.nearly_full
            && c.backlog == Some(RuleId::SmallAppBacklog)
        {
            c.backlog = None;
            c.small = false;
        }
        c.any().then_some(c)
    }

    fn needs(&self) -> Needs {
        Needs {
            // A full SYN queue alone raises nothing: SYN cookies absorb it (docs/kernel.md
            // §8.5), and during a SYN flood a plan that doubled B every run would never settle.
            raise: self.nearly_full
                || self.small
                || matches!(
                    self.queue,
                    Some(RuleId::AcceptQueueOverflow | RuleId::AcceptQueueHigh)
                )
                || matches!(
                    self.backlog,
                    Some(RuleId::BacklogCappedBySomaxconn | RuleId::SmallAppBacklog)
                ),
            accept_faster: self.queue == Some(RuleId::AcceptQueueOverflow),
            keep_above_somaxconn: self.backlog == Some(RuleId::SomaxconnChangedAfterListen),
            dropped: self.dropped,
            accept_queue_wait: self.wait == Some(RuleId::AcceptQueueStanding),
            serve_faster: self.wait == Some(RuleId::AcceptedNotServed),
            unstick: None,
        }
    }
}

fn classify(ctx: &Ctx, v: &ListenerView) -> Class {
    let queue = accept_queue_state(ctx, v);
    let in_trouble_now = queue == Some(RuleId::AcceptQueueOverflow) || v.nearly_full();
    Class {
        queue,
        backlog: backlog_state(ctx, v, in_trouble_now),
        wait: wait_state(v),
        dropped: v.drops.is_some_and(|d| d > 0),
        nearly_full: v.nearly_full(),
        small: v.send_q < SMALL_BACKLOG,
    }
}

pub(super) fn ev(
    name: impl Into<String>,
    value: serde_json::Value,
    source: &'static str,
) -> Evidence {
    Evidence {
        name: name.into(),
        value,
        source,
    }
}

fn finding(id: RuleId, severity: Severity, v: Option<&ListenerView>, fact: Fact) -> Finding {
    Finding {
        id,
        severity,
        listener: v.map(|v| v.local.to_string()),
        inode: v.map(|v| v.inode),
        target: None,
        remote: None,
        listeners: Vec::new(),
        inodes: Vec::new(),
        summary: String::new(),
        evidence: Vec::new(),
        fix: Fix::default(),
        fact,
        client: None,
    }
}

/// Every finding about a listener carries the steps of its plan.
fn fix_of(plan: &Plan) -> Fix {
    Fix {
        plan: Some(plan.id),
        target_backlog: plan.backlog.target,
        steps: plan.steps.clone(),
        text: Vec::new(),
    }
}

/// docs/kernel.md §3: with nothing bound, the SYN is answered with RST.
fn not_listening(ctx: &Ctx, views: &[ListenerView], out: &mut Vec<Finding>) {
    for t in &ctx.snap.unmatched_targets() {
        // Listeners on that port at other addresses: recorded beside the scope, or in it for
        // another target.
        let (ip, port) = match t {
            Target::Inet { ip, port } => (*ip, Some(*port)),
            Target::Unix(_) => (None, None),
        };
        let mut elsewhere: Vec<SocketAddr> = ctx
            .snap
            .other_addresses
            .iter()
            .copied()
            .chain(views.iter().filter_map(|v| v.local.inet()))
            .filter(|a| Some(a.port()) == port)
            .collect();
        elsewhere.sort();
        elsewhere.dedup();
        let fact = match t {
            Target::Unix(u) => Fact::NotListeningUnix {
                target: t.to_string(),
                path: path_state(ctx, u),
            },
            Target::Inet { .. } => Fact::NotListening {
                target: t.to_string(),
                ip,
                elsewhere: elsewhere.clone(),
            },
        };
        let step = match &fact {
            Fact::NotListeningUnix { path, .. } => Action::StartUnixServer { path: *path },
            _ => Action::StartServer,
        };
        let mut f = finding(RuleId::NotListening, Severity::Critical, None, fact);
        f.target = Some(t.to_string());
        match (t, port) {
            (_, Some(port)) => f.evidence.push(ev(
                format!("listeners on port {port} at other addresses"),
                json!(elsewhere.iter().map(|a| a.to_string()).collect::<Vec<_>>()),
                "inet_diag",
            )),
            (Target::Unix(u), None) if matches!(u.name, UnixName::Path(_)) => f.evidence.push(ev(
                "the socket file".to_string(),
                json!(
                    ctx.snap
                        .socket_file(u)
                        .map_or("not checked", |s| s.describe())
                ),
                "stat",
            )),
            _ => {}
        }
        f.fix.steps.push(ctx.step(step));
        out.push(f);
    }
}

/// What the name of a Unix target nobody listens on leads to (docs/kernel.md §9).
fn path_state(ctx: &Ctx, t: &UnixTarget) -> PathState {
    if matches!(t.name, UnixName::Abstract(_)) {
        return PathState::Abstract;
    }
    match ctx.snap.socket_file(t) {
        Some(SocketFile::Socket { .. }) => PathState::StaleSocket,
        Some(SocketFile::NotASocket) => PathState::NotASocket,
        Some(SocketFile::Missing) => PathState::Missing,
        Some(SocketFile::Unreadable { .. }) => PathState::Unreadable,
        None => PathState::NotChecked,
    }
}

fn is_queue_rule(id: RuleId) -> bool {
    matches!(
        id,
        RuleId::AcceptQueueOverflow | RuleId::AcceptQueueDropped | RuleId::AcceptQueueHigh
    )
}

/// Puts the group's example first: the worst by the queue rule's own measure (overflow: drops
/// in the window, then since listen, then peak; dropped: drops before the window, then peak;
/// high: peak). Configuration-only groups keep their order.
fn rank(queue: Option<RuleId>, group: &mut [&ListenerView]) {
    let key = |v: &ListenerView| -> (u32, u32, u32) {
        match queue {
            Some(RuleId::AcceptQueueOverflow) => (
                v.drops_delta.unwrap_or(0),
                v.drops.unwrap_or(0),
                v.recv_q_peak,
            ),
            Some(RuleId::AcceptQueueDropped) => (earlier_drops(v).unwrap_or(0), v.recv_q_peak, 0),
            Some(_) => (v.peak_fill_pct(), v.recv_q_peak, 0),
            None => (0, 0, 0),
        }
    };
    let worst = (0..group.len())
        .max_by_key(|&i| (key(group[i]), std::cmp::Reverse(i)))
        .unwrap_or(0);
    group[..=worst].rotate_right(1);
}

/// The finding of a group of listeners alike, written for its example (first) and naming
/// the others.
fn group_finding(ctx: &Ctx, id: RuleId, group: &[&ListenerView], plan: &Plan) -> Finding {
    let v = group[0];
    let mut f = if is_queue_rule(id) {
        accept_queue(ctx, v, id)
    } else if let Some(place) = wait_place(id) {
        waiting(v, place)
    } else {
        backlog_size(ctx, v, id)
    };
    f.listeners = group.iter().map(|v| v.local.to_string()).collect();
    f.inodes = group.iter().map(|v| v.inode).collect();
    f.fix = fix_of(plan);
    if group.len() > 1 {
        f.evidence.push(ev(
            "listeners with this finding",
            json!(group.len()),
            dump_of(v),
        ));
    }
    f
}

/// The accept queue overflowed during the window: it was seen full, or the listener's drops
/// rose while ListenOverflows did (or ListenOverflows is unknown).
fn overflowed(ctx: &Ctx, v: &ListenerView) -> bool {
    let drops_rose = v.drops_delta.is_some_and(|d| d > 0);
    v.full_seen || (drops_rose && ctx.delta(LISTEN_OVERFLOWS).is_none_or(|o| o > 0))
}

/// Drops before the window: in it, sk_drops without ListenOverflows were other discards
/// (SYN-queue drops, TCP_DEFER_ACCEPT's bare ACKs), which say nothing about this queue.
fn earlier_drops(v: &ListenerView) -> Option<u32> {
    v.drops
        .map(|d| d.saturating_sub(v.drops_delta.unwrap_or(0)))
        .filter(|d| *d > 0)
}

/// Which accept-queue rule, if any, a listener falls under.
fn accept_queue_state(ctx: &Ctx, v: &ListenerView) -> Option<RuleId> {
    if overflowed(ctx, v) {
        Some(RuleId::AcceptQueueOverflow)
    } else if earlier_drops(v).is_some() {
        Some(RuleId::AcceptQueueDropped)
    } else if v.nearly_full() {
        Some(RuleId::AcceptQueueHigh)
    } else {
        None
    }
}

/// Whether a listener's clients waited too long (docs/kernel.md, "The clients' wait"): in the
/// accept queue (the oldest child waited past `WAIT_WARNING_MS`, or the queue never emptied
/// over a second or more), else after accept() (an accepted request unanswered that long).
/// The accept queue comes first: it is where a client waits before the server sees it.
fn wait_state(v: &ListenerView) -> Option<RuleId> {
    let w = &v.wait;
    if w.standing() || w.queued_oldest_max_ms >= WAIT_WARNING_MS {
        Some(RuleId::AcceptQueueStanding)
    } else if w.unanswered_oldest_max_ms >= WAIT_WARNING_MS {
        Some(RuleId::AcceptedNotServed)
    } else {
        None
    }
}

fn wait_place(id: RuleId) -> Option<WaitWhere> {
    match id {
        RuleId::AcceptQueueStanding => Some(WaitWhere::AcceptQueue),
        RuleId::AcceptedNotServed => Some(WaitWhere::AfterAccept),
        _ => None,
    }
}

/// The finding of clients that waited at `place`: critical once the last in line waits past
/// common client timeouts (`WAIT_CRITICAL_MS`).
/// The numbers a wait finding rests on.
fn wait_evidence(v: &ListenerView, place: WaitWhere) -> Vec<Evidence> {
    let w = &v.wait;
    let source = if v.local.is_unix() {
        "unix_diag UDIAG_SHOW_ICONS by inode, seen pending across readings (a lower bound)"
    } else {
        "inet_diag ESTABLISHED sockets of the port, tcp_info tcpi_last_data_sent"
    };
    let mut evidence = Vec::new();
    let who = match place {
        WaitWhere::AcceptQueue if v.local.is_unix() => "connections pending on the Unix socket",
        WaitWhere::AcceptQueue => "connections waiting for accept() (inode 0)",
        WaitWhere::AfterAccept => "accepted connections with their request unanswered",
    };
    if w.measured > 0 {
        evidence.push(ev(
            format!("{who}, now/peak"),
            json!([
                w.waiting_now(place),
                match place {
                    WaitWhere::AcceptQueue => w.queued_peak,
                    WaitWhere::AfterAccept => w.unanswered_peak,
                }
            ]),
            source,
        ));
        evidence.push(ev("oldest wait, ms", json!(w.oldest_max_ms(place)), source));
        evidence.push(ev(
            "oldest wait over the samples, median ms",
            json!(w.oldest_p50_ms),
            source,
        ));
    }
    if place == WaitWhere::AfterAccept {
        evidence.push(ev(
            "of them unread / being worked on",
            json!([w.unread_now(), w.in_progress().unwrap_or(0)]),
            "socket Recv-Q above 0 / 0, nothing sent back",
        ));
    }
    evidence.push(ev(
        "Recv-Q now/peak",
        json!([v.recv_q, v.recv_q_peak]),
        "inet_diag idiag_rqueue, the accept queue",
    ));
    if let Some(rate) = w.drain_per_s(place) {
        let (name, source) = if w.rate_counted() {
            (
                "served per second",
                "waiting clients gone from one reading to the next",
            )
        } else {
            (
                "served per second, at least",
                "the waiting's fall between the first and last readings",
            )
        };
        evidence.push(ev(name, json!((rate * 10.0).round() / 10.0), source));
    }
    evidence
}

fn waiting(v: &ListenerView, place: WaitWhere) -> Finding {
    let w = &v.wait;
    let evidence = wait_evidence(v, place);
    let severity = if w.expected_ms(place) >= WAIT_CRITICAL_MS {
        Severity::Critical
    } else {
        Severity::Warning
    };
    let fact = Fact::Waiting {
        place,
        seen: w.clone(),
        runtime: runtime::runtime_of(&v.owners),
    };
    let mut f = finding(
        if place == WaitWhere::AcceptQueue {
            RuleId::AcceptQueueStanding
        } else {
            RuleId::AcceptedNotServed
        },
        severity,
        Some(v),
        fact,
    );
    f.evidence = evidence;
    f
}

/// The dump a listener's numbers come from.
fn dump_of(v: &ListenerView) -> &'static str {
    if v.local.is_unix() {
        "unix_diag"
    } else {
        "inet_diag"
    }
}

/// docs/kernel.md §9: a Unix listener's queue is its pending connections (UNIX_DIAG_RQLEN),
/// and nothing counts the connects it refuses: no drop counter, no TcpExt counter.
fn unix_queue_evidence(snap: &Snapshot, v: &ListenerView) -> Vec<Evidence> {
    vec![
        ev(
            "Recv-Q peak",
            json!(v.recv_q_peak),
            "unix_diag UNIX_DIAG_RQLEN, pending connections",
        ),
        ev(
            "Send-Q (B)",
            json!(v.send_q),
            "unix_diag UNIX_DIAG_RQLEN, the effective backlog",
        ),
        refused_evidence(refused(snap).as_deref()),
    ]
}

/// The connect()s refused with EAGAIN in the window, per process: with `--trace` only (no
/// counter counts them). They name no listener: all of this namespace's full Unix listeners'.
fn refused(snap: &Snapshot) -> Option<Vec<crate::model::ConnectErrors>> {
    snap.client_traced
        .as_ref()
        .map(|t| t.connect_errors_of(EAGAIN))
}

fn refused_evidence(by: Option<&[crate::model::ConnectErrors]>) -> Evidence {
    match by {
        None => ev(
            "refused connects",
            serde_json::Value::Null,
            "no kernel counter counts them for Unix sockets",
        ),
        Some(by) => ev(
            "refused connects",
            json!({
                "total": by.iter().map(|c| c.count).sum::<u64>(),
                "by_process": by.iter().map(|c| json!({"pid": c.pid, "comm": c.comm, "count": c.count})).collect::<Vec<_>>(),
            }),
            "syscalls:sys_exit_connect, ret == -11 (EAGAIN), this namespace's processes, traced",
        ),
    }
}

fn accept_queue(ctx: &Ctx, v: &ListenerView, id: RuleId) -> Finding {
    if v.local.is_unix() {
        let fact = match id {
            RuleId::AcceptQueueOverflow => Fact::Overflow {
                seen: if ctx.windowed {
                    QueueSeen::FullInWindow
                } else {
                    QueueSeen::FullNow
                },
            },
            _ => Fact::High,
        };
        let severity = match id {
            RuleId::AcceptQueueOverflow => Severity::Critical,
            _ => Severity::Warning,
        };
        let mut f = finding(id, severity, Some(v), fact);
        f.evidence = unix_queue_evidence(ctx.snap, v);
        return f;
    }
    let mut evidence = vec![
        ev(
            "Recv-Q peak",
            json!(v.recv_q_peak),
            "inet_diag idiag_rqueue, the accept queue",
        ),
        ev(
            "Send-Q (B)",
            json!(v.send_q),
            "inet_diag idiag_wqueue, the effective backlog",
        ),
    ];
    if let Some(d) = v.drops_delta {
        evidence.push(ev(
            "drops during window",
            json!(d),
            "sk_drops via SK_MEMINFO_DROPS, counts segments",
        ));
    }
    if let Some(d) = v.drops {
        evidence.push(ev(
            "drops since listen",
            json!(d),
            "sk_drops via SK_MEMINFO_DROPS, counts segments",
        ));
    }
    let (severity, fact) = match id {
        RuleId::AcceptQueueOverflow => {
            if let Some(o) = ctx.delta(LISTEN_OVERFLOWS) {
                evidence.push(ev(
                    LISTEN_OVERFLOWS,
                    json!(o),
                    "/proc/net/netstat, rise in this namespace",
                ));
            }
            let seen = match (v.full_seen, ctx.windowed) {
                (true, true) => QueueSeen::FullInWindow,
                (true, false) => QueueSeen::FullNow,
                (false, _) => QueueSeen::DropsRose(v.drops_delta.unwrap_or(0)),
            };
            (Severity::Critical, Fact::Overflow { seen })
        }
        RuleId::AcceptQueueDropped => (
            Severity::Warning,
            Fact::Dropped {
                earlier: earlier_drops(v).unwrap_or(0),
            },
        ),
        _ => (Severity::Warning, Fact::High),
    };
    let mut f = finding(id, severity, Some(v), fact);
    f.evidence = evidence;
    f
}

/// Which backlog-size rule, if any, a listener falls under. `in_trouble_now`: it overflowed,
/// came close, or had a full SYN queue in the window.
fn backlog_state(ctx: &Ctx, v: &ListenerView, in_trouble_now: bool) -> Option<RuleId> {
    let Some(somaxconn) = ctx.somaxconn() else {
        // Unread somaxconn: only a backlog small by any measure can be told.
        return (v.send_q < SMALL_BACKLOG).then_some(RuleId::SmallAppBacklog);
    };
    if v.send_q > somaxconn {
        Some(RuleId::SomaxconnChangedAfterListen)
    } else if v.send_q == somaxconn && (in_trouble_now || somaxconn < MODERN_SOMAXCONN) {
        Some(RuleId::BacklogCappedBySomaxconn)
    } else if v.send_q < SMALL_BACKLOG && v.send_q < somaxconn {
        Some(RuleId::SmallAppBacklog)
    } else {
        None
    }
}

/// The finding of a backlog-size rule that `backlog_state` chose for this listener.
fn backlog_size(ctx: &Ctx, v: &ListenerView, id: RuleId) -> Finding {
    let somaxconn = ctx.somaxconn();
    let fact = match id {
        RuleId::SomaxconnChangedAfterListen => Fact::ChangedAfterListen {
            somaxconn: somaxconn.unwrap_or_default(),
        },
        RuleId::BacklogCappedBySomaxconn => Fact::Capped {
            somaxconn: somaxconn.unwrap_or_default(),
        },
        _ => Fact::SmallAppBacklog {
            somaxconn,
            runtime_default: runtime::runtime_of(&v.owners)
                .filter(|r| r.fixed_default() == Some(v.send_q))
                .map(|r| r.name),
        },
    };
    let mut f = finding(id, Severity::Warning, Some(v), fact);
    let wqueue = if v.local.is_unix() {
        "unix_diag UNIX_DIAG_RQLEN"
    } else {
        "inet_diag idiag_wqueue"
    };
    f.evidence = vec![
        ev("Send-Q (B)", json!(v.send_q), wqueue),
        ev(Sysctl::Somaxconn.name(), json!(somaxconn), "/proc/sys, now"),
    ];
    f
}

/// ListenOverflows rose but no listener in view explains it.
fn namespace_overflow(
    ctx: &Ctx,
    views: &[ListenerView],
    overflowing: &[&ListenerView],
    out: &mut Vec<Finding>,
) {
    let Some(n) = ctx.delta(LISTEN_OVERFLOWS).filter(|n| *n > 0) else {
        return;
    };
    if !overflowing.is_empty() {
        return;
    }
    let (severity, whose) = if !ctx.snap.targets.is_empty() {
        (Severity::Warning, Whose::OutsideScope)
    } else if views
        .iter()
        .any(|v| !v.local.is_unix() && v.drops.is_none())
    {
        (Severity::Critical, Whose::DropsUnknown)
    } else {
        (Severity::Critical, Whose::ClosedOrHidden)
    };
    let mut f = finding(
        RuleId::AcceptQueueOverflow,
        severity,
        None,
        Fact::NamespaceOverflow {
            overflows: n,
            whose,
        },
    );
    f.evidence.push(ev(
        LISTEN_OVERFLOWS,
        json!(n),
        "/proc/net/netstat, rise in this namespace",
    ));
    if let Some(d) = ctx.delta(LISTEN_DROPS) {
        f.evidence.push(ev(
            LISTEN_DROPS,
            json!(d),
            "/proc/net/netstat, rise in this namespace",
        ));
    }
    f.fix.steps.push(ctx.step(Action::FindOverflowingListener));
    out.push(f);
}

/// Listeners whose SYN queue was seen full (`inet_csk_reqsk_queue_is_full`: qlen > B).
/// Request sockets carry no listener inode, so the sockets of an SO_REUSEPORT group share one
/// SYN_RECV count: it is compared with the group's total, Σ(B+1) − 1.
fn syn_full(views: &[ListenerView]) -> Vec<&ListenerView> {
    let mut capacity: HashMap<SocketAddr, u64> = HashMap::new();
    for v in views {
        if let Some(a) = v.local.inet() {
            *capacity.entry(a).or_default() += v.capacity();
        }
    }
    views
        .iter()
        .filter(|v| match (v.local.inet(), v.syn_recv_peak) {
            (Some(a), Some(p)) => u64::from(p) >= capacity[&a],
            _ => false,
        })
        .collect()
}

/// docs/kernel.md §1 (SYN queue full ⇔ qlen > B) and §4 (TCPReqQFullDrop / DoCookies). With
/// cookies off, turning them on is the fix; with cookies on, a full SYN queue costs nothing
/// but a log line, and only a burst of real clients (not a flood) is a reason to raise the
/// backlog, which the listener's own findings then plan.
fn syn_queue(ctx: &Ctx, views: &[ListenerView]) -> Vec<Finding> {
    let cookies = ctx.snap.sysctls.tcp_syncookies;
    let full = syn_full(views);
    let who = full.first().copied();
    let rise =
        |key: &'static str, n: u64| ev(key, json!(n), "/proc/net/netstat, rise in this namespace");
    let f = if let Some(n) = ctx.delta(REQQ_FULL_DROP).filter(|n| *n > 0) {
        let mut f = finding(
            RuleId::SynQueueOverflow,
            Severity::Critical,
            who,
            Fact::SynQueueDropped { dropped: n },
        );
        f.evidence.push(rise(REQQ_FULL_DROP, n));
        if cookies != Some(1) && cookies != Some(2) {
            f.fix.steps.push(ctx.set(Knob::Syncookies, 1));
        }
        f
    } else if let Some(n) = ctx
        .delta(REQQ_FULL_COOKIES)
        .filter(|n| *n > 0 && cookies == Some(1))
    {
        let mut f = finding(
            RuleId::SynQueueOverflow,
            Severity::Warning,
            who,
            Fact::SynQueueCookies { cookies: n },
        );
        f.evidence.push(rise(REQQ_FULL_COOKIES, n));
        f
    } else if !ctx.windowed
        && let Some(v) = who
    {
        finding(
            RuleId::SynQueueOverflow,
            Severity::Warning,
            Some(v),
            Fact::SynQueueFullNow,
        )
    } else {
        return Vec::new();
    };
    vec![with_syn_evidence(ctx, f, &full, cookies)]
}

/// A SYN-queue finding's listeners, their SYN_RECV peaks and tcp_syncookies; with cookies
/// (maybe) on, the step that says when to raise the backlog anyway.
fn with_syn_evidence(
    ctx: &Ctx,
    mut f: Finding,
    full: &[&ListenerView],
    cookies: Option<u32>,
) -> Finding {
    for v in full {
        f.evidence.push(ev(
            format!("SYN_RECV peak on {}", v.local),
            json!(v.syn_recv_peak),
            "inet_diag request sockets",
        ));
    }
    f.evidence.push(ev(
        Sysctl::TcpSyncookies.name(),
        json!(cookies),
        "/proc/sys",
    ));
    f.listeners = full.iter().map(|v| v.local.to_string()).collect();
    f.inodes = full.iter().map(|v| v.inode).collect();
    if cookies != Some(0) {
        f.fix.steps.push(ctx.step(Action::RaiseIfRealClients));
    }
    f
}

/// docs/kernel.md §3: what the clients of an overflowing listener experience, by setting.
fn what_clients_see(ctx: &Ctx, overflowing: &[&ListenerView], accept_overflow: bool) -> Finding {
    let s = &ctx.snap.sysctls;
    let abort = s.tcp_abort_on_overflow;
    let severity = if accept_overflow && abort == Some(1) {
        Severity::Warning
    } else {
        Severity::Ok
    };
    let mut f = finding(
        RuleId::AbortOnOverflow,
        severity,
        match overflowing {
            [one] => Some(*one),
            _ => None,
        },
        Fact::Clients { accept_overflow },
    );
    f.listeners = overflowing.iter().map(|v| v.local.to_string()).collect();
    f.inodes = overflowing.iter().map(|v| v.inode).collect();
    for key in [
        Sysctl::TcpAbortOnOverflow,
        Sysctl::TcpSyncookies,
        Sysctl::TcpSynackRetries,
    ] {
        f.evidence
            .push(ev(key.name(), json!(s.get(key)), "/proc/sys"));
    }
    for key in [EMBRYONIC_RSTS, OUT_RSTS, SYNCOOKIES_RECV] {
        if let Some(d) = ctx.delta(key) {
            f.evidence
                .push(ev(key, json!(d), "/proc/net, rise in this namespace"));
        }
    }
    f.fix.steps.push(if abort == Some(1) {
        ctx.set(Knob::AbortOnOverflow, 0)
    } else {
        ctx.step(Action::KeepAbortOnOverflow)
    });
    f
}

/// docs/kernel.md §9: what the clients of overflowing Unix listeners see. No setting changes
/// it, so no step: the listeners' own plans are the fix. No counter counts the refusals; only a
/// trace of the connecting processes' connect() exits does (§11), exactly, per process.
fn unix_clients(snap: &Snapshot, overflowing: &[&ListenerView]) -> Finding {
    let refused = refused(snap);
    let mut f = finding(
        RuleId::UnixClients,
        Severity::Ok,
        match overflowing {
            [one] => Some(*one),
            _ => None,
        },
        Fact::UnixClients {
            example: overflowing.first().map(|v| v.local.clone()),
            refused: refused.clone(),
        },
    );
    f.listeners = overflowing.iter().map(|v| v.local.to_string()).collect();
    f.inodes = overflowing.iter().map(|v| v.inode).collect();
    f.evidence.push(refused_evidence(refused.as_deref()));
    f
}

/// connect()'s errno for a full Unix listener (`unix_stream_connect`).
const EAGAIN: i32 = 11;

fn syncookies_disabled(ctx: &Ctx) -> Finding {
    let mut f = finding(
        RuleId::SyncookiesDisabled,
        Severity::Warning,
        None,
        Fact::SyncookiesDisabled,
    );
    f.evidence
        .push(ev(Sysctl::TcpSyncookies.name(), json!(0), "/proc/sys"));
    f.fix.steps.push(ctx.set(Knob::Syncookies, 1));
    f
}

/// docs/kernel.md §8.3: SO_REUSEPORT hashes the 4-tuple and ignores how full each queue is.
/// A socket whose queue stood while others of its group drained is stuck (critical, one
/// finding each, naming who serves it); else one overflowing while another had room is
/// imbalance (a warning).
fn reuseport(
    ctx: &Ctx,
    views: &[ListenerView],
    overflowing: &[&ListenerView],
    stuck: &HashMap<u64, Stuck>,
    out: &mut Vec<Finding>,
) {
    // SO_REUSEPORT groups are TCP's: two Unix listeners on one path are a stale one and the
    // one clients reach, not a group.
    let mut groups: HashMap<SocketAddr, Vec<&ListenerView>> = HashMap::new();
    for v in views {
        if let Some(a) = v.local.inet() {
            groups.entry(a).or_default().push(v);
        }
    }
    let runs = runs(ctx.snap, views);
    let mut done = HashSet::new();
    let mut reported = HashSet::new();
    let standing = views.iter().filter(|v| stuck.contains_key(&v.inode));
    for v in standing.chain(overflowing.iter().copied()) {
        let Some(a) = v.local.inet() else { continue };
        let st = stuck.get(&v.inode);
        // One finding per standing socket; else one per group.
        if !reported.insert(v.inode) || (st.is_none() && done.contains(&a)) {
            continue;
        }
        done.insert(a);
        let group = &groups[&a];
        if group.len() < 2 {
            continue;
        }
        let roomy = group.iter().filter(|o| !o.half_full()).count();
        if roomy == 0 && st.is_none() {
            continue;
        }
        let drained = others_drained(ctx, &runs, group, v);
        out.push(imbalance(ctx, v, group, roomy, drained, st));
    }
}

/// Whether another socket of `group` was seen empty after `v` began holding connections; told
/// only of a queue that still held them at the end of a window.
fn others_drained(
    ctx: &Ctx,
    runs: &HashMap<u64, Run>,
    group: &[&ListenerView],
    v: &ListenerView,
) -> Option<bool> {
    let since = runs
        .get(&v.inode)
        .and_then(|r| r.held_since)
        .filter(|_| ctx.windowed)?;
    Some(group.iter().filter(|o| o.inode != v.inode).any(|o| {
        runs.get(&o.inode)
            .and_then(|r| r.last_empty)
            .is_some_and(|e| e > since)
    }))
}

/// The finding about `v` in its SO_REUSEPORT `group`: stuck (critical, its server's step) or
/// unevenly loaded (a warning, the group's step).
fn imbalance(
    ctx: &Ctx,
    v: &ListenerView,
    group: &[&ListenerView],
    roomy: usize,
    others_drained: Option<bool>,
    st: Option<&Stuck>,
) -> Finding {
    let severity = match st {
        Some(_) => Severity::Critical,
        None => Severity::Warning,
    };
    let mut f = finding(
        RuleId::ReuseportImbalance,
        severity,
        Some(v),
        Fact::ReuseportImbalance {
            sockets: group.len(),
            roomy,
            others_drained,
            stuck: st.cloned(),
        },
    );
    // The socket concerned first, as `listener` says.
    let mut members = group.to_vec();
    if let Some(i) = members.iter().position(|o| o.inode == v.inode) {
        members[..=i].rotate_right(1);
    }
    f.listeners = members.iter().map(|o| o.local.to_string()).collect();
    f.inodes = members.iter().map(|o| o.inode).collect();
    for o in group {
        f.evidence.push(ev(
            format!("inode {} Recv-Q peak / B", o.inode),
            json!(format!("{}/{}", o.recv_q_peak, o.send_q)),
            "inet_diag",
        ));
    }
    match st {
        Some(s) => {
            stuck_evidence(&mut f, v, s);
            f.fix.steps.push(remedy::unstick_step(
                unstick(s),
                &crate::model::Where::of(&ctx.snap.netns),
            ));
        }
        None => f.fix.steps.push(ctx.step(Action::BalanceReuseport)),
    }
    f
}

/// The standing socket's queue now, how long it stood, and its server's PID and state.
fn stuck_evidence(f: &mut Finding, v: &ListenerView, s: &Stuck) {
    f.evidence.push(ev(
        format!("inode {} Recv-Q now / B", v.inode),
        json!(format!("{}/{}", s.recv_q, s.backlog)),
        "inet_diag",
    ));
    f.evidence.push(ev(
        "held without emptying (ms)",
        json!(s.for_ms),
        "inet_diag, Recv-Q above 0 in every sample up to the window's end",
    ));
    f.evidence.push(ev(
        "other sockets of the group seen empty meanwhile",
        json!(s.drained),
        "inet_diag, Recv-Q 0 in a later sample",
    ));
    for server in &s.servers {
        f.evidence.push(ev(
            "served by pid",
            json!(server.pid),
            if server.watches {
                "/proc/PID/fdinfo of its epoll descriptors (tfd ... ino:)"
            } else {
                "/proc/PID/fd, its only holder"
            },
        ));
        f.evidence.push(ev(
            format!("state of pid {}", server.pid),
            json!(server.state.map(|st| st.letter().to_string())),
            "/proc/PID/stat when the processes were named; null: not read",
        ));
    }
}

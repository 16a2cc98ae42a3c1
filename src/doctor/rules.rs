//! The rules. Each reads the snapshot (through the listener views) and returns findings; none
//! does I/O. Thresholds:
//! - overflow during the window: the accept queue was seen full (Recv-Q > Send-Q), or the
//!   listener's sk_drops rose while TcpExt ListenOverflows rose (sk_drops alone also counts
//!   other discards, KERNEL.md §4); with ListenOverflows unknown, a sk_drops rise is enough;
//! - high: a peak of at least 80% of the queue's capacity B+1 (and at least 2) without overflow;
//! - small application backlog: B < 128 while somaxconn would have allowed more;
//! - capped by somaxconn: B == somaxconn, worth a warning when the listener is in trouble or
//!   somaxconn is below the modern default 4096 (KERNEL.md §5);
//! - reuseport imbalance: in a group sharing address and port, one socket overflowed while
//!   another peaked below half of its capacity.

use std::collections::{HashMap, HashSet};

use serde_json::json;

use super::advice::{self, Runtime};
use super::{Evidence, Finding, ListenerView, RuleId, Severity};
use crate::cli::Target;
use crate::model::Snapshot;

const LISTEN_OVERFLOWS: &str = "TcpExt:ListenOverflows";
const LISTEN_DROPS: &str = "TcpExt:ListenDrops";
const REQQ_FULL_DROP: &str = "TcpExt:TCPReqQFullDrop";
const REQQ_FULL_COOKIES: &str = "TcpExt:TCPReqQFullDoCookies";
const SYNCOOKIES_RECV: &str = "TcpExt:SyncookiesRecv";
const EMBRYONIC_RSTS: &str = "TcpExt:EmbryonicRsts";
const OUT_RSTS: &str = "Tcp:OutRsts";
const MODERN_SOMAXCONN: u32 = 4096;
const SMALL_BACKLOG: u32 = 128;

pub fn run(snap: &Snapshot, views: &[ListenerView]) -> Vec<Finding> {
    let ctx = Ctx {
        snap,
        windowed: snap.window_us() > 0,
    };
    let mut out = Vec::new();
    not_listening(&ctx, views, &mut out);
    // Per-listener rules: each listener is classified first, without writing any text; then
    // one finding is written per group of listeners alike (same rule, backlog and processes),
    // so that 10,000 listeners of one proxy cost one finding, not 10,000.
    let mut overflowing = Vec::new();
    let mut groups: Vec<(RuleId, Vec<&ListenerView>)> = Vec::new();
    let mut index: HashMap<(RuleId, u32, Vec<u32>), usize> = HashMap::new();
    for v in views {
        let queue = accept_queue_state(&ctx, v);
        if queue == Some(RuleId::AcceptQueueOverflow) {
            overflowing.push(v);
        }
        for id in [queue, backlog_state(&ctx, v)].into_iter().flatten() {
            let key = (id, v.send_q, v.owner_pids());
            match index.get(&key) {
                Some(&i) => groups[i].1.push(v),
                None => {
                    index.insert(key, groups.len());
                    groups.push((id, vec![v]));
                }
            }
        }
    }
    for (id, group) in &groups {
        out.push(group_finding(&ctx, *id, group));
    }
    namespace_overflow(&ctx, views, &overflowing, &mut out);
    let syn = syn_queue(&ctx, views);
    let accept_overflow = out.iter().any(|f| f.id == RuleId::AcceptQueueOverflow);
    let syn_overflow = syn.iter().any(|f| f.severity == Severity::Critical);
    out.extend(syn);
    if accept_overflow || syn_overflow {
        out.push(what_clients_see(&ctx, &overflowing, accept_overflow));
    }
    if ctx.snap.sysctls.tcp_syncookies == Some(0) {
        out.push(syncookies_disabled(&ctx));
    }
    reuseport(views, &overflowing, &mut out);
    out
}

struct Ctx<'a> {
    snap: &'a Snapshot,
    /// More than one sample over a non-zero window: deltas mean something.
    windowed: bool,
}

impl Ctx<'_> {
    fn delta(&self, key: &str) -> Option<u64> {
        if self.windowed {
            self.snap.counter_delta(key)
        } else {
            None
        }
    }

    fn window_text(&self) -> String {
        let ms = self.snap.window_us() / 1000;
        if ms >= 1000 {
            format!("{:.1} s", ms as f64 / 1000.0)
        } else {
            format!("{ms} ms")
        }
    }

    fn somaxconn(&self) -> Option<u32> {
        self.snap.sysctls.somaxconn
    }
}

fn ev(name: impl Into<String>, value: serde_json::Value, source: &'static str) -> Evidence {
    Evidence {
        name: name.into(),
        value,
        source,
    }
}

fn finding(id: RuleId, severity: Severity, v: Option<&ListenerView>, summary: String) -> Finding {
    Finding {
        id,
        severity,
        listener: v.map(|v| v.local.to_string()),
        inode: v.map(|v| v.inode),
        listeners: Vec::new(),
        inodes: Vec::new(),
        summary,
        evidence: Vec::new(),
        fix: Vec::new(),
    }
}

/// KERNEL.md §1: with nothing bound, the SYN is answered with RST.
fn not_listening(ctx: &Ctx, views: &[ListenerView], out: &mut Vec<Finding>) {
    for raw in &ctx.snap.targets {
        let Ok(t) = Target::parse(raw) else { continue };
        let seen = ctx
            .snap
            .samples
            .iter()
            .any(|s| s.listeners.iter().any(|l| t.matches(l)));
        if seen {
            continue;
        }
        let mut f = finding(
            RuleId::NotListening,
            Severity::Critical,
            None,
            format!(
                "nothing listens on {t} in this network namespace: clients get \"Connection refused\" \
                 at once (an RST to their SYN), not resets of accepted connections or timeouts"
            ),
        );
        f.listener = Some(t.to_string());
        f.evidence.push(ev(
            "listeners on this port",
            json!(views.iter().filter(|v| v.local.port() == t.port).count()),
            "inet_diag",
        ));
        f.fix.push(format!(
            "start the server, or check its port and bind address (a server bound to 127.0.0.1 is not reachable on {t} \
             from elsewhere); if it runs in a container, diagnose inside that container's network namespace"
        ));
        out.push(f);
    }
}

fn is_queue_rule(id: RuleId) -> bool {
    matches!(
        id,
        RuleId::AcceptQueueOverflow | RuleId::AcceptQueueDropped | RuleId::AcceptQueueHigh
    )
}

/// The finding of a group of listeners alike, written for one of them and naming the others.
/// Queue findings are written for the worst listener (most drops, then fullest), which comes
/// first; configuration findings, alike for all, for the first.
fn group_finding(ctx: &Ctx, id: RuleId, group: &[&ListenerView]) -> Finding {
    let mut group = group.to_vec();
    if is_queue_rule(id) {
        let worst = (0..group.len())
            .max_by_key(|&i| {
                let v = group[i];
                (
                    v.drops_delta.unwrap_or(0),
                    v.drops.unwrap_or(0),
                    v.recv_q_peak,
                    std::cmp::Reverse(i),
                )
            })
            .unwrap_or(0);
        let first = group.remove(worst);
        group.insert(0, first);
    }
    let v = group[0];
    let mut f = if is_queue_rule(id) {
        accept_queue(ctx, v, id)
    } else {
        backlog_size(ctx, v, id)
    };
    f.listeners = group.iter().map(|v| v.local.to_string()).collect();
    f.inodes = group.iter().map(|v| v.inode).collect();
    if group.len() > 1 {
        let whose = match v.process() {
            Some(p) if v.owners.len() == 1 => format!(" of the same process ({p})"),
            Some(p) => format!(" of the same processes ({p})"),
            None => " (their processes are unknown)".to_string(),
        };
        let figures = if is_queue_rule(id) {
            "; the figures above are the worst one's, each listener's own are in --json"
        } else {
            ""
        };
        f.summary.push_str(&format!(
            " The same finding applies to {} other listener(s){whose} with the same backlog of {}{figures}.",
            group.len() - 1,
            v.send_q
        ));
        f.evidence.push(ev(
            "listeners with this finding",
            json!(group.len()),
            "inet_diag",
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

/// A peak from which a queue counts as nearly full: 80% of its capacity B+1, at least 2.
fn high_mark(v: &ListenerView) -> u32 {
    ((u64::from(v.send_q) + 1) * 80).div_ceil(100).max(2) as u32
}

/// Which accept-queue rule, if any, a listener falls under.
fn accept_queue_state(ctx: &Ctx, v: &ListenerView) -> Option<RuleId> {
    if overflowed(ctx, v) {
        Some(RuleId::AcceptQueueOverflow)
    } else if earlier_drops(v).is_some() {
        Some(RuleId::AcceptQueueDropped)
    } else if v.recv_q_peak >= high_mark(v) {
        Some(RuleId::AcceptQueueHigh)
    } else {
        None
    }
}

fn accept_queue(ctx: &Ctx, v: &ListenerView, id: RuleId) -> Finding {
    let overflows = ctx.delta(LISTEN_OVERFLOWS);
    let cap = v.send_q + 1;
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
    if id == RuleId::AcceptQueueOverflow {
        if let Some(o) = overflows {
            evidence.push(ev(
                LISTEN_OVERFLOWS,
                json!(o),
                "/proc/net/netstat, rise in this namespace",
            ));
        }
        let how = match (v.full_seen, ctx.windowed) {
            (true, true) => format!(
                "its accept queue was full (Recv-Q reached {} = B+1) during the {} window",
                v.recv_q_peak,
                ctx.window_text()
            ),
            (true, false) => format!(
                "its accept queue is full now (Recv-Q {} = B+1)",
                v.recv_q_peak
            ),
            (false, _) => format!(
                "it dropped {} segment(s) during the {} window while ListenOverflows rose",
                v.drops_delta.unwrap_or(0),
                ctx.window_text()
            ),
        };
        let mut f = finding(
            RuleId::AcceptQueueOverflow,
            Severity::Critical,
            Some(v),
            format!(
                "{} loses connection attempts to accept-queue overflow: {how}. With B = {} only {cap} \
                 established connections can wait for accept(); the rest are dropped.",
                v.label(),
                v.send_q
            ),
        );
        f.evidence = evidence;
        f.fix = queue_fix(ctx, v, true);
        return f;
    }
    if let (RuleId::AcceptQueueDropped, Some(total)) = (id, earlier_drops(v)) {
        let mut f = finding(
            RuleId::AcceptQueueDropped,
            Severity::Warning,
            Some(v),
            format!(
                "{} dropped {total} segment(s) before this observation, none {}: a burst has probably \
                 overflowed it before. sk_drops counts every segment dropped at the listener (SYNs and \
                 their retransmits, final ACKs, TCP_DEFER_ACCEPT's bare ACKs), not clients.",
                v.label(),
                if ctx.windowed {
                    format!("during the {} window", ctx.window_text())
                } else {
                    "that this single sample can time".into()
                }
            ),
        );
        f.evidence = evidence;
        f.fix = queue_fix(ctx, v, false);
        return f;
    }
    let mut f = finding(
        RuleId::AcceptQueueHigh,
        Severity::Warning,
        Some(v),
        format!(
            "{} came close to overflowing: Recv-Q peaked at {} of {cap} ({}%), without drops.",
            v.label(),
            v.recv_q_peak,
            v.peak_fill_pct()
        ),
    );
    f.evidence = evidence;
    f.fix = queue_fix(ctx, v, false);
    f
}

/// Fix steps for a queue that is too small or drained too slowly (KERNEL.md §8, in order).
fn queue_fix(ctx: &Ctx, v: &ListenerView, overflowing: bool) -> Vec<String> {
    let runtime = advice::runtime_of(&v.owners);
    let target = advice::recommended_backlog(v.send_q);
    let mut fix = Vec::new();
    if ctx.somaxconn().is_none_or(|s| s < target) {
        fix.push(advice::somaxconn_fix(&ctx.snap.netns, target));
    }
    fix.push(format!(
        "have the application ask for a backlog of {target}: {}",
        advice::backlog_knob(runtime, target)
    ));
    fix.push(
        "restart the server (or make it call listen() again): the backlog is fixed at listen() time, \
         so neither change reaches a socket that is already listening"
            .to_string(),
    );
    if overflowing {
        fix.push(
            "make accept() keep up: a dedicated acceptor thread, no work on the accept path, enough workers; \
             a backlog only absorbs bursts, and if arrivals outrun accept() any queue fills"
                .to_string(),
        );
    }
    fix
}

/// Which backlog-size rule, if any, a listener falls under.
fn backlog_state(ctx: &Ctx, v: &ListenerView) -> Option<RuleId> {
    let somaxconn = ctx.somaxconn()?;
    let troubled =
        v.full_seen || v.drops.is_some_and(|d| d > 0) || v.recv_q_peak * 5 >= (v.send_q + 1) * 4;
    if v.send_q > somaxconn {
        Some(RuleId::SomaxconnChangedAfterListen)
    } else if v.send_q == somaxconn && (troubled || somaxconn < MODERN_SOMAXCONN) {
        Some(RuleId::BacklogCappedBySomaxconn)
    } else if v.send_q < SMALL_BACKLOG && v.send_q < somaxconn {
        Some(RuleId::SmallAppBacklog)
    } else {
        None
    }
}

/// The finding of a backlog-size rule that `backlog_state` chose for this listener.
fn backlog_size(ctx: &Ctx, v: &ListenerView, id: RuleId) -> Finding {
    let somaxconn = ctx.somaxconn().unwrap_or_default();
    let runtime = advice::runtime_of(&v.owners);
    let somax_ev = || ev("net.core.somaxconn", json!(somaxconn), "/proc/sys, now");
    let b_ev = || ev("Send-Q (B)", json!(v.send_q), "inet_diag idiag_wqueue");
    match id {
        RuleId::SomaxconnChangedAfterListen => {
            let mut f = finding(
                RuleId::SomaxconnChangedAfterListen,
                Severity::Warning,
                Some(v),
                format!(
                    "{} has a backlog of {}, above today's net.core.somaxconn {somaxconn}: it started listening \
                 before somaxconn was lowered. Its next restart will cut the backlog to {somaxconn}.",
                    v.label(),
                    v.send_q
                ),
            );
            f.evidence = vec![b_ev(), somax_ev()];
            f.fix.push(advice::somaxconn_fix(
                &ctx.snap.netns,
                v.send_q.max(MODERN_SOMAXCONN),
            ));
            f
        }
        RuleId::BacklogCappedBySomaxconn => {
            let target = advice::recommended_backlog(somaxconn);
            let mut f = finding(
                RuleId::BacklogCappedBySomaxconn,
                Severity::Warning,
                Some(v),
                format!(
                    "The backlog of {} equals net.core.somaxconn ({somaxconn}): whatever the application asked \
                 listen() for was cut to {somaxconn}{}.",
                    v.label(),
                    if somaxconn < MODERN_SOMAXCONN {
                        format!(", below the modern default of {MODERN_SOMAXCONN}")
                    } else {
                        String::new()
                    }
                ),
            );
            f.evidence = vec![b_ev(), somax_ev()];
            f.fix.push(advice::somaxconn_fix(&ctx.snap.netns, target));
            f.fix.push(format!(
                "make sure the application asks for at least {target}: {}",
                advice::backlog_knob(runtime, target)
            ));
            f.fix.push("then restart the server: somaxconn caps the backlog when listen() is called, not later".into());
            f
        }
        _ => {
            let default_note = match runtime.zip(runtime.and_then(Runtime::default_backlog)) {
                Some((r, d)) if d == v.send_q => format!(" — {}'s default", r.name()),
                _ => String::new(),
            };
            let mut f = finding(
                RuleId::SmallAppBacklog,
                Severity::Warning,
                Some(v),
                format!(
                    "{} asked listen() for a backlog of only {}{default_note}; net.core.somaxconn ({somaxconn}) \
                 would allow more. A burst of more than {} simultaneous connects overflows it.",
                    v.label(),
                    v.send_q,
                    v.send_q + 1
                ),
            );
            f.evidence = vec![b_ev(), somax_ev()];
            let target = advice::recommended_backlog(v.send_q).min(somaxconn.max(SMALL_BACKLOG));
            f.fix.push(format!(
                "ask for a larger backlog, e.g. {target}: {}",
                advice::backlog_knob(runtime, target)
            ));
            f.fix
                .push("restart the server so it calls listen() with the new value".into());
            f
        }
    }
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
    let scoped = !ctx.snap.targets.is_empty();
    let (severity, whose) = if scoped {
        (
            Severity::Warning,
            "a listener outside the scope (run without TARGET to see all)",
        )
    } else if views.iter().any(|v| v.drops.is_none()) {
        (
            Severity::Critical,
            "a listener whose drops this kernel does not report",
        )
    } else {
        (
            Severity::Critical,
            "a listener that closed during the window, or one not visible here",
        )
    };
    let mut f = finding(
        RuleId::AcceptQueueOverflow,
        severity,
        None,
        format!(
            "TcpExt ListenOverflows rose by {n} during the {} window: {whose} overflowed its accept queue.",
            ctx.window_text()
        ),
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
    f.fix.push(
        "run `backlogctl doctor` without a target and with a longer --window to find it".into(),
    );
    out.push(f);
}

/// KERNEL.md §1 (SYN queue full ⇔ qlen > B) and §4 (TCPReqQFullDrop / DoCookies).
fn syn_queue(ctx: &Ctx, views: &[ListenerView]) -> Vec<Finding> {
    let mut out = Vec::new();
    let cookies = ctx.snap.sysctls.tcp_syncookies;
    let full: Vec<&ListenerView> = views
        .iter()
        .filter(|v| v.syn_recv_peak > v.send_q)
        .collect();
    let who = match full.as_slice() {
        [one] => Some(*one),
        _ => None,
    };
    let whose = who
        .map(|v| v.label())
        .unwrap_or_else(|| "a listener in this namespace".into());
    let syn_ev = |f: &mut Finding| {
        for v in &full {
            f.evidence.push(ev(
                format!("SYN_RECV peak on {}", v.local),
                json!(v.syn_recv_peak),
                "inet_diag request sockets",
            ));
        }
        f.evidence
            .push(ev("net.ipv4.tcp_syncookies", json!(cookies), "/proc/sys"));
    };
    let target_b = who
        .map(|v| advice::recommended_backlog(v.send_q))
        .unwrap_or(MODERN_SOMAXCONN);
    if let Some(n) = ctx.delta(REQQ_FULL_DROP).filter(|n| *n > 0) {
        let mut f = finding(
            RuleId::SynQueueOverflow,
            Severity::Critical,
            who,
            format!(
                "SYNs were dropped because the SYN queue of {whose} was full (TCPReqQFullDrop +{n}), \
                 SYN cookies being off: those clients retransmit their SYN and connect slowly or time out."
            ),
        );
        f.evidence.push(ev(
            REQQ_FULL_DROP,
            json!(n),
            "/proc/net/netstat, rise in this namespace",
        ));
        syn_ev(&mut f);
        f.fix.push("`sysctl -w net.ipv4.tcp_syncookies=1` (in the listener's network namespace): a full SYN queue then answers with cookies instead of dropping".into());
        f.fix.push(format!(
            "raise the listener's backlog (the SYN queue holds B+1 requests, like the accept queue) to {target_b}, and somaxconn with it; restart"
        ));
        out.push(f);
    } else if let Some(n) = ctx
        .delta(REQQ_FULL_COOKIES)
        .filter(|n| *n > 0 && cookies == Some(1))
    {
        let mut f = finding(
            RuleId::SynQueueOverflow,
            Severity::Warning,
            who,
            format!(
                "the SYN queue of {whose} filled up and {n} SYN cookie(s) were sent instead \
                 (TCPReqQFullDoCookies +{n}): connects still succeed, but a cookie handshake whose final \
                 ACK meets a full accept queue is dropped without a trace and hangs until room appears, \
                 and the kernel logs \"Possible SYN flooding\" for what may be a legitimate burst."
            ),
        );
        f.evidence.push(ev(
            REQQ_FULL_COOKIES,
            json!(n),
            "/proc/net/netstat, rise in this namespace",
        ));
        syn_ev(&mut f);
        f.fix.push(format!("raise the listener's backlog to {target_b} (the SYN queue limit is B, like the accept queue), and somaxconn with it; restart"));
        out.push(f);
    } else if !ctx.windowed
        && let Some(v) = who
    {
        let mut f = finding(
            RuleId::SynQueueOverflow,
            Severity::Warning,
            Some(v),
            format!(
                "{} has {} half-open handshakes (SYN_RECV) for a backlog of {}: its SYN queue is full now.",
                v.label(),
                v.syn_recv_peak,
                v.send_q
            ),
        );
        syn_ev(&mut f);
        f.fix.push(format!(
            "raise the listener's backlog to {target_b}, keep net.ipv4.tcp_syncookies=1"
        ));
        out.push(f);
    }
    out
}

/// KERNEL.md §3: what the clients of an overflowing listener experience, by setting.
fn what_clients_see(ctx: &Ctx, overflowing: &[&ListenerView], accept_overflow: bool) -> Finding {
    let abort = ctx.snap.sysctls.tcp_abort_on_overflow;
    let cookies = ctx.snap.sysctls.tcp_syncookies;
    let retries = ctx.snap.sysctls.tcp_synack_retries.unwrap_or(5);
    let lifetime: u32 = (0..=retries.min(10)).map(|i| 1u32 << i).sum();
    let syn_part = "Clients whose SYN arrives while the accept queue is full are dropped silently: they sit in \
                    SYN_SENT and retransmit the SYN after 1 s and then at growing intervals, so they see connects \
                    taking seconds, and ETIMEDOUT after about 2 minutes (131 s on recent kernels, 127 s on older \
                    ones) if the queue never drains.";
    let cookie_part = if cookies == Some(0) {
        ""
    } else {
        " Handshakes answered with a SYN cookie are never reset: if their final ACK finds the queue full they \
         think they are connected and hang until room appears (forever, for protocols where the server speaks first)."
    };
    let (severity, summary) = if !accept_overflow {
        (
            Severity::Ok,
            format!(
                "What clients see: SYNs dropped from a full SYN queue get no answer, so those clients retransmit \
                 the SYN after 1 s and then at growing intervals: slow connects, and ETIMEDOUT after about 2 \
                 minutes if the queue stays full. No resets: net.ipv4.tcp_abort_on_overflow (now {}) only concerns \
                 final ACKs that meet a full accept queue.",
                abort
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "unknown".into())
            ),
        )
    } else if abort == Some(1) {
        (
            Severity::Warning,
            format!(
                "What clients see, with net.ipv4.tcp_abort_on_overflow=1: a client whose final ACK finds the accept \
                 queue full is answered with RST at once, so connect() succeeds and its first read or write fails \
                 with \"Connection reset by peer\" (ECONNRESET). {syn_part}{cookie_part}"
            ),
        )
    } else {
        (
            Severity::Ok,
            format!(
                "What clients see, with net.ipv4.tcp_abort_on_overflow={}: no immediate resets. {syn_part} Clients whose \
                 final ACK is dropped believe they are connected: their request stalls until the server's SYN-ACK \
                 retransmission (1, 3, 7, 15, 31 s) finds room; if the handshake expires first (after about {lifetime} s \
                 with tcp_synack_retries={retries}) their next segment is answered with RST, a late \"Connection reset \
                 by peer\".{cookie_part}",
                abort
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "unknown (assumed 0)".into())
            ),
        )
    };
    let mut f = finding(
        RuleId::AbortOnOverflow,
        severity,
        overflowing.first().copied(),
        summary,
    );
    if overflowing.len() > 1 {
        f.listener = None;
        f.inode = None;
    }
    f.evidence.push(ev(
        "net.ipv4.tcp_abort_on_overflow",
        json!(abort),
        "/proc/sys",
    ));
    f.evidence
        .push(ev("net.ipv4.tcp_syncookies", json!(cookies), "/proc/sys"));
    f.evidence.push(ev(
        "net.ipv4.tcp_synack_retries",
        json!(ctx.snap.sysctls.tcp_synack_retries),
        "/proc/sys",
    ));
    for key in [EMBRYONIC_RSTS, OUT_RSTS, SYNCOOKIES_RECV] {
        if let Some(d) = ctx.delta(key) {
            f.evidence
                .push(ev(key, json!(d), "/proc/net, rise in this namespace"));
        }
    }
    if abort == Some(1) {
        f.fix.push(
            "keep tcp_abort_on_overflow=1 only if clients or a load balancer retry elsewhere on a reset; otherwise \
             `sysctl -w net.ipv4.tcp_abort_on_overflow=0` turns the resets back into short stalls; either way, fix \
             the queue itself"
                .into(),
        );
    } else {
        f.fix.push("fix the queue (see the overflow finding); setting tcp_abort_on_overflow=1 would only turn these stalls into resets".into());
    }
    f
}

fn syncookies_disabled(ctx: &Ctx) -> Finding {
    let mut f = finding(
        RuleId::SyncookiesDisabled,
        Severity::Warning,
        None,
        format!(
            "net.ipv4.tcp_syncookies=0: a full SYN queue drops SYNs instead of answering with cookies, and \
             net.ipv4.tcp_max_syn_backlog ({}) then also limits half-open connections; a burst or a SYN flood \
             turns into connect timeouts.",
            ctx.snap
                .sysctls
                .tcp_max_syn_backlog
                .map(|v| v.to_string())
                .unwrap_or_else(|| "unknown".into())
        ),
    );
    f.evidence
        .push(ev("net.ipv4.tcp_syncookies", json!(0), "/proc/sys"));
    f.fix.push("`sysctl -w net.ipv4.tcp_syncookies=1` in this network namespace (and in /etc/sysctl.d, or the container's --sysctl, to keep it)".into());
    f
}

/// KERNEL.md §8.3: SO_REUSEPORT hashes the 4-tuple and ignores how full each queue is.
fn reuseport(views: &[ListenerView], overflowing: &[&ListenerView], out: &mut Vec<Finding>) {
    let mut groups: HashMap<std::net::SocketAddr, Vec<&ListenerView>> = HashMap::new();
    for v in views {
        groups.entry(v.local).or_default().push(v);
    }
    let mut done = HashSet::new();
    for v in overflowing {
        if !done.insert(v.local) {
            continue;
        }
        let group = &groups[&v.local];
        if group.len() < 2 {
            continue;
        }
        let roomy: Vec<&&ListenerView> = group
            .iter()
            .filter(|o| o.recv_q_peak * 2 < o.send_q + 1)
            .collect();
        if roomy.is_empty() {
            continue;
        }
        let mut f = finding(
            RuleId::ReuseportImbalance,
            Severity::Warning,
            Some(v),
            format!(
                "{} sockets share {} (SO_REUSEPORT) and they are unevenly loaded: at least one overflowed while {} \
                 stayed below half full. The kernel spreads connections by a hash of the addresses and ports, not \
                 by how full each queue is, so a slow or stuck process keeps receiving its share.",
                group.len(),
                v.local,
                roomy.len()
            ),
        );
        for o in group {
            f.evidence.push(ev(
                format!("inode {} Recv-Q peak / B", o.inode),
                json!(format!("{}/{}", o.recv_q_peak, o.send_q)),
                "inet_diag",
            ));
        }
        f.fix.push("find out why the overflowing process accepts slowly (blocked, overloaded, stuck); give every socket of the group the same backlog; restart or remove a stuck member".into());
        out.push(f);
    }
}

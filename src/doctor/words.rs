//! The words: the only place a finding's facts and a plan's steps become sentences. Reads the
//! typed `Fact`s and `Action`s decided by `rules.rs` and `remedy.rs`; decides nothing. Every
//! command it quotes is the step's own (`Step::command`), and when there is none the step says
//! why (`Step::no_command`), so text and JSON never disagree.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use super::caps::{Basis, Cap, Combine};
use super::remedy::{Action, Asked, Knob, MODERN_SOMAXCONN, NoCommand, Plan, Step, Where};
use super::runtime::{self, AtCap, Counts, Relisten, Runtime};
use super::wait::{WaitSeen, WaitWhere};
use super::{
    Candidates, Fact, Finding, ListenerView, OwnSide, PathState, QueueSeen, ResetCause, Stuck,
    TracedLine, Whose,
};
use crate::catalogue::{LISTEN_OVERFLOWS, Sysctl};
use crate::model::{
    ConnectErrors, Local, NetnsLabel, ProcState, Setting, SettingSource, Snapshot, UnixName,
    window_length,
};

const SOMAXCONN: &str = Sysctl::Somaxconn.name();
const MAX_SYN_BACKLOG: &str = Sysctl::TcpMaxSynBacklog.name();
const SYNCOOKIES: &str = Sysctl::TcpSyncookies.name();
const ABORT_ON_OVERFLOW: &str = Sysctl::TcpAbortOnOverflow.name();
const SYNACK_RETRIES: &str = Sysctl::TcpSynackRetries.name();

/// Fills every plan step's text, then every finding's summary and fix text.
pub(super) fn fill(
    snap: &Snapshot,
    views: &[ListenerView],
    findings: &mut [Finding],
    plans: &mut [Plan],
) {
    let by_inode: HashMap<u64, &ListenerView> = views.iter().map(|v| (v.inode, v)).collect();
    let w = Words { snap };
    for plan in plans.iter_mut() {
        let example = plan_example(plan, views);
        let ctx = StepCtx {
            plan: Some(plan),
            view: example,
        };
        let texts: Vec<String> = plan.steps.iter().map(|s| w.step(s, &ctx)).collect();
        for (s, t) in plan.steps.iter_mut().zip(texts) {
            s.text = t;
            word_cap(&mut s.action);
        }
    }
    for f in findings.iter_mut() {
        let view = f.inode.and_then(|i| by_inode.get(&i).copied());
        f.summary = w.summary(f, view);
        let plan = f.fix.plan.map(|i| &plans[i]);
        let ctx = StepCtx { plan, view };
        for s in f.fix.steps.iter_mut() {
            word_cap(&mut s.action);
            // Steps of the plan already have their words: copy them, never rewrite them.
            let planned = plan.and_then(|p| p.steps.iter().find(|ps| ps.action == s.action));
            s.text = match planned {
                Some(p) => p.text.clone(),
                None => w.step(s, &ctx),
            };
        }
        f.fix.text = f.fix.steps.iter().map(|s| s.text.clone()).collect();
    }
}

/// The words of a cap a step carries, for JSON as for the listener's own.
fn word_cap(action: &mut Action) {
    if let Action::AcceptFaster { cap: Some(c) } | Action::MoreWorkers { cap: Some(c), .. } = action
    {
        c.text = cap(c);
    }
}

fn plan_example<'a>(plan: &Plan, views: &'a [ListenerView]) -> Option<&'a ListenerView> {
    let first = plan.inodes.first()?;
    views.iter().find(|v| v.inode == *first)
}

struct Words<'a> {
    snap: &'a Snapshot,
}

struct StepCtx<'a> {
    plan: Option<&'a Plan>,
    view: Option<&'a ListenerView>,
}

/// The listener a finding is about, as its words name and measure it.
struct Subject<'a> {
    v: Option<&'a ListenerView>,
    /// Its label, or "a listener in this namespace".
    who: String,
    /// Send-Q, the backlog B.
    b: u32,
    /// B+1.
    cap: u64,
    peak: u32,
}

impl<'a> Subject<'a> {
    fn of(v: Option<&'a ListenerView>) -> Self {
        Subject {
            v,
            who: v
                .map(|v| v.label())
                .unwrap_or_else(|| "a listener in this namespace".into()),
            b: v.map(|v| v.send_q).unwrap_or_default(),
            cap: v.map(|v| v.capacity()).unwrap_or_default(),
            peak: v.map(|v| v.recv_q_peak).unwrap_or_default(),
        }
    }
}

fn code(cmd: &str) -> String {
    format!("`{cmd}`")
}

fn num(v: Option<u32>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "unknown".into())
}

/// Where a step applies, for a sentence: `on the host`, `in the network namespace bpy`.
fn place(at: &Where) -> String {
    match at {
        Where::Host => "on the host".to_string(),
        Where::Unknown => "in the listener's network namespace".to_string(),
        Where::Pid { .. } => format!(
            "in the network namespace of {}",
            at.label(NetnsLabel::Short)
        ),
        Where::Named(_) | Where::Path(_) => {
            format!("in the network namespace {}", at.label(NetnsLabel::Short))
        }
    }
}

impl Words<'_> {
    /// `700 ms`, `1.5 s`.
    fn window(&self) -> String {
        window_length(self.snap.window_us() / 1000)
    }

    /// A finding's summary: the words of its fact, and of the listeners alike it covers.
    fn summary(&self, f: &Finding, v: Option<&ListenerView>) -> String {
        let l = Subject::of(v);
        let mut s = self.fact(&f.fact, &l);
        s.push_str(&also_alike(f, &l));
        s
    }

    /// The words of one fact: one arm per `Fact`, each a sentence or a function of its own.
    fn fact(&self, fact: &Fact, l: &Subject) -> String {
        let Subject { who, b, .. } = l;
        match fact {
            Fact::None => String::new(),
            Fact::NotListening {
                target,
                ip,
                elsewhere,
            } => not_listening(target, *ip, elsewhere),
            Fact::NotListeningUnix { target, path } => not_listening_unix(target, *path),
            Fact::Overflow { seen } if is_unix(l) => self.unix_overflow(*seen, l),
            Fact::High if is_unix(l) => unix_high(l),
            Fact::Overflow { seen } => self.overflow(*seen, l),
            Fact::Dropped { earlier } => self.dropped(*earlier, l),
            Fact::High => format!(
                "{who} came close to overflowing: Recv-Q peaked at {} of {} ({}%), without drops.",
                l.peak,
                l.cap,
                l.v.map(|v| v.peak_fill_pct()).unwrap_or_default()
            ),
            Fact::Waiting {
                place,
                seen,
                runtime,
            } => self.waiting(*place, seen, *runtime, l),
            Fact::Capped { somaxconn } => capped(*somaxconn, who),
            Fact::ChangedAfterListen { somaxconn } => format!(
                "{who} has a backlog of {b}, above today's {SOMAXCONN} {somaxconn}: it started listening \
                 before somaxconn was lowered. Its next restart will cut the backlog to {somaxconn}."
            ),
            Fact::SmallAppBacklog {
                somaxconn,
                runtime_default,
            } => small_app_backlog(*somaxconn, *runtime_default, l),
            Fact::NamespaceOverflow { overflows, whose } => {
                self.namespace_overflow(*overflows, *whose)
            }
            Fact::SynQueueDropped { dropped } => format!(
                "SYNs were dropped because the SYN queue of {who} was full (TCPReqQFullDrop +{dropped}), SYN \
                 cookies being off: those clients retransmit their SYN and connect slowly or time out. The SYN \
                 queue holds as many requests as the accept queue (B+1; B on kernels before early 2025)."
            ),
            Fact::SynQueueCookies { cookies } => syn_queue_cookies(*cookies, who),
            Fact::SynQueueFullNow => format!(
                "{who} has {} half-open handshakes (SYN_RECV) for a backlog of {b}: its SYN queue is full now.",
                num(l.v.and_then(|v| v.syn_recv_peak))
            ),
            Fact::Clients { accept_overflow } => self.clients(*accept_overflow),
            Fact::UnixClients { example, refused } => unix_clients(example, refused),
            Fact::SyncookiesDisabled => self.syncookies_disabled(),
            Fact::Resets {
                cause,
                count,
                per_sec,
                candidates,
            } => self.resets(*cause, *count, *per_sec, candidates),
            Fact::ResetsUnexplained { .. } => self.unexplained_fact(fact),
            Fact::ResetsFew {
                cause,
                count,
                connections,
            } => self.resets_few(*cause, *count, *connections),
            Fact::ResetsOwnOnly { cause, lines } => resets_own_only(*cause, lines),
            Fact::ReuseportImbalance {
                sockets,
                roomy,
                others_drained,
                stuck,
            } => self.imbalance(*sockets, *roomy, *others_drained, stuck.as_ref(), l),
        }
    }

    /// The words of `Fact::ResetsUnexplained`: the counters, what `--trace` saw, and the
    /// namespace's own connections the resets may be on.
    fn unexplained_fact(&self, fact: &Fact) -> String {
        let Fact::ResetsUnexplained {
            unexplained,
            out_rsts,
            per_sec,
            listeners,
            traced,
            own,
        } = fact
        else {
            return String::new();
        };
        let text = self.resets_unexplained(*unexplained, *out_rsts, *per_sec, listeners);
        let text = match traced {
            Some(lines) => format!("{text}. {}{}", traced_sentence(lines), self.trace_caveats()),
            None => text,
        };
        format!("{}{}", sentence(text), own_sentence(own))
    }

    /// docs/kernel.md §8.3: the sockets of an SO_REUSEPORT group unevenly loaded, or one of
    /// them stuck.
    fn imbalance(
        &self,
        sockets: usize,
        roomy: usize,
        others_drained: Option<bool>,
        stuck: Option<&Stuck>,
        l: &Subject,
    ) -> String {
        if let Some(st) = stuck {
            return self.stuck(sockets, st, l);
        }
        format!(
            "{sockets} sockets share {} (SO_REUSEPORT) and they are unevenly loaded: at least one \
             overflowed while {roomy} stayed below half full. The kernel spreads connections by a hash \
             of the addresses and ports, not by how full each queue is, so a slow or stuck process \
             keeps receiving its share.{}",
            l.v.map(|v| v.local.to_string()).unwrap_or_default(),
            match others_drained {
                Some(false) => {
                    " None of the others emptied its queue while this one held connections, so it is \
                     not one stuck process: the whole group accepts too slowly for this burst."
                }
                _ => "",
            }
        )
    }

    /// docs/kernel.md §8.3: one socket of an SO_REUSEPORT group stands while the others
    /// drain, and the process behind it.
    fn stuck(&self, sockets: usize, st: &Stuck, l: &Subject) -> String {
        let others = match st.drained {
            1 => {
                "another socket sharing the address was seen empty: its process accepts".to_string()
            }
            n => format!(
                "{n} other sockets sharing the address were seen empty: their processes accept"
            ),
        };
        format!(
            "{} is stuck: its accept queue held connections for {} without emptying (Recv-Q {} now, B = \
             {}) while {others} (SO_REUSEPORT, {sockets} sockets in all). {} The kernel spreads \
             connections by a hash of the addresses and ports, not by how full each queue is, so this \
             socket keeps receiving about 1 in {sockets} new connections, which wait or are dropped: a \
             bigger backlog only makes them wait longer.",
            l.who,
            window_length(st.for_ms),
            st.recv_q,
            st.backlog,
            servers_sentence(st)
        )
    }

    fn overflow(&self, seen: QueueSeen, l: &Subject) -> String {
        let Subject {
            who, b, cap, peak, ..
        } = l;
        // The admission check is lockless: concurrent handshakes can push Recv-Q past
        // B+1 (docs/kernel.md §1.2).
        let reached = if u64::from(*peak) > *cap {
            format!(
                "Recv-Q reached {peak}, past B+1 = {cap}: handshakes completing at once overshoot"
            )
        } else {
            format!("Recv-Q reached {peak} = B+1")
        };
        let how = match seen {
            QueueSeen::FullInWindow => format!(
                "its accept queue was full ({reached}) during the {} window",
                self.window()
            ),
            QueueSeen::FullNow => format!("its accept queue is full now ({reached})"),
            QueueSeen::DropsRose(d) => format!(
                "it dropped {d} segment(s) during the {} window{}",
                self.window(),
                if self.snap.counter_delta(LISTEN_OVERFLOWS).is_some() {
                    " while ListenOverflows rose"
                } else {
                    " (ListenOverflows could not be read to tell overflows from other drops)"
                }
            ),
        };
        format!(
            "{who} loses connection attempts to accept-queue overflow: {how}. With B = {b} about {cap} \
             established connections can wait for accept(); the rest are dropped."
        )
    }

    /// docs/kernel.md §9: a full Unix queue refuses connects at once, and nothing counts them.
    fn unix_overflow(&self, seen: QueueSeen, l: &Subject) -> String {
        let Subject {
            who, b, cap, peak, ..
        } = l;
        let reached = if u64::from(*peak) > *cap {
            format!("Recv-Q reached {peak}, past B+1 = {cap}")
        } else {
            format!("Recv-Q reached {peak} = B+1")
        };
        let how = match seen {
            QueueSeen::FullNow => {
                format!("its queue of pending connections is full now ({reached})")
            }
            _ => format!(
                "its queue of pending connections was full ({reached}) during the {} window",
                self.window()
            ),
        };
        format!(
            "{who} refuses connections: {how}. With B = {b}, {cap} connections can wait for \
             accept(); every further connect() fails or waits until one is accepted. No kernel \
             counter counts refused Unix connects, so without `--trace` how many there were is \
             unknown, and the queue may have been full between samples too."
        )
    }

    fn dropped(&self, earlier: u32, l: &Subject) -> String {
        format!(
            "{} dropped {earlier} segment(s) before this observation, none {}: a burst has probably \
             overflowed it before. sk_drops counts every segment dropped at the listener (SYNs and their \
             retransmits, final ACKs, TCP_DEFER_ACCEPT's bare ACKs), not clients, and never goes down while \
             the socket lives: a fix applied since (a reload keeps the socket) leaves the count where it is.",
            l.who,
            if self.snap.windowed() {
                format!("during the {} window", self.window())
            } else {
                "that this single sample can time".into()
            }
        )
    }

    fn namespace_overflow(&self, overflows: u64, whose: Whose) -> String {
        format!(
            "TcpExt ListenOverflows rose by {overflows} during the {} window: {} overflowed its accept queue.",
            self.window(),
            match whose {
                Whose::OutsideScope =>
                    "a listener outside the scope (run without TARGET to see all)",
                Whose::DropsUnknown => "a listener whose drops this kernel does not report",
                Whose::ClosedOrHidden =>
                    "a listener that closed during the window, or one not visible here",
            }
        )
    }
}

impl Words<'_> {
    /// docs/kernel.md §10: one cause of resets, what raised it and what the clients saw.
    fn resets(&self, cause: ResetCause, count: u64, per_sec: f64, c: &Candidates) -> String {
        let window = self.window();
        let fin_first;
        let (counter, what, clients) = match cause {
            ResetCause::UnreadClose => {
                fin_first = format!(
                    "the reply already sent, then ECONNRESET \"Connection reset by peer\" on their next read \
                     (EPIPE or ECONNRESET if they were still writing); a server that shuts its side down before \
                     closing ({} does) sends FIN first, so a client that stops at the end of \
                     the reply sees nothing and one that reuses or keeps writing to the connection sees the reset",
                    runtime::each_own(|r| r.quirks.close_sends_fin)
                );
                (
                    "TCPAbortOnClose",
                    "a socket was closed with received data still unread, so the kernel sent RST instead of FIN \
                     (typically a server that reads part of a request, replies and closes)",
                    fin_first.as_str(),
                )
            }
            ResetCause::LingerAbort => (
                "TCPAbortOnData, traced as TCP_STATE",
                "sockets were closed with SO_LINGER {on, 0}, which aborts the connection with RST instead of FIN",
                "what had arrived, then ECONNRESET \"Connection reset by peer\"",
            ),
            ResetCause::DataAfterClose => (
                "TCPAbortOnData, traced as TCP_ABORT_ON_DATA",
                "data arrived on connections the application had already closed: the peer was still sending \
                 (a next request on a connection the server closed, a request body the server did not wait for)",
                "the reply, if it was sent, then an error on their next write or read: ECONNRESET, or EPIPE \
                 once the server's FIN had arrived",
            ),
            ResetCause::AbortOnData => (
                "TCPAbortOnData",
                "either sockets were closed with SO_LINGER {on, 0}, or data arrived on connections the \
                 application had already closed (the peer still sending); the counter does not say which",
                "what had arrived, then ECONNRESET \"Connection reset by peer\"",
            ),
            ResetCause::Timeout => (
                "TCPAbortOnTimeout",
                "connections were given up on a timer: keepalive probes unanswered (RST sent) or \
                 retransmissions exhausted (no RST)",
                "ECONNRESET after a keepalive expiry; the side that gave up gets ETIMEDOUT",
            ),
            ResetCause::Memory => (
                "TCPAbortOnMemory",
                "sockets were reset because TCP memory (net.ipv4.tcp_mem) or the orphan limit \
                 (net.ipv4.tcp_max_orphans) ran out",
                "ECONNRESET \"Connection reset by peer\"",
            ),
        };
        format!(
            "{count} connection(s) reset in this network namespace over {window} ({per_sec}/s, {counter}): {what}. \
             Clients see {clients}. The counter is per namespace and names no socket; if clients run in the same \
             namespace, their own resets count here too. Unix sockets are not concerned. {}{}",
            sentence(format!("{}{}", candidates(c), self.trace_caveats())),
            own_sentence(&c.own)
        )
    }

    /// A note: resets too few for a finding, with the thresholds.
    fn resets_few(
        &self,
        cause: Option<ResetCause>,
        count: u64,
        connections: Option<u64>,
    ) -> String {
        let what = match cause {
            Some(c) => format!("{} ({})", cause_name(c), cause_counter(c)),
            None => "with no counted cause (OutRsts)".into(),
        };
        let of = match connections {
            Some(c) => {
                format!(" for {c} connection(s) opened and accepted (ActiveOpens + PassiveOpens)")
            }
            None => String::new(),
        };
        format!(
            "{count} reset(s) {what} over {}{of}: below a finding's {} resets and 1 in {}, too few to show \
             a cause (a client gone mid-request, a stray segment do this; a real cause resets most of the \
             connections it touches). Noted, not a finding.",
            self.window(),
            super::rules::RESETS_MIN,
            100 / super::rules::RESETS_SHARE_PERCENT,
        )
    }

    /// What limits a `--trace`: events lost, events tied by address alone.
    fn trace_caveats(&self) -> String {
        let Some(t) = &self.snap.resets_traced else {
            return String::new();
        };
        let mut notes = Vec::new();
        if t.lost > 0 {
            notes.push(format!(
                "the trace buffer lost {} event(s), so these counts are lower bounds",
                t.lost
            ));
        }
        if t.by_address > 0 {
            notes.push(format!(
                "{} were tied to this namespace by their listener's address alone, the thread that sent \
                 them having exited",
                t.by_address
            ));
        }
        match notes.is_empty() {
            true => String::new(),
            false => format!(" ({})", notes.join("; ")),
        }
    }

    /// OutRsts that no cause explains: in practice connects to a port nothing listens on.
    fn resets_unexplained(
        &self,
        unexplained: Option<u64>,
        out_rsts: u64,
        per_sec: f64,
        listeners: &[String],
    ) -> String {
        let window = self.window();
        let existing = match listeners {
            [] => "no TCP listener is in view".to_string(),
            ls => format!(
                "the listeners that do exist: {}{}",
                ls[..ls.len().min(5)].join(", "),
                more(ls.len())
            ),
        };
        match unexplained {
            Some(n) => format!(
                "{n} of the {out_rsts} RST(s) this network namespace sent over {window} ({per_sec}/s) have no \
                 counted cause (OutRsts minus TCPAbortOnClose, TCPAbortOnData, TCPAbortOnTimeout, \
                 TCPAbortOnMemory and the listen queue's resets). Usually a connect to a port nothing listens on: \
                 the client gets ECONNREFUSED \"Connection refused\" at connect(); else segments for a connection \
                 that no longer exists here: data after close reaching a TIME_WAIT socket (the client reads EOF, a \
                 later write fails), an ACK for a handshake the listener dropped, a listener closed with \
                 connections still queued. Check the clients' address and port against {existing}. Counters are per \
                 namespace: both ends count when the clients run here"
            ),
            None => format!(
                "this network namespace sent {out_rsts} RST(s) over {window} ({per_sec}/s), and their causes \
                 could not be told: the recording lacks the TCPAbortOn* counters (an older file). Clients saw \
                 ECONNRESET or ECONNREFUSED; {existing}"
            ),
        }
    }
}

/// `text` ending with a full stop.
fn sentence(text: String) -> String {
    match text.ends_with('.') {
        true => text,
        false => text + ".",
    }
}

/// What a cause is, in a few words.
fn cause_name(c: ResetCause) -> &'static str {
    match c {
        ResetCause::UnreadClose => "closing with unread data",
        ResetCause::LingerAbort => "closing with SO_LINGER {1,0}",
        ResetCause::DataAfterClose => "data after close",
        ResetCause::AbortOnData => "SO_LINGER {1,0} or data after close",
        ResetCause::Timeout => "timeouts",
        ResetCause::Memory => "TCP memory",
    }
}

fn cause_counter(c: ResetCause) -> &'static str {
    match c {
        ResetCause::UnreadClose => "TCPAbortOnClose",
        ResetCause::LingerAbort | ResetCause::DataAfterClose | ResetCause::AbortOnData => {
            "TCPAbortOnData"
        }
        ResetCause::Timeout => "TCPAbortOnTimeout",
        ResetCause::Memory => "TCPAbortOnMemory",
    }
}

/// The namespace's own outgoing connections, which the reset counters count too: what the
/// trace put on them, or, untraced, that there are such and where they go.
fn own_sentence(own: &OwnSide) -> String {
    if let Some(lines) = own.traced.as_deref() {
        return match lines {
            [] => String::new(),
            l => format!(
                " Besides, {} were on this namespace's own outgoing connections: {}; those are for the \
                 servers at the other end to see, not for this namespace's clients.",
                l.iter().map(|l| l.count).sum::<u64>(),
                traced_list(l)
            ),
        };
    }
    let Some(opened) = own.opened.filter(|n| *n > 0) else {
        return String::new();
    };
    let to = match own.servers.as_slice() {
        [] => String::new(),
        s => format!(
            ", to {}",
            s.iter()
                .take(3)
                .map(|s| match s.processes.as_slice() {
                    [] => format!("{} ({} socket(s))", s.addr, s.sockets),
                    p => format!(
                        "{} ({} socket(s), held by {})",
                        s.addr,
                        s.sockets,
                        p.join(", ")
                    ),
                })
                .collect::<Vec<_>>()
                .join(", ")
                + &match s.len() {
                    0..=3 => String::new(),
                    n => format!(" and {} more", n - 3),
                }
        ),
    };
    format!(
        " This namespace also opened {opened} connection(s) of its own in the window (ActiveOpens){to}: \
         the counters count their resets too, so some or all of these may be on those (a proxy's to its \
         upstreams) rather than on the clients of its listeners; `backlogctl doctor --trace` tells which \
         side each was on."
    )
}

/// A note: `--trace` put every reset of a cause on the namespace's own connections.
fn resets_own_only(cause: Option<ResetCause>, lines: &[TracedLine]) -> String {
    let what = match cause {
        Some(c) => format!("{} ({})", cause_name(c), cause_counter(c)),
        None => "with no counted cause".into(),
    };
    format!(
        "Every traced reset {what} was on this namespace's own outgoing connections, none on its \
         listeners' clients: {}. Its clients are not reset by them. The servers at the other end see \
         these as resets from this host, sent by the process named: a proxy aborting an upstream \
         connection its client gave up on, or closing with SO_LINGER {{1,0}} to spare itself TIME_WAIT, \
         does so by design; if such a server reports resets from this host, it is this process's \
         setting to look at. Noted, not a finding.",
        traced_list(lines)
    )
}

/// The traced lines, most first: "200 from 127.0.0.1:8400 (python3)".
fn traced_list(lines: &[TracedLine]) -> String {
    let one = |l: &TracedLine| {
        let what = match (l.reason.as_str(), &l.remote) {
            (reason, Some(to)) => format!("{} to {to} ({reason})", l.count),
            ("NO_SOCKET", None) => {
                format!("{} refused at {}, where nothing listens", l.count, l.source)
            }
            _ if l.listening => format!("{} from {}", l.count, l.source),
            _ => format!("{} from {} ({})", l.count, l.source, l.reason),
        };
        match l.tasks.as_slice() {
            [] => what,
            t => format!("{what} (sent by {})", t.join(", ")),
        }
    };
    lines.iter().take(5).map(one).collect::<Vec<_>>().join("; ") + &more(lines.len())
}

/// What `doctor --trace` tied to this namespace, in one sentence.
fn traced_sentence(lines: &[TracedLine]) -> String {
    match lines {
        [] => {
            "Traced one by one (tcp:tcp_send_reset), none of them was tied to a socket or process \
               of this namespace"
                .into()
        }
        l => format!("Traced one by one (tcp:tcp_send_reset): {}", traced_list(l)),
    }
}

/// Which sockets the resets can belong to, as far as the recording tells.
fn candidates(c: &Candidates) -> String {
    match c.traced.as_deref() {
        // Nothing tied: what the counters allow still holds.
        Some([]) => format!("{}. {}", traced_sentence(&[]), counted_candidates(c)),
        Some(lines) => traced_sentence(lines),
        None => counted_candidates(c),
    }
}

/// `candidates` from the queues seen and the listeners named: what the counters allow.
fn counted_candidates(c: &Candidates) -> String {
    let busy = |list: &[(String, u32)]| {
        list.iter()
            .take(5)
            .map(|(l, peak)| format!("{l} (Recv-Q peak {peak})"))
            .collect::<Vec<_>>()
            .join(", ")
            + &more(list.len())
    };
    if c.targets.is_empty() {
        return match (c.busy.as_slice(), c.quiet) {
            ([], 0) => "No TCP listener is in view".into(),
            ([], quiet) => format!(
                "None of the {quiet} TCP listener(s) was seen with a connection queued (a server that accepts \
                 at once leaves none): any of them can be the one"
            ),
            (b, _) => format!(
                "Listeners seen with connections queued in the window (busy, which does not make them the \
                 senders; the counters name no socket): {}",
                busy(b)
            ),
        };
    }
    let named = c.targets.join(", ");
    let seen = match c.busy.as_slice() {
        [] => format!(
            "{named} was not seen with a connection queued in the window, which does not clear it (a server \
             that accepts at once leaves none)"
        ),
        b => format!("{named} had connections queued in the window: {}", busy(b)),
    };
    let others = match c.others.as_deref() {
        None => {
            "The namespace's other sockets were not read: they can have sent them as well".into()
        }
        Some([]) => format!(
            "No other TCP listener was found in this namespace: the resets are {named}'s, unless its clients \
             run here too"
        ),
        Some(o) => format!(
            "The namespace's other TCP listeners can have sent them as well: {}{}",
            o[..o.len().min(5)].join(", "),
            more(o.len())
        ),
    };
    format!("Whether they are {named}'s, the counters cannot say. {seen}. {others}")
}

/// ", and N more" past the first five of a list.
fn more(n: usize) -> String {
    match n {
        0..=5 => String::new(),
        n => format!(" and {} more", n - 5),
    }
}

fn is_unix(l: &Subject) -> bool {
    l.v.is_some_and(|v| v.local.is_unix())
}

fn unix_high(l: &Subject) -> String {
    format!(
        "{} came close to refusing connections: Recv-Q peaked at {} of {} ({}%). No kernel counter counts \
         refused Unix connects: whether it was full between samples is unknown.",
        l.who,
        l.peak,
        l.cap,
        l.v.map(|v| v.peak_fill_pct()).unwrap_or_default()
    )
}

/// docs/kernel.md §9: what the clients of a full Unix listener see, a proxy's log among them
/// (`Quirks::unix_refusal`).
fn unix_clients(example: &Option<Local>, refused: &Option<Vec<ConnectErrors>>) -> String {
    let text = unix_clients_seen(example.as_ref());
    match refused.as_deref() {
        None => text,
        Some([]) => format!(
            "{text} Traced over the window: no process of this namespace had a connect() refused with \
             EAGAIN (its clients may run in another namespace that sees the socket's path)."
        ),
        Some(by) => {
            let total: u64 = by.iter().map(|c| c.count).sum();
            let each = by
                .iter()
                .map(|c| format!("{} (pid {}) {}", c.comm, c.pid, c.count))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "{text} Traced over the window: {total} connect() call(s) of this namespace refused with \
                 EAGAIN, exactly: {each}."
            )
        }
    }
}

fn unix_clients_seen(example: Option<&Local>) -> String {
    let proxies = runtime::having(|r| r.quirks.unix_refusal.as_ref())
        .map(|(r, refusal)| {
            let upstream = match example.and_then(Local::unix).map(|u| &u.name) {
                Some(UnixName::Path(p)) => format!("{}{p}", refusal.path),
                Some(UnixName::Abstract(n)) => format!("{}{n}", refusal.abstract_name),
                _ => refusal.example.into(),
            };
            format!(
                "{} logs {} and answers {}",
                r.name,
                code(&refusal.line(&upstream)),
                refusal.answers
            )
        })
        .collect::<Vec<_>>();
    format!(
        "What clients see when a Unix socket's queue is full: a non-blocking connect() ({}most proxies) \
         fails at once with EAGAIN, \"Resource temporarily unavailable\": {}, or \
         passes the request to the next upstream. A blocking connect() waits until the server accepts one, \
         up to the socket's SO_SNDTIMEO (then EAGAIN), forever without one; Python's settimeout() makes a \
         socket non-blocking, so it gets EAGAIN at once. Unlike TCP, where a dropped SYN is retransmitted \
         and the client sees a slow connect, nothing retries here: each refusal is final unless the client \
         tries again, and no setting (such as tcp_abort_on_overflow) changes that.",
        runtime::having(|r| r.quirks.unix_refusal.as_ref())
            .map(|(r, _)| format!("{}, ", r.name))
            .collect::<String>(),
        proxies.join("; ")
    )
}

/// docs/kernel.md §9: what a client's connect() to a Unix name nobody listens on gets.
fn not_listening_unix(target: &str, path: PathState) -> String {
    match path {
        PathState::StaleSocket => format!(
            "nothing listens on {target} in this network namespace, yet the socket file is there: a stale file \
             left by a server that exited, so clients get \"Connection refused\" (ECONNREFUSED) at once. (A \
             path socket is reachable from every network namespace that sees the file: if its server runs in \
             another one, a container's, diagnose it there.)"
        ),
        PathState::Missing => format!(
            "nothing listens on {target}: there is no such file, so clients get \"No such file or directory\" \
             (ENOENT) at once."
        ),
        PathState::NotASocket => format!(
            "nothing listens on {target}: the file there is not a socket, so clients get \"Connection \
             refused\" (ECONNREFUSED) at once."
        ),
        PathState::Unreadable => format!(
            "nothing listens on {target} in this network namespace, and its file could not be examined (see \
             the evidence): clients get \"Connection refused\" (ECONNREFUSED) if a stale socket file is \
             there, \"No such file or directory\" (ENOENT) if none is."
        ),
        PathState::NotChecked => format!(
            "nothing listens on {target} in this network namespace; its file was not checked, so whether clients get \"Connection refused\" (ECONNREFUSED, a stale socket \
             file) or \"No such file or directory\" (ENOENT, no file) is unknown."
        ),
        PathState::Abstract => format!(
            "nothing listens on the abstract name {target} in this network namespace: clients get \"Connection \
             refused\" (ECONNREFUSED) at once. An abstract name belongs to one network namespace: a server in \
             another one is not reached by it from here."
        ),
    }
}

fn not_listening(target: &str, ip: Option<IpAddr>, elsewhere: &[SocketAddr]) -> String {
    let mut s = format!(
        "nothing listens on {target} in this network namespace: clients get \"Connection refused\" \
         at once (an RST to their SYN), not resets of accepted connections or timeouts."
    );
    if !elsewhere.is_empty() {
        let list: Vec<String> = elsewhere.iter().map(|a| a.to_string()).collect();
        s.push_str(&format!(
            " {} listen{} on that port; {} not among {} addresses.",
            list.join(", "),
            if list.len() == 1 { "s" } else { "" },
            match ip {
                Some(ip) => format!("{ip} is"),
                None => "the address asked for is".into(),
            },
            if list.len() == 1 { "its" } else { "their" },
        ));
    }
    s
}

fn capped(somaxconn: u32, who: &str) -> String {
    format!(
        "The backlog of {who} equals {SOMAXCONN} ({somaxconn}): a larger request to listen() \
         would have been cut to it{}.",
        if somaxconn < MODERN_SOMAXCONN {
            format!(", and that is below the modern default of {MODERN_SOMAXCONN}")
        } else {
            ", and this listener overflowed or came close".to_string()
        }
    )
}

fn small_app_backlog(
    somaxconn: Option<u32>,
    runtime_default: Option<&'static str>,
    l: &Subject,
) -> String {
    format!(
        "{} asked listen() for a backlog of only {}{}; {}. A burst of more than {} simultaneous \
         connects overflows it.",
        l.who,
        l.b,
        runtime_default
            .map(|r| format!(" — {r}'s default"))
            .unwrap_or_default(),
        match somaxconn {
            Some(s) => format!("{SOMAXCONN} ({s}) would allow more"),
            None => format!("{SOMAXCONN} could not be read, but no kernel default is that low"),
        },
        l.cap
    )
}

fn syn_queue_cookies(cookies: u64, who: &str) -> String {
    format!(
        "the SYN queue of {who} filled up and {cookies} SYN cookie(s) were sent instead \
         (TCPReqQFullDoCookies +{cookies}): connects still succeed, but a cookie handshake whose final ACK \
         meets a full accept queue is dropped without a reset (only ListenOverflows and SyncookiesRecv count \
         it) and hangs until room appears, and the kernel logs \"Possible SYN flooding\" for what may be a \
         legitimate burst. The SYN queue holds as many requests as the accept queue (B+1; B on kernels \
         before early 2025)."
    )
}

/// For a finding that covers listeners alike: how many others, whose, and whose figures.
fn also_alike(f: &Finding, l: &Subject) -> String {
    let grouped = matches!(
        f.fact,
        Fact::Overflow { .. }
            | Fact::Dropped { .. }
            | Fact::High
            | Fact::Capped { .. }
            | Fact::ChangedAfterListen { .. }
            | Fact::SmallAppBacklog { .. }
    );
    if !grouped || f.listeners.len() <= 1 {
        return String::new();
    }
    // The holders alone: the listeners alike share their processes, not who serves each.
    let whose = match l
        .v
        .and_then(|v| crate::model::holders_label(&v.owners).map(|p| (p, v.owners.len())))
    {
        Some((p, 1)) => format!(" of the same process ({p})"),
        Some((p, _)) => format!(" of the same processes ({p})"),
        None => " (their processes are unknown)".to_string(),
    };
    let figures = if matches!(
        f.fact,
        Fact::Overflow { .. } | Fact::Dropped { .. } | Fact::High
    ) {
        "; the figures above are the worst one's, each listener's own are in --json"
    } else {
        ""
    };
    format!(
        " The same finding applies to {} other listener(s){whose} with the same backlog of {}{figures}.",
        f.listeners.len() - 1,
        l.b
    )
}

/// docs/kernel.md §3: what clients whose SYN meets a full accept queue see.
const SYN_DROPPED: &str = "Clients whose SYN arrives while the accept queue is full are dropped silently: they sit in \
                           SYN_SENT and retransmit the SYN (1 s apart at first on recent kernels, then at doubling \
                           intervals), so they see connects taking seconds, and ETIMEDOUT after about 2 minutes (131 s on \
                           recent kernels, 127 s on older ones) if the queue never drains.";

/// What clients of a SYN cookie handshake see when its final ACK meets a full accept queue.
const COOKIE_HANGS: &str = " Handshakes answered with a SYN cookie are never reset: if their final ACK finds the queue full they \
                            think they are connected and hang until room appears (until the client gives up, for protocols where \
                            the server speaks first).";

impl Words<'_> {
    /// docs/kernel.md §3: what the clients of an overflowing listener experience, by setting.
    fn clients(&self, accept_overflow: bool) -> String {
        let s = &self.snap.sysctls;
        let abort = s.tcp_abort_on_overflow;
        let syn_part = SYN_DROPPED;
        let cookie_part = if s.tcp_syncookies == Some(0) {
            ""
        } else {
            COOKIE_HANGS
        };
        if !accept_overflow {
            return format!(
                "What clients see: SYNs dropped from a full SYN queue get no answer, so those clients retransmit \
                 the SYN after 1 s and then at growing intervals: slow connects, and ETIMEDOUT after about 2 \
                 minutes if the queue stays full. No resets: {ABORT_ON_OVERFLOW} (now {}) only concerns \
                 final ACKs that meet a full accept queue.",
                num(abort)
            );
        }
        match abort {
            Some(1) => format!(
                "What clients see, with {ABORT_ON_OVERFLOW}=1: a client whose final ACK finds the accept \
                 queue full is answered with RST at once: \"Connection reset by peer\" (ECONNRESET). Where the client's \
                 code sees it depends on how soon the RST follows its SYN-ACK: from another host, a round trip later, \
                 connect() has returned and the first read or write fails; on this host (loopback, a veth) the RST \
                 is back before a blocking connect() wakes, so connect() itself fails, as does a nonblocking \
                 connect's SO_ERROR read after the reset (measured over a veth: 65 of 72 in connect(); with the RST \
                 tens of ms behind, 46 of 46 at the first read). {syn_part}{cookie_part}"
            ),
            _ => format!(
                "What clients see, with {ABORT_ON_OVERFLOW}={}: no immediate resets{}. {syn_part} \
                 Clients whose final ACK is dropped believe they are connected: their request stalls until the \
                 server's SYN-ACK retransmission (1, 3, 7, 15, 31 s) finds room; if the handshake expires first \
                 ({}) their next segment is answered with RST, a late \"Connection reset by peer\".{cookie_part}",
                num(abort),
                if abort.is_none() {
                    " if it is 0, its default; if it is 1, the final ACKs that meet a full queue are answered \
                     with RST at once"
                } else {
                    ""
                },
                request_lifetime(s.tcp_synack_retries)
            ),
        }
    }
}

/// How long a request socket lives: the SYN-ACK is sent 1 + tcp_synack_retries times, the
/// timeout doubling from 1 s up to TCP_RTO_MAX (120 s); `reqsk_timer_handler` retries less
/// when the SYN queue is clogged, so this is an upper bound.
fn request_lifetime(synack_retries: Option<u32>) -> String {
    match synack_retries {
        Some(r) => {
            let secs: u64 = (0..=u64::from(r.min(255)))
                .map(|i| if i < 7 { 1u64 << i } else { 120 })
                .sum();
            format!(
                "after at most about {secs} s with {SYNACK_RETRIES}={r}, less when the SYN \
                 queue is clogged"
            )
        }
        None => format!(
            "after a time set by {SYNACK_RETRIES}, which could not be read (about 63 s \
             at its default of 5)"
        ),
    }
}

impl Words<'_> {
    /// The sentence of one step, with its command quoted: one arm per `Action`, each a
    /// sentence or a function of its own.
    fn step(&self, s: &Step, ctx: &StepCtx) -> String {
        match &s.action {
            Action::Sysctl { knob, value } => self.sysctl_step(s, *knob, *value),
            Action::AppBacklog { .. } => app_backlog_step(s, ctx),
            Action::DerivedBacklog { .. } => derived_step(s, ctx),
            Action::Relisten { .. } => relisten_step(s, ctx),
            Action::AcceptFaster { cap } => {
                accept_faster_step(cap.as_ref(), ctx.plan.and_then(|p| p.runtime))
            }
            Action::MoreWorkers { runtime, cap } => more_workers_step(runtime, cap.as_ref()),
            Action::MoreConcurrency {
                runtime,
                in_progress,
            } => more_concurrency_step(*runtime, *in_progress, ctx),
            Action::CheckWait { .. } => check_wait_step(s),
            Action::CheckDropsHeld { listener } if listener.is_unix() => check_unix_queue_step(s),
            Action::CheckDropsHeld { .. } => check_drops_step(s, ctx),
            Action::UnstickMember { pid, state } => unstick_step(s, *pid, *state, ctx),
            Action::BalanceReuseport => "find out why the overflowing process accepts slowly (blocked, \
                                         overloaded, stuck); give every socket of the group the same backlog; \
                                         restart or remove a stuck member"
                .into(),
            Action::FindOverflowingListener => with_command(
                s,
                "find the listener that overflowed: run doctor without a target and with a longer window, \
                 during a burst"
                    .into(),
            ),
            Action::StartServer => "start the server, or check its port and bind address (a server bound to \
                                    127.0.0.1 is not reachable from elsewhere); if it runs in a container, \
                                    diagnose inside that container's network namespace (--pid PID)"
                .into(),
            Action::StartUnixServer { path } => start_unix_server_step(*path),
            Action::KeepAbortOnOverflow => self.keep_abort_step(),
            Action::ReadBeforeClose => read_before_close_step(),
            Action::TraceResets => trace_resets_step(s),
            Action::DropLingerZero => "drop SO_LINGER {1,0} (l_onoff=1, l_linger=0) and close normally: it \
                                       turns every close into a reset; a TIME_WAIT problem is better solved by \
                                       the client closing first or by reusing connections"
                .into(),
            Action::CheckTimeouts => "check the peers that stop answering: keepalive settings (SO_KEEPALIVE, \
                                      net.ipv4.tcp_keepalive_*), the application's idle timeouts, and the network \
                                      between them"
                .into(),
            Action::CheckTcpMemory => "look at `cat /proc/net/sockstat` (mem, orphan): raise net.ipv4.tcp_mem \
                                       or net.ipv4.tcp_max_orphans, or leave fewer sockets closed with data \
                                       pending"
                .into(),
            Action::DiagnoseServer { .. }
            | Action::ClientTimeouts { .. }
            | Action::ReuseConnections
            | Action::WidenPortRange { .. }
            | Action::TwReuse
            | Action::ConntrackMax { .. } => super::client::step_words(s),
            Action::FindRefusedConnects => "find the clients connecting where nothing listens (their logs say \
                                            \"Connection refused\"): fix their address or port, or start the \
                                            server they expect"
                .into(),
            Action::RaiseIfRealClients => "with SYN cookies on, a full SYN queue costs only a log line and cookie \
                                           handshakes: raise the listener's backlog only if these are real \
                                           clients rather than a flood (its accept-queue findings give the plan)"
                .into(),
        }
    }

    /// `Action::KeepAbortOnOverflow`: the stalls are recoverable; the queue's plan is the fix.
    fn keep_abort_step(&self) -> String {
        match self.snap.sysctls.tcp_abort_on_overflow {
            Some(a) => format!(
                "nothing to change here: {ABORT_ON_OVERFLOW}={a} lets clients recover from a \
                 dropped final ACK; setting it to 1 would only turn these stalls into resets. The queue's own \
                 plan is the fix"
            ),
            None => format!(
                "{ABORT_ON_OVERFLOW} could not be read: at 0 (its default) clients recover \
                 from a dropped final ACK, at 1 they are reset; either way the queue's own plan is the fix"
            ),
        }
    }

    fn sysctl_step(&self, s: &Step, knob: Knob, value: u32) -> String {
        let key = knob.key();
        let place = place(&s.at);
        let unread = s.no_command == Some(NoCommand::ValueUnread);
        let what = match knob {
            Knob::Somaxconn if unread => format!("make sure {key} is at least {value} {place}"),
            Knob::Somaxconn => format!("raise {key} to {value} {place}"),
            Knob::Syncookies if unread => format!(
                "make sure SYN cookies are enabled {place} ({key} at least {value}), so that a full SYN queue \
                 answers with cookies instead of dropping SYNs"
            ),
            // On the host, "back on on the host" would stutter.
            Knob::Syncookies if matches!(s.at, Where::Host) => format!(
                "turn the host's SYN cookies back on, so that a full SYN queue answers with cookies instead of \
                 dropping SYNs ({key}={value})"
            ),
            Knob::Syncookies => format!(
                "turn SYN cookies back on {place}, so that a full SYN queue answers with cookies instead of \
                 dropping SYNs ({key}={value})"
            ),
            Knob::AbortOnOverflow => format!(
                "unless clients or a load balancer retry elsewhere on a reset, set {key} back to {value} {place}: \
                 the resets become short stalls that retransmission recovers. Either way the queue needs its own \
                 plan"
            ),
        };
        let mut text = match (&s.command, s.no_command) {
            (Some(c), _) => format!("{what}: {}", code(c)),
            (None, Some(NoCommand::ValueUnread)) => format!(
                "{what} (it could not be read here, so no command is given: check it with `sysctl {key}`)"
            ),
            (None, _) => format!(
                "{what} (backlogctl could not tell which namespace that is, so no command is given: run it with \
                 --netns NAME or --pid PID for the exact one)"
            ),
        };
        if let Some(k) = keep_note(s, knob, value) {
            text.push_str(&k);
        }
        text
    }
}

/// The step's text, with its command quoted when it has one.
/// Who accepts from a stuck socket, and what its state says it is doing instead.
fn servers_sentence(st: &Stuck) -> String {
    match st.servers.as_slice() {
        [] if st.holders == 0 => "No process holding it is known.".to_string(),
        [] => format!(
            "Which of the {} processes holding it accepts from it could not be told: no epoll set of \
             theirs was seen watching it.",
            st.holders
        ),
        [one] if !one.watches => format!(
            "Its only holder, pid {}, {}.",
            one.pid,
            state_clause(one.state)
        ),
        [one] => format!(
            "Of the {} processes holding it, pid {} alone watches it in its epoll set, and it {}.",
            st.holders,
            one.pid,
            state_clause(one.state)
        ),
        [first, rest @ ..] => format!(
            "{} processes watch it in their epoll sets; pid {} {}{}.",
            rest.len() + 1,
            first.pid,
            state_clause(first.state),
            rest.iter()
                .map(|s| format!("; pid {} {}", s.pid, state_clause(s.state)))
                .collect::<String>()
        ),
    }
}

/// A process's state, for "pid 12 is ...".
fn state_clause(state: Option<ProcState>) -> &'static str {
    match state {
        Some(ProcState::Stopped) => {
            "is stopped (T): a signal (SIGSTOP, SIGTSTP) stopped it, and it accepts nothing until it \
             gets SIGCONT"
        }
        Some(ProcState::TracingStop) => {
            "is stopped by a tracer (t): a debugger or strace holds it, and SIGCONT does not resume it"
        }
        Some(ProcState::DiskSleep) => {
            "is in uninterruptible sleep (D): blocked in the kernel, usually on disk or \
             network-filesystem I/O, and no signal acts on it until that returns"
        }
        Some(ProcState::Zombie) => {
            "is a zombie (Z): it has exited, and what still holds its descriptors (its other threads) \
             does not accept"
        }
        Some(ProcState::Dead) => "is exiting (X)",
        Some(ProcState::Running) => {
            "is running (R): busy on a CPU, it does not get back to accept() fast enough"
        }
        Some(ProcState::Sleeping) => {
            "is sleeping (S): it waits for something other than these clients (a lock, a backend, a \
             disk read), or has stopped accepting at a connection limit"
        }
        Some(ProcState::Idle | ProcState::Parked) => "is idle",
        None => "is in a state that could not be read",
    }
}

/// The step for the process behind a stuck socket, by its state.
fn unstick_step(s: &Step, pid: Option<u32>, state: Option<ProcState>, ctx: &StepCtx) -> String {
    // In a plan, it comes before the backlog's steps: say why.
    let first = match ctx.plan {
        Some(p) if p.steps.len() > 1 => {
            "; do this first: while it does not accept, the kernel keeps handing it its share of new \
             connections, and a bigger backlog only makes them wait longer"
        }
        _ => "",
    };
    let Some(pid) = pid else {
        return format!(
            "find which of the processes holding the stuck socket accepts from it, and why it does \
             not (stopped, blocked, busy){first}"
        );
    };
    let text = match state {
        Some(ProcState::Stopped) => format!("resume pid {pid}, which is stopped"),
        Some(ProcState::TracingStop) => format!(
            "detach the tracer (a debugger, strace) that holds pid {pid}: its TracerPid is in \
             /proc/{pid}/status, and SIGCONT does not resume a traced process"
        ),
        Some(ProcState::DiskSleep) => format!(
            "find what pid {pid} waits for in the kernel (/proc/{pid}/stack, /proc/{pid}/wchan: \
             usually a disk or a network filesystem), then restart that worker; no signal reaches it \
             before that wait ends"
        ),
        Some(ProcState::Zombie | ProcState::Dead) => format!(
            "restart that worker: pid {pid} has exited, and what is left of it holds the socket \
             without accepting"
        ),
        Some(ProcState::Running) => format!(
            "find what pid {pid} spends its CPU on between accepts (a slow handler on its event \
             loop, blocking work on the accept path) and move that work off it, or add workers"
        ),
        Some(ProcState::Sleeping | ProcState::Idle | ProcState::Parked) => format!(
            "find what pid {pid} waits for instead of accepting (a lock, a backend, a disk read, a \
             connection limit it has reached)"
        ),
        None => format!(
            "find out why pid {pid} does not accept (stopped, blocked, busy): its state could not \
             be read"
        ),
    };
    format!("{}{first}", with_command(s, text))
}

/// `Action::TraceResets`: the command scoped to the namespace, or, that unknown, how to scope it.
fn trace_resets_step(s: &Step) -> String {
    let what = "trace the resets while they happen: each reset's reason tells SO_LINGER {1,0} \
                (TCP_STATE: drop it, close normally) from data arriving after close (TCP_ABORT_ON_DATA: \
                read the request whole, or shut down, drain, then close), and its port which side it was on";
    match &s.command {
        Some(_) => with_command(s, what.into()),
        None => format!(
            "{what}: `backlogctl {}` with --netns NAME or --pid PID for the namespace it happened in \
             (backlogctl could not tell which that is)",
            super::remedy::TRACE_RESETS
        ),
    }
}

fn with_command(s: &Step, text: String) -> String {
    match &s.command {
        Some(c) => format!("{text}: {}", code(c)),
        None => text,
    }
}

/// A rate for prose: `100`, `3.3`.
fn rate_words(rate: f64) -> String {
    if rate >= 10.0 {
        format!("{rate:.0}")
    } else {
        format!("{rate:.1}")
    }
}

/// Seconds for prose: `2.9 s`, `12 s`.
fn secs(ms: u32) -> String {
    if ms >= 10_000 {
        format!("{} s", (ms + 500) / 1000)
    } else {
        format!("{:.1} s", f64::from(ms) / 1000.0)
    }
}

/// What clients see while they wait after a successful connect (docs/kernel.md, "The clients'
/// wait"): the same whether the wait is in the kernel's queue or the server's.
const WAITING_CLIENTS: &str = "What clients see: connect() succeeds at once (the kernel completed the \
    handshake), then no reply for as long as they wait; a client whose read timeout is shorter fails with a \
    timeout (a proxy in front logs `upstream timed out (110: Connection timed out) while reading response \
    header from upstream` and answers 504), and a load tester counts the wait in its times.";

/// The same for a Unix socket's clients (docs/kernel.md §9): a connect that was not refused is
/// queued, and waits like a TCP one.
const WAITING_UNIX_CLIENTS: &str = "What clients see: their connect() succeeded (the connection is \
    queued on the listener), then no reply for as long as they wait; a client whose timeout is shorter \
    fails with a timeout (a proxy in front reports an upstream read timeout and answers 504). Once the \
    queue is full, the next non-blocking connect() gets EAGAIN at once.";

impl Words<'_> {
    fn syncookies_disabled(&self) -> String {
        format!(
            "{SYNCOOKIES}=0: a full SYN queue drops SYNs instead of answering with cookies, and \
             {MAX_SYN_BACKLOG} ({}) then also limits half-open connections; a burst or a SYN flood \
             turns into connect timeouts.",
            num(self.snap.sysctls.tcp_max_syn_backlog)
        )
    }

    /// The clients of a listener waited at `place` (`Fact::Waiting`).
    fn waiting(
        &self,
        place: WaitWhere,
        w: &WaitSeen,
        runtime: Option<&Runtime>,
        l: &Subject,
    ) -> String {
        let Subject { who, b, .. } = l;
        let recv_q = l.v.map_or(0, |v| v.recv_q);
        let oldest = w.oldest_max_ms(place);
        let drain = match (w.drain_per_s(place), w.to_drain_ms(place)) {
            (Some(rate), Some(left)) if w.waiting_now(place) > 0 => format!(
                " At the rate they were served ({}/s) the {} still waiting take {} more: the last of \
                 them will have waited about {}.",
                rate_words(rate),
                w.waiting_now(place),
                secs(left),
                secs(w.expected_ms(place))
            ),
            (Some(rate), _) if rate == 0.0 && w.waiting_now(place) > 0 => {
                " None of them left over the window: they are not being served.".into()
            }
            _ => String::new(),
        };
        let standing = if w.standing() {
            format!(
                "; the queue never emptied during the {} window",
                self.window()
            )
        } else {
            String::new()
        };
        let head = match place {
            WaitWhere::AcceptQueue if w.measured == 0 => format!(
                "The accept queue of {who} never emptied during the {} window (Recv-Q above 0 in every sample, \
                 {recv_q} of {b}+1 at the end): its clients wait for accept(), at least that long.",
                self.window()
            ),
            WaitWhere::AcceptQueue if is_unix(l) => format!(
                "The clients of {who} wait for accept(): {} connections were pending on the Unix socket \
                 (Recv-Q {recv_q} of {b}+1), the oldest seen pending for at least {}{} (Unix sockets carry no \
                 timestamps: the wait is how long it stayed pending across readings).",
                w.queued_peak,
                secs(oldest),
                standing
            ),
            WaitWhere::AcceptQueue => format!(
                "The clients of {who} wait for accept(): {} connections had completed the handshake and sat in \
                 the accept queue (Recv-Q {recv_q} of {b}+1), the oldest for {}{}.",
                w.queued_peak,
                secs(oldest),
                standing
            ),
            WaitWhere::AfterAccept => format!(
                "{who} accepts its clients but does not answer them: {} accepted connections held a request \
                 with nothing sent back ({} still unread in their socket, {} being worked on), the oldest for \
                 {}, while its accept queue was at {recv_q} of {b}+1: the clients wait in the server's own \
                 queue, not the kernel's.",
                w.waiting_now(place).max(1),
                w.unread_now(),
                w.in_progress().unwrap_or(0),
                secs(oldest)
            ),
        };
        let cause = wait_cause(place, w, runtime);
        let clients = if is_unix(l) {
            WAITING_UNIX_CLIENTS
        } else {
            WAITING_CLIENTS
        };
        format!("{head}{drain}{cause} {clients}")
    }
}

/// Why clients wait at `place`, in the runtime's terms where it has a concurrency setting.
fn wait_cause(place: WaitWhere, w: &WaitSeen, runtime: Option<&Runtime>) -> String {
    match place {
        WaitWhere::AcceptQueue => {
            " A larger backlog only lets more of them wait: the owner does not \
            call accept() fast enough."
                .to_string()
        }
        WaitWhere::AfterAccept => match (
            w.in_progress(),
            runtime.and_then(|r| r.concurrency.as_ref()),
        ) {
            (Some(n), Some(k)) => format!(
                " {n} requests worked on at once is the server's concurrency: {}'s {}.",
                runtime.map_or("", |r| r.name),
                code(k.name)
            ),
            (Some(n), None) => format!(
                " {n} requests worked on at once is the server's concurrency: its workers or threads."
            ),
            _ => " Its workers, threads or connection cap are all taken.".into(),
        },
    }
}

/// A burst like the one seen should be served within this: half the wait a client notices
/// (`WAIT_WARNING_MS`), since the readings may begin after the burst did.
const SERVE_WITHIN_MS: u32 = crate::doctor::wait::WAIT_WARNING_MS / 2;

/// Serve more at once (`Action::MoreConcurrency`): enough to serve a burst like the one seen
/// within `SERVE_WITHIN_MS`, at the time each request took.
fn more_concurrency_step(
    runtime: Option<&Runtime>,
    in_progress: Option<u32>,
    ctx: &StepCtx,
) -> String {
    let w = ctx.view.map(|v| &v.wait);
    let rate = w.and_then(|w| w.drain_per_s(WaitWhere::AfterAccept));
    let peak = w.map_or(0, |w| w.unanswered_peak);
    let sized = match (in_progress, rate) {
        (Some(n), Some(rate)) if rate > 0.0 => {
            let each_ms = f64::from(n) / rate * 1000.0;
            let want = (f64::from(peak) * each_ms / f64::from(SERVE_WITHIN_MS))
                .ceil()
                .max(f64::from(n) * 2.0) as u32;
            Some((n, each_ms, want))
        }
        _ => None,
    };
    let how = match (runtime.and_then(|r| r.concurrency.as_ref()), sized) {
        (Some(k), Some((_, _, want))) => format!(": {}", k.how.replace("{n}", &want.to_string())),
        (Some(k), None) => format!(": raise {}", code(k.name)),
        (None, Some((_, _, want))) => format!(
            ": a fixed pool of threads or workers is sized in the code or its configuration, e.g. {want}"
        ),
        (None, None) => {
            ": the size of its pool of workers or threads, in the code or its configuration".into()
        }
    };
    let why = match sized {
        Some((n, each_ms, want)) => format!(
            " ({n} at once took about {each_ms:.0} ms per request, so serving a burst of {peak} within half \
             a second takes about {want} at once; as far as memory and the backends allow)"
        ),
        None => String::new(),
    };
    format!(
        "serve more requests at once, or make each one faster{how}{why}; a backlog does not help: the \
         clients are already accepted"
    )
}

/// The clients waited: the next burst must not make them wait a second.
fn check_wait_step(s: &Step) -> String {
    let how = match &s.command {
        Some(c) => code(c),
        None => "`backlogctl doctor --window 5s`, run in that namespace".into(),
    };
    format!(
        "check that the fix held: during the next burst run {how}: it must report no client waiting a \
         second or more (the oldest wait, in the accept queue or after accept())"
    )
}

/// How a sysctl set by a step lasts: a file on the host, the namespace's own setup, or the
/// container's definition.
fn keep_note(s: &Step, knob: Knob, value: u32) -> Option<String> {
    let key = knob.key();
    match &s.at {
        Where::Host => s
            .persist
            .as_deref()
            .map(|p| format!("; to keep it after a reboot: {}", code(p))),
        Where::Named(n) => Some(format!(
            "; it lasts as long as the namespace: set it wherever {n} is set up, to keep it"
        )),
        at if at.container() => Some(format!(
            "; the host's sysctl.conf does not reach a container: to keep it, set it where the container is \
             defined, {} or a Kubernetes pod's {}{}",
            code(&format!("docker run --sysctl {key}={value}")),
            code(&format!(
                "securityContext.sysctls: [{{name: {key}, value: \"{value}\"}}]"
            )),
            if knob.k8s_safe() {
                String::new()
            } else {
                format!(
                    " (an unsafe sysctl: the kubelet must allow it, {})",
                    code(&format!("--allowed-unsafe-sysctls={key}"))
                )
            }
        )),
        _ => None,
    }
}

fn app_backlog_step(s: &Step, ctx: &StepCtx) -> String {
    let Action::AppBacklog {
        runtime,
        value,
        ref now,
    } = s.action
    else {
        return String::new();
    };
    let now = now.as_ref();
    // What it asked for is inferred, never known: say what the socket has.
    let has = match ctx.plan.map(|p| p.backlog.asked) {
        Some(Asked::Exactly(b)) => format!(" (the socket has {b})"),
        Some(Asked::AtLeast(b)) => format!(
            " (the socket has {b}, somaxconn's value when it listened: the request may have \
             been larger, so make sure it is {value})"
        ),
        _ => String::new(),
    };
    let how = match (runtime, now) {
        (Some(rt), Some(s)) if s.on_command_line() => {
            let also = rt
                .settings
                .on_command_line
                .as_ref()
                .and_then(|o| o.also)
                .map(|a| format!("; {a}"))
                .unwrap_or_default();
            format!("{}{also}", on_command_line(rt, s, value))
        }
        (rt, now) => {
            let unix = matches!(ctx.view.map(|v| &v.local), Some(Local::Unix(_)));
            let how = runtime::how_to_set(rt, unix, value);
            match now.map(|s| (&s.source, s)) {
                Some((SettingSource::ConfigFile { path, line }, s)) => format!(
                    "{how}; it is set now at {path} line {line} ({}), the assignment that wins: \
                     change that one",
                    code(&s.written)
                ),
                _ => how,
            }
        }
    };
    format!("have the application ask listen() for a backlog of {value}{has}: {how}")
}

/// A setting the running process got on its command line, which beats its files: change it
/// where the command line is written, to `value`.
fn on_command_line(rt: &Runtime, s: &Setting, value: u32) -> String {
    let says = format!("its command line says {}", code(&s.written));
    let overrides = rt
        .settings
        .on_command_line
        .as_ref()
        .and_then(|o| o.overrides)
        .map(|o| format!(", which overrides {o}"))
        .unwrap_or_default();
    let at = rt
        .settings
        .on_command_line
        .as_ref()
        .map_or("where the process is started", |o| o.change_at);
    let to = s
        .written_with(u64::from(value))
        .map(|w| format!(", to {}", code(&w)))
        .unwrap_or_default();
    format!("{says}{overrides}: change it there, {at}{to}")
}

/// A runtime whose backlog follows a setting that sizes other things too (`Runtime::derived`),
/// set where the running value comes from when that is known.
fn derived_step(s: &Step, ctx: &StepCtx) -> String {
    let Action::DerivedBacklog {
        runtime,
        value,
        ref now,
        ..
    } = s.action
    else {
        return String::new();
    };
    let now = now.as_ref();
    let n = ctx.plan.and_then(|p| p.backlog.target).unwrap_or(value * 2);
    let at = now.and_then(|s| match &s.source {
        SettingSource::CommandLine => Some(format!(": {}", on_command_line(runtime, s, value))),
        SettingSource::ConfigFile { path, line } => Some(format!(
            ", where it is set now: {path} line {line} says {}, the assignment that wins: change \
             that one",
            code(&s.written)
        )),
        SettingSource::Default => None,
    });
    runtime
        .derived
        .as_ref()
        .map(|d| d.words(value, n, at.as_deref()))
        .unwrap_or_default()
}

/// Size the pool; with the owner's cap read from its settings, say what it is now.
fn more_workers_step(runtime: &Runtime, cap: Option<&Cap>) -> String {
    let pool = runtime.pool.unwrap_or_default();
    match cap {
        Some(c) => format!("{pool}; as it runs, {}", self::cap(c)),
        None => pool.into(),
    }
}

/// Accept faster; with the owner's cap read from its settings, that cap is what to raise when
/// connections wait for it.
/// Without a cap read, a runtime that accepts in its one event loop per process (Node.js) is
/// told how to have more of them, after the generic advice.
fn accept_faster_step(cap: Option<&Cap>, runtime: Option<&Runtime>) -> String {
    const GENERIC: &str = "make accept() keep up: a dedicated acceptor thread, no work on the \
                           accept path, enough workers; a backlog only absorbs bursts, and if \
                           arrivals outrun accept() any queue fills";
    let Some(c) = cap else {
        // A runtime whose accept loop is its one event loop per process (Node.js): more of them.
        let loops = runtime
            .filter(|r| {
                r.cap
                    .as_ref()
                    .is_some_and(|c| c.counts == Counts::AcceptLoops)
            })
            .and_then(|r| r.concurrency.as_ref());
        return match loops {
            Some(k) => format!("{GENERIC}. {}", k.how.replace("{n}", "more")),
            None => GENERIC.into(),
        };
    };
    match c.at_cap {
        AtCap::Waits => {
            let raise = c
                .runtime
                .concurrency
                .as_ref()
                .map(|k| format!(": {},", k.how.replace("{n}", "N")))
                .unwrap_or_default();
            let beyond = if c.value.is_some() {
                "that many"
            } else {
                "its cap"
            };
            format!(
                "make accept() keep up: {}. Beyond {beyond}, connections wait in this queue, \
                 however large its backlog: raise the cap{raise} as far as memory and what it \
                 serves allow, or make each one shorter; a backlog only absorbs bursts, and if \
                 arrivals outrun accept() any queue fills",
                self::cap(c)
            )
        }
        AtCap::Refused(says) => format!(
            "{GENERIC}. {}; beyond that many it accepts and refuses at once (its clients read \
             \"{says}\"), which no listen queue shows and no backlog changes",
            upper_first(&self::cap(c))
        ),
    }
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A cap in words: `gunicorn serves at most 2 requests at once: `--workers 2` (its command
/// line) × threads 1 (its default)`.
pub(super) fn cap(c: &Cap) -> String {
    let rt = c.runtime.name;
    let counts = match c.counts {
        Counts::Connections => "connections",
        Counts::Requests => "requests",
        Counts::AcceptLoops => "accept() loops",
    };
    match &c.basis {
        Basis::Processes { pids } => format!(
            "{rt} runs one event loop per process, and {} process(es) hold this socket (PID {}): \
             at most {} accept() loops",
            pids.len(),
            pids.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            pids.len()
        ),
        Basis::Unreadable => format!(
            "{rt}'s cap on {counts} at once cannot be read from outside it{}",
            c.runtime
                .concurrency
                .as_ref()
                .map(|k| format!(": {}", k.how.replace("{n}", "N")))
                .unwrap_or_default()
        ),
        Basis::Settings {
            combine,
            settings,
            unknown,
            workers_running,
            every_section,
        } => {
            let factors: Vec<String> = settings
                .iter()
                .map(|s| factor(s, *workers_running))
                .collect();
            let joined = match combine {
                Combine::Product => factors.join(" × "),
                Combine::Lowest if factors.len() > 1 => {
                    format!("the lowest of {}", factors.join(", "))
                }
                Combine::Lowest => factors.join(""),
            };
            let unread = if unknown.is_empty() {
                String::new()
            } else {
                format!("; {} not read", unknown.join(", "))
            };
            let sections = if *every_section {
                "; no section of its configuration names this socket: these are every \
                 section's, one of them its own"
            } else {
                ""
            };
            match c.value {
                Some(v) => format!("{rt} serves at most {v} {counts} at once: {joined}{sections}"),
                None if settings.is_empty() => {
                    format!("{rt}'s cap on {counts} at once is not known{unread}")
                }
                None => format!(
                    "{rt}'s cap on {counts} at once is not known: {joined}{unread}{sections}"
                ),
            }
        }
    }
}

/// One setting of a cap: as written, and where (`` `maxconn 20` (frontend fe, /etc/haproxy/
/// haproxy.cfg line 12) ``); `auto` with the workers it made.
fn factor(s: &Setting, workers_running: Option<u64>) -> String {
    let written = if s.written.is_empty() {
        format!("{} {}", s.name, s.value)
    } else {
        code(&s.written)
    };
    let section = s
        .section
        .as_ref()
        .map(|sec| format!("{}, ", sec.name))
        .unwrap_or_default();
    let from = match &s.source {
        SettingSource::CommandLine => "its command line".to_string(),
        SettingSource::ConfigFile { path, line } => format!("{path} line {line}"),
        SettingSource::Default => "its default".to_string(),
    };
    let auto = match (s.number(), workers_running) {
        (None, Some(n)) => format!(": {n} workers running"),
        (None, None) => ": how many it made is not known".to_string(),
        _ => String::new(),
    };
    format!("{written} ({section}{from}{auto})")
}

fn relisten_step(s: &Step, ctx: &StepCtx) -> String {
    let Action::Relisten {
        runtime,
        how,
        pid,
        new_command_line,
    } = s.action
    else {
        return String::new();
    };
    let after = ctx.plan.is_some_and(|p| {
        p.steps
            .iter()
            .any(|x| matches!(x.action, Action::Sysctl { .. }))
    });
    let after = if after { "after the steps above, " } else { "" };
    let server = runtime.map_or("the server", Runtime::restarted);
    let reload = runtime.and_then(|r| r.reload.as_ref());
    match how {
        Relisten::Reload => format!(
            "{}; a reload calls listen() again only when the backlog= value changed: if Send-Q does \
             not become {} (the directive already said so), restart {server} instead",
            with_command(
                s,
                format!(
                    "{after}reload {server} so it calls listen() again on the same socket, which takes the new \
                     backlog and re-reads somaxconn without losing a connection (the socket and its drop \
                     count stay){}",
                    match reload.filter(|_| pid.is_none()) {
                        Some(r) => format!(" (e.g. {})", code(r.command)),
                        None => String::new(),
                    }
                )
            ),
            ctx.plan
                .and_then(|p| p.backlog.target)
                .map(|n| n.to_string())
                .unwrap_or_else(|| "the new backlog".into())
        ),
        Relisten::Restart => format!(
            "{after}restart {server}: the backlog, and somaxconn's cap on it, are fixed when listen() is \
             called, so no change reaches a socket that is already listening; connections still \
             queued at that moment are reset{}",
            runtime
                .and_then(|r| r.settings.on_command_line.as_ref())
                .and_then(|o| o.restart)
                .filter(|_| new_command_line)
                .unwrap_or(runtime::restart_note(runtime))
        ),
    }
}

/// What to do about a Unix target nobody listens on, by what its name leads to.
fn start_unix_server_step(path: PathState) -> String {
    match path {
        PathState::StaleSocket => "start the server; one that does not remove an old file before bind() fails \
                                   with \"Address already in use\": remove the stale file first, once sure no \
                                   server in another network namespace uses it"
            .into(),
        PathState::Missing => format!(
            "start the server, or check that clients and server name the same path ({}); a server with \
             systemd's PrivateTmp= or in a container has a /tmp of its own",
            runtime::each_own(|r| r.unix_path_setting)
        ),
        PathState::NotASocket => "find out what replaced the socket file, then restart the server so that it \
                                  binds a new one (most servers refuse to remove a file that is not a socket)"
            .into(),
        PathState::Unreadable | PathState::NotChecked => "start the server, or check the path: `ls -l` on it shows \
                                                          whether a socket file is there"
            .into(),
        PathState::Abstract => "start the server, or diagnose in the network namespace it runs in (--pid PID): \
                                an abstract name is per network namespace"
            .into(),
    }
}

/// docs/kernel.md §9: nothing counts refused Unix connects; only the queue tells.
fn check_unix_queue_step(s: &Step) -> String {
    let how = match &s.command {
        Some(c) => code(c),
        None => "`backlogctl watch`, run in that namespace".into(),
    };
    format!(
        "check that the fix held: nothing counts refused Unix connects, so watch the queue during the next \
         burst with {how}: Recv-Q must stay at or below Send-Q"
    )
}

fn check_drops_step(s: &Step, ctx: &StepCtx) -> String {
    let d = ctx
        .view
        .and_then(|v| v.drops)
        .map(|d| format!(" ({d})"))
        .unwrap_or_default();
    let how = match &s.command {
        Some(c) => format!("watch it during the next burst with {}", code(c)),
        None => {
            "watch it during the next burst with `backlogctl watch`, run in that namespace".into()
        }
    };
    format!(
        "check that the fix held: the drop count{d} never goes down while the socket lives, so \
         {how}, or compare the drops of two `backlogctl doctor` runs: they must stop growing"
    )
}

/// `Action::ReadBeforeClose`: read the request whole (or shut down and drain) before closing,
/// with the runtimes' own ways of doing so.
fn read_before_close_step() -> String {
    format!(
        "read the whole request before closing (HTTP: the headers up to the blank line, then the \
         body per Content-Length), or shutdown(SHUT_WR), read until EOF, then close; {}a reply \
         without reading costs the client its reply",
        runtime::having(|r| r.quirks.read_whole_request)
            .map(|(r, how)| format!("{}: {how}; ", r.name))
            .collect::<String>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::remedy::sysctl_step;
    use crate::model::{Netns, Sysctls};

    /// The words of the step that turns SYN cookies on, with tcp_syncookies `now` in `netns`.
    fn syncookies_step(now: Option<u32>, netns: Netns) -> String {
        let snap: Snapshot = serde_json::from_str(
            r#"{"schema_version": 2, "tool": "test", "started_unix_ms": 0, "sysctls": {}, "samples": []}"#,
        )
        .expect("a minimal snapshot");
        let sysctls = Sysctls {
            tcp_syncookies: now,
            ..Sysctls::default()
        };
        let step = sysctl_step(Knob::Syncookies, 1, &sysctls, &netns);
        Words { snap: &snap }.sysctl_step(&step, Knob::Syncookies, 1)
    }

    fn host() -> Netns {
        Netns {
            initial: Some(true),
            ..Netns::default()
        }
    }

    #[test]
    fn unread_syncookies_say_so_and_give_no_command() {
        assert_eq!(
            syncookies_step(None, host()),
            "make sure SYN cookies are enabled on the host (net.ipv4.tcp_syncookies at least 1), so \
             that a full SYN queue answers with cookies instead of dropping SYNs (it could not be read \
             here, so no command is given: check it with `sysctl net.ipv4.tcp_syncookies`)"
        );
    }

    #[test]
    fn syncookies_turned_back_on_read_as_one_sentence_wherever_they_are() {
        assert_eq!(
            syncookies_step(Some(0), host()),
            "turn the host's SYN cookies back on, so that a full SYN queue answers with cookies instead \
             of dropping SYNs (net.ipv4.tcp_syncookies=1): `sysctl -w net.ipv4.tcp_syncookies=1`; to \
             keep it after a reboot: `echo 'net.ipv4.tcp_syncookies = 1' > \
             /etc/sysctl.d/90-backlogctl-tcp_syncookies.conf`"
        );
        let named = Netns {
            initial: Some(false),
            names: vec!["bpy".into()],
            ..Netns::default()
        };
        assert!(
            syncookies_step(Some(0), named)
                .starts_with("turn SYN cookies back on in the network namespace bpy, so that")
        );
        for text in [
            syncookies_step(None, host()),
            syncookies_step(Some(0), host()),
            syncookies_step(None, Netns::default()),
            syncookies_step(Some(0), Netns::default()),
        ] {
            assert!(!text.contains(" on on "), "{text}");
        }
    }
}

//! The lab's story: what happened to the clients and why, in words, from the outcomes and the
//! counters (docs/kernel.md §3). One paragraph per thing that can have happened, in the order
//! a reader asks. Pure.

use super::client_side::{Counted, Tally};
use super::{ClientSide, LabFamily, LabReport, Outcome};
use crate::catalogue::{
    ABORT_ON_CLOSE, EMBRYONIC_RSTS, LISTEN_OVERFLOWS, REQQ_FULL_DROP, SYNCOOKIES_RECV,
    SYNCOOKIES_SENT,
};
use crate::doctor::{RuleId, runtime};

/// What happened, and why.
pub(crate) fn story(r: &LabReport) -> Vec<String> {
    let f = Facts(r);
    let mut story = match r.settings.family {
        LabFamily::Tcp => tcp(&f),
        LabFamily::Unix => unix(&f),
    };
    if let Some(c) = &r.client_side {
        story.extend(from_the_clients(c));
    }
    story
}

/// `--veth`: the same burst from the clients' namespace — what they counted against what
/// their kernel counted, what their kernel held at its worst, and whether doctor there names
/// the burst doctor names on the server's side.
fn from_the_clients(c: &ClientSide) -> Vec<String> {
    [clients_counted(c), clients_held(c), both_doctors(c)]
        .into_iter()
        .flatten()
        .collect()
}

/// What a tally counts, in words (the text report's too).
pub(crate) fn counted(c: Counted) -> &'static str {
    match c {
        Counted::Connects => "connect()s",
        Counted::SynsResent => "SYNs sent again",
        Counted::Resets => "resets once connected",
    }
}

/// A tally in words: "120 connect()s (Tcp:ActiveOpens +120)".
fn tally(t: &Tally) -> String {
    let what = counted(t.what);
    let kernel = t
        .kernel
        .map(|k| format!("+{k}"))
        .unwrap_or_else(|| "unknown".into());
    format!("{} {what} ({} {kernel})", t.own, t.counter)
}

fn clients_counted(c: &ClientSide) -> Option<String> {
    let tallies = c.tallies();
    let all: Vec<String> = tallies.iter().map(tally).collect();
    let verdict = if tallies.iter().all(Tally::agrees) {
        "their kernel counted the same, since in a namespace of their own the clients' connections \
         are all it sees and it counts each of these events once"
            .to_string()
    } else {
        let off: Vec<&str> = tallies
            .iter()
            .filter(|t| !t.agrees())
            .map(|t| t.counter)
            .collect();
        format!(
            "not the same for {}: a counter this kernel lacks, or a client whose socket could not be \
             read ({} of them), counts differently",
            off.join(", "),
            c.recorded.unread
        )
    };
    Some(format!(
        "From the clients' namespace ({} → {} over a veth) the clients counted of themselves {}: {verdict}.",
        c.address,
        c.server,
        all.join(", ")
    ))
}

fn clients_held(c: &ClientSide) -> Option<String> {
    let v = c.seen.as_ref()?;
    if v.syn_retried_peak == 0 && v.unacked_peak == 0 {
        return Some(format!(
            "Their kernel never held a connect to {} sent again, nor a request unacknowledged: from \
             the clients' side the server kept up.",
            c.server
        ));
    }
    let never = v
        .never_acked_peak
        .map(|n| format!(", {n} of them never acknowledged a byte"))
        .unwrap_or_default();
    Some(format!(
        "At its worst reading their kernel held {} connect(s) to {} waiting for a SYN-ACK ({} with the SYN \
         sent again, up to {} time(s)) and {} established connection(s) with the request \
         unacknowledged{never}: the server's full queue seen from the other end, SYNs it dropped and \
         final ACKs it dropped.{}",
        v.syn_sent_peak,
        c.server,
        v.syn_retried_peak,
        v.syn_retrans_max,
        v.unacked_peak,
        match c.recorded.gave_up_unacked {
            0 => String::new(),
            n => format!(" {n} client(s) gave up waiting for a reply with nothing acknowledged."),
        }
    ))
}

fn both_doctors(c: &ClientSide) -> Option<String> {
    let a = &c.agreement;
    let ids = |v: &[RuleId]| v.iter().map(|i| i.as_str()).collect::<Vec<_>>().join(", ");
    let port = c.server.port();
    Some(match (a.server.is_empty(), a.clients.is_empty()) {
        (false, false) => format!(
            "doctor run in each namespace names the same burst: in the server's, {} on :{port}; in the \
             clients', {} for {}.",
            ids(&a.server),
            ids(&a.clients),
            c.server
        ),
        (true, true) => format!(
            "doctor in neither namespace names an overflow: the server's saw no full accept queue \
             on :{port}, the clients' no trouble reaching {}.",
            c.server
        ),
        (false, true) => format!(
            "doctor does not agree across the veth: the server's side names {} on :{port}, the \
             clients' side nothing for {}: its connections are read about every 100 ms, so a burst \
             shorter than that can pass between two readings.",
            ids(&a.server),
            c.server
        ),
        (true, false) => format!(
            "doctor does not agree across the veth: the clients' side names {} for {}, the server's \
             side no full accept queue on :{port}: the clients' trouble came from elsewhere.",
            ids(&a.clients),
            c.server
        ),
    })
}

/// A Unix listener: no handshake, no retry, no counter; only outcomes and the queue depth.
fn unix(f: &Facts) -> Vec<String> {
    [
        all_served(f),
        unix_refusals(f),
        unix_waits(f),
        unix_no_counter(f),
        capped(f),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn tcp(f: &Facts) -> Vec<String> {
    [
        all_served(f),
        served_slowly(f),
        resets(f),
        unread_close(f),
        overshoot(f),
        slow_connects(f),
        connect_timeouts(f),
        reply_timeouts(f),
        cookies(f),
        capped(f),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// What the paragraphs read from a report.
struct Facts<'a>(&'a LabReport);

impl Facts<'_> {
    fn n(&self, o: Outcome) -> usize {
        self.0.outcomes.get(&o).copied().unwrap_or(0)
    }

    /// A counter this kernel lacks is unknown, not 0: it decides nothing and reads "unknown".
    fn c(&self, k: &str) -> Option<u64> {
        self.0.counters.get(k).copied()
    }

    fn rose(&self, k: &str) -> bool {
        self.c(k).is_some_and(|v| v > 0)
    }

    fn shown(&self, k: &str) -> String {
        self.c(k)
            .map(|v| v.to_string())
            .unwrap_or_else(|| "unknown".into())
    }

    /// The accept queue's capacity, B+1.
    fn slots(&self) -> u32 {
        self.0.send_q.saturating_add(1)
    }
}

fn all_served(f: &Facts) -> Option<String> {
    (f.n(Outcome::Served) == f.0.settings.clients).then(|| {
        format!(
            "Every client was served: the accept queue (B = {}, so {} slots) absorbed the burst{}.",
            f.0.send_q,
            f.0.send_q + 1,
            match f.c(LISTEN_OVERFLOWS) {
                Some(0) => " without a single overflow",
                Some(_) => "; overflows that happened were retried in time",
                None => "",
            }
        )
    })
}

/// Served, but late (docs/kernel.md §11): a backlog large enough for the burst turns drops
/// into waits. Told once the median client waited as long as a client notices.
fn served_slowly(f: &Facts) -> Option<String> {
    let served = f.0.served_latency.as_ref()?;
    let notices = f64::from(crate::doctor::wait::WAIT_WARNING_MS);
    if served.p50_ms < notices {
        return None;
    }
    let s = &f.0.settings;
    let per_s = (s.work_ms > 0).then(|| s.workers as f64 * 1000.0 / s.work_ms as f64);
    let rate = per_s
        .map(|r| {
            format!(
                " {} worker(s) at {} ms a request serve about {r:.0} a second, so {} clients take about {:.1} s.",
                s.workers,
                s.work_ms,
                s.clients,
                s.clients as f64 / r
            )
        })
        .unwrap_or_default();
    let said =
        f.0.doctor
            .findings
            .iter()
            .find(|x| {
                matches!(
                    x.id,
                    RuleId::AcceptQueueStanding | RuleId::AcceptedNotServed
                )
            })
            .map(|x| format!(" doctor, during the burst, says {}.", x.id.as_str()))
            .unwrap_or_default();
    Some(format!(
        "The served clients waited: the median one got its reply after {:.1} s and the slowest after \
         {:.1} s: with a backlog of {} the burst waited in the accept queue (Recv-Q peaked at {}) instead of being dropped.{rate} A larger backlog \
         turns drops into waits; only accepting and serving faster shortens them.{said}",
        served.p50_ms / 1000.0,
        served.max_ms / 1000.0,
        f.0.send_q,
        f.0.peak_recv_q
    ))
}

fn resets(f: &Facts) -> Option<String> {
    let (s, reset) = (&f.0.settings, f.n(Outcome::Reset));
    let overflowed = f.rose(LISTEN_OVERFLOWS);
    if reset > 0 && s.tcp_abort_on_overflow == 1 {
        Some(format!(
            "{reset} client(s) got \"Connection reset by peer\" at once: their handshake's final ACK (carried by the \
             request, {} ms after connect() returned) found the accept queue full, and with \
             net.ipv4.tcp_abort_on_overflow=1 the kernel answers that with RST (EmbryonicRsts +{}).",
            s.ack_delay_ms,
            f.shown(EMBRYONIC_RSTS)
        ))
    } else if reset > 0 {
        Some(format!(
            "{reset} client(s) were reset although tcp_abort_on_overflow=0: late resets, when a half-open handshake \
             expired before room appeared, or the server closed with connections still queued."
        ))
    } else if s.tcp_abort_on_overflow == 0 && overflowed {
        Some(
            "The accept queue reset no client: with net.ipv4.tcp_abort_on_overflow=0 an overflow drops the segment and lets \
             the client retry, so it shows up as slow connects and stalls instead."
                .to_string(),
        )
    } else if s.tcp_abort_on_overflow == 1 && overflowed {
        Some(format!(
            "The accept queue reset no client even with tcp_abort_on_overflow=1: the overflows hit SYNs (dropped, then \
             retried) or cookie handshakes, and neither is ever answered with RST; only a final ACK that finds \
             the queue full on a half-open connection is. Here the final ACKs came {} ms after the SYN-ACK, \
             while the queue (peak {} of B+1 = {}) had room for them: a longer --ack-delay, a smaller \
             --backlog or more --clients make them meet a full queue.",
            s.ack_delay_ms,
            f.0.peak_recv_q,
            f.slots()
        ))
    } else if s.tcp_abort_on_overflow == 1 {
        Some(format!(
            "The accept queue reset no client although tcp_abort_on_overflow=1: the accept queue never overflowed (peak {} of \
             B+1 = {}), so no final ACK met a full queue; more --clients or a smaller --backlog make it happen.",
            f.0.peak_recv_q,
            f.slots()
        ))
    } else {
        None
    }
}

/// `--unread-close`: the replies arrived, then RST instead of FIN.
fn unread_close(f: &Facts) -> Option<String> {
    if !f.0.settings.unread_close {
        return None;
    }
    let n = f.n(Outcome::ResetAfterReply);
    (n > 0).then(|| {
        format!(
            "{n} client(s) got their reply and then \"Connection reset by peer\" instead of the end of the \
             stream: the server read 64 bytes of each 16 KB request and closed with the rest unread, and \
             close() on a socket with unread data sends RST (TCPAbortOnClose +{}). No queue is involved: \
             reading the whole request before closing (or shutdown(SHUT_WR), drain, close) ends it.",
            f.shown(ABORT_ON_CLOSE)
        )
    })
}

fn unix_refusals(f: &Facts) -> Option<String> {
    let n = f.n(Outcome::Eagain);
    (n > 0).then(|| {
        format!(
            "{n} non-blocking connect()s to the Unix listener failed at once with EAGAIN (\"Resource temporarily \
             unavailable\"{}): its queue already held B+1 = {} pending connections \
             (unix_stream_connect). Unlike TCP, nothing is retried: the client has its error in microseconds.",
            runtime::having(|r| r.quirks.unix_refusal.as_ref())
                .map(|(r, refusal)| format!("; {} logs it and answers {}", r.name, refusal.answers))
                .collect::<String>(),
            f.slots()
        )
    })
}

fn unix_waits(f: &Facts) -> Option<String> {
    let (timeouts, slow) = (
        f.n(Outcome::ConnectTimeout),
        f.0.connect_latency.as_ref().filter(|l| l.max_ms >= 1.0),
    );
    let waited = slow.map(|l| {
        format!(
            "Blocking connect()s waited in the kernel for room in the queue (unix_wait_for_peer): up to {:.0} ms.",
            l.max_ms
        )
    });
    let gave_up = (timeouts > 0).then(|| {
        format!(
            "{timeouts} blocking connect()s gave up after {} ms (SO_SNDTIMEO, then EAGAIN); without a timeout they \
             would have waited for ever.",
            f.0.settings.connect_timeout_ms
        )
    });
    match (waited, gave_up) {
        (None, None) => None,
        (a, b) => Some([a, b].into_iter().flatten().collect::<Vec<_>>().join(" ")),
    }
}

fn unix_no_counter(f: &Facts) -> Option<String> {
    let refused = f.n(Outcome::Eagain) + f.n(Outcome::ConnectTimeout);
    (refused > 0).then(|| {
        format!(
            "No counter moved: the kernel counts no refusal at a Unix listener (ListenOverflows, ListenDrops and \
             sk_drops stay at 0). Only the queue's depth tells: it peaked at {} of B+1 = {}.",
            f.0.peak_recv_q,
            f.slots()
        )
    })
}

fn overshoot(f: &Facts) -> Option<String> {
    (u64::from(f.0.peak_recv_q) > u64::from(f.0.send_q) + 1).then(|| {
        format!(
            "The accept queue peaked at {}, past its capacity B+1 = {}: the kernel checks for room without a \
             lock (sk_acceptq_is_full in tcp_v4_syn_recv_sock) and adds the connection later, so handshakes \
             completing at the same time on several CPUs can each pass the check (docs/kernel.md §1.2).",
            f.0.peak_recv_q,
            f.slots()
        )
    })
}

fn slow_connects(f: &Facts) -> Option<String> {
    let l = f.0.connect_latency.as_ref().filter(|l| l.max_ms >= 900.0)?;
    let why = if f.rose(REQQ_FULL_DROP) {
        format!(
            "a full SYN queue with tcp_syncookies=0 (TCPReqQFullDrop +{}) or a full accept queue (ListenOverflows +{})",
            f.shown(REQQ_FULL_DROP),
            f.shown(LISTEN_OVERFLOWS)
        )
    } else {
        format!(
            "a full accept queue (ListenOverflows +{})",
            f.shown(LISTEN_OVERFLOWS)
        )
    };
    Some(format!(
        "Connects were slow: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms. A SYN that meets {why} is dropped \
         silently, and the client resends it after 1 s, then at growing intervals.",
        l.p50_ms, l.p99_ms, l.max_ms
    ))
}

fn connect_timeouts(f: &Facts) -> Option<String> {
    let n = f.n(Outcome::ConnectTimeout);
    (n > 0).then(|| {
        format!(
            "{n} client(s) never completed connect() within {} ms: their SYNs kept meeting a full queue.",
            f.0.settings.connect_timeout_ms
        )
    })
}

fn reply_timeouts(f: &Facts) -> Option<String> {
    let n = f.n(Outcome::ReplyTimeout);
    (n > 0).then(|| {
        format!(
            "{n} client(s) ended {} (connected, no reply) after {} ms: connect() had succeeded, but their final \
             ACK or request was dropped at a full accept queue (or they waited behind {} busy worker(s)), so the \
             server never saw them in time.",
            Outcome::ReplyTimeout.as_str(),
            f.0.settings.reply_timeout_ms,
            f.0.settings.workers
        )
    })
}

fn cookies(f: &Facts) -> Option<String> {
    f.rose(SYNCOOKIES_RECV).then(|| {
        format!(
            "Handshakes went through SYN cookies (SYN queue full, tcp_syncookies={}; SyncookiesSent +{}, SyncookiesRecv \
             +{} segments): a cookie handshake is never reset on overflow; it stalls until room appears.",
            f.0.settings.tcp_syncookies,
            f.shown(SYNCOOKIES_SENT),
            f.shown(SYNCOOKIES_RECV)
        )
    })
}

fn capped(f: &Facts) -> Option<String> {
    let s = &f.0.settings;
    (f.0.send_q < s.backlog.max(0) as u32).then(|| {
        format!(
            "The backlog asked for ({}) was cut to {} by net.core.somaxconn={} at listen().",
            s.backlog, f.0.send_q, s.somaxconn
        )
    })
}

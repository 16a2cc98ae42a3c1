//! The connecting side's words: what happened to this namespace's connections, what the
//! client's code got for it (the errno and the wait), what the evidence can and cannot tell,
//! and each step as a sentence. Facts in, text out.

use super::{ClientFact, ECONNREFUSED, ECONNRESET, ETIMEDOUT, ServerView, SynSchedule};
use crate::doctor::remedy::{Action, Step};

/// The finding's sentence.
pub(super) fn summary(fact: &Option<ClientFact>) -> String {
    match fact {
        None => String::new(),
        Some(ClientFact::Unanswered { server, schedule }) => unanswered(server, *schedule),
        Some(ClientFact::Unacknowledged { server }) => unacknowledged(server),
        Some(ClientFact::Resets {
            count,
            from,
            traced,
        }) => resets(*count, from, *traced),
        Some(ClientFact::Refused {
            count,
            from,
            traced,
        }) => refused(*count, from, *traced),
        Some(ClientFact::PortsExhausted {
            server,
            range,
            low,
            high,
            addrnotavail,
        }) => ports(server, *range, *low, *high, addrnotavail),
        Some(ClientFact::ConntrackFull {
            count,
            max,
            dropped,
        }) => conntrack(*count, *max, *dropped),
    }
}

/// `1 s, 3 s, 7 s …`: the first resends, from the first SYN.
fn retry_steps(schedule: SynSchedule, n: usize) -> String {
    let all = schedule.resends();
    let steps: Vec<String> = all.iter().take(n).map(|t| format!("{t} s")).collect();
    let more = if all.len() > n { " …" } else { "" };
    format!("{}{more}", steps.join(", "))
}

/// `net.ipv4.tcp_syn_retries = 6, tcp_syn_linear_timeouts = 4`, as read.
fn schedule_read(s: SynSchedule) -> String {
    let mut parts = Vec::new();
    if let Some(r) = s.syn_retries {
        parts.push(format!("net.ipv4.tcp_syn_retries = {r}"));
    }
    if let Some(l) = s.syn_linear_timeouts {
        parts.push(format!("tcp_syn_linear_timeouts = {l}"));
    }
    match parts.is_empty() {
        true => "not read here: the defaults".into(),
        false => parts.join(", "),
    }
}

fn traced_connects(v: &ServerView) -> String {
    let Some(t) = &v.traced else {
        return String::new();
    };
    let mut s = String::new();
    if t.connected > 0 {
        s.push_str(&format!(" Traced: {} connects completed", t.connected));
        if let Some(p) = t.connect_ms {
            s.push_str(&format!(
                ", taking {} ms at the median, {} ms at p90, {} ms at most",
                p.p50, p.p90, p.max
            ));
        }
        s.push('.');
    }
    if t.syn_retransmits > 0 {
        s.push_str(&format!(
            " Traced: {} SYN(s) sent again.",
            t.syn_retransmits
        ));
    }
    let timed_out = t.errors.get(&ETIMEDOUT).copied().unwrap_or(0);
    if timed_out > 0 {
        s.push_str(&format!(
            " {timed_out} connect(s) failed with ETIMEDOUT (\"Connection timed out\")."
        ));
    }
    s
}

fn unanswered(v: &ServerView, schedule: SynSchedule) -> String {
    let resends = schedule.resends();
    let nth = usize::from(v.syn_retrans_max).clamp(1, resends.len().max(1));
    let waited = resends.get(nth - 1).copied().unwrap_or(1);
    let cause = if v.got_through_late() {
        let n = match &v.traced {
            Some(t) if t.connect_ms.is_some_and(|p| p.max >= 1000) => {
                "connects to it that had sent their SYN again".to_string()
            }
            _ => format!("at least {} connects to it", v.completed_late),
        };
        format!(
            "Meanwhile {n} completed: the server answers, but drops the SYNs that meet \
             its full accept queue, so the likeliest cause is that queue (a server that accepts \
             too slowly for the burst)."
        )
    } else {
        let before = match v.established_peak {
            Some(n) if n > 0 => format!(
                " ({n} connection(s) to it were established, none of them after the SYNs began \
                 to be sent again)"
            ),
            _ => String::new(),
        };
        format!(
            "No connect to it completed while they were sent again{before}: the server answers \
             no SYN. From this side these look alike: its accept queue is full and nothing \
             accepts (a stopped or hung server), its SYN queue is full without SYN cookies, or \
             a firewall or the network drops them."
        )
    };
    let gives_up = format!(
        "without a connect timeout, connect() fails with ETIMEDOUT after about {} s ({})",
        schedule.gives_up(),
        schedule_read(schedule)
    );
    format!(
        "Connects from this namespace to {} go unanswered: {} waited for a SYN-ACK at once, {} \
         of them sent their SYN again, up to {} time(s) each, {waited} s or more of waiting. \
         {cause} \
         What the client's code sees: connect() blocks while the SYN is sent again at {} from \
         the first; a connect timeout shorter than that ends it with a timeout error; \
         {gives_up}.{}",
        v.label(),
        v.syn_sent_peak,
        v.syn_retried_peak,
        v.syn_retrans_max,
        retry_steps(schedule, usize::from(v.syn_retrans_max).max(3)),
        traced_connects(v)
    )
}

fn unacknowledged(v: &ServerView) -> String {
    let never = match v.never_acked_peak {
        Some(n) if n > 0 => format!(
            " {n} of them never had a byte acknowledged: the server's application never got \
             the connection."
        ),
        _ => String::new(),
    };
    format!(
        "Connections from this namespace to {} are established, but what the client sent is \
         not acknowledged: {} connection(s) held their request unacknowledged, sent again up \
         to {} time(s).{never} The handshake completed on this side while the server dropped \
         its final ACK at a full accept queue (net.ipv4.tcp_abort_on_overflow = 0 there), so \
         the server's kernel has no connection to acknowledge the request with. What the \
         client's code sees: connect() succeeded and the request was written, then the read \
         waits: until its read timeout, until the server finally accepts, or with no timeout \
         for many minutes of retransmissions (tcp_retries2).",
        v.label(),
        v.unacked_peak,
        v.unacked_retrans_max
    )
}

/// `10.0.0.1:80 (12), 10.0.0.2:80 (3)` or the labels alone.
fn servers_list(from: &[(String, Option<u64>)]) -> String {
    from.iter()
        .map(|(s, n)| match n {
            Some(n) => format!("{s} ({n})"),
            None => s.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn resets(count: u64, from: &[(String, Option<u64>)], traced: bool) -> String {
    let whose = if traced {
        format!(
            "Traced, each with the server it came from: {} (errno {ECONNRESET}).",
            servers_list(from)
        )
    } else {
        format!(
            "The counter names no socket; the servers this namespace had trouble with are {}. \
             A server resets the final ACK it cannot queue when its \
             net.ipv4.tcp_abort_on_overflow is 1. `doctor --trace` ties each reset to its \
             server.",
            servers_list(from)
        )
    };
    format!(
        "{count} connection(s) of this namespace were reset by their peer once connected \
         (EstabResets). {whose} What the client's code sees: ECONNRESET (\"Connection reset by \
         peer\"). The reset follows the handshake by one round trip, so it surfaces in connect() \
         itself when it arrives before the code looks at the connect's result (a nonblocking \
         connect's SO_ERROR, a blocking one not yet woken), else at the first read or write."
    )
}

fn refused(count: u64, from: &[(String, Option<u64>)], traced: bool) -> String {
    let whose = match (traced, from.is_empty()) {
        (true, _) => format!(
            "Traced, with the server that refused: {} (errno {ECONNREFUSED}).",
            servers_list(from)
        ),
        (false, false) => format!(
            "The counter names no socket; the server named is {}.",
            servers_list(from)
        ),
        (false, true) => "The counter names no socket (`doctor --trace` names each server).".into(),
    };
    format!(
        "{count} connect(s) from this namespace failed at once, with no SYN sent again \
         (AttemptFails): refused, most often by a server where nothing listens on the port \
         (it answers the SYN with RST). {whose} What the client's code sees: connect() fails \
         at once with ECONNREFUSED (\"Connection refused\")."
    )
}

fn ports(
    v: &ServerView,
    range: u32,
    low: u32,
    high: u32,
    failed: &[crate::model::ConnectErrors],
) -> String {
    let traced = match failed.iter().map(|e| e.count).sum::<u64>() {
        0 => "No counter counts these failures; `doctor --trace` counts them per process.".into(),
        n => format!(
            "Traced: connect() failed with EADDRNOTAVAIL {n} time(s) in the window ({}).",
            by_process(failed)
        ),
    };
    let tw = match v.time_wait_peak {
        Some(n) if n > 0 => format!(", {n} of them in TIME_WAIT (this side closed first)"),
        _ => String::new(),
    };
    format!(
        "Connections from this namespace to {} hold {} local port(s) of the {range} that \
         net.ipv4.ip_local_port_range ({low}-{high}) gives{tw}. A local port serves one \
         connection to one server at a time, TIME_WAIT included (60 s), so once they are all \
         held, what the client's code sees: connect() fails at once with EADDRNOTAVAIL \
         (\"Cannot assign requested address\"). {traced}",
        v.label(),
        v.ports_held_peak
    )
}

fn conntrack(count: Option<u32>, max: Option<u32>, dropped: u64) -> String {
    let table = match (count, max) {
        (Some(c), Some(m)) => format!("the connection-tracking table holds {c} of {m} flows"),
        _ => "the connection-tracking table's size is unknown".into(),
    };
    let drops = if dropped > 0 {
        format!("; {dropped} new flow(s) were dropped or evicted for want of room in the window")
    } else {
        String::new()
    };
    format!(
        "On this host {table}{drops}. A full table drops new connections' first packets \
         without a word: what the client's code sees is a connect that waits for a SYN-ACK \
         and times out, as with a server that does not answer."
    )
}

/// `python3 4242 ×20, curl 77 ×1`, the biggest first, five at most.
fn by_process(errors: &[crate::model::ConnectErrors]) -> String {
    let mut sorted: Vec<&crate::model::ConnectErrors> = errors.iter().collect();
    sorted.sort_by_key(|e| (std::cmp::Reverse(e.count), e.pid));
    let mut parts: Vec<String> = sorted
        .iter()
        .take(5)
        .map(|e| format!("{} {} ×{}", e.comm, e.pid, e.count))
        .collect();
    if sorted.len() > 5 {
        parts.push(format!("{} more process(es)", sorted.len() - 5));
    }
    parts.join(", ")
}

/// A step's sentence.
pub(super) fn step(s: &Step) -> String {
    let cmd = |text: String| match &s.command {
        Some(c) => format!("{text}: `{c}`"),
        None => text,
    };
    match &s.action {
        Action::DiagnoseServer { server } => cmd(format!(
            "on the server, if it is yours, diagnose its listener on port {} during a burst",
            server.port()
        )),
        Action::ClientTimeouts { schedule } => {
            let r = schedule.resends();
            let second = r.get(1).copied().unwrap_or(3);
            format!(
                "in the client: give connects a timeout between the SYN retry steps ({second}.5 s waits \
                 out two resends, at {}; without one connect() waits about {} s), retry a \
                 failed connect with exponential backoff and jitter, bound the connects in \
                 flight to one server, and give reads a timeout",
                retry_steps(*schedule, 2),
                schedule.gives_up()
            )
        }
        Action::ReuseConnections => "in the client: reuse connections (a connection pool, HTTP \
                                     keep-alive) instead of one connection per request, so a \
                                     burst of requests needs few connects"
            .into(),
        Action::WidenPortRange { low, high } => cmd(format!(
            "widen the local port range to {low}-{high}, the kernel's default, in this namespace"
        )),
        Action::TwReuse => cmd(
            "only if the server is reached over a path that keeps TCP timestamps: let connect() \
             reuse ports in TIME_WAIT"
                .into(),
        ),
        Action::ConntrackMax { value } => cmd(format!(
            "raise the host's connection-tracking table to {value} flows (it is the host's, \
             shared by every namespace)"
        )),
        Action::FindRefusedConnects => "check the address and port the client connects to, and \
                                        that the server runs and listens there"
            .into(),
        _ => String::new(),
    }
}

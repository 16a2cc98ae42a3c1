//! Every word of the picture: the heading, the sentences that replace empty axes, the charts'
//! captions, legends and axis labels, from the plot model's numbers and typed facts. No
//! drawing here, and no decision: what is said was decided in `plot`.

use crate::lab::{LabReport, Outcome};
use crate::model::NetnsLabel;
use crate::plot::{
    Clients, Drops, Instead, ListenerId, ListenerPlot, RatePlot, Recording, RemotePlot, Timeline,
    WaitPlot,
};
use crate::render::severity_word;

/// `127.0.0.1:8100 (nginx, pid 12)`: a listener as the picture names it.
pub(super) fn listener(id: &ListenerId) -> String {
    match crate::model::process_label(&id.owners) {
        Some(p) => format!("{} ({p})", id.local),
        None => id.local.to_string(),
    }
}

/// `TcpExt:ListenOverflows` as users read it: `ListenOverflows`.
fn counter(key: &str) -> &str {
    key.split_once(':').map(|(_, n)| n).unwrap_or(key)
}

/// First line: what is drawn (`127.0.0.1:8090 (python3, pid 13077)`, or a count), after the
/// lab's setup in a lab's picture.
pub(super) fn title(t: &Timeline, lab: Option<&LabReport>) -> String {
    let what = match t.listeners.as_slice() {
        [] => "no listener in scope".to_string(),
        [one] => listener(&one.id),
        many => format!(
            "{} listeners: {}",
            many.len(),
            many.iter()
                .map(|l| l.id.local.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    match lab {
        None => format!("Accept queue of {what}"),
        Some(r) => format!("{}: {what}", lab_setup(r)),
    }
}

fn lab_setup(r: &LabReport) -> String {
    let s = &r.settings;
    format!(
        "lab: {} clients, listen({}) → B = {}, {} workers × {} ms",
        s.clients, s.backlog, r.send_q, s.workers, s.work_ms
    )
}

/// Second line: kernel, namespace, window.
pub(super) fn subtitle(r: &Recording) -> String {
    let window = match r.window_ms {
        0 => "one sample".to_string(),
        ms => format!("{} window, {} samples", window_length(ms), r.samples),
    };
    format!(
        "kernel {} · network namespace {} · {window} · recorded {}",
        r.kernel.as_deref().unwrap_or("unknown"),
        r.netns.label(NetnsLabel::Short),
        crate::model::rfc3339(r.started_unix_ms)
    )
}

fn window_length(ms: u64) -> String {
    match ms {
        ms if ms >= 10_000 => format!("{:.0} s", ms as f64 / 1000.0),
        ms if ms >= 1_000 => format!("{:.1} s", ms as f64 / 1000.0),
        ms => format!("{ms} ms"),
    }
}

/// Third line: doctor's verdict on the same data, with the problems' ids, and the listeners
/// left out.
pub(super) fn verdict(t: &Timeline) -> String {
    let ids: Vec<&str> = t.problems.iter().map(|id| id.as_str()).collect();
    let mut line = format!(
        "doctor: {}{}",
        severity_word(t.verdict),
        match ids.is_empty() {
            true => ": no problem found".to_string(),
            false => format!(": {}", ids.join(", ")),
        }
    );
    if t.left_out > 0 {
        line.push_str(&format!(
            " · {} more listener(s) not drawn (name them as TARGET)",
            t.left_out
        ));
    }
    line
}

/// The sentences that replace the axes, when the model says there is nothing to draw.
pub(super) fn instead(t: &Timeline) -> Option<Vec<String>> {
    Some(match t.instead.as_ref()? {
        Instead::NoListener { unmatched } => no_listener(unmatched),
        Instead::OneSample => one_sample(&t.listeners),
        Instead::Quiet { drops_counted } => quiet(t, *drops_counted),
    })
}

fn no_listener(unmatched: &[crate::model::Target]) -> Vec<String> {
    let mut m = vec!["No listener in scope: nothing to draw.".to_string()];
    if !unmatched.is_empty() {
        let targets: Vec<String> = unmatched.iter().map(|t| t.to_string()).collect();
        m.push(format!(
            "Nothing listens on {} in this network namespace.",
            targets.join(", ")
        ));
    }
    m
}

fn one_sample(listeners: &[ListenerPlot]) -> Vec<String> {
    let at_instant = |l: &ListenerPlot| {
        format!(
            "{}: Recv-Q {} of B+1 = {}{}{}{}.",
            listener(&l.id),
            l.peak,
            l.capacity,
            if l.full { " (full)" } else { "" },
            l.drops_ever
                .map(|d| format!(", {d} drops since the socket was created"))
                .unwrap_or_default(),
            l.wait
                .as_ref()
                .map(|w| w.last)
                .filter(|w| w.any())
                .map(|w| format!(
                    ", {} clients waiting ({} after accept), the oldest for {}",
                    w.waiting(),
                    w.unanswered,
                    duration(f64::from(w.oldest_ms()))
                ))
                .unwrap_or_default()
        )
    };
    let mut m = vec![
        "One sample (a snapshot without --window): no time axis to draw. At that instant:"
            .to_string(),
    ];
    m.extend(listeners.iter().map(at_instant));
    m.push("Record a window to see the burst: backlogctl snapshot --window 10s -o FILE, or watch --record FILE.".into());
    m
}

fn quiet(t: &Timeline, drops_counted: bool) -> Vec<String> {
    let mut m = vec![format!(
        "Nothing happened in this {:.1} s window: the accept queue stayed empty, {}.",
        t.recording.window_ms as f64 / 1000.0,
        if drops_counted {
            "nothing was dropped"
        } else {
            "and no drop was seen where drops are counted"
        }
    )];
    m.extend(t.listeners.iter().map(|l| {
        format!(
            "{}: Recv-Q 0 throughout, of B+1 = {}; drops {}{}.",
            listener(&l.id),
            l.capacity,
            match l.drops {
                Drops::Counted { .. } => "+0",
                Drops::Unreported => "unknown",
                Drops::NotCounted => "not counted (Unix listener)",
            },
            match l.wait {
                Some(_) => "; no client waited",
                None => "",
            }
        )
    }));
    let counters: Vec<&str> = t.rates.iter().map(|r| counter(r.counter)).collect();
    if !counters.is_empty() {
        m.push(format!("{} did not rise.", counters.join(", ")));
    }
    m
}

/// The queue chart's caption: the listener, and doctor's problems with it.
pub(super) fn queue_caption(l: &ListenerPlot) -> String {
    let label = listener(&l.id);
    match l.findings.is_empty() {
        true => label,
        false => {
            let findings: Vec<String> = l
                .findings
                .iter()
                .map(|(severity, id)| format!("{} {}", severity_word(*severity), id.as_str()))
                .collect();
            format!("{label}: {}", findings.join(", "))
        }
    }
}

pub(super) const QUEUE_AXIS: &str = "connections";
pub(super) const QUEUE_LEGEND: &str = "Recv-Q: connections waiting for accept()";
pub(super) const SYN_RECV_LEGEND: &str = "SYN_RECV (half-open handshakes, where counted)";

pub(super) fn capacity_legend(l: &ListenerPlot) -> String {
    format!(
        "B+1 = {}: the accept queue is full (B = Send-Q = {})",
        l.capacity, l.backlog
    )
}

/// `peak 17 at 0.42 s: full`.
pub(super) fn peak(l: &ListenerPlot, at_s: f64) -> String {
    format!(
        "peak {} at {:.2} s{}",
        l.peak,
        at_s,
        if l.full { ": full" } else { "" }
    )
}

pub(super) const DROPS_UNKNOWN: &str =
    "drops unknown: this kernel does not report SK_MEMINFO_DROPS";

/// The drops lane of a Unix listener: why it has no bars, and what shows a refusal instead.
pub(super) const DROPS_NOT_COUNTED: [&str; 2] = [
    "drops are not counted for Unix listeners: a full queue refuses connect() (EAGAIN at once",
    "for a non-blocking client) and no counter moves; the queue reaching B+1 above is the evidence",
];

pub(super) fn drops_axis(column_ms: f64) -> String {
    format!("drops / {}", duration(column_ms))
}

/// What the drop bars add up to, and what they are not.
pub(super) fn drops_note(total: u64) -> String {
    match total {
        0 => "no segment dropped at this listener in the window".to_string(),
        n => format!(
            "{n} segments dropped at this listener (sk_drops, SYN retransmits included: not clients)"
        ),
    }
}

pub(super) const WAIT_AXIS: &str = "waited (s)";
/// The accept queue's line: exact for TCP, a lower bound for a Unix listener.
pub(super) fn accept_queue_wait_legend(w: &WaitPlot) -> &'static str {
    match w.at_least {
        false => "oldest in the accept queue (connected, not accept()ed)",
        true => "oldest pending connection, at least (seen pending across readings)",
    }
}
pub(super) const AFTER_ACCEPT_WAIT_LEGEND: &str =
    "oldest after accept() (request in, nothing sent back)";

/// The line at the wait clients notice.
pub(super) fn wait_notice_legend(ms: u32) -> String {
    format!("{}: clients notice (doctor warns)", duration(f64::from(ms)))
}

/// What the wait lane shows, in its corner: the longest wait and when, or that none waited.
pub(super) fn wait_note(w: &WaitPlot) -> String {
    match w.longest_s {
        0.0 => format!(
            "the clients' wait: no client waited at any of the {} readings",
            w.readings
        ),
        s => format!(
            "the clients' wait, read {} times: the longest {}{}, read at {:.2} s",
            w.readings,
            if w.at_least { "at least " } else { "" },
            duration(s * 1000.0),
            w.longest_t_us as f64 / 1e6
        ),
    }
}

pub(super) const RATES_CAPTION: &str =
    "The namespace's counters (every listener in it): rises per second";
pub(super) const RATES_AXIS: &str = "per second";
pub(super) const TIME_AXIS: &str = "time since the recording started";

pub(super) fn rate_legend(r: &RatePlot) -> String {
    format!("{} (+{} in the window)", counter(r.counter), r.total)
}

/// A time-axis label with as many decimals as the window needs: a 35 ms window is not
/// "0.0 s" at every tick.
pub(super) fn time_label(x: f64, span_s: f64) -> String {
    if span_s >= 10.0 {
        format!("{x:.0} s")
    } else if span_s >= 1.0 {
        format!("{x:.1} s")
    } else if span_s >= 0.01 {
        format!("{:.0} ms", x * 1000.0)
    } else {
        format!("{:.1} ms", x * 1000.0)
    }
}

/// A value-axis label: whole numbers on tall axes, decimals on short ones (where ticks fall
/// between whole numbers), without trailing zeros, so no two ticks read the same.
pub(super) fn amount(y: f64, top: f64) -> String {
    let decimals = if top >= 20.0 {
        0
    } else if top >= 2.0 {
        1
    } else {
        2
    };
    let text = format!("{y:.decimals$}");
    match text.contains('.') {
        true => text.trim_end_matches('0').trim_end_matches('.').to_string(),
        false => text,
    }
}

/// `10 ms`, `1.5 ms`, `250 µs`, `2.0 s`.
pub(super) fn duration(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else if ms >= 1.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.0} µs", ms * 1000.0)
    }
}

pub(super) const OUTCOMES_CAPTION: &str = "What the clients saw";

/// The lab's outcome classes as a reader says them.
pub(super) fn outcome(o: Outcome) -> &'static str {
    match o {
        Outcome::ConnectTimeout => "connect timed out",
        Outcome::ReplyTimeout => "connected, no reply",
        other => other.as_str(),
    }
}

pub(super) fn latency_caption(c: &Clients) -> String {
    format!(
        "How long connect() took: {} connected, {} never did",
        c.connected, c.not_connected
    )
}

pub(super) const LATENCY_COUNT_AXIS: &str = "clients";
pub(super) const LATENCY_AXIS: &str = "connect latency (log scale)";
pub(super) const SYN_RETRANSMITS: &str = "SYN dropped, resent after 1 s (then 1 s apart) →";

/// `lab --veth`: the clients' namespace's lane.
pub(super) fn remote_caption(r: &RemotePlot) -> String {
    format!(
        "The clients' namespace: its connections to {} ({} readings)",
        r.server, r.readings
    )
}

pub(super) const SYN_SENT_LEGEND: &str = "SYN_SENT: connects waiting for a SYN-ACK";
pub(super) const SYN_RETRIED_LEGEND: &str = "of them, SYN sent again";
pub(super) const UNACKED_LEGEND: &str = "established, request unacknowledged";

/// doctor's verdict in the clients' namespace, and its problems.
pub(super) fn remote_verdict(r: &RemotePlot) -> String {
    let ids: Vec<&str> = r.problems.iter().map(|i| i.as_str()).collect();
    format!(
        "doctor there: {}{}",
        severity_word(r.verdict),
        if ids.is_empty() {
            String::new()
        } else {
            format!(": {}", ids.join(", "))
        }
    )
}

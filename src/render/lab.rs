//! lab's report into a writer: the settings, what every client saw, the kernel's side, the
//! story, and doctor's findings during the burst; with `--veth`, the clients' namespace too.

use std::io::Write;

use crate::doctor::Report;
use crate::lab::{ClientSide, LabFamily, LabReport, counted};

pub(crate) fn text(w: &mut dyn Write, r: &LabReport, style: super::Style) -> std::io::Result<()> {
    settings(w, r, style)?;
    writeln!(w)?;
    clients(w, r)?;
    writeln!(w)?;
    kernel(w, r, style)?;
    writeln!(w)?;
    if let Some(c) = &r.client_side {
        clients_namespace(w, c, style)?;
        writeln!(w)?;
    }
    writeln!(w, "What happened:")?;
    for line in &r.story {
        super::wrap_block(w, style.width, line, "  - ", "    ")?;
    }
    writeln!(w)?;
    doctor(w, r)
}

/// What the lab ran, and how long it took.
fn settings(w: &mut dyn Write, r: &LabReport, style: super::Style) -> std::io::Result<()> {
    let s = &r.settings;
    // The TCP sysctls and the held-back ACK mean nothing to a Unix listener.
    let family = match s.family {
        LabFamily::Tcp => format!(
            "tcp_abort_on_overflow={}, tcp_syncookies={}, ack delay {} ms{}",
            s.tcp_abort_on_overflow,
            s.tcp_syncookies,
            s.ack_delay_ms,
            if s.unread_close {
                ", the server reads 64 bytes of each 16 KB request and closes"
            } else {
                ""
            }
        ),
        LabFamily::Unix => {
            "a Unix stream listener, 3 in 4 clients non-blocking, 1 in 4 blocking".to_string()
        }
    };
    let head = format!(
        "lab: {} clients against listen({}) with somaxconn {} (B = {}), {} workers x {} ms, \
         {family}{}",
        s.clients,
        s.backlog,
        s.somaxconn,
        r.send_q,
        s.workers,
        s.work_ms,
        if s.user_namespace {
            " (user namespace)"
        } else {
            ""
        }
    );
    super::wrap_block(w, style.width, &head, "", "  ")?;
    writeln!(w, "finished in {:.1} s", r.elapsed_ms as f64 / 1000.0)
}

/// What the clients saw: how many of each outcome, and their connect latency.
fn clients(w: &mut dyn Write, r: &LabReport) -> std::io::Result<()> {
    writeln!(w, "Clients:")?;
    for (k, v) in &r.outcomes {
        writeln!(w, "  {:<16} {v:>6}", k.as_str())?;
    }
    if let Some(p) = &r.connect_latency {
        writeln!(
            w,
            "  connect latency  p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
            p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms
        )?;
    }
    Ok(())
}

/// The kernel's side: the queues' peaks and the counters that moved.
fn kernel(w: &mut dyn Write, r: &LabReport, style: super::Style) -> std::io::Result<()> {
    writeln!(
        w,
        "Kernel ({}):",
        if r.client_side.is_some() {
            "the server's namespace"
        } else {
            "lab namespace"
        }
    )?;
    writeln!(
        w,
        "  accept queue peak {} of {} (B+1){}, SYN_RECV peak {}",
        r.peak_recv_q,
        r.send_q.saturating_add(1),
        if u64::from(r.peak_recv_q) > u64::from(r.send_q) + 1 {
            " (past it: concurrent handshakes, see below)"
        } else {
            ""
        },
        r.peak_syn_recv
            .map(|p| p.to_string())
            .unwrap_or_else(|| "not counted".into())
    )?;
    let counters: Vec<String> = r
        .counters
        .iter()
        .map(|(k, v)| format!("{k} +{v}"))
        .collect();
    super::wrap_block(w, style.width, &counters.join(", "), "  ", "    ")
}

/// `--veth`: the clients' namespace — their own counts beside their kernel's, its highest
/// readings of their connections to the server, the other counters that moved there.
fn clients_namespace(
    w: &mut dyn Write,
    c: &ClientSide,
    style: super::Style,
) -> std::io::Result<()> {
    writeln!(
        w,
        "Clients' namespace ({} -> {} over a veth):",
        c.address, c.server
    )?;
    writeln!(
        w,
        "  {:<28} {:>6}   their kernel",
        "the clients counted", ""
    )?;
    for t in c.tallies() {
        let what = counted(t.what);
        let kernel = t
            .kernel
            .map(|k| format!("+{k}"))
            .unwrap_or("unknown".into());
        writeln!(w, "  {what:<28} {:>6}   {} {kernel}", t.own, t.counter)?;
    }
    if let Some(v) = &c.seen {
        writeln!(
            w,
            "  peaks: SYN_SENT {} ({} sent again), established {}, request unacknowledged {}{}",
            v.syn_sent_peak,
            v.syn_retried_peak,
            v.established_peak
                .map(|n| n.to_string())
                .unwrap_or_else(|| "not read".into()),
            v.unacked_peak,
            v.never_acked_peak
                .map(|n| format!(" ({n} never acknowledged)"))
                .unwrap_or_default()
        )?;
    }
    let shown: Vec<&str> = c.tallies().iter().map(|t| t.counter).collect();
    let others: Vec<String> = c
        .counters
        .iter()
        .filter(|(k, _)| !shown.contains(&k.as_str()))
        .map(|(k, v)| format!("{k} +{v}"))
        .collect();
    super::wrap_block(w, style.width, &others.join(", "), "  ", "    ")
}

/// doctor's verdict during the burst, and the ids of its findings; with `--veth`, in each
/// namespace.
fn doctor(w: &mut dyn Write, r: &LabReport) -> std::io::Result<()> {
    match &r.client_side {
        None => verdict(w, "doctor during the burst", &r.doctor),
        Some(c) => {
            verdict(w, "doctor in the server's namespace", &r.doctor)?;
            verdict(w, "doctor in the clients' namespace", &c.doctor)?;
            writeln!(
                w,
                "the two {} on the burst",
                if c.agreement.agree {
                    "agree"
                } else {
                    "disagree"
                }
            )
        }
    }
}

fn verdict(w: &mut dyn Write, label: &str, report: &Report) -> std::io::Result<()> {
    // Problems only: an OK finding (what clients see) is not one.
    let ids: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| f.severity > crate::doctor::Severity::Ok)
        .map(|f| f.id.as_str())
        .collect();
    writeln!(
        w,
        "{label}: {}: {}",
        super::severity_word(report.verdict),
        if ids.is_empty() {
            "no findings".into()
        } else {
            ids.join(", ")
        }
    )
}

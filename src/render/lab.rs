//! lab's report into a writer: the settings, what every client saw, the kernel's side, the
//! story, and doctor's findings during the burst.

use std::io::Write;

use crate::lab::{LabFamily, LabReport};

pub(crate) fn text(w: &mut dyn Write, r: &LabReport, style: super::Style) -> std::io::Result<()> {
    settings(w, r, style)?;
    writeln!(w)?;
    clients(w, r)?;
    writeln!(w)?;
    kernel(w, r, style)?;
    writeln!(w)?;
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
    writeln!(w, "Kernel (lab namespace):")?;
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

/// doctor's verdict during the burst, and the ids of its findings.
fn doctor(w: &mut dyn Write, r: &LabReport) -> std::io::Result<()> {
    // Problems only: an OK finding (what clients see) is not one.
    let ids: Vec<&str> = r
        .doctor
        .findings
        .iter()
        .filter(|f| f.severity > crate::doctor::Severity::Ok)
        .map(|f| f.id.as_str())
        .collect();
    writeln!(
        w,
        "doctor during the burst: {}: {}",
        super::severity_word(r.doctor.verdict),
        if ids.is_empty() {
            "no findings".into()
        } else {
            ids.join(", ")
        }
    )
}

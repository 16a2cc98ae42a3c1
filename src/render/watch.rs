//! `watch` into a writer: a table redrawn in place on a terminal, one line per listener per
//! refresh otherwise, or JSON lines; then the summary.

use std::io::Write;

use crate::catalogue::{WATCH_RATES, short};
use crate::model::QueuePeak;
use crate::watch::{Format, ListenerSummary, Refresh, Summary};

// Long on purpose: one arm per output format.
pub fn refresh(out: &mut dyn Write, r: &Refresh, format: Format) -> std::io::Result<()> {
    let opt = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
    let dps = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into());
    match format {
        Format::Json => {
            serde_json::to_writer(&mut *out, r)?;
            writeln!(out)?;
            out.flush()
        }
        Format::Lines => {
            writeln!(out, "{} namespace {}", r.time, namespace_rates(r, "="))?;
            for l in &r.listeners {
                writeln!(
                    out,
                    "{} {} recv_q={} peak={} send_q={} fill={}% drops/s={} syn_recv={}{}{}",
                    r.time,
                    l.local,
                    l.recv_q,
                    l.peak,
                    l.send_q,
                    l.fill_pct,
                    dps(l.drops_per_s),
                    opt(l.syn_recv),
                    l.process
                        .as_ref()
                        // Quoted: the label has spaces ("nginx, pids 12-15").
                        .map(|p| format!(" process={p:?}"))
                        .unwrap_or_default(),
                    l.event.map(|e| format!(" {e}")).unwrap_or_default(),
                )?;
            }
            out.flush()
        }
        Format::Tty { color, rows, width } => {
            // Home, clear: redraw in place.
            write!(out, "\x1b[H\x1b[2J")?;
            // The namespace rates go below the title when both do not fit.
            let title = format!("backlogctl watch {}", r.time.get(11..19).unwrap_or(&r.time));
            let rates = namespace_rates(r, " ");
            let header_lines = if title.len() + 2 + rates.len() <= width {
                writeln!(out, "{title}  {rates}")?;
                1
            } else {
                writeln!(out, "{title}")?;
                let mut lines = Vec::new();
                super::wrap_block(&mut lines, width, &rates, "", "")?;
                out.write_all(&lines)?;
                1 + lines.iter().filter(|b| **b == b'\n').count()
            };
            // Numbers keep their columns; the listener and process columns share what is left,
            // an address cut with "…" rather than pushing the row past the width.
            let avail = width.saturating_sub(NUMBERS + 2);
            let lw = if avail >= 30 {
                22.min(avail - 12)
            } else {
                avail.min(24)
            };
            let pw = avail.saturating_sub(lw + 1).min(18);
            let fit = |s: &str, w: usize| -> String {
                if s.chars().count() <= w {
                    s.to_string()
                } else {
                    let cut: String = s.chars().take(w.saturating_sub(1)).collect();
                    format!("{cut}…")
                }
            };
            let process = |p: &str| -> String {
                if pw < 6 {
                    String::new()
                } else {
                    format!(" {:<pw$}", fit(p, pw))
                }
            };
            writeln!(
                out,
                "{:<lw$}{} {:>7} {:>7} {:>7} {:>6} {:>8} {:>8}",
                "LISTENER",
                process("PROCESS"),
                "RECV-Q",
                "PEAK",
                "SEND-Q",
                "FILL",
                "DROPS/s",
                "SYN_RECV"
            )?;
            let room = rows.saturating_sub(3 + header_lines).max(1);
            for l in r.listeners.iter().take(room) {
                let line = format!(
                    "{:<lw$}{} {:>7} {:>7} {:>7} {:>5}% {:>8} {:>8}{}",
                    fit(&l.local.to_string(), lw),
                    process(l.process.as_deref().unwrap_or("?")),
                    l.recv_q,
                    l.peak,
                    l.send_q,
                    l.fill_pct,
                    dps(l.drops_per_s),
                    opt(l.syn_recv),
                    l.event.map(|e| format!("  {e}")).unwrap_or_default()
                );
                let q = QueuePeak {
                    peak: l.peak,
                    backlog: l.send_q,
                };
                let hot = l.drops_per_s.is_some_and(|d| d > 0.0) || q.full();
                if color && hot {
                    writeln!(out, "\x1b[1;31m{line}\x1b[0m")?;
                } else if color && q.nearly_full() {
                    writeln!(out, "\x1b[33m{line}\x1b[0m")?;
                } else {
                    writeln!(out, "{line}")?;
                }
            }
            if r.listeners.len() > room {
                writeln!(
                    out,
                    "... {} more listener(s) not shown (quieter ones)",
                    r.listeners.len() - room
                )?;
            }
            out.flush()
        }
    }
}

/// Columns taken by the numbers of a watch row: Recv-Q, peak, Send-Q, fill, drops/s and
/// SYN_RECV with the spaces before them.
const NUMBERS: usize = 7 + 7 + 7 + 6 + 8 + 8 + 6;

/// `ListenOverflows=3/s ListenDrops=3/s ... sampling=10ms`, with `sep` between name and value.
fn namespace_rates(r: &Refresh, sep: &str) -> String {
    let mut parts: Vec<String> = WATCH_RATES
        .iter()
        .map(|k| {
            let name = short(k);
            let v = r
                .rates
                .get(name)
                .map(|v| format!("{v:.0}/s"))
                .unwrap_or_else(|| "-".into());
            format!("{name}{sep}{v}")
        })
        .collect();
    parts.push(format!("sampling{sep}{}", period(r.sample_interval_us)));
    parts.join(if sep == "=" { " " } else { "  " })
}

fn period(us: u64) -> String {
    if us >= 1000 {
        format!("{}ms", us / 1000)
    } else {
        format!("{us}us")
    }
}

pub fn summary(out: &mut dyn Write, s: &Summary, format: Format) -> std::io::Result<()> {
    if format == Format::Json {
        serde_json::to_writer(&mut *out, &serde_json::json!({ "summary": s }))?;
        return writeln!(out);
    }
    writeln!(out)?;
    writeln!(
        out,
        "Summary: {} refresh(es), {} samples over {:.1} s",
        s.refreshes,
        s.samples,
        s.elapsed_ms as f64 / 1000.0
    )?;
    // Listeners that never queued or dropped anything are counted, not listed.
    let busy: Vec<&ListenerSummary> = s
        .listeners
        .iter()
        .filter(|l| l.peak > 0 || l.drops.is_some_and(|d| d > 0))
        .collect();
    for l in &busy {
        writeln!(
            out,
            "  {} (inode {}): peak Recv-Q {} of {} at {}, drops {}",
            l.local,
            l.inode,
            l.peak,
            l.send_q.saturating_add(1),
            l.peak_time,
            l.drops
                .map(|d| d.to_string())
                .unwrap_or_else(|| "unknown".into())
        )?;
    }
    if busy.len() < s.listeners.len() {
        writeln!(
            out,
            "  {} listener(s) stayed empty",
            s.listeners.len() - busy.len()
        )?;
    }
    if !s.totals.is_empty() {
        let t: Vec<String> = s.totals.iter().map(|(k, v)| format!("{k} +{v}")).collect();
        writeln!(out, "  namespace: {}", t.join(", "))?;
    }
    match &s.worst {
        Some(w) => writeln!(out, "  worst moment: {}: {}", w.time, w.what),
        None => writeln!(
            out,
            "  worst moment: none, no listener filled up or dropped"
        ),
    }
}

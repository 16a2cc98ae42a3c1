//! `metrics`: the last sample of a snapshot in the Prometheus text exposition format (0.0.4),
//! for node_exporter's textfile collector or a scrape wrapper. Per-listener queue length,
//! backlog, drops and SYN_RECV (node_exporter has no per-listener drop metric), the
//! listen-related TcpExt counters and the sysctls. A value we do not have is left out, never
//! written as 0. Pure: formats into a writer.

use std::io::{self, Write};

use crate::catalogue;
use crate::model::Snapshot;

// Long on purpose: the exposition, family by family, in the order it is written.
pub fn write(w: &mut dyn Write, snap: &Snapshot) -> io::Result<()> {
    let Some(sample) = snap.last() else {
        return Ok(());
    };
    let netns = snap.netns.inode.map(|i| i.to_string()).unwrap_or_default();
    let owners = snap.owners_by_inode();
    let labels = |l: &crate::model::Listener| {
        let mut s = format!(
            "netns=\"{}\",address=\"{}\",port=\"{}\",inode=\"{}\"",
            netns,
            l.local.ip(),
            l.local.port(),
            l.inode
        );
        if let Some(o) = owners.get(&l.inode).and_then(|v| v.first()) {
            s.push_str(&format!(
                ",process=\"{}\",pid=\"{}\"",
                escape(&o.comm),
                o.pid
            ));
        }
        s
    };
    type Get = fn(&crate::model::Listener) -> Option<u64>;
    let families: [(&str, &str, &str, Get); 4] = [
        (
            "listen_queue_length",
            "gauge",
            "Connections waiting for accept() on a listening socket (Recv-Q).",
            |l| Some(u64::from(l.recv_q)),
        ),
        (
            "listen_backlog",
            "gauge",
            "Effective backlog B of a listening socket (Send-Q); the accept queue holds B+1.",
            |l| Some(u64::from(l.send_q)),
        ),
        (
            "listen_drops_total",
            "counter",
            "Segments dropped at a listening socket since it was created (sk_drops, ss -m d).",
            |l| l.drops.map(u64::from),
        ),
        (
            "listen_syn_recv",
            "gauge",
            "Half-open connections (SYN_RECV) on the listener's address and port.",
            |l| l.syn_recv.map(u64::from),
        ),
    ];
    // A family is declared only with samples: SYN_RECV not counted leaves none.
    for (name, kind, help, get) in families {
        let samples: Vec<(String, u64)> = sample
            .listeners
            .iter()
            .filter_map(|l| get(l).map(|v| (labels(l), v)))
            .collect();
        if samples.is_empty() {
            continue;
        }
        writeln!(w, "# HELP backlogctl_{name} {help}")?;
        writeln!(w, "# TYPE backlogctl_{name} {kind}")?;
        for (labels, v) in samples {
            writeln!(w, "backlogctl_{name}{{{labels}}} {v}")?;
        }
    }
    // Every process holding a listener (a pre-fork server's master and workers), one series
    // each; the command name only, never the command line (it may hold secrets).
    let holders: Vec<String> = sample
        .listeners
        .iter()
        .flat_map(|l| {
            let netns = &netns;
            owners.get(&l.inode).into_iter().flatten().map(move |o| {
                format!(
                    "netns=\"{netns}\",address=\"{}\",port=\"{}\",inode=\"{}\",process=\"{}\",pid=\"{}\"",
                    l.local.ip(),
                    l.local.port(),
                    l.inode,
                    escape(&o.comm),
                    o.pid
                )
            })
        })
        .collect();
    if !holders.is_empty() {
        writeln!(
            w,
            "# HELP backlogctl_listen_owner_info A process holding a listening socket (value 1)."
        )?;
        writeln!(w, "# TYPE backlogctl_listen_owner_info gauge")?;
        for h in holders {
            writeln!(w, "backlogctl_listen_owner_info{{{h}}} 1")?;
        }
    }
    if let Some(c) = &sample.counters {
        for (key, name, help) in catalogue::exported() {
            if let Some(v) = c.get(key) {
                writeln!(w, "# HELP backlogctl_tcp_{name} {help}")?;
                writeln!(w, "# TYPE backlogctl_tcp_{name} counter")?;
                writeln!(w, "backlogctl_tcp_{name}{{netns=\"{netns}\"}} {v}")?;
            }
        }
    }
    let s = &snap.sysctls;
    let sysctls = [
        ("net.core.somaxconn", s.somaxconn),
        ("net.ipv4.tcp_max_syn_backlog", s.tcp_max_syn_backlog),
        ("net.ipv4.tcp_syncookies", s.tcp_syncookies),
        ("net.ipv4.tcp_abort_on_overflow", s.tcp_abort_on_overflow),
        ("net.ipv4.tcp_synack_retries", s.tcp_synack_retries),
    ];
    writeln!(
        w,
        "# HELP backlogctl_sysctl Listen-queue sysctls of the network namespace."
    )?;
    writeln!(w, "# TYPE backlogctl_sysctl gauge")?;
    for (name, value) in sysctls {
        if let Some(v) = value {
            writeln!(
                w,
                "backlogctl_sysctl{{netns=\"{netns}\",name=\"{name}\"}} {v}"
            )?;
        }
    }
    Ok(())
}

/// Label values: backslash, double quote and newline escaped.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

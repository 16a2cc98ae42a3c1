//! The Prometheus text exposition format (0.0.4) of a collection, for `metrics` (node_exporter's
//! textfile collector) and `exporter` (scraped): one code path. Per listener its queue length,
//! backlog and drops, its main process in an info series; per namespace the listen-related
//! counters, the sysctls, who it belongs to and whether it could be read. node_exporter has
//! no per-listener drop metric and no per-namespace counters.
//!
//! Labels are kept few and stable: a listener is (netns, address, port), plus its inode only
//! where SO_REUSEPORT sockets share the address; processes live in an info series, with the
//! command name only, never the command line (it may hold secrets). A value we do not have is
//! left out, never written as 0. Pure: formats into a writer.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Write};

use crate::catalogue;
use crate::model::{Listener, Snapshot};
use crate::scrape::{NsScrape, Scrape};

/// What only the exporter says about itself.
pub struct Exporter<'a> {
    pub version: &'a str,
}

/// Writes every family of the collection; with `exporter`, its own metrics too.
pub fn write(w: &mut dyn Write, scrape: &Scrape, exporter: Option<&Exporter>) -> io::Result<()> {
    let mut x = Exposition::default();
    for ns in &scrape.namespaces {
        namespace(&mut x, ns);
    }
    if let Some(e) = exporter {
        x.family(
            "scrape_duration_seconds",
            "gauge",
            "Time this scrape took to collect every namespace.",
        )
        .sample("", format_args!("{:.6}", scrape.duration.as_secs_f64()));
        x.family(
            "build_info",
            "gauge",
            "The backlogctl that serves these metrics (value 1).",
        )
        .sample(&format!("version=\"{}\"", escape(e.version)), 1);
    }
    x.write(w)
}

/// Families in the order they are first declared; each written once with all its samples,
/// as the format requires.
#[derive(Default)]
struct Exposition {
    families: Vec<Family>,
    index: HashMap<String, usize>,
}

struct Family {
    name: String,
    kind: &'static str,
    help: &'static str,
    /// Whole sample lines, name included, ready to be written.
    samples: String,
}

impl Family {
    fn sample(&mut self, labels: &str, value: impl std::fmt::Display) {
        let _ = if labels.is_empty() {
            writeln!(self.samples, "backlogctl_{} {value}", self.name)
        } else {
            writeln!(self.samples, "backlogctl_{}{{{labels}}} {value}", self.name)
        };
    }
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &'static str, help: &'static str) -> &mut Family {
        let i = match self.index.get(name) {
            Some(i) => *i,
            None => {
                self.families.push(Family {
                    name: name.to_string(),
                    kind,
                    help,
                    samples: String::new(),
                });
                self.index.insert(name.to_string(), self.families.len() - 1);
                self.families.len() - 1
            }
        };
        &mut self.families[i]
    }

    fn write(&self, w: &mut dyn Write) -> io::Result<()> {
        for f in self.families.iter().filter(|f| !f.samples.is_empty()) {
            writeln!(w, "# HELP backlogctl_{} {}", f.name, f.help)?;
            writeln!(w, "# TYPE backlogctl_{} {}", f.name, f.kind)?;
            w.write_all(f.samples.as_bytes())?;
        }
        Ok(())
    }
}

type Get = fn(&Listener) -> Option<u64>;

const LISTENER_FAMILIES: [(&str, &str, &str, Get); 4] = [
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

fn namespace(x: &mut Exposition, ns: &NsScrape) {
    let netns = ns.inode.map(|i| i.to_string()).unwrap_or_default();
    let id = &ns.identity;
    x.family(
        "netns_info",
        "gauge",
        "A network namespace and who it belongs to: host, ip-netns name, container, pod (value 1).",
    )
    .sample(
        &format!(
            "netns=\"{netns}\",name=\"{}\",container_id=\"{}\",pod_namespace=\"{}\",pod=\"{}\",pod_uid=\"{}\"",
            escape(&id.name),
            escape(&id.container_id),
            escape(&id.pod_namespace),
            escape(&id.pod),
            escape(&id.pod_uid)
        ),
        1,
    );
    x.family(
        "netns_scrape_success",
        "gauge",
        "Whether the namespace could be read in this scrape (0: it failed, vanished or was late).",
    )
    .sample(
        &format!("netns=\"{netns}\""),
        u8::from(ns.snapshot.is_some()),
    );
    if let Some(snap) = &ns.snapshot {
        listeners(x, &netns, snap);
        counters_and_sysctls(x, &netns, snap);
    }
}

fn listeners(x: &mut Exposition, netns: &str, snap: &Snapshot) {
    let Some(sample) = snap.last() else {
        return;
    };
    // SO_REUSEPORT groups share an address and port: only they need the inode to be told apart.
    let mut per_address: HashMap<std::net::SocketAddr, usize> = HashMap::new();
    for l in &sample.listeners {
        *per_address.entry(l.local).or_default() += 1;
    }
    let owners = snap.owners_by_inode();
    for l in &sample.listeners {
        let mut labels = format!(
            "netns=\"{netns}\",address=\"{}\",port=\"{}\"",
            l.local.ip(),
            l.local.port()
        );
        if per_address.get(&l.local).is_some_and(|n| *n > 1) {
            let _ = write!(labels, ",inode=\"{}\"", l.inode);
        }
        for (name, kind, help, get) in LISTENER_FAMILIES {
            if let Some(v) = get(l) {
                x.family(name, kind, help).sample(&labels, v);
            }
        }
        // The main process: the lowest PID holding the socket (a pre-fork server's master).
        if let Some(o) = owners
            .get(&l.inode)
            .and_then(|v| v.iter().min_by_key(|o| o.pid))
        {
            x.family(
                "listen_owner_info",
                "gauge",
                "The main process holding a listening socket (lowest PID): command name and PID (value 1).",
            )
            .sample(
                &format!("{labels},process=\"{}\",pid=\"{}\"", escape(&o.comm), o.pid),
                1,
            );
        }
    }
}

fn counters_and_sysctls(x: &mut Exposition, netns: &str, snap: &Snapshot) {
    let label = format!("netns=\"{netns}\"");
    if let Some(c) = snap.last().and_then(|s| s.counters.as_ref()) {
        for (key, name, help) in catalogue::exported() {
            if let Some(v) = c.get(key) {
                x.family(&format!("tcp_{name}"), "counter", help)
                    .sample(&label, v);
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
    for (name, value) in sysctls {
        if let Some(v) = value {
            x.family(
                "sysctl",
                "gauge",
                "Listen-queue sysctls of the network namespace.",
            )
            .sample(&format!("{label},name=\"{name}\""), v);
        }
    }
}

/// Label values: backslash, double quote and newline escaped.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

//! The Prometheus text exposition format (0.0.4) of a collection, for `metrics` (node_exporter's
//! textfile collector) and `exporter` (scraped): one code path. Per listener its queue length,
//! backlog and drops, for a TCP one how many clients wait and how long the oldest has (by
//! `place`), its main process in an info series; per namespace the listen-related
//! counters, the sysctls, who it belongs to and whether it could be read; per namespace and
//! server it connects to, the connects waiting for that server's SYN-ACK (the client's side).
//! node_exporter has no per-listener drop metric and no per-namespace counters.
//!
//! Labels are kept few and stable: a listener is (netns, address, port), plus its inode only
//! where SO_REUSEPORT sockets share the address; processes live in an info series, with the
//! command name only, never the command line (it may hold secrets). A server a namespace
//! connects to is one `remote` label, and at most `TOP_REMOTES` of them per namespace, the rest
//! summed into `remote="other"`: how many servers a client talks to is not ours to bound. A
//! value we do not have is left out, never written as 0. Pure: formats into a writer.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{self, Write};

use crate::catalogue::{self, Sysctl};
use crate::model::decimal;
use crate::model::{Listener, Local, Outgoing, Owner, Remote, Scraped, ScrapedNs, Wait};

/// What only the exporter says about itself.
pub struct Exporter<'a> {
    pub version: &'a str,
    /// /metrics responses so far by Content-Encoding ("gzip", "identity"), this one included.
    pub scrapes: [(&'a str, u64); 2],
}

/// A listener with its labels, formatted once for all its families.
struct Row<'a> {
    labels: String,
    listener: &'a Listener,
    /// The main process: the lowest PID holding the socket (a pre-fork server's master).
    owner: Option<&'a Owner>,
}

/// A namespace, ready to be written.
struct Ns<'a> {
    scrape: &'a ScrapedNs,
    /// `netns="INODE"`.
    label: String,
    rows: Vec<Row<'a>>,
}

impl<'a> Ns<'a> {
    fn new(scrape: &'a ScrapedNs) -> Ns<'a> {
        let netns = scrape.inode.map(|i| i.to_string()).unwrap_or_default();
        let mut rows = Vec::new();
        if let Some((snap, sample)) = scrape
            .snapshot
            .as_ref()
            .and_then(|s| s.last().map(|l| (s, l)))
        {
            // SO_REUSEPORT groups share an address and port, a stale Unix listener and its
            // successor a path: only they need the inode.
            let mut locals: Vec<&Local> = sample.listeners.iter().map(|l| &l.local).collect();
            locals.sort_unstable();
            let shared: Vec<&Local> = locals
                .windows(2)
                .filter(|w| w[0] == w[1])
                .map(|w| w[0])
                .collect();
            let mut owners: HashMap<u64, &Owner> = HashMap::new();
            for o in &snap.owners {
                owners
                    .entry(o.inode)
                    .and_modify(|m| {
                        if o.pid < m.pid {
                            *m = o;
                        }
                    })
                    .or_insert(o);
            }
            rows = sample
                .listeners
                .iter()
                .map(|l| {
                    // TCP: address and port; Unix: the path (`@name` for an abstract one).
                    let mut labels = String::with_capacity(64);
                    labels.push_str("netns=\"");
                    labels.push_str(&netns);
                    match &l.local {
                        Local::Inet(a) => {
                            labels.push_str("\",address=\"");
                            push_ip(&mut labels, a.ip());
                            labels.push_str("\",port=\"");
                            push_number(&mut labels, u64::from(a.port()));
                        }
                        Local::Unix(u) => {
                            labels.push_str("\",path=\"");
                            labels.push_str(&escape(&u.name.to_string()));
                        }
                    }
                    labels.push('"');
                    if shared.binary_search(&&l.local).is_ok() {
                        labels.push_str(",inode=\"");
                        push_number(&mut labels, l.inode);
                        labels.push('"');
                    }
                    Row {
                        labels,
                        listener: l,
                        owner: owners.get(&l.inode).copied(),
                    }
                })
                .collect();
        }
        Ns {
            scrape,
            label: format!("netns=\"{netns}\""),
            rows,
        }
    }
}

/// The exposition on its way to the writer: whole lines gathered in a buffer that goes out in
/// large pieces. Formatting some 80,000 lines one `writeln!` at a time into a `dyn Write` was
/// most of a 100-namespace scrape's rendering (benches/exporter.sh). For `pieces`, each
/// family's samples are kept apart instead, their HELP and TYPE beside them.
struct Out<'a> {
    w: &'a mut dyn Write,
    buf: Vec<u8>,
    families: Option<Vec<Family>>,
}

/// One family of part of the namespaces (`pieces`): its HELP and TYPE lines, and its samples.
struct Family {
    head: Vec<u8>,
    samples: Vec<u8>,
}

/// What `Out` gathers before writing.
const OUT_CHUNK: usize = 64 * 1024;

impl Out<'_> {
    /// Writes what is gathered once it is a chunk.
    fn flush_full(&mut self) -> io::Result<()> {
        if self.buf.len() >= OUT_CHUNK {
            self.w.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    fn finish(self) -> io::Result<()> {
        self.w.write_all(&self.buf)
    }
}

/// A sample's labels, written between the braces.
trait Labels {
    fn put(&self, buf: &mut Vec<u8>);
    fn is_empty(&self) -> bool;
}

impl Labels for &str {
    fn put(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(self.as_bytes());
    }
    fn is_empty(&self) -> bool {
        str::is_empty(self)
    }
}

impl Labels for &String {
    fn put(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(self.as_bytes());
    }
    fn is_empty(&self) -> bool {
        String::is_empty(self)
    }
}

impl Labels for String {
    fn put(&self, buf: &mut Vec<u8>) {
        (&self).put(buf);
    }
    fn is_empty(&self) -> bool {
        String::is_empty(self)
    }
}

/// Labels in pieces, written one after the other (a listener's, then its place): no string
/// is built for each sample.
impl<const N: usize> Labels for [&str; N] {
    fn put(&self, buf: &mut Vec<u8>) {
        for p in self {
            buf.extend_from_slice(p.as_bytes());
        }
    }
    fn is_empty(&self) -> bool {
        self.iter().all(|p| p.is_empty())
    }
}

/// A listener's labels with its main process's: written straight into the line, not
/// formatted into a string for each of 10,000 listeners.
struct OwnerLabels<'a> {
    listener: &'a str,
    comm: Cow<'a, str>,
    pid: u32,
}

impl Labels for OwnerLabels<'_> {
    fn put(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(self.listener.as_bytes());
        buf.extend_from_slice(b",process=\"");
        buf.extend_from_slice(self.comm.as_bytes());
        buf.extend_from_slice(b"\",pid=\"");
        self.pid.put(buf);
        buf.push(b'"');
    }
    fn is_empty(&self) -> bool {
        false
    }
}

/// A sample's value as the format writes it: integers in decimal, floats as `Display` does.
trait Value {
    fn put(&self, buf: &mut Vec<u8>);
}

impl Value for u64 {
    fn put(&self, buf: &mut Vec<u8>) {
        let (digits, at) = decimal(*self);
        buf.extend_from_slice(&digits[at..]);
    }
}

impl Value for u32 {
    fn put(&self, buf: &mut Vec<u8>) {
        u64::from(*self).put(buf);
    }
}

impl Value for u8 {
    fn put(&self, buf: &mut Vec<u8>) {
        u64::from(*self).put(buf);
    }
}

/// A time in milliseconds written in seconds, as `Display` writes `ms as f64 / 1000.0`: the
/// shortest decimal (12000 is `12`, 2904 is `2.904`, 100 is `0.1`), without `core::fmt`
/// (20,000 of them in a 10,000-listener scrape).
struct Seconds(u32);

impl Value for Seconds {
    fn put(&self, buf: &mut Vec<u8>) {
        u64::from(self.0 / 1000).put(buf);
        let mut frac = self.0 % 1000;
        if frac == 0 {
            return;
        }
        let mut digits = 3;
        while frac % 10 == 0 {
            frac /= 10;
            digits -= 1;
        }
        buf.push(b'.');
        let text = [
            b'0' + (frac / 100 % 10) as u8,
            b'0' + (frac / 10 % 10) as u8,
            b'0' + (frac % 10) as u8,
        ];
        buf.extend_from_slice(&text[3 - digits..]);
    }
}

/// `n` in decimal at the end of `s`.
fn push_number(s: &mut String, n: u64) {
    let (digits, at) = decimal(n);
    // ASCII digits only.
    s.push_str(std::str::from_utf8(&digits[at..]).unwrap_or_default());
}

/// An address as `Display` writes it; an IPv4 one without `core::fmt`.
fn push_ip(s: &mut String, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                push_number(s, u64::from(octet));
            }
        }
        std::net::IpAddr::V6(v6) => {
            use std::fmt::Write as _;
            // Writing into a String cannot fail.
            let _ = write!(s, "{v6}");
        }
    }
}

impl Value for String {
    fn put(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(self.as_bytes());
    }
}

/// Writes one family: its HELP and TYPE before the first sample, nothing without samples.
fn family<L: Labels, V: Value>(
    out: &mut Out,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, V)>,
) -> io::Result<()> {
    let head = |buf: &mut Vec<u8>| {
        for piece in [
            b"# HELP backlogctl_",
            name.as_bytes(),
            b" ",
            help.as_bytes(),
            b"\n",
        ] {
            buf.extend_from_slice(piece);
        }
        for piece in [
            b"# TYPE backlogctl_",
            name.as_bytes(),
            b" ",
            kind.as_bytes(),
            b"\n",
        ] {
            buf.extend_from_slice(piece);
        }
    };
    if let Some(families) = &mut out.families {
        let mut f = Family {
            head: Vec::new(),
            samples: Vec::new(),
        };
        head(&mut f.head);
        for (labels, value) in samples {
            sample(&mut f.samples, name, labels, value);
        }
        families.push(f);
        return Ok(());
    }
    let mut first = true;
    for (labels, value) in samples {
        if first {
            head(&mut out.buf);
            first = false;
        }
        sample(&mut out.buf, name, labels, value);
        out.flush_full()?;
    }
    Ok(())
}

/// One sample's line.
fn sample<L: Labels, V: Value>(buf: &mut Vec<u8>, name: &str, labels: L, value: V) {
    buf.extend_from_slice(b"backlogctl_");
    buf.extend_from_slice(name.as_bytes());
    if !labels.is_empty() {
        buf.push(b'{');
        labels.put(buf);
        buf.push(b'}');
    }
    buf.push(b' ');
    value.put(buf);
    buf.push(b'\n');
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

/// How many wait at one place, and the oldest one's wait so far (ms).
type Place = fn(&Wait) -> (u32, u32);

/// Where a TCP listener's clients wait, as the `place` label says it, and how to read it from
/// a `Wait` (docs/kernel.md, "The clients' wait"): handshake done and not yet accept()ed, or
/// accepted with the request in and nothing sent back.
const PLACES: [(&str, Place); 2] = [
    ("accept_queue", |w| (w.queued, w.queued_oldest_ms)),
    ("after_accept", |w| (w.unanswered, w.unanswered_oldest_ms)),
];

/// Writes every family of the collection, each once with the samples of every namespace (as
/// the format requires), straight into `w`; with `exporter`, its own metrics too.
pub fn write(w: &mut dyn Write, scrape: &Scraped, exporter: Option<&Exporter>) -> io::Result<()> {
    let nss: Vec<Ns> = scrape.namespaces.iter().map(Ns::new).collect();
    let mut out = Out {
        w,
        buf: Vec::with_capacity(OUT_CHUNK + 4096),
        families: None,
    };
    namespace_families(&mut out, &nss)?;
    if let Some(e) = exporter {
        exporter_families(&mut out, scrape, e)?;
    }
    out.finish()
}

/// `write`'s exposition as pieces whose concatenation it is, made on two threads: each writes
/// every family for half of the namespaces (by listeners), and the halves of each family are
/// put one after the other under its HELP and TYPE. For the exporter, which sends the pieces
/// as they are or gzips them one after the other: rendering 80,000 lines was a fifth of a
/// 100-namespace scrape, all of it after the collection.
pub fn pieces(scrape: &Scraped, exporter: Option<&Exporter>) -> Vec<Vec<u8>> {
    let nss = &scrape.namespaces;
    let rows = |n: &ScrapedNs| {
        n.snapshot
            .as_ref()
            .and_then(|s| s.last())
            .map_or(1, |s| s.listeners.len() + 1)
    };
    let total: usize = nss.iter().map(rows).sum();
    let mut half = 0;
    let split = nss
        .iter()
        .position(|n| {
            half += rows(n);
            half * 2 >= total
        })
        .map_or(nss.len(), |i| i + 1);
    let (first, second) = nss.split_at(split);
    let (a, b) = std::thread::scope(|s| {
        let other = s.spawn(|| families_of(second));
        (families_of(first), other.join())
    });
    // Writing into memory cannot fail: only a bug panics, and it does so here too.
    let b = b.unwrap_or_else(|p| std::panic::resume_unwind(p));
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(3 * a.len() + 1);
    for (x, y) in a.into_iter().zip(b) {
        if x.samples.is_empty() && y.samples.is_empty() {
            continue;
        }
        out.push(x.head);
        out.extend([x.samples, y.samples].into_iter().filter(|p| !p.is_empty()));
    }
    if let Some(e) = exporter {
        let mut tail = Vec::new();
        // Writing into memory cannot fail.
        let _ = write_with(&mut tail, |o| exporter_families(o, scrape, e));
        out.push(tail);
    }
    out
}

/// Every family of these namespaces, each apart (`Out::families`).
fn families_of(nss: &[ScrapedNs]) -> Vec<Family> {
    let nss: Vec<Ns> = nss.iter().map(Ns::new).collect();
    let mut sink = io::sink();
    let mut out = Out {
        w: &mut sink,
        buf: Vec::new(),
        families: Some(Vec::new()),
    };
    // Into memory: cannot fail.
    let _ = namespace_families(&mut out, &nss);
    out.families.unwrap_or_default()
}

/// Writes what `f` writes into `w`, streamed.
fn write_with(w: &mut dyn Write, f: impl FnOnce(&mut Out) -> io::Result<()>) -> io::Result<()> {
    let mut out = Out {
        w,
        buf: Vec::with_capacity(OUT_CHUNK + 4096),
        families: None,
    };
    f(&mut out)?;
    out.finish()
}

/// Every family written per namespace, in their order.
fn namespace_families(w: &mut Out, nss: &[Ns]) -> io::Result<()> {
    identity_families(w, nss)?;
    listener_families(w, nss)?;
    counter_families(w, nss)?;
    client_families(w, nss)
}

/// Who each namespace belongs to, and whether it could be read.
fn identity_families(w: &mut Out, nss: &[Ns]) -> io::Result<()> {
    family(
        w,
        "netns_info",
        "gauge",
        "A network namespace and who it belongs to: host, ip-netns name, container, pod (value 1).",
        nss.iter().map(|ns| {
            let id = &ns.scrape.identity;
            let labels = format!(
                "{},name=\"{}\",container_id=\"{}\",pod_namespace=\"{}\",pod=\"{}\",pod_uid=\"{}\"",
                ns.label,
                escape(&id.name),
                escape(&id.container_id),
                escape(&id.pod_namespace),
                escape(&id.pod),
                escape(&id.pod_uid)
            );
            (labels, 1u8)
        }),
    )?;
    family(
        w,
        "netns_scrape_success",
        "gauge",
        "Whether the namespace could be read in this scrape (0: it failed, vanished or was late).",
        nss.iter()
            .map(|ns| (&ns.label, u8::from(ns.scrape.snapshot.is_some()))),
    )
}

/// Per listener: its queue, backlog, drops and SYN_RECV, its clients' wait, and its main
/// process.
fn listener_families(w: &mut Out, nss: &[Ns]) -> io::Result<()> {
    let rows = || nss.iter().flat_map(|ns| ns.rows.iter());
    for (name, kind, help, get) in LISTENER_FAMILIES {
        family(
            w,
            name,
            kind,
            help,
            rows().filter_map(|r| get(r.listener).map(|v| (&r.labels, v))),
        )?;
    }
    // TCP listeners, where the sample read it: a failed dump of the established sockets
    // leaves no series (absent, not 0). A Unix listener's wait is read only while its queue
    // holds connections, and then as a lower bound: a series that would come and go, so its
    // queue length stands for it.
    let places = || {
        rows().flat_map(|r| {
            let wait = r
                .listener
                .wait
                .filter(|_| r.listener.local.inet().is_some());
            PLACES.iter().filter_map(move |(place, get)| {
                let (n, ms) = get(&wait?);
                Some(([r.labels.as_str(), ",place=\"", place, "\""], n, ms))
            })
        })
    };
    family(
        w,
        "listen_waiting",
        "gauge",
        "Clients of a TCP listener waiting, by place: accept_queue (handshake done, not yet accept()ed) or after_accept (accepted, request received, nothing sent back).",
        places().map(|(labels, n, _)| (labels, n)),
    )?;
    family(
        w,
        "listen_oldest_wait_seconds",
        "gauge",
        "How long the longest-waiting client of a TCP listener has waited so far, by place (0 when none waits).",
        places().map(|(labels, _, ms)| (labels, Seconds(ms))),
    )?;
    family(
        w,
        "listen_owner_info",
        "gauge",
        "The main process holding a listening socket (lowest PID): command name and PID (value 1).",
        rows().filter_map(|r| {
            let o = r.owner?;
            let labels = OwnerLabels {
                listener: &r.labels,
                comm: escape(&o.comm),
                pid: o.pid,
            };
            Some((labels, 1u8))
        }),
    )
}

/// Per namespace: the exported counters of the catalogue, and the listen-queue sysctls.
fn counter_families(w: &mut Out, nss: &[Ns]) -> io::Result<()> {
    for (key, name, help) in catalogue::exported() {
        family(
            w,
            &name,
            "counter",
            help,
            nss.iter().filter_map(|ns| {
                let snap = ns.scrape.snapshot.as_ref()?;
                let v = snap.last()?.counters.as_ref()?.get(key)?;
                Some((&ns.label, *v))
            }),
        )?;
    }
    family(
        w,
        "sysctl",
        "gauge",
        "Listen-queue sysctls of the network namespace.",
        nss.iter().flat_map(|ns| {
            let s = ns.scrape.snapshot.as_ref().map(|s| &s.sysctls);
            Sysctl::ALL.into_iter().filter_map(move |key| {
                let v = s?.get(key)?;
                Some((format!("{},name=\"{}\"", ns.label, key.name()), v))
            })
        }),
    )
}

/// Servers per namespace with a series of their own in the client families; the rest are
/// summed into one `remote="other"` series, so a namespace has at most `TOP_REMOTES + 1`.
pub const TOP_REMOTES: usize = 10;

/// What the HELP of the client families says of their bound (docs/fleet.md says it too).
const BOUND: &str = "Servers in trouble only (connects sent again, data unacknowledged, or many local ports held), the 10 with the most SYN_SENT by name, the rest summed in remote=\"other\" (the servers a reading leaves out beyond 64 included).";

/// One server's series: its `remote` label, its SYN_SENT, and of them those retried.
struct RemoteSeries {
    remote: String,
    syn_sent: u32,
    retried: u32,
}

/// A namespace's server series, the top
/// `TOP_REMOTES` by SYN_SENT then by name, then `other` (always, 0 when none: the connecting
/// side was read). Servers with nothing in SYN_SENT have no series of their own.
fn remote_series(o: &Outgoing) -> Vec<RemoteSeries> {
    let mut by: Vec<&Remote> = o.remotes.iter().filter(|r| r.syn_sent > 0).collect();
    by.sort_by(|a, b| {
        (b.syn_sent, b.syn_retried)
            .cmp(&(a.syn_sent, a.syn_retried))
            .then(a.addr.cmp(&b.addr))
    });
    let rest = by.split_off(by.len().min(TOP_REMOTES));
    let mut series: Vec<RemoteSeries> = by
        .iter()
        .map(|r| RemoteSeries {
            remote: r.addr.to_string(),
            syn_sent: r.syn_sent,
            retried: r.syn_retried,
        })
        .collect();
    let sum = |f: fn(&Remote) -> u32| rest.iter().map(|r| f(r)).fold(0u32, u32::saturating_add);
    series.push(RemoteSeries {
        remote: "other".into(),
        syn_sent: sum(|r| r.syn_sent).saturating_add(o.more_syn_sent),
        retried: sum(|r| r.syn_retried).saturating_add(o.more_syn_retried),
    });
    series
}

/// Per namespace and server it connects to, where the scrape read the connecting side: the
/// connects waiting for a SYN-ACK, and those whose SYN was already sent again.
fn client_families(w: &mut Out, nss: &[Ns]) -> io::Result<()> {
    let series: Vec<(&str, Vec<RemoteSeries>)> = nss
        .iter()
        .filter_map(|ns| {
            let o = ns.scrape.snapshot.as_ref()?.last()?.outgoing.as_ref()?;
            Some((ns.label.as_str(), remote_series(o)))
        })
        .collect();
    let labelled = |pick: fn(&RemoteSeries) -> u32| {
        series.iter().flat_map(move |(ns, rows)| {
            rows.iter()
                .map(move |r| (format!("{ns},remote=\"{}\"", escape(&r.remote)), pick(r)))
        })
    };
    family(
        w,
        "client_syn_sent",
        "gauge",
        &format!(
            "Connects of the namespace waiting for a server's SYN-ACK (SYN_SENT), by server. {BOUND}"
        ),
        labelled(|r| r.syn_sent),
    )?;
    family(
        w,
        "client_syn_retried",
        "gauge",
        &format!(
            "Of them, connects whose SYN was sent again (unanswered for a retransmission timeout, 1 s at first), by server. {BOUND}"
        ),
        labelled(|r| r.retried),
    )
}

/// What only the exporter says about itself: how long the scrape took, which build it is.
fn exporter_families(w: &mut Out, scrape: &Scraped, e: &Exporter) -> io::Result<()> {
    family(
        w,
        "scrape_duration_seconds",
        "gauge",
        "Time this scrape took to collect every namespace.",
        [("", format!("{:.6}", scrape.duration.as_secs_f64()))],
    )?;
    family(
        w,
        "build_info",
        "gauge",
        "The backlogctl that serves these metrics (value 1).",
        [(format!("version=\"{}\"", escape(e.version)), 1u8)],
    )?;
    family(
        w,
        "scrapes_total",
        "counter",
        "Scrapes of /metrics answered, by Content-Encoding (gzip when the client accepts it).",
        e.scrapes
            .map(|(encoding, n)| (format!("encoding=\"{}\"", escape(encoding)), n)),
    )
}

/// Label values: backslash, double quote and newline escaped; most have none to escape.
fn escape(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Identity, Snapshot};

    /// One namespace's single sample: a TCP listener whose clients wait in both places, one
    /// read with nobody waiting, one not read, and a Unix listener with a lower bound.
    fn scraped() -> Scraped {
        let snap: Snapshot = serde_json::from_value(serde_json::json!({
            "schema_version": 4, "tool": "backlogctl test", "started_unix_ms": 0,
            "sysctls": {}, "samples": [{"elapsed_us": 0, "listeners": [
                {"local": "127.0.0.1:8100", "inode": 1, "uid": 0, "recv_q": 3, "send_q": 4096,
                 "wait": {"queued": 3, "queued_oldest_ms": 2904, "unanswered": 20,
                          "unanswered_oldest_ms": 12000, "unread": 10}},
                {"local": "127.0.0.1:8200", "inode": 2, "uid": 0, "recv_q": 0, "send_q": 4096,
                 "wait": {"queued": 0, "queued_oldest_ms": 0, "unanswered": 0,
                          "unanswered_oldest_ms": 0, "unread": 0}},
                {"local": "127.0.0.1:8300", "inode": 3, "uid": 0, "recv_q": 0, "send_q": 4096},
                {"local": {"path": "/run/app.sock", "type": "stream"}, "inode": 4, "uid": 0,
                 "recv_q": 2, "send_q": 8, "wait": {"queued": 2, "queued_oldest_ms": 1500,
                 "unanswered": 0, "unanswered_oldest_ms": 0, "unread": 0, "at_least": true}}
            ]}]
        }))
        .expect("a snapshot");
        Scraped {
            namespaces: vec![ScrapedNs {
                inode: Some(4026531840),
                identity: Identity::default(),
                snapshot: Some(snap),
            }],
            duration: Default::default(),
        }
    }

    /// A schema 5 namespace whose connects go to 13 servers in trouble, 12 of them with
    /// connects waiting (two tied at the cut), one with only unacknowledged data; and its
    /// client counters.
    fn client_scraped() -> Scraped {
        let mut remotes: Vec<serde_json::Value> = (1..=12u32)
            .map(|i| {
                let n = match i {
                    11 => 2,
                    12 => 10,
                    _ => 20 - i,
                };
                serde_json::json!({"addr": format!("10.0.0.{i}:5432"), "syn_sent": n,
                                   "syn_retried": n / 2, "syn_retrans_max": 1})
            })
            .collect();
        remotes.push(
            serde_json::json!({"addr": "[2001:db8::1]:443", "syn_sent": 0,
            "syn_retried": 0, "syn_retrans_max": 0, "established": 9, "unacked": 9}),
        );
        let snap: Snapshot = serde_json::from_value(serde_json::json!({
            "schema_version": 5, "tool": "backlogctl test", "started_unix_ms": 0,
            "sysctls": {}, "samples": [{"elapsed_us": 0, "listeners": [],
                "counters": {"TcpExt:TCPSynRetrans": 77, "Tcp:AttemptFails": 3,
                             "Tcp:EstabResets": 4, "Tcp:RetransSegs": 900,
                             "TcpExt:TCPTimeouts": 55, "Conntrack:drop": 6},
                "outgoing": {"remotes": remotes, "more": 2, "established_read": true,
                             "time_wait_read": false}}]
        }))
        .expect("a snapshot");
        let mut s = scraped();
        s.namespaces.push(ScrapedNs {
            inode: Some(4026532999),
            identity: Identity::default(),
            snapshot: Some(snap),
        });
        s
    }

    /// Seconds from milliseconds are written as `Display` writes the division by 1000, and
    /// addresses and ports as `Display` writes them.
    #[test]
    fn seconds_and_addresses_are_written_as_display_writes_them() {
        for ms in (0..=30_000).chain([59_999, 60_000, 123_456_789, u32::MAX]) {
            let mut ours = Vec::new();
            Seconds(ms).put(&mut ours);
            let theirs = format!("{}", f64::from(ms) / 1000.0);
            assert_eq!(String::from_utf8(ours).unwrap(), theirs, "{ms} ms");
        }
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.200.3.255",
            "::",
            "::ffff:1.2.3.4",
            "fe80::1",
        ] {
            let mut ours = String::new();
            push_ip(&mut ours, ip.parse().unwrap());
            assert_eq!(ours, ip);
        }
        for n in [0, 7, 10, 65535, u64::MAX] {
            let mut ours = String::new();
            push_number(&mut ours, n);
            assert_eq!(ours, n.to_string());
        }
    }

    /// The exporter's pieces, made on two threads from halves of the namespaces, join into
    /// what `write` writes: every family once, its HELP and TYPE first, whatever the split.
    #[test]
    fn the_pieces_join_into_the_written_exposition() {
        let mut s = client_scraped();
        // A third namespace that could not be read, and one more with listeners.
        s.namespaces.push(ScrapedNs {
            inode: Some(4026533000),
            identity: Identity::default(),
            snapshot: None,
        });
        s.namespaces.push(scraped().namespaces.remove(0));
        let e = Exporter {
            version: "1.2.3",
            scrapes: [("gzip", 1), ("identity", 2)],
        };
        for n in 0..=s.namespaces.len() {
            let part = Scraped {
                namespaces: s.namespaces[..n].to_vec(),
                duration: s.duration,
            };
            let mut written = Vec::new();
            write(&mut written, &part, Some(&e)).unwrap();
            let joined = pieces(&part, Some(&e)).concat();
            assert_eq!(
                String::from_utf8(joined).unwrap(),
                String::from_utf8(written).unwrap(),
                "{n} namespaces"
            );
        }
    }

    #[test]
    fn servers_are_ten_series_and_other_and_client_counters_per_namespace() {
        let mut out = Vec::new();
        write(&mut out, &client_scraped(), None).unwrap();
        let text = String::from_utf8(out).unwrap();
        let of = |family: &str| -> Vec<(String, String)> {
            text.lines()
                .filter_map(|l| l.strip_prefix(&format!("backlogctl_{family}{{")))
                .map(|l| {
                    let (labels, v) = l.rsplit_once("} ").unwrap();
                    (labels.to_string(), v.to_string())
                })
                .collect()
        };
        let sent = of("client_syn_sent");
        // Only the namespace that read its connecting side; 10 by name, most first, the tie at
        // the cut (10.0.0.10 and 10.0.0.12, 10 each) broken by address.
        assert_eq!(sent.len(), TOP_REMOTES + 1, "{text}");
        let named: Vec<&str> = sent.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(named[0], "netns=\"4026532999\",remote=\"10.0.0.1:5432\"");
        assert_eq!(named[9], "netns=\"4026532999\",remote=\"10.0.0.10:5432\"");
        assert_eq!(sent[0].1, "19");
        // The rest: 10.0.0.12 (10) and 10.0.0.11 (2); the IPv6 one has no SYN_SENT.
        assert_eq!(
            sent[10],
            (
                "netns=\"4026532999\",remote=\"other\"".to_string(),
                "12".to_string()
            )
        );
        let retried = of("client_syn_retried");
        assert_eq!(retried[10].1, "6", "5 + 1: {text}");
        assert!(!text.contains("2001:db8"), "{text}");
        assert!(
            text.contains(
                "the 10 with the most SYN_SENT by name, the rest summed in remote=\"other\""
            ),
            "the HELP says the bound: {text}"
        );
        for (family, v) in [
            ("tcp_syn_retrans_total", "77"),
            ("tcp_attempt_fails_total", "3"),
            ("tcp_estab_resets_total", "4"),
            ("tcp_retrans_segs_total", "900"),
            ("tcp_timeouts_total", "55"),
            ("conntrack_drop_total", "6"),
        ] {
            assert_eq!(
                of(family),
                [("netns=\"4026532999\"".to_string(), v.to_string())],
                "{family}: {text}"
            );
        }
        // Not read by the kernel there: no series, not 0.
        assert!(of("conntrack_early_drop_total").is_empty(), "{text}");
    }

    #[test]
    fn the_wait_is_two_families_by_place_where_it_was_read() {
        let mut out = Vec::new();
        write(&mut out, &scraped(), None).unwrap();
        let text = String::from_utf8(out).unwrap();
        let of = |family: &str| -> Vec<&str> {
            text.lines()
                .filter(|l| l.starts_with(&format!("backlogctl_{family}{{")))
                .collect()
        };
        let expect = |family: &str, values: [(u16, &str, &str); 4]| {
            let want: Vec<String> = values
                .iter()
                .map(|(port, place, v)| {
                    format!(
                        "backlogctl_{family}{{netns=\"4026531840\",address=\"127.0.0.1\",\
                         port=\"{port}\",place=\"{place}\"}} {v}"
                    )
                })
                .collect();
            assert_eq!(of(family), want, "{text}");
        };
        expect(
            "listen_waiting",
            [
                (8100, "accept_queue", "3"),
                (8100, "after_accept", "20"),
                (8200, "accept_queue", "0"),
                (8200, "after_accept", "0"),
            ],
        );
        expect(
            "listen_oldest_wait_seconds",
            [
                (8100, "accept_queue", "2.904"),
                (8100, "after_accept", "12"),
                (8200, "accept_queue", "0"),
                (8200, "after_accept", "0"),
            ],
        );
        for family in ["listen_waiting", "listen_oldest_wait_seconds"] {
            assert_eq!(
                text.matches(&format!("# TYPE backlogctl_{family} gauge\n"))
                    .count(),
                1,
                "{text}"
            );
        }
    }
}

//! What a timeline picture shows, computed from a `Snapshot` and doctor's `Report` on it: the
//! time axis, each listener's accept queue against its capacity B+1, drops per column,
//! SYN_RECV where it was counted, its clients' oldest wait where it was read, the namespace's
//! overflow counters as rates, with `lab --veth` the clients' namespace's connections to the
//! server on the same axis, the facts the heading states, and why the axes are left out when there is nothing to draw. Pure and
//! wordless: no I/O, no clock, no pixels, no sentences — numbers and typed facts only, so
//! tests read what a picture carries here; `render::plot` lays it out, colours it and says it.
//!
//! Downsampling: a series is cut into `columns` buckets (the renderer asks for one per pixel
//! column of its plot area). The queue and SYN_RECV keep each bucket's maximum (so no peak,
//! however short, disappears) and its last value (so the level held after a spike is drawn at
//! its true height); so does the oldest wait. Drops are summed per bucket: "drops per column" then adds up to the
//! drops of the window, which a maximum would not. The namespace's counters are drawn as
//! rates: each rise over the sampling interval in which it happened, the highest per column,
//! so a peak rate does not depend on the window's length.
//!
//! Time: a recording stores a sample only when something in scope changed, so a value holds
//! until the next sample (series are steps, not lines between samples), and a listener's
//! drops changed between the stored sample and the unchanged one taken just before it.
//! Counters are read with every stored sample, so an increase is dated by the sample that saw
//! it rather than spread over a quiet gap before it.

use crate::catalogue::{LISTEN_OVERFLOWS, REQQ_FULL_DO_COOKIES, REQQ_FULL_DROP};
use crate::doctor::{ListenerView, Report, RuleId, Severity};
use crate::lab::Outcome;
use std::net::SocketAddr;

use crate::model::{Listener, Local, Owner, Remote, Snapshot, Target, Wait, Where};

/// Listeners drawn when none is named: the most troubled first.
const MOST_TROUBLED: usize = 3;
/// Listeners drawn at most when they are named.
const NAMED_AT_MOST: usize = 8;
/// The namespace counters drawn as rates (per second), in this order.
const RATES: [&str; 3] = [LISTEN_OVERFLOWS, REQQ_FULL_DROP, REQQ_FULL_DO_COOKIES];

/// The time axis: microseconds since the first sample, cut into `columns` buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Axis {
    /// `elapsed_us` of the first sample.
    pub origin_us: u64,
    /// Length of the window, at least 1 µs.
    pub span_us: u64,
    pub columns: usize,
}

impl Axis {
    pub fn new(origin_us: u64, end_us: u64, columns: usize) -> Axis {
        Axis {
            origin_us,
            span_us: end_us.saturating_sub(origin_us).max(1),
            columns: columns.max(1),
        }
    }

    /// The bucket of an absolute `elapsed_us`; times past either end fall in the end buckets.
    pub fn column_of(&self, t_us: u64) -> usize {
        let rel = u128::from(t_us.saturating_sub(self.origin_us));
        let c = rel * self.columns as u128 / u128::from(self.span_us);
        (c as usize).min(self.columns - 1)
    }

    /// Start of a bucket, µs since the first sample.
    pub fn column_start_us(&self, column: usize) -> u64 {
        (u128::from(self.span_us) * column as u128 / self.columns as u128) as u64
    }

    /// Length of one bucket, µs.
    pub fn column_us(&self) -> f64 {
        self.span_us as f64 / self.columns as f64
    }
}

/// One column (bucket) of a downsampled series: the highest value in the bucket and the value
/// it ended on (held until the next column with a sample).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Column<V> {
    pub column: usize,
    /// Start of the bucket, µs since the first sample.
    pub t_us: u64,
    pub max: V,
    pub last: V,
}

/// Keeps, per bucket of `axis`, the maximum and the last of the points `(elapsed_us, value)`
/// (in time order) that fall in it. At most `axis.columns` columns; buckets without a point
/// are left out (the value before holds).
pub fn downsample_max<V: Copy + PartialOrd>(points: &[(u64, V)], axis: &Axis) -> Vec<Column<V>> {
    let mut out: Vec<Column<V>> = Vec::new();
    for &(t, v) in points {
        let column = axis.column_of(t);
        match out.last_mut() {
            Some(c) if c.column == column => {
                if v > c.max {
                    c.max = v;
                }
                c.last = v;
            }
            _ => out.push(Column {
                column,
                t_us: axis.column_start_us(column),
                max: v,
                last: v,
            }),
        }
    }
    out
}

/// Sums, per bucket of `axis`, the points `(elapsed_us, count)` (in time order) that fall in
/// it: `(bucket start µs, sum)`, empty buckets left out. The sums add up to the input's.
pub fn downsample_sum(points: &[(u64, u64)], axis: &Axis) -> Vec<(u64, u64)> {
    let mut out: Vec<(usize, u64)> = Vec::new();
    for &(t, n) in points {
        let column = axis.column_of(t);
        match out.last_mut() {
            Some((c, sum)) if *c == column => *sum = sum.saturating_add(n),
            _ => out.push((column, n)),
        }
    }
    out.into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(c, n)| (axis.column_start_us(c), n))
        .collect()
}

/// Everything a timeline picture shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// What was recorded, where and when.
    pub recording: Recording,
    /// doctor's verdict on the same data.
    pub verdict: Severity,
    /// The ids of doctor's problems (findings above OK), in the report's order.
    pub problems: Vec<RuleId>,
    pub axis: Axis,
    pub listeners: Vec<ListenerPlot>,
    /// Listeners in scope not drawn (beyond the most troubled).
    pub left_out: usize,
    /// The namespace counters, per second; only those the snapshot has.
    pub rates: Vec<RatePlot>,
    /// When set, there is no time axis worth drawing, for this reason: the picture says so
    /// instead.
    pub instead: Option<Instead>,
}

/// The recording a timeline is drawn from.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    /// `uname -r` of the recording machine, when known.
    pub kernel: Option<String>,
    /// The network namespace recorded.
    pub netns: Where,
    /// Length of the observation, ms; 0 for a single sample.
    pub window_ms: u64,
    /// Samples taken (stored or not: an unchanged sample is not stored).
    pub samples: u64,
    /// Start of the recording, ms since the Unix epoch.
    pub started_unix_ms: u64,
}

/// Why the axes are left out.
#[derive(Debug, Clone, PartialEq)]
pub enum Instead {
    /// No listener in scope; `unmatched` are the named targets nothing listens on.
    NoListener { unmatched: Vec<Target> },
    /// A single sample: the listeners' state at that instant, no time axis.
    OneSample,
    /// Nothing happened in the window: queues empty, nothing dropped where drops were
    /// counted (`drops_counted`: at every listener drawn), no counter rose.
    Quiet { drops_counted: bool },
}

/// Which listener a plot is of: the socket, told apart from the others of an SO_REUSEPORT
/// group by its inode, and the processes holding it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerId {
    pub local: Local,
    pub inode: u64,
    pub owners: Vec<Owner>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ListenerPlot {
    pub id: ListenerId,
    /// Send-Q: the effective backlog B.
    pub backlog: u32,
    /// B+1: the most the accept queue holds (`sk_acceptq_is_full` compares with `>`).
    pub capacity: u64,
    /// Recv-Q over time.
    pub queue: Vec<Column<u64>>,
    /// The highest Recv-Q of the window and the first time it was reached, µs since the
    /// first sample.
    pub peak: u64,
    pub peak_t_us: u64,
    /// Recv-Q reached B+1 (or passed it).
    pub full: bool,
    /// What the drops lane shows: sk_drops per column, or why there is nothing to draw.
    pub drops: Drops,
    /// sk_drops at the last sample, since the socket was created; None when unknown.
    pub drops_ever: Option<u32>,
    /// SYN_RECV where it was counted; None when no sample counted it.
    pub syn_recv: Option<Vec<Column<u64>>>,
    /// Its clients' wait where samples read it; None when none did (a Unix listener, a
    /// snapshot older than schema 4): the picture is then as it was before the wait was read.
    pub wait: Option<WaitPlot>,
    /// doctor's problems for this listener, in the report's order.
    pub findings: Vec<(Severity, RuleId)>,
}

/// A TCP listener's clients' wait over the window, from the samples that read it
/// (docs/kernel.md, "The clients' wait"): per place, the oldest wait so far, in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitPlot {
    /// In the accept queue: connected, not yet accept()ed. A sample that did not read the
    /// wait but saw Recv-Q 0 counts as 0 here: nobody was in the queue.
    pub accept_queue: Vec<Column<f64>>,
    /// After accept(): the request in, nothing sent back.
    pub after_accept: Vec<Column<f64>>,
    /// Samples of the listener that read the wait.
    pub readings: usize,
    /// The longest wait read at either place, seconds, and the first time it was read (µs
    /// since the first sample).
    pub longest_s: f64,
    pub longest_t_us: u64,
    /// The last reading.
    pub last: Wait,
    /// The readings are lower bounds (a Unix listener's pending connections carry no
    /// timestamp: each has waited at least since it was first seen pending).
    pub at_least: bool,
}

/// A listener's drops in the window, or why there are none to draw: a lane of zeros would
/// claim nothing was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Drops {
    /// sk_drops rose by `window` over the window, `per_column` in each column that rose.
    Counted {
        per_column: Vec<(u64, u64)>,
        window: u64,
    },
    /// A TCP listener whose kernel sent no SK_MEMINFO_DROPS.
    Unreported,
    /// A Unix listener: no counter counts its refused connects (`Local::counts_drops`).
    NotCounted,
}

impl Drops {
    /// The increase over the window, where it was counted.
    pub fn window(&self) -> Option<u64> {
        match self {
            Drops::Counted { window, .. } => Some(*window),
            Drops::Unreported | Drops::NotCounted => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RatePlot {
    /// The counter's key, one of `RATES` (`TcpExt:ListenOverflows`).
    pub counter: &'static str,
    /// `(column start µs, the highest rate in the column, per second)` for the columns where
    /// the counter rose: each rise over the sampling interval in which it happened (or the gap
    /// since the previous sample, without a grid), dated by the sample that read it.
    pub per_s: Vec<(u64, f64)>,
    /// Increase over the window.
    pub total: u64,
}

/// The timeline of `snap`, diagnosed as `report` (`pipeline::from_file`'s pair), its time cut
/// into `columns` buckets.
pub fn timeline(snap: &Snapshot, report: &Report, columns: usize) -> Timeline {
    let origin = snap.first().map(|s| s.elapsed_us).unwrap_or(0);
    let end = snap.last().map(|s| s.elapsed_us).unwrap_or(origin);
    let axis = Axis::new(origin, end, columns);
    let chosen = chosen(snap, report);
    let listeners: Vec<ListenerPlot> = chosen
        .iter()
        .map(|v| listener_plot(snap, report, v, &axis))
        .collect();
    let rates: Vec<RatePlot> = RATES
        .iter()
        .filter_map(|key| rate_plot(snap, key, &axis))
        .collect();
    let instead = instead(snap, report, &listeners, &rates);
    Timeline {
        recording: Recording::of(snap, report),
        verdict: report.verdict,
        problems: problems(report),
        axis,
        left_out: report.listeners.len() - chosen.len(),
        listeners,
        rates,
        instead,
    }
}

/// The listeners drawn: the most troubled, fewer when none is named.
fn chosen<'r>(snap: &Snapshot, report: &'r Report) -> Vec<&'r ListenerView> {
    let at_most = match snap.targets.is_empty() {
        true => MOST_TROUBLED,
        false => NAMED_AT_MOST,
    };
    ListenerView::most_troubled(&report.listeners, at_most)
        .into_iter()
        .map(|(_, v)| v)
        .collect()
}

impl Recording {
    fn of(snap: &Snapshot, report: &Report) -> Recording {
        Recording {
            kernel: snap.kernel.clone(),
            netns: Where::of(&snap.netns),
            window_ms: report.window_ms,
            samples: snap.samples_taken.max(snap.samples.len() as u64),
            started_unix_ms: snap.started_unix_ms,
        }
    }
}

/// The ids of the report's problems, a run of the same id once.
fn problems(report: &Report) -> Vec<RuleId> {
    let mut ids: Vec<RuleId> = report
        .findings
        .iter()
        .filter(|f| f.severity > Severity::Ok)
        .map(|f| f.id)
        .collect();
    ids.dedup();
    ids
}

/// Why the axes would show nothing, if they would.
fn instead(
    snap: &Snapshot,
    report: &Report,
    listeners: &[ListenerPlot],
    rates: &[RatePlot],
) -> Option<Instead> {
    if listeners.is_empty() {
        return Some(Instead::NoListener {
            unmatched: snap.unmatched_targets(),
        });
    }
    if snap.samples.len() < 2 || report.window_ms == 0 {
        return Some(Instead::OneSample);
    }
    let quiet = listeners.iter().all(|l| {
        l.peak == 0
            && l.drops.window().unwrap_or(0) == 0
            && l.syn_recv
                .as_ref()
                .is_none_or(|s| s.iter().all(|c| c.max == 0))
            && l.wait.as_ref().is_none_or(|w| w.longest_s == 0.0)
    }) && rates.iter().all(|r| r.total == 0);
    // "Nothing dropped" only where drops were counted.
    quiet.then(|| Instead::Quiet {
        drops_counted: listeners.iter().all(|l| l.drops.window().is_some()),
    })
}

fn listener_plot(snap: &Snapshot, report: &Report, v: &ListenerView, axis: &Axis) -> ListenerPlot {
    let seen = seen(snap, v);
    let queue_points: Vec<(u64, u64)> = seen
        .iter()
        .map(|(t, l)| (*t, u64::from(l.recv_q)))
        .collect();
    let (peak_t, peak) = queue_points
        .iter()
        .fold((axis.origin_us, 0u64), |(bt, bv), &(t, v)| {
            if v > bv { (t, v) } else { (bt, bv) }
        });
    let syn_points: Vec<(u64, u64)> = seen
        .iter()
        .filter_map(|(t, l)| l.syn_recv.map(|n| (*t, u64::from(n))))
        .collect();
    let findings: Vec<(Severity, RuleId)> = report
        .findings
        .iter()
        .filter(|f| f.severity > Severity::Ok && f.inodes.contains(&v.inode))
        .map(|f| (f.severity, f.id))
        .collect();
    ListenerPlot {
        id: ListenerId {
            local: v.local.clone(),
            inode: v.inode,
            owners: v.owners.clone(),
        },
        backlog: v.send_q,
        capacity: v.capacity(),
        queue: downsample_max(&queue_points, axis),
        peak,
        peak_t_us: peak_t.saturating_sub(axis.origin_us),
        full: v.queue().full() || v.full_seen,
        drops: drops(&v.local, &seen, axis),
        drops_ever: v.drops,
        syn_recv: (!syn_points.is_empty()).then(|| downsample_max(&syn_points, axis)),
        wait: wait_plot(&seen, axis),
        findings,
    }
}

/// The wait lane of a listener seen in `seen`: None when no sample read the wait.
fn wait_plot(seen: &[(u64, &Listener)], axis: &Axis) -> Option<WaitPlot> {
    let readings: Vec<(u64, &Listener, Wait)> = seen
        .iter()
        .filter_map(|(t, l)| l.wait.map(|w| (*t, *l, w)))
        .collect();
    let last = readings.last()?.2;
    let secs = |ms: u32| f64::from(ms) / 1000.0;
    // Recv-Q counts this socket's accept queue: at 0 nobody waits in it, read or not (a Unix
    // listener's is read only while it holds connections; a recording made before children
    // went only to the SO_REUSEPORT members holding some told every member of them).
    let queue_ms = |l: &Listener, w: Option<Wait>| match (l.recv_q, w) {
        (0, _) => Some(0),
        (_, w) => w.map(|w| w.queued_oldest_ms),
    };
    let queued: Vec<(u64, f64)> = seen
        .iter()
        .filter_map(|(t, l)| Some((*t, secs(queue_ms(l, l.wait)?))))
        .collect();
    let after: Vec<(u64, f64)> = readings
        .iter()
        .map(|(t, _, w)| (*t, secs(w.unanswered_oldest_ms)))
        .collect();
    let (longest_t, longest) = readings
        .iter()
        .fold((axis.origin_us, 0), |(bt, bv), (t, l, w)| {
            let oldest = queue_ms(l, Some(*w))
                .unwrap_or(0)
                .max(w.unanswered_oldest_ms);
            if oldest > bv { (*t, oldest) } else { (bt, bv) }
        });
    Some(WaitPlot {
        accept_queue: downsample_max(&queued, axis),
        after_accept: downsample_max(&after, axis),
        readings: readings.len(),
        longest_s: secs(longest),
        longest_t_us: longest_t.saturating_sub(axis.origin_us),
        last,
        at_least: readings.iter().any(|(_, _, w)| w.at_least),
    })
}

/// The drops lane of a listener seen in `seen`.
fn drops(local: &Local, seen: &[(u64, &Listener)], axis: &Axis) -> Drops {
    if !local.counts_drops() {
        return Drops::NotCounted;
    }
    if !seen.iter().any(|(_, l)| l.drops.is_some()) {
        return Drops::Unreported;
    }
    let points = drop_points(seen);
    Drops::Counted {
        window: points.iter().map(|(_, n)| n).sum(),
        per_column: downsample_sum(&points, axis),
    }
}

/// The listener in every sample that has it: `(elapsed_us, its state)`.
fn seen<'s>(snap: &'s Snapshot, v: &ListenerView) -> Vec<(u64, &'s Listener)> {
    snap.samples
        .iter()
        .filter_map(|s| {
            s.listeners
                .iter()
                .find(|l| l.inode == v.inode && l.local == v.local)
                .map(|l| (s.elapsed_us, l))
        })
        .collect()
}

/// Increases of sk_drops between the samples that reported it, dated by the later one.
fn drop_points(seen: &[(u64, &Listener)]) -> Vec<(u64, u64)> {
    let mut points: Vec<(u64, u64)> = Vec::new();
    let mut before: Option<u32> = None;
    for (t, l) in seen {
        if let Some(d) = l.drops {
            if let Some(b) = before {
                points.push((*t, u64::from(crate::model::drops_between(b, d))));
            }
            before = Some(d);
        }
    }
    points
}

/// A counter's increases, per column, as a rate. None when the snapshot lacks the counter.
fn rate_plot(snap: &Snapshot, key: &'static str, axis: &Axis) -> Option<RatePlot> {
    let values: Vec<(u64, u64)> = snap
        .samples
        .iter()
        .filter_map(|s| Some((s.elapsed_us, *s.counters.as_ref()?.get(key)?)))
        .collect();
    if values.is_empty() {
        return None;
    }
    // A rise is a rate over the time in which it happened: the sampling interval when the
    // recorder sampled on a grid (it stores a sample when the listeners changed, and they
    // change with these counters), else the gap since the previous sample. Each column shows
    // the highest rate in it, so a peak rate reads the same however long the window is.
    let interval_us = snap.sample_interval_us;
    let rates: Vec<(u64, f64)> = values
        .windows(2)
        .filter(|w| w[1].1 > w[0].1)
        .map(|w| {
            let gap = w[1].0.saturating_sub(w[0].0);
            let over_us = match interval_us {
                0 => gap,
                i => gap.min(i),
            }
            .max(1);
            (w[1].0, (w[1].1 - w[0].1) as f64 * 1e6 / over_us as f64)
        })
        .collect();
    Some(RatePlot {
        counter: key,
        per_s: downsample_max(&rates, axis)
            .into_iter()
            .map(|c| (c.t_us, c.max))
            .collect(),
        total: snap.counter_delta(key).unwrap_or(0),
    })
}

/// `lab --veth`: the clients' namespace's connections to the lab's server over the burst, on
/// the server recording's time axis, and doctor's problems there.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RemotePlot {
    pub server: SocketAddr,
    /// Connects waiting for a SYN-ACK, and of them those that sent their SYN again.
    pub syn_sent: Vec<Column<u64>>,
    pub syn_retried: Vec<Column<u64>>,
    /// Established connections whose request waits unacknowledged, sent again.
    pub unacked: Vec<Column<u64>>,
    /// The highest of the three at any reading.
    pub peak: u64,
    /// Readings of the server's connections (the clients' namespace reads them about every
    /// 100 ms, less often than the server's listener).
    pub readings: usize,
    pub verdict: Severity,
    pub problems: Vec<RuleId>,
}

/// The clients' side of `lab --veth`: `snap` recorded in their namespace, diagnosed as
/// `report`, its clock `offset_us` after the server recording's, whose `axis` it is drawn on.
pub(crate) fn remote_plot(
    snap: &Snapshot,
    report: &Report,
    server: SocketAddr,
    offset_us: i64,
    axis: &Axis,
) -> RemotePlot {
    let readings: Vec<(u64, &Remote)> = snap
        .samples
        .iter()
        .filter_map(|s| {
            let r = s.outgoing.as_ref()?.get(server)?;
            // On the server's clock; a reading before its first sample falls in the first column.
            let t = (s.elapsed_us as i64).saturating_add(offset_us).max(0) as u64;
            Some((t, r))
        })
        .collect();
    let series = |f: fn(&Remote) -> u32| -> Vec<(u64, u64)> {
        readings
            .iter()
            .map(|(t, r)| (*t, u64::from(f(r))))
            .collect()
    };
    let (syn_sent, syn_retried, unacked) = (
        series(|r| r.syn_sent),
        series(|r| r.syn_retried),
        series(|r| r.unacked),
    );
    let peak = syn_sent
        .iter()
        .chain(&unacked)
        .map(|p| p.1)
        .max()
        .unwrap_or(0);
    RemotePlot {
        server,
        syn_sent: downsample_max(&syn_sent, axis),
        syn_retried: downsample_max(&syn_retried, axis),
        unacked: downsample_max(&unacked, axis),
        peak,
        readings: readings.len(),
        verdict: report.verdict,
        problems: problems(report),
    }
}

/// Counts of the lab's clients per outcome, and their connect latencies.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Clients {
    /// `(class, count)`, every class, in the lab's order.
    pub outcomes: Vec<(Outcome, usize)>,
    /// Connect latency histogram on a log scale: `(from ms, to ms, clients)`.
    pub latency: Vec<(f64, f64, usize)>,
    pub connected: usize,
    /// Clients that never connected (timeout, refused, reset at connect).
    pub not_connected: usize,
    /// The longest connect, ms.
    pub max_ms: f64,
    /// The clients' connect timeout, ms: the right end of the latency axis.
    pub timeout_ms: f64,
    /// TCP clients: a dropped SYN is resent at whole seconds, which the histogram marks. Unix
    /// clients never retry.
    pub syn_retries: bool,
}

/// Histogram bins per decade of connect latency.
pub(crate) const BINS_PER_DECADE: usize = 12;
/// The latency axis starts here (ms): loopback connects take tens of microseconds.
pub(crate) const LATENCY_FROM_MS: f64 = 0.01;

/// The clients' side of a lab run: outcome counts and the connect-latency histogram (log bins,
/// so the SYN retransmit steps at whole seconds stand apart from the microsecond connects).
pub(crate) fn clients(
    outcomes: &[(Outcome, usize)],
    connect_ms: &[f64],
    total: usize,
    timeout_ms: f64,
) -> Clients {
    let top = timeout_ms.max(connect_ms.iter().copied().fold(1.0, f64::max));
    let decades = (top / LATENCY_FROM_MS).log10().ceil().max(1.0) as usize;
    let n = decades * BINS_PER_DECADE;
    let edge = |i: usize| LATENCY_FROM_MS * 10f64.powf(i as f64 / BINS_PER_DECADE as f64);
    let mut counts = vec![0usize; n];
    for &ms in connect_ms {
        let i = ((ms.max(LATENCY_FROM_MS) / LATENCY_FROM_MS).log10() * BINS_PER_DECADE as f64)
            .floor()
            .max(0.0) as usize;
        counts[i.min(n - 1)] += 1;
    }
    Clients {
        outcomes: outcomes.to_vec(),
        latency: counts
            .iter()
            .enumerate()
            .map(|(i, c)| (edge(i), edge(i + 1), *c))
            .collect(),
        connected: connect_ms.len(),
        not_connected: total.saturating_sub(connect_ms.len()),
        max_ms: connect_ms.iter().copied().fold(0.0, f64::max),
        timeout_ms,
        syn_retries: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A recording from a client's namespace (fixtures/snapshots), drawn on an axis of its
    /// own and then half a window later, as `lab --veth` draws the clients' recording on the
    /// server's clock.
    #[test]
    fn the_clients_side_is_drawn_on_the_servers_clock() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/snapshots/6.18-client-slow-abort0-target.json"
        );
        let snap = crate::store::load(std::path::Path::new(path)).expect("fixture loads");
        let report = crate::doctor::diagnose(&snap);
        let server: SocketAddr = "10.200.0.1:9000".parse().unwrap();
        let (first, last) = (snap.first().unwrap(), snap.last().unwrap());
        let axis = Axis::new(first.elapsed_us, last.elapsed_us, 100);
        let same = remote_plot(&snap, &report, server, 0, &axis);
        let view = report.servers.iter().find(|v| v.addr == server).unwrap();
        assert!(same.readings > 0);
        assert_eq!(
            same.peak,
            u64::from(view.syn_sent_peak.max(view.unacked_peak))
        );
        assert_eq!(
            same.syn_sent.iter().map(|c| c.max).max(),
            Some(u64::from(view.syn_sent_peak))
        );
        let half = (axis.span_us / 2) as i64;
        let later = remote_plot(&snap, &report, server, half, &axis);
        assert_eq!(later.readings, same.readings);
        let first_column = |p: &RemotePlot| p.syn_sent.first().map(|c| c.column).unwrap();
        assert!(
            first_column(&later) >= first_column(&same) + 49,
            "{later:?}"
        );
        // A reading before the server's first sample is kept, in the first column.
        let earlier = remote_plot(&snap, &report, server, -(axis.span_us as i64), &axis);
        assert_eq!(first_column(&earlier), 0);
    }

    #[test]
    fn buckets_keep_max_and_last_and_sums_add_up() {
        let axis = Axis::new(0, 1000, 10);
        let pts = [(0, 1), (50, 9), (60, 2), (100, 3), (999, 4), (1000, 5)];
        let cols = downsample_max(&pts, &axis);
        assert_eq!(cols.len(), 3);
        assert_eq!((cols[0].max, cols[0].last), (9, 2));
        assert_eq!((cols[1].max, cols[1].last), (3, 3));
        assert_eq!((cols[2].column, cols[2].max, cols[2].last), (9, 5, 5));
        let sums = downsample_sum(&[(10, 2), (20, 3), (500, 0), (999, 7)], &axis);
        assert_eq!(sums, vec![(0, 5), (900, 7)]);
    }

    #[test]
    fn the_wait_lane_keeps_each_place_s_readings_and_the_longest() {
        let listener = |wait: Option<Wait>| Listener {
            local: Local::Inet("127.0.0.1:8100".parse().unwrap()),
            inode: 7,
            uid: 0,
            recv_q: 2,
            send_q: 4096,
            drops: Some(0),
            syn_recv: None,
            v6only: None,
            wait,
        };
        let after = |n, ms| {
            Some(Wait {
                unanswered: n,
                unanswered_oldest_ms: ms,
                ..Wait::default()
            })
        };
        // Read at 0, 0.1 and 0.3 s (0.2 s is a sample that did not read it), then served.
        let ls = [
            listener(after(5, 0)),
            listener(after(5, 100)),
            listener(None),
            listener(after(3, 2_900)),
            listener(after(0, 0)),
        ];
        let seen: Vec<(u64, &Listener)> = [0, 100_000, 200_000, 300_000, 400_000]
            .into_iter()
            .zip(&ls)
            .collect();
        let axis = Axis::new(0, 400_000, 4);
        let w = wait_plot(&seen, &axis).expect("read");
        assert_eq!((w.readings, w.longest_s, w.longest_t_us), (4, 2.9, 300_000));
        let after: Vec<(usize, f64, f64)> = w
            .after_accept
            .iter()
            .map(|c| (c.column, c.max, c.last))
            .collect();
        assert_eq!(after, [(0, 0.0, 0.0), (1, 0.1, 0.1), (3, 2.9, 0.0)]);
        assert!(w.accept_queue.iter().all(|c| c.max == 0.0));
        assert_eq!(w.last, Wait::default());
        assert!(!w.at_least);
        // A Unix listener: read while its queue held connections (a lower bound), not once it
        // emptied, when Recv-Q 0 says nobody waits in it.
        let pending = |recv_q, wait| Listener {
            recv_q,
            local: Local::Unix(crate::model::UnixLocal {
                name: crate::model::UnixName::Path(crate::model::Name::new(b"/run/a.sock")),
                kind: crate::model::UnixKind::Stream,
                vfs: None,
            }),
            ..listener(wait)
        };
        let queued = |ms| {
            Some(Wait {
                queued: 2,
                queued_oldest_ms: ms,
                at_least: true,
                ..Wait::default()
            })
        };
        let ls = [
            pending(2, queued(0)),
            pending(2, queued(1_500)),
            pending(0, None),
        ];
        let seen: Vec<(u64, &Listener)> = [0, 200_000, 400_000].into_iter().zip(&ls).collect();
        let w = wait_plot(&seen, &axis).expect("read");
        let queue: Vec<(usize, f64)> = w.accept_queue.iter().map(|c| (c.column, c.max)).collect();
        assert_eq!(queue, [(0, 0.0), (2, 1.5), (3, 0.0)]);
        assert!(w.at_least && w.readings == 2);
        // A member of an SO_REUSEPORT group told of its group's queued children while its own
        // queue was empty (recordings before they went to the members holding some).
        let told = [
            Listener {
                recv_q: 0,
                ..listener(queued(1_500))
            },
            listener(queued(1_600)),
        ];
        let seen: Vec<(u64, &Listener)> = [0, 400_000].into_iter().zip(&told).collect();
        let w = wait_plot(&seen, &axis).expect("read");
        let queue: Vec<(usize, f64)> = w.accept_queue.iter().map(|c| (c.column, c.max)).collect();
        assert_eq!(queue, [(0, 0.0), (3, 1.6)]);
        assert_eq!((w.longest_s, w.longest_t_us), (1.6, 400_000));
        // No sample read it: no lane.
        let unread = [listener(None), listener(None)];
        let seen: Vec<(u64, &Listener)> = [0, 1].into_iter().zip(&unread).collect();
        assert_eq!(wait_plot(&seen, &axis), None);
    }

    #[test]
    fn latency_bins_cover_the_timeout() {
        let c = clients(&[(Outcome::Served, 3)], &[0.05, 1000.0, 3005.0], 4, 5000.0);
        assert_eq!(c.connected, 3);
        assert_eq!(c.not_connected, 1);
        assert!(c.latency.last().unwrap().1 >= 5000.0);
        assert_eq!(c.latency.iter().map(|b| b.2).sum::<usize>(), 3);
        let second = c
            .latency
            .iter()
            .find(|b| b.0 <= 1000.0 && 1000.0 < b.1)
            .unwrap();
        assert_eq!(second.2, 1);
    }
}

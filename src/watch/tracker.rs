//! Peak-hold and deltas between refreshes: fed queue samples and full samples, it returns what
//! each refresh shows, its recent history per listener (for the terminal's sparkline), and the
//! summary at the end. Pure: no clock, no I/O.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use crate::catalogue::{
    ATTEMPT_FAILS, CLIENT_RATES, ESTAB_RESETS, LISTEN_DROPS, RESET_RATES, WATCH_RATES, short,
};
use crate::collect::InodeHasher;
use crate::model::{Counters, Listener, Local, Outgoing, Owner, QueuePeak, Remote, Wait};

/// A listener in the tracker's maps: its address and inode, as `Listener::key`, hashed by the
/// inode alone. The kernel's inodes are distinct while their sockets live, so one
/// multiplication spreads them (`InodeHasher`); SipHash over a Unix path, or a `BTreeMap`
/// comparing paths, cost more than the rest of a row in a refresh over 2,000 listeners.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key(Local, u64);

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.1);
    }
}

fn key(l: &Listener) -> Key {
    Key(l.local.clone(), l.inode)
}

type ByKey<V> = HashMap<Key, V, BuildHasherDefault<InodeHasher>>;

/// One listener in one refresh.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Row {
    pub local: Local,
    pub inode: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
    pub recv_q: u32,
    /// Highest Recv-Q in the samples since the previous refresh.
    pub peak: u32,
    /// The samples that saw it since the previous refresh, this one's included: those of the
    /// whole scope, and a hot listener's own (one per `hot_interval_us`).
    pub samples: u32,
    pub send_q: u32,
    /// peak / (B+1), percent.
    pub fill_pct: u32,
    /// sk_drops increase per second since the previous refresh; None when unknown.
    pub drops_per_s: Option<f64>,
    pub drops_delta: Option<u32>,
    pub syn_recv: Option<u32>,
    /// Its clients' wait at the refresh (a refresh is a full sample, which reads it): how many
    /// wait in the accept queue and after accept(), and the oldest of each. Absent for a Unix
    /// listener, a listener that is gone, or when the established sockets could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait: Option<Wait>,
    /// `new` in the first refresh it appears in (after the first), `gone` when it disappeared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<&'static str>,
    /// The listener's recent refreshes, oldest first, when the tracker keeps a history (on a
    /// terminal); empty otherwise and for a listener that is gone. Not in the JSON output.
    #[serde(skip)]
    pub history: Vec<Point>,
}

/// One slot of a listener's history: one refresh, or several merged when a minute of refreshes
/// would not fit the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Point {
    /// The fullest peak of the slot's refreshes, against the backlog it had then.
    pub fill: QueuePeak,
    /// sk_drops rose in one of the slot's refreshes; false when it did not or is unknown.
    pub dropped: bool,
}

impl Point {
    /// Keeps the fuller peak (relative to each one's B+1) and any drop.
    fn merge(&mut self, other: Point) {
        let (a, b) = (self.fill, other.fill);
        if u64::from(b.peak) * a.capacity() > u64::from(a.peak) * b.capacity() {
            self.fill = b;
        }
        self.dropped |= other.dropped;
    }
}

/// How much history each listener keeps: `slots` slots of `per_slot` refreshes each. The
/// default keeps none (line and JSON output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HistoryShape {
    pub slots: usize,
    pub per_slot: u32,
    /// Time one slot covers: `per_slot` refreshes.
    pub slot_time: Duration,
}

/// A sparkline shorter than this says too little to be worth its columns.
pub(crate) const MIN_SLOTS: usize = 10;

impl HistoryShape {
    /// The last minute of refreshes at `interval` — or the last MIN_SLOTS refreshes when fewer
    /// fit in a minute — in at most `room` slots: when one refresh per slot does not fit,
    /// consecutive refreshes share a slot. No history when `room` is under MIN_SLOTS.
    pub fn minute(interval: Duration, room: usize) -> HistoryShape {
        if room < MIN_SLOTS || interval.is_zero() {
            return HistoryShape::default();
        }
        let minute = Duration::from_secs(60).as_nanos();
        let refreshes = minute.div_ceil(interval.as_nanos()).max(MIN_SLOTS as u128);
        let per_slot = refreshes.div_ceil(room as u128);
        let slots = refreshes.div_ceil(per_slot);
        // Both fit: per_slot <= refreshes <= 60 s / 1 ns, slots <= room.
        let per_slot = u32::try_from(per_slot).unwrap_or(u32::MAX);
        HistoryShape {
            slots: usize::try_from(slots).unwrap_or(room),
            per_slot,
            slot_time: interval.saturating_mul(per_slot),
        }
    }
}

/// One listener's history: a ring of at most `HistoryShape::slots` points.
#[derive(Debug, Default)]
struct History {
    points: VecDeque<Point>,
    /// The slot number (refreshes / per_slot) of the last point: every listener's slots start
    /// at the same refreshes, so that a column of the sparkline is one time for all rows.
    last_slot: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Refresh {
    /// RFC 3339, UTC.
    pub time: String,
    pub elapsed_ms: u64,
    /// Period of the samples of the whole scope, microseconds: every listener is seen at least
    /// this often. --sample-interval, or longer when dumping every listener that often would
    /// cost more than the budget (`watch::Budget`).
    pub sample_interval_us: u64,
    /// Listeners hot now (a queue or drops in the last seconds, or the targets): sampled alone
    /// every `hot_interval_us`, by exact requests.
    pub hot: u32,
    pub hot_interval_us: u64,
    /// CPU time this refresh took (its full sample, the owners, the rows written), accounted
    /// apart from sampling's budget.
    pub refresh_cpu_us: u64,
    /// Namespace counters per second since the previous refresh; absent when the kernel lacks them.
    pub rates: BTreeMap<String, f64>,
    pub listeners: Vec<Row>,
    /// The servers this namespace connects to that are in trouble (or named as targets), at
    /// the refresh's reading; absent when there are none (a quiet client) or they could not
    /// be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outgoing: Option<OutgoingRows>,
}

/// The connecting side in one refresh: one row per server, most troubled first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct OutgoingRows {
    pub remotes: Vec<RemoteRow>,
    /// Servers in trouble the reading left out (it keeps `Outgoing::KEPT`).
    #[serde(skip_serializing_if = "is_zero")]
    pub more: u32,
    /// The namespace's EstabResets + AttemptFails per second since the previous refresh:
    /// connections reset and connects refused or reset. The counters name no socket, so this
    /// is the whole namespace's (both ends when client and server share it); absent when the
    /// kernel lacks them or there is no previous refresh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resets_per_s: Option<f64>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One server in one refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct RemoteRow {
    /// The server's address and port.
    pub remote: SocketAddr,
    /// Connects waiting for its SYN-ACK (SYN_SENT) at the refresh.
    pub syn_sent: u32,
    /// The most seen at the readings since the previous refresh (every ~100 ms).
    pub syn_sent_peak: u32,
    /// Of `syn_sent`, those whose SYN was sent again at least once.
    pub syn_retried: u32,
    /// The most times one of them has sent its SYN again (after N, it has waited at least
    /// 1, 3, 7 … s).
    pub syn_retrans_max: u8,
    /// ESTABLISHED connections to it; absent when not read at this refresh (only while the
    /// namespace retransmits, or for a target).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub established: Option<u32>,
    /// Of them, those with data unacknowledged and sent again; absent when not read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unacked: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unacked_retrans_max: Option<u8>,
    /// Of `unacked`, those the server never acknowledged a byte of (targets only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub never_acked: Option<u32>,
    /// TIME_WAIT sockets to it, each holding a local port; absent when not read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_wait: Option<u32>,
}

impl RemoteRow {
    fn new(r: &Remote, peak: u32) -> RemoteRow {
        let read = r.established.is_some();
        RemoteRow {
            remote: r.addr,
            syn_sent: r.syn_sent,
            syn_sent_peak: peak.max(r.syn_sent),
            syn_retried: r.syn_retried,
            syn_retrans_max: r.syn_retrans_max,
            established: r.established,
            unacked: read.then_some(r.unacked),
            unacked_retrans_max: read.then_some(r.unacked_retrans_max),
            never_acked: r.never_acked,
            time_wait: r.time_wait,
        }
    }

    /// How much trouble, for the order of the rows: connects waiting plus requests waiting.
    pub(crate) fn weight(&self) -> u64 {
        u64::from(self.syn_sent_peak) + u64::from(self.unacked.unwrap_or(0))
    }
}

/// One server over the whole run, for the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct RemoteSummary {
    pub remote: SocketAddr,
    /// The most connects seen waiting for its SYN-ACK at one reading.
    pub syn_sent_peak: u32,
    /// The most times one SYN to it was sent again.
    pub syn_retrans_max: u8,
    /// The most connections seen with data unacknowledged at one reading.
    pub unacked_peak: u32,
}

impl RemoteSummary {
    fn weight(&self) -> u64 {
        u64::from(self.syn_sent_peak) + u64::from(self.unacked_peak)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ListenerSummary {
    pub local: Local,
    pub inode: u64,
    pub send_q: u32,
    pub peak: u32,
    /// When the peak was first reached.
    pub peak_time: String,
    /// sk_drops accumulated while watching; None when unknown.
    pub drops: Option<u64>,
    /// The longest any client waited (accept queue or after accept) in any sample that read
    /// the wait, ms; absent when none did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub longest_wait_ms: Option<u32>,
    /// That longest wait is a lower bound (a Unix listener's pending connections carry no
    /// timestamp).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub longest_wait_at_least: bool,
}

impl ListenerSummary {
    /// Before its first refresh.
    fn of(l: &Listener) -> ListenerSummary {
        ListenerSummary {
            local: l.local.clone(),
            inode: l.inode,
            send_q: 0,
            peak: 0,
            peak_time: String::new(),
            drops: None,
            longest_wait_ms: None,
            longest_wait_at_least: false,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct Summary {
    pub refreshes: u64,
    pub samples: u64,
    pub elapsed_ms: u64,
    pub listeners: Vec<ListenerSummary>,
    /// Counter increases over the whole run.
    pub totals: BTreeMap<String, u64>,
    /// The refresh with the most drops (or the fullest queue when nothing dropped).
    pub worst: Option<Worst>,
    /// The servers seen in trouble, most troubled first, `Outgoing::KEPT` at most.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remotes: Vec<RemoteSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Worst {
    pub time: String,
    pub what: String,
}

/// Each listener's process label (`model::process_label`) by inode: made once per change of
/// the owners, not at every refresh.
pub(crate) type Labels = HashMap<u64, String>;

/// The labels of the listeners `owners` hold.
pub(crate) fn labels(owners: &[Owner]) -> Labels {
    let mut owner_of: HashMap<u64, Vec<Owner>> = HashMap::new();
    for o in owners {
        owner_of.entry(o.inode).or_default().push(o.clone());
    }
    owner_of
        .into_iter()
        .filter_map(|(inode, os)| Some((inode, crate::model::process_label(&os)?)))
        .collect()
}

/// Peak-hold and deltas between refreshes. Pure: fed samples, it returns refreshes.
#[derive(Default)]
pub(crate) struct Tracker {
    /// Peak Recv-Q per listener since the last refresh (those that had a queue, or were hot),
    /// and the hot samples that saw it.
    peaks: ByKey<(u32, u32)>,
    /// Samples of the whole scope since the last refresh.
    scope_samples: u32,
    /// The longest wait per listener read since the last refresh, ms, and whether it is a
    /// lower bound (for the summary).
    longest_waits: ByKey<(u32, bool)>,
    /// State at the previous refresh: drops, and the listeners present.
    prev_drops: ByKey<Option<u32>>,
    prev_counters: Option<Counters>,
    prev_elapsed: Duration,
    first_counters: Option<Counters>,
    last_counters: Option<Counters>,
    pub(crate) refreshes: u64,
    /// Per listener ever seen; in the order of their keys at the end.
    summary: ByKey<ListenerSummary>,
    worst: Option<(f64, u32, Worst)>,
    shape: HistoryShape,
    /// Per listener present at the last refresh; a listener that is gone loses its history.
    history: ByKey<History>,
    /// The latest reading of the connecting side since the last refresh.
    outgoing: Option<Outgoing>,
    /// The most SYN_SENT per server at the readings since the last refresh.
    syn_peaks: HashMap<SocketAddr, u32>,
    /// Per server over the run, `Outgoing::KEPT` at most (the least troubled make room).
    remotes: HashMap<SocketAddr, RemoteSummary>,
}

impl Tracker {
    /// A tracker that also keeps a history of each listener's peaks, shaped by `shape`.
    pub(crate) fn with_history(shape: HistoryShape) -> Tracker {
        Tracker {
            shape,
            ..Tracker::default()
        }
    }

    /// Adds this refresh's peak to the listener's history and returns the history to show.
    fn remember(&mut self, key: &Key, point: Point) -> Vec<Point> {
        if self.shape.slots == 0 {
            return Vec::new();
        }
        let slot = self.refreshes / u64::from(self.shape.per_slot.max(1));
        let h = self.history.entry(key.clone()).or_default();
        match h.points.back_mut() {
            Some(last) if h.last_slot == slot => last.merge(point),
            _ => {
                if h.points.len() == self.shape.slots {
                    h.points.pop_front();
                }
                h.points.push_back(point);
                h.last_slot = slot;
            }
        }
        h.points.iter().copied().collect()
    }

    /// A reading of the connecting side (every ~100 ms, and at every refresh): its peaks are
    /// held until the next refresh, which shows the latest reading.
    pub(crate) fn observe_outgoing(&mut self, o: &Outgoing) {
        for r in &o.remotes {
            let p = self.syn_peaks.entry(r.addr).or_default();
            *p = (*p).max(r.syn_sent);
            if !r.troubled() && !self.remotes.contains_key(&r.addr) {
                continue;
            }
            let s = self.remotes.entry(r.addr).or_insert(RemoteSummary {
                remote: r.addr,
                syn_sent_peak: 0,
                syn_retrans_max: 0,
                unacked_peak: 0,
            });
            s.syn_sent_peak = s.syn_sent_peak.max(r.syn_sent);
            s.syn_retrans_max = s.syn_retrans_max.max(r.syn_retrans_max);
            s.unacked_peak = s.unacked_peak.max(r.unacked);
        }
        // One reading may bring up to `KEPT` new servers: evict until the bound holds.
        while self.remotes.len() > Outgoing::KEPT {
            let least = self
                .remotes
                .values()
                .min_by_key(|s| (s.weight(), std::cmp::Reverse(s.remote)))
                .map(|s| s.remote);
            match least {
                Some(addr) => self.remotes.remove(&addr),
                None => break,
            };
        }
        self.outgoing = Some(o.clone());
    }

    /// The rows of the latest reading since the last refresh, most troubled first; None when
    /// it listed no server.
    fn outgoing_rows(&mut self, rates: &BTreeMap<String, f64>) -> Option<OutgoingRows> {
        let o = self.outgoing.take()?;
        let peaks = std::mem::take(&mut self.syn_peaks);
        if o.remotes.is_empty() {
            return None;
        }
        let mut remotes: Vec<RemoteRow> = o
            .remotes
            .iter()
            .map(|r| RemoteRow::new(r, peaks.get(&r.addr).copied().unwrap_or(0)))
            .collect();
        remotes.sort_by(|a, b| b.weight().cmp(&a.weight()).then(a.remote.cmp(&b.remote)));
        let resets = [ESTAB_RESETS, ATTEMPT_FAILS].map(|k| rates.get(short(k)).copied());
        Some(OutgoingRows {
            remotes,
            more: o.more,
            resets_per_s: match resets {
                [Some(a), Some(b)] => Some(a + b),
                _ => None,
            },
        })
    }

    /// A queue sample between refreshes: of the whole scope, or of the hot listeners alone
    /// (`partial`). Only a listener with a queue, or a hot one, costs a map entry: a sample of
    /// 2,000 idle listeners only counts itself.
    pub(crate) fn observe(&mut self, listeners: &[Listener], partial: bool) {
        if !partial {
            self.scope_samples += 1;
        }
        for l in listeners {
            if partial || l.recv_q > 0 {
                let p = self.peaks.entry(key(l)).or_default();
                *p = (p.0.max(l.recv_q), p.1 + u32::from(partial));
            }
            if let Some(w) = l.wait {
                let m = self.longest_waits.entry(key(l)).or_default();
                if w.oldest_ms() >= m.0 {
                    *m = (w.oldest_ms(), w.at_least);
                }
            }
        }
    }

    /// A full sample at a refresh: returns the refresh to show.
    pub(crate) fn refresh(
        &mut self,
        listeners: &[Listener],
        counters: Option<&Counters>,
        elapsed: Duration,
        time: String,
        labels: &Labels,
    ) -> Refresh {
        self.observe(listeners, false);
        let secs = elapsed.saturating_sub(self.prev_elapsed).as_secs_f64();
        let mut rows: Vec<Row> = listeners
            .iter()
            .map(|l| {
                let process = labels.get(&l.inode).cloned();
                self.row(l, process, secs, &time)
            })
            .collect();
        let seen: HashSet<Key, BuildHasherDefault<InodeHasher>> =
            listeners.iter().map(key).collect();
        rows.extend(self.gone(&seen));
        if self.history.len() > seen.len() {
            self.history.retain(|k, _| seen.contains(k));
        }
        let rates = self.rates(counters, secs);
        // Trouble first: dropping, then fullest, then the longest wait, then by address.
        rows.sort_by(|a, b| {
            let da = a.drops_per_s.unwrap_or(0.0);
            let db = b.drops_per_s.unwrap_or(0.0);
            let wait = |r: &Row| r.wait.map_or(0, |w| w.oldest_ms());
            db.total_cmp(&da)
                .then(b.fill_pct.cmp(&a.fill_pct))
                .then(wait(b).cmp(&wait(a)))
                .then(a.local.cmp(&b.local))
        });
        if self.refreshes > 0 {
            self.note_worst(&rows, &rates, &time);
        }
        let outgoing = self.outgoing_rows(&rates);
        self.advance(listeners, counters, elapsed);
        Refresh {
            time,
            elapsed_ms: elapsed.as_millis() as u64,
            sample_interval_us: 0,
            hot: 0,
            hot_interval_us: 0,
            refresh_cpu_us: 0,
            rates,
            listeners: rows,
            outgoing,
        }
    }

    /// One present listener's row, remembered in its history and its summary.
    fn row(&mut self, l: &Listener, process: Option<String>, secs: f64, time: &str) -> Row {
        let key = key(l);
        let (peak, hot) = self.peaks.get(&key).copied().unwrap_or((l.recv_q, 0));
        let samples = self.scope_samples + hot;
        let prev = self.prev_drops.get(&key).copied();
        let drops_delta = match (prev.flatten(), l.drops) {
            (Some(a), Some(b)) => Some(crate::model::drops_between(a, b)),
            _ => None,
        };
        let fill = QueuePeak {
            peak,
            backlog: l.send_q,
        };
        let history = self.remember(
            &key,
            Point {
                fill,
                dropped: drops_delta.is_some_and(|d| d > 0),
            },
        );
        let longest = self.longest_waits.get(&key).copied();
        let s = self
            .summary
            .entry(key)
            .or_insert_with(|| ListenerSummary::of(l));
        s.send_q = l.send_q;
        if let Some((ms, at_least)) = longest
            && s.longest_wait_ms.is_none_or(|before| ms >= before)
        {
            (s.longest_wait_ms, s.longest_wait_at_least) = (Some(ms), at_least);
        }
        if peak > s.peak || s.peak_time.is_empty() {
            s.peak = peak;
            s.peak_time = time.to_string();
        }
        if let Some(d) = drops_delta {
            s.drops = Some(s.drops.unwrap_or(0) + u64::from(d));
        } else if l.drops.is_some() && s.drops.is_none() {
            s.drops = Some(0);
        }
        Row {
            local: l.local.clone(),
            inode: l.inode,
            process,
            recv_q: l.recv_q,
            peak,
            samples,
            send_q: l.send_q,
            fill_pct: fill.fill_pct(),
            drops_per_s: drops_delta
                .filter(|_| secs > 0.0)
                .map(|d| f64::from(d) / secs),
            drops_delta,
            syn_recv: l.syn_recv,
            wait: l.wait,
            event: (prev.is_none() && self.refreshes > 0).then_some("new"),
            history,
        }
    }

    /// Rows for the listeners of the previous refresh that are not in `seen`, in the order of
    /// their keys.
    fn gone(&self, seen: &HashSet<Key, BuildHasherDefault<InodeHasher>>) -> Vec<Row> {
        let mut gone: Vec<&Key> = self
            .prev_drops
            .keys()
            .filter(|k| !seen.contains(*k))
            .collect();
        gone.sort_unstable();
        gone.into_iter()
            .map(|key| Row {
                local: key.0.clone(),
                inode: key.1,
                process: None,
                recv_q: 0,
                peak: self.peaks.get(key).map_or(0, |p| p.0),
                samples: self.peaks.get(key).map_or(0, |p| p.1),
                send_q: 0,
                fill_pct: 0,
                drops_per_s: None,
                drops_delta: None,
                syn_recv: None,
                wait: None,
                event: Some("gone"),
                history: Vec::new(),
            })
            .collect()
    }

    /// The namespace counters per second since the previous refresh.
    fn rates(&self, counters: Option<&Counters>, secs: f64) -> BTreeMap<String, f64> {
        let mut rates = BTreeMap::new();
        if let (Some(prev), Some(now)) = (&self.prev_counters, counters)
            && secs > 0.0
        {
            for key in WATCH_RATES.iter().chain(&RESET_RATES).chain(&CLIENT_RATES) {
                if let (Some(a), Some(b)) = (prev.get(*key), now.get(*key)) {
                    rates.insert(short(key).to_string(), b.saturating_sub(*a) as f64 / secs);
                }
            }
        }
        rates
    }

    /// Keeps this refresh as the worst moment when it is: most drops per second, then fullest
    /// queue. `rows` are sorted, trouble first.
    fn note_worst(&mut self, rows: &[Row], rates: &BTreeMap<String, f64>, time: &str) {
        let drops_now: f64 = rates
            .get(short(LISTEN_DROPS))
            .copied()
            .unwrap_or_else(|| rows.iter().filter_map(|r| r.drops_per_s).sum());
        let fill_now = rows.iter().map(|r| r.fill_pct).max().unwrap_or(0);
        let better = match &self.worst {
            None => drops_now > 0.0 || fill_now > 0,
            Some((d, f, _)) => (drops_now, fill_now) > (*d, *f),
        };
        if !better {
            return;
        }
        let top = rows.first().map(|r| {
            format!(
                "{} peak {}/{} ({}%)",
                r.local,
                r.peak,
                r.send_q.saturating_add(1),
                r.fill_pct
            )
        });
        let what = format!(
            "{drops_now:.0} listen drops/s{}",
            top.map(|t| format!("; {t}")).unwrap_or_default()
        );
        let worst = Worst {
            time: time.to_string(),
            what,
        };
        self.worst = Some((drops_now, fill_now, worst));
    }

    /// This refresh becomes the previous one.
    fn advance(&mut self, listeners: &[Listener], counters: Option<&Counters>, elapsed: Duration) {
        self.peaks.clear();
        self.scope_samples = 0;
        self.longest_waits.clear();
        self.prev_drops.clear();
        self.prev_drops
            .extend(listeners.iter().map(|l| (key(l), l.drops)));
        if counters.is_some() {
            self.prev_counters = counters.cloned();
            if self.first_counters.is_none() {
                self.first_counters = counters.cloned();
            }
            self.last_counters = counters.cloned();
        }
        self.prev_elapsed = elapsed;
        self.refreshes += 1;
    }

    pub(crate) fn summary(&self, samples: u64, elapsed: Duration) -> Summary {
        let mut totals = BTreeMap::new();
        if let (Some(a), Some(b)) = (&self.first_counters, &self.last_counters) {
            for key in WATCH_RATES.iter().chain(&RESET_RATES).chain(&CLIENT_RATES) {
                if let (Some(x), Some(y)) = (a.get(*key), b.get(*key)) {
                    totals.insert(short(key).to_string(), y.saturating_sub(*x));
                }
            }
        }
        let mut remotes: Vec<RemoteSummary> = self.remotes.values().cloned().collect();
        remotes.sort_by(|a, b| b.weight().cmp(&a.weight()).then(a.remote.cmp(&b.remote)));
        Summary {
            refreshes: self.refreshes,
            samples,
            elapsed_ms: elapsed.as_millis() as u64,
            listeners: {
                let mut all: Vec<(&Key, &ListenerSummary)> = self.summary.iter().collect();
                all.sort_unstable_by(|a, b| a.0.cmp(b.0));
                all.into_iter().map(|(_, s)| s.clone()).collect()
            },
            totals,
            worst: self.worst.as_ref().map(|(_, _, w)| w.clone()),
            remotes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::rfc3339;
    use std::net::SocketAddr;

    fn l(port: u16, inode: u64, recv_q: u32, drops: Option<u32>) -> Listener {
        Listener {
            local: SocketAddr::from(([127, 0, 0, 1], port)).into(),
            inode,
            uid: 0,
            recv_q,
            send_q: 5,
            drops,
            syn_recv: None,
            v6only: None,
            wait: None,
        }
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_572_007_123), "2026-11-25T02:00:07.123Z");
    }

    #[test]
    fn resets_by_cause_are_rates_and_totals_and_missing_ones_absent() {
        let mut t = Tracker::default();
        let c = |close: u64, out: u64| {
            Counters::from([
                ("TcpExt:TCPAbortOnClose".to_string(), close),
                ("Tcp:OutRsts".to_string(), out),
            ])
        };
        t.refresh(
            &[],
            Some(&c(0, 0)),
            Duration::ZERO,
            "t0".into(),
            &Labels::new(),
        );
        let r = t.refresh(
            &[],
            Some(&c(20, 30)),
            Duration::from_secs(2),
            "t1".into(),
            &Labels::new(),
        );
        assert_eq!(r.rates["TCPAbortOnClose"], 10.0);
        assert_eq!(r.rates["OutRsts"], 15.0);
        assert!(
            !r.rates.contains_key("TCPAbortOnData"),
            "a counter the kernel lacks"
        );
        let s = t.summary(2, Duration::from_secs(2));
        assert_eq!((s.totals["TCPAbortOnClose"], s.totals["OutRsts"]), (20, 30));
    }

    fn remote(addr: &str, syn_sent: u32, syn_retried: u32, unacked: Option<u32>) -> Remote {
        Remote {
            syn_sent,
            syn_retried,
            syn_retrans_max: u8::from(syn_retried > 0) * 2,
            established: unacked.map(|u| u + 5),
            unacked: unacked.unwrap_or(0),
            ..Remote::new(addr.parse().unwrap())
        }
    }

    fn outgoing(remotes: Vec<Remote>) -> Outgoing {
        Outgoing {
            remotes,
            ..Outgoing::default()
        }
    }

    #[test]
    fn remote_rows_hold_the_syn_sent_peak_and_sum_the_namespace_resets() {
        let c = |estab: u64, fails: u64, syn: u64| {
            Counters::from([
                (ESTAB_RESETS.to_string(), estab),
                (ATTEMPT_FAILS.to_string(), fails),
                ("TcpExt:TCPSynRetrans".to_string(), syn),
            ])
        };
        let mut t = Tracker::default();
        t.refresh(
            &[],
            Some(&c(0, 0, 0)),
            Duration::ZERO,
            "t0".into(),
            &Labels::new(),
        );
        // Between refreshes 30 connects waited for 10.200.0.1; at the refresh 4 still do, 3
        // of them sent again; 10.200.0.9 only has unacknowledged data.
        t.observe_outgoing(&outgoing(vec![remote("10.200.0.1:9000", 30, 30, None)]));
        t.observe_outgoing(&outgoing(vec![
            remote("10.200.0.9:443", 0, 0, Some(50)),
            remote("10.200.0.1:9000", 4, 3, Some(0)),
        ]));
        let r = t.refresh(
            &[],
            Some(&c(6, 4, 40)),
            Duration::from_secs(2),
            "t1".into(),
            &Labels::new(),
        );
        let o = r.outgoing.expect("servers in trouble");
        assert_eq!(o.resets_per_s, Some(5.0), "(6 + 4) / 2 s");
        assert_eq!(r.rates["TCPSynRetrans"], 20.0);
        let rows: Vec<(String, u32, u32, u32, Option<u32>)> = o
            .remotes
            .iter()
            .map(|s| {
                let a = s.remote.to_string();
                (a, s.syn_sent, s.syn_sent_peak, s.syn_retried, s.unacked)
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("10.200.0.9:443".into(), 0, 0, 0, Some(50)),
                ("10.200.0.1:9000".into(), 4, 30, 3, Some(0)),
            ],
            "most troubled first; unacked read, so 0 is none"
        );
        // No reading since: no rows (not the old ones again); the summary keeps the peaks.
        let r = t.refresh(
            &[],
            None,
            Duration::from_secs(3),
            "t2".into(),
            &Labels::new(),
        );
        assert_eq!(r.outgoing, None);
        let s = t.summary(3, Duration::from_secs(3));
        let peaks: Vec<(u32, u8, u32)> = s
            .remotes
            .iter()
            .map(|r| (r.syn_sent_peak, r.syn_retrans_max, r.unacked_peak))
            .collect();
        assert_eq!(peaks, [(0, 0, 50), (30, 2, 0)], "50 waiting outweigh 30");
        assert_eq!(s.totals["EstabResets"], 6);
    }

    #[test]
    fn a_quiet_client_has_no_remote_rows_and_the_summary_stays_bounded() {
        let mut t = Tracker::default();
        t.observe_outgoing(&Outgoing::default());
        assert_eq!(
            t.refresh(&[], None, Duration::ZERO, "t0".into(), &Labels::new())
                .outgoing,
            None
        );
        // A named server that is fine has a row but no place in the summary.
        t.observe_outgoing(&outgoing(vec![remote("10.0.0.1:80", 1, 0, Some(0))]));
        let r = t.refresh(
            &[],
            None,
            Duration::from_secs(1),
            "t1".into(),
            &Labels::new(),
        );
        assert_eq!(r.outgoing.map(|o| o.remotes.len()), Some(1));
        // Three readings of 64 different troubled servers each: 64 kept, the most troubled.
        for round in 0..3u32 {
            let many = (0..64u32)
                .map(|i| {
                    let n = round * 64 + i;
                    remote(&format!("10.1.{}.{}:80", n / 256, n % 256), n + 1, 1, None)
                })
                .collect();
            t.observe_outgoing(&outgoing(many));
        }
        let s = t.summary(4, Duration::from_secs(4));
        assert_eq!(s.remotes.len(), Outgoing::KEPT);
        assert_eq!(s.remotes[0].syn_sent_peak, 192);
        assert_eq!(s.remotes.last().map(|r| r.syn_sent_peak), Some(129));
    }

    #[test]
    fn a_row_has_the_refresh_s_wait_and_the_summary_the_longest_read() {
        let waiting = |unanswered, ms| Listener {
            wait: Some(Wait {
                unanswered,
                unanswered_oldest_ms: ms,
                ..Wait::default()
            }),
            ..l(80, 1, 0, Some(0))
        };
        let mut t = Tracker::default();
        let r = t.refresh(
            &[waiting(0, 0)],
            None,
            Duration::ZERO,
            "t0".into(),
            &Labels::new(),
        );
        assert_eq!(
            r.listeners[0].wait,
            Some(Wait::default()),
            "read, nobody waits"
        );
        // Between refreshes a client waited 4.2 s; at the refresh two wait, the oldest 1.5 s.
        t.observe(&[waiting(1, 4_200)], false);
        let r = t.refresh(
            &[waiting(2, 1_500)],
            None,
            Duration::from_secs(1),
            "t1".into(),
            &Labels::new(),
        );
        let w = r.listeners[0].wait.unwrap();
        assert_eq!(
            (w.unanswered, w.unanswered_oldest_ms),
            (2, 1_500),
            "now, not the peak"
        );
        // Unix listeners and samples that did not read it: no wait, no longest.
        let r = t.refresh(
            &[l(81, 2, 0, None)],
            None,
            Duration::from_secs(2),
            "t2".into(),
            &Labels::new(),
        );
        assert_eq!(r.listeners[0].wait, None);
        let s = t.summary(4, Duration::from_secs(2));
        let longest: Vec<Option<u32>> = s.listeners.iter().map(|l| l.longest_wait_ms).collect();
        assert_eq!(longest, [Some(4_200), None]);
    }

    #[test]
    fn peaks_between_refreshes_are_kept_and_reset() {
        let mut t = Tracker::default();
        let c = |n: u64| Counters::from([("TcpExt:ListenDrops".to_string(), n)]);
        t.refresh(
            &[l(80, 1, 0, Some(0))],
            Some(&c(0)),
            Duration::ZERO,
            "t0".into(),
            &Labels::new(),
        );
        t.observe(&[l(80, 1, 6, Some(3))], false); // a burst between refreshes
        let r = t.refresh(
            &[l(80, 1, 0, Some(10))],
            Some(&c(20)),
            Duration::from_secs(2),
            "t1".into(),
            &Labels::new(),
        );
        assert_eq!(
            (
                r.listeners[0].recv_q,
                r.listeners[0].peak,
                r.listeners[0].fill_pct
            ),
            (0, 6, 100)
        );
        assert_eq!(r.listeners[0].drops_per_s, Some(5.0));
        assert_eq!(r.rates["ListenDrops"], 10.0);
        let r = t.refresh(
            &[],
            Some(&c(20)),
            Duration::from_secs(3),
            "t2".into(),
            &Labels::new(),
        );
        assert_eq!(r.listeners[0].event, Some("gone"));
        let s = t.summary(3, Duration::from_secs(3));
        assert_eq!(s.listeners[0].peak, 6);
        assert_eq!(s.listeners[0].peak_time, "t1");
        assert_eq!(s.listeners[0].drops, Some(10));
        assert_eq!(s.totals["ListenDrops"], 20);
        assert_eq!(s.worst.unwrap().time, "t1");
    }

    #[test]
    fn new_listeners_are_marked_and_unknown_drops_stay_unknown() {
        let mut t = Tracker::default();
        t.refresh(
            &[l(80, 1, 0, None)],
            None,
            Duration::ZERO,
            "t0".into(),
            &Labels::new(),
        );
        let r = t.refresh(
            &[l(80, 1, 0, None), l(81, 2, 0, None)],
            None,
            Duration::from_secs(1),
            "t1".into(),
            &Labels::new(),
        );
        let new = r.listeners.iter().find(|x| x.inode == 2).unwrap();
        assert_eq!(new.event, Some("new"));
        assert_eq!(new.drops_per_s, None);
        assert!(r.rates.is_empty(), "no counters, no rates");
        assert_eq!(
            t.summary(2, Duration::from_secs(1)).listeners[0].drops,
            None
        );
    }

    fn shape(slots: usize, per_slot: u32) -> HistoryShape {
        HistoryShape {
            slots,
            per_slot,
            slot_time: Duration::from_secs(u64::from(per_slot)),
        }
    }

    /// Feeds one refresh per element; returns the history rows of the last one, by port.
    fn feed(t: &mut Tracker, refreshes: &[&[Listener]]) -> BTreeMap<u16, Vec<Point>> {
        let mut last = BTreeMap::new();
        for ls in refreshes {
            let at = Duration::from_secs(t.refreshes);
            let r = t.refresh(ls, None, at, "t".into(), &Labels::new());
            last = r
                .listeners
                .into_iter()
                .map(|row| (row.local.port().unwrap_or(0), row.history))
                .collect();
        }
        last
    }

    fn peaks(h: &[Point]) -> Vec<u32> {
        h.iter().map(|p| p.fill.peak).collect()
    }

    #[test]
    fn history_is_a_bounded_ring_of_the_peaks() {
        let mut t = Tracker::with_history(shape(3, 1));
        let rounds: Vec<Vec<Listener>> = (0..10).map(|q| vec![l(80, 1, q, Some(0))]).collect();
        let refs: Vec<&[Listener]> = rounds.iter().map(Vec::as_slice).collect();
        let h = feed(&mut t, &refs);
        assert_eq!(peaks(&h[&80]), [7, 8, 9], "the newest three");
        assert_eq!(t.history[&key(&l(80, 1, 0, None))].points.len(), 3);
        // A burst between refreshes is the refresh's point, against B+1.
        t.observe(&[l(80, 1, 6, Some(0))], false);
        let h = feed(&mut t, &[&[l(80, 1, 0, Some(2))]]);
        let last = h[&80][2];
        assert_eq!(
            (last.fill.peak, last.fill.backlog, last.dropped),
            (6, 5, true)
        );
        assert!(last.fill.full());
        // Unknown drops are not marked as drops.
        let h = feed(&mut t, &[&[l(80, 1, 0, None)]]);
        assert!(!h[&80][2].dropped);
    }

    #[test]
    fn history_of_a_vanished_listener_is_dropped() {
        let mut t = Tracker::with_history(shape(5, 1));
        let both = [l(80, 1, 1, None), l(81, 2, 2, None)];
        feed(&mut t, &[&both, &both]);
        assert_eq!(t.history.len(), 2);
        let h = feed(&mut t, &[&[l(80, 1, 3, None)]]);
        assert_eq!(t.history.len(), 1, "81 is gone, and so is its history");
        assert!(h[&81].is_empty(), "the gone row shows none");
        assert_eq!(peaks(&h[&80]), [1, 1, 3]);
        // Back with the same address and inode: a fresh history.
        let h = feed(&mut t, &[&both]);
        assert_eq!(peaks(&h[&81]), [2]);
    }

    #[test]
    fn refreshes_share_slots_aligned_for_every_listener() {
        // Three refreshes a slot: refreshes 0-2, 3-5, 6-8.
        let mut t = Tracker::with_history(shape(2, 3));
        let a = |q| l(80, 1, q, None);
        let b = |q| l(81, 2, q, None);
        feed(&mut t, &[&[a(1)], &[a(4)], &[a(2)], &[a(0)]]);
        // 81 appears at refresh 4, in the slot 80 is in: one slot, not a slot of its own.
        let h = feed(&mut t, &[&[a(0), b(3)]]);
        assert_eq!(peaks(&h[&80]), [4, 0], "the fullest of each slot");
        assert_eq!(peaks(&h[&81]), [3]);
        let h = feed(&mut t, &[&[a(0), b(1)], &[a(2), b(0)]]);
        assert_eq!(peaks(&h[&80]), [0, 2], "bounded to two slots");
        assert_eq!(peaks(&h[&81]), [3, 0]);
        // The fullest relative to B+1, not the longest queue.
        let mut p = Point {
            fill: QueuePeak {
                peak: 3,
                backlog: 100,
            },
            dropped: false,
        };
        p.merge(Point {
            fill: QueuePeak {
                peak: 2,
                backlog: 1,
            },
            dropped: true,
        });
        assert_eq!((p.fill.peak, p.fill.backlog, p.dropped), (2, 1, true));
    }

    #[test]
    fn no_history_is_kept_without_a_shape() {
        let mut t = Tracker::default();
        let h = feed(&mut t, &[&[l(80, 1, 1, None)], &[l(80, 1, 1, None)]]);
        assert!(h[&80].is_empty());
        assert!(t.history.is_empty());
    }

    #[test]
    fn a_minute_of_refreshes_in_the_room_there_is() {
        let s = |ms: u64, room| {
            let h = HistoryShape::minute(Duration::from_millis(ms), room);
            (
                h.slots,
                h.per_slot,
                h.slot_time.saturating_mul(h.slots as u32).as_secs(),
            )
        };
        assert_eq!(s(1000, 200), (60, 1, 60), "one refresh a slot when it fits");
        assert_eq!(s(1000, 56), (30, 2, 60));
        assert_eq!(s(1000, 14), (12, 5, 60), "80 columns");
        assert_eq!(s(500, 200), (120, 1, 60));
        assert_eq!(s(100, 66), (60, 10, 60));
        assert_eq!(s(7000, 200), (10, 1, 70), "at least ten refreshes");
        assert_eq!(s(1000, 9), (0, 0, 0), "too narrow: no history");
        assert_eq!(HistoryShape::minute(Duration::ZERO, 100).slots, 0);
    }
}

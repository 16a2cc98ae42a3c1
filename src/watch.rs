//! `watch`: a live view that catches bursts. Samples the listeners in scope every
//! `sample_interval` (queue lengths only: cheap), and at every refresh takes a full sample
//! (SYN_RECV, drops, counters) and reports, per listener, the accept queue now and its peak since
//! the last refresh, so a burst of a few milliseconds between two refreshes is not lost. Keeps
//! the worst moments for a summary at the end (bounded run or Ctrl-C). The arithmetic lives in
//! `Tracker` (no I/O); the loop and the renderers around it only move data.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::{Counters, Listener, Owner};
use crate::record::{Recorder, Scope};
use crate::source::procs;
use crate::store::AtomicFile;

pub struct Options {
    pub interval: Duration,
    pub sample_interval: Duration,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An in-place table redrawn every refresh.
    Tty { color: bool, rows: usize },
    /// One line per listener per refresh.
    Lines,
    /// One JSON object per refresh.
    Json,
}

/// Share of one core that sampling between refreshes may use.
const CPU_BUDGET: f64 = 0.016; // 2% with a margin for wake-ups, refresh output and start-up

/// Keeps the whole watch loop within CPU_BUDGET of one core. A dump costs about 0.5 us of
/// kernel time per listener in scope (benches/sample_cost.rs), so with many listeners the
/// sampling period stretches: from each queue sample's CPU time, corrected once per refresh by
/// the CPU the thread really used (refreshes count SYN_RECV, read counters and print).
struct Budget {
    floor: Duration,
    /// Moving average of one queue sample's CPU time, seconds.
    cost: f64,
    /// Correction for everything that is not a queue sample.
    k: f64,
    last: Option<(Duration, Duration)>,
    every: Duration,
}

impl Budget {
    fn new(floor: Duration) -> Self {
        Budget {
            floor,
            cost: 0.0,
            k: 1.0,
            last: None,
            every: floor,
        }
    }

    fn sampled(&mut self, cpu: Duration) {
        self.cost = if self.cost == 0.0 {
            cpu.as_secs_f64()
        } else {
            (self.cost * 7.0 + cpu.as_secs_f64()) / 8.0
        };
        self.every = self
            .floor
            .max(Duration::from_secs_f64(self.k * self.cost / CPU_BUDGET));
    }

    /// At a refresh: compares the CPU used since the previous one with the budget.
    fn refreshed(&mut self, cpu: Duration, wall: Duration) {
        if let Some((cpu0, wall0)) = self.last {
            let dw = wall.saturating_sub(wall0).as_secs_f64();
            if dw > 0.0 && self.cost > 0.0 {
                let share = cpu.saturating_sub(cpu0).as_secs_f64() / dw;
                self.k = (self.k * (share / CPU_BUDGET).clamp(0.5, 2.0)).clamp(0.5, 16.0);
            }
        }
        self.last = Some((cpu, wall));
    }
}

/// CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID), nanosecond precision.
fn thread_cpu() -> Duration {
    use nix::libc;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we own.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The namespace counters shown as rates.
const RATES: [&str; 4] = [
    "TcpExt:ListenOverflows",
    "TcpExt:ListenDrops",
    "TcpExt:TCPReqQFullDrop",
    "TcpExt:TCPReqQFullDoCookies",
];

/// One listener in one refresh.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub local: SocketAddr,
    pub inode: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
    pub recv_q: u32,
    /// Highest Recv-Q in the samples since the previous refresh.
    pub peak: u32,
    pub send_q: u32,
    /// peak / (B+1), percent.
    pub fill_pct: u32,
    /// sk_drops increase per second since the previous refresh; None when unknown.
    pub drops_per_s: Option<f64>,
    pub drops_delta: Option<u32>,
    pub syn_recv: Option<u32>,
    /// `new` in the first refresh it appears in (after the first), `gone` when it disappeared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Refresh {
    /// RFC 3339, UTC.
    pub time: String,
    pub elapsed_ms: u64,
    /// Period of the queue samples behind the peaks, microseconds: --sample-interval, or longer
    /// when sampling that often would cost more than 2% of a core.
    pub sample_interval_us: u64,
    /// Namespace counters per second since the previous refresh; absent when the kernel lacks them.
    pub rates: BTreeMap<String, f64>,
    pub listeners: Vec<Row>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ListenerSummary {
    pub local: String,
    pub inode: u64,
    pub send_q: u32,
    pub peak: u32,
    /// When the peak was first reached.
    pub peak_time: String,
    /// sk_drops accumulated while watching; None when unknown.
    pub drops: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub refreshes: u64,
    pub samples: u64,
    pub elapsed_ms: u64,
    pub listeners: Vec<ListenerSummary>,
    /// Counter increases over the whole run.
    pub totals: BTreeMap<String, u64>,
    /// The refresh with the most drops (or the fullest queue when nothing dropped).
    pub worst: Option<Worst>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Worst {
    pub time: String,
    pub what: String,
}

/// Peak-hold and deltas between refreshes. Pure: fed samples, it returns refreshes.
#[derive(Default)]
pub struct Tracker {
    /// Peak Recv-Q per listener since the last refresh.
    peaks: BTreeMap<(SocketAddr, u64), u32>,
    /// State at the previous refresh: drops, and the listeners present.
    prev_drops: BTreeMap<(SocketAddr, u64), Option<u32>>,
    prev_counters: Option<Counters>,
    prev_elapsed: Duration,
    first_counters: Option<Counters>,
    last_counters: Option<Counters>,
    refreshes: u64,
    summary: BTreeMap<(SocketAddr, u64), ListenerSummary>,
    worst: Option<(f64, u32, Worst)>,
}

impl Tracker {
    /// A queue sample between refreshes.
    pub fn observe(&mut self, listeners: &[Listener]) {
        for l in listeners {
            let p = self.peaks.entry(l.key()).or_default();
            *p = (*p).max(l.recv_q);
        }
    }

    /// A full sample at a refresh: returns the refresh to show.
    pub fn refresh(
        &mut self,
        listeners: &[Listener],
        counters: Option<&Counters>,
        elapsed: Duration,
        time: String,
        owners: &[Owner],
    ) -> Refresh {
        self.observe(listeners);
        let secs = elapsed.saturating_sub(self.prev_elapsed).as_secs_f64();
        let first = self.refreshes == 0;
        let mut rows = Vec::new();
        let mut seen = HashSet::new();
        let owner_of: HashMap<u64, &Owner> = owners.iter().rev().map(|o| (o.inode, o)).collect();
        for l in listeners {
            let key = l.key();
            seen.insert(key);
            let peak = self.peaks.get(&key).copied().unwrap_or(l.recv_q);
            let prev = self.prev_drops.get(&key).copied();
            let drops_delta = match (prev.flatten(), l.drops) {
                (Some(a), Some(b)) => Some(b.saturating_sub(a)),
                _ => None,
            };
            let process = owner_of
                .get(&l.inode)
                .map(|o| format!("{}[{}]", o.comm, o.pid));
            rows.push(Row {
                local: l.local,
                inode: l.inode,
                process,
                recv_q: l.recv_q,
                peak,
                send_q: l.send_q,
                fill_pct: (u64::from(peak) * 100 / (u64::from(l.send_q) + 1)) as u32,
                drops_per_s: drops_delta
                    .filter(|_| secs > 0.0)
                    .map(|d| f64::from(d) / secs),
                drops_delta,
                syn_recv: l.syn_recv,
                event: (prev.is_none() && !first).then_some("new"),
            });
            let s = self.summary.entry(key).or_insert_with(|| ListenerSummary {
                local: l.local.to_string(),
                inode: l.inode,
                ..Default::default()
            });
            s.send_q = l.send_q;
            if peak > s.peak || s.peak_time.is_empty() {
                s.peak = peak;
                s.peak_time = time.clone();
            }
            if let Some(d) = drops_delta {
                s.drops = Some(s.drops.unwrap_or(0) + u64::from(d));
            } else if l.drops.is_some() && s.drops.is_none() {
                s.drops = Some(0);
            }
        }
        for (key, _) in self.prev_drops.iter().filter(|(k, _)| !seen.contains(*k)) {
            rows.push(Row {
                local: key.0,
                inode: key.1,
                process: None,
                recv_q: 0,
                peak: self.peaks.get(key).copied().unwrap_or(0),
                send_q: 0,
                fill_pct: 0,
                drops_per_s: None,
                drops_delta: None,
                syn_recv: None,
                event: Some("gone"),
            });
        }
        let mut rates = BTreeMap::new();
        if let (Some(prev), Some(now)) = (&self.prev_counters, counters)
            && secs > 0.0
        {
            for key in RATES {
                if let (Some(a), Some(b)) = (prev.get(key), now.get(key)) {
                    rates.insert(short(key).to_string(), b.saturating_sub(*a) as f64 / secs);
                }
            }
        }
        // Trouble first: dropping, then fullest, then by address.
        rows.sort_by(|a, b| {
            let da = a.drops_per_s.unwrap_or(0.0);
            let db = b.drops_per_s.unwrap_or(0.0);
            db.total_cmp(&da)
                .then(b.fill_pct.cmp(&a.fill_pct))
                .then(a.local.cmp(&b.local))
        });
        // The worst moment: most drops per second, then fullest queue.
        let drops_now: f64 = rates
            .get("ListenDrops")
            .copied()
            .unwrap_or_else(|| rows.iter().filter_map(|r| r.drops_per_s).sum());
        let fill_now = rows.iter().map(|r| r.fill_pct).max().unwrap_or(0);
        let better = match &self.worst {
            None => drops_now > 0.0 || fill_now > 0,
            Some((d, f, _)) => (drops_now, fill_now) > (*d, *f),
        };
        if better && !first {
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
            self.worst = Some((
                drops_now,
                fill_now,
                Worst {
                    time: time.clone(),
                    what,
                },
            ));
        }

        self.peaks.clear();
        self.prev_drops = listeners.iter().map(|l| (l.key(), l.drops)).collect();
        if counters.is_some() {
            self.prev_counters = counters.cloned();
            if self.first_counters.is_none() {
                self.first_counters = counters.cloned();
            }
            self.last_counters = counters.cloned();
        }
        self.prev_elapsed = elapsed;
        self.refreshes += 1;
        Refresh {
            time,
            elapsed_ms: elapsed.as_millis() as u64,
            sample_interval_us: 0,
            rates,
            listeners: rows,
        }
    }

    pub fn summary(&self, samples: u64, elapsed: Duration) -> Summary {
        let mut totals = BTreeMap::new();
        if let (Some(a), Some(b)) = (&self.first_counters, &self.last_counters) {
            for key in RATES {
                if let (Some(x), Some(y)) = (a.get(key), b.get(key)) {
                    totals.insert(short(key).to_string(), y.saturating_sub(*x));
                }
            }
        }
        Summary {
            refreshes: self.refreshes,
            samples,
            elapsed_ms: elapsed.as_millis() as u64,
            listeners: self.summary.values().cloned().collect(),
            totals,
            worst: self.worst.as_ref().map(|(_, _, w)| w.clone()),
        }
    }
}

fn short(key: &str) -> &str {
    key.split_once(':').map(|(_, n)| n).unwrap_or(key)
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: nix::libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Ctrl-C and SIGTERM end the run cleanly, with a summary.
fn catch_signals() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let _ = unsafe { sigaction(sig, &action) };
    }
}

/// Runs the watch loop until `--count`/`--duration` or a signal, writing refreshes and the
/// summary to `out`, and the recording to `record` when given.
pub fn run(
    scope: Scope,
    opts: &Options,
    out: &mut dyn Write,
    record: Option<AtomicFile>,
) -> Result<()> {
    catch_signals();
    let mut rec = Recorder::start(scope, opts.interval, record.is_some())?;
    rec.snap.sample_interval_us = opts.sample_interval.as_micros() as u64;
    let mut tracker = Tracker::default();
    let mut owners: Vec<Owner> = Vec::new();
    let mut known: HashSet<u64> = HashSet::new();
    let sample_every = opts.sample_interval.max(Duration::from_micros(500));
    let interval = opts.interval.max(sample_every);
    let mut next_refresh = Duration::ZERO;
    let mut budget = Budget::new(sample_every);
    let w = |r: std::io::Result<()>| r.map_err(Error::Output);

    if let Format::Tty { .. } = opts.format {
        w(write!(out, "\x1b[?25l"))?; // hide the cursor while redrawing
    }
    let result = (|| -> Result<()> {
        loop {
            let elapsed = rec.elapsed();
            let stop_after = opts.duration.is_some_and(|d| elapsed >= d)
                || opts
                    .count
                    .is_some_and(|c| tracker.refreshes + 1 >= c && elapsed >= next_refresh);
            let at_refresh = elapsed >= next_refresh || stop_after || STOP.load(Ordering::Relaxed);
            let started = rec.elapsed();
            let cpu_before = thread_cpu();
            let (listeners, counters) = rec.sample(at_refresh)?;
            if !at_refresh {
                budget.sampled(thread_cpu().saturating_sub(cpu_before));
            }
            if at_refresh {
                let fresh: HashSet<u64> = listeners
                    .iter()
                    .map(|l| l.inode)
                    .filter(|i| !known.contains(i))
                    .collect();
                if !fresh.is_empty() {
                    owners.extend(procs::owners(&fresh).0);
                    known.extend(fresh);
                }
                // A closed socket's inode never comes back: forget its owner, so that a long
                // watch over churning listeners does not grow.
                if known.len() > listeners.len() {
                    let live: HashSet<u64> = listeners.iter().map(|l| l.inode).collect();
                    known.retain(|i| live.contains(i));
                    owners.retain(|o| live.contains(&o.inode));
                }
                let time = rfc3339(rec.snap.started_unix_ms + elapsed.as_millis() as u64);
                let mut refresh =
                    tracker.refresh(&listeners, counters.as_ref(), elapsed, time, &owners);
                refresh.sample_interval_us = budget.every.as_micros() as u64;
                w(render(out, &refresh, opts.format))?;
                budget.refreshed(thread_cpu(), rec.elapsed());
                next_refresh = interval * (tracker.refreshes as u32);
                if stop_after || STOP.load(Ordering::Relaxed) {
                    return Ok(());
                }
            } else {
                tracker.observe(&listeners);
            }
            let next = (started + budget.every).min(next_refresh);
            if let Some(wait) = next.checked_sub(rec.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    })();
    if let Format::Tty { .. } = opts.format {
        let _ = write!(out, "\x1b[?25h");
    }
    result?;
    let elapsed = rec.elapsed();
    let summary = tracker.summary(rec.snap.samples_taken, elapsed);
    w(render_summary(out, &summary, opts.format))?;
    w(out.flush())?;
    if let Some(mut file) = record {
        let snap = rec.finish();
        serde_json::to_writer(file.writer(), &snap).map_err(|e| Error::Output(e.into()))?;
        file.commit()?;
    }
    Ok(())
}

fn render(out: &mut dyn Write, r: &Refresh, format: Format) -> std::io::Result<()> {
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
                        .map(|p| format!(" process={p}"))
                        .unwrap_or_default(),
                    l.event.map(|e| format!(" {e}")).unwrap_or_default(),
                )?;
            }
            out.flush()
        }
        Format::Tty { color, rows } => {
            // Home, clear: redraw in place.
            write!(out, "\x1b[H\x1b[2J")?;
            writeln!(
                out,
                "backlogctl watch {}  {}",
                r.time.get(11..19).unwrap_or(&r.time),
                namespace_rates(r, " ")
            )?;
            writeln!(
                out,
                "{:<24} {:<18} {:>7} {:>7} {:>7} {:>6} {:>8} {:>8}",
                "LISTENER", "PROCESS", "RECV-Q", "PEAK", "SEND-Q", "FILL", "DROPS/s", "SYN_RECV"
            )?;
            let room = rows.saturating_sub(4).max(1);
            for l in r.listeners.iter().take(room) {
                let line = format!(
                    "{:<24} {:<18} {:>7} {:>7} {:>7} {:>5}% {:>8} {:>8}{}",
                    l.local.to_string(),
                    l.process
                        .as_deref()
                        .unwrap_or("?")
                        .chars()
                        .take(18)
                        .collect::<String>(),
                    l.recv_q,
                    l.peak,
                    l.send_q,
                    l.fill_pct,
                    dps(l.drops_per_s),
                    opt(l.syn_recv),
                    l.event.map(|e| format!("  {e}")).unwrap_or_default()
                );
                let hot = l.drops_per_s.is_some_and(|d| d > 0.0) || l.peak > l.send_q;
                if color && hot {
                    writeln!(out, "\x1b[1;31m{line}\x1b[0m")?;
                } else if color && l.fill_pct >= 80 {
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

/// `ListenOverflows=3/s ListenDrops=3/s ... sampling=10ms`, with `sep` between name and value.
fn namespace_rates(r: &Refresh, sep: &str) -> String {
    let mut parts: Vec<String> = RATES
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

fn render_summary(out: &mut dyn Write, s: &Summary, format: Format) -> std::io::Result<()> {
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

/// Milliseconds since the epoch as `2026-11-25T02:00:01.123Z` (civil-from-days, H. Hinnant).
pub fn rfc3339(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        unix_ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(port: u16, inode: u64, recv_q: u32, drops: Option<u32>) -> Listener {
        Listener {
            local: SocketAddr::from(([127, 0, 0, 1], port)),
            inode,
            uid: 0,
            recv_q,
            send_q: 5,
            drops,
            syn_recv: None,
            v6only: None,
        }
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_572_007_123), "2026-11-25T02:00:07.123Z");
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
            &[],
        );
        t.observe(&[l(80, 1, 6, Some(3))]); // a burst between refreshes
        let r = t.refresh(
            &[l(80, 1, 0, Some(10))],
            Some(&c(20)),
            Duration::from_secs(2),
            "t1".into(),
            &[],
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
        let r = t.refresh(&[], Some(&c(20)), Duration::from_secs(3), "t2".into(), &[]);
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
        t.refresh(&[l(80, 1, 0, None)], None, Duration::ZERO, "t0".into(), &[]);
        let r = t.refresh(
            &[l(80, 1, 0, None), l(81, 2, 0, None)],
            None,
            Duration::from_secs(1),
            "t1".into(),
            &[],
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
}

//! `watch`: a live view that catches bursts. Samples the listeners in scope every
//! `sample_interval` (one LISTEN dump with skmeminfo: queue lengths and drops; counters only
//! when something changed), and at every refresh takes a full sample (SYN_RECV when a SYN queue
//! has ever filled, counters) and reports, per listener, the accept queue now and its peak
//! since the last refresh, so a burst of a few milliseconds between two refreshes is not lost.
//! Keeps the worst moments for a summary at the end (bounded run or Ctrl-C). Three parts: the
//! `Sampler` (record.rs), the `Tracker` (pure arithmetic) and the `Budget` (CPU share); this
//! loop only moves data between them and the renderer.

mod budget;
mod tracker;

use std::collections::HashSet;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use budget::Budget;
use budget::thread_cpu;
pub use tracker::{
    HistoryShape, ListenerSummary, MIN_SLOTS, Point, Refresh, Row, Summary, Tracker, Worst,
};

use crate::error::{Error, Result};
use crate::model::{Owner, rfc3339};
use crate::record::{Header, Kernel, Sampler, Scope, SnapshotBuilder, Sources};
use crate::render;
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
    /// An in-place table redrawn every refresh, with a sparkline of each listener's recent
    /// peaks when `history` keeps any.
    Tty {
        color: bool,
        rows: usize,
        width: usize,
        /// The locale's character set is UTF-8: block characters; otherwise ASCII.
        utf8: bool,
        history: HistoryShape,
    },
    /// One line per listener per refresh.
    Lines,
    /// One JSON object per refresh.
    Json,
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
// Long on purpose: the loop — sample, refresh, budget, sleep — and its ending read as one.
pub fn run(
    scope: Scope,
    opts: &Options,
    out: &mut dyn Write,
    err: &mut dyn Write,
    record: Option<AtomicFile>,
) -> Result<()> {
    let targets = scope.targets.clone();
    catch_signals();
    let header = Header::read();
    let started_unix_ms = header.started_unix_ms;
    let mut builder = record
        .is_some()
        .then(|| SnapshotBuilder::new(header, &scope, opts.sample_interval.as_micros() as u64));
    let mut rec = Sampler::new(Kernel::open()?, scope, opts.interval, false);
    let mut tracker = match opts.format {
        Format::Tty { history, .. } => Tracker::with_history(history),
        _ => Tracker::default(),
    };
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
            let sampled = rec.sample(at_refresh)?;
            if rec.taken() == 1 {
                // Said once, on stderr: the view itself stays as it is.
                for t in targets
                    .iter()
                    .filter(|t| !sampled.listeners.iter().any(|l| t.matches(l)))
                {
                    let _ = writeln!(
                        err,
                        "warning: nothing listens on {t} in this network namespace (yet)"
                    );
                }
            }
            if let Some(b) = builder.as_mut() {
                b.add(&sampled);
            }
            let (listeners, counters) = (sampled.listeners, sampled.counters);
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
                    owners.extend(rec.sources().owners(&fresh).0);
                    known.extend(fresh);
                }
                // A closed socket's inode never comes back: forget its owner, so that a long
                // watch over churning listeners does not grow.
                if known.len() > listeners.len() {
                    let live: HashSet<u64> = listeners.iter().map(|l| l.inode).collect();
                    known.retain(|i| live.contains(i));
                    owners.retain(|o| live.contains(&o.inode));
                }
                let time = rfc3339(started_unix_ms + elapsed.as_millis() as u64);
                let mut refresh =
                    tracker.refresh(&listeners, counters.as_ref(), elapsed, time, &owners);
                refresh.sample_interval_us = budget.every.as_micros() as u64;
                w(render::watch::refresh(out, &refresh, opts.format))?;
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
    let summary = tracker.summary(rec.taken(), elapsed);
    w(render::watch::summary(out, &summary, opts.format))?;
    w(out.flush())?;
    if let (Some(mut file), Some(b)) = (record, builder) {
        let mut snap = b.finish(&rec);
        // Named like a snapshot's: `doctor --from` on the recording gives the runtime's fix.
        let inodes = crate::record::listener_inodes(&snap);
        crate::record::attribute_owners(&mut snap, &inodes);
        serde_json::to_writer(file.writer(), &snap).map_err(|e| Error::Output(e.into()))?;
        file.commit()?;
    }
    Ok(())
}

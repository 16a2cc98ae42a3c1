//! `watch`: a live view that catches bursts. Samples the listeners in scope every
//! `sample_interval` (one LISTEN dump with skmeminfo: queue lengths and drops; counters only
//! when something changed), and at every refresh takes a full sample (SYN_RECV when a SYN queue
//! has ever filled, counters) and reports, per listener, the accept queue now and its peak
//! since the last refresh, so a burst of a few milliseconds between two refreshes is not lost.
//! Keeps the worst moments for a summary at the end (bounded run or Ctrl-C). Its parts: the
//! collection layer's `Recorder` and `OwnerCache`, the `Tracker` (pure arithmetic) and the
//! `Budget` (CPU share); this loop only moves data between them and the `View` it is handed.

mod budget;
mod tracker;

use std::collections::HashSet;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub(crate) use budget::Budget;
use budget::{Kind, process_cpu, thread_cpu};
pub(crate) use tracker::{
    HistoryShape, Labels, ListenerSummary, MIN_SLOTS, OutgoingRows, Point, Refresh, RemoteRow, Row,
    Summary, Tracker,
};

use crate::collect::{Cadence, OwnerCache, Recorder, Sampled, Sources};
use crate::error::{Error, Result};
use crate::model::{Scope, Snapshot, rfc3339};

pub(crate) struct Options {
    pub interval: Duration,
    pub sample_interval: Duration,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    /// Keep a history of each listener's peaks of this shape (the terminal's sparklines).
    pub history: Option<HistoryShape>,
    /// Keep the samples and return them as a snapshot at the end (`--record`).
    pub record: bool,
}

/// Where the refreshes go: the edge hands in a renderer, tests a fake.
pub(crate) trait View {
    /// Before the first refresh (a terminal hides its cursor).
    fn begin(&mut self) -> io::Result<()>;
    fn refresh(&mut self, r: &Refresh) -> io::Result<()>;
    /// After the last refresh, also when the run failed.
    fn end(&mut self) -> io::Result<()>;
    fn summary(&mut self, s: &Summary) -> io::Result<()>;
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
/// summary to `view` and warnings to `warn`. Returns the recording when `opts.record`, its
/// listeners' processes named.
pub(crate) fn run<S: Sources, V: View>(
    sources: S,
    scope: &Scope,
    opts: &Options,
    view: &mut V,
    warn: &mut dyn Write,
) -> Result<Option<Snapshot>> {
    catch_signals();
    let mut watch = Watch::new(sources, scope, opts);
    view.begin().map_err(Error::Output)?;
    let result = watch.until_stopped(view, warn);
    let ended = view.end().map_err(Error::Output);
    result?;
    ended?;
    let summary = watch
        .tracker
        .summary(watch.rec.taken(), watch.rec.elapsed());
    view.summary(&summary).map_err(Error::Output)?;
    Ok(opts.record.then(|| watch.finish()))
}

/// The loop's state: the recording, the view's arithmetic, the owners, the pace.
struct Watch<'o, S> {
    rec: Recorder<S>,
    tracker: Tracker,
    owners: OwnerCache,
    /// The owners of the listeners of the last refresh, and the cache generation they are of.
    shown: (u64, Labels),
    budget: Budget,
    opts: &'o Options,
    interval: Duration,
    next_refresh: Duration,
    /// When the next sample of the whole scope is due.
    next_scope: Duration,
    /// The scope names targets: their listeners are always hot.
    pinned: bool,
}

impl<'o, S: Sources> Watch<'o, S> {
    fn new(sources: S, scope: &Scope, opts: &'o Options) -> Watch<'o, S> {
        let sample_every = opts.sample_interval.max(Duration::from_micros(500));
        let cadence = Cadence {
            // Request sockets are counted at most once per refresh.
            syn_every: opts.interval,
            syn_forced: false,
            sample_interval: opts.sample_interval,
            keep: opts.record,
            addresses: true,
            parallel: false,
        };
        let mut rec = Recorder::start(sources, scope, cadence);
        rec.hot_sampling(opts.interval);
        Watch {
            rec,
            tracker: opts
                .history
                .map_or_else(Tracker::default, Tracker::with_history),
            owners: OwnerCache::default(),
            shown: (u64::MAX, Labels::new()),
            budget: Budget::new(sample_every, opts.interval.max(sample_every)),
            opts,
            interval: opts.interval.max(sample_every),
            next_refresh: Duration::ZERO,
            next_scope: Duration::ZERO,
            pinned: !scope.targets.is_empty(),
        }
    }

    /// Samples, refreshes and sleeps until the run's bound or a signal. Each wake-up takes
    /// one sample: a full one at a refresh, one of the whole scope when its period is due (or
    /// nothing is hot), else one of the hot listeners alone.
    fn until_stopped<V: View>(&mut self, view: &mut V, warn: &mut dyn Write) -> Result<()> {
        loop {
            let elapsed = self.rec.elapsed();
            let stop_after = self.opts.duration.is_some_and(|d| elapsed >= d)
                || self.opts.count.is_some_and(|c| {
                    self.tracker.refreshes + 1 >= c && elapsed >= self.next_refresh
                });
            let stopping = stop_after || STOP.load(Ordering::Relaxed);
            let at_refresh = elapsed >= self.next_refresh || stopping;
            let kind = if at_refresh || elapsed >= self.next_scope || self.rec.hot_len() == 0 {
                Kind::Scope
            } else {
                Kind::Hot
            };
            let cpu_before = thread_cpu();
            let sampled = match kind {
                Kind::Scope => self.rec.sample(at_refresh)?,
                Kind::Hot => self.rec.sample_hot()?,
            };
            if self.rec.taken() == 1 {
                warn_unmatched(warn, self.rec.targets(), self.rec.servers(), &sampled);
            }
            // The samples that read the clients' wait read the connecting side too.
            if let Some(o) = &sampled.outgoing {
                self.tracker.observe_outgoing(o);
            }
            if at_refresh {
                self.refresh(sampled, view, cpu_before)?;
                if stopping {
                    return Ok(());
                }
            } else {
                let cpu = thread_cpu().saturating_sub(cpu_before);
                self.budget.sampled(kind, cpu, self.rec.hot_len());
                self.tracker.observe(&sampled.listeners, sampled.partial);
            }
            if kind == Kind::Scope {
                self.next_scope = elapsed + self.scope_every();
            }
            let mut next = self.next_scope.min(self.next_refresh);
            if self.rec.hot_len() > 0 {
                next = next.min(elapsed + self.budget.hot_every);
            }
            if let Some(wait) = next.checked_sub(self.rec.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }

    /// One refresh: the owners of new listeners, the tracker's rows, the view.
    /// `cpu_before`: the thread's CPU time before the refresh's sample, for its accounting.
    fn refresh<V: View>(
        &mut self,
        sampled: Sampled,
        view: &mut V,
        cpu_before: Duration,
    ) -> Result<()> {
        let live: HashSet<u64> = sampled.listeners.iter().map(|l| l.inode).collect();
        self.owners.retain(&live);
        self.owners
            .refresh(self.rec.sources(), &live, Instant::now());
        // Copied out only when they changed: a refresh of 1,000 listeners would otherwise
        // clone 1,000 command lines, and the CPU budget counts it against sampling.
        if self.shown.0 != self.owners.generation() {
            let owners = self.owners.owners_of(&live);
            self.shown = (self.owners.generation(), tracker::labels(&owners));
        }
        let owners = &self.shown.1;
        let elapsed = sampled.elapsed;
        let time = rfc3339(self.rec.started_unix_ms() + elapsed.as_millis() as u64);
        let mut refresh = self.tracker.refresh(
            &sampled.listeners,
            sampled.counters.as_ref(),
            elapsed,
            time,
            owners,
        );
        refresh.sample_interval_us = self.scope_every().as_micros() as u64;
        refresh.hot = self.rec.hot_len() as u32;
        refresh.hot_interval_us = self.budget.hot_every.as_micros() as u64;
        refresh.refresh_cpu_us = self.budget.refresh_cpu.as_micros() as u64;
        view.refresh(&refresh).map_err(Error::Output)?;
        self.budget
            .refreshed(thread_cpu().saturating_sub(cpu_before), process_cpu());
        self.next_refresh = self.interval * (self.tracker.refreshes as u32);
        Ok(())
    }

    /// How often the whole scope is dumped: as the budget allows, and when the scope names
    /// targets that are all hot (sampled at every interval by exact requests), only at the
    /// refreshes, which find a restarted server's new socket.
    fn scope_every(&self) -> Duration {
        if self.pinned && self.rec.hot_len() > 0 {
            self.interval
        } else {
            self.budget.scope_every
        }
    }

    /// The recording, named like a snapshot's: `doctor --from` on it gives the runtime's fix.
    fn finish(self) -> Snapshot {
        let Watch { rec, owners, .. } = self;
        let (mut snap, mut sources) = rec.finish();
        let inodes = crate::collect::listener_inodes(&snap);
        owners.name(&mut sources, &mut snap, &inodes, Instant::now());
        snap
    }
}

/// Said once, on stderr: the view itself stays as it is. A target at none of the namespace's
/// addresses is a server it connects to (`servers`): its row is under the outgoing ones.
fn warn_unmatched(
    warn: &mut dyn Write,
    targets: &[crate::model::Target],
    servers: &[std::net::SocketAddr],
    sampled: &Sampled,
) {
    let remote = |t: &crate::model::Target| match t {
        crate::model::Target::Inet { ip: Some(ip), port } => {
            servers.contains(&std::net::SocketAddr::new(*ip, *port))
        }
        _ => false,
    };
    for t in targets
        .iter()
        .filter(|t| !remote(t) && !sampled.listeners.iter().any(|l| t.matches(l)))
    {
        let _ = writeln!(
            warn,
            "warning: nothing listens on {t} in this network namespace (yet)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::fake::Fake;
    use crate::model::Owner;

    /// A view that keeps what it was shown.
    #[derive(Default)]
    struct Shown {
        calls: Vec<&'static str>,
        peaks: Vec<u32>,
        summary: Option<Summary>,
    }

    impl View for Shown {
        fn begin(&mut self) -> io::Result<()> {
            self.calls.push("begin");
            Ok(())
        }
        fn refresh(&mut self, r: &Refresh) -> io::Result<()> {
            self.calls.push("refresh");
            self.peaks.extend(r.listeners.iter().map(|row| row.peak));
            Ok(())
        }
        fn end(&mut self) -> io::Result<()> {
            self.calls.push("end");
            Ok(())
        }
        fn summary(&mut self, s: &Summary) -> io::Result<()> {
            self.calls.push("summary");
            self.summary = Some(s.clone());
            Ok(())
        }
    }

    #[test]
    fn a_burst_is_shown_and_recorded_and_the_recording_names_its_owners() {
        // The queue is 6 in the second sample only: some refresh shows it as its peak, and
        // the recording keeps it.
        let mut queues = vec![0; 40];
        queues[1] = 6;
        let fake = Fake {
            holders: vec![Owner {
                inode: 7,
                pid: 42,
                comm: "appsrv".into(),
                cmdline: String::new(),
                ..Owner::default()
            }],
            ..Fake::queues(&queues)
        };
        let opts = Options {
            interval: Duration::from_millis(10),
            sample_interval: Duration::from_millis(1),
            count: Some(3),
            duration: None,
            history: None,
            record: true,
        };
        let mut shown = Shown::default();
        let mut warnings = Vec::new();
        let snap = run(fake, &Scope::default(), &opts, &mut shown, &mut warnings)
            .unwrap()
            .expect("recorded");
        assert_eq!(shown.calls.first(), Some(&"begin"));
        assert_eq!(&shown.calls[shown.calls.len() - 2..], ["end", "summary"]);
        assert_eq!(shown.calls.iter().filter(|c| **c == "refresh").count(), 3);
        assert_eq!(shown.peaks.iter().max(), Some(&6), "{:?}", shown.peaks);
        assert!(snap.samples.iter().any(|s| s.listeners[0].recv_q == 6));
        assert_eq!(snap.owners.len(), 1);
        assert_eq!(snap.owners[0].comm, "appsrv");
        assert!(warnings.is_empty());
    }
}

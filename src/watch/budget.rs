//! The CPU budget of `watch`'s sampling: how often the hot listeners and the whole scope may
//! be sampled so that sampling stays within a share of one core. Fed measured CPU times; the
//! clock is the caller's.

use std::time::Duration;

/// Share of one core that sampling between refreshes may use: 2.2%, all it costs counted
/// (each sample's own CPU, and what the process spends besides: sleeping and waking 100 times
/// a second, `Budget::wake`). The refreshes add about 0.5% over 2,000 listeners once a
/// second (a full sample, the owners, the rows written: ~5 ms of CPU, benches/watch_hot.sh),
/// so the loop keeps under 3% whatever is hot.
const SAMPLING_SHARE: f64 = 0.022;
/// The most of it the hot samples take. A hot sample costs a few microseconds a listener, so
/// at 100 Hz a full hot set (HOT_MAX) takes about this much.
const HOT_SHARE: f64 = 0.01;
/// What the dumps of the whole scope take, at least (fewer listeners: less, at the floor):
/// 300 listeners (~0.2 ms a dump) are dumped every 20 ms, 10 at every sample.
const SCOPE_SHARE: f64 = 0.01;
/// The longest the dumps of the whole scope may leave a listener unseen when the budget
/// allows; spread between two refreshes a second apart, 95 ms make 11 gaps of 90.9 ms, so a
/// burst of 100 ms on a listener that is not hot yet is seen by one of them. No more dumps
/// than that are made: 2,000 listeners at 1.5% were dumped every 77–83 ms, for nothing.
const FULL_PERIOD: Duration = Duration::from_millis(95);

/// Sets the two periods from each kind's measured CPU time (a moving average), each sample
/// charged its own CPU time and a wake-up's (`wake`):
/// - hot samples every `max(floor, hot cost / HOT_SHARE)`;
/// - dumps of the whole scope at 1% of a core, or up to what the hot samples leave of 2.2%
///   when that keeps every listener seen within FULL_PERIOD. A dump of 2,000 listeners costs
///   about 2 ms of CPU here (nearly all of it the kernel's, which walks the listeners of
///   every namespace of the host: 10,000 others beside the bench's, benches/watch_hot.sh),
///   10,000 about 10 ms, so this full period is 91 ms for 2,000 listeners and grows past that
///   with more: ~450 ms for 10,000 (1 ms of dump per 100 listeners at 2.2%); while listeners
///   are hot, to what their samples leave (about 1.5% with one hot at 100 Hz).
///
/// A refresh is itself a dump of the whole scope, so the dumps between two refreshes are
/// spread evenly over the interval: as many as the period allows, each gap no longer than it.
/// Refreshes (a full sample with SYN_RECV, the clients' wait and counters, the owners, the
/// rows written) are accounted apart: they do not stretch sampling, whatever the rows cost.
/// Their CPU is kept so that the refresh can say it.
///
/// What a sample's own clock misses is measured too: at each refresh, the process's CPU time
/// since the last one, less what its samples and refresh were charged, spread over its
/// wake-ups. At 100 Hz the sleeps and wake-ups (timers, switches) cost about as much as the
/// hot samples themselves; uncounted, they took a watch with one hot listener to 3.0–3.1% of
/// a core on a host with 20,000 other listeners (benches/watch_hot.sh).
pub(crate) struct Budget {
    floor: Duration,
    /// The refresh interval.
    interval: Duration,
    /// Moving averages of one sample's CPU time, seconds.
    hot: f64,
    scope: f64,
    /// What each wake-up costs besides its sample, seconds (a moving average over refreshes).
    wake: f64,
    /// The process's CPU time at the last refresh, and since then what the samples and the
    /// refresh were charged and how many wake-ups they were.
    window: Option<Duration>,
    charged: Duration,
    wakeups: u32,
    pub hot_every: Duration,
    pub scope_every: Duration,
    /// The CPU time of the last refresh.
    pub refresh_cpu: Duration,
}

/// Which kind of sample a CPU time is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Hot,
    Scope,
}

fn average(was: f64, now: Duration) -> f64 {
    if was == 0.0 {
        now.as_secs_f64()
    } else {
        (was * 7.0 + now.as_secs_f64()) / 8.0
    }
}

impl Budget {
    pub(crate) fn new(floor: Duration, interval: Duration) -> Self {
        Budget {
            floor,
            interval,
            hot: 0.0,
            scope: 0.0,
            wake: 0.0,
            window: None,
            charged: Duration::ZERO,
            wakeups: 0,
            hot_every: floor,
            scope_every: floor,
            refresh_cpu: Duration::ZERO,
        }
    }

    /// A sample of `kind` took `cpu`; `hot` listeners are hot now.
    pub(crate) fn sampled(&mut self, kind: Kind, cpu: Duration, hot: usize) {
        self.charged += cpu;
        self.wakeups += 1;
        match kind {
            Kind::Hot => self.hot = average(self.hot, cpu),
            Kind::Scope => self.scope = average(self.scope, cpu),
        }
        let (hot_cost, scope_cost) = (self.hot + self.wake, self.scope + self.wake);
        let period = |cost: f64, share: f64| self.floor.max(Duration::from_secs_f64(cost / share));
        self.hot_every = period(hot_cost, HOT_SHARE);
        let hot_share = if hot > 0 {
            hot_cost / self.hot_every.as_secs_f64()
        } else {
            0.0
        };
        // SCOPE_SHARE, or more when that would leave a listener unseen for longer than
        // FULL_PERIOD, up to what the hot samples leave.
        let wanted = scope_cost / FULL_PERIOD.as_secs_f64();
        let share = wanted.clamp(SCOPE_SHARE, SCOPE_SHARE.max(SAMPLING_SHARE - hot_share));
        self.scope_every = spread(period(scope_cost, share), self.interval);
    }

    /// A refresh took `cpu`, kept apart and not charged to sampling; `process` is the
    /// process's CPU time now, whose part no sample was charged is spread over the wake-ups.
    pub(crate) fn refreshed(&mut self, cpu: Duration, process: Duration) {
        self.refresh_cpu = cpu;
        self.charged += cpu;
        self.wakeups += 1;
        if let Some(start) = self.window {
            let besides = process.saturating_sub(start).saturating_sub(self.charged);
            let each = besides.as_secs_f64() / f64::from(self.wakeups);
            self.wake = (self.wake * 3.0 + each) / 4.0;
        }
        self.window = Some(process);
        self.charged = Duration::ZERO;
        self.wakeups = 0;
    }
}

/// The gap between dumps of the whole scope that spreads them evenly between two refreshes
/// (each itself such a dump): no longer than `every`, and as many dumps per interval.
/// With 94 ms the dumps at 94, 188, ..., 940 ms leave 60 ms to the refresh; 11 gaps of
/// 90.9 ms cost the same and leave no listener unseen for 94 ms.
fn spread(every: Duration, interval: Duration) -> Duration {
    if every.is_zero() || every >= interval {
        return every;
    }
    let gaps = interval.as_nanos().div_ceil(every.as_nanos());
    Duration::from_nanos((interval.as_nanos() / gaps) as u64)
}

/// CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID), nanosecond precision.
pub(super) fn thread_cpu() -> Duration {
    cpu_clock(nix::libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time of the whole process, every thread (CLOCK_PROCESS_CPUTIME_ID).
pub(super) fn process_cpu() -> Duration {
    cpu_clock(nix::libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn cpu_clock(clock: nix::libc::clockid_t) -> Duration {
    use nix::libc;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we own.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const US: Duration = Duration::from_micros(1);

    /// A simulated watch over 60 s: a refresh every second costing `refresh` (itself a dump
    /// of the whole scope), hot samples costing `hot` (when any listener is hot) and scope
    /// samples costing `scope`, each at the period the budget sets, and every wake-up `wake`
    /// more that no sample is charged. Returns the periods at the end and the share of a core
    /// the loop took over the last 10 seconds, all of it.
    fn simulate(
        hot: Option<Duration>,
        scope: Duration,
        refresh: Duration,
        wake: Duration,
    ) -> (Duration, Duration, f64) {
        let interval = Duration::from_secs(1);
        let mut b = Budget::new(10 * MS, interval);
        let (mut t, mut next_hot, mut next_scope, mut next_refresh) = (
            Duration::ZERO,
            Duration::ZERO,
            Duration::ZERO,
            Duration::ZERO,
        );
        let mut process = Duration::ZERO;
        let mut cpu_last10 = Duration::ZERO;
        let n = usize::from(hot.is_some());
        while t < Duration::from_secs(60) {
            let cost = if t >= next_refresh {
                process += refresh + wake;
                b.refreshed(refresh, process);
                next_refresh += interval;
                next_scope = t + b.scope_every;
                refresh
            } else if t >= next_scope {
                process += scope + wake;
                b.sampled(Kind::Scope, scope, n);
                next_scope = t + b.scope_every;
                next_hot = next_hot.max(t + b.hot_every);
                scope
            } else if let Some(h) = hot.filter(|_| t >= next_hot) {
                process += h + wake;
                b.sampled(Kind::Hot, h, n);
                next_hot = t + b.hot_every;
                h
            } else {
                Duration::ZERO
            };
            if t >= Duration::from_secs(50) && !cost.is_zero() {
                cpu_last10 += cost + wake;
            }
            let mut next = next_scope.min(next_refresh);
            if hot.is_some() {
                next = next.min(next_hot);
            }
            t = next.max(t + US);
        }
        (b.hot_every, b.scope_every, cpu_last10.as_secs_f64() / 10.0)
    }

    /// The most the loop may take: sampling's share, and the refreshes apart.
    fn most(refresh: Duration) -> f64 {
        (SAMPLING_SHARE + refresh.as_secs_f64()) * 1.05
    }

    #[test]
    fn cheap_samples_run_at_the_requested_period() {
        // 10 listeners: ~20 us a dump; 100 Hz costs 0.2% of a core.
        let (hot, scope, share) = simulate(Some(10 * US), 20 * US, 200 * US, Duration::ZERO);
        assert_eq!((hot, scope), (10 * MS, 10 * MS));
        assert!(share < 0.005, "{share}");
    }

    #[test]
    fn many_listeners_stretch_the_scope_and_not_the_hot_ones() {
        // 2,000 listeners: ~1.1 ms a dump, a refresh ~3 ms; a hot sample of a few, ~60 us.
        let (hot, scope, share) = simulate(Some(60 * US), 1100 * US, 3 * MS, Duration::ZERO);
        assert_eq!(hot, 10 * MS);
        assert!(scope > 40 * MS && scope < 100 * MS, "{scope:?}");
        assert!(share <= most(3 * MS), "{share}");
        // The scope's share is its own: hot samples that fit leave it alone.
        let (_, alone, _) = simulate(None, 1100 * US, 3 * MS, Duration::ZERO);
        assert_eq!(alone, scope);
    }

    #[test]
    fn an_expensive_hot_set_is_stretched_too() {
        // 10,000 TCP listeners: each hot sample's port dump walks them all, ~500 us.
        let (hot, scope, share) = simulate(Some(500 * US), 6 * MS, 6 * MS, Duration::ZERO);
        assert!(hot >= 50 * MS, "{hot:?}");
        assert!(scope > 300 * MS, "{scope:?}");
        assert!(share <= most(6 * MS), "{share}");
    }

    #[test]
    fn what_waking_costs_is_charged_to_sampling() {
        // 2,000 listeners with 10,000 more elsewhere: ~2 ms a dump; one hot listener, ~25 us
        // a sample and as much again to sleep and wake (benches/watch_hot.sh).
        let wake = 25 * US;
        let (hot, scope, share) = simulate(Some(25 * US), 2 * MS, 5 * MS, wake);
        assert_eq!(hot, 10 * MS, "one hot listener still at 100 Hz");
        assert!(share <= most(5 * MS), "{share}");
        // Counted, the wake-ups leave the dumps of the scope less of the share.
        let (_, free, _) = simulate(Some(25 * US), 2 * MS, 5 * MS, Duration::ZERO);
        assert!(scope > free, "{scope:?} against {free:?}");
    }

    #[test]
    fn refreshes_do_not_stretch_the_dumps() {
        // 2,000 listeners, ~2 ms a dump: every listener is seen within FULL_PERIOD, however
        // much the refreshes' rows cost.
        let (_, cheap, _) = simulate(None, 2000 * US, 2000 * US, Duration::ZERO);
        let (_, dear, _) = simulate(None, 2000 * US, 9 * MS, Duration::ZERO);
        assert!(cheap <= FULL_PERIOD, "{cheap:?}");
        assert_eq!(dear, cheap);
    }

    #[test]
    fn the_dumps_between_two_refreshes_are_spread_evenly() {
        let s = Duration::from_secs(1);
        assert_eq!(spread(94 * MS, s), Duration::from_nanos(1_000_000_000 / 11));
        assert_eq!(spread(100 * MS, s), 100 * MS);
        assert_eq!(spread(10 * MS, s), 10 * MS);
        assert_eq!(spread(3 * s, s), 3 * s);
    }
}

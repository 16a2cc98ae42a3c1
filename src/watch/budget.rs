//! The CPU budget of `watch`'s sampling: how often queue samples may be taken so that the whole
//! loop stays within a share of one core. Fed measured CPU times; the clock is the caller's.

use std::time::Duration;

/// Share of one core that sampling between refreshes may use.
const CPU_BUDGET: f64 = 0.016; // 2% with a margin for wake-ups, refresh output and start-up

/// Keeps the whole watch loop within CPU_BUDGET of one core. A dump costs about 0.5 us of
/// kernel time per listener in scope (benches/sample_cost.rs), so with many listeners the
/// sampling period stretches: from each queue sample's CPU time, corrected once per refresh by
/// the CPU the thread really used (refreshes count SYN_RECV, read counters and print).
pub(crate) struct Budget {
    floor: Duration,
    /// Moving average of one queue sample's CPU time, seconds.
    cost: f64,
    /// Correction for everything that is not a queue sample.
    k: f64,
    last: Option<(Duration, Duration)>,
    pub every: Duration,
}

impl Budget {
    pub(crate) fn new(floor: Duration) -> Self {
        Budget {
            floor,
            cost: 0.0,
            k: 1.0,
            last: None,
            every: floor,
        }
    }

    pub(crate) fn sampled(&mut self, cpu: Duration) {
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
    pub(crate) fn refreshed(&mut self, cpu: Duration, wall: Duration) {
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
pub(super) fn thread_cpu() -> Duration {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A simulated watch: each queue sample costs `sample`, each one-second refresh `refresh`
    /// of CPU. Returns the period chosen at the end and the CPU share of the last 10 seconds.
    fn simulate(floor: Duration, sample: Duration, refresh: Duration) -> (Duration, f64) {
        let mut b = Budget::new(floor);
        let (mut cpu, mut wall) = (Duration::ZERO, Duration::ZERO);
        let mut last10 = (Duration::ZERO, Duration::ZERO);
        for second in 0..60 {
            if second == 50 {
                last10 = (cpu, wall);
            }
            // Samples fill the second at the current period.
            let mut t = Duration::ZERO;
            while t < Duration::from_secs(1) {
                b.sampled(sample);
                cpu += sample;
                t += b.every;
            }
            cpu += refresh;
            wall += Duration::from_secs(1);
            b.refreshed(cpu, wall);
        }
        let share = (cpu - last10.0).as_secs_f64() / (wall - last10.1).as_secs_f64();
        (b.every, share)
    }

    #[test]
    fn cheap_samples_run_at_the_requested_period() {
        // 10 listeners: ~20 us a sample; 100 Hz costs 0.2% of a core.
        let (every, share) = simulate(
            Duration::from_millis(10),
            Duration::from_micros(20),
            Duration::from_micros(300),
        );
        assert_eq!(every, Duration::from_millis(10));
        assert!(share < 0.005, "{share}");
    }

    #[test]
    fn expensive_samples_stretch_the_period_to_stay_within_two_percent() {
        // 10,000 listeners: ~6 ms a sample; 100 Hz would take 60% of a core.
        let (every, share) = simulate(
            Duration::from_millis(10),
            Duration::from_millis(6),
            Duration::from_millis(2),
        );
        assert!(every > Duration::from_millis(200), "{every:?}");
        assert!(share <= 0.02, "{share}");
    }

    #[test]
    fn refresh_overhead_is_corrected_for() {
        // Samples alone would fit at 100 Hz, but each refresh costs 10 ms: the correction
        // stretches sampling so that the whole loop stays within budget.
        let (every, share) = simulate(
            Duration::from_millis(10),
            Duration::from_micros(150),
            Duration::from_millis(10),
        );
        // 1% goes to refreshes; sampling gets the rest of 1.6%: 40 samples/s.
        assert!(every > Duration::from_millis(20), "{every:?}");
        assert!(share <= 0.017, "{share}");
    }
}

//! The clients' wait of one listener over the window, folded from the samples' `Wait`
//! readings (docs/kernel.md, "The clients' wait"): how many waited and for how long, in the
//! kernel's accept queue and inside the server after accept(), and how fast they were served.
//! Numbers only; the rules judge them, the words say them.

use serde::Serialize;

use crate::model::{Listener, Wait};

/// A client waiting this long notices: one second is also Kubernetes' default probe timeout.
pub const WAIT_WARNING_MS: u32 = 1_000;
/// Past this, common client timeouts fire (load balancers' health checks, 5 s in AWS's and
/// HAProxy's defaults; many HTTP clients' connect-and-read budgets): clients fail, not only
/// wait.
pub const WAIT_CRITICAL_MS: u32 = 5_000;
/// A queue that never emptied is only "standing" over a window at least this long: a burst
/// shorter than that is what a backlog is for.
pub const STANDING_MIN_US: u64 = 1_000_000;

/// One listener's wait over the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WaitSeen {
    /// Samples of the listener, and how many of them read the wait.
    pub samples: u32,
    pub measured: u32,
    /// Some sample had Recv-Q 0: the accept queue emptied at least once.
    pub emptied: bool,
    /// Time covered by the samples of the listener, µs.
    pub span_us: u64,
    /// The first and last readings, with their time (µs into the window).
    pub first: Option<(u64, Wait)>,
    pub last: Option<(u64, Wait)>,
    /// Peaks over the readings.
    pub queued_peak: u32,
    pub unanswered_peak: u32,
    pub queued_oldest_max_ms: u32,
    pub unanswered_oldest_max_ms: u32,
    /// Median over the readings of the oldest wait (queued or accepted), ms.
    pub oldest_p50_ms: u32,
    /// Clients that left each place between readings (`Wait::queued_left`,
    /// `unanswered_left`), and the time those readings span, ms.
    pub queued_left: u32,
    pub unanswered_left: u32,
    pub left_over_ms: u64,
    /// The oldest wait of each reading, for the median; not reported.
    #[serde(skip)]
    oldest: Vec<u32>,
    #[serde(skip)]
    first_us: Option<u64>,
}

/// Where the clients wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WaitWhere {
    /// In the kernel's accept queue: the owner does not call accept() fast enough.
    AcceptQueue,
    /// Accepted, their requests unanswered: in the server's own queue or workers.
    AfterAccept,
}

impl WaitSeen {
    /// Folds in one sample of the listener, taken `at_us` into the window.
    pub fn add(&mut self, at_us: u64, l: &Listener) {
        self.samples += 1;
        self.emptied |= l.recv_q == 0;
        let first = *self.first_us.get_or_insert(at_us);
        self.span_us = at_us.saturating_sub(first);
        let Some(w) = l.wait else { return };
        self.measured += 1;
        self.first.get_or_insert((at_us, w));
        self.last = Some((at_us, w));
        self.queued_peak = self.queued_peak.max(w.queued);
        self.unanswered_peak = self.unanswered_peak.max(w.unanswered);
        self.queued_oldest_max_ms = self.queued_oldest_max_ms.max(w.queued_oldest_ms);
        self.unanswered_oldest_max_ms = self.unanswered_oldest_max_ms.max(w.unanswered_oldest_ms);
        self.oldest.push(w.oldest_ms());
        if w.since_ms > 0 {
            self.queued_left += w.queued_left;
            self.unanswered_left += w.unanswered_left;
            self.left_over_ms += u64::from(w.since_ms);
        }
    }

    /// Computes the median once every sample is in.
    pub fn finish(&mut self) {
        let mut o = std::mem::take(&mut self.oldest);
        o.sort_unstable();
        self.oldest_p50_ms = o.get(o.len() / 2).copied().unwrap_or(0);
        self.oldest = o;
    }

    /// Nothing was measured and nothing stood: nothing to report.
    pub fn is_empty(&self) -> bool {
        self.measured == 0
    }

    /// The queue held connections in every sample of a window long enough to call it standing.
    pub fn standing(&self) -> bool {
        self.samples > 1 && !self.emptied && self.span_us >= STANDING_MIN_US
    }

    /// The longest wait seen at `place`, ms.
    pub fn oldest_max_ms(&self, place: WaitWhere) -> u32 {
        match place {
            WaitWhere::AcceptQueue => self.queued_oldest_max_ms,
            WaitWhere::AfterAccept => self.unanswered_oldest_max_ms,
        }
    }

    /// How many waited at `place` in a reading.
    fn count(w: &Wait, place: WaitWhere) -> u32 {
        match place {
            WaitWhere::AcceptQueue => w.queued,
            WaitWhere::AfterAccept => w.unanswered,
        }
    }

    /// How many wait at `place` at the last reading.
    pub fn waiting_now(&self, place: WaitWhere) -> u32 {
        self.last.map_or(0, |(_, w)| Self::count(&w, place))
    }

    /// Clients served from `place` per second: those that left it between readings over the
    /// time the readings span (exact: each connection is told by its client's address, or a
    /// Unix client's inode), else how much the waiting shrank between the first and last
    /// readings (a lower bound: arrivals in between only add). None when too short to tell;
    /// 0 when nobody left.
    pub fn drain_per_s(&self, place: WaitWhere) -> Option<f64> {
        if self.rate_counted() {
            let left = match place {
                WaitWhere::AcceptQueue => self.queued_left,
                WaitWhere::AfterAccept => self.unanswered_left,
            };
            return Some(f64::from(left) / (self.left_over_ms as f64 / 1000.0));
        }
        let ((t0, a), (t1, b)) = (self.first?, self.last?);
        let dt = t1.saturating_sub(t0) as f64 / 1e6;
        let gone = f64::from(Self::count(&a, place)) - f64::from(Self::count(&b, place));
        (dt >= 0.2 && gone > 0.0).then(|| gone / dt)
    }

    /// Whether the readings counted who left (over 200 ms or more), rather than only how many
    /// waited.
    pub fn rate_counted(&self) -> bool {
        self.left_over_ms >= 200
    }

    /// At the drain rate, how long the clients waiting at the last reading still wait, ms.
    pub fn to_drain_ms(&self, place: WaitWhere) -> Option<u32> {
        let rate = self.drain_per_s(place).filter(|r| *r > 0.0)?;
        Some((f64::from(self.waiting_now(place)) / rate * 1000.0).round() as u32)
    }

    /// What the last client in line will have waited when served: the oldest wait so far plus
    /// the time to drain the rest, ms; the oldest wait alone when the rate is unknown.
    pub fn expected_ms(&self, place: WaitWhere) -> u32 {
        // The longest wait seen already counts the last reading's.
        self.oldest_max_ms(place)
            .saturating_add(self.to_drain_ms(place).unwrap_or(0))
    }

    /// Accepted requests being worked on at the last reading (unanswered, already read): how
    /// many the server serves at once.
    pub fn in_progress(&self) -> Option<u32> {
        self.last
            .map(|(_, w)| w.unanswered.saturating_sub(w.unread))
            .filter(|n| *n > 0)
    }

    /// Accepted requests still unread at the last reading: queued in the server's own pool.
    pub fn unread_now(&self) -> u32 {
        self.last.map_or(0, |(_, w)| w.unread)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Local;

    fn listener(recv_q: u32, wait: Option<Wait>) -> Listener {
        Listener {
            local: Local::Inet("127.0.0.1:8500".parse().unwrap()),
            inode: 1,
            uid: 0,
            recv_q,
            send_q: 4096,
            drops: Some(0),
            syn_recv: None,
            v6only: None,
            wait,
        }
    }

    fn pool(unanswered: u32, oldest: u32) -> Option<Wait> {
        Some(Wait {
            unanswered,
            unanswered_oldest_ms: oldest,
            unread: unanswered - 10,
            ..Wait::default()
        })
    }

    /// The seed's server: one acceptor, a pool of 10, 100 ms per request, 1000 clients; read
    /// 2 s into the burst for 1 s (figures as measured live).
    #[test]
    fn a_pool_draining_at_100_per_second() {
        let mut w = WaitSeen::default();
        for (i, (n, oldest)) in [(820, 1904), (770, 2424), (720, 2900)].iter().enumerate() {
            w.add(i as u64 * 500_000, &listener(0, pool(*n, *oldest)));
        }
        w.finish();
        let at = WaitWhere::AfterAccept;
        assert_eq!(w.drain_per_s(at), Some(100.0));
        assert_eq!(w.to_drain_ms(at), Some(7200));
        assert_eq!(w.expected_ms(at), 10_100);
        assert_eq!(w.in_progress(), Some(10));
        assert_eq!(w.oldest_p50_ms, 2424);
        assert!(!w.standing(), "the kernel's queue emptied");
    }

    /// Node.js behind nginx, 300 ms of synchronous work per request, `ab -c 100`: the Unix
    /// queue stays at 98 because nginx sends a new request for each one answered. The count
    /// does not shrink, but clients leave it about 3 a second: the last waits about 35 s.
    #[test]
    fn a_steady_queue_is_served_at_the_rate_clients_leave_it() {
        let mut w = WaitSeen::default();
        for i in 0..=20u32 {
            let wait = Wait {
                queued: 98,
                queued_oldest_ms: i * 100,
                at_least: true,
                // One leaves about every 300 ms (and another arrives).
                queued_left: u32::from(i > 0 && i % 3 == 0),
                since_ms: if i > 0 { 100 } else { 0 },
                ..Wait::default()
            };
            w.add(u64::from(i) * 100_000, &listener(98, Some(wait)));
        }
        w.finish();
        let at = WaitWhere::AcceptQueue;
        let rate = w.drain_per_s(at).unwrap();
        assert!((rate - 3.0).abs() < 0.01, "6 left in 2 s: {rate}");
        assert_eq!(w.to_drain_ms(at), Some(32_667));
        assert_eq!(w.expected_ms(at), 2000 + 32_667);
        assert!(w.standing());
    }

    #[test]
    fn a_queue_that_never_empties_over_a_second_stands() {
        let mut w = WaitSeen::default();
        for t in [0, 400_000, 800_000] {
            w.add(t, &listener(5, None));
        }
        assert!(!w.standing(), "0.8 s is a burst");
        w.add(1_000_000, &listener(5, None));
        assert!(w.standing());
        w.add(1_100_000, &listener(0, None));
        assert!(!w.standing());
        assert!(w.is_empty(), "nothing measured");
        assert_eq!(w.drain_per_s(WaitWhere::AcceptQueue), None);
    }
}

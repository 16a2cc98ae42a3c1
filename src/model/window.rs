//! One listener's accept queue at its fullest over a window, and the name of the processes
//! holding it: the one definition of the queue's capacity, "full", the fill percentage, the
//! 80% mark and the process label, read by doctor, watch, lab and the renderers.

use super::Owner;

/// The highest Recv-Q seen over a window against the backlog B.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuePeak {
    pub peak: u32,
    /// Send-Q: the effective backlog B.
    pub backlog: u32,
}

impl QueuePeak {
    /// B+1: `sk_acceptq_is_full` (include/net/sock.h) compares with `>`.
    pub fn capacity(self) -> u64 {
        u64::from(self.backlog) + 1
    }

    /// The queue was at its limit (Recv-Q > B), or past it: the check is lockless and
    /// concurrent handshakes overshoot (docs/kernel.md §1.2).
    pub fn full(self) -> bool {
        self.peak > self.backlog
    }

    /// Percentage of the capacity reached; above 100 when the queue overshot.
    pub fn fill_pct(self) -> u32 {
        let pct = u64::from(self.peak) * 100 / self.capacity();
        u32::try_from(pct).unwrap_or(u32::MAX)
    }

    /// 80% of the capacity reached (and at least 2): nearly full.
    pub fn nearly_full(self) -> bool {
        let mark = (self.capacity() * 80).div_ceil(100).max(2);
        u64::from(self.peak) >= mark
    }

    /// Half of the capacity reached.
    pub fn half_full(self) -> bool {
        u64::from(self.peak) * 2 >= self.capacity()
    }
}

/// `nginx, pid 12`, or `nginx, pids 12,13` for a socket several processes hold; None when
/// no process is known.
pub fn process_label(owners: &[Owner]) -> Option<String> {
    let o = owners.first()?;
    let mut pids: Vec<u32> = owners.iter().map(|o| o.pid).collect();
    pids.sort_unstable();
    pids.dedup();
    Some(match pids.as_slice() {
        [one] => format!("{}, pid {one}", o.comm),
        many => {
            let list: Vec<String> = many.iter().map(u32::to_string).collect();
            format!("{}, pids {}", o.comm, list.join(","))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_is_backlog_plus_one_and_never_overflows() {
        let q = |peak, backlog| QueuePeak { peak, backlog };
        assert!(q(6, 5).full() && !q(5, 5).full());
        assert_eq!(q(6, 5).fill_pct(), 100);
        assert_eq!(q(7, 5).fill_pct(), 116);
        assert!(q(5, 5).nearly_full() && !q(4, 5).nearly_full());
        assert!(!q(1, 0).nearly_full(), "at least 2");
        assert_eq!(q(u32::MAX, 0).fill_pct(), u32::MAX);
        assert_eq!(q(0, u32::MAX).capacity(), 1 << 32);
    }

    #[test]
    fn one_label_for_one_or_several_holders() {
        let o = |pid| Owner {
            inode: 1,
            pid,
            comm: "nginx".into(),
            cmdline: String::new(),
        };
        assert_eq!(process_label(&[]), None);
        assert_eq!(process_label(&[o(12)]).as_deref(), Some("nginx, pid 12"));
        assert_eq!(
            process_label(&[o(13), o(12), o(13)]).as_deref(),
            Some("nginx, pids 12,13")
        );
    }
}

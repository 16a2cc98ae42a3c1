//! One listener's accept queue at its fullest over a window, and the name of the processes
//! holding it: the one definition of the queue's capacity, "full", the fill percentage, the
//! 80% mark, the process label (and the process names it is made of, made printable) and the
//! window's length in words, read by doctor, watch, lab and the renderers.

use super::{Owner, ProcState};

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

/// A window's length as reports write it: `700 ms` below a second, then `1.5 s`.
pub(crate) fn window_length(ms: u64) -> String {
    if ms >= 1000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{ms} ms")
    }
}

/// The processes holding a socket, in one line: `websrv, pid 12`; `gunicorn, pids 12-15`; with
/// the roles a pre-fork server writes in its command line, `websrv: master 123, workers
/// 124-127`; processes of different names apart, `systemd, pid 1; websrv, pid 900`; a name that
/// could not be read, `pid 7`. When only some of the holders are known to serve it (their
/// epoll sets watch it, `Owner::watches`), they are named after: `websrv: master 123, workers
/// 124-127, served by worker 125 (stopped)`, with the state of those that cannot accept at all.
/// None when no process is known.
pub fn process_label(owners: &[Owner]) -> Option<String> {
    let label = holders_label(owners)?;
    let several = names_of(&owners.iter().collect::<Vec<_>>()).len() > 1;
    Some(match served_by(owners, several) {
        Some(servers) => format!("{label}, served by {servers}"),
        None => label,
    })
}

/// `process_label` without who serves it: the holders alone, for the sockets of a group that
/// share their processes but not their servers (SO_REUSEPORT members).
pub fn holders_label(owners: &[Owner]) -> Option<String> {
    let all: Vec<&Owner> = owners.iter().collect();
    let names = names_of(&all);
    (!names.is_empty()).then(|| by_name(&names, &all))
}

/// The distinct process names, in order of first appearance.
fn names_of<'a>(owners: &[&'a Owner]) -> Vec<&'a str> {
    let mut names: Vec<&str> = Vec::new();
    for o in owners {
        if !names.contains(&o.comm.as_str()) {
            names.push(&o.comm);
        }
    }
    names
}

/// One label per name, `; ` between them.
fn by_name(names: &[&str], owners: &[&Owner]) -> String {
    names
        .iter()
        .map(|name| {
            let same: Vec<&Owner> = owners.iter().copied().filter(|o| o.comm == *name).collect();
            label_of(name, &same)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `worker 125 (stopped)`: the holders whose epoll sets watch the socket, when they are some
/// of the holders but not all (all of them tells nothing); `named`: say their names too (the
/// holders have several). None when none is known to.
fn served_by(owners: &[Owner], named: bool) -> Option<String> {
    let mut all: Vec<u32> = owners.iter().map(|o| o.pid).collect();
    all.sort_unstable();
    all.dedup();
    let servers: Vec<&Owner> = owners.iter().filter(|o| o.watches == Some(true)).collect();
    let mut pids: Vec<u32> = servers.iter().map(|o| o.pid).collect();
    pids.sort_unstable();
    pids.dedup();
    if pids.is_empty() || pids.len() == all.len() {
        return None;
    }
    let who = if named {
        by_name(&names_of(&servers), &servers)
    } else {
        label_of("", &servers)
    };
    let mut halted: Vec<(u32, ProcState)> = servers
        .iter()
        .filter_map(|o| o.state.filter(|s| s.halted()).map(|s| (o.pid, s)))
        .collect();
    halted.sort_unstable_by_key(|(pid, _)| *pid);
    halted.dedup_by_key(|(pid, _)| *pid);
    let states = match halted.as_slice() {
        [] => String::new(),
        [(_, s)] if pids.len() == 1 => format!(" ({})", state_word(*s)),
        many => format!(
            " ({})",
            many.iter()
                .map(|(pid, s)| format!("{pid} {}", state_word(*s)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Some(format!("{who}{states}"))
}

/// A state as a process label says it: `stopped`, `zombie`.
fn state_word(s: ProcState) -> &'static str {
    match s {
        ProcState::Running => "running",
        ProcState::Sleeping => "sleeping",
        ProcState::DiskSleep => "in uninterruptible sleep",
        ProcState::Stopped => "stopped",
        ProcState::TracingStop => "stopped by a tracer",
        ProcState::Zombie => "zombie",
        ProcState::Dead => "dead",
        ProcState::Parked => "parked",
        ProcState::Idle => "idle",
    }
}

/// The label of the holders of one name.
fn label_of(name: &str, owners: &[&Owner]) -> String {
    // Role → PIDs, "master" first.
    let mut roles: Vec<(Option<&str>, Vec<u32>)> = Vec::new();
    for o in owners {
        let role = role(o);
        match roles.iter_mut().find(|(r, _)| *r == role) {
            Some((_, pids)) => pids.push(o.pid),
            None => roles.push((role, vec![o.pid])),
        }
    }
    roles.sort_by_key(|(r, _)| (*r != Some("master"), *r));
    let parts: Vec<String> = roles
        .iter_mut()
        .map(|(role, pids)| {
            pids.sort_unstable();
            pids.dedup();
            let noun = match (*role, pids.len()) {
                (None, 1) => "pid".to_string(),
                (None, _) => "pids".to_string(),
                (Some(r), 1) => r.to_string(),
                (Some(r), _) => format!("{r}s"),
            };
            format!("{noun} {}", ranges(pids))
        })
        .collect();
    let sep = if roles.iter().all(|(r, _)| r.is_none()) {
        ","
    } else {
        ":"
    };
    match name {
        "" => parts.join(", "),
        _ => format!("{name}{sep} {}", parts.join(", ")),
    }
}

/// `master` or `worker` from `websrv: master process ...` / `gunicorn: worker [app]`.
fn role(o: &Owner) -> Option<&'static str> {
    let rest = o
        .cmdline
        .strip_prefix(o.comm.as_str())?
        .strip_prefix(": ")?;
    if rest.starts_with("master") {
        Some("master")
    } else if rest.starts_with("worker") {
        Some("worker")
    } else {
        None
    }
}

/// `12-15,20` for 12, 13, 14, 15, 20 (sorted, no duplicates).
fn ranges(pids: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < pids.len() {
        let mut j = i;
        while j + 1 < pids.len() && pids[j + 1] == pids[j] + 1 {
            j += 1;
        }
        out.push(if j > i {
            format!("{}-{}", pids[i], pids[j])
        } else {
            pids[i].to_string()
        });
        i = j + 1;
    }
    out.join(",")
}

/// A name any process may set (prctl PR_SET_NAME), made safe to print and to put in XML or a
/// label: control characters (an escape sequence that clears the terminal, bytes XML forbids)
/// become `\xNN`. Applied where names enter: read from /proc, or loaded from a file.
pub(crate) fn printable(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_control() {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_control_characters_are_made_printable() {
        assert_eq!(printable("websrv"), "websrv");
        assert_eq!(printable("\u{1b}[2J大x\u{1}"), "\\x1b[2J大x\\x01");
        assert_eq!(printable("a\u{7f}\u{9b}b"), "a\\x7f\\x9bb");
    }

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
        let o = |pid, cmdline: &str| Owner {
            inode: 1,
            pid,
            comm: "websrv".into(),
            cmdline: cmdline.into(),
            ..Owner::default()
        };
        assert_eq!(process_label(&[]), None);
        assert_eq!(
            process_label(&[o(12, "")]).as_deref(),
            Some("websrv, pid 12")
        );
        assert_eq!(
            process_label(&[o(13, ""), o(12, ""), o(13, ""), o(20, "")]).as_deref(),
            Some("websrv, pids 12-13,20")
        );
        let master = "websrv: master process websrv -c /etc/websrv/websrv.conf";
        let worker = "websrv: worker process";
        assert_eq!(
            process_label(&[
                o(125, worker),
                o(123, master),
                o(124, worker),
                o(127, worker)
            ])
            .as_deref(),
            Some("websrv: master 123, workers 124-125,127")
        );
        let mut systemd = o(1, "/sbin/init");
        systemd.comm = "systemd".into();
        let mut nameless = o(7, "");
        nameless.comm = String::new();
        assert_eq!(
            process_label(&[systemd, o(900, ""), nameless]).as_deref(),
            Some("systemd, pid 1; websrv, pid 900; pid 7")
        );
    }

    #[test]
    fn the_label_names_the_holders_that_serve_the_socket_when_only_some_do() {
        let o = |pid, role: &str, watches, state| Owner {
            inode: 1,
            pid,
            comm: "websrv".into(),
            cmdline: format!("websrv: {role} process"),
            state,
            watches,
        };
        let (s, t) = (Some(ProcState::Sleeping), Some(ProcState::Stopped));
        // One SO_REUSEPORT socket of four: every process holds it, one worker's epoll set
        // watches it, and that worker is stopped.
        let member = [
            o(10, "master", Some(false), s),
            o(11, "worker", Some(false), s),
            o(12, "worker", Some(true), t),
            o(13, "worker", Some(false), s),
        ];
        assert_eq!(
            process_label(&member).as_deref(),
            Some("websrv: master 10, workers 11-13, served by worker 12 (stopped)")
        );
        // An ordinary listener: every worker watches it, the master does not; one is stopped.
        let shared = [
            o(10, "master", Some(false), s),
            o(11, "worker", Some(true), s),
            o(12, "worker", Some(true), t),
        ];
        assert_eq!(
            process_label(&shared).as_deref(),
            Some("websrv: master 10, workers 11-12, served by workers 11-12 (12 stopped)")
        );
        // Every holder serves it, or none is known to: the label says nothing more.
        let all = [
            o(11, "worker", Some(true), t),
            o(12, "worker", Some(true), s),
        ];
        assert_eq!(
            process_label(&all).as_deref(),
            Some("websrv: workers 11-12")
        );
        assert_eq!(
            holders_label(&member).as_deref(),
            Some("websrv: master 10, workers 11-13")
        );
        let unknown = [o(10, "master", None, t), o(11, "worker", Some(false), s)];
        assert_eq!(
            process_label(&unknown).as_deref(),
            Some("websrv: master 10, worker 11")
        );
        // Holders of several names: the servers' names too.
        let mut init = o(1, "master", Some(false), s);
        init.comm = "systemd".into();
        init.cmdline = "/sbin/init".into();
        assert_eq!(
            process_label(&[init, o(12, "worker", Some(true), s)]).as_deref(),
            Some("systemd, pid 1; websrv: worker 12, served by websrv: worker 12")
        );
    }
}

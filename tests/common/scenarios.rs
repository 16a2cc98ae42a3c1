//! Real scenarios for `doctor`, each run inside the private namespace of `in_netns`: the
//! sockets, sysctls and, for some, a client burst that must fall inside the observation
//! window, after its first sample. The same table drives the live kernel tests
//! (tests/doctor.rs) and the recording of fixtures/snapshots/
//! (`RECORD_FIXTURES=1 cargo test --test doctor record_fixtures -- --ignored`), whose replay is
//! checked everywhere against the same expectations.
//!
//! A scenario's setup builds the state; the caller then starts the observer (`doctor --window`
//! or `snapshot --window`, a separate process) and hands its PID to `Running::observed_by`,
//! which fires the burst, if the scenario has one, once that process has taken its first
//! sample (`wait_until_asleep`), not after a delay that hopes so.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::*;

/// Everything a scenario keeps alive until the observation is over.
pub struct Running {
    _fds: Vec<OwnedFd>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Vec<OwnedFd>>>,
    child: Option<std::process::Child>,
    /// Connects to start once the observer has sampled: (address, how many).
    burst: Option<(&'static str, usize)>,
}

impl Running {
    /// The observer, process `pid`, has been started: fires the burst, if any, once that
    /// process has taken its first sample, from the calling thread (in the scenario's
    /// namespace). The burst's clients live as long as `self`.
    pub fn observed_by(&mut self, pid: u32) -> Result<(), String> {
        let Some((addr, n)) = self.burst.take() else {
            return Ok(());
        };
        wait_until_asleep(pid).ok_or_else(|| {
            format!("the observer (pid {pid}) ended, or never slept, before its first sample")
        })?;
        self._fds.extend((0..n).map(|_| start_connect(addr)));
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub struct Scenario {
    pub name: &'static str,
    pub what: &'static str,
    pub targets: &'static [&'static str],
    /// Rule ids the diagnosis must contain, and nothing else.
    pub expect: &'static [&'static str],
    pub exit: i32,
    pub setup: fn() -> Option<Running>,
}

pub const WINDOW: &str = "700ms";

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "healthy-backlog511-idle",
        what: "listen(511) with somaxconn 4096, nobody connecting",
        targets: &[":8100"],
        expect: &[],
        exit: 0,
        setup: || Some(running(vec![listener("127.0.0.1:8100", 511)])),
    },
    Scenario {
        name: "somaxconn5-backlog100-burst",
        what: "the seed: somaxconn 5, listen(100), a burst of 20 connects nobody accepts",
        targets: &[":8100"],
        expect: &[
            "accept-queue-overflow",
            "backlog-capped-by-somaxconn",
            "abort-on-overflow",
        ],
        exit: 2,
        setup: seed,
    },
    Scenario {
        name: "somaxconn5-backlog100-burst-abort1",
        what: "the seed with net.ipv4.tcp_abort_on_overflow=1",
        targets: &[":8100"],
        expect: &[
            "accept-queue-overflow",
            "backlog-capped-by-somaxconn",
            "abort-on-overflow",
        ],
        exit: 2,
        setup: || {
            set_sysctl("net.ipv4.tcp_abort_on_overflow", 1);
            seed()
        },
    },
    Scenario {
        name: "backlog8-dropped-then-drained",
        what: "listen(8), a burst of 20 before the window, then a fast acceptor",
        targets: &[":8100"],
        expect: &["accept-queue-dropped", "small-app-backlog"],
        exit: 1,
        setup: || {
            let fd = listener("127.0.0.1:8100", 8);
            let clients: Vec<OwnedFd> = (0..20).map(|_| start_connect("127.0.0.1:8100")).collect();
            wait_for(300, || {
                let l = listener_of(":8100")?;
                (l.recv_q == 9 && l.drops? > 0).then_some(())
            })?;
            // The clients whose SYN was dropped would send it again 1 s later (the initial RTO),
            // into the window on a slow machine: they give up now, before the acceptor starts.
            let clients: Vec<OwnedFd> = clients.into_iter().filter(connected).collect();
            let mut r = running(clients);
            let stop = r.stop.clone();
            let lfd = fd.try_clone().ok()?;
            r._fds.push(fd);
            r.threads
                .push(std::thread::spawn(move || accept_all(lfd, stop)));
            wait_for(300, || (queue_of(":8100")? == 0).then_some(()))?;
            Some(r)
        },
    },
    Scenario {
        name: "backlog10-nine-waiting",
        what: "listen(10) with 9 connections waiting for accept(), no drops",
        targets: &[":8100"],
        expect: &["accept-queue-high", "small-app-backlog"],
        exit: 1,
        setup: || {
            let mut fds = vec![listener("127.0.0.1:8100", 10)];
            fds.extend((0..9).map(|_| start_connect("127.0.0.1:8100")));
            wait_for(300, || (queue_of(":8100")? == 9).then_some(()))?;
            Some(running(fds))
        },
    },
    Scenario {
        name: "backlog1024-somaxconn-lowered-to-128",
        what: "listen(1024) under somaxconn 4096, then somaxconn lowered to 128",
        targets: &[":8100"],
        expect: &["somaxconn-changed-after-listen"],
        exit: 1,
        setup: || {
            let fd = listener("127.0.0.1:8100", 1024);
            set_sysctl("net.core.somaxconn", 128);
            Some(running(vec![fd]))
        },
    },
    Scenario {
        name: "python-http-server-idle",
        what: "python3 -m http.server (socketserver's request_queue_size 5), idle",
        targets: &[":8100"],
        expect: &["small-app-backlog"],
        exit: 1,
        setup: || {
            let child = std::process::Command::new("python3")
                .args(["-m", "http.server", "8100", "--bind", "127.0.0.1"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .ok()?;
            let mut r = running(Vec::new());
            r.child = Some(child);
            wait_for(500, || queue_of(":8100"))?;
            Some(r)
        },
    },
    Scenario {
        name: "syncookies0-synqueue-full",
        what: "tcp_syncookies=0, listen(4) with TCP_DEFER_ACCEPT, 10 silent clients in the window",
        targets: &[":8100"],
        expect: &[
            "syn-queue-overflow",
            "syncookies-disabled",
            "small-app-backlog",
            "abort-on-overflow",
        ],
        exit: 2,
        setup: || {
            set_sysctl("net.ipv4.tcp_syncookies", 0);
            let fd = listener("127.0.0.1:8100", 4);
            defer_accept(&fd);
            Some(burst_once_sampled(vec![fd], "127.0.0.1:8100", 10))
        },
    },
    Scenario {
        name: "syncookies1-synqueue-full",
        what: "tcp_syncookies=1, listen(4) with TCP_DEFER_ACCEPT, 7 silent clients in the window",
        targets: &[":8100"],
        expect: &["syn-queue-overflow", "small-app-backlog"],
        exit: 1,
        setup: || {
            let fd = listener("127.0.0.1:8100", 4);
            defer_accept(&fd);
            Some(burst_once_sampled(vec![fd], "127.0.0.1:8100", 7))
        },
    },
    Scenario {
        name: "reuseport-backlog2-and-64",
        what: "two SO_REUSEPORT listeners on one port, listen(2) and listen(64), 40 connects, no accept",
        targets: &[":8100"],
        expect: &[
            "reuseport-imbalance",
            "accept-queue-overflow",
            "small-app-backlog",
            "abort-on-overflow",
        ],
        exit: 2,
        setup: || {
            let small = listener_with("127.0.0.1:8100", 2, true);
            let big = listener_with("127.0.0.1:8100", 64, true);
            Some(burst_once_sampled(vec![small, big], "127.0.0.1:8100", 40))
        },
    },
    Scenario {
        name: "nothing-on-8200",
        what: "a listener on 8100, the target is 8200",
        targets: &[":8200"],
        expect: &["not-listening"],
        exit: 2,
        setup: || Some(running(vec![listener("127.0.0.1:8100", 511)])),
    },
];

/// The seed's experiment: somaxconn 5, listen(100), 20 connects once the observer sampled.
fn seed() -> Option<Running> {
    set_sysctl("net.core.somaxconn", 5);
    let fd = listener("127.0.0.1:8100", 100);
    Some(burst_once_sampled(vec![fd], "127.0.0.1:8100", 20))
}

fn running(fds: Vec<OwnedFd>) -> Running {
    Running {
        _fds: fds,
        stop: Arc::new(AtomicBool::new(false)),
        threads: Vec::new(),
        child: None,
        burst: None,
    }
}

/// Keeps `fds`; `observed_by` starts `n` connects to `addr` once the observer has sampled.
/// The observer prints nothing until its report, and a sample changes no socket or counter of
/// the namespace, but its state in /proc tells when its first sample is done.
fn burst_once_sampled(fds: Vec<OwnedFd>, addr: &'static str, n: usize) -> Running {
    let mut r = running(fds);
    r.burst = Some((addr, n));
    r
}

fn accept_all(fd: OwnedFd, stop: Arc<AtomicBool>) -> Vec<OwnedFd> {
    let mut accepted = Vec::new();
    nix::fcntl::fcntl(
        &fd,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .ok();
    while !stop.load(Ordering::Relaxed) {
        match nix::sys::socket::accept(&fd) {
            Ok(c) => accepted.push(c),
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    accepted
}

/// Recv-Q of the listener matching `target`, if there is one.
pub fn queue_of(target: &str) -> Option<u32> {
    listener_of(target).map(|l| l.recv_q)
}

/// The listener matching `target` as one sample sees it, if there is one.
pub fn listener_of(target: &str) -> Option<backlogctl::model::Listener> {
    use backlogctl::collect::{Kernel, Sampling, record};
    let scope = backlogctl::model::Scope::new(vec![backlogctl::model::Target::parse(target).ok()?]);
    let (snap, _) = record(Kernel::default(), &scope, &Sampling::ONCE).ok()?;
    snap.samples.last()?.listeners.first().cloned()
}

/// Whether a client's handshake completed on its side (a peer address); false while its SYN
/// waits for an answer (SYN_SENT).
fn connected(fd: &OwnedFd) -> bool {
    nix::sys::socket::getpeername::<nix::sys::socket::SockaddrStorage>(
        std::os::fd::AsRawFd::as_raw_fd(fd),
    )
    .is_ok()
}

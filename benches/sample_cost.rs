//! Cost of one sample (the inet_diag dump of both families, and the counters read) with N
//! listeners, measured in a private network namespace: CPU time per sample, and the share of
//! one core that sampling at 100 Hz takes. Run as root: `cargo bench --bench sample_cost`.
//! Prints figures; asserts nothing (speed is measured here, never in tests).

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, unshare};
use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::socket::*;

fn cpu() -> Duration {
    let u = getrusage(UsageWho::RUSAGE_THREAD).expect("getrusage");
    let t =
        |tv: nix::sys::time::TimeVal| Duration::new(tv.tv_sec() as u64, tv.tv_usec() as u32 * 1000);
    t(u.user_time()) + t(u.system_time())
}

fn listeners(n: u16) -> Vec<OwnedFd> {
    (0..n)
        .map(|i| {
            let fd = socket(
                AddressFamily::Inet,
                SockType::Stream,
                SockFlag::SOCK_CLOEXEC,
                None,
            )
            .unwrap();
            let sa: std::net::SocketAddr = format!("127.0.0.1:{}", 20000 + i).parse().unwrap();
            bind(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                &SockaddrStorage::from(sa),
            )
            .unwrap();
            listen(&fd, Backlog::new(128).unwrap()).unwrap();
            fd
        })
        .collect()
}

fn measure(label: &str, iters: u32, mut f: impl FnMut()) {
    let (c0, w0) = (cpu(), Instant::now());
    for _ in 0..iters {
        f();
    }
    let per = (cpu() - c0) / iters;
    let wall = w0.elapsed() / iters;
    println!(
        "{label:<48} {:>8.1} us CPU/sample {:>8.1} us wall  at 100 Hz: {:.2}% of a core",
        per.as_secs_f64() * 1e6,
        wall.as_secs_f64() * 1e6,
        per.as_secs_f64() * 100.0 * 100.0
    );
}

fn main() {
    let handle = std::thread::spawn(|| {
        if let Err(e) = unshare(CloneFlags::CLONE_NEWNET) {
            println!("skipped: needs root for unshare(CLONE_NEWNET): {e}");
            return;
        }
        backlogctl::source::netns::loopback_up().expect("lo up");
        let mut diag = backlogctl::source::diag::Diag::open().expect("diag");
        for n in [10u16, 1000] {
            let _keep = listeners(n);
            measure(
                &format!("{n} listeners: dump LISTEN only, all ports"),
                500,
                || {
                    diag.dump(&[], false).unwrap();
                },
            );
            measure(
                &format!("{n} listeners: dump LISTEN+SYN_RECV, all ports"),
                500,
                || {
                    diag.dump(&[], true).unwrap();
                },
            );
            measure(
                &format!("{n} listeners: dump LISTEN+SYN_RECV, one port"),
                500,
                || {
                    diag.dump(&[20000], true).unwrap();
                },
            );
            measure(
                &format!("{n} listeners: /proc/net/netstat+snmp"),
                500,
                || {
                    backlogctl::source::netstat::read().unwrap();
                },
            );
        }
    });
    handle.join().unwrap();
}

//! Cost of one sample (the inet_diag dump of both families, and the counters read) with N
//! listeners, measured in a private network namespace: CPU time per sample, and the share of
//! one core that sampling at 100 Hz takes; and `watch`'s exact requests (one TCP listener by
//! address, one Unix listener by inode) beside the dumps they replace. Run as root: `cargo bench --bench sample_cost`.
//! Prints figures; asserts nothing (speed is measured here, never in tests).

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, unshare};
use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::socket::*;

use backlogctl::source::diag::Query;

/// (user, system) CPU time of the calling thread.
fn cpu() -> (Duration, Duration) {
    let u = getrusage(UsageWho::RUSAGE_THREAD).expect("getrusage");
    let t =
        |tv: nix::sys::time::TimeVal| Duration::new(tv.tv_sec() as u64, tv.tv_usec() as u32 * 1000);
    (t(u.user_time()), t(u.system_time()))
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

/// An abstract Unix listener (per namespace, no file to remove).
fn unix_listener(i: u16) -> OwnedFd {
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    let name = UnixAddr::new_abstract(format!("sample-cost-{i}").as_bytes()).unwrap();
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &name).unwrap();
    listen(&fd, Backlog::new(128).unwrap()).unwrap();
    fd
}

fn measure(label: &str, iters: u32, mut f: impl FnMut()) {
    let ((u0, s0), w0) = (cpu(), Instant::now());
    for _ in 0..iters {
        f();
    }
    let (u1, s1) = cpu();
    let (user, sys) = ((u1 - u0) / iters, (s1 - s0) / iters);
    let per = user + sys;
    let wall = w0.elapsed() / iters;
    println!(
        "{label:<52} {:>7.1} us CPU/sample ({:>6.1} user, {:>6.1} sys) {:>7.1} us wall; at 100 Hz {:.2}% of a core",
        per.as_secs_f64() * 1e6,
        user.as_secs_f64() * 1e6,
        sys.as_secs_f64() * 1e6,
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
        for n in [10u16, 1000, 10000] {
            let keep = listeners(n);
            let inodes: std::collections::HashSet<u64> = keep
                .iter()
                .map(|fd| nix::sys::stat::fstat(fd).expect("fstat").st_ino)
                .collect();
            let cases: [(&str, &[u16], bool, bool); 5] = [
                ("LISTEN, all ports, drops", &[], false, true),
                ("LISTEN, all ports, no drops", &[], false, false),
                ("LISTEN, one port, drops", &[20000], false, true),
                ("LISTEN+SYN_RECV, all ports, drops", &[], true, true),
                ("LISTEN+SYN_RECV, one port, drops", &[20000], true, true),
            ];
            for (what, ports, syn_recv, drops) in cases {
                let q = Query {
                    ports,
                    syn_recv,
                    drops,
                    tcp: true,
                    unix: false,
                    unix_only: None,
                    unix_lean: false,
                    tcp_exact: &[],
                    established: false,
                    pending_of: &[],
                    outgoing: None,
                    parallel: false,
                };
                measure(&format!("{n} listeners: dump {what}"), 300, || {
                    diag.dump(&q).unwrap();
                });
            }
            // `watch`'s hot set: one listener asked for exactly, against the dump of them all.
            let addr: std::net::SocketAddr = "127.0.0.1:20000".parse().unwrap();
            let exact = Query {
                tcp: false,
                tcp_exact: &[addr],
                drops: true,
                ..Query::TCP
            };
            measure(
                &format!("{n} listeners: one TCP listener by address"),
                300,
                || {
                    assert_eq!(diag.dump(&exact).unwrap().listeners.len(), 1);
                },
            );
            // The exporter's lookups of a held namespace: up to 100 listeners by address,
            // against the dump of all of them above.
            let some: Vec<std::net::SocketAddr> = (0..n.min(100))
                .map(|i| std::net::SocketAddr::from(([127, 0, 0, 1], 20000 + i)))
                .collect();
            let lookups = Query {
                tcp: false,
                tcp_exact: &some,
                drops: true,
                ..Query::TCP
            };
            measure(
                &format!("{n} listeners: {} TCP listeners by address", some.len()),
                300,
                || {
                    assert_eq!(diag.dump(&lookups).unwrap().listeners.len(), some.len());
                },
            );
            // The clients' wait: the ESTABLISHED sockets of one port, with tcp_info.
            let q = Query::established(&[20000]);
            measure(
                &format!("{n} listeners: dump ESTABLISHED of one port, tcp_info"),
                300,
                || {
                    diag.dump(&q).unwrap();
                },
            );
            measure(
                &format!("{n} listeners: /proc/net/netstat+snmp"),
                300,
                || {
                    backlogctl::source::netstat::read().unwrap();
                },
            );
            // Wall time is the figure here: a big descriptor table is read by several threads,
            // whose CPU the per-thread figures leave out.
            measure(
                &format!("{n} listeners: owners from /proc/*/fd"),
                if n > 1000 { 20 } else { 100 },
                || {
                    let (found, _) = backlogctl::source::procs::owners(&inodes);
                    assert_eq!(found.len(), inodes.len());
                },
            );
            // Unix listeners in place of the TCP ones (both at 10,000 pass the descriptor limit).
            drop(keep);
            let unix: Vec<OwnedFd> = (0..n).map(unix_listener).collect();
            let all_unix = Query {
                tcp: false,
                unix: true,
                ..Query::TCP
            };
            measure(
                &format!("{n} listeners: dump every Unix listener"),
                300,
                || {
                    diag.dump(&all_unix).unwrap();
                },
            );
            let one = [nix::sys::stat::fstat(&unix[0]).expect("fstat").st_ino];
            let by_inode = Query {
                unix_only: Some(&one),
                ..all_unix
            };
            measure(
                &format!("{n} listeners: one Unix listener by inode"),
                300,
                || {
                    assert_eq!(diag.dump(&by_inode).unwrap().listeners.len(), 1);
                },
            );
            drop(unix);
        }
    });
    handle.join().unwrap();
}

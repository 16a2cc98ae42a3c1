//! The kernel facts the recorder depends on, read through the library (no binary), each in a
//! private network namespace (see tests/common): an accept queue holds B+1 and then overflows
//! (Recv-Q, drops, ListenOverflows); sysctls and counters are the namespace's own; IPv4 and
//! IPv6 listeners with their owner, filtered by port in the kernel; request sockets (SYN_RECV)
//! counted per listener, v4-mapped included; a window's samples, driven one by one, catch a
//! queue's rise and collapse the unchanged ones; the exporter's collector reads a namespace it
//! holds by exact lookups only while its counts prove its listeners unchanged.
//!
//! Needs root (unshare(CLONE_NEWNET)): skipped with the reason without it, failed under
//! CI=true.

mod common;

use backlogctl::collect::{
    Cadence, Kernel, OwnerCache, Recorder, SYN_RECV_EVERY, Sampling, listener_inodes, record,
};
use backlogctl::model::Scope;
use backlogctl::model::Target;
use backlogctl::model::{Listener, Snapshot};
use common::*;

fn snap(targets: &[&str]) -> Snapshot {
    let scope = Scope::new(targets.iter().map(|t| Target::parse(t).unwrap()).collect());
    // Forced: request sockets below a full SYN queue are counted only on demand.
    let forced = Sampling {
        syn_recv: true,
        ..Sampling::ONCE
    };
    let (mut s, mut kernel) = record(Kernel::default(), &scope, &forced).expect("record");
    let inodes = listener_inodes(&s);
    OwnerCache::default().name(&mut kernel, &mut s, &inodes, std::time::Instant::now());
    s
}

fn only_listener(s: &Snapshot) -> Listener {
    let l = &s.samples.last().unwrap().listeners;
    assert_eq!(l.len(), 1, "expected one listener in scope, got {l:?}");
    l[0].clone()
}

/// The seed's experiment: somaxconn=5, listen(100), 20 connects, nobody accepts.
#[test]
fn accept_queue_holds_backlog_plus_one_and_overflows() {
    in_netns("accept_queue_holds_backlog_plus_one_and_overflows", || {
        set_sysctl("net.core.somaxconn", 5);
        let _server = listener("127.0.0.1:8100", 100);
        let _clients: Vec<_> = (0..20).map(|_| start_connect("127.0.0.1:8100")).collect();
        let s = wait_for(300, || {
            let s = snap(&[":8100"]);
            let l = only_listener(&s);
            (l.recv_q == 6 && l.drops.unwrap_or(0) > 0).then_some(s)
        })
        .expect("accept queue never reached 6 with drops");
        let l = only_listener(&s);
        // __sys_listen clamps 100 to somaxconn; sk_acceptq_is_full (`>`) admits B+1.
        assert_eq!(l.send_q, 5, "Send-Q is the effective backlog");
        assert_eq!(l.recv_q, 6, "Recv-Q is B+1 when full");
        assert!(l.drops.unwrap() > 0);
        assert!(l.accept_queue_full());
        let c = s.samples.last().unwrap().counters.as_ref().unwrap();
        assert!(
            c["TcpExt:ListenOverflows"] > 0,
            "ListenOverflows in this netns"
        );
        assert!(c["TcpExt:ListenDrops"] >= c["TcpExt:ListenOverflows"]);
        assert_eq!(s.sysctls.somaxconn, Some(5), "sysctls are the namespace's");
    });
}

#[test]
fn sysctls_and_counters_are_the_namespaces_own() {
    in_netns("sysctls_and_counters_are_the_namespaces_own", || {
        set_sysctl("net.core.somaxconn", 77);
        set_sysctl("net.ipv4.tcp_abort_on_overflow", 1);
        set_sysctl("net.ipv4.tcp_syncookies", 2);
        let s = snap(&[]);
        assert_eq!(s.sysctls.somaxconn, Some(77));
        assert_eq!(s.sysctls.tcp_abort_on_overflow, Some(1));
        assert_eq!(s.sysctls.tcp_syncookies, Some(2));
        assert!(s.sysctls.tcp_max_syn_backlog.is_some() && s.sysctls.tcp_synack_retries.is_some());
        // A fresh namespace has no listeners and zeroed TcpExt counters, whatever the host has.
        assert!(s.samples[0].listeners.is_empty());
        let c = s.samples[0].counters.as_ref().unwrap();
        assert_eq!(c.get("TcpExt:ListenOverflows"), Some(&0));
        assert_eq!(c.get("Tcp:ActiveOpens"), Some(&0), "snmp is read too");
        assert!(s.netns.inode.is_some());
    });
}

#[test]
fn listeners_of_both_families_with_owner_and_kernel_port_filter() {
    in_netns(
        "listeners_of_both_families_with_owner_and_kernel_port_filter",
        || {
            let _a = listener("127.0.0.1:8100", 7);
            let _b = listener("[::1]:8200", 9);
            let _c = listener("0.0.0.0:8300", 11);
            let all = snap(&[]);
            let mut ports: Vec<(u16, u32)> = all.samples[0]
                .listeners
                .iter()
                .map(|l| (l.local.port().unwrap_or(0), l.send_q))
                .collect();
            ports.sort();
            assert_eq!(ports, vec![(8100, 7), (8200, 9), (8300, 11)]);
            let v6 = snap(&["[::1]:8200"]);
            let l = only_listener(&v6);
            assert_eq!(l.local, "[::1]:8200".parse().unwrap());
            // inet6_bind sets ipv6only for a specific, non-mapped address.
            assert_eq!(l.v6only, Some(true));
            // The test process holds the socket, so it is its owner.
            let me = std::process::id();
            assert!(
                v6.owners_of(l.inode).any(|o| o.pid == me),
                "owners: {:?}",
                v6.owners
            );
            assert!(
                !v6.gaps.iter().any(|g| g.what == "process-owners"),
                "{:?}",
                v6.gaps
            );
            // 127.0.0.1:8300 is served by the 0.0.0.0 listener.
            assert_eq!(
                only_listener(&snap(&["127.0.0.1:8300"])).local.port(),
                Some(8300)
            );
            assert!(snap(&[":8400"]).samples[0].listeners.is_empty());
        },
    );
}

/// A single sample dumps Unix listeners on a socket and thread of their own beside the TCP
/// dump; a window's samples dump both on one socket. Both see every listener once, with its
/// backlog, TCP first: 300 of each span many netlink messages.
#[test]
fn a_single_sample_dumps_both_families_at_once_and_misses_none() {
    in_netns(
        "a_single_sample_dumps_both_families_at_once_and_misses_none",
        || {
            let tcp: Vec<_> = (0..300)
                .map(|i| listener(&format!("127.0.0.1:{}", 9000 + i), 1 + i % 50))
                .collect();
            let unix: Vec<_> = (0..300)
                .map(|i| unix_listener(&format!("@blt-both-{i}"), 2 + i % 40))
                .collect();
            let window = Sampling {
                window: std::time::Duration::from_millis(30),
                interval: std::time::Duration::from_millis(10),
                syn_recv: false,
            };
            for sampling in [Sampling::ONCE, window] {
                let (s, _) =
                    record(Kernel::default(), &Scope::new(Vec::new()), &sampling).expect("record");
                let seen = &s.samples.last().unwrap().listeners;
                let mut got: Vec<(String, u32)> = seen
                    .iter()
                    .map(|l| (l.local.to_string(), l.send_q))
                    .collect();
                let mut want: Vec<(String, u32)> = (0..300)
                    .map(|i| (format!("127.0.0.1:{}", 9000 + i), 1 + i % 50))
                    .chain((0..300).map(|i| (format!("@blt-both-{i}"), 2 + i % 40)))
                    .collect();
                got.sort();
                want.sort();
                assert_eq!(got, want, "window {:?}", sampling.window);
                let first_unix = seen.iter().position(|l| l.local.inet().is_none());
                assert_eq!(first_unix, Some(300), "TCP listeners come first");
            }
            drop((tcp, unix));
        },
    );
}

/// Request sockets: TCP_DEFER_ACCEPT keeps a completed handshake in SYN_RECV until data
/// arrives (tcp_check_req), a deterministic way to fill the SYN queue on loopback. IPv4
/// clients of a dual-stack [::] listener appear as v4-mapped request sockets.
#[test]
fn syn_recv_is_counted_per_listener_including_v4_mapped() {
    in_netns(
        "syn_recv_is_counted_per_listener_including_v4_mapped",
        || {
            let dual = listener("[::]:8100", 50);
            let v4 = listener("127.0.0.1:8200", 50);
            for fd in [&dual, &v4] {
                defer_accept(fd);
            }
            let _clients: Vec<_> = (0..3)
                .map(|_| start_connect("127.0.0.1:8100"))
                .chain((0..2).map(|_| start_connect("[::1]:8100")))
                .chain((0..4).map(|_| start_connect("127.0.0.1:8200")))
                .collect();
            let s = wait_for(300, || {
                let s = snap(&[]);
                let total: u32 = s.samples[0]
                    .listeners
                    .iter()
                    .map(|l| l.syn_recv.unwrap_or(0))
                    .sum();
                (total == 9).then_some(s)
            })
            .expect("9 request sockets never showed up");
            let by_port = |p: u16| {
                s.samples[0]
                    .listeners
                    .iter()
                    .find(|l| l.local.port() == Some(p))
                    .unwrap()
                    .clone()
            };
            assert_eq!(
                by_port(8100).syn_recv,
                Some(5),
                "3 v4-mapped + 2 v6 on [::]:8100"
            );
            assert_eq!(by_port(8200).syn_recv, Some(4));
            assert_eq!(
                by_port(8100).recv_q,
                0,
                "deferred handshakes are not in the accept queue"
            );
            // The kernel-side port filter keeps the other listener's request sockets out.
            assert_eq!(only_listener(&snap(&[":8200"])).syn_recv, Some(4));
        },
    );
}

/// A window samples repeatedly; unchanged samples collapse, the last one carries counters.
/// The recorder is driven sample by sample, so the burst starts once the first sample is
/// taken (not after a sleep that hopes so), and the rise is waited for through its samples.
#[test]
fn window_records_several_samples_and_a_queue_rise() {
    in_netns("window_records_several_samples_and_a_queue_rise", || {
        set_sysctl("net.core.somaxconn", 4);
        let _server = listener("127.0.0.1:8100", 100);
        let scope = Scope::new(vec![Target::parse(":8100").unwrap()]);
        let cadence = Cadence {
            syn_every: SYN_RECV_EVERY,
            syn_forced: false,
            sample_interval: std::time::Duration::from_millis(10),
            keep: true,
            addresses: true,
            parallel: false,
        };
        let kernel = Kernel::open().expect("netlink");
        let mut rec = Recorder::start(kernel, &scope, cadence);
        rec.sample(false).expect("first sample");
        let _clients: Vec<_> = (0..10).map(|_| start_connect("127.0.0.1:8100")).collect();
        wait_for(300, || {
            let s = rec.sample(false).ok()?;
            let l = &s.listeners;
            (l.first()?.recv_q == 5 && l[0].drops.unwrap_or(0) > 0).then_some(())
        })
        .expect("the queue reached B+1 = 5, with drops");
        // The full queue sampled again: nothing changes, so nothing more is stored (the last
        // dropped ACKs may still land in the first few).
        for _ in 0..20 {
            rec.sample(false).expect("sample");
        }
        rec.sample(true).expect("last sample");
        let (s, _) = rec.finish();
        assert!(s.samples.len() >= 2, "{} samples stored", s.samples.len());
        assert!(
            (s.samples.len() as u64) < s.samples_taken,
            "{} of {} samples stored: unchanged ones must collapse",
            s.samples.len(),
            s.samples_taken
        );
        assert!(
            s.samples.first().unwrap().counters.is_some()
                && s.samples.last().unwrap().counters.is_some()
        );
        let key = s.samples[0].listeners[0].key();
        assert_eq!(s.peak_recv_q(&key), Some(5), "peak = B+1 with B=4");
        assert_eq!(
            s.samples[0].listeners[0].recv_q, 0,
            "the first sample predates the burst"
        );
        assert!(s.counter_delta("TcpExt:ListenOverflows").unwrap() > 0);
    });
}

/// A namespace whose connections were all answered has its clients' wait read without a
/// dump while no socket entered ESTABLISHED: a new client (a child, counted by PassiveOpens)
/// brings the dump back and is seen waiting, and so until it is answered.
#[test]
fn a_settled_wait_is_read_again_once_a_client_connects() {
    use backlogctl::collect::{Collector, Namespaces};
    use backlogctl::source::netns::Which;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;
    in_netns(
        "a_settled_wait_is_read_again_once_a_client_connects",
        || {
            let path = format!("/proc/self/task/{}/ns/net", nix::unistd::gettid());
            let mut c = Collector::new(
                Namespaces::One(Which::Named(path)),
                Scope::default(),
                Duration::from_secs(10),
            );
            let server = TcpListener::bind("127.0.0.1:8105").unwrap();
            // A client whose request got a reply, or not.
            let connect = |answer: bool| {
                let mut client = TcpStream::connect("127.0.0.1:8105").unwrap();
                let (mut accepted, _) = server.accept().unwrap();
                client.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
                let mut request = [0u8; 18];
                accepted.read_exact(&mut request).unwrap();
                if answer {
                    accepted.write_all(b"HTTP/1.0 200 OK\r\n\r\n").unwrap();
                    let mut reply = [0u8; 19];
                    client.read_exact(&mut reply).unwrap();
                }
                (client, accepted)
            };
            let mut waiting = || -> (u32, usize) {
                let s = c.scrape().unwrap().into_only_error().unwrap();
                let snap = s.namespaces[0].value.as_ref().unwrap();
                let l = snap.samples[0]
                    .listeners
                    .iter()
                    .find(|l| l.local.to_string() == "127.0.0.1:8105")
                    .expect("the listener");
                let unanswered = l.wait.expect("read").unanswered;
                (unanswered, c.settled_waits())
            };
            // (unanswered, namespaces whose next wait needs no dump)
            let _served = connect(true);
            assert_eq!(waiting(), (0, 1), "served: nobody can wait later");
            assert_eq!(waiting(), (0, 1), "nothing changed");
            let (_client, mut accepted) = connect(false);
            // Quiet for longer than QUIET_MS after its request: waiting for the reply.
            std::thread::sleep(Duration::from_millis(200));
            assert_eq!(
                waiting(),
                (1, 0),
                "a new client, unanswered, may wait later"
            );
            assert_eq!(waiting(), (1, 0), "still unanswered");
            accepted.write_all(b"HTTP/1.0 200 OK\r\n\r\n").unwrap();
            std::thread::sleep(Duration::from_millis(50));
            assert_eq!(waiting(), (0, 1), "answered");
        },
    );
}

/// The exporter's collector holds a namespace between scrapes and reads its listeners by
/// exact lookups while the namespace's counts prove them the same; every change (a new
/// listener, one replaced on its port, a closing connection) brings a dump back, and each
/// scrape holds what a fresh dump of the namespace holds, queue lengths included.
#[test]
fn a_held_namespace_is_read_by_lookups_until_its_listeners_change() {
    use backlogctl::collect::{Collector, Namespaces};
    use backlogctl::source::netns::Which;
    use std::sync::Arc;
    use std::time::Duration;
    in_netns("a_held_namespace_is_read_by_lookups", || {
        let path = format!("/proc/self/task/{}/ns/net", nix::unistd::gettid());
        let one = || Namespaces::One(Which::Named(path.clone()));
        let deadline = Duration::from_secs(10);
        // As the exporter does: the pool holds namespaces within the descriptor limit.
        backlogctl::collect::raise_fd_limit();
        let mut held = Collector::new(one(), Scope::default(), deadline);
        let mut fresh =
            Collector::with_sources(one(), Scope::default(), deadline, Arc::new(Kernel::default));
        // (address, inode, queue) of each scrape's listeners, in order.
        let seen = |c: &mut Collector<Kernel>| -> Vec<(String, u64, u32)> {
            let s = c.scrape().unwrap().into_only_error().unwrap();
            let snap = s.namespaces[0].value.as_ref().unwrap();
            let mut l: Vec<(String, u64, u32)> = snap.samples[0]
                .listeners
                .iter()
                .map(|l| (l.local.to_string(), l.inode, l.recv_q))
                .collect();
            l.sort();
            l
        };
        let lookups = |c: &Collector<Kernel>| c.held().unwrap().0;
        let mut step = |what: &str, by_lookups: bool| {
            let before = lookups(&held);
            let got = seen(&mut held);
            assert_eq!(
                got,
                seen(&mut fresh),
                "{what}: the held scrape against a dump"
            );
            assert_eq!(
                lookups(&held) - before,
                u64::from(by_lookups),
                "{what}: {got:?}"
            );
            got
        };
        let a = listener("127.0.0.1:8101", 16);
        let mut b = listener("127.0.0.1:8102", 16);
        // sockstat6 counts the IPv6 ones.
        let six = listener("[::1]:8104", 16);
        step("first scrape", false);
        step("nothing changed", true);
        let c = listener("127.0.0.1:8103", 16);
        assert_eq!(step("a new listener", false).len(), 4);
        step("nothing changed since", true);
        drop(b);
        b = listener("127.0.0.1:8102", 16);
        step("a listener replaced on its port", false);
        // A client in the accept queue: both ends ESTABLISHED, counted by CurrEstab.
        let client = start_connect("127.0.0.1:8101");
        wait_for(300, || (scenarios::queue_of(":8101")? == 1).then_some(())).expect("queued");
        let got = step("a queued connection", true);
        assert!(
            got.iter().any(|l| l.0 == "127.0.0.1:8101" && l.2 == 1),
            "{got:?}"
        );
        // The client shuts its side: FIN_WAIT1 or 2 (a full socket still, not orphaned) is in
        // use beyond CurrEstab, which counts the server's CLOSE_WAIT.
        nix::sys::socket::shutdown(
            std::os::fd::AsRawFd::as_raw_fd(&client),
            nix::sys::socket::Shutdown::Write,
        )
        .unwrap();
        step("a closing connection", false);
        drop(client);
        // Closed since, the client's socket a TIME_WAIT one (out of the count): the three IPv4
        // listeners and the server's CLOSE_WAIT child, which CurrEstab counts. The counts
        // agree again, and lookups answer again.
        wait_for(300, || {
            let s = std::fs::read_to_string("/proc/thread-self/net/sockstat").ok()?;
            s.contains("TCP: inuse 4 ").then_some(())
        })
        .expect("the client's socket out of the hash");
        step("closed", true);
        // An SO_REUSEPORT group: a lookup finds one member, so dumps answer.
        let group = [true, true].map(|r| listener_with("127.0.0.1:8105", 16, r));
        step("an SO_REUSEPORT group", false);
        step("the group again", false);
        drop(group);
        let (_, held_now) = held.held().unwrap();
        assert_eq!(held_now, 1, "one namespace held");
        drop((a, b, c, six));
    });
}

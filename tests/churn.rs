//! Churn and privilege: snapshot and doctor stay correct while 1,000 listeners open and close
//! continuously during the dumps, and the binary run as an unprivileged user still reads
//! queues, drops and counters, and says what it could not see.
//!
//! Needs root (private namespaces) and setpriv (util-linux) to become `nobody`: skipped with
//! the reason without them, failed under CI=true.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use backlogctl::collect::{Kernel, Sampling};
use backlogctl::model::Target;
use backlogctl::model::{Scope, Snapshot};
use common::*;

/// A listener, or None when the port is briefly still held (a forked child of the test
/// process keeps our descriptors until it execs).
fn try_listener(port: u16) -> Option<std::os::fd::OwnedFd> {
    use nix::sys::socket::*;
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ok()?;
    setsockopt(&fd, sockopt::ReuseAddr, &true).ok()?;
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::new(127, 0, 0, 1, port),
    )
    .ok()?;
    listen(&fd, Backlog::new(16).ok()?).ok()?;
    Some(fd)
}

#[test]
fn listeners_that_exist_throughout_are_seen_exactly_once_during_churn() {
    in_netns(
        "listeners_that_exist_throughout_are_seen_exactly_once_during_churn",
        || {
            let stable: Vec<_> = (0..20)
                .map(|i| listener(&format!("127.0.0.1:{}", 8100 + i), 64))
                .collect();
            let stop = Arc::new(AtomicBool::new(false));
            let churner = {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut rounds = 0u32;
                    while !stop.load(Ordering::Relaxed) {
                        let open: Vec<_> =
                            (0..1000).filter_map(|i| try_listener(30000 + i)).collect();
                        drop(open);
                        rounds += 1;
                    }
                    rounds
                })
            };
            let all = Scope::default();
            let record = |scope: &Scope| -> backlogctl::Result<Snapshot> {
                Ok(backlogctl::collect::record(Kernel::default(), scope, &Sampling::ONCE)?.0)
            };
            for round in 0..200 {
                let snap = record(&all).expect("no error under churn");
                let l = &snap.samples[0].listeners;
                for p in 8100..8120u16 {
                    let n = l.iter().filter(|x| x.local.port() == Some(p)).count();
                    assert_eq!(
                        n,
                        1,
                        "round {round}: port {p} seen {n} times among {} listeners",
                        l.len()
                    );
                }
                let mut keys: Vec<_> = l.iter().map(|x| x.key()).collect();
                keys.sort();
                keys.dedup();
                assert_eq!(keys.len(), l.len(), "a listener listed twice");
            }
            // The kernel-filtered path and the doctor binary too.
            let one = Scope::new(vec![Target::parse(":8105").unwrap()]);
            for _ in 0..50 {
                let s = record(&one).unwrap();
                assert_eq!(s.samples[0].listeners.len(), 1);
            }
            let out = Command::new(bin())
                .args(["doctor", "--json", "--window", "300ms"])
                .output()
                .unwrap();
            assert!(
                matches!(out.status.code(), Some(0..=2)),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            stop.store(true, Ordering::Relaxed);
            let rounds = churner.join().unwrap();
            assert!(rounds > 0, "the churner ran");
            drop(stable);
        },
    );
}

#[test]
fn unprivileged_user_gets_queues_and_counters_and_is_told_what_is_hidden() {
    in_netns(
        "unprivileged_user_gets_queues_and_counters_and_is_told_what_is_hidden",
        || {
            let test = "unprivileged_user_gets_queues_and_counters_and_is_told_what_is_hidden";
            if !need(test, "setpriv", "--version", "util-linux") {
                return;
            }
            // A copy of the binary that the unprivileged user can execute wherever the build
            // is (a checkout under /root is not world-readable).
            let (dir, bin) = world_executable_copy();
            let probe = Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(&bin)
                .arg("--version")
                .output();
            if !probe.as_ref().is_ok_and(|o| o.status.success()) {
                let _ = std::fs::remove_dir_all(&dir);
                return skip(
                    test,
                    &format!(
                        "the unprivileged user cannot execute {} (a noexec temp dir?): {probe:?}",
                        bin.display()
                    ),
                );
            }
            set_sysctl("net.core.somaxconn", 5);
            let _server = listener("127.0.0.1:8100", 100);
            let _clients: Vec<_> = (0..12).map(|_| start_connect("127.0.0.1:8100")).collect();
            wait_for(300, || (scenarios::queue_of(":8100")? == 6).then_some(()))
                .expect("queue full");
            let nobody = |args: &[&str]| {
                Command::new("setpriv")
                    .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                    .arg(&bin)
                    .args(args)
                    .output()
                    .unwrap()
            };
            let out = nobody(&["snapshot", ":8100"]);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let snap = backlogctl::store::parse(&String::from_utf8_lossy(&out.stdout)).unwrap();
            let l = &snap.samples[0].listeners[0];
            assert_eq!((l.recv_q, l.send_q), (6, 5), "queues readable without root");
            assert!(l.drops.unwrap() > 0, "drops readable without root");
            assert!(snap.samples[0].counters.as_ref().unwrap()["TcpExt:ListenOverflows"] > 0);
            assert_eq!(snap.sysctls.somaxconn, Some(5));
            let gap = snap
                .gaps
                .iter()
                .find(|g| g.what == "process-owners")
                .expect("a gap for the hidden owner");
            assert!(
                gap.reason.contains("root") && gap.reason.contains("CAP_SYS_PTRACE"),
                "{}",
                gap.reason
            );
            // doctor still diagnoses, and prints what it could not see.
            let out = nobody(&["doctor", ":8100", "--window", "200ms"]);
            assert_eq!(out.status.code(), Some(2));
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains("accept-queue-overflow") && text.contains("Not observed:"),
                "{text}"
            );
            // Other namespaces: a clear refusal naming the privilege.
            let out = nobody(&["--pid", "1", "doctor"]);
            assert_eq!(out.status.code(), Some(3));
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.starts_with("error: ") && err.contains("permission denied"),
                "{err}"
            );
            let _ = std::fs::remove_dir_all(&dir);
        },
    );
}

/// The binary copied, mode 0755, into a new directory of mode 0755 under the system temp dir:
/// (the directory, the copy).
fn world_executable_copy() -> (std::path::PathBuf, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("backlogctl-churn-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.join("backlogctl");
    std::fs::copy(bin(), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, copy)
}

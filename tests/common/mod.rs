//! Shared helpers of the integration tests (tests/README.md says which test needs what).
//!
//! - Skipping: a test that cannot run here — a tool not installed, no privilege — calls
//!   `skip`, which on a developer's machine writes `skipped: TEST: WHY` straight to stderr
//!   (libtest does not capture that) and lets the test return; under `CI=true` it panics
//!   instead, because CI (`.ci/run`, as root, tools installed) must run every test, and a
//!   skip there would pass a test that checked nothing.
//! - The kernel: `in_netns` runs a closure on a fresh thread that has entered a private
//!   network namespace (`unshare(CLONE_NEWNET)`) with `lo` up, so it may change sysctls such
//!   as net.core.somaxconn without touching the host; the namespace disappears with the thread
//!   and its sockets. Without the privilege to do that, the test is skipped (see above).
//! - Waiting: on state, never on time. `wait_for` polls a condition a bounded number of times;
//!   `wait_until_asleep` and `wait_for_samples` watch another backlogctl process through
//!   /proc, which tells when it has taken a sample.

#![allow(dead_code)]

pub mod certs;
pub mod scenarios;

use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Duration;

use nix::sched::{CloneFlags, unshare};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, bind, connect, listen, setsockopt,
    socket, sockopt,
};

/// Whether a missing tool or privilege must fail the test instead of skipping it: the
/// environment variable `CI` is set to anything but "", "0" or "false" (GitHub Actions, GitLab
/// and `.ci/run` set CI=true).
pub fn strict() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// `test` (or a part of it, when `why` says "part: ...") cannot run here because of `why`,
/// which names what is missing and how to get it. Prints `skipped: TEST: WHY` and returns,
/// for the caller to return too; under CI (`strict`) panics with the same reason instead.
#[track_caller]
pub fn skip(test: &str, why: &str) {
    if strict() {
        panic!(
            "{test}: cannot run: {why}. CI is set, and under CI a test never skips: \
             .ci/run installs every tool the tests need and runs them as root"
        );
    }
    let _ = writeln!(std::io::stderr(), "skipped: {test}: {why}");
}

/// Whether `tool` can be started here (`tool probe`, e.g. `python3 -V`; its exit status is
/// not looked at).
pub fn have(tool: &str, probe: &str) -> bool {
    std::process::Command::new(tool)
        .arg(probe)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok()
}

/// `have(tool, probe)`, or else `skip` saying which package brings it: the caller returns
/// when this is false.
#[track_caller]
pub fn need(test: &str, tool: &str, probe: &str, package: &str) -> bool {
    let there = have(tool, probe);
    if !there {
        skip(
            test,
            &format!("{tool} not installed (Debian package {package})"),
        );
    }
    there
}

/// Runs `f` inside a new network namespace; None (after `skip`) when that is not allowed.
#[track_caller]
pub fn in_netns<T: Send + 'static>(
    test: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let handle = std::thread::spawn(move || -> Result<T, String> {
        // Only a missing privilege skips; any other failure is a failure of the test.
        match unshare(CloneFlags::CLONE_NEWNET) {
            Ok(()) => {}
            Err(nix::errno::Errno::EPERM) => {
                return Err("needs CAP_SYS_ADMIN for unshare(CLONE_NEWNET); run as root".into());
            }
            Err(e) => panic!("unshare(CLONE_NEWNET) failed: {e}"),
        }
        backlogctl::source::netns::loopback_up()
            .unwrap_or_else(|e| panic!("cannot bring lo up in the new namespace: {e}"));
        Ok(f())
    });
    match handle.join() {
        Ok(Ok(v)) => Some(v),
        Ok(Err(why)) => {
            skip(test, &why);
            None
        }
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Mounts tracefs where the kernel expects it when it is not there (that changes nothing
/// else), for the tests of `--trace`: a fresh machine may have it unmounted.
pub fn mount_tracefs() {
    if !std::path::Path::new("/sys/kernel/tracing/instances").is_dir() {
        let _ = std::process::Command::new("mount")
            .args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"])
            .status();
    }
}

/// Writes a sysctl of the calling thread's namespace, e.g. ("net.core.somaxconn", 5).
pub fn set_sysctl(name: &str, value: u32) {
    let path = backlogctl::source::sysctl::path_of(name);
    std::fs::write(&path, value.to_string()).unwrap_or_else(|e| panic!("write {path}: {e}"));
}

/// A TCP listener with an exact listen() backlog (std always asks for 128).
pub fn listener(addr: &str, backlog: i32) -> OwnedFd {
    listener_with(addr, backlog, false)
}

/// The same, optionally in an SO_REUSEPORT group.
pub fn listener_with(addr: &str, backlog: i32, reuseport: bool) -> OwnedFd {
    let sa: SocketAddr = addr.parse().expect("test address");
    let family = if sa.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).expect("socket");
    setsockopt(&fd, sockopt::ReuseAddr, &true).expect("SO_REUSEADDR");
    if reuseport {
        setsockopt(&fd, sockopt::ReusePort, &true).expect("SO_REUSEPORT");
    }
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrStorage::from(sa),
    )
    .expect("bind");
    listen(&fd, Backlog::new(backlog).expect("backlog")).expect("listen");
    fd
}

/// TCP_DEFER_ACCEPT: a completed handshake stays a request socket (SYN_RECV) until data
/// arrives (`tcp_check_req`), a deterministic way to fill a SYN queue on loopback.
pub fn defer_accept(fd: &OwnedFd) {
    use nix::libc;
    use std::os::fd::AsRawFd;
    let secs: libc::c_int = 30;
    // SAFETY: setsockopt on a valid fd with a c_int that outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&secs as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(
        rc,
        0,
        "TCP_DEFER_ACCEPT: {}",
        std::io::Error::last_os_error()
    );
}

/// Starts a non-blocking connect; the handshake goes on in the kernel.
pub fn start_connect(addr: &str) -> OwnedFd {
    let sa: SocketAddr = addr.parse().expect("test address");
    let family = if sa.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .expect("socket");
    match connect(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrStorage::from(sa),
    ) {
        Ok(()) | Err(nix::errno::Errno::EINPROGRESS) => fd,
        Err(e) => panic!("connect {addr}: {e}"),
    }
}

/// A Unix stream listener with an exact listen() backlog (std passes its own), bound to a
/// path, or to an abstract name when `name` starts with `@`.
pub fn unix_listener(name: &str, backlog: i32) -> OwnedFd {
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .expect("socket");
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &unix_addr(name)).expect("bind");
    listen(&fd, Backlog::new(backlog).expect("backlog")).expect("listen");
    fd
}

/// A non-blocking connect to a Unix listener: Ok at once while its queue has room, EAGAIN at
/// once when it is full (`unix_stream_connect`).
pub fn unix_connect(name: &str) -> Result<OwnedFd, nix::errno::Errno> {
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .expect("socket");
    connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &unix_addr(name))?;
    Ok(fd)
}

fn unix_addr(name: &str) -> nix::sys::socket::UnixAddr {
    match name.strip_prefix('@') {
        Some(abs) => nix::sys::socket::UnixAddr::new_abstract(abs.as_bytes()),
        None => nix::sys::socket::UnixAddr::new(name),
    }
    .expect("a Unix socket name")
}

/// Polls `probe` until it returns Some, at most `tries` times 10 ms apart: wait on state, not
/// on time.
pub fn wait_for<T>(tries: u32, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    for _ in 0..tries {
        if let Some(v) = probe() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Whether every thread of process `pid` is asleep (state `S` in /proc/PID/task/*/stat); None
/// once the process is gone or a zombie.
pub fn asleep(pid: u32) -> Option<bool> {
    let mut all = true;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("stat")).ok()?;
        // "TID (COMM) STATE ...": COMM may hold spaces and parentheses, so after the last ')'.
        let state = stat.rsplit(')').next()?.split_whitespace().next()?;
        match state {
            "S" => {}
            "Z" | "X" => return None,
            _ => all = false,
        }
    }
    Some(all)
}

/// How many times process `pid`'s main thread has gone to sleep (`voluntary_ctxt_switches`
/// in /proc/PID/status); None once it is gone.
pub fn sleeps(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))?
        .trim()
        .parse()
        .ok()
}

/// Waits until the backlogctl process `pid` (`doctor --window`, `snapshot --window`) has taken
/// its first sample. Such a process never sleeps before that sample (reading sysctls, opening
/// netlink and dumping do not block) and then sleeps between samples, most of its window: the
/// first time all its threads are seen asleep, the first sample is done. None when the process
/// ended first, or never slept within the bound.
pub fn wait_until_asleep(pid: u32) -> Option<()> {
    for _ in 0..3000 {
        match asleep(pid)? {
            true => return Some(()),
            false => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    None
}

/// Waits until the single-threaded sampling loop of process `pid` (`watch`) has taken a whole
/// sample that began after this call. The loop sleeps between two samples and nowhere else:
/// its next sleep begins after now, the sample after that sleep begins after now too, and the
/// sleep after that sample (the second counted from now) says it is done. None when the
/// process ended first, or did not sleep twice within the bound.
pub fn wait_for_samples(pid: u32) -> Option<()> {
    let now = sleeps(pid)?;
    for _ in 0..3000 {
        if sleeps(pid)? >= now + 2 {
            return Some(());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

/// Runs the binary: (exit code, stdout, stderr).
pub fn run_bin(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(bin())
        .args(args)
        .output()
        .expect("run backlogctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_backlogctl"))
}

/// Files the code generates and the repository keeps (man pages, completions, the README's
/// picture): with the environment variable `update` set, writes them under `dir`; otherwise
/// returns the names of those whose checked-in copy differs from what the code makes now.
pub fn stale_generated(
    dir: &std::path::Path,
    update: &str,
    files: impl IntoIterator<Item = (String, Vec<u8>)>,
) -> Vec<String> {
    let update = std::env::var_os(update).is_some();
    if update {
        std::fs::create_dir_all(dir).unwrap();
    }
    let mut stale = Vec::new();
    for (name, text) in files {
        let path = dir.join(&name);
        if update {
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read(&path).ok().as_deref() != Some(&text[..]) {
            stale.push(name);
        }
    }
    stale
}

pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

/// A directory of a test's own under the temporary directory, removed when dropped: at the end
/// of the test, and when it fails too (the panic unwinds through the drop), so a run leaves
/// nothing behind. Named by the test and the process, so tests running at once do not share.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new(test: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("backlogctl-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        Scratch { dir }
    }

    /// A path in the directory (not created).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Named network namespaces (`ip netns add`) and the processes started in them: the
/// processes killed and the namespaces deleted when dropped (a veth goes with its namespace),
/// at the end of a test and when it fails too.
pub struct Namespaces {
    pub names: Vec<String>,
    pub children: Vec<std::process::Child>,
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for n in &self.names {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", n])
                .status();
        }
    }
}

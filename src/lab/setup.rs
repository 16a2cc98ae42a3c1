//! The lab's stage: a private network namespace (a user namespace too when not root) with
//! `lo` up and the listen-queue sysctls set, and the server — a listener with the backlog
//! asked for (TCP on 127.0.0.1, or with `--veth` on the veth's server address; Unix on an
//! abstract name) and `--workers` threads that each accept(), read the request, spend
//! `--work` and reply.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::LabFamily;
use crate::catalogue::Sysctl;
use crate::error::{Error, Result};
use crate::model::Target;
use crate::source::netns;

/// Moves this process into the lab's namespace with `lo` up and the sysctls set. Returns
/// whether a user namespace was needed.
pub(super) fn stage(o: &super::LabOptions) -> Result<bool> {
    let user_namespace = isolate()?;
    netns::loopback_up().map_err(|e| Error::Permission {
        what: "bringing up lo in the lab namespace".into(),
        hint: e.to_string(),
    })?;
    set_sysctl(Sysctl::Somaxconn, o.somaxconn)?;
    set_sysctl(Sysctl::TcpAbortOnOverflow, o.abort_on_overflow)?;
    set_sysctl(Sysctl::TcpSyncookies, o.syncookies)?;
    Ok(user_namespace)
}

/// Moves this (still single-threaded) process into a private network namespace; when not
/// root, inside a new user namespace that maps us to root there, where the kernel allows it.
fn isolate() -> Result<bool> {
    use nix::sched::{CloneFlags, unshare};
    let root = nix::unistd::geteuid().is_root();
    if root {
        unshare(CloneFlags::CLONE_NEWNET).map_err(|e| Error::Permission {
            what: "creating a private network namespace".into(),
            hint: format!("unshare(CLONE_NEWNET) failed: {e}"),
        })?;
        return Ok(false);
    }
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET).map_err(|e| Error::Permission {
        what: "creating a private user and network namespace".into(),
        hint: format!(
            "unshare(CLONE_NEWUSER|CLONE_NEWNET) failed ({e}): unprivileged user namespaces are \
             disabled here (kernel.unprivileged_userns_clone / user.max_user_namespaces); run as root"
        ),
    })?;
    let write = |path: &str, text: String| {
        std::fs::write(path, text).map_err(|e| Error::Write {
            path: path.into(),
            source: e,
        })
    };
    write("/proc/self/setgroups", "deny".into())?;
    write("/proc/self/uid_map", format!("0 {uid} 1"))?;
    write("/proc/self/gid_map", format!("0 {gid} 1"))?;
    Ok(true)
}

fn set_sysctl(key: Sysctl, value: u32) -> Result<()> {
    let path = key.path();
    std::fs::write(&path, value.to_string()).map_err(|e| Error::Write {
        path: path.into(),
        source: e,
    })
}

/// Where the lab's server listens.
#[derive(Debug, Clone)]
pub(super) enum LabAddr {
    Inet(SocketAddr),
    /// An abstract Unix name, without its leading NUL (`@name` as a target).
    Unix(String),
}

impl LabAddr {
    /// The target the recorder follows.
    pub(super) fn target(&self) -> Result<Target> {
        match self {
            LabAddr::Inet(a) => Ok(Target::port(a.port())),
            LabAddr::Unix(name) => Target::parse(&format!("@{name}")),
        }
    }
}

/// The lab's server: its address, and its workers until `stop`.
pub(super) struct Server {
    pub addr: LabAddr,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

impl Server {
    pub(super) fn start(
        family: LabFamily,
        backlog: i32,
        workers: usize,
        work: Duration,
        reads: Reads,
        at: Ipv4Addr,
    ) -> Result<Server> {
        let (listener, addr) = match family {
            LabFamily::Tcp => {
                let fd = server_socket(at, backlog)?;
                let addr = local_addr(&fd)?;
                (fd, LabAddr::Inet(addr))
            }
            LabFamily::Unix => {
                let name = format!("backlogctl-lab-{}", std::process::id());
                (unix_server_socket(&name, backlog)?, LabAddr::Unix(name))
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let listener = Arc::new(listener);
        let workers = (0..workers.max(1))
            .map(|_| {
                let (l, stop) = (listener.clone(), stop.clone());
                std::thread::Builder::new()
                    .spawn(move || serve(&l, family, &stop, work, reads))
                    .map_err(|source| Error::Io {
                        what: "starting the lab server's workers",
                        source,
                    })
            })
            .collect::<Result<_>>()?;
        Ok(Server {
            addr,
            stop,
            workers,
        })
    }

    pub(super) fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            let _ = w.join();
        }
    }
}

/// A TCP listener on `at` (127.0.0.1, or the veth's server address), on a port the kernel
/// picks.
fn server_socket(at: Ipv4Addr, backlog: i32) -> Result<OwnedFd> {
    use nix::sys::socket::*;
    let fail = |e: nix::Error| Error::Io {
        what: "starting the lab server",
        source: e.into(),
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(fail)?;
    let [a, b, c, d] = at.octets();
    let sa = SockaddrIn::new(a, b, c, d, 0);
    bind(fd.as_raw_fd(), &sa).map_err(fail)?;
    // The backlog exactly as given (clamped by somaxconn in the kernel), like listen(2).
    let b = Backlog::new(backlog.clamp(0, i32::MAX)).map_err(fail)?;
    listen(&fd, b).map_err(fail)?;
    Ok(fd)
}

/// A Unix stream listener on the abstract `name`, non-blocking like the TCP one. The backlog
/// is capped by this namespace's somaxconn as for TCP (`__sys_listen_socket`).
fn unix_server_socket(name: &str, backlog: i32) -> Result<OwnedFd> {
    use nix::sys::socket::*;
    let fail = |e: nix::Error| Error::Io {
        what: "starting the lab's Unix server",
        source: e.into(),
    };
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(fail)?;
    let sa = UnixAddr::new_abstract(name.as_bytes()).map_err(fail)?;
    bind(fd.as_raw_fd(), &sa).map_err(fail)?;
    let b = Backlog::new(backlog.clamp(0, i32::MAX)).map_err(fail)?;
    listen(&fd, b).map_err(fail)?;
    Ok(fd)
}

fn local_addr(fd: &OwnedFd) -> Result<SocketAddr> {
    let sa: nix::sys::socket::SockaddrIn =
        nix::sys::socket::getsockname(fd.as_raw_fd()).map_err(|e| Error::Io {
            what: "reading the lab server's address",
            source: e.into(),
        })?;
    Ok(SocketAddr::from((sa.ip(), sa.port())))
}

/// How much of a request the lab's server reads before replying and closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reads {
    /// The head and the body its Content-Length announces: a clean close (FIN).
    Whole,
    /// One read of at most 64 bytes, the rest left unread: close() answers with RST
    /// (`tcp_close`, TCPAbortOnClose), like a server that reads one line.
    First64,
}

/// A worker: accept one connection, read the request, spend `work`, reply, close.
fn serve(listener: &OwnedFd, family: LabFamily, stop: &AtomicBool, work: Duration, reads: Reads) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    while !stop.load(Ordering::Relaxed) {
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        if !matches!(poll(&mut fds, PollTimeout::from(50u16)), Ok(n) if n > 0) {
            continue;
        }
        let Ok(fd) = nix::sys::socket::accept(listener) else {
            continue;
        };
        let patience = Some(Duration::from_secs(5));
        match family {
            LabFamily::Tcp => {
                let stream = TcpStream::from(fd);
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(patience);
                reply(stream, work, reads);
            }
            LabFamily::Unix => {
                let stream = UnixStream::from(fd);
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(patience);
                reply(stream, work, reads);
            }
        }
    }
}

/// Reads the request (as `reads` says), spends `work`, replies; the caller's drop closes.
fn reply(mut stream: impl Read + Write, work: Duration, reads: Reads) {
    let mut buf = [0u8; 64];
    let read = match reads {
        Reads::First64 => matches!(stream.read(&mut buf), Ok(n) if n > 0),
        Reads::Whole => read_whole(&mut stream),
    };
    if read {
        std::thread::sleep(work);
        let _ = stream.write_all(b"HTTP/1.0 200 OK\r\n\r\nok\n");
    }
}

/// Reads an HTTP request to its end: the head, then as many body bytes as Content-Length
/// says. False when the client went away first.
fn read_whole(stream: &mut impl Read) -> bool {
    let mut got = Vec::with_capacity(256);
    let mut buf = [0u8; 4096];
    let mut want: Option<usize> = None;
    loop {
        if let Some(total) = want {
            if got.len() >= total {
                return true;
            }
        }
        let n = match stream.read(&mut buf) {
            Ok(n) if n > 0 => n,
            _ => return false,
        };
        got.extend_from_slice(&buf[..n]);
        if want.is_none() {
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                want = Some(end + 4 + content_length(&got[..end]));
            } else if got.len() > 64 * 1024 {
                return false;
            }
        }
    }
}

fn content_length(head: &[u8]) -> usize {
    String::from_utf8_lossy(head)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}
